"""Feed-forward concepts (method C): PCA and word scores against independent computations,
conventions, the run directory (resume, mismatch) and bad inputs, on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import tuneshift
from helpers_tiny import VOCAB_WORDS as WORDS  # the `vocab_file` fixture (these words) is in conftest.py
from tuneshift.errors import InputFileError, RunMismatchError, TuneshiftError
from tuneshift.methods.concepts import explain_layer, normalise_rows, principal_components, word_scores
from tuneshift.models.anatomy import SUPPORTED_FAMILIES, anatomy_class
from tuneshift.pipelines.concepts_run import prepare_words, run_concepts
from tuneshift.storage.concepts import ConceptsResult, load_concepts

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`


def _reference_pca(w: np.ndarray):
    """Independent: eigen-decomposition of the scatter matrix of the centred rows."""
    wc = w - w.mean(axis=0)
    evals, evecs = np.linalg.eigh(wc.T @ wc)
    order = np.argsort(evals)[::-1]
    evals = np.clip(evals[order], 0, None)
    return evecs[:, order].T, evals / evals.sum()


def test_pca_matches_independent_computation(tiny_llama):
    w = tiny_llama.anatomy.ffn_down(1).double().numpy()  # [d_ffn=64, d_model=32]
    assert w.shape == (tiny_llama.anatomy.d_ffn, tiny_llama.anatomy.d_model)
    pca = principal_components(w, rank=10)
    ref_v, ref_evr = _reference_pca(w)
    np.testing.assert_allclose(pca.explained_variance_ratio, ref_evr[:10], rtol=1e-9, atol=1e-12)
    # also against numpy's SVD of the centred matrix
    s = np.linalg.svd(w - w.mean(0), compute_uv=False)
    np.testing.assert_allclose(pca.singular_values, s[:10], rtol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio, s[:10] ** 2 / (s**2).sum(), rtol=1e-10)
    # same directions up to sign
    np.testing.assert_allclose(np.abs(np.sum(pca.components * ref_v[:10], axis=1)), 1.0, atol=1e-8)
    # full rank: ratios sum to 1
    full = principal_components(w, rank=32)
    assert full.explained_variance_ratio.sum() == pytest.approx(1.0)
    # torch input gives the same result
    pt = principal_components(tiny_llama.anatomy.ffn_down(1), rank=10)
    np.testing.assert_allclose(pt.components, pca.components, atol=1e-6)


def test_conventions_order_sign_orthonormal():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(50, 8)) @ np.diag([5, 4, 3, 2, 1, 0.5, 0.2, 0.1])
    pca = principal_components(w, rank=8)
    assert np.all(np.diff(pca.singular_values) <= 0)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(8), atol=1e-10)
    for v in pca.components:
        assert v[np.argmax(np.abs(v))] > 0
    # flipping the matrix's sign does not change the components (the convention fixes it)
    np.testing.assert_allclose(principal_components(-w, rank=8).components, pca.components, atol=1e-10)
    # centring: adding a constant row offset changes nothing
    np.testing.assert_allclose(principal_components(w + 3.0, rank=8).components, pca.components, atol=1e-8)
    # axis-aligned data: components are the axes, largest variance first
    a = np.zeros((4, 3))
    a[:, 0] = [-3, 3, -3, 3]
    a[:, 2] = [1, 1, -1, -1]
    p = principal_components(a, rank=2)
    np.testing.assert_allclose(p.components, [[1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(p.explained_variance_ratio, [0.9, 0.1])


def test_word_scores_against_explicit_loop(tiny_llama):
    cw = prepare_words(tiny_llama, vocab=_vocab())
    # independent word vectors: tokenise by hand, mean LM-head rows, normalise
    head = tiny_llama.model.get_output_embeddings().weight.detach().double().numpy()
    tok = tiny_llama.tokenizer
    for i, word in enumerate(cw.words):
        ids = [
            t
            for t in tok(" " + word, add_special_tokens=False)["input_ids"]
            if tok.convert_ids_to_tokens(t) not in ("Ġ", "▁", " ")
        ]
        e = head[ids].mean(axis=0)
        e = e / np.sqrt(sum(x * x for x in e))
        np.testing.assert_allclose(cw.vectors[i], e, atol=1e-6)
    lc = explain_layer(tiny_llama.anatomy.ffn_down(0), cw.vectors, layer=0, rank=4, top_k=5)
    for c in range(4):
        v = lc.pca.components[c]
        scores = []
        for j in range(len(cw.words)):
            dot = 0.0
            for a, b in zip(v, cw.vectors[j]):
                dot += a * b
            scores.append((abs(dot), j, dot))
        scores.sort(key=lambda t: (-t[0], t[1]))
        assert lc.word_index[c].tolist() == [j for _, j, _ in scores[:5]]
        np.testing.assert_allclose(lc.score[c], [s for s, _, _ in scores[:5]], rtol=1e-10)
        np.testing.assert_allclose(lc.projection[c], [d for _, _, d in scores[:5]], rtol=1e-10)


def _vocab():
    from tuneshift.data.vocabulary import Vocabulary

    return Vocabulary(list(WORDS), np.full(len(WORDS), np.nan), "test")


def test_word_scores_ties_absolute_and_caps():
    comps = np.array([[1.0, 0.0], [0.0, 1.0]])
    words = normalise_rows(np.array([[1.0, 0.0], [-2.0, 0.0], [0.0, 0.0], [1.0, 1.0]]))
    idx, score, proj = word_scores(comps, words, top_k=10)
    assert idx.shape == (2, 4)  # capped at n_words
    assert idx[0].tolist() == [0, 1, 3, 2]  # |1| == |-1|: ties by vocabulary order
    np.testing.assert_allclose(proj[0, :2], [1.0, -1.0])
    np.testing.assert_allclose(score[0, 2], np.sqrt(0.5))
    assert np.all(normalise_rows(np.zeros((1, 3))) == 0)


def test_bad_inputs():
    w = np.random.default_rng(1).normal(size=(6, 4))
    for bad in (0, -1, 5, 2.5, True):
        with pytest.raises(TuneshiftError, match="rank"):
            principal_components(w, rank=bad)
    with pytest.raises(TuneshiftError, match="d_ffn, d_model"):
        principal_components(np.ones(4))
    with pytest.raises(TuneshiftError, match="NaN"):
        principal_components(np.full((3, 3), np.nan))
    with pytest.raises(TuneshiftError, match="top words"):
        word_scores(np.eye(2), np.eye(2), top_k=0)
    with pytest.raises(TuneshiftError, match="d_model"):
        word_scores(np.eye(2), np.eye(3))
    with pytest.raises(TuneshiftError, match="no word"):
        word_scores(np.eye(2), np.zeros((0, 2)))


def test_run_resume_mismatch_and_load(tiny_llama, vocab_file, tmp_path):
    out = tmp_path / "c"
    calls = []
    s = run_concepts(
        tiny_llama,
        out,
        vocab=vocab_file,
        rank=4,
        top_k=5,
        layers="0",
        on_start=calls.append,
        on_layer_done=calls.append,
    )
    assert s.layers_done == [0] and calls == [1, 0] and s.rank == 4 and s.n_words == len(WORDS)
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "concepts" and m["status"] == "partial" and m["identity"]["options"]["rank"] == 4
    s = run_concepts(tiny_llama, out, vocab=vocab_file, rank=4, top_k=5)
    assert s.layers_done == [1] and s.layers_skipped == [0]
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    res = load_concepts(out)
    assert res.layers == [0, 1] and len(res.table) == 8 and res.d_model == 32
    assert res.table["rank"].tolist() == [0, 1, 2, 3] * 2
    # stored values equal a fresh computation
    cw = prepare_words(tiny_llama, vocab_file)
    lc = explain_layer(tiny_llama.anatomy.ffn_down(1), cw.vectors, layer=1, rank=4, top_k=5)
    np.testing.assert_allclose(res.components(1), lc.pca.components, atol=1e-6)
    assert [w for w, _ in res.words(1, 0)] == [cw.words[i] for i in lc.word_index[0]]
    row = res.table.iloc[4]
    assert row.explained_variance_ratio == pytest.approx(lc.pca.explained_variance_ratio[0])
    assert all(a >= b for a, b in zip(row.scores, row.scores[1:]))
    with pytest.raises(KeyError):
        res.words(5, 0)
    # a complete copy: save to a new directory, load, the same tables (and annotations when present)
    assert ConceptsResult.load(out).to_dict() == res.to_dict()
    d = res.to_dict()
    assert d["kind"] == "concepts" and d["manifest"]["identity"]["options"]["rank"] == 4
    assert d["summary"] == {"layers": [0, 1], "n_components": 8, "d_model": 32, "annotated": False}
    (out / "annotations.json").write_text('{"backend": "fake"}')
    written = res.save(tmp_path / "copy")
    assert sorted(written) == [
        "annotations.json",
        "layers/layer-00000.parquet",
        "layers/layer-00001.parquet",
        "manifest.json",
        "words.parquet",
    ]
    assert (tmp_path / "copy" / "words.parquet").read_bytes() == (out / "words.parquet").read_bytes()
    back = ConceptsResult.load(tmp_path / "copy")
    assert back.manifest == res.manifest and back.layers == res.layers
    pd.testing.assert_frame_equal(back.table.drop(columns="vector"), res.table.drop(columns="vector"))
    for a, b in zip(back.table["vector"], res.table["vector"]):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    np.testing.assert_array_equal(back.components(1), res.components(1))
    # other settings are refused
    with pytest.raises(RunMismatchError, match="rank"):
        run_concepts(tiny_llama, out, vocab=vocab_file, rank=3, top_k=5)
    # default rank = min(300, d_model)
    s = run_concepts(tiny_llama, tmp_path / "d", vocab=vocab_file, layers="-1")
    assert s.rank == 32 and s.layers_done == [1]


def test_run_bad_inputs(tiny_llama, vocab_file, tmp_path):
    with pytest.raises(TuneshiftError, match="rank"):
        run_concepts(tiny_llama, tmp_path / "a", vocab=vocab_file, rank=33)
    with pytest.raises(TuneshiftError, match="top_words"):
        run_concepts(tiny_llama, tmp_path / "a", vocab=vocab_file, top_k=0)
    with pytest.raises(TuneshiftError, match="layers"):
        run_concepts(tiny_llama, tmp_path / "a", vocab=vocab_file, layers="7")
    with pytest.raises(InputFileError, match="does not exist"):
        run_concepts(tiny_llama, tmp_path / "a", vocab=tmp_path / "missing.txt")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputFileError, match="is a file"):
        run_concepts(tiny_llama, f, vocab=vocab_file)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(InputFileError, match="not empty"):
        run_concepts(tiny_llama, tmp_path / "junk", vocab=vocab_file)
    with pytest.raises(InputFileError, match="no manifest"):
        load_concepts(tmp_path / "junk")
    with pytest.raises(InputFileError, match="does not exist"):
        load_concepts(tmp_path / "nothing")


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_run_on_every_family(family, tiny_model_dir_factory, vocab_file, tmp_path):
    """run_concepts on each supported family's tiny model (a newly registered family included):
    the stored components are the PCA of the down-projection rows as the layer's own module
    computes them (the family's test oracle), and the top words rank the LM-head word vectors."""
    loaded = tuneshift.load_model(
        str(tiny_model_dir_factory(family, "sp" if family.startswith("gemma") else "bpe")), progress=False
    )
    an = loaded.anatomy
    last = an.n_layers - 1
    s = run_concepts(loaded, tmp_path / "c", vocab=vocab_file, rank=4, top_k=5, layers="-1")
    assert s.layers_done == [last]
    res = load_concepts(tmp_path / "c")
    down = anatomy_class(family).reference_ffn_down(loaded.model, last)
    with torch.no_grad():
        eye = torch.eye(an.d_ffn)
        w = (down(eye) - down(torch.zeros_like(eye))).double().numpy()  # row i: what neuron i writes
    assert w.shape == (an.d_ffn, an.d_model)
    ref_v, ref_evr = _reference_pca(w)
    np.testing.assert_allclose(np.abs(np.sum(res.components(last) * ref_v[:4], axis=1)), 1.0, atol=1e-5)
    table = res.table[res.table["layer"] == last]
    np.testing.assert_allclose(table["explained_variance_ratio"].to_numpy(), ref_evr[:4], rtol=1e-5, atol=1e-8)
    cw = prepare_words(loaded, vocab_file)
    for c in range(4):
        scores = np.abs(cw.vectors @ ref_v[c])
        top = sorted(range(len(cw.words)), key=lambda j: (-scores[j], j))[:5]
        got = res.words(last, c)
        assert [word for word, _ in got] == [cw.words[j] for j in top]
        np.testing.assert_allclose([score for _, score in got], scores[top], rtol=1e-5)


# The families that normalise the MLP output before the residual add, with the norm's name and
# gain convention (transformers 5.25 forward code: Gemma2/Gemma3RMSNorm ``(1 + w)``,
# Olmo2RMSNorm ``w``) -- written here from the transformers source, not read from the anatomy.
POST_FFN = {
    "gemma2": ("post_feedforward_layernorm", 1.0),
    "gemma3": ("post_feedforward_layernorm", 1.0),
    "olmo2": ("post_feedforward_layernorm", 0.0),
}


@pytest.mark.parametrize("family", sorted(POST_FFN))
@pytest.mark.parametrize("final_norm", ["fold", "none"])
def test_post_ffn_gain_and_final_norm_folded(family, final_norm, tiny_model_dir_factory, vocab_file, tmp_path):
    """On a tiny model whose post-FFN and final norm gains are random (far from 1), the stored
    components and explained variance are the PCA of ``W_down * g_post`` built from the raw
    state dict (numpy eigen-decomposition), and the top words rank ``|v . e_w|`` with ``e_w``
    the normalised mean LM-head row times ``g_final`` (``final_norm="fold"``) or not."""
    loaded = tuneshift.load_model(
        str(tiny_model_dir_factory(family, "sp" if family.startswith("gemma") else "bpe")), progress=False
    )
    name, offset = POST_FFN[family]
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for pname, p in loaded.model.named_parameters():
            if name in pname or pname == "model.norm.weight":
                p.copy_(torch.rand(p.shape, generator=g) * 4.0 + 0.1 - offset)  # gains in [0.1, 4.1]
    sd = {k: v.detach().double().numpy() for k, v in loaded.model.state_dict().items()}
    last = loaded.anatomy.n_layers - 1
    run_concepts(loaded, tmp_path / "c", vocab=vocab_file, rank=4, top_k=5, layers="-1", final_norm=final_norm)
    res = load_concepts(tmp_path / "c")
    assert res.manifest["identity"]["options"]["final_norm"] == final_norm
    assert res.manifest["identity"]["method"]["version"] == 2
    w = sd[f"model.layers.{last}.mlp.down_proj.weight"].T * (offset + sd[f"model.layers.{last}.{name}.weight"])[None, :]
    ref_v, ref_evr = _reference_pca(w)
    np.testing.assert_allclose(np.abs(np.sum(res.components(last) * ref_v[:4], axis=1)), 1.0, atol=1e-5)
    table = res.table[res.table["layer"] == last]
    np.testing.assert_allclose(table["explained_variance_ratio"].to_numpy(), ref_evr[:4], rtol=1e-5, atol=1e-8)
    head = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])
    cw = prepare_words(loaded, vocab_file, final_norm=final_norm)
    from tuneshift.data.vocabulary import load_vocabulary, tokenize_vocabulary

    tv = tokenize_vocabulary(load_vocabulary(vocab_file), loaded.tokenizer)
    gain = offset + sd["model.norm.weight"] if final_norm == "fold" else np.ones(head.shape[1])
    e = np.stack([head[ids].mean(axis=0) * gain for ids in tv.token_ids])
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    np.testing.assert_allclose(cw.vectors, e, atol=1e-6)
    for c in range(4):
        scores = np.abs(e @ ref_v[c])
        top = sorted(range(len(tv.words)), key=lambda j: (-scores[j], j))[:5]
        assert [word for word, _ in res.words(last, c)] == [tv.words[j] for j in top]


def test_final_norm_option_in_identity(tiny_llama, vocab_file, tmp_path):
    """final_norm is part of the run identity; an unknown value and a version-1 run are refused."""
    out = tmp_path / "c"
    run_concepts(tiny_llama, out, vocab=vocab_file, rank=3, top_k=4, layers="0")
    with pytest.raises(RunMismatchError, match="final_norm"):
        run_concepts(tiny_llama, out, vocab=vocab_file, rank=3, top_k=4, layers="1", final_norm="none")
    with pytest.raises(TuneshiftError, match="final_norm"):
        run_concepts(tiny_llama, tmp_path / "x", vocab=vocab_file, final_norm="logit_lens")
    # a run made by method version 1 (FFN rows not in residual coordinates) is not resumed
    mf = out / "manifest.json"
    m = json.loads(mf.read_text())
    m["identity"]["method"]["version"] = 1
    del m["identity"]["options"]["final_norm"], m["identity"]["options"]["ffn_rows"]
    mf.write_text(json.dumps(m))
    with pytest.raises(RunMismatchError, match="version"):
        run_concepts(tiny_llama, out, vocab=vocab_file, rank=3, top_k=4, layers="1")
