"""Phi-3 specifics of tuneshift.models.anatomy.phi3 (the generic tests over SUPPORTED_FAMILIES
cover folding, the forward pass, attribution, heads and concepts): the fused ``qkv_proj`` is
sliced into the right row blocks, and LoRA on the fused projection is read through its delta."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from tuneshift.models.anatomy import TinyDims, anatomy_class, get_anatomy

pytestmark = pytest.mark.numeric

D, H, KV, HD = 32, 4, 2, 8


def _model(seed: int = 0):
    config, cls = anatomy_class("phi3").tiny_config(
        TinyDims(
            vocab_size=50,
            hidden_size=D,
            intermediate_size=48,
            num_heads=H,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        )
    )
    torch.manual_seed(seed)
    return cls(config).eval()


def test_fused_qkv_rows_are_q_then_k_then_v():
    model = _model()
    an = get_anatomy(model)
    assert (an.family, an.n_heads, an.n_kv_heads, an.head_dim) == ("phi3", H, KV, HD)
    block = model.model.layers[1]
    w = block.self_attn.qkv_proj.weight  # [(H + 2 KV) * HD, D]
    assert w.shape == ((H + 2 * KV) * HD, D)
    with torch.no_grad():
        block.input_layernorm.weight.copy_(torch.linspace(0.5, 2.0, D))
    g = block.input_layernorm.weight.detach()
    wq, wk = an.query_key_weights(1)
    for h in range(H):
        for i in range(HD):
            torch.testing.assert_close(wq[h, :, i], w[h * HD + i] * g, rtol=0, atol=0)
            kv = h // (H // KV)
            torch.testing.assert_close(wk[h, :, i], w[H * HD + kv * HD + i] * g, rtol=0, atol=0)
    # the v rows are never read; a k row belongs to exactly one KV head (two query heads)
    with torch.no_grad():
        w[(H + KV) * HD :] += 5.0
        w[H * HD + HD + 3] += 1.0  # KV head 1, dimension 3
    wq2, wk2 = an.query_key_weights(1)
    torch.testing.assert_close(wq2, wq, rtol=0, atol=0)
    changed = [(h, i) for h in range(H) for i in range(HD) if not torch.equal(wk2[h, :, i], wk[h, :, i])]
    assert changed == [(2, 3), (3, 3)]


def test_lora_on_fused_qkv_is_read_through_its_delta():
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(_model(seed=3), LoraConfig(r=2, lora_alpha=4, target_modules=["qkv_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    peft_model.eval()
    an = get_anatomy(peft_model)
    merged = get_anatomy(copy.deepcopy(peft_model).merge_and_unload())
    plain = get_anatomy(_model(seed=3))
    for layer in range(an.n_layers):
        for got, ref, base in zip(
            an.query_key_weights(layer), merged.query_key_weights(layer), plain.query_key_weights(layer)
        ):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
            assert (got - base).abs().max() > 1e-2
        # the delta of the fused matrix, sliced like the base: Wq = rows [0, H*HD) of W + BA
        lora = peft_model.base_model.model.model.layers[layer].self_attn.qkv_proj
        delta = lora.get_delta_weight("default")
        full = lora.base_layer.weight + delta
        g = peft_model.base_model.model.model.layers[layer].input_layernorm.weight
        wq, _ = an.query_key_weights(layer)
        torch.testing.assert_close(wq[1, :, 5], (full[HD + 5] * g).detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(an.ffn_down(layer), plain.ffn_down(layer), rtol=0, atol=0)  # MLP untouched
