"""Exactness of the gradient x input of Method A (Wu et al., NAACL 2024, Sec. 3.1, Eq. 1).

attribution[n, j] = (d p(y_j | prompt, y_<j) / d e_n) . e_n, with p the softmax probability and
e_n the input embedding row n. Because ``grad . e_n = d/dt p(e_n (1 + t))`` at t = 0, a central
finite difference along the embedding itself is an independent reference:

    attribution[n, j] ~= (p(e_n (1 + eps)) - p(e_n (1 - eps))) / (2 eps)

computed here with nothing but the model's plain forward on ``inputs_embeds`` (the reference
shares no code with ``tuneshift.methods.attribution.gradient``).

Float64 note: Hugging Face's RMSNorm modules (Llama, Gemma 1/2/3 and the other ``*RMSNorm``
classes) compute in float32 even in a float64 model (``x.float()`` / ``.to(torch.float32)``), and
the eager attention kernels take their softmax in float32; that limits any finite difference to
float32 noise (relative errors ~1e-2 at eps=1e-3). For the float64 checks the test replaces, *on
its own model instance*, every ``*RMSNorm`` forward by the same formula computed in the input
dtype (gain ``1 + w`` for the ``Gemma*`` classes, ``w`` otherwise; and, for Gemma 2, registers an
eager attention kernel identical to HF's but with the softmax in the input dtype), so the model
computes the same function in true float64. LayerNorm (GPT-2, GPT-NeoX) needs no patch. The
finite-difference and naive-reference tests run for every supported family.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import helpers_tiny as H
import tuneshift
from tuneshift.data import PromptRecord
from tuneshift.errors import TuneshiftError
from tuneshift.methods.attribution import (
    AttributionOptions,
    SequencePair,
    SkippedRecord,
    attribute_batch,
    density_and_score,
    gradient_x_input,
    naive_gradient_x_input,
)
from tuneshift.methods.attribution.gradient import logits_from_hidden
from tuneshift.models.anatomy import SUPPORTED_FAMILIES

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

# Tolerance for float32 attributions of the tiny models computed along two paths (batched vs one
# prompt, padded vs not, fast vs naive): |raw| <= ~2e-3 here, and float32 forward + backward
# passes through two layers of width 32-64 that sum in different orders differ by a few ulps of
# their intermediates (~1e-6 relative, ~1e-9 absolute). 1e-6 absolute leaves a wide margin for
# summation order and thread count, yet a wrong position, token or target moves entries by ~1e-4.
F32_ATOL = 1e-6

PROMPT = "Rewrite the sentence politely.\nInput: send the report now"
INSTRUCTION = "Rewrite the sentence politely."
RESPONSE = " Could you please send the report?"

# ------------------------------------------------------------------ float64 helpers

_F64_ATTN = "tuneshift_test_eager_f64"


def _eager_attention_f64(module, query, key, value, attention_mask, dropout=0.0, scaling=None, softcap=None, **kwargs):
    """HF's Gemma-2 eager attention (soft-capping included), softmax kept in the input dtype."""
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scaling = module.head_dim**-0.5 if scaling is None else scaling
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    if softcap is not None:
        w = torch.tanh(w / softcap) * softcap
    if attention_mask is not None:
        w = w + attention_mask
    w = torch.softmax(w, dim=-1)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


def _register_f64_attention():
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(_F64_ATTN, _eager_attention_f64)
    AttentionMaskInterface.register(_F64_ATTN, ALL_MASK_ATTENTION_FUNCTIONS["eager"])


def _full_precision_norms(model) -> int:
    """Make every RMSNorm of ``model`` compute in the input dtype (same formula); returns count."""
    n = 0
    for mod in model.modules():
        name = type(mod).__name__
        if not name.endswith("RMSNorm"):
            continue
        gemma = name.startswith("Gemma")  # gain (1 + w), else w
        eps = getattr(mod, "variance_epsilon", getattr(mod, "eps", None))
        assert eps is not None, name

        def forward(self, x, _gemma=gemma, _eps=eps):
            y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + _eps)
            return y * ((1.0 + self.weight) if _gemma else self.weight)

        mod.forward = types.MethodType(forward, mod)
        n += 1
    return n


def _tiny(family: str, kind: str = "bpe", seed: int = 0, **overrides):
    tok = H.make_tokenizer(kind)
    model = H.make_tiny_model(tok, family, seed=seed, **overrides)
    return tok, model


