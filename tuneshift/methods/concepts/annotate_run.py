"""Annotate a concepts run with an LLM: the ``local:SPEC`` backend and the run driver.

Source: Wu et al. 2024, feed-forward explanation (concepts named by an LLM in three stages, see
:mod:`tuneshift.methods.concepts.annotate`). Backends: ``local:SPEC`` (a transformers model via
:func:`~tuneshift.models.loading.load_model`, prompt wrapped in its chat template, sampled with a
seed derived from the prompt and the run index). The ``openai:MODEL`` backend is not written yet
(clear error).

Output, in the concepts directory: ``annotations.parquet`` (one row per (layer, rank, run):
concept, explainable, level, tasks, backend, model), written atomically at the end of a
finished pass (not on an interruption), and
``annotations.json`` (backend, parameters, counts). Interruptions lose nothing: every answer is
in the SQLite cache (default ``DIR/annotation_cache.sqlite``), so re-running is free.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from tuneshift.errors import ModelSpecError, TuneshiftError
from tuneshift.methods.concepts.annotate import AnswerCache, annotate_component
from tuneshift.methods.concepts.store import load_concepts
from tuneshift.runs.store import atomic_write_bytes, atomic_write_json

__all__ = ["DEFAULT_LOCAL_ANNOTATOR", "LocalBackend", "make_backend", "AnnotateSummary", "annotate_run",
           "ANNOTATIONS", "CACHE"]

DEFAULT_LOCAL_ANNOTATOR = "local:smollm2-135m-instruct"
ANNOTATIONS = "annotations.parquet"
CACHE = "annotation_cache.sqlite"
_SCHEMA = pa.schema([("layer", pa.int64()), ("rank", pa.int64()), ("run", pa.int64()), ("concept", pa.string()),
                     ("explainable", pa.bool_()), ("level", pa.string()), ("tasks", pa.list_(pa.string())),
                     ("backend", pa.string()), ("model", pa.string())])


class LocalBackend:
    """A local transformers chat model as annotator.

    Args:
        spec: anything :func:`~tuneshift.models.loading.load_model` accepts.
        loaded: an already loaded model (tests), instead of ``spec``.

    ``complete(prompt, params, run)``: the prompt as one user message through the tokenizer's
    chat template (raw text if it has none), sampled (``temperature`` > 0) or greedy, at most
    ``params["max_new_tokens"]`` (default 48) new tokens, seeded by ``sha256(prompt, run)``;
    returns the decoded new text.
    """

    name = "local"

    def __init__(self, spec: str | None = None, loaded=None):
        if loaded is None:
            from tuneshift.models.loading import load_model

            loaded = load_model(spec, progress=False)
        self.loaded = loaded
        self.model_name = str(loaded.describe().get("spec") or spec)

    def complete(self, prompt: str, params: dict, run: int) -> str:
        """One answer (see the class docstring)."""
        import torch

        tok = self.loaded.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
            ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        else:
            ids = tok(prompt, return_tensors="pt")["input_ids"]
        seed = int.from_bytes(hashlib.sha256(f"{run}\n{prompt}".encode()).digest()[:4], "little")
        temperature = float(params.get("temperature", 1.0))
        gen = dict(max_new_tokens=int(params.get("max_new_tokens", 48)), pad_token_id=tok.pad_token_id or tok.eos_token_id)
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            gen.update(do_sample=False)
        with torch.no_grad():
            torch.manual_seed(seed)
            out = self.loaded.model.generate(ids, attention_mask=torch.ones_like(ids), **gen)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def make_backend(spec: str):
    """``local:SPEC`` -> :class:`LocalBackend`.

    Raises:
        ModelSpecError: ``openai:`` (not implemented yet) or an unknown backend.
    """
    if spec.startswith("local:") and spec[6:]:
        return LocalBackend(spec[6:])
    if spec.startswith("openai:"):
        raise ModelSpecError("the openai: annotator backend is not implemented yet; use local:SPEC")
    raise ModelSpecError(f"unknown annotator {spec!r}: use local:SPEC (e.g. {DEFAULT_LOCAL_ANNOTATOR})")


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

    Raises:
        InputFileError: not a concepts run. TuneshiftError: bad runs/top_words/components.
    """
    t0 = time.time()
    if runs < 1 or top_words < 1 or (components is not None and components < 1):
        raise TuneshiftError("--runs, --top-words and --components must be >= 1")
    res = load_concepts(concepts_dir)
    t = res.table if components is None else res.table[res.table["rank"] < components]
    params = dict(params or {"temperature": 1.0, "max_new_tokens": 48})
    cache = AnswerCache(Path(cache_path) if cache_path else res.path / CACHE)
    if on_start is not None:
        on_start(len(t) * runs)
    rows, req, hits, fails, first_error = [], 0, 0, 0, None
    try:
        for layer, rank, words in zip(t["layer"], t["rank"], t["top_words"]):
            for run in range(runs):
                try:
                    lab = annotate_component(words, backend.complete, cache, backend.name, backend.model_name, run,
                                             params, top_words)
                except Exception as e:  # noqa: BLE001 - a failed request must not stop the others
                    fails += 1
                    first_error = first_error or f"{type(e).__name__}: {str(e)[:200]}"
                else:
                    req += lab.requests
                    hits += lab.cache_hits
                    rows.append({"layer": int(layer), "rank": int(rank), "run": run, "concept": lab.concept,
                                 "explainable": lab.explainable, "level": lab.level, "tasks": lab.tasks,
                                 "backend": backend.name, "model": backend.model_name})
                if on_done is not None:
                    on_done(1)
    finally:
        cache.close()
    # only a finished pass writes the labels (an interrupted one is resumed from the cache)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA), sink, compression="zstd")
    atomic_write_bytes(res.path / ANNOTATIONS, sink.getvalue().to_pybytes())
    atomic_write_json(res.path / "annotations.json", {
        "backend": backend.name, "model": backend.model_name, "runs": runs, "top_words": top_words,
        "components": components, "params": params, "counts": {"rows": len(rows), "requests": req,
                                                               "cache_hits": hits, "failures": fails}})
    return AnnotateSummary(res.path, len(rows), req, hits, fails, time.time() - t0, first_error)
