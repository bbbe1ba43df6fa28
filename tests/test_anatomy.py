"""Tests of tuneshift.models.anatomy on tiny randomly initialised models of every family.

The reference values are computed with the models' own Hugging Face modules (norms,
projections, embedding modules, and a real forward pass whose attention inputs are
captured), never with the anatomy code's own reshaping, so packing/folding bugs show up.
Which modules a family runs, in which order, and how it views their outputs is the family's
test oracle (``Anatomy.reference_qk`` / ``reference_ffn_down``, written next to the anatomy
class from the transformers forward code); the captured forward pass checks the oracle
itself. The tiny configs come from the family files (``Anatomy.tiny_config``), so every test
parametrized over ``SUPPORTED_FAMILIES`` covers a newly registered family unchanged.
"""

from __future__ import annotations

import copy
import sys
import warnings

import pytest
import torch
import transformers as T
from torch import nn
from transformers import AttentionInterface

import tuneshift.models.anatomy as anatomy_pkg
from tuneshift.errors import UnsupportedArchitectureError
from tuneshift.models.anatomy import (
    SUPPORTED_FAMILIES,
    Anatomy,
    TinyDims,
    anatomy_class,
    get_anatomy,
    register_anatomy,
    registered_model_types,
    supported_families,
)

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

V, D, F, L, H = 64, 32, 48, 2, 4
ATOL = 1e-5

ORIGINAL_FAMILIES = ("llama", "mistral", "qwen2", "gemma", "gemma2", "gemma3", "gpt2", "gpt_neox")

# ---- capture of the attention inputs (q, k) during a real forward pass ----------------

_CAPTURED: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
_CAPTURE_IMPL = "tuneshift_test_capture"


