"""Tests of tuneshift.models.anatomy on tiny randomly initialised models of every family.

The reference values are computed with the models' own Hugging Face modules (norms,
projections, embedding modules, and a real forward pass whose attention inputs are
captured), never with the anatomy code's own reshaping, so packing/folding bugs show up.
"""

from __future__ import annotations

import copy
import sys
import warnings

import pytest
import torch
import transformers as T
from transformers import AttentionInterface

from tuneshift.errors import UnsupportedArchitectureError
from tuneshift.models.anatomy import SUPPORTED_FAMILIES, Anatomy, get_anatomy

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

V, D, F, L, H = 64, 32, 48, 2, 4
ATOL = 1e-5

# ---- capture of the attention inputs (q, k) during a real forward pass ----------------

_CAPTURED: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
_CAPTURE_IMPL = "tuneshift_test_capture"


def _capture_attention(module, query, key, value, attention_mask, **kwargs):
    _CAPTURED[module.layer_idx] = (query.detach().clone(), key.detach().clone())
    # delegate to the model's own eager kernel (handles e.g. Gemma 2 soft-capping)
    eager = sys.modules[type(module).__module__].eager_attention_forward
    return eager(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register(_CAPTURE_IMPL, _capture_attention)


def _configs() -> dict[str, tuple[object, type]]:
    common = dict(
        vocab_size=V,
        hidden_size=D,
        intermediate_size=F,
        num_hidden_layers=L,
        num_attention_heads=H,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    return {
        "llama": (T.LlamaConfig(**common, num_key_value_heads=2), T.LlamaForCausalLM),
        "mistral": (T.MistralConfig(**common, num_key_value_heads=2), T.MistralForCausalLM),
        "qwen2": (T.Qwen2Config(**common, num_key_value_heads=2), T.Qwen2ForCausalLM),
        # MQA: all four query heads share one kv head
        "gemma": (T.GemmaConfig(**common, num_key_value_heads=1, head_dim=8), T.GemmaForCausalLM),
        # head_dim != hidden_size / n_heads, as in real Gemma 2
        "gemma2": (
            T.Gemma2Config(**common, num_key_value_heads=2, head_dim=12, sliding_window=16),
            T.Gemma2ForCausalLM,
        ),
        "gemma3": (
            T.Gemma3TextConfig(**common, num_key_value_heads=2, head_dim=8, sliding_window=16),
            T.Gemma3ForCausalLM,
        ),
        "gpt2": (
            T.GPT2Config(vocab_size=V, n_embd=D, n_layer=L, n_head=H, n_inner=F, n_positions=16,
                         bos_token_id=0, eos_token_id=1),
            T.GPT2LMHeadModel,
        ),
        "gpt_neox": (
            T.GPTNeoXConfig(vocab_size=V, hidden_size=D, intermediate_size=F, num_hidden_layers=L,
                            num_attention_heads=H, bos_token_id=0, eos_token_id=1),
            T.GPTNeoXForCausalLM,
        ),
    }


GEMMA = {"gemma", "gemma2", "gemma3"}
LAYERNORM = {"gpt2", "gpt_neox"}


def _build(family: str, seed: int = 0) -> T.PreTrainedModel:
    config, cls = _configs()[family]
    config._attn_implementation = _CAPTURE_IMPL
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name:
                if name.endswith("weight"):
                    # Gemma stores w with gain (1 + w): random around 0; others random around 1.
                    p.copy_(torch.randn_like(p) * 0.5 + (0.0 if family in GEMMA else 1.0))
                else:  # LayerNorm biases: zero so the zero-mean check is exact
                    p.zero_()
            elif name.endswith("bias"):
                p.copy_(torch.randn_like(p))  # q/k/v and MLP biases: non-zero, must be ignored
        if family == "gpt2":
            model.transformer.wpe.weight.zero_()  # learned positions would be added to inputs_embeds
    return model


@pytest.fixture(scope="module")
def models() -> dict[str, T.PreTrainedModel]:
    return {family: _build(family) for family in SUPPORTED_FAMILIES}


# ---- per-family access to the real modules (independent of the anatomy code) ---------


def _layer(model, family: str, i: int):
    if family == "gpt2":
        return model.transformer.h[i]
    if family == "gpt_neox":
        return model.gpt_neox.layers[i]
    return model.model.layers[i]


def _pre_norm(model, family: str, i: int):
    lay = _layer(model, family, i)
    return lay.ln_1 if family == "gpt2" else lay.input_layernorm


def _eps(norm) -> float:
    return float(getattr(norm, "variance_epsilon", None) or norm.eps)


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _unbiased(fn, y: torch.Tensor) -> torch.Tensor:
    return fn(y) - fn(torch.zeros_like(y))


def _module_qk(model, family: str, i: int, y: torch.Tensor):
    """q [B, H, hd] and k [B, H_kv, hd] from the real projection modules, biases removed."""
    lay = _layer(model, family, i)
    b = y.shape[0]
    if family == "gpt2":
        qkv = _unbiased(lay.attn.c_attn, y)
        q, k, _ = qkv.split(D, dim=-1)
        return q.reshape(b, H, -1), k.reshape(b, H, -1)
    if family == "gpt_neox":
        qkv = _unbiased(lay.attention.query_key_value, y).view(b, H, -1)
        q, k, _ = qkv.chunk(3, dim=-1)
        return q, k
    attn = lay.self_attn
    return _unbiased(attn.q_proj, y).view(b, -1, attn.head_dim), _unbiased(attn.k_proj, y).view(b, -1, attn.head_dim)


def _random_residuals(family: str, n: int = 6, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g) * 3.0
    if family in LAYERNORM:
        x = x - x.mean(-1, keepdim=True)  # LayerNorm mean-centering is then the identity
    return x


def _fold(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bd,hde->bhe", x, w)


# ---- tests -----------------------------------------------------------------------------


def test_supported_families_constant():
    assert SUPPORTED_FAMILIES == ("llama", "mistral", "qwen2", "gemma", "gemma2", "gemma3", "gpt2", "gpt_neox")


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_dispatch_and_shapes(models, family):
    model = models[family]
    an = get_anatomy(model)
    assert isinstance(an, Anatomy)
    assert an.family == family
    assert an.model is model
    cfg = _configs()[family][0]
    n_kv = {"gemma": 1, "gpt2": H, "gpt_neox": H}.get(family, 2)
    hd = {"gemma2": 12}.get(family, 8)
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
    else:
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
    model = models[family]
    an = get_anatomy(model)
    x = _random_residuals(family)
    norm = _pre_norm(model, family, layer)
    with torch.no_grad():
        y = norm(x)
        r = _rms(x, _eps(norm))[:, :, None]  # per-vector 1/RMS factor of the norm
        q, k = _module_qk(model, family, layer, y)
        n_kv = k.shape[1]
        if family == "gemma3":
            attn = _layer(model, family, layer).self_attn
            q_pre, k_pre = q, k
            q = attn.q_norm(q_pre) * _rms(q_pre, _eps(attn.q_norm))
            k = attn.k_norm(k_pre) * _rms(k_pre, _eps(attn.k_norm))
            # unfolded q/k norm: x @ Wq equals the pre-q_norm projection
            wq0, wk0 = an.query_key_weights(layer, fold_qk_norm=False)
            torch.testing.assert_close(_fold(x, wq0), q_pre * r, rtol=1e-5, atol=ATOL)
            for h in range(H):
                torch.testing.assert_close(_fold(x, wk0)[:, h], k_pre[:, h * n_kv // H] * r[:, 0], rtol=1e-5, atol=ATOL)
    wq, wk = an.query_key_weights(layer)
    torch.testing.assert_close(_fold(x, wq), q * r, rtol=1e-5, atol=ATOL)
    group = H // n_kv
    for h in range(H):
        torch.testing.assert_close(_fold(x, wk)[:, h], k[:, h // group] * r[:, 0], rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_query_key_folding_against_forward_pass(models, family):
    """q/k entering the attention kernel in a real forward pass (layer 0, position 0 so
    RoPE is the identity) equal x @ W up to the per-vector 1/RMS factor."""
    model = models[family]
    an = get_anatomy(model)
    x = _random_residuals(family, n=5, seed=7)
    with torch.no_grad():
        _CAPTURED.clear()
        model(inputs_embeds=x[:, None, :])
        q_cap, k_cap = (t[:, :, 0, :] for t in _CAPTURED[0])
        _CAPTURED.clear()
        model(inputs_embeds=torch.zeros_like(x)[:, None, :])  # biases only
        q0, k0 = (t[:, :, 0, :] for t in _CAPTURED[0])
    q_cap, k_cap = q_cap - q0, k_cap - k0
    wq, wk = an.query_key_weights(0)
    a_q, a_k = _fold(x, wq), _fold(x, wk)
    group = H // k_cap.shape[1]
    k_rep = torch.stack([k_cap[:, h // group] for h in range(H)], dim=1)
    if family == "gemma3":
        # the q/k norms' own per-head 1/RMS is not representable: same direction, positive scale
        for a, b in ((a_q, q_cap), (a_k, k_rep)):
            cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
            torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-5)
    else:
        r = _rms(x, _eps(_pre_norm(model, family, 0)))[:, :, None]
        torch.testing.assert_close(a_q, q_cap * r, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(a_k, k_rep * r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_key_heads_repeated_under_gqa(models, family):
    an = get_anatomy(models[family])
    _, wk = an.query_key_weights(0)
    group = an.n_heads // an.n_kv_heads
    for h in range(an.n_heads):
        for h2 in range(an.n_heads):
            same = h // group == h2 // group
            assert torch.equal(wk[h], wk[h2]) == same, (h, h2)


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_qk_norm_gains(models, family):
    model = models[family]
    an = get_anatomy(model)
    gains = an.qk_norm_gains(0)
    if family != "gemma3":
        assert gains is None
        wq, _ = an.query_key_weights(0, fold_qk_norm=True)
        torch.testing.assert_close(wq, an.query_key_weights(0, fold_qk_norm=False)[0], rtol=0, atol=0)
        return
    attn = model.model.layers[0].self_attn
    gq, gk = gains
    assert gq.shape == gk.shape == (8,)
    torch.testing.assert_close(gq, 1.0 + attn.q_norm.weight, rtol=0, atol=0)
    torch.testing.assert_close(gk, 1.0 + attn.k_norm.weight, rtol=0, atol=0)
    # folding multiplies the head_dim axis by the gains
    wq1, wk1 = an.query_key_weights(0)
    wq0, wk0 = an.query_key_weights(0, fold_qk_norm=False)
    torch.testing.assert_close(wq1, wq0 * gq, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(wk1, wk0 * gk, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layer", range(L))
@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_ffn_down_matches_down_projection(models, family, layer):
    model = models[family]
    an = get_anatomy(model)
    lay = _layer(model, family, layer)
    down = {"gpt2": lambda m: m.mlp.c_proj, "gpt_neox": lambda m: m.mlp.dense_4h_to_h}.get(
        family, lambda m: m.mlp.down_proj
    )(lay)
    a = torch.randn(5, F, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = _unbiased(down, a)
    torch.testing.assert_close(a @ an.ffn_down(layer), expected, rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3"])
def test_layer_out_of_range(models, family):
    an = get_anatomy(models[family])
    for bad in (-1, L, 100):
        for call in (an.ffn_down, an.query_key_weights, an.qk_norm_gains):
            with pytest.raises(ValueError, match="out of range"):
                call(bad)


def test_unsupported_family_raises():
    config = T.OPTConfig(vocab_size=V, hidden_size=D, ffn_dim=F, num_hidden_layers=1, num_attention_heads=H,
                         word_embed_proj_dim=D, max_position_embeddings=16)
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
    text = dict(vocab_size=V, hidden_size=D, intermediate_size=F, num_hidden_layers=L, num_attention_heads=H,
                num_key_value_heads=2, head_dim=8, sliding_window=16)
    vision = dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                  image_size=28, patch_size=14)
    config = T.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_id=3,
                            boi_token_id=4, eoi_token_id=5)
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
        for got, ref, plain in zip(an.query_key_weights(layer), merged.query_key_weights(layer),
                                   base_only.query_key_weights(layer)):
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
