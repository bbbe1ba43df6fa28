"""The heads method's Hq/Hk against the layer's real modules, for every supported family.

A word vector passed through the layer's real pre-attention norm and query/key projections
(and q/k norms: Gemma 3's per-head ones, any whole-projection ones) equals the folded weights'
``E @ Wq[h]`` up to a positive factor per word (and head, for per-head q/k norms): the ignored
1/RMS factors. The modules are run by the family's test oracle (``Anatomy.reference_qk``, next
to its anatomy class), so a newly registered family is covered without editing this file.
LayerNorm families (GPT-2, GPT-NeoX): the method ignores LayerNorm centring, so the identity
holds for zero-mean word vectors, which is what is tested for them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tuneshift
from tuneshift.data.vocabulary import Vocabulary
from tuneshift.models.anatomy import SUPPORTED_FAMILIES, anatomy_class
from tuneshift.pipelines.heads_run import prepare_inputs

WORDS = ["report", "sky", "sentence", "team", "poem", "wind", "review", "food", "story", "cat"]


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_folded_weights_match_modules(tiny_model_dir_factory, family):
    kind = "sp" if family.startswith("gemma") else "bpe"
    loaded = tuneshift.load_model(str(tiny_model_dir_factory(family, kind)), progress=False)
    model, an = loaded.model, loaded.anatomy
    with torch.no_grad():  # non-trivial norm gains (and biases, which must drop out), so that folding matters
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            if p.dim() == 1:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    vocab = Vocabulary(WORDS, np.arange(len(WORDS), 0, -1, dtype=float), "t")
    rng = np.random.default_rng(0)
    inputs = prepare_inputs(loaded, vocab, {w: rng.normal(size=8) for w in WORDS})
    x = inputs.emb  # [n, d_model], word vectors (mean input embeddings)
    if any(isinstance(m, nn.LayerNorm) for m in model.modules()):
        x = x - x.mean(-1, keepdim=True)
    H, kv = an.n_heads, an.n_kv_heads
    assert H % kv == 0
    oracle = anatomy_class(family).reference_qk
    for layer in range(an.n_layers):
        ref = oracle(model, layer, x)
        wq, wk = an.query_key_weights(layer)
        hq = torch.einsum("vd,hde->vhe", x, wq)
        hk = torch.einsum("vd,hde->vhe", x, wk)
        # query head h reads KV head h // (H / kv)
        k = ref.k.repeat_interleave(H // kv, dim=1)
        k_scale = ref.k_scale.repeat_interleave(H // kv, dim=1) if ref.k_scale.shape[1] == kv else ref.k_scale
        for real, folded, qk_scale in ((ref.q, hq, ref.q_scale), (k, hk, k_scale)):
            c = (real * folded).sum(-1) / (folded * folded).sum(-1)  # per (word, head) scale
            assert (c > 0).all()
            torch.testing.assert_close(real, c[..., None] * folded, rtol=1e-4, atol=1e-5)
            # the scale is exactly the ignored 1/RMS (1/std) factors of the norms
            expected = 1.0 / (ref.norm_scale * qk_scale)[..., 0]
            torch.testing.assert_close(c, expected.expand_as(c), rtol=1e-4, atol=1e-6)
            if family == "llama":  # independently of the oracle: 1/RMS of the word vector
                eps = model.config.rms_norm_eps
                inv_rms = torch.rsqrt(x.pow(2).mean(-1) + eps)
                torch.testing.assert_close(c, inv_rms[:, None].expand_as(c), rtol=1e-4, atol=1e-6)
