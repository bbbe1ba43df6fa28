"""``rms_factor="pre_attention"`` of the heads method (issue 18, item 9), against the real modules.

With the option, each word's mean embedding ``e`` is read as the block's residual input: the
query side is ``(e / rms(e)) * g @ Wq`` (likewise the key side), i.e. what the layer's real
pre-attention norm module followed by the real (bias-free) projections computes. Two references,
both running the tiny model's own modules on the word embeddings:

* the family's test oracle (``Anatomy.reference_qk``: norm module, then q_proj/k_proj, before any
  q/k norm) for every supported family (zero-mean word vectors for the LayerNorm families,
  whose centring the method ignores);
* for Llama and Gemma (no q/k norm, no biases): ``explain_heads_reference`` fed with the real
  norm module's output and the raw projection weights, against the whole ``run_heads`` run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import helpers_tiny as H
import tuneshift
from tuneshift.data.vocabulary import Vocabulary
from tuneshift.errors import OptionError, RunMismatchError
from tuneshift.methods.heads import explain_heads, explain_heads_reference
from tuneshift.models.anatomy import SUPPORTED_FAMILIES, anatomy_class
from tuneshift.pipelines.heads_run import layer_qk_scales, layer_word_embeddings, prepare_inputs, run_heads
from tuneshift.storage.heads import load_heads

WORDS = ["report", "sky", "sentence", "team", "poem", "wind", "review", "food", "story", "cat", "river", "house"]


def _loaded(tiny_model_dir_factory, family):
    kind = "sp" if family.startswith("gemma") else "bpe"
    loaded = tuneshift.load_model(str(tiny_model_dir_factory(family, kind)), progress=False)
    with torch.no_grad():  # non-trivial norm gains, so that the gain and its Gemma offset matter
        g = torch.Generator().manual_seed(0)
        for p in loaded.model.parameters():
            if p.dim() == 1:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return loaded


def _inputs(loaded, dim=8):
    vocab = Vocabulary(WORDS, np.arange(len(WORDS), 0, -1, dtype=float), "t")
    rng = np.random.default_rng(0)
    return prepare_inputs(loaded, vocab, {w: rng.normal(size=dim) for w in WORDS})


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_pre_attention_rows_equal_the_real_norm_and_projections(tiny_model_dir_factory, family):
    loaded = _loaded(tiny_model_dir_factory, family)
    model, an = loaded.model, loaded.anatomy
    x = _inputs(loaded).emb
    if any(isinstance(m, nn.LayerNorm) for m in model.modules()):
        x = x - x.mean(-1, keepdim=True)
    group = an.n_heads // an.n_kv_heads
    for layer in range(an.n_layers):
        ref = anatomy_class(family).reference_qk(model, layer, x)  # the layer's own modules
        rows = layer_word_embeddings(an, layer, x, "pre_attention")
        wq, wk = an.query_key_weights(layer, fold_qk_norm=False)
        hq = torch.einsum("vd,hde->vhe", rows, wq)
        hk = torch.einsum("vd,hde->vhe", rows, wk)
        torch.testing.assert_close(hq, ref.q_pre, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(hk, ref.k_pre.repeat_interleave(group, dim=1), rtol=1e-4, atol=1e-6)
        # "none" leaves the rows alone: the paper's reading
        assert layer_word_embeddings(an, layer, x, "none") is x
        assert layer_qk_scales(an, layer, x, "pre_attention") == (None, None)
        # "all": also the q/k norms' 1/RMS -> exactly the queries/keys the attention kernel gets
        q_scale, k_scale = layer_qk_scales(an, layer, x, "all")
        wq, wk = an.query_key_weights(layer)
        hq = torch.einsum("vd,hde->vhe", layer_word_embeddings(an, layer, x, "all"), wq)
        hk = torch.einsum("vd,hde->vhe", layer_word_embeddings(an, layer, x, "all"), wk)
        if q_scale is not None:
            assert q_scale.shape == k_scale.shape == (x.shape[0], an.n_heads)
            hq, hk = hq / q_scale[..., None].float(), hk / k_scale[..., None].float()
        torch.testing.assert_close(hq, ref.q, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(hk, ref.k.repeat_interleave(group, dim=1), rtol=1e-4, atol=1e-6)


def _module_reference(loaded, inputs, layer, top_k):
    """explain_heads_reference on the real norm module's output and the raw projection weights."""
    model, an = loaded.model, loaded.anatomy
    block = model.model.layers[layer]
    attn = block.self_attn
    d, hd = an.d_model, an.head_dim
    with torch.no_grad():
        normed = block.input_layernorm(inputs.emb)  # (e / rms(e)) * g, by the module itself
        wq = attn.q_proj.weight.T.reshape(d, -1, hd).permute(1, 0, 2).float()
        wk = attn.k_proj.weight.T.reshape(d, -1, hd).permute(1, 0, 2).float()
        wk = wk.repeat_interleave(an.n_heads // wk.shape[0], dim=0)
    return explain_heads_reference(
        wq.contiguous(), wk.contiguous(), normed.float(), inputs.vectors.vectors, inputs.theta, top_k=top_k, layer=layer
    )


def _run_tiny(tiny_model_dir_factory, family, out, rms_factor):
    """``(loaded, inputs, heads result)`` of a top-4 heads run of the family's tiny model."""
    loaded = _loaded(tiny_model_dir_factory, family)
    inputs = _inputs(loaded)
    vecs = {w: inputs.vectors.vectors[i] for i, w in enumerate(inputs.words)}
    return (
        loaded,
        inputs,
        load_heads(run_heads(loaded, out, vocab=inputs.vocabulary, vectors=vecs, top_k=4, rms_factor=rms_factor).path),
    )


def _assert_layer_equals_reference(t, ref, words):
    """One layer of a heads table equals a reference: ranks, dimensions, energies, word pairs."""
    assert list(t["rank"]) == list(ref.rank) and list(t["dim"]) == list(ref.dim)
    np.testing.assert_allclose(t["energy"].to_numpy(), ref.energy, rtol=1e-4)
    for row, (_, x) in enumerate(t.iterrows()):
        exp = ref.pairs(row)
        assert list(x["query_word"]) == [words[q] for q, _, _ in exp]
        assert list(x["key_word"]) == [words[k] for _, k, _ in exp]


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_run_with_pre_attention_matches_the_module_reference(tiny_model_dir_factory, tmp_path, family):
    loaded, inputs, r = _run_tiny(tiny_model_dir_factory, family, tmp_path / "p", "pre_attention")
    vecs = {w: inputs.vectors.vectors[i] for i, w in enumerate(inputs.words)}
    base = load_heads(run_heads(loaded, tmp_path / "n", vocab=inputs.vocabulary, vectors=vecs, top_k=4).path)
    for layer in range(loaded.anatomy.n_layers):
        t = r.table[r.table["layer"] == layer]
        _assert_layer_equals_reference(t, _module_reference(loaded, inputs, layer, 4), inputs.words)
        # the factor changes the values: energies differ from the paper's reading
        tb = base.table[base.table["layer"] == layer]
        assert not np.allclose(np.sort(tb["energy"].to_numpy()), np.sort(t["energy"].to_numpy()), rtol=1e-3)


def test_rms_factor_in_the_identity(tiny_llama, tmp_path):
    vocab = Vocabulary(WORDS, np.arange(len(WORDS), 0, -1, dtype=float), "t")
    rng = np.random.default_rng(0)
    vecs = {w: rng.normal(size=8) for w in WORDS}
    out = tmp_path / "run"
    run_heads(tiny_llama, out, vocab=vocab, vectors=vecs, top_k=3, layers="0", rms_factor="pre_attention")
    m = json.loads((out / "manifest.json").read_text())
    assert m["identity"]["rms_factor"] == "pre_attention"
    with pytest.raises(RunMismatchError, match="rms_factor"):
        run_heads(tiny_llama, out, vocab=vocab, vectors=vecs, top_k=3)
    # a run made before the option existed (no rms_factor in its identity) resumes as "none"
    old = tmp_path / "old"
    run_heads(tiny_llama, old, vocab=vocab, vectors=vecs, top_k=3, layers="0")
    m = json.loads((old / "manifest.json").read_text())
    assert m["identity"]["rms_factor"] == "none"
    del m["identity"]["rms_factor"]
    (old / "manifest.json").write_text(json.dumps(m))
    s = run_heads(tiny_llama, old, vocab=vocab, vectors=vecs, top_k=3)
    assert s.layers_skipped == [0] and s.layers_done == [1]
    with pytest.raises(RunMismatchError, match="rms_factor"):
        run_heads(tiny_llama, old, vocab=vocab, vectors=vecs, top_k=3, rms_factor="pre_attention")
    with pytest.raises(OptionError, match="rms_factor"):
        run_heads(tiny_llama, tmp_path / "bad", vocab=vocab, vectors=vecs, rms_factor="post")


def test_cli_rms_factor(cli, tiny_llama_dir, vocab_file, tmp_path):
    out = tmp_path / "h"
    r = cli(
        "heads",
        "--model",
        tiny_llama_dir,
        "--out",
        out,
        "--vocab",
        vocab_file,
        "--top-k",
        5,
        "--layers",
        "0",
        "--rms-factor",
        "pre_attention",
    )
    assert r.code == 0, r.err
    assert json.loads((out / "manifest.json").read_text())["identity"]["rms_factor"] == "pre_attention"
    r = cli("heads", "--model", tiny_llama_dir, "--out", out, "--vocab", vocab_file, "--top-k", 5, "--layers", "0")
    H.assert_one_line_error(r, "other settings", "rms_factor")
    r = cli("heads", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab_file, "--rms-factor", "post")
    assert r.code == 2 and "--rms-factor" in (r.err + r.out)
    assert not (tmp_path / "x").exists()


def test_compare_heads_refuses_different_rms_factor(tiny_llama, tmp_path):
    from tuneshift.errors import RunMismatchError
    from tuneshift.stats.heads_compare import compare_heads

    vocab = Vocabulary(WORDS, np.arange(len(WORDS), 0, -1, dtype=float), "t")
    rng = np.random.default_rng(0)
    vecs = {w: rng.normal(size=8) for w in WORDS}
    run_heads(tiny_llama, tmp_path / "a", vocab=vocab, vectors=vecs, top_k=3)
    run_heads(tiny_llama, tmp_path / "b", vocab=vocab, vectors=vecs, top_k=3, rms_factor="pre_attention")
    with pytest.raises(RunMismatchError, match=r"different --rms-factor \(none vs pre_attention\)"):
        compare_heads(tmp_path / "a", tmp_path / "b")
    run_heads(tiny_llama, tmp_path / "c", vocab=vocab, vectors=vecs, top_k=3, rms_factor="pre_attention")
    c = compare_heads(tmp_path / "b", tmp_path / "c")  # the same setting: compared, and recorded
    assert (c.base.rms_factor, c.tuned.rms_factor) == ("pre_attention", "pre_attention")
    assert c.to_dict()["tuned"]["rms_factor"] == "pre_attention"
    assert type(c).from_dict(c.to_dict()).tuned.rms_factor == "pre_attention"


def _one_hot_reference(loaded, inputs, layer, top_k):
    """explain_heads_reference on the queries/keys the layer's own modules compute from the word
    vectors (oracle: pre-attention norm, projections, q/k norms), fed as the weights of a one-hot
    embedding: ``I @ Wq[h] = Q[:, h]``."""
    an = loaded.anatomy
    ref = anatomy_class(an.family).reference_qk(loaded.model, layer, inputs.emb)
    q = ref.q.permute(1, 0, 2).float().contiguous()  # [heads, V, dh]
    k = ref.k.repeat_interleave(an.n_heads // an.n_kv_heads, dim=1).permute(1, 0, 2).float().contiguous()
    eye = torch.eye(len(inputs.words))
    return explain_heads_reference(q, k, eye, inputs.vectors.vectors, inputs.theta, top_k=top_k, layer=layer)


@pytest.mark.parametrize("family", ["gemma3", "olmo2", "llama"])
def test_run_with_all_matches_the_real_modules(tiny_model_dir_factory, tmp_path, family):
    loaded, inputs, r = _run_tiny(tiny_model_dir_factory, family, tmp_path / "a", "all")
    assert r.manifest["identity"]["rms_factor"] == "all"
    for layer in range(loaded.anatomy.n_layers):
        t = r.table[r.table["layer"] == layer]
        _assert_layer_equals_reference(t, _one_hot_reference(loaded, inputs, layer, 4), inputs.words)


def test_scaled_vectorised_equals_reference():
    g = torch.Generator().manual_seed(5)
    V, d, H, dh = 90, 10, 4, 6
    emb = torch.randn(V, d, generator=g)
    wq = torch.randn(H, d, dh, generator=g)
    wk = torch.randn(H, d, dh, generator=g)[[0, 0, 1, 1]].contiguous()  # GQA: shared key heads
    rng = np.random.default_rng(5)
    u = rng.normal(size=(V, 6))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    from tuneshift.data.word_vectors import cosine_thresholds

    theta = cosine_thresholds(u, np.ones(V, dtype=bool), n_reference=40)
    qs = torch.rand(V, H, generator=g, dtype=torch.float64) + 0.2
    ks = (torch.rand(V, 2, generator=g, dtype=torch.float64) + 0.2)[:, [0, 0, 1, 1]]
    ks[:, 1] *= 2  # head 1 shares head 0's Wk but not its key scale: must not reuse its key side
    for kw in ({}, {"head_batch": 1}, {"heads": [3, 1]}):
        a = explain_heads(wq, wk, emb, u, theta, top_k=9, q_scale=qs, k_scale=ks, **kw)
        b = explain_heads_reference(wq, wk, emb, u, theta, top_k=9, q_scale=qs, k_scale=ks, heads=kw.get("heads"))
        for f in ("head", "dim", "rank", "offsets", "query_idx", "key_idx", "cos"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
        np.testing.assert_allclose(a.energy, b.energy, rtol=1e-11)
    # the scales are the divisors of Hq/Hk: scaling the embedding rows by 1/s is the same (one head)
    s1 = qs[:, 0]
    a = explain_heads(wq[:1], wq[:1], emb, u, theta, top_k=9, q_scale=qs[:, :1], k_scale=qs[:, :1])
    b = explain_heads(wq[:1], wq[:1], (emb.double() / s1[:, None]).float(), u, theta, top_k=9)
    np.testing.assert_allclose(a.energy, b.energy, rtol=1e-5)
    with pytest.raises(ValueError, match="q_scale"):
        explain_heads(wq, wk, emb, u, theta, q_scale=qs[:, :2])
    with pytest.raises(ValueError, match="positive"):
        explain_heads(wq, wk, emb, u, theta, k_scale=-ks)
