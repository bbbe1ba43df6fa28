"""Measurement: how much the per-word 1/RMS factor changes the heads method's top words.

Run on demand (not a test):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/heads_rms.py [--model gemma-3-270m] [--layers 0 9 17]
        [--top-k 100] [--threads 1]

With the default vocabulary (wordfreq top 20,000) and vectors (GloVe 6B 50d), for each selected
layer and every (head, dimension), the top-K words by ``|H[:, d]|`` (query side per head, key
side per distinct KV head) are compared between three readings of a word's mean embedding ``e``:

* ``none``: ``e @ Wq`` (the paper's, ``rms_factor="none"``, the default);
* ``pre_attention``: ``(e / rms(e)) @ Wq`` (``rms_factor="pre_attention"``, the block's real
  input through its pre-attention norm);
* ``all``: also divided by the q/k norms' RMS per word and head (``rms_factor="all"``; Gemma 3's
  per-head ``q_norm``/``k_norm``): the query/key the attention kernel receives from ``e`` as the
  residual input (bias-free, before RoPE); checked here against the family's ``reference_qk``
  oracle, which runs the layer's own modules. Without q/k norms it equals ``pre_attention``.

Reported per layer and side: the share of the top-K words that stay the same (``|A & B| / K``),
as min / 10th percentile / median / 90th percentile / max (mean) over the (head, dimension)
cells, and the mean Jaccard overlap of the kept pairs per dimension against ``none``
(``explain_heads`` with each reading, dimensions matched by index; cells where both keep no pair
are left out). Also the spread of ``rms(e)`` over the words.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _top_sets(h, k):
    """h: [V, heads, dh] -> [heads, dh, k] indices of the k largest |h| per (head, dim)."""
    import torch

    return torch.topk(h.abs().permute(1, 2, 0), k, dim=-1).indices.numpy()


def _shares(a, b, k):
    """Share of equal entries per (head, dim) between two [heads, dh, k] index arrays."""
    out = np.empty(a.shape[:2])
    for h in range(a.shape[0]):
        for d in range(a.shape[1]):
            out[h, d] = len(np.intersect1d(a[h, d], b[h, d], assume_unique=True)) / k
    return out.reshape(-1)


def _fmt(x):
    q = np.percentile(x, [0, 10, 50, 90, 100])
    return " / ".join(f"{100 * v:.0f}" for v in q) + f" (mean {100 * x.mean():.0f})"


def _pair_jaccard(a, b):
    """Mean Jaccard of kept pairs per (head, dim) of two LayerPairs (matched by head and dim)."""

    def sets(lp):
        out = {}
        for r in range(lp.head.shape[0]):
            s, e = int(lp.offsets[r]), int(lp.offsets[r + 1])
            out[(int(lp.head[r]), int(lp.dim[r]))] = set(zip(lp.query_idx[s:e].tolist(), lp.key_idx[s:e].tolist()))
        return out

    sa, sb = sets(a), sets(b)
    vals = [len(sa[c] & sb[c]) / len(sa[c] | sb[c]) for c in sa if sa[c] or sb[c]]
    return float(np.mean(vals)) if vals else float("nan"), len(vals)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 9, 17])
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from tuneshift.methods.heads import explain_heads
    from tuneshift.models.anatomy import anatomy_class
    from tuneshift.models.loading import load_model
    from tuneshift.pipelines.heads_run import layer_qk_scales, layer_word_embeddings, prepare_inputs

    t0 = time.perf_counter()
    loaded = load_model(args.model, progress=False)
    an = loaded.anatomy
    inputs = prepare_inputs(loaded)
    emb, k = inputs.emb, args.top_k
    print(f"{args.model}: {len(inputs.words)} words, K = {k}, loaded in {time.perf_counter() - t0:.0f} s", flush=True)
    group = an.n_heads // an.n_kv_heads
    print(
        "| layer | side | rms(e): min / median / max | top-K words kept, none vs pre_attention | none vs all "
        "| pre_attention vs all | kept pairs Jaccard vs none: pre_attention / all |"
    )
    print("|---|---|---|---|---|---|---|")
    for layer in args.layers:
        scale = an.pre_attention_norm_scale(layer, emb).numpy()
        rows = layer_word_embeddings(an, layer, emb, "pre_attention")
        qs, ks = layer_qk_scales(an, layer, emb, "all")
        wq, wk = an.query_key_weights(layer)  # q/k-norm gains folded
        with torch.no_grad():
            h = {}
            for side, w in (("query", wq), ("key", wk[::group])):
                h[side] = [torch.einsum("vd,hde->vhe", x.double(), w.double()) for x in (emb, rows)]
            h["query"].append(h["query"][1] / (qs[..., None] if qs is not None else 1))
            h["key"].append(h["key"][1] / (ks[:, ::group, None] if ks is not None else 1))
            ref = anatomy_class(an.family).reference_qk(loaded.model, layer, emb)  # the real modules
            for side, real in (("query", ref.q), ("key", ref.k)):
                err = float((h[side][2].float() - real).abs().max() / real.abs().max())
                assert err < 1e-4, (layer, side, err)
        lps = [
            explain_heads(wq, wk, x, inputs.vectors.vectors, inputs.theta, top_k=k, layer=layer, q_scale=a, k_scale=b)
            for x, a, b in ((emb, None, None), (rows, None, None), (rows, qs, ks))
        ]
        jac = [_pair_jaccard(lps[0], lp)[0] for lp in lps[1:]]
        for side, (h_none, h_pre, h_all) in h.items():
            t_none, t_pre, t_all = (_top_sets(x.float(), k) for x in (h_none, h_pre, h_all))
            spread = f"{scale.min():.3g} / {np.median(scale):.3g} / {scale.max():.3g}"
            print(
                f"| {layer} | {side} | {spread} | {_fmt(_shares(t_none, t_pre, k))} | {_fmt(_shares(t_none, t_all, k))} "
                f"| {_fmt(_shares(t_pre, t_all, k))} | {jac[0]:.2f} / {jac[1]:.2f} |",
                flush=True,
            )
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