def _f64_model(family: str, kind: str, **overrides):
    if family == "gemma2":
        _register_f64_attention()
        overrides = {"_attn_implementation": _F64_ATTN, **overrides}
    tok, model = _tiny(family, kind, **overrides)
    model = model.double()
    _full_precision_norms(model)
    return tok, model


# the targets by their textbook formulas, on the model's own (soft-capped) logits [R, vocab]
FD_TARGETS = {
    "probability": lambda z: torch.softmax(z, dim=-1),
    "log_probability": lambda z: torch.log_softmax(z, dim=-1),
    "logit": lambda z: z,
}


def fd_reference(model, prompt_ids, response_ids, eps: float, target: str = "probability") -> np.ndarray:
    """Central finite difference of f(y_j) along e_n -> e_n (1 +- eps); [P, R] float64 (f: p by default)."""
    ids = torch.tensor([list(prompt_ids) + list(response_ids)])
    P, R = len(prompt_ids), len(response_ids)
    target_ids = torch.tensor(list(response_ids))[:, None]
    over_vocab = FD_TARGETS[target]
    with torch.no_grad():
        emb = model.get_input_embeddings()(ids)

        def probs(e):
            # position P + j - 1 predicts y_j; causal masking: later tokens are not seen.
            logits = model(inputs_embeds=e, use_cache=False).logits[0, P - 1 : P + R - 1]
            return over_vocab(logits.double()).gather(1, target_ids)[:, 0]

        out = np.zeros((P, R))
        for n in range(P):
            up, down = emb.clone(), emb.clone()
            up[0, n] *= 1 + eps
            down[0, n] *= 1 - eps
            out[n] = ((probs(up) - probs(down)) / (2 * eps)).numpy()
    return out


# ------------------------------------------------------------------ finite differences


# every supported family, so a newly registered one too (Gemma 2 with the byte-level tokenizer)
FD_CASES = [(f, "sp" if f.startswith("gemma") and f != "gemma2" else "bpe") for f in SUPPORTED_FAMILIES]


@pytest.mark.parametrize("family,kind", FD_CASES, ids=[f for f, _ in FD_CASES])
def test_gradient_x_input_matches_finite_differences(family, kind):
    # Gemma 2 with a strong final-logit soft-cap (tanh(logits / 1) * 1), so the cap matters.
    overrides = {"final_logit_softcapping": 1.0} if family == "gemma2" else {}
    tok, model = _f64_model(family, kind, **overrides)
    prompt = tok(PROMPT)["input_ids"]
    resp = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    assert len(prompt) >= 10 and len(resp) >= 5

    (got,) = gradient_x_input(model, [SequencePair(prompt, resp)], pad_token_id=tok.pad_token_id)
    assert got.dtype == np.float64 and got.shape == (len(prompt), len(resp))
    ref = fd_reference(model, prompt, resp, eps=1e-5)

    scale = np.abs(ref).max()
    assert scale > 1e-4  # non-trivial attributions (not a near-uniform model)
    big = np.abs(ref) > 1e-3 * scale
    assert big.sum() >= 0.5 * ref.size
    rel = np.abs(got - ref)[big] / np.abs(ref)[big]
    assert rel.max() <= 1e-4, f"{family}: max relative error {rel.max():.2e}"
    assert np.abs(got - ref)[~big].max(initial=0.0) <= 1e-7 * scale


TARGET_FD_CASES = [("llama", "bpe", t) for t in ("log_probability", "logit")] + [
    ("gemma2", "bpe", t) for t in ("log_probability", "logit")
]


@pytest.mark.parametrize("family,kind,target", TARGET_FD_CASES, ids=[f"{f}-{t}" for f, _, t in TARGET_FD_CASES])
def test_gradient_x_input_targets_match_finite_differences(family, kind, target):
    # the other registered targets, same checks as the probability one (Gemma 2: strong soft-cap,
    # which the logit target includes: the model's own .logits are capped)
    overrides = {"final_logit_softcapping": 1.0} if family == "gemma2" else {}
    tok, model = _f64_model(family, kind, **overrides)
    prompt = tok(PROMPT)["input_ids"]
    resp = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    (got,) = gradient_x_input(model, [SequencePair(prompt, resp)], pad_token_id=tok.pad_token_id, target=target)
    assert got.dtype == np.float64 and got.shape == (len(prompt), len(resp))
    ref = fd_reference(model, prompt, resp, eps=1e-5, target=target)
    scale = np.abs(ref).max()
    assert scale > 1e-4
    big = np.abs(ref) > 1e-3 * scale
    assert big.sum() >= 0.5 * ref.size
    rel = np.abs(got - ref)[big] / np.abs(ref)[big]
    assert rel.max() <= 1e-4, f"{family}/{target}: max relative error {rel.max():.2e}"
    assert np.abs(got - ref)[~big].max(initial=0.0) <= 1e-7 * scale
    # the targets really differ (a wrong dispatch would give the probability attributions)
    (prob,) = gradient_x_input(model, [SequencePair(prompt, resp)], pad_token_id=tok.pad_token_id)
    assert np.abs(got - prob).max() > 10 * np.abs(got - ref).max()


