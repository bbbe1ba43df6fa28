"""Method B of Wu et al. (NAACL 2024): self-attention heads read as word pairs, from weights only.

Source: Wu et al., "From Language Modeling to Instruction Following: Understanding the
Behavior Shift in LLMs after Instruction Tuning", NAACL 2024 (arXiv 2310.00492), section on
the self-attention explanation. For head ``h`` of a layer the attention logit between a query
position holding residual ``x`` and a key position holding ``y`` is (bias-free)
``(x Wq[h]) . (y Wk[h]) = sum_d (x Wq[h])_d (y Wk[h])_d``. Each dimension ``d`` is one additive
term: it raises the logit when the query-side and key-side values have the same sign. Putting
*word vectors* ``E`` (mean input embedding of each word's tokens) in place of ``x`` and ``y``:

1. ``Hq = E @ Wq[h]``, ``Hk = E @ Wk[h]`` (``[|V|, d_head]``).
2. Rank the dimensions by energy ``sum_w Hq[w, d]^2 + sum_w Hk[w, d]^2``, descending.
3. Per dimension: the top-K words by ``|Hq[:, d]|`` and by ``|Hk[:, d]|``; of the K x K pairs
   keep those with (a) two different words, (b) ``Hq[q, d] * Hk[k, d] > 0``, (c)
   ``cos(q, k) > theta(q)`` and ``cos(q, k) > theta(k)`` (static word vectors; ``theta`` from
   :func:`tuneshift.data.word_vectors.cosine_thresholds`). Sort kept pairs by cos, descending.

Ignored, as in the paper (and documented in ``docs/heads.md``): rotary position encoding, the
per-token ``1/RMS`` factor of the pre-attention norm (and of q/k norms applied after the
projections, such as Gemma 3's per-head ones) -- positive scalars per token (and head) that
cannot change a sign and rescale a word's whole row, but do change which words are in the
top K (measured in ``docs/heads.md``) --, the attention scale, and q/k biases. The factors can
be put back: the caller passes word rows already divided by the pre-attention RMS (see
:func:`tuneshift.pipelines.heads_run.layer_word_embeddings`) and the q/k norms' RMS per word and
head as ``q_scale``/``k_scale`` (``rms_factor`` of ``run_heads``).
``Wq``/``Wk`` come from :meth:`tuneshift.models.anatomy.Anatomy.query_key_weights` (norm gains
folded in, KV heads repeated under grouped-query attention, q/k-norm gains folded in).

Determinism and ties (identical in both implementations): ``Hq`` and ``Hk`` are accumulated in
float64 and rounded to float32 (``products_dtype``), so they do not depend on the summation order
a BLAS library picks for a thread count, a machine or a load level (a float32 product of length
``d_model`` differs between orders by a few float32 ulps, enough to swap two near-equal words at
the top-K boundary or two dimensions' ranks); dimensions are ranked by the energy
rounded to float32, ties to the lower dimension index; top-K words are the K largest ``|H|``
in float32, ties to the lower word index (a stable descending sort's first K); the sign test is
``(hq > 0 and hk > 0) or (hq < 0 and hk < 0)``; cosines are computed in float64 from unit
vectors and rounded to float32 before the threshold test; kept pairs are sorted by cos
descending, then query word index, then key word index.

:func:`explain_heads` is the vectorised implementation: one matrix product per query head and
per *distinct* key head (heads sharing a KV head under grouped-query attention reuse its key
side), ``torch.topk`` for the top-K words, then all dimensions of a batch of heads at once --
batched float64 cosines of the K x K candidates, the threshold mask, one ``nonzero``, the sign
and distinct-word tests on the survivors, one ``lexsort``; no Python loop over words or pairs;
:func:`explain_heads_reference` is the straightforward loop version used by tests and
``benchmarks/heads.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

# torch is imported by the functions that compute: importing this module (as the CLI's --help
# does, for DEFAULT_TOP_K) does not import it
if TYPE_CHECKING:
    import torch

__all__ = ["LayerPairs", "explain_heads", "explain_heads_reference", "DEFAULT_TOP_K"]

DEFAULT_TOP_K = 100


@dataclass
class LayerPairs:
    """Word pairs of every (head, dimension) of one layer.

    Rows are ordered by head, then rank (row ``i`` of head ``h`` is its ``i``-th most energetic
    dimension). Pairs of row ``r`` are ``query_idx[offsets[r]:offsets[r+1]]`` (word indices)
    etc., sorted by cos descending.

    Attributes:
        layer: layer index.
        head, dim, rank: ``[R]`` int64 (``R = n_heads * d_head`` for the heads computed).
        energy: ``[R]`` float64.
        offsets: ``[R + 1]`` int64.
        query_idx, key_idx: ``[P]`` int64 word indices. cos: ``[P]`` float32.
    """

    layer: int
    head: np.ndarray
    dim: np.ndarray
    rank: np.ndarray
    energy: np.ndarray
    offsets: np.ndarray
    query_idx: np.ndarray
    key_idx: np.ndarray
    cos: np.ndarray

    @property
    def n_pairs(self) -> int:
        return int(self.offsets[-1])

    def pairs(self, row: int) -> list[tuple[int, int, float]]:
        s, e = int(self.offsets[row]), int(self.offsets[row + 1])
        return list(zip(self.query_idx[s:e].tolist(), self.key_idx[s:e].tolist(), self.cos[s:e].tolist()))

    @staticmethod
    def concat(parts: Sequence["LayerPairs"]) -> "LayerPairs":
        if len(parts) == 1:
            return parts[0]
        offs, base = [np.zeros(1, dtype=np.int64)], 0
        for p in parts:
            offs.append(p.offsets[1:] + base)
            base += int(p.offsets[-1])
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return LayerPairs(
            parts[0].layer,
            cat("head"),
            cat("dim"),
            cat("rank"),
            cat("energy"),
            np.concatenate(offs),
            cat("query_idx"),
            cat("key_idx"),
            cat("cos"),
        )


def _scales(q_scale, k_scale, n_words: int, n_heads: int, device, dtype):
    """Optional per-(word, head) divisors -> ``[n_heads, n_words]`` tensors (or None)."""
    import torch

    out = []
    for name, s in (("q_scale", q_scale), ("k_scale", k_scale)):
        if s is None:
            out.append(None)
            continue
        t = torch.as_tensor(s).to(device=device, dtype=dtype)
        if tuple(t.shape) != (n_words, n_heads):
            raise ValueError(f"{name} must be [n_words, n_heads] = [{n_words}, {n_heads}], got {tuple(t.shape)}")
        if not bool((t > 0).all()):
            raise ValueError(f"{name} must be positive")
        out.append(t.T.contiguous())
    return out


def _check(wq: torch.Tensor, wk: torch.Tensor, emb: torch.Tensor, unit: np.ndarray, theta: np.ndarray, top_k: int):
    if wq.shape != wk.shape or wq.dim() != 3:
        raise ValueError(
            f"Wq and Wk must both be [n_heads, d_model, d_head], got {tuple(wq.shape)} and {tuple(wk.shape)}"
        )
    if emb.dim() != 2 or emb.shape[1] != wq.shape[1]:
        raise ValueError(f"word embeddings must be [n_words, {wq.shape[1]}], got {tuple(emb.shape)}")
    if unit.shape[0] != emb.shape[0] or theta.shape[0] != emb.shape[0]:
        raise ValueError("word vectors, thresholds and word embeddings differ in number of words")
    if emb.shape[0] == 0:
        raise ValueError("no words")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")


def _energy_rank(energy: np.ndarray) -> np.ndarray:
    """``[dh]`` float64 energies -> rank of each dimension (0 = most energetic)."""
    order = np.argsort(-energy.astype(np.float32), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank


def _top_k_indices(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest ``|values|`` along the last axis, ties to the lower index.

    The same set as a stable descending sort's first ``k`` (what the reference does), without
    sorting: the K-th largest magnitude from ``torch.topk``, everything above it, and the
    lowest-indexed entries equal to it. Returned in increasing index order (the order inside
    the top K does not matter: kept pairs are sorted afterwards).

    Args:
        values: ``[..., n]``. Returns: ``[..., k]`` int64.
    """
    import torch

    shape = values.shape
    a = values.abs().reshape(-1, shape[-1])
    n = a.shape[-1]
    top, idx = torch.topk(a, min(k + 1, n), dim=-1, sorted=True)
    kth = top[:, k - 1 : k]
    idx = idx[:, :k].contiguous()
    # rows where the (K+1)-th value ties with the K-th: topk's choice among the ties is arbitrary
    bad = (top[:, k] == kth[:, 0]).nonzero(as_tuple=True)[0] if n > k else top.new_zeros(0, dtype=torch.long)
    if bad.numel():
        ab, kb = a[bad], kth[bad]
        above, equal = ab > kb, ab == kb
        room = k - above.sum(dim=-1, keepdim=True)
        sel = above | (equal & (equal.cumsum(dim=-1) <= room))
        idx[bad] = sel.nonzero(as_tuple=True)[-1].reshape(-1, k)
    return idx.reshape(*shape[:-1], k)


