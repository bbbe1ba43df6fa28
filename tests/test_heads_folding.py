"""The heads method's Hq/Hk against the layer's real modules (GQA key heads, Gemma 3 norm folding).

A word vector passed through the layer's real pre-attention norm and q_proj/k_proj (and, for
Gemma 3, the per-head q_norm/k_norm) equals the folded weights' ``E @ Wq[h]`` up to a positive
factor per word (and head): the ignored 1/RMS factors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tuneshift
from tuneshift.data.vocabulary import Vocabulary
from tuneshift.methods.heads import prepare_inputs

WORDS = ["report", "sky", "sentence", "team", "poem", "wind", "review", "food", "story", "cat"]


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_folded_weights_match_modules(tiny_model_dir_factory, family):
    loaded = tuneshift.load_model(str(tiny_model_dir_factory(family, "sp" if family == "gemma3" else "bpe")), progress=False)
    model, an = loaded.model, loaded.anatomy
    with torch.no_grad():  # non-trivial norm gains, so that folding matters
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            if p.dim() == 1:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    vocab = Vocabulary(WORDS, np.arange(len(WORDS), 0, -1, dtype=float), "t")
    rng = np.random.default_rng(0)
    inputs = prepare_inputs(loaded, vocab, {w: rng.normal(size=8) for w in WORDS})
    x = inputs.emb  # [n, d_model], word vectors (mean input embeddings)
    H, dh, kv = an.n_heads, an.head_dim, an.n_kv_heads
    assert kv < H  # grouped-query attention in both tiny configs
    for layer in range(an.n_layers):
        block = model.model.layers[layer]
        attn = block.self_attn
        with torch.no_grad():
            normed = block.input_layernorm(x)
            q = attn.q_proj(normed).view(len(x), H, dh)
            k = attn.k_proj(normed).view(len(x), kv, dh)
            if family == "gemma3":
                q, k = attn.q_norm(q), attn.k_norm(k)
            k = k.repeat_interleave(H // kv, dim=1)  # query head h reads KV head h // (H / kv)
        wq, wk = an.query_key_weights(layer)
        hq = torch.einsum("vd,hde->vhe", x, wq)
        hk = torch.einsum("vd,hde->vhe", x, wk)
        for real, folded in ((q, hq), (k, hk)):
            c = (real * folded).sum(-1) / (folded * folded).sum(-1)  # per (word, head) scale
            assert (c > 0).all()
            torch.testing.assert_close(real, c[..., None] * folded, rtol=1e-4, atol=1e-5)
            if family == "llama":  # the scale is exactly the ignored 1/RMS of the word vector
                eps = model.config.rms_norm_eps
                inv_rms = torch.rsqrt(x.pow(2).mean(-1) + eps)
                torch.testing.assert_close(c, inv_rms[:, None].expand_as(c), rtol=1e-4, atol=1e-6)
