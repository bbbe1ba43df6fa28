"""Issue 18 items 2, 3 and 7: pre-formatted prompts, label-only instruction spans, BOS checks.

* Item 2: a prompt that already holds a chat template (special tokens, or the template's
  generation prompt) is refused with one line naming the record; an attribution run skips it
  (exit 3, as other bad records).
* Item 3: one label rule (``tuneshift.data.spans.instruction_content``) for the attribution path
  and the paper-release path; content-free spans are warned about; a NaN score is warned about;
  the rule version is in the run identity.
* Item 7: a prompt starting with the BOS string is refused; an input without the BOS the model's
  tokenizer puts first (a template without ``{{ bos_token }}``) is warned about.
"""

from __future__ import annotations

import json
import math
import warnings

import pytest

import helpers_tiny as H
from tuneshift.data import PromptRecord, encode_prompt
from tuneshift.errors import TuneshiftError

pytest.importorskip("tokenizers")

PROMPT = "Rewrite the sentence politely.\n\nInput: send the report now"
CHATML = H.CHATML_TEMPLATE
PLAIN_TEMPLATE = (  # markers in plain text (the shipped gemma-3-270m-instruct adapter's form), no BOS
    "{% for m in messages %}### Instruction:\n{{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}### Response:\n{% endif %}"
)


@pytest.fixture(scope="module")
def sp():
    """SentencePiece-style tiny tokenizer: ``<s>`` BOS prepended to plain text, ChatML markers special."""
    return H.make_tokenizer("sp")


@pytest.fixture(scope="module")
def bpe():
    """Byte-level tiny tokenizer: no BOS added (GPT-2 / SmolLM2 style), ChatML markers special."""
    return H.make_tokenizer("bpe")


def _pieces(tok, enc, role):
    return [tok.convert_ids_to_tokens(enc.input_ids[i]) for i in enc.positions(role)]


def _caught(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(x.message) for x in w]


# ------------------------------------------------------------------ item 3: label-only spans


def test_label_only_span_is_not_instruction_and_is_warned(sp):
    rec = PromptRecord(id="lab", prompt=PROMPT, instruction=["Rewrite the sentence politely.", "Input: "])
    enc, msgs = _caught(lambda: encode_prompt(sp, rec, chat_template="none"))
    instr = "".join(_pieces(sp, enc, "instruction")).replace("▁", " ").strip()
    assert instr == "Rewrite the sentence politely."  # today: "... politely.Input:" (the label marked)
    assert "Input" not in instr
    assert any("record lab: instruction span 'Input: ' has no content" in m for m in msgs), msgs


def test_input_label_is_removed_from_a_span_with_content(bpe):
    rec = PromptRecord(id="lab2", prompt=PROMPT, instruction=["Input: send the report now"])
    enc = encode_prompt(bpe, rec, chat_template="none")
    assert "".join(_pieces(bpe, enc, "instruction")).replace("Ġ", " ").strip() == "send the report now"
    assert enc.unlocated_spans == []


def test_attribute_and_paper_paths_mark_the_same_characters(sp):
    """One rule: the characters marked by ``attribute`` (encode_prompt) and by ``import-paper``
    (the paper's sentence rule) are the same, non-space characters compared."""
    from tuneshift.data.paper_release import instruction_sentences

    for spans in (
        ["Rewrite the sentence politely.", "Input: "],
        ["Rewrite the sentence politely.", "Input: send the report"],
    ):
        rec = PromptRecord(id="x", prompt=PROMPT, instruction=spans)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enc = encode_prompt(sp, rec, chat_template="none")
        ours = set()
        for i in enc.positions("instruction"):
            a, b = enc.offsets[i]
            ours |= {k for k in range(a, b) if not PROMPT[k].isspace()}
        sentences, unmatched = instruction_sentences(PROMPT, spans)
        assert unmatched == []
        paper = set()
        for s in sentences:
            if s:
                k = PROMPT.find(s)
                paper |= {j for j in range(k, k + len(s)) if not PROMPT[j].isspace()}
        # the paper marks whole sentences; compare on the sentence-level spans used here
        if spans[1] == "Input: ":
            assert ours == paper
        assert not ({j for j in range(PROMPT.find("Input:"), PROMPT.find("Input:") + 6)} & ours)


