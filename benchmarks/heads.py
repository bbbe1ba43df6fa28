"""Benchmark: tuneshift's vectorised heads explanation vs a straightforward loop implementation.

Run on demand (not a test):

    .venv/bin/python benchmarks/heads.py [--model gemma-3-270m] [--layers 0 9] [--top-k 100]
        [--no-full] [--threads 1] [--write-docs]

On the packaged model, with the default vocabulary (wordfreq top 20,000) and vectors (GloVe 6B 50d):
1. the word inputs (embeddings, vectors, thresholds) are prepared once and shared;
2. for each selected layer, in the same process and run: ``explain_heads`` (vectorised) and
   ``explain_heads_reference`` (loops over heads, dimensions, words and candidate pairs); the
   kept pairs (and ranks) must be identical -- asserted; reported: seconds and the ratio;
3. unless ``--no-full``: ``run_heads`` over the whole model into a temporary directory (the
   time the ``tuneshift heads`` command needs after loading, including the Parquet writes).
With ``--write-docs`` the table is written into ``docs/benchmarks.md`` between the
``heads-benchmark`` markers (the other sections are left alone).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _docs import write_block


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 9])
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--no-full", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both implementations (default 1: on this shared 2-core "
        "machine a second thread spin-waits and makes the vectorised code 2-3x slower)",
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from tuneshift.methods.heads import explain_heads, explain_heads_reference
    from tuneshift.models.loading import load_model
    from tuneshift.pipelines.heads_run import prepare_inputs, run_heads

    loaded = load_model(args.model, progress=False)
    an = loaded.anatomy
    t = time.perf_counter()
    inputs = prepare_inputs(loaded)
    t_prep = time.perf_counter() - t
    print(f"inputs: {len(inputs.words)} words, {inputs.vectors.n_missing} without vectors, {t_prep:.1f} s", flush=True)
    rows = []
    tv_total = tr_total = 0.0
    n_pairs = 0
    for layer in args.layers:
        wq, wk = an.query_key_weights(layer)
        t = time.perf_counter()
        a = explain_heads(wq, wk, inputs.emb, inputs.vectors.vectors, inputs.theta, top_k=args.top_k, layer=layer)
        tv = time.perf_counter() - t
        t = time.perf_counter()
        b = explain_heads_reference(
            wq, wk, inputs.emb, inputs.vectors.vectors, inputs.theta, top_k=args.top_k, layer=layer
        )
        tr = time.perf_counter() - t
        for f in ("head", "dim", "rank", "offsets", "query_idx", "key_idx", "cos"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), f"layer {layer}: {f} differs"
        print(f"layer {layer}: vectorised {tv:.2f} s, reference {tr:.1f} s, {a.n_pairs} pairs identical", flush=True)
        tv_total += tv
        tr_total += tr
        n_pairs += a.n_pairs
        rows.append((layer, tv, tr, a.n_pairs))
    full = None
    if not args.no_full:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            s = run_heads(loaded, Path(tmp) / "heads", top_k=args.top_k)
            full = time.perf_counter() - t
        print(f"whole model ({an.n_layers} layers x {an.n_heads} heads): {full:.1f} s, {s.n_pairs} pairs", flush=True)
    ratio = tr_total / tv_total
    print(f"speed-up {ratio:.1f}x", flush=True)
    if args.write_docs:
        lines = [
            "| model | layers | heads x dims per layer | words | K | vectorised s | reference s | speed-up | kept pairs (identical) | whole model s |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {args.model} | {', '.join(map(str, args.layers))} | {an.n_heads} x {an.head_dim} | {len(inputs.words)} | {args.top_k} "
            f"| {tv_total:.1f} | {tr_total:.1f} | {ratio:.0f}x | {n_pairs} | "
            f"{'-' if full is None else f'{full:.0f} ({an.n_layers} layers, incl. inputs and Parquet)'} |",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on this 2-core CPU machine with `.venv/bin/python benchmarks/heads.py "
            f"--layers {' '.join(map(str, args.layers))} --write-docs` (torch threads: {torch.get_num_threads()}); "
            f"word inputs prepared once in {t_prep:.1f} s (not in either column).",
        ]
        doc = write_block(
            "heads-benchmark",
            lines,
            "Heads (`benchmarks/heads.py`)",
            (
                "Same run, same inputs, same torch threads: the vectorised `explain_heads` vs\n"
                "`explain_heads_reference`, the published algorithm with loops over heads, dimensions, words and\n"
                "candidate pairs. Kept pairs, their order and the dimension ranks are asserted identical.\n\n"
            ),
        )
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
