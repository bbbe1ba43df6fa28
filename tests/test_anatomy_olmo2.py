"""OLMo 2 specifics of tuneshift.models.anatomy.olmo2 (the generic tests over SUPPORTED_FAMILIES
cover folding, the forward pass, attribution, heads and concepts): no norm before attention,
and q/k norms over the whole projection whose gains fold per output dimension while their
1/RMS is one positive factor per token, shared by all heads."""

from __future__ import annotations

import pytest
import torch

from tuneshift.models.anatomy import TinyDims, anatomy_class, get_anatomy

pytestmark = pytest.mark.numeric

D, H, KV, HD = 32, 4, 2, 8


@pytest.fixture(scope="module")
def model():
    config, cls = anatomy_class("olmo2").tiny_config(
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
    torch.manual_seed(0)
    m = cls(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=g))
    return m


def test_no_pre_attention_norm_and_whole_projection_gains(model):
    an = get_anatomy(model)
    assert (an.family, an.n_heads, an.n_kv_heads, an.head_dim) == ("olmo2", H, KV, HD)
    attn = model.model.layers[0].self_attn
    gq, gk = an.qk_norm_gains(0)
    assert gq.shape == (H * HD,) and gk.shape == (KV * HD,)
    torch.testing.assert_close(gq, attn.q_norm.weight.detach(), rtol=0, atol=0)  # gain w, no offset
    torch.testing.assert_close(gk, attn.k_norm.weight.detach(), rtol=0, atol=0)
    wq0, wk0 = an.query_key_weights(0, fold_qk_norm=False)
    wq, wk = an.query_key_weights(0)
    for h in range(H):
        kv = h // (H // KV)
        for i in range(HD):
            # no pre-attention gain: the raw projection rows
            torch.testing.assert_close(wq0[h, :, i], attn.q_proj.weight[h * HD + i].detach(), rtol=0, atol=0)
            torch.testing.assert_close(wk0[h, :, i], attn.k_proj.weight[kv * HD + i].detach(), rtol=0, atol=0)
            # q/k-norm gain of that output channel
            torch.testing.assert_close(wq[h, :, i], wq0[h, :, i] * gq[h * HD + i], rtol=0, atol=0)
            torch.testing.assert_close(wk[h, :, i], wk0[h, :, i] * gk[kv * HD + i], rtol=0, atol=0)


def test_post_norms_do_not_enter_the_query_key_weights(model):
    an = get_anatomy(model)
    wq, wk = an.query_key_weights(1)
    block = model.model.layers[1]
    saved = [block.post_attention_layernorm.weight.clone(), block.post_feedforward_layernorm.weight.clone()]
    try:
        with torch.no_grad():
            block.post_attention_layernorm.weight.mul_(3.0)
            block.post_feedforward_layernorm.weight.mul_(-2.0)
        wq2, wk2 = an.query_key_weights(1)
    finally:
        with torch.no_grad():
            block.post_attention_layernorm.weight.copy_(saved[0])
            block.post_feedforward_layernorm.weight.copy_(saved[1])
    torch.testing.assert_close(wq2, wq, rtol=0, atol=0)
    torch.testing.assert_close(wk2, wk, rtol=0, atol=0)


def test_real_queries_are_folded_ones_times_one_positive_factor_per_token(model):
    """q entering attention = (x @ Wq) / rms(x @ Wq_proj): one factor per token for all heads."""
    an = get_anatomy(model)
    attn = model.model.layers[0].self_attn
    x = torch.randn(7, D, generator=torch.Generator().manual_seed(2)) * 2.0
    with torch.no_grad():
        real_q = attn.q_norm(attn.q_proj(x)).view(7, H, HD)
        real_k = attn.k_norm(attn.k_proj(x)).view(7, KV, HD)
        eps = attn.q_norm.variance_epsilon
        inv_q = torch.rsqrt(attn.q_proj(x).pow(2).mean(-1) + eps)  # [7], over all heads together
        inv_k = torch.rsqrt(attn.k_proj(x).pow(2).mean(-1) + eps)
    wq, wk = an.query_key_weights(0)
    folded_q = torch.einsum("nd,hde->nhe", x, wq)
    folded_k = torch.einsum("nd,hde->nhe", x, wk)
    torch.testing.assert_close(real_q, folded_q * inv_q[:, None, None], rtol=1e-5, atol=1e-6)
    for h in range(H):
        torch.testing.assert_close(real_k[:, h // (H // KV)], folded_k[:, h] * inv_k[:, None], rtol=1e-5, atol=1e-6)
    assert (inv_q > 0).all() and inv_q.std() > 0  # a real per-token factor, not a constant