def test_instruction_content_is_the_papers_prefix_rule():
    from tuneshift.data.spans import instruction_content, instruction_spans

    assert instruction_content("Input: ") == "" and instruction_content("Input:") == ""
    assert instruction_content("Input: send it ") == "send it"
    assert instruction_content("Rewrite: it") == "Rewrite: it"
    assert instruction_spans(["Input: ", "a b", "Input: c", ' " '])[0] == ["a b", "c"]
    assert instruction_spans(["Input: ", "a b", "Input: c", ' " '])[1] == ["Input: ", ' " ']


def test_nan_score_is_warned(tiny_llama):
    from tuneshift.methods.attribution.api import attribute

    res, msgs = _caught(
        lambda: attribute(
            tiny_llama, PromptRecord(id="nan", prompt=PROMPT, instruction=["Input: "]), response="the report"
        )
    )
    assert math.isnan(res.instruction_score)
    assert any("record nan: no instruction token is left" in m and "NaN" in m for m in msgs), msgs


def test_span_rules_are_in_the_run_identity(tiny_llama, tiny_prompts_file, tmp_path):
    from tuneshift.data.prompts import read_prompts
    from tuneshift.data.spans import SPAN_RULES
    from tuneshift.errors import RunMismatchError
    from tuneshift.methods.attribution.api import AttributionOptions
    from tuneshift.pipelines.attribute_run import run_attribution, run_identity
    from tuneshift.storage.attribution import load_run

    ps = read_prompts(tiny_prompts_file, limit=1)
    opts = AttributionOptions(responses="given")
    ident, _ = run_identity(tiny_llama, ps, opts)
    assert ident["options"]["span_rules"] == SPAN_RULES == "spans-v2"
    run_attribution(tiny_llama, ps, tmp_path / "r", opts, progress=False)
    # a run made with the old rules (no span_rules entry) is not resumed with the new ones
    man = tmp_path / "r" / "manifest.json"
    m = json.loads(man.read_text())
    del m["identity"]["options"]["span_rules"]
    man.write_text(json.dumps(m))
    with pytest.raises(RunMismatchError):
        run_attribution(tiny_llama, read_prompts(tiny_prompts_file, limit=2), tmp_path / "r", opts, progress=False)
    # and compare refuses to pair an old run with a new one
    from tuneshift.stats.compare import protocol_mismatches

    old, new = load_run(tmp_path / "r"), load_run(tmp_path / "r")
    new.manifest["identity"]["options"]["span_rules"] = SPAN_RULES
    assert any(x.startswith("span_rules") for x in protocol_mismatches(old, new))


# ------------------------------------------------------------------ item 2: pre-formatted prompts


def _chatml(prompt):
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("mode", ["none", "auto"])
def test_prompt_with_special_tokens_is_refused(bpe, mode):
    from tuneshift.errors import PreformattedPromptError

    rec = PromptRecord(id="pre1", prompt=_chatml(PROMPT), instruction=["Rewrite the sentence politely."])
    with pytest.raises(
        PreformattedPromptError, match=r"^record pre1: the prompt holds the special token '<\|im_start\|>'"
    ):
        encode_prompt(bpe, rec, chat_template=mode, template=CHATML if mode == "auto" else None)


def test_prompt_with_the_generation_prompt_is_refused(bpe):
    from tuneshift.errors import PreformattedPromptError

    rec = PromptRecord(id="pre2", prompt=f"### Instruction:\n{PROMPT}\n\n### Response:\n")
    with pytest.raises(PreformattedPromptError, match=r"record pre2: .*generation prompt '### Response:'"):
        encode_prompt(bpe, rec, template=PLAIN_TEMPLATE)
    ok = PromptRecord(id="ok", prompt=PROMPT)  # the bare prompt is fine, <unk> pieces included
    assert encode_prompt(bpe, ok, template=PLAIN_TEMPLATE).chat_template_used


