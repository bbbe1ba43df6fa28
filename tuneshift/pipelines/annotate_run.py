"""Annotate a concepts run with an LLM: the run driver (backends in ``annotators``).

Source: Wu et al. 2024, feed-forward explanation (concepts named by an LLM in three stages, see
:mod:`tuneshift.methods.concepts.annotate`). Backends: ``local:SPEC`` (a transformers model via
:func:`~tuneshift.models.loading.load_model`, prompt wrapped in its chat template, sampled with a
seed derived from the prompt and the run index, many prompts in one batched ``generate``) and
``openai:MODEL`` (any OpenAI-compatible server, several requests at once); both in
:mod:`tuneshift.methods.concepts.annotators`. A backend with ``complete_batch`` is driven by
:func:`~tuneshift.methods.concepts.annotate.annotate_components` (independent requests of all
components and runs batched, ``batch_size`` per call); one with only ``complete`` by
:func:`~tuneshift.methods.concepts.annotate.annotate_component` per (component, run), up to
``backend.concurrency`` at once in threads.

Output, in the concepts directory: ``annotations.parquet`` (one row per (layer, rank, run):
concept, explainable, level, tasks, backend, model), written atomically at the end of a
finished pass (not on an interruption), and
``annotations.json`` (backend, parameters, counts, and the ``failed`` (layer, rank, run) of the
last pass with their errors). Interruptions lose nothing: every answer is
in the SQLite cache (default ``DIR/annotation_cache.sqlite``), so re-running is free.

Merging (decided here, see ``docs/concepts.md``): a pass never replaces labels with fewer. Its
answers replace the rows of the same (layer, rank, run); rows it did not answer (failed, or not
asked) are kept from the earlier table; a table with no row at all is not written. Labels of
another annotator (backend, model, sampler version, top words or sampling parameters, from
``annotations.json``) are not mixed into one table: such a pass is refused before any request.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from tuneshift.errors import InputFileError, OptionError
from tuneshift.files import atomic_write_bytes, atomic_write_json
from tuneshift.methods.concepts.annotate import AnswerCache, annotate_component, annotate_components
from tuneshift.methods.concepts.annotators import DEFAULT_PARAMS, AnnotatorFatalError
from tuneshift.storage.concepts import load_concepts

__all__ = ["AnnotateSummary", "annotate_run", "ANNOTATIONS", "CACHE", "DEFAULT_BATCH_SIZE"]

#: prompts per batched ``generate`` of a batching backend (local:); chosen by the measurement in
#: docs/concepts.md (smollm2-135m-instruct, one thread).
DEFAULT_BATCH_SIZE = 16

ANNOTATIONS = "annotations.parquet"
CACHE = "annotation_cache.sqlite"
_SCHEMA = pa.schema(
    [
        ("layer", pa.int64()),
        ("rank", pa.int64()),
        ("run", pa.int64()),
        ("concept", pa.string()),
        ("explainable", pa.bool_()),
        ("level", pa.string()),
        ("tasks", pa.list_(pa.string())),
        ("backend", pa.string()),
        ("model", pa.string()),
    ]
)


@dataclass
class AnnotateSummary:
    """Counts of :func:`annotate_run`.

    ``rows``: rows of the written table (after the merge); ``answered``: (component, run) tasks
    answered by this pass; ``kept``: rows kept from the earlier table that this pass did not
    answer; ``requests``, ``cache_hits``; ``failures``: tasks of this pass that failed (listed
    in ``annotations.json`` under ``failed``); ``seconds``; ``first_error``.
    """

    path: Path
    rows: int
    requests: int
    cache_hits: int
    failures: int
    seconds: float
    first_error: str | None = None
    answered: int = 0
    kept: int = 0

    @property
    def partial(self) -> bool:
        """True when some task failed (the CLI exits 3)."""
        return self.failures > 0


def _settings(backend, top_words: int, params: dict) -> dict:
    return {
        "backend": backend.name,
        "model": backend.model_name,
        "sampler": getattr(backend, "sampler", None),
        "top_words": top_words,
        "params": params,
    }


def _earlier_table(path: Path, settings: dict):
    """The earlier ``annotations.parquet`` as a list of row dicts ([] if none).

    Raises:
        InputFileError: it was made by another annotator or with other settings.
    """
    import json

    p = path / ANNOTATIONS
    if not p.exists():
        return []
    meta_path = path / "annotations.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    old = {k: meta.get(k) for k in settings}
    rows = pq.read_table(p).to_pylist()
    if not meta:  # no metadata: compare what the rows carry
        old = {
            **settings,
            "backend": rows[0]["backend"] if rows else settings["backend"],
            "model": rows[0]["model"] if rows else settings["model"],
        }
    diff = [k for k in settings if old.get(k) != settings[k]]
    if diff:
        raise InputFileError(
            f"{p} holds labels made by {old.get('backend')}:{old.get('model')} with other settings ("
            + ", ".join(f"{k} {old.get(k)!r} here {settings[k]!r}" for k in diff)
            + "); annotate with the same annotator and settings, or move the file away to start a new table"
        )
    return rows


def annotate_run(
    concepts_dir,
    backend,
    runs: int = 5,
    top_words: int = 15,
    components: int | None = None,
    cache_path=None,
    params: dict | None = None,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[int], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AnnotateSummary:
    """Annotate every component (or the first ``components`` per layer) ``runs`` times.

    Args:
        concepts_dir: a concepts run directory. backend: an object with ``name``,
            ``model_name`` and ``complete(prompt, params, run)`` or
            ``complete_batch(prompts, params, runs)`` (preferred when present); optional
            ``sampler`` (its sampling rule: part of the cache key and of the settings) and
            ``concurrency``.
        runs: repetitions with different seeds (the paper: 5). top_words: words shown (15).
        components: components per layer to annotate (rank order); None = all.
        cache_path: SQLite cache (default ``DIR/annotation_cache.sqlite``).
        params: sampling parameters (default ``{"temperature": 1.0, "max_new_tokens": 48}``).
        on_start: called with the number of (component, run) tasks. on_done: called with 1 per task.
        batch_size: prompts per ``complete_batch`` call (>= 1; ignored by a backend without
            ``complete_batch``, e.g. ``openai:``, which uses ``concurrency``).

    Returns:
        :class:`AnnotateSummary`. A backend exception counts as a failure (no new row; an earlier
        row of that (layer, rank, run) is kept), the rest go on.
        A batching backend gets the independent requests of all tasks in batches (a failed
        batch fails the tasks waiting on it); otherwise up to ``backend.concurrency``
        components are annotated at once (threads). Rows are in (layer, rank, run) order
        whatever the completion order.

    Raises:
        InputFileError: not a concepts run; an earlier ``annotations.parquet`` made by another
            annotator or with other ``top_words``/``params`` (checked before any request).
        TuneshiftError: bad runs/top_words/components/batch_size (OptionError).
        AnnotatorFatalError: the backend cannot answer at all (bad key, unknown model, no
        server); nothing is written, answers so far stay in the cache.
    """
    t0 = time.time()
    bad = {
        k: "must be >= 1"
        for k, v in (("runs", runs), ("top_words", top_words), ("components", components), ("batch_size", batch_size))
        if v is not None and v < 1
    }
    if bad:
        raise OptionError(bad)
    res = load_concepts(concepts_dir)
    t = res.table if components is None else res.table[res.table["rank"] < components]
    params = dict(params or DEFAULT_PARAMS)
    settings = _settings(backend, top_words, params)
    earlier = _earlier_table(res.path, settings)
    cache = AnswerCache(Path(cache_path) if cache_path else res.path / CACHE)
    if on_start is not None:
        on_start(len(t) * runs)
    tasks = [
        (int(layer), int(rank), words, run)
        for layer, rank, words in zip(t["layer"], t["rank"], t["top_words"])
        for run in range(runs)
    ]
    results: dict[int, object] = {}
    sampler = getattr(backend, "sampler", None)

    def one(i: int):
        layer, rank, words, run = tasks[i]
        try:
            results[i] = annotate_component(
                words, backend.complete, cache, backend.name, backend.model_name, run, params, top_words, sampler
            )
        except AnnotatorFatalError:
            raise
        except Exception as e:  # noqa: BLE001 - a failed request must not stop the others
            results[i] = e
        if on_done is not None:
            on_done(1)

    workers = max(1, int(getattr(backend, "concurrency", 1)))
    try:
        if callable(getattr(backend, "complete_batch", None)):
            labels = annotate_components(
                [(words, run) for _l, _r, words, run in tasks],
                backend.complete_batch,
                cache,
                backend.name,
                backend.model_name,
                params,
                top_words,
                int(batch_size),
                sampler,
                on_done,
                fatal=(AnnotatorFatalError,),
            )
            results.update(enumerate(labels))
        elif workers == 1:
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
    rows, req, hits, first_error, failed = [], 0, 0, None, []
    for i, (layer, rank, _words, run) in enumerate(tasks):
        lab = results.get(i)
        if isinstance(lab, Exception) or lab is None:
            msg = f"{type(lab).__name__}: {str(lab)[:200]}" if lab is not None else "not answered"
            failed.append({"layer": layer, "rank": rank, "run": run, "error": msg})
            if lab is not None:
                first_error = first_error or msg
            continue
        req += lab.requests
        hits += lab.cache_hits
        rows.append(
            {
                "layer": layer,
                "rank": rank,
                "run": run,
                "concept": lab.concept,
                "explainable": lab.explainable,
                "level": lab.level,
                "tasks": lab.tasks,
                "backend": backend.name,
                "model": backend.model_name,
            }
        )
    # merge: this pass's answers replace the same (layer, rank, run); earlier rows are never dropped
    key = lambda r: (int(r["layer"]), int(r["rank"]), int(r["run"]))  # noqa: E731
    answered = {key(r) for r in rows}
    kept_rows = [r for r in earlier if key(r) not in answered]
    earlier_keys = {key(r) for r in earlier}
    for f in failed:
        f["has_earlier_label"] = key(f) in earlier_keys
    merged = sorted(rows + kept_rows, key=key)
    # only a finished pass writes the labels (an interrupted one is resumed from the cache)
    if merged:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(merged, schema=_SCHEMA), sink, compression="zstd")
        atomic_write_bytes(res.path / ANNOTATIONS, sink.getvalue().to_pybytes())
    atomic_write_json(
        res.path / "annotations.json",
        {
            **settings,
            "base_url": getattr(backend, "base_url", None),
            "runs": runs,
            "components": components,
            "batch_size": int(batch_size) if callable(getattr(backend, "complete_batch", None)) else None,
            "counts": {
                "rows": len(merged),
                "answered": len(rows),
                "kept": len(kept_rows),
                "requests": req,
                "cache_hits": hits,
                "failures": len(failed),
            },
            "failed": failed,
        },
    )
    return AnnotateSummary(
        res.path,
        len(merged),
        req,
        hits,
        len(failed),
        time.time() - t0,
        first_error,
        answered=len(rows),
        kept=len(kept_rows),
    )
