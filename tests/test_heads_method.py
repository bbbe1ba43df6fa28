"""Method B (self-attention heads as word pairs): hand-set model, constraints, vectorised == reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tuneshift
from tuneshift.data.vocabulary import Vocabulary
from tuneshift.data.word_vectors import cosine_thresholds
from tuneshift.methods.heads import explain_heads, explain_heads_reference
from tuneshift.pipelines.heads_run import prepare_inputs, run_heads
from tuneshift.storage.heads import load_heads

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

FIELDS = ("head", "dim", "rank", "offsets", "query_idx", "key_idx", "cos")


def _same(a, b):
    # Pairs, ranks and cosines exactly: both implementations round float64 products to float32
    # (a float64 sum of d_model terms is off by ~d_model * 1.1e-16 relative, far below half a
    # float32 ulp, 6e-8), so their float32 H values are bit-identical whatever the BLAS order.
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    # Energies are float64 sums of n_words float32 squares in two orders (a vectorised norm vs a
    # Python loop): relative error <= n_words * 1.1e-16 ~ 1e-13 for the test sizes; 1e-11 bounds it.
    np.testing.assert_allclose(a.energy, b.energy, rtol=1e-11)


def _random_case(seed=0, V=120, d=12, H=3, dh=6, k=20, missing_every=11):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(V, d, generator=g)
    wq, wk = torch.randn(H, d, dh, generator=g), torch.randn(H, d, dh, generator=g)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, k))  # 10 clusters of similar words, so that the constraint passes sometimes
    u = centres[rng.integers(0, 10, size=V)] + 0.3 * rng.normal(size=(V, k))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    present = np.ones(V, dtype=bool)
    present[::missing_every] = False
    u[~present] = 0
    return wq, wk, emb, u, present, cosine_thresholds(u, present, n_reference=50)


@pytest.mark.parametrize("seed,top_k,head_batch,pair_chunk", [(0, 10, None, 256), (1, 25, 2, 7), (2, 500, 1, 3)])
def test_vectorised_equals_reference(seed, top_k, head_batch, pair_chunk):
    wq, wk, emb, u, present, theta = _random_case(seed)
    a = explain_heads(wq, wk, emb, u, theta, top_k=top_k, layer=3, head_batch=head_batch, pair_chunk=pair_chunk)
    b = explain_heads_reference(wq, wk, emb, u, theta, top_k=top_k, layer=3)
    assert a.n_pairs > 0
    _same(a, b)
    assert a.layer == b.layer == 3


def test_vectorised_equals_reference_with_shared_key_heads():
    wq, wk, emb, u, present, theta = _random_case(4, H=4)
    wk = wk[[0, 0, 1, 1]].contiguous()  # GQA: key heads repeated
    for hb in (1, 3):
        _same(
            explain_heads(wq, wk, emb, u, theta, top_k=12, head_batch=hb),
            explain_heads_reference(wq, wk, emb, u, theta, top_k=12),
        )
    sub = explain_heads(wq, wk, emb, u, theta, top_k=12, heads=[3, 1])
    _same(sub, explain_heads_reference(wq, wk, emb, u, theta, top_k=12, heads=[3, 1]))


def test_vectorised_equals_reference_with_many_ties():
    wq, wk, emb, u, present, theta = _random_case(3)
    g = torch.Generator().manual_seed(3)
    emb = torch.randint(-1, 2, emb.shape, generator=g).float()  # integer data: many equal |H| values
    wq = torch.randint(-1, 2, wq.shape, generator=g).float()
    wk = torch.randint(-1, 2, wk.shape, generator=g).float()
    for k in (1, 7, 30):
        a = explain_heads(wq, wk, emb, u, theta, top_k=k)
        _same(a, explain_heads_reference(wq, wk, emb, u, theta, top_k=k))


def _with_threads(n, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def test_same_pairs_with_one_and_two_threads():
    # big enough that BLAS splits the products between threads; kept pairs, ranks, cosines and
    # energies must not depend on it (float64 products; deterministic tie rules)
    wq, wk, emb, u, present, theta = _random_case(6, V=3000, d=256, H=2, dh=64, missing_every=13)
    run = lambda: explain_heads(wq, wk, emb, u, theta, top_k=40, head_batch=1)  # noqa: E731
    one, two = _with_threads(1, run), _with_threads(2, run)
    assert one.n_pairs > 100
    for f in FIELDS + ("energy",):
        np.testing.assert_array_equal(getattr(one, f), getattr(two, f), err_msg=f)


def test_constraints_hold_for_every_kept_pair():
    wq, wk, emb, u, present, theta = _random_case(5)
    K = 15
    lp = explain_heads(wq, wk, emb, u, theta, top_k=K)
    # H as the method defines it: float64 products rounded to float32
    hq_all = torch.einsum("vd,hde->hve", emb.double(), wq.double()).float().numpy()
    hk_all = torch.einsum("vd,hde->hve", emb.double(), wk.double()).float().numpy()
    for r in range(lp.head.shape[0]):
        h, d = lp.head[r], lp.dim[r]
        hq, hk = hq_all[h, :, d], hk_all[h, :, d]
        top_q = set(np.argsort(-np.abs(hq), kind="stable")[:K].tolist())
        top_k = set(np.argsort(-np.abs(hk), kind="stable")[:K].tolist())
        pairs = lp.pairs(r)
        cos_seq = [c for _, _, c in pairs]
        assert cos_seq == sorted(cos_seq, reverse=True)
        for q, k, c in pairs:
            assert q != k  # distinct words
            assert q in top_q and k in top_k
            assert hq[q] * hk[k] > 0  # raises the logit
            assert present[q] and present[k]  # a missing word never passes
            assert c > theta[q] and c > theta[k]
            assert c == pytest.approx(float(u[q] @ u[k]), abs=1e-6)
        # and nothing that satisfies all constraints is missing
        expected = {
            (q, k)
            for q in top_q
            for k in top_k
            if q != k
            and hq[q] * hk[k] > 0
            and np.float32(u[q] @ u[k]) > theta[q]
            and np.float32(u[q] @ u[k]) > theta[k]
        }
        assert {(q, k) for q, k, _ in pairs} == expected
    # ranks: energy descending within each head
    for h in np.unique(lp.head):
        m = lp.head == h
        assert list(lp.rank[m]) == list(range(m.sum()))
        assert np.all(np.diff(lp.energy[m]) <= 1e-9 * lp.energy[m].max())


def test_thresholds_mean_plus_196_std():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(40, 5))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    present = np.ones(40, dtype=bool)
    present[3] = False
    u[3] = 0
    th = cosine_thresholds(u, present, n_reference=10)
    ref = u[np.flatnonzero(present)[:10]]
    c = u[7] @ ref.T
    assert th[7] == pytest.approx(c.mean() + 1.96 * c.std(), rel=1e-6)
    assert np.isinf(th[3])


def test_bad_arguments():
    wq, wk, emb, u, present, theta = _random_case(0)
    with pytest.raises(ValueError):
        explain_heads(wq, wk, emb, u, theta, top_k=0)
    with pytest.raises(ValueError):
        explain_heads(wq, wk[:, :5], emb, u, theta)
    with pytest.raises(ValueError):
        explain_heads(wq, wk, emb[:10], u, theta)


# ------------------------------------------------------------------ hand-set tiny model


def _single_token_words(tok, n):
    from helpers_tiny import CORPUS

    seen, out = set(), []
    for line in CORPUS:
        for w in line.replace("\n", " ").split():
            w = w.strip(".,:?!").lower()
            if not w.isalpha() or w in seen:
                continue
            seen.add(w)
            ids = tok(" " + w, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                out.append((w, ids[0]))
    assert len(out) >= n, out
    return out[:n]


@pytest.fixture(scope="module")
def hand_set(tiny_llama_dir):
    """Tiny llama (GQA: 4 query heads, 2 KV heads, d_model 32, head_dim 8) with hand-set weights.

    Six key words get one-hot embeddings e_0..e_5; every other token embeds to 0. Layer 0, head 0:
    dim 0: query values w0 = 3, w1 = 2; key values w2 = 3, w3 = -2;
    dim 1: query values w4 = 2, w5 = 2; key values w4 = 2, w5 = 2; all else 0.
    Word vectors (custom, 64-d): w2 = w0 + small noise, w3 = w1 + noise (but w3 has the wrong
    sign), w5 = w4 + noise; 40 background words random.
    Expected with K = 2: dim 0 (energy 26, rank 0) -> [(w0, w2)]; dim 1 (energy 16, rank 1) ->
    [(w4, w5), (w5, w4)] (equal cos: query-word order), never (w4, w4).
    """
    loaded = tuneshift.load_model(str(tiny_llama_dir), progress=False)
    tok, model = loaded.tokenizer, loaded.model
    key = _single_token_words(tok, 6)
    words = [w for w, _ in key]
    ids = [i for _, i in key]
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb.zero_()
        for j, i in enumerate(ids):
            emb[i, j] = 1.0
        for layer in model.model.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.self_attn.q_proj.weight.zero_()
            layer.self_attn.k_proj.weight.zero_()
        attn = model.model.layers[0].self_attn
        # q_proj.weight is [n_heads * head_dim, d_model]; head 0 dim 0 is row 0, dim 1 row 1
        attn.q_proj.weight[0, 0], attn.q_proj.weight[0, 1] = 3.0, 2.0
        attn.k_proj.weight[0, 2], attn.k_proj.weight[0, 3] = 3.0, -2.0
        attn.q_proj.weight[1, 4], attn.q_proj.weight[1, 5] = 2.0, 2.0
        attn.k_proj.weight[1, 4], attn.k_proj.weight[1, 5] = 2.0, 2.0
    rng = np.random.default_rng(0)
    vecs = {w: rng.normal(size=64) for w in words}
    vecs[words[2]] = vecs[words[0]] + 0.1 * rng.normal(size=64)
    vecs[words[3]] = vecs[words[1]] + 0.1 * rng.normal(size=64)
    vecs[words[5]] = vecs[words[4]] + 0.1 * rng.normal(size=64)
    background = [f"zq{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]
    for b in background:
        vecs[b] = rng.normal(size=64)
    vocab = Vocabulary(words + background, np.arange(46, 0, -1, dtype=float), "test")
    return loaded, words, vocab, vecs


def test_hand_set_model_gives_the_expected_pairs(hand_set, tmp_path):
    loaded, w, vocab, vecs = hand_set
    s = run_heads(loaded, tmp_path / "h", vocab=vocab, vectors=vecs, top_k=2, layers="0")
    assert s.layers_done == [0] and s.n_dropped == 0 and s.vectors == "custom"
    r = load_heads(tmp_path / "h")
    assert r.pairs(0, 0, rank=0) == [(w[0], w[2], pytest.approx(r.pairs(0, 0, 0)[0][2]))]
    got = r.pairs(0, 0, rank=1)
    assert [(q, k) for q, k, _ in got] == [(w[4], w[5]), (w[5], w[4])]
    t = r.table
    row0 = t[(t["layer"] == 0) & (t["head"] == 0) & (t["rank"] == 0)].iloc[0]
    row1 = t[(t["layer"] == 0) & (t["head"] == 0) & (t["rank"] == 1)].iloc[0]
    assert (row0["dim"], row1["dim"]) == (0, 1)
    assert row0["energy"] == pytest.approx(26.0) and row1["energy"] == pytest.approx(16.0)
    # every other dimension/head has no pair (all-zero values fail the sign test)
    others = t[~((t["head"] == 0) & (t["rank"] <= 1))]
    assert all(len(x) == 0 for x in others["query_word"])
    # GQA: query head 1 shares KV head 0 with head 0, but its query weights are zero -> nothing
    assert len(t[t["head"] == 1]) == 8


def test_run_matches_direct_computation_and_resumes(tiny_llama_dir, tmp_path):
    loaded = tuneshift.load_model(str(tiny_llama_dir), progress=False)
    from helpers_tiny import CORPUS

    words = sorted({w.strip(".,:?!").lower() for line in CORPUS for w in line.split() if w.strip(".,:?!").isalpha()})
    vocab = Vocabulary(words, np.linspace(1, 0.1, len(words)), "test")
    rng = np.random.default_rng(1)
    vecs = {w: rng.normal(size=16) for w in words}
    out = tmp_path / "run"
    s1 = run_heads(loaded, out, vocab=vocab, vectors=vecs, top_k=10, layers="1")
    assert s1.layers_done == [1]
    s2 = run_heads(loaded, out, vocab=vocab, vectors=vecs, top_k=10)
    assert s2.layers_done == [0] and s2.layers_skipped == [1]
    r = load_heads(out)
    assert r.layers == [0, 1] and r.manifest["status"] == "complete"
    inputs = prepare_inputs(loaded, vocab, vecs)
    for layer in (0, 1):
        wq, wk = loaded.anatomy.query_key_weights(layer)
        ref = explain_heads_reference(wq, wk, inputs.emb, inputs.vectors.vectors, inputs.theta, top_k=10, layer=layer)
        t = r.table[r.table["layer"] == layer]
        assert list(t["rank"]) == list(ref.rank) and list(t["dim"]) == list(ref.dim)
        for row, (_, x) in enumerate(t.iterrows()):
            exp = ref.pairs(row)
            assert list(x["query_word"]) == [inputs.words[q] for q, _, _ in exp]
            assert list(x["key_word"]) == [inputs.words[k] for _, k, _ in exp]
    # other settings are refused
    with pytest.raises(tuneshift.errors.RunMismatchError, match="top_k"):
        run_heads(loaded, out, vocab=vocab, vectors=vecs, top_k=5)
