"""Benchmark: the concepts method on the whole packaged model, and the local annotator per component.

Run on demand (not a test):

    .venv/bin/python benchmarks/concepts.py [--model gemma-3-270m] [--annotator local:smollm2-135m-instruct]
        [--components 6] [--threads 2] [--write-docs]

1. ``run_concepts`` over every layer of ``--model`` (default vocabulary: wordfreq top 20,000;
   rank min(300, d_model); 50 words per component) into a temporary directory: the time the
   ``tuneshift concepts`` command needs after loading, split into word preparation + PCA +
   word scores + Parquet writes (reported as one number) and the model load (separately);
2. ``annotate_run`` with the ``--annotator`` backend on the first ``--components`` components of
   layer 0 (one run each, empty cache, the default sampling: temperature 1.0, at most 48 new
   tokens): seconds per component (1 request for a "Cannot tell", 3 for an explainable concept)
   and per request; then the same again, all from the cache.
With ``--write-docs`` the table goes into ``docs/benchmarks.md`` between the
``concepts-benchmark`` markers (the other sections are left alone).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _docs import write_block


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--annotator", default="local:smollm2-135m-instruct")
    ap.add_argument("--components", type=int, default=6, help="components of layer 0 to annotate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from tuneshift.methods.concepts.annotators import make_backend
    from tuneshift.models.loading import load_model
    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.pipelines.concepts_run import run_concepts

    t = time.perf_counter()
    loaded = load_model(args.model, progress=False)
    t_load = time.perf_counter() - t
    an = loaded.anatomy
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "concepts"
        t = time.perf_counter()
        s = run_concepts(loaded, d)
        t_concepts = time.perf_counter() - t
        print(
            f"concepts: {an.n_layers} layers, rank {s.rank}, {s.n_words} words: {t_concepts:.1f} s "
            f"(model load {t_load:.1f} s)",
            flush=True,
        )
        d = Path(tmp) / "concepts-layer0"  # the annotation sample: layer 0 only
        run_concepts(loaded, d, layers="0")
        del loaded
        t = time.perf_counter()
        backend = make_backend(args.annotator)
        t_ann_load = time.perf_counter() - t
        t = time.perf_counter()
        a = annotate_run(d, backend, runs=1, components=args.components, cache_path=Path(tmp) / "cache.sqlite")
        t_ann = time.perf_counter() - t
        n = a.rows + a.failures
        t = time.perf_counter()
        a2 = annotate_run(d, backend, runs=1, components=args.components, cache_path=Path(tmp) / "cache.sqlite")
        t_cached = time.perf_counter() - t
        import pyarrow.parquet as pq

        labels = pq.read_table(d / "annotations.parquet").to_pandas()
    n_expl = int(labels["explainable"].fillna(False).sum())
    per_comp, per_req = t_ann / max(n, 1), t_ann / max(a.requests, 1)
    print(
        f"annotate ({args.annotator}): {n} components of layer 0, {a.requests} requests, {n_expl} explainable, "
        f"{t_ann:.1f} s = {per_comp:.1f} s per component, {per_req:.2f} s per request; "
        f"cached pass {t_cached:.2f} s ({a2.cache_hits} hits)",
        flush=True,
    )
    if args.write_docs:
        lines = [
            "| step | work | seconds |",
            "|---|---|---|",
            f"| load `{args.model}` | safetensors cache (warm) | {t_load:.1f} |",
            f"| `concepts`, whole model | {an.n_layers} layers x {s.rank} components, {s.n_words} words, 50 per component, "
            f"Parquet | {t_concepts:.1f} |",
            f"| load annotator `{args.annotator}` | | {t_ann_load:.1f} |",
            f"| `annotate`, {n} components x 1 run | {a.requests} requests ({n_expl} explainable) | {t_ann:.1f} "
            f"= **{per_comp:.1f} per component**, {per_req:.2f} per request |",
            f"| the same again | all {a2.cache_hits} answers from the SQLite cache | {t_cached:.2f} |",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on this 2-core CPU machine with `.venv/bin/python "
            f"benchmarks/concepts.py --write-docs` (torch threads: {torch.get_num_threads()}). At this rate the "
            f"paper's protocol (every component of every layer, 5 runs) would take about "
            f"{an.n_layers * s.rank * 5 * per_comp / 3600:.0f} hours for `{args.model}` with the local annotator; "
            "use `--components` for a sample, or an `openai:` server with `--concurrency`.",
        ]
        doc = write_block(
            "concepts-benchmark",
            lines,
            "Concepts (`benchmarks/concepts.py`)",
            (
                "The feed-forward concepts method on the whole packaged model (PCA of every down-projection,\n"
                "word scores through the output embedding), and the cost of naming components with the\n"
                "offline local annotator.\n\n"
            ),
        )
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