def _capture_attention(module, query, key, value, attention_mask, **kwargs):
    _CAPTURED[module.layer_idx] = (query.detach().clone(), key.detach().clone())
    # delegate to the model's own eager kernel (handles e.g. Gemma 2 soft-capping)
    eager = sys.modules[type(module).__module__].eager_attention_forward
    return eager(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register(_CAPTURE_IMPL, _capture_attention)

# Departures from a family's own tiny config, to cover more cases.
OVERRIDES = {"gemma2": {"head_dim": 12}}  # head_dim != hidden_size / n_heads, as in real Gemma 2


def _config(family: str) -> tuple[object, type]:
    dims = TinyDims(
        vocab_size=V,
        hidden_size=D,
        intermediate_size=F,
        num_layers=L,
        num_heads=H,
        max_positions=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    config, cls = anatomy_class(family).tiny_config(dims)
    for key, value in OVERRIDES.get(family, {}).items():
        setattr(config, key, value)
    return config, cls


GEMMA = {"gemma", "gemma2", "gemma3"}


def _build(family: str, seed: int = 0) -> T.PreTrainedModel:
    config, cls = _config(family)
    config._attn_implementation = _CAPTURE_IMPL
    torch.manual_seed(seed)
    model = cls(config).eval()
    offset = anatomy_class(family)._gain_offset  # Gemma stores w with gain (1 + w)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name:
                if name.endswith("weight"):
                    # effective gains random around 1 (Gemma: w around 0)
                    p.copy_(torch.randn_like(p) * 0.5 + (1.0 - offset))
                else:  # LayerNorm biases: zero so the zero-mean check is exact
                    p.zero_()
            elif name.endswith("bias"):
                p.copy_(torch.randn_like(p))  # q/k/v and MLP biases: non-zero, must be ignored
            elif name.endswith(("wpe.weight", "embed_positions.weight", "position_embeddings.weight")):
                p.zero_()  # learned positions (GPT-2's wpe) would be added to inputs_embeds
    return model


@pytest.fixture(scope="module")
def models() -> dict[str, T.PreTrainedModel]:
    return {family: _build(family) for family in SUPPORTED_FAMILIES}


def _uses_layernorm(model) -> bool:
    return any(isinstance(m, nn.LayerNorm) for m in model.modules())


def _random_residuals(model, n: int = 6, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g) * 3.0
    if _uses_layernorm(model):
        x = x - x.mean(-1, keepdim=True)  # LayerNorm mean-centering is then the identity
    return x


def _fold(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bd,hde->bhe", x, w)


def _per_query_head(k: torch.Tensor) -> torch.Tensor:
    """[n, n_kv, hd] -> [n, H, hd]: query head h reads kv head h // (H / n_kv)."""
    group = H // k.shape[1]
    return torch.stack([k[:, h // group] for h in range(H)], dim=1)


# ---- tests -----------------------------------------------------------------------------


def test_supported_families_come_from_the_registry():
    assert SUPPORTED_FAMILIES == supported_families() == tuple(sorted(SUPPORTED_FAMILIES))
    assert set(ORIGINAL_FAMILIES) <= set(SUPPORTED_FAMILIES)
    assert len(set(SUPPORTED_FAMILIES)) == len(SUPPORTED_FAMILIES)
    assert set(SUPPORTED_FAMILIES) | {"gemma3_text"} <= set(registered_model_types())
    assert {anatomy_class(t).family for t in registered_model_types()} == set(SUPPORTED_FAMILIES)
    assert anatomy_class("gemma3_text") is anatomy_class("gemma3")
    assert anatomy_class("opt") is None
    for family in SUPPORTED_FAMILIES:
        cls = anatomy_class(family)
        assert issubclass(cls, Anatomy) and cls.family == family
        # one module per family file, found by the package's discovery
        assert cls.__module__.startswith("tuneshift.models.anatomy.")
        module = sys.modules[cls.__module__]
        assert getattr(anatomy_pkg, cls.__module__.rsplit(".", 1)[1]) is module
        assert getattr(anatomy_pkg, cls.__name__) is cls  # old import path of the classes
    assert anatomy_pkg.LlamaAnatomy.family == "llama" and anatomy_pkg.GPTNeoXAnatomy.family == "gpt_neox"
    with pytest.raises(AttributeError):
        anatomy_pkg.NoSuchAnatomy  # noqa: B018


def test_register_anatomy_validates():
    before = registered_model_types()
    llama = anatomy_class("llama")
    assert register_anatomy("llama", llama) is llama  # re-registering the same pair: no-op
    with pytest.raises(ValueError, match="already registered"):
        register_anatomy("llama", anatomy_class("gpt2"))
    with pytest.raises(TypeError):
        register_anatomy("not_a_family", object)
    with pytest.raises(TypeError):
        register_anatomy("not_a_family", Anatomy)  # abstract
    with pytest.raises(ValueError):
        register_anatomy("", llama)
    assert registered_model_types() == before and anatomy_class("llama") is llama


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_dispatch_and_shapes(models, family):
    model = models[family]
    an = get_anatomy(model)
    assert isinstance(an, Anatomy)
    assert type(an) is anatomy_class(family)
    assert an.family == family
    assert an.model is model
    cfg = model.config
    n_kv = getattr(cfg, "num_key_value_heads", None) or H
    hd = getattr(cfg, "head_dim", None) or D // H
    known = {"gemma": (1, 8), "gemma2": (2, 12), "gpt2": (H, 8), "gpt_neox": (H, 8)}
    if family in ORIGINAL_FAMILIES:
        assert (n_kv, hd) == known.get(family, (2, 8)), cfg
    assert (an.n_layers, an.n_heads, an.n_kv_heads, an.head_dim) == (L, H, n_kv, hd), cfg
    assert (an.d_model, an.d_ffn, an.vocab_size) == (D, F, V)

    tensors = {
        "input": (an.input_embedding_matrix(), (V, D)),
        "output": (an.output_embedding_matrix(), (V, D)),
        "ffn": (an.ffn_down(1), (F, D)),
    }
    wq, wk = an.query_key_weights(1)
    tensors["wq"] = (wq, (H, D, hd))
    tensors["wk"] = (wk, (H, D, hd))
    for key, (t, shape) in tensors.items():
        assert tuple(t.shape) == shape, key
        assert t.dtype == torch.float32, key
        assert not t.requires_grad, key


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_input_embedding_matches_embedding_module(models, family):
    model = models[family]
    an = get_anatomy(model)
    ids = torch.arange(V)
    with torch.no_grad():
        expected = model.get_input_embeddings()(ids)
    torch.testing.assert_close(an.input_embedding_matrix(), expected, rtol=0, atol=0)
    raw = model.get_input_embeddings().weight
    if family in GEMMA:
        assert torch.allclose(expected, raw * D**0.5, atol=1e-5)  # the scale is really applied
    elif an._embedding_scale(raw) is None:
        assert torch.equal(expected, raw)


def test_gemma_embedding_scale_in_bfloat16(models):
    model = copy.deepcopy(models["gemma3"]).to(torch.bfloat16)
    an = get_anatomy(model)
    ids = torch.arange(V)
    with torch.no_grad():
        expected = model.get_input_embeddings()(ids)
    assert expected.dtype == torch.bfloat16
    got = an.input_embedding_matrix()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected.float(), rtol=0, atol=0)
    # sqrt(32) = 5.657 is rounded to bfloat16 (5.65625) before multiplying, as HF does
    weight = model.get_input_embeddings().weight
    torch.testing.assert_close(got, (weight * torch.tensor(5.65625, dtype=torch.bfloat16)).float(), rtol=0, atol=0)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_output_embedding_is_lm_head(models, family):
    model = models[family]
    an = get_anatomy(model)
    torch.testing.assert_close(an.output_embedding_matrix(), model.get_output_embeddings().weight, rtol=0, atol=0)
    if family in GEMMA:  # tied: unscaled embedding rows
        assert torch.equal(an.output_embedding_matrix(), model.get_input_embeddings().weight)
        assert not torch.allclose(an.output_embedding_matrix(), an.input_embedding_matrix())


@pytest.mark.parametrize("layer", range(L))
@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_query_key_folding_against_modules(models, family, layer):
    """x @ Wq[h] equals the layer's own q (norm -> projection -> q/k norm, biases removed)
    times the positive factors the norms divide by; without q/k-norm folding, the projection."""
    model = models[family]
    an = get_anatomy(model)
    x = _random_residuals(model)
    ref = anatomy_class(family).reference_qk(model, layer, x)
    n_kv = an.n_kv_heads
    assert ref.q.shape == ref.q_pre.shape == (len(x), H, an.head_dim)
    assert ref.k.shape == ref.k_pre.shape == (len(x), n_kv, an.head_dim)
    for scale in (ref.norm_scale, ref.q_scale, ref.k_scale):
        assert (scale > 0).all()
    s = ref.norm_scale
    wq, wk = an.query_key_weights(layer)
    torch.testing.assert_close(_fold(x, wq), ref.q * s * ref.q_scale, rtol=1e-5, atol=ATOL)
    torch.testing.assert_close(_fold(x, wk), _per_query_head(ref.k * s * ref.k_scale), rtol=1e-5, atol=ATOL)
    # unfolded q/k norm: x @ Wq equals the pre-q/k-norm projection
    wq0, wk0 = an.query_key_weights(layer, fold_qk_norm=False)
    torch.testing.assert_close(_fold(x, wq0), ref.q_pre * s, rtol=1e-5, atol=ATOL)
    torch.testing.assert_close(_fold(x, wk0), _per_query_head(ref.k_pre * s), rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_query_key_folding_against_forward_pass(models, family):
    """q/k entering the attention kernel in a real forward pass (layer 0, position 0 so
    RoPE is the identity) equal the family's oracle, and x @ W up to the oracle's positive
    per-vector factors (the 1/RMS of the pre-attention norm and of any q/k norm)."""
    model = models[family]
    an = get_anatomy(model)
    x = _random_residuals(model, n=5, seed=7)
    with torch.no_grad():
        _CAPTURED.clear()
        model(inputs_embeds=x[:, None, :])
        q_cap, k_cap = (t[:, :, 0, :] for t in _CAPTURED[0])
        _CAPTURED.clear()
        model(inputs_embeds=torch.zeros_like(x)[:, None, :])  # biases only
        q0, k0 = (t[:, :, 0, :] for t in _CAPTURED[0])
    q_cap, k_cap = q_cap - q0, k_cap - k0
    ref = anatomy_class(family).reference_qk(model, 0, x)
    torch.testing.assert_close(q_cap, ref.q, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(k_cap, ref.k, rtol=1e-4, atol=1e-4)
    wq, wk = an.query_key_weights(0)
    a_q, a_k = _fold(x, wq), _fold(x, wk)
    torch.testing.assert_close(a_q, q_cap * ref.norm_scale * ref.q_scale, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a_k, _per_query_head(k_cap * ref.norm_scale * ref.k_scale), rtol=1e-4, atol=1e-4)
    # same direction per head, whatever the positive factors
    for a, b in ((a_q, q_cap), (a_k, _per_query_head(k_cap))):
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_key_heads_repeated_under_gqa(models, family):
    an = get_anatomy(models[family])
    _, wk = an.query_key_weights(0)
    group = an.n_heads // an.n_kv_heads
    for h in range(an.n_heads):
        for h2 in range(an.n_heads):
            same = h // group == h2 // group
            assert torch.equal(wk[h], wk[h2]) == same, (h, h2)


def _broadcast_gain(g: torch.Tensor, hd: int) -> torch.Tensor:
    """q/k-norm gains -> [heads or 1, 1, hd], key heads repeated to H."""
    g = g.reshape(-1, 1, hd)
    return g.repeat_interleave(H // g.shape[0], dim=0) if g.shape[0] > 1 else g


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_qk_norm_gains(models, family):
    model = models[family]
    an = get_anatomy(model)
    hd = an.head_dim
    gains = an.qk_norm_gains(0)
    wq1, wk1 = an.query_key_weights(0)
    wq0, wk0 = an.query_key_weights(0, fold_qk_norm=False)
    ref = anatomy_class(family).reference_qk(model, 0, _random_residuals(model))
    if gains is None:
        assert family != "gemma3"
        torch.testing.assert_close(wq1, wq0, rtol=0, atol=0)
        torch.testing.assert_close(wk1, wk0, rtol=0, atol=0)
        assert torch.equal(ref.q, ref.q_pre) and torch.equal(ref.k, ref.k_pre)  # the oracle agrees: no q/k norm
        return
    gq, gk = gains
    assert gq.numel() in (hd, H * hd) and gk.numel() in (hd, an.n_kv_heads * hd)
    assert not torch.equal(ref.q, ref.q_pre)
    # folding multiplies the head_dim axis by the gains
    torch.testing.assert_close(wq1, wq0 * _broadcast_gain(gq, hd), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(wk1, wk0 * _broadcast_gain(gk, hd), rtol=1e-6, atol=1e-6)
    if family == "gemma3":
        attn = model.model.layers[0].self_attn
        assert gq.shape == gk.shape == (8,)
        torch.testing.assert_close(gq, 1.0 + attn.q_norm.weight, rtol=0, atol=0)
        torch.testing.assert_close(gk, 1.0 + attn.k_norm.weight, rtol=0, atol=0)


@pytest.mark.parametrize("layer", range(L))
@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_ffn_down_matches_down_projection(models, family, layer):
    """The unfolded rows are the down-projection module's (the post-FFN gain is tested below)."""
    model = models[family]
    an = get_anatomy(model)
    down = anatomy_class(family).reference_ffn_down(model, layer)
    a = torch.randn(5, F, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = down(a) - down(torch.zeros_like(a))
    torch.testing.assert_close(a @ an.ffn_down(layer, fold_post_norm=False), expected, rtol=1e-5, atol=ATOL)


POST_FFN_NORM = {"gemma2", "gemma3", "olmo2"}  # post_feedforward_layernorm before the residual add


def _positive_scale(ref: torch.Tensor, got: torch.Tensor) -> torch.Tensor:
    """Per row, the least-squares ``c`` with ``ref ~ c * got``; asserts ``ref == c * got`` (up
    to float32 rounding) and ``c > 0``: the rows are the same directions, one positive scalar
    apart (the per-token ``1/rms`` of a post-FFN norm)."""
    c = (ref * got).sum(-1) / (got * got).sum(-1)
    assert (c > 0).all()
    torch.testing.assert_close(ref, c[:, None] * got, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    return c


@pytest.mark.parametrize("layer", range(L))
@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_ffn_rows_are_residual_directions(models, family, layer):
    """Oracle: the real model run with the FFN hidden activation of ``layer`` replaced by a
    one-hot row (one neuron) or a random row, and the block's output difference taken
    (``Anatomy.reference_ffn_residual``: residual, attention and biases cancel). What the layer
    adds is ``a @ ffn_down(layer)`` times one positive scalar per row: exactly 1 for families
    that add the MLP output as it is, ``1 / rms(a @ W_down)`` for those with a post-FFN norm
    (Gemma 2/3, OLMo 2), which the weights cannot represent -- so directions are compared."""
    model = models[family]
    an = get_anatomy(model)
    eye = torch.eye(F)
    a = torch.cat([eye[:16], torch.randn(8, F, generator=torch.Generator().manual_seed(4))])
    ref = anatomy_class(family).reference_ffn_residual(model, layer, a)
    c = _positive_scale(ref, a @ an.ffn_down(layer))
    if family in POST_FFN_NORM:
        assert an.post_ffn_gain(layer) is not None
        # the unfolded rows point elsewhere (the tiny models' norm gains are random)
        raw = a @ an.ffn_down(layer, fold_post_norm=False)
        cos = torch.nn.functional.cosine_similarity(ref, raw, dim=-1)
        assert (cos < 0.99).any()
    else:
        assert an.post_ffn_gain(layer) is None
        torch.testing.assert_close(c, torch.ones_like(c), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(an.ffn_down(layer, fold_post_norm=False), an.ffn_down(layer), rtol=0, atol=0)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_final_norm_gain_is_the_models_readout(models, family):
    """Oracle: the real model with the last block's output replaced by residual rows ``x``
    (zero-mean, so LayerNorm's centring is the identity; LayerNorm biases are zero in these
    models); the LM head's input is ``final_norm_gain() * x`` times one positive scalar per row."""
    model = models[family]
    an = get_anatomy(model)
    x = _random_residuals(model, n=6, seed=5)
    x = x - x.mean(-1, keepdim=True)
    ref = anatomy_class(family).reference_final_normed(model, x)
    g = an.final_norm_gain()
    assert g.shape == (D,) and not torch.allclose(g, torch.ones_like(g))
    _positive_scale(ref, x * g)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3"])
def test_layer_out_of_range(models, family):
    an = get_anatomy(models[family])
    for bad in (-1, L, 100):
        for call in (an.ffn_down, an.query_key_weights, an.qk_norm_gains):
            with pytest.raises(ValueError, match="out of range"):
                call(bad)


def test_unsupported_family_raises():
    config = T.OPTConfig(
        vocab_size=V,
        hidden_size=D,
        ffn_dim=F,
        num_hidden_layers=1,
        num_attention_heads=H,
        word_embed_proj_dim=D,
        max_position_embeddings=16,
    )
    model = T.OPTForCausalLM(config)
    with pytest.raises(UnsupportedArchitectureError) as info:
        get_anatomy(model)
    message = str(info.value)
    assert "\n" not in message
    assert "'opt'" in message
    for family in SUPPORTED_FAMILIES:
        assert family in message


def test_not_a_model_raises():
    with pytest.raises(UnsupportedArchitectureError):
        get_anatomy(object())


def test_gemma3_multimodal_uses_text_tower():
    text = dict(
        vocab_size=V,
        hidden_size=D,
        intermediate_size=F,
        num_hidden_layers=L,
        num_attention_heads=H,
        num_key_value_heads=2,
        head_dim=8,
        sliding_window=16,
    )
    vision = dict(
        hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    config = T.Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_id=3, boi_token_id=4, eoi_token_id=5
    )
    torch.manual_seed(0)
    model = T.Gemma3ForConditionalGeneration(config).eval()
    an = get_anatomy(model)
    assert an.family == "gemma3" and an.n_layers == L and an.d_model == D and an.head_dim == 8
    lm = model.model.language_model
    torch.testing.assert_close(an.ffn_down(1), lm.layers[1].mlp.down_proj.weight.T, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(an.input_embedding_matrix(), lm.embed_tokens(torch.arange(V)), rtol=0, atol=0)
    assert an.qk_norm_gains(0) is not None


@pytest.mark.parametrize(
    "family, targets",
    [
        ("llama", ["q_proj", "k_proj", "down_proj", "embed_tokens"]),
        ("gemma3", ["q_proj", "k_proj", "down_proj", "embed_tokens"]),
        ("gpt2", ["c_attn", "c_proj"]),
        ("gpt_neox", ["query_key_value", "dense_4h_to_h"]),
    ],
)
def test_peft_lora_deltas_are_included(family, targets):
    from peft import LoraConfig, get_peft_model

    base = _build(family, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft warns about LoRA on tied embeddings
        peft_model = get_peft_model(
            base, LoraConfig(r=2, lora_alpha=4, target_modules=targets, fan_in_fan_out=family == "gpt2")
        )
    torch.manual_seed(9)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name or "lora_embedding_B" in name:  # initialised to zero: randomise
                p.copy_(torch.randn_like(p) * 0.3)
    peft_model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = get_anatomy(copy.deepcopy(peft_model).merge_and_unload())
    an = get_anatomy(peft_model)
    assert an.family == family
    assert an.model is peft_model.get_base_model()

    base_only = get_anatomy(_build(family, seed=5))
    for layer in range(L):
        for got, ref, plain in zip(
            an.query_key_weights(layer), merged.query_key_weights(layer), base_only.query_key_weights(layer)
        ):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
            assert not torch.allclose(got, plain, atol=1e-3)  # the delta really is there
        torch.testing.assert_close(an.ffn_down(layer), merged.ffn_down(layer), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(an.ffn_down(layer), base_only.ffn_down(layer), atol=1e-3)
    torch.testing.assert_close(an.input_embedding_matrix(), merged.input_embedding_matrix(), rtol=1e-5, atol=1e-5)
    if "embed_tokens" in targets:
        with torch.no_grad():
            live = peft_model.get_input_embeddings()(torch.arange(V))
        torch.testing.assert_close(an.input_embedding_matrix(), live, rtol=1e-5, atol=1e-5)

    # with the adapter disabled, the base weights are read
    with peft_model.disable_adapter():
        torch.testing.assert_close(an.ffn_down(0), base_only.ffn_down(0), rtol=0, atol=0)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_peft_lora_on_every_linear_layer(family):
    """LoRA on every linear layer (fused qkv / gate-up projections included, GPT-2's Conv1D
    too): the unmerged adapter reads as the merged model's weights, which differ from the base."""
    from peft import LoraConfig, get_peft_model

    base = _build(family, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft switches fan_in_fan_out on for Conv1D, with a warning
        peft_model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"))
    torch.manual_seed(11)
    n_b = 0
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.3)
                n_b += 1
    assert n_b >= 2 * L  # at least the attention and the MLP projections of every layer
    peft_model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = get_anatomy(copy.deepcopy(peft_model).merge_and_unload())
    an = get_anatomy(peft_model)
    base_only = get_anatomy(_build(family, seed=5))
    for layer in range(L):
        for got, ref, plain in zip(
            an.query_key_weights(layer), merged.query_key_weights(layer), base_only.query_key_weights(layer)
        ):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
            assert not torch.allclose(got, plain, atol=1e-3)
        torch.testing.assert_close(an.ffn_down(layer), merged.ffn_down(layer), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(an.ffn_down(layer), base_only.ffn_down(layer), atol=1e-3)
