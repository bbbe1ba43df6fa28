"""Annotate a concepts run with an LLM: the run driver (backends in ``annotators``).

Source: Wu et al. 2024, feed-forward explanation (concepts named by an LLM in three stages, see
:mod:`tuneshift.methods.concepts.annotate`). Backends: ``local:SPEC`` (a transformers model via
:func:`~tuneshift.models.loading.load_model`, prompt wrapped in its chat template, sampled with a
seed derived from the prompt and the run index) and ``openai:MODEL`` (any OpenAI-compatible
server, several requests at once); both in :mod:`tuneshift.methods.concepts.annotators`.

Output, in the concepts directory: ``annotations.parquet`` (one row per (layer, rank, run):
concept, explainable, level, tasks, backend, model), written atomically at the end of a
finished pass (not on an interruption), and
``annotations.json`` (backend, parameters, counts). Interruptions lose nothing: every answer is
in the SQLite cache (default ``DIR/annotation_cache.sqlite``), so re-running is free.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from tuneshift.errors import OptionError
from tuneshift.methods.concepts.annotate import AnswerCache, annotate_component
from tuneshift.methods.concepts.annotators import DEFAULT_PARAMS, AnnotatorFatalError
from tuneshift.files import atomic_write_bytes, atomic_write_json
from tuneshift.methods.concepts.store import load_concepts


__all__ = ["AnnotateSummary", "annotate_run", "ANNOTATIONS", "CACHE"]

ANNOTATIONS = "annotations.parquet"
CACHE = "annotation_cache.sqlite"
_SCHEMA = pa.schema([("layer", pa.int64()), ("rank", pa.int64()), ("run", pa.int64()), ("concept", pa.string()),
                     ("explainable", pa.bool_()), ("level", pa.string()), ("tasks", pa.list_(pa.string())),
                     ("backend", pa.string()), ("model", pa.string())])


@dataclass
class AnnotateSummary:
    """Counts of :func:`annotate_run`: rows written, requests made, cache hits, failures, seconds."""

    path: Path
    rows: int
    requests: int
    cache_hits: int
    failures: int
    seconds: float
    first_error: str | None = None


def annotate_run(concepts_dir, backend, runs: int = 5, top_words: int = 15, components: int | None = None,
                 cache_path=None, params: dict | None = None, on_start: Callable[[int], None] | None = None,
                 on_done: Callable[[int], None] | None = None) -> AnnotateSummary:
    """Annotate every component (or the first ``components`` per layer) ``runs`` times.

    Args:
        concepts_dir: a concepts run directory. backend: an object with ``name``,
            ``model_name`` and ``complete(prompt, params, run)``.
        runs: repetitions with different seeds (the paper: 5). top_words: words shown (15).
        components: components per layer to annotate (rank order); None = all.
        cache_path: SQLite cache (default ``DIR/annotation_cache.sqlite``).
        params: sampling parameters (default ``{"temperature": 1.0, "max_new_tokens": 48}``).
        on_start: called with the number of (component, run) tasks. on_done: called with 1 per task.

    Returns:
        :class:`AnnotateSummary`. A backend exception counts as a failure (no row), the rest go on.
        Up to ``backend.concurrency`` components are annotated at once (threads); rows are in
        (layer, rank, run) order whatever the completion order.

    Raises:
        InputFileError: not a concepts run. TuneshiftError: bad runs/top_words/components.
        AnnotatorFatalError: the backend cannot answer at all (bad key, unknown model, no
        server); nothing is written, answers so far stay in the cache.
    """
    t0 = time.time()
    bad = {k: "must be >= 1" for k, v in (("runs", runs), ("top_words", top_words), ("components", components))
           if v is not None and v < 1}
    if bad:
        raise OptionError(bad)
    res = load_concepts(concepts_dir)
    t = res.table if components is None else res.table[res.table["rank"] < components]
    params = dict(params or DEFAULT_PARAMS)
    cache = AnswerCache(Path(cache_path) if cache_path else res.path / CACHE)
    if on_start is not None:
        on_start(len(t) * runs)
    tasks = [(int(layer), int(rank), words, run) for layer, rank, words in zip(t["layer"], t["rank"], t["top_words"])
             for run in range(runs)]
    results: dict[int, object] = {}

    def one(i: int):
        layer, rank, words, run = tasks[i]
        try:
            results[i] = annotate_component(words, backend.complete, cache, backend.name, backend.model_name, run,
                                            params, top_words)
        except AnnotatorFatalError:
            raise
        except Exception as e:  # noqa: BLE001 - a failed request must not stop the others
            results[i] = e
        if on_done is not None:
            on_done(1)

    workers = max(1, int(getattr(backend, "concurrency", 1)))
    try:
        if workers == 1:
            for i in range(len(tasks)):
                one(i)
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="annotate")
            try:
                futures = [pool.submit(one, i) for i in range(len(tasks))]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for f in done:
                    if f.exception() is not None:
                        raise f.exception()
            finally:  # on a fatal error or Ctrl-C: drop the queued tasks, answers so far stay cached
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        cache.close()
    rows, req, hits, fails, first_error = [], 0, 0, 0, None
    for i, (layer, rank, _words, run) in enumerate(tasks):
        lab = results.get(i)
        if isinstance(lab, Exception) or lab is None:
            fails += 1
            if lab is not None:
                first_error = first_error or f"{type(lab).__name__}: {str(lab)[:200]}"
            continue
        req += lab.requests
        hits += lab.cache_hits
        rows.append({"layer": layer, "rank": rank, "run": run, "concept": lab.concept, "explainable": lab.explainable,
                     "level": lab.level, "tasks": lab.tasks, "backend": backend.name, "model": backend.model_name})
    # only a finished pass writes the labels (an interrupted one is resumed from the cache)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA), sink, compression="zstd")
    atomic_write_bytes(res.path / ANNOTATIONS, sink.getvalue().to_pybytes())
    atomic_write_json(res.path / "annotations.json", {
        "backend": backend.name, "model": backend.model_name, "base_url": getattr(backend, "base_url", None), "runs": runs, "top_words": top_words,
        "components": components, "params": params, "counts": {"rows": len(rows), "requests": req,
                                                               "cache_hits": hits, "failures": fails}})
    return AnnotateSummary(res.path, len(rows), req, hits, fails, time.time() - t0, first_error)