@pytest.mark.parametrize("target", ["probability", "log_probability", "logit"])
@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
def test_fast_equals_naive_for_every_target(family, target):
    kind = "sp" if family.startswith("gemma") else "bpe"
    tok, model = _tiny(family, kind)
    model = model.double()
    prompt = tok(PROMPT)["input_ids"]
    resp = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    (fast,) = gradient_x_input(model, [SequencePair(prompt, resp)], pad_token_id=tok.pad_token_id, target=target)
    naive = naive_gradient_x_input(model, SequencePair(prompt, resp), target=target)
    assert np.abs(naive).max() > 1e-4
    np.testing.assert_allclose(fast, naive, rtol=1e-9, atol=1e-12)


def test_targets_on_logits():
    from tuneshift.methods.attribution.targets import get_target

    z = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    p = torch.softmax(z, dim=-1)[[0, 1], [0, 2]]
    assert torch.allclose(get_target("probability")(z, y), p, rtol=1e-15, atol=0)
    assert torch.allclose(get_target("log_probability")(z, y), p.log(), rtol=1e-14, atol=0)
    assert torch.equal(get_target("logit")(z, y), torch.tensor([2.0, 1.0], dtype=torch.float64))
    with pytest.raises(TuneshiftError, match="unknown attribution target 'prob'.*log_probability, logit, probability"):
        get_target("prob")


def test_unknown_target_is_a_one_line_error():
    tok, model = _tiny("llama")
    with pytest.raises(TuneshiftError, match="registered targets: log_probability, logit, probability"):
        gradient_x_input(model, [SequencePair([1, 2], [3])], target="nope")


def test_gemma2_softcap_is_part_of_the_attributed_probability():
    _, model = _f64_model("gemma2", "bpe", final_logit_softcapping=1.0)
    ids = torch.tensor([[5, 17, 40, 99, 3]])
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state
        plain = model.lm_head(hidden)
        capped = model(input_ids=ids).logits
    assert (plain - capped).abs().max() > 0.1  # the cap changes the logits a lot here
    assert torch.allclose(logits_from_hidden(model, hidden), capped, atol=1e-12, rtol=0)


# ------------------------------------------------------------------ naive reference


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_equals_naive(family, dtype):
    kind = "sp" if family.startswith("gemma") else "bpe"
    tok, model = _tiny(family, kind)
    if dtype == "float64":
        model = model.double()
    prompt = tok(PROMPT)["input_ids"]
    resp = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    (fast,) = gradient_x_input(model, [SequencePair(prompt, resp)], pad_token_id=tok.pad_token_id)
    naive = naive_gradient_x_input(model, SequencePair(prompt, resp))
    assert fast.shape == naive.shape == (len(prompt), len(resp))
    assert fast.dtype == naive.dtype == (np.float64 if dtype == "float64" else np.float32)
    assert np.abs(naive).max() > 1e-4
    assert np.abs(fast - naive).max() <= 1e-5


# ------------------------------------------------------------------ batching