def test_preformatted_record_is_skipped_in_a_run(cli, tiny_llama_dir, tmp_path):
    recs = [dict(r) for r in H.TINY_PROMPTS[:3]]
    recs[1]["prompt"] = _chatml(recs[1]["prompt"])
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = cli(
        "attribute",
        "--model",
        tiny_llama_dir,
        "--prompts",
        p,
        "--out",
        tmp_path / "run",
        "--max-new-tokens",
        "2",
        "--chat-template",
        "none",
    )
    assert r.code == 3, r.err
    assert "Traceback" not in r.err
    assert f"record {recs[1]['id']}: the prompt holds the special token '<|im_start|>'" in r.err
    skipped = json.loads((tmp_path / "run" / "skipped.json").read_text())
    assert recs[1]["id"] in json.dumps(skipped)


# ------------------------------------------------------------------ item 7: BOS


def test_prompt_starting_with_the_bos_string_is_refused(sp):
    from tuneshift.errors import PreformattedPromptError

    rec = PromptRecord(id="bos2", prompt="<s>" + PROMPT)
    with pytest.raises(PreformattedPromptError, match=r"^record bos2: the prompt starts with the BOS string '<s>'"):
        encode_prompt(sp, rec, chat_template="none")  # today: input_ids start with two <s>


def test_template_without_bos_is_warned_for_a_model_that_expects_one(sp, bpe):
    rec = PromptRecord(id="nob", prompt=PROMPT)
    enc, msgs = _caught(lambda: encode_prompt(sp, rec, template=CHATML))
    assert enc.input_ids[0] != sp.bos_token_id
    assert any(
        "record nob: the encoded input has no BOS token ('<s>')" in m and "{{ bos_token }}" in m for m in msgs
    ), msgs
    enc, msgs = _caught(lambda: encode_prompt(sp, rec, template="{{ bos_token }}" + CHATML))
    assert enc.roles[0] == "bos" and not [m for m in msgs if "BOS" in m]
    # a tokenizer that adds no BOS to plain text (GPT-2 / SmolLM2 style): nothing expected, no warning
    _, msgs = _caught(lambda: encode_prompt(bpe, rec, template=CHATML))
    assert not [m for m in msgs if "BOS" in m]


def test_two_bos_from_a_template_are_refused(sp):
    from tuneshift.errors import PreformattedPromptError

    rec = PromptRecord(id="bb", prompt=PROMPT)
    with pytest.raises(PreformattedPromptError, match=r"^record bb: the encoded input starts with 2 BOS tokens"):
        encode_prompt(sp, rec, template="{{ bos_token }}{{ bos_token }}" + CHATML)


def test_preformatted_error_is_a_tuneshift_error():
    from tuneshift.errors import PreformattedPromptError

    assert issubclass(PreformattedPromptError, TuneshiftError)


def test_bos_string_of_a_tokenizer_that_adds_none_is_a_template_marker(bpe):
    """SmolLM2-style: the BOS (here ``<|endoftext|>``) is never added to plain text, so a prompt
    starting with it is refused as pre-formatted, not as a doubled BOS."""
    from tuneshift.data.encoding import adds_bos
    from tuneshift.errors import PreformattedPromptError

    assert adds_bos(bpe) is False
    with pytest.raises(
        PreformattedPromptError,
        match=r"^record eot: the prompt holds the special token '<\|endoftext\|>' at character 0",
    ):
        encode_prompt(bpe, PromptRecord(id="eot", prompt="<|endoftext|>" + PROMPT), chat_template="none")


def test_skipped_line_names_the_record_once():
    from tuneshift.pipelines.attribute_run import skipped_line

    assert skipped_line("a", "record a: the prompt holds x") == "skipped record a: the prompt holds x"
    assert skipped_line("a", "no response given") == "skipped record a: no response given"