def explain_heads(
    wq: torch.Tensor,
    wk: torch.Tensor,
    emb: torch.Tensor,
    unit: np.ndarray,
    theta: np.ndarray,
    top_k: int = DEFAULT_TOP_K,
    layer: int = 0,
    heads: Sequence[int] | None = None,
    head_batch: int | None = None,
    pair_chunk: int = 512,
    on_heads_done: Callable[[int], None] | None = None,
    products_dtype: torch.dtype | None = None,
    q_scale: "torch.Tensor | np.ndarray | None" = None,
    k_scale: "torch.Tensor | np.ndarray | None" = None,
) -> LayerPairs:
    """Vectorised word pairs of every dimension of the given heads of one layer.

    Args:
        wq, wk: ``[n_heads, d_model, d_head]`` float32 (folded, KV heads repeated).
        emb: ``[n_words, d_model]`` float32 word embeddings (vocabulary order = frequency order).
        unit: ``[n_words, k]`` float64 unit word vectors (zero rows where missing).
        theta: ``[n_words]`` float32 thresholds (``+inf`` where missing).
        top_k: K.
        layer: recorded in the result.
        heads: heads to compute (default all).
        head_batch: heads per batch (default: as many as keep ``n_words * d_head * batch`` under
            8M values).
        pair_chunk: (head, dimension) cells per cosine batch (memory bound).
        on_heads_done: called with the number of heads finished after each batch.
        products_dtype: dtype in which ``E @ Wq[h]`` and ``E @ Wk[h]`` are accumulated before
            rounding to float32 (None: ``torch.float64``). float64 (default) makes the pairs independent of BLAS summation
            order (threads, machine, CPU vs GPU) at about twice the cost of the products on a CPU;
            ``torch.float32`` is faster (and the choice on GPUs with slow float64) but pairs at a
            float32 tie can then differ between machines.
        q_scale, k_scale: optional ``[n_words, n_heads]`` positive divisors: ``Hq[:, h] =
            (E @ Wq[h]) / q_scale[:, h]`` (likewise ``Hk``), divided in ``products_dtype`` before
            the rounding to float32 (the q/k norms' per-word 1/RMS, see
            :meth:`tuneshift.models.anatomy.Anatomy.qk_norm_scales`). None: no division.

    Returns:
        :class:`LayerPairs`.

    Raises:
        ValueError: inconsistent shapes, ``top_k`` < 1, no words, non-positive scales.
    """
    import torch

    if products_dtype is None:
        products_dtype = torch.float64
    theta = np.asarray(theta, dtype=np.float32)
    _check(wq, wk, emb, unit, theta, top_k)
    n_words, dh = emb.shape[0], wq.shape[2]
    heads = list(range(wq.shape[0])) if heads is None else [int(h) for h in heads]
    k = min(top_k, n_words)
    if head_batch is None:
        head_batch = max(1, int(8_000_000 // max(1, n_words * dh)))
    # everything on the weights' device (CPU, or a GPU with --device cuda); numpy at the end
    unit_t = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float64)).to(emb.device)
    theta_t = torch.from_numpy(theta).to(emb.device)
    emb_t = emb.to(products_dtype).T.contiguous()  # [d_model, V]
    qs, ks = _scales(q_scale, k_scale, n_words, wq.shape[0], emb.device, products_dtype)  # [n_heads, V] or None
    key_of: dict[int, int] = {}  # head -> first head with the same Wk (GQA repeats KV heads)
    distinct_keys: list[int] = []
    for h in heads:
        same = [g for g in distinct_keys if torch.equal(wk[g], wk[h]) and (ks is None or torch.equal(ks[g], ks[h]))]
        if not same:
            distinct_keys.append(h)
        key_of[h] = same[0] if same else h
    key_cache: dict[int, tuple] = {}
    parts = []
    for s in range(0, len(heads), head_batch):
        hb = heads[s : s + head_batch]
        b = len(hb)
        with torch.no_grad():
            # Hq^T: [b, dh, V] (one product per head, laid out for the per-dimension work)
            hq_t = torch.stack(
                [
                    (
                        wq[h].to(products_dtype).T @ emb_t
                        if qs is None
                        else (wq[h].to(products_dtype).T @ emb_t) / qs[h][None, :]
                    ).float()
                    for h in hb
                ]
            )
            energy_q = torch.linalg.vector_norm(hq_t, dim=2, dtype=torch.float64) ** 2  # [b, dh]
            qi = _top_k_indices(hq_t, k)  # [b, dh, K]
            qv = torch.gather(hq_t, 2, qi).reshape(b * dh, k)
            del hq_t
            # key side: computed once per distinct key head (heads sharing a KV head under
            # grouped-query attention have identical Wk[h])
            for h in hb:
                if key_of[h] not in key_cache:
                    hk_p = wk[h].to(products_dtype).T @ emb_t
                    if ks is not None:
                        hk_p = hk_p / ks[h][None, :]
                    hk_t = hk_p.float()[None]  # [1, dh, V]
                    ki_h = _top_k_indices(hk_t, k)[0]
                    key_cache[key_of[h]] = (
                        ki_h,
                        torch.gather(hk_t[0], 1, ki_h),
                        torch.linalg.vector_norm(hk_t[0], dim=1, dtype=torch.float64) ** 2,
                    )
                    del hk_t
            ki = torch.stack([key_cache[key_of[h]][0] for h in hb]).reshape(b * dh, k)
            kv = torch.stack([key_cache[key_of[h]][1] for h in hb]).reshape(b * dh, k)
            energy = energy_q + torch.stack([key_cache[key_of[h]][2] for h in hb])  # [b, dh]
            qi = qi.reshape(b * dh, k)
            keep_cells = []
            for c in range(0, b * dh, pair_chunk):
                sl = slice(c, c + pair_chunk)
                q, kk = qi[sl], ki[sl]
                cos = torch.bmm(unit_t[q], unit_t[kk].transpose(1, 2)).float()  # [c, K, K]
                # (c) the co-occurrence constraint, dense; then (a) and (b) on its survivors
                cell, i, j = (cos > torch.maximum(theta_t[q][:, :, None], theta_t[kk][:, None, :])).nonzero(
                    as_tuple=True
                )
                wq_, wk_ = q[cell, i], kk[cell, j]
                hq_, hk_ = qv[sl][cell, i], kv[sl][cell, j]
                # two different words; same sign (product > 0, tested without float underflow)
                ok = (wq_ != wk_) & (((hq_ > 0) & (hk_ > 0)) | ((hq_ < 0) & (hk_ < 0)))
                keep_cells.append((cell[ok] + c, wq_[ok], wk_[ok], cos[cell[ok], i[ok], j[ok]]))
        energy_np = energy.cpu().numpy()
        rank = np.stack([_energy_rank(e) for e in energy_np])  # [b, dh]
        cell = torch.cat([x[0] for x in keep_cells]).cpu().numpy()
        qidx = torch.cat([x[1] for x in keep_cells]).cpu().numpy()
        kidx = torch.cat([x[2] for x in keep_cells]).cpu().numpy()
        cosv = torch.cat([x[3] for x in keep_cells]).cpu().numpy()
        # row of cell (h_local, d) = h_local * dh + rank[h_local, d]
        row_of_cell = (np.arange(b)[:, None] * dh + rank).reshape(-1)
        row = row_of_cell[cell]
        order = np.lexsort((kidx, qidx, -cosv.astype(np.float64), row))
        counts = np.bincount(row, minlength=b * dh)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # row r -> (head, dim)
        inv = np.empty(b * dh, dtype=np.int64)
        inv[row_of_cell] = np.arange(b * dh)
        h_of_row = np.asarray(hb, dtype=np.int64)[inv // dh]
        d_of_row = inv % dh
        parts.append(
            LayerPairs(
                layer,
                h_of_row,
                d_of_row,
                rank.reshape(-1)[inv].astype(np.int64),
                energy_np.reshape(-1)[inv],
                offsets,
                qidx[order].astype(np.int64),
                kidx[order].astype(np.int64),
                cosv[order].astype(np.float32),
            )
        )
        if on_heads_done is not None:
            on_heads_done(b)
    return LayerPairs.concat(parts)


def explain_heads_reference(
    wq: torch.Tensor,
    wk: torch.Tensor,
    emb: torch.Tensor,
    unit: np.ndarray,
    theta: np.ndarray,
    top_k: int = DEFAULT_TOP_K,
    layer: int = 0,
    heads: Sequence[int] | None = None,
    products_dtype: torch.dtype | None = None,
    q_scale: "torch.Tensor | np.ndarray | None" = None,
    k_scale: "torch.Tensor | np.ndarray | None" = None,
) -> LayerPairs:
    """Straightforward implementation of the published algorithm: loops over heads, dimensions,
    words and candidate pairs (same inputs, outputs and tie rules as :func:`explain_heads`)."""
    import torch

    if products_dtype is None:
        products_dtype = torch.float64
    theta = np.asarray(theta, dtype=np.float32)
    _check(wq, wk, emb, unit, theta, top_k)
    qs, ks = _scales(q_scale, k_scale, emb.shape[0], wq.shape[0], emb.device, products_dtype)
    n_words, dh = emb.shape[0], wq.shape[2]
    heads = list(range(wq.shape[0])) if heads is None else [int(h) for h in heads]
    k = min(top_k, n_words)
    rows = []  # (head, dim, rank, energy, pairs)
    for h in heads:
        with torch.no_grad():
            hq_p = emb.to(products_dtype) @ wq[h].to(products_dtype)
            hk_p = emb.to(products_dtype) @ wk[h].to(products_dtype)
            if qs is not None:
                hq_p = hq_p / qs[h][:, None]
            if ks is not None:
                hk_p = hk_p / ks[h][:, None]
            hq_m, hk_m = hq_p.float().cpu().numpy(), hk_p.float().cpu().numpy()
        energies = []
        cols = []
        for d in range(dh):
            hq = hq_m[:, d].tolist()
            hk = hk_m[:, d].tolist()
            e = 0.0
            for w in range(n_words):
                e += hq[w] * hq[w]
            for w in range(n_words):
                e += hk[w] * hk[w]
            energies.append(e)
            cols.append((hq, hk))
        order = sorted(range(dh), key=lambda d: -float(np.float32(energies[d])))
        for r, d in enumerate(order):
            hq, hk = cols[d]
            top_q = sorted(range(n_words), key=lambda w: -abs(hq[w]))[:k]
            top_k_words = sorted(range(n_words), key=lambda w: -abs(hk[w]))[:k]
            kept = []
            for q in top_q:
                for kw in top_k_words:
                    if q == kw:
                        continue
                    if not ((hq[q] > 0 and hk[kw] > 0) or (hq[q] < 0 and hk[kw] < 0)):
                        continue
                    c = np.float32(float(np.dot(unit[q], unit[kw])))
                    if c > theta[q] and c > theta[kw]:
                        kept.append((q, kw, c))
            kept.sort(key=lambda t: (-float(t[2]), t[0], t[1]))
            rows.append((h, d, r, energies[d], kept))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r[4]) for r in rows])
    flat = [p for r in rows for p in r[4]]
    return LayerPairs(
        layer,
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.int64),
        np.array([r[3] for r in rows], dtype=np.float64),
        offsets,
        np.array([p[0] for p in flat], dtype=np.int64),
        np.array([p[1] for p in flat], dtype=np.int64),
        np.array([p[2] for p in flat], dtype=np.float32),
    )