@pytest.mark.parametrize("family,kind", [("llama", "bpe"), ("gemma3", "sp")])
def test_batch_equals_one_at_a_time(family, kind):
    tok, model = _tiny(family, kind)
    texts = [
        ("Summarise the paragraph in one sentence.", " The team sent the report."),
        (PROMPT, " Could you please send the report to the team now?"),
        ("Answer with one word.", " blue"),
    ]
    pairs = [SequencePair(tok(p)["input_ids"], tok(r, add_special_tokens=False)["input_ids"]) for p, r in texts]
    lengths = [len(p.prompt_ids) + len(p.response_ids) for p in pairs]
    assert len(set(lengths)) == 3  # different lengths: the shorter ones are right-padded
    assert len({len(p.response_ids) for p in pairs}) == 3

    calls = []
    batched = gradient_x_input(model, pairs, pad_token_id=tok.pad_token_id, on_token=lambda j, r: calls.append((j, r)))
    r_max = max(len(p.response_ids) for p in pairs)
    assert calls == [(j, r_max) for j in range(r_max)]
    # another padding id must not change anything (padding is masked and comes after the sequence)
    other_pad = gradient_x_input(model, pairs, pad_token_id=7)
    for b, pair in enumerate(pairs):
        (single,) = gradient_x_input(model, [pair], pad_token_id=tok.pad_token_id)
        assert batched[b].shape == single.shape == (len(pair.prompt_ids), len(pair.response_ids))
        assert np.abs(single).max() > 1e-4
        assert np.abs(batched[b] - single).max() <= F32_ATOL
        assert np.abs(other_pad[b] - single).max() <= F32_ATOL


def test_empty_inputs():
    tok, model = _tiny("llama")
    assert gradient_x_input(model, []) == []
    with pytest.raises(ValueError):
        gradient_x_input(model, [SequencePair([1, 2], [])])
    with pytest.raises(ValueError):
        gradient_x_input(model, [SequencePair([], [3])])


# ------------------------------------------------------------------ frozen parameters


def test_parameters_stay_frozen():
    tok, model = _tiny("llama")
    assert all(p.requires_grad for p in model.parameters())  # a fresh model trains by default
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pair = SequencePair(tok(PROMPT)["input_ids"], tok(RESPONSE, add_special_tokens=False)["input_ids"])
    gradient_x_input(model, [pair])
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    # the reference, even when asked to compute parameter gradients, cleans up after itself
    naive_gradient_x_input(model, pair, freeze=False)
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------------ attribute() on a LoadedModel


@pytest.fixture(scope="module")
def chat_llama(tiny_llama_chat_dir):
    return tuneshift.load_model(str(tiny_llama_chat_dir), progress=False)


@pytest.fixture(scope="module")
def sp_gemma3(tiny_gemma3_dir):
    return tuneshift.load_model(str(tiny_gemma3_dir), progress=False)


def _check_given(loaded, text: str, add_special_tokens: bool):
    """attribute() with a given response vs an independent reference built from ``text`` (the
    exact model input: raw prompt or chat rendering) and the tokenizer's character offsets."""
    tok = loaded.tokenizer
    res = tuneshift.attribute(loaded, PROMPT, response=RESPONSE, instruction=[INSTRUCTION])
    enc = tok(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    p0 = text.index(PROMPT)
    p1, i1 = p0 + len(PROMPT), p0 + len(INSTRUCTION)
    # user-prompt tokens: those whose characters overlap the prompt (never BOS/template tokens)
    user = [i for i, (a, b) in enumerate(offsets) if a < p1 and b > p0]
    resp = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    assert res.n_input_tokens == len(ids)
    assert res.prompt_positions.tolist() == user
    assert res.prompt_token_ids.tolist() == [ids[i] for i in user]
    assert res.shape == (len(user), len(resp))
    assert res.response_token_ids.tolist() == resp
    assert res.raw.dtype == np.float32
    full = naive_gradient_x_input(loaded.model, SequencePair(ids, resp))
    np.testing.assert_allclose(res.raw, full[user], rtol=0, atol=F32_ATOL)
    # instruction mask: tokens overlapping "Rewrite the sentence politely." on a non-space character
    # (a SentencePiece piece ".\n" overlaps it on "." and counts)
    expected_mask = [
        any(not text[k].isspace() for k in range(max(offsets[i][0], p0), min(offsets[i][1], i1))) for i in user
    ]
    assert res.instruction_mask.tolist() == expected_mask
    assert tok.decode(res.prompt_token_ids[res.instruction_mask].tolist()).strip() == INSTRUCTION
    assert res.instruction_mask.tolist() == [r == "instruction" for r in res.prompt_roles]
    density, score = density_and_score(res.raw, res.instruction_mask)
    np.testing.assert_array_equal(res.density, density)
    assert res.instruction_score == score and not np.isnan(score)
    assert res.ended_with_eos is None and not res.truncated and not res.short_response
    return res


def test_attribute_given_response_raw_prompt_no_bos(tiny_llama):
    tok = tiny_llama.tokenizer
    assert tok(PROMPT)["input_ids"] == tok(PROMPT, add_special_tokens=False)["input_ids"]  # no BOS added
    res = _check_given(tiny_llama, PROMPT, add_special_tokens=True)
    assert res.prompt_positions.tolist() == list(range(res.n_input_tokens))  # every input token is the user's


def test_attribute_rows_exclude_bos(sp_gemma3):
    tok = sp_gemma3.tokenizer
    ids = tok(PROMPT)["input_ids"]
    assert ids[0] == tok.bos_token_id
    res = _check_given(sp_gemma3, PROMPT, add_special_tokens=True)
    assert res.prompt_positions.tolist() == list(range(1, len(ids)))
    assert tok.bos_token_id not in res.prompt_token_ids.tolist()


@pytest.mark.parametrize("kind", ["bpe", "sp"])
def test_attribute_rows_exclude_chat_template(kind, chat_llama, tiny_model_dir_factory):
    loaded = (
        chat_llama
        if kind == "bpe"
        else tuneshift.load_model(str(tiny_model_dir_factory("llama", "sp", chat_template=True)), progress=False)
    )
    tok = loaded.tokenizer
    bos = "<s>" if kind == "sp" else ""
    text = f"{bos}<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    assert (
        tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False)
        == text
    )
    res = _check_given(loaded, text, add_special_tokens=False)
    n_in = res.n_input_tokens
    lead, trail = res.prompt_positions[0], n_in - 1 - res.prompt_positions[-1]
    assert lead >= 3 and trail >= 4  # [<s>] <|im_start|> user \n ... <|im_end|> \n <|im_start|> assistant \n
    assert res.prompt_positions.tolist() == list(range(lead, n_in - trail))
    specials = {tok.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>", "<s>")} - {None}
    assert not specials & set(res.prompt_token_ids.tolist())
    # chat_template="none": the raw prompt is the whole input (after a BOS for "sp")
    raw = tuneshift.attribute(loaded, PROMPT, response=RESPONSE, instruction=[INSTRUCTION], chat_template="none")
    assert raw.n_input_tokens == len(raw.prompt_token_ids) + (kind == "sp")
    assert not np.allclose(raw.raw[: min(raw.shape[0], res.shape[0])], res.raw[: min(raw.shape[0], res.shape[0])])


def test_attribute_without_instruction_gives_nan(tiny_llama):
    res = tuneshift.attribute(tiny_llama, PROMPT, response=RESPONSE)
    assert not res.instruction_mask.any() and np.isnan(res.instruction_score)
    assert res.density.max() == 1.0


def _manual_greedy(model, ids: list[int], n: int, eos: set[int]) -> tuple[list[int], bool]:
    ids = list(ids)
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            t = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            if t in eos:
                return out, True
            out.append(t)
            ids.append(t)
    return out, False


@pytest.mark.parametrize("which", ["llama", "gemma3"])
def test_attribute_generate_is_greedy(which, tiny_llama, sp_gemma3):
    loaded = tiny_llama if which == "llama" else sp_gemma3
    tok = loaded.tokenizer
    res = tuneshift.attribute(loaded, PROMPT, instruction=[INSTRUCTION], max_new_tokens=5)
    expected, ended = _manual_greedy(loaded.model, tok(PROMPT)["input_ids"], 5, set(loaded.eos_token_ids))
    assert res.response_token_ids.tolist() == expected
    assert res.ended_with_eos is ended
    assert 1 <= len(expected) <= 5 and res.shape == (len(res.prompt_token_ids), len(expected))
    assert res.short_response == (len(expected) < 5) and not res.truncated
    full = naive_gradient_x_input(loaded.model, SequencePair(tok(PROMPT)["input_ids"], expected))
    np.testing.assert_allclose(res.raw, full[res.prompt_positions], rtol=0, atol=F32_ATOL)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_attribute_batch_generate_matches_single(family, tiny_model_dir_factory):
    # left-padded batched generation (position ids from the mask) == one prompt at a time
    loaded = tuneshift.load_model(str(tiny_model_dir_factory(family)), progress=False)
    recs = [
        PromptRecord(id=f"r{i}", prompt=p, instruction=[p.split(".")[0]])
        for i, p in enumerate([PROMPT, "Summarise the paragraph in one sentence.", "Answer the question."])
    ]
    opts = AttributionOptions(responses="generate", max_new_tokens=4, batch_size=3)
    batch = attribute_batch(loaded, recs, opts)
    assert all(len(a.response_token_ids) > 0 for a in batch)
    for rec, got in zip(recs, batch):
        (single,) = attribute_batch(loaded, [rec], opts)
        assert got.record_id == rec.id
        assert got.response_token_ids.tolist() == single.response_token_ids.tolist()
        np.testing.assert_allclose(got.raw, single.raw, rtol=0, atol=F32_ATOL)


def test_prompt_longer_than_context_is_skipped(tiny_llama):
    ctx = tiny_llama.context_length
    assert ctx == 128
    long_prompt = "Please send the report to the team now. " * 20
    n = len(tiny_llama.tokenizer(long_prompt)["input_ids"])
    assert n > ctx
    recs = [
        PromptRecord(id="long", prompt=long_prompt, response="ok"),
        PromptRecord(id="fine", prompt=PROMPT, response=RESPONSE, instruction=[INSTRUCTION]),
    ]
    for mode in ("given", "generate"):
        out = attribute_batch(tiny_llama, recs, AttributionOptions(responses=mode, max_new_tokens=3))
        assert isinstance(out[0], SkippedRecord) and out[0].record_id == "long"
        assert f"prompt is {n} tokens" in out[0].reason and f"context is {ctx} tokens" in out[0].reason
        assert not isinstance(out[1], SkippedRecord) and out[1].record_id == "fine"
    with pytest.raises(TuneshiftError, match="context"):
        tuneshift.attribute(tiny_llama, long_prompt, response="ok")


def test_long_given_response_is_truncated_and_flagged(tiny_llama):
    tok = tiny_llama.tokenizer
    long_resp = " The team sent the report to the manager before noon." * 20
    resp_ids = tok(long_resp, add_special_tokens=False)["input_ids"]
    n_in = len(tok(PROMPT)["input_ids"])
    room = tiny_llama.context_length - n_in
    assert len(resp_ids) > room
    res = tuneshift.attribute(tiny_llama, PROMPT, response=long_resp, instruction=[INSTRUCTION])
    assert res.truncated is True
    assert res.shape == (n_in, room)
    assert res.response_token_ids.tolist() == resp_ids[:room]
    # a response that fits exactly is not flagged
    exact = tok.decode(resp_ids[:room])
    assert tok(exact, add_special_tokens=False)["input_ids"] == resp_ids[:room]
    fits = tuneshift.attribute(tiny_llama, PROMPT, response=exact, instruction=[INSTRUCTION])
    assert fits.truncated is False and fits.shape == (n_in, room)
    np.testing.assert_allclose(fits.raw, res.raw, rtol=0, atol=F32_ATOL)


def test_generation_near_the_context_end_is_truncated(tiny_llama):
    tok = tiny_llama.tokenizer
    ctx = tiny_llama.context_length
    words = "Please send the report to the team now. " * 20
    ids = tok(words)["input_ids"][: ctx - 3]
    prompt = tok.decode(ids)
    assert tok(prompt)["input_ids"] == ids
    expected, ended = _manual_greedy(tiny_llama.model, ids, 3, set(tiny_llama.eos_token_ids))
    res = tuneshift.attribute(tiny_llama, prompt, max_new_tokens=10)
    assert res.response_token_ids.tolist() == expected
    assert res.n_input_tokens + len(expected) <= ctx
    assert res.truncated is (not ended and len(expected) == 3)


def test_batched_generation_near_the_context_end_gpt2(tiny_gpt2_dir):
    loaded = tuneshift.load_model(str(tiny_gpt2_dir), progress=False)
    tok = loaded.tokenizer
    ids = tok("Please send the report to the team now. " * 20)["input_ids"][: loaded.context_length - 3]
    recs = [
        PromptRecord(id="near_end", prompt=tok.decode(ids)),
        PromptRecord(id="short", prompt="Answer the question."),
    ]
    opts = AttributionOptions(responses="generate", max_new_tokens=10, batch_size=2)
    alone = [attribute_batch(loaded, [r], opts)[0] for r in recs]  # one at a time works
    assert len(alone[0].response_token_ids) <= 3 and alone[0].n_input_tokens == len(ids)
    batch = attribute_batch(loaded, recs, opts)  # IndexError: index out of range in self (wpe)
    for a, b in zip(alone, batch):
        assert a.response_token_ids.tolist() == b.response_token_ids.tolist() and a.truncated == b.truncated
        np.testing.assert_allclose(a.raw, b.raw, rtol=0, atol=F32_ATOL)
