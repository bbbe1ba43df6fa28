"""The steps of ``tuneshift demo`` and the worker that runs a lane of them.

A :class:`DemoTask` is one step: attribute one model under one response protocol, explain one
model's heads or feed-forward concepts, or name a sample of one model's concepts with the local
annotator. The sides are ``base``, ``tuned`` and ``null`` (the base plus a random update of the
tuned model's size, :func:`tuneshift.models.random_update.random_update_model`). A lane is a list
of steps run in order in one process, which loads each model once (:class:`ModelCache`) and
keeps it for the next step. Steps write only into their own run directories (atomic writes,
resumable), so a lane interrupted anywhere resumes where it stopped.

Across processes only plain values travel: a task is a small frozen dataclass of strings and
ints, and a step returns a JSON-ready dict (the driver reads the real results from the run
directories, never from the worker).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tuneshift.pipelines.demo_options import attribution_options, options_from_dict

__all__ = ["DemoTask", "ModelCache", "run_lane", "task_dir", "task_key", "TASKS_FILE"]

TASKS_FILE = "demo_tasks.json"
"""``OUT/demo_tasks.json``: per finished weight-based step its key (:func:`task_key`), so that a
re-run of a finished demo skips it without loading a model."""


@dataclass(frozen=True)
class DemoTask:
    """One step of the demo.

    Attributes:
        kind: ``attribute``, ``ablate`` (the causal check of an attribution run), ``heads``,
            ``concepts`` or ``annotate``.
        side: ``base``, ``tuned`` or ``null`` (``null`` only for heads and concepts).
        protocol: the response protocol of an ``attribute`` step (``own``, ``gold``), else "".
    """

    kind: str
    side: str
    protocol: str = ""

    @property
    def name(self) -> str:
        """``attribute own/base``, ``heads null``..."""
        return f"{self.kind} {self.protocol + '/' if self.protocol else ''}{self.side}"


def task_dir(out: Path, task: DemoTask) -> Path:
    """Where a step writes: ``OUT/<protocol>/<side>`` (attribution runs, as before the heads and
    concepts steps existed), ``OUT/heads/<side>``, ``OUT/concepts/<side>`` (annotations go into
    the concepts run of their side)."""
    if task.kind == "attribute":
        return out / task.protocol / task.side
    if task.kind == "ablate":
        return out / task.protocol / task.side / "ablation"
    return out / ("heads" if task.kind == "heads" else "concepts") / task.side


def task_key(task: DemoTask, options, identities: dict) -> dict:
    """What a finished weight-based step depends on: its kind and side, the content identity of
    the models it reads (``identities``: ``{"base": ..., "tuned": ...}`` from
    :func:`~tuneshift.models.loading.resolve_without_loading`) and the options it uses."""
    models = {"tuned": ["tuned"], "base": ["base"], "null": ["base", "tuned"]}[task.side]
    key = {
        "kind": task.kind,
        "side": task.side,
        "models": {m: identities.get(m) for m in models},
        "dtype": options.dtype,
    }
    if task.side == "null":
        key["null_seed"] = options.null_seed
    if task.kind == "annotate":
        key["annotator"] = {
            "spec": options.annotator,
            "components": options.annotate_components,
            "runs": options.annotate_runs,
            "batch_size": options.annotate_batch_size,
        }
    return json.loads(json.dumps(key, default=str))


class ModelCache:
    """The models one worker has loaded, by side; ``null`` is built from ``base`` and ``tuned``.

    Args:
        pair: the :class:`~tuneshift.models.pair.ModelPair`.
        device, dtype: as :func:`~tuneshift.models.loading.load_model`.
        null_seed: seed of the random update.
        progress: print loads on stderr.
    """

    def __init__(self, pair, device: str, dtype: str, null_seed: int, progress: bool):
        self.pair, self.device, self.dtype, self.null_seed, self.progress = pair, device, dtype, null_seed, progress
        self.models: dict = {}

    def get(self, side: str):
        """The :class:`~tuneshift.models.loading.LoadedModel` of ``side`` (loaded on first use)."""
        if side not in self.models:
            if side == "null":
                from tuneshift.models.random_update import random_update_model

                # in place: the base's weights become the null's (one model less in memory); a
                # later step that needs the base loads it again (the lanes put none there)
                base, tuned = self.get("base"), self.get("tuned")
                self.models.pop("base")
                self.models["null"] = random_update_model(base, tuned, seed=self.null_seed, in_place=True)
            else:
                from tuneshift.models.loading import load_model

                spec = self.pair.tuned if side == "tuned" else self.pair.base
                self.models[side] = load_model(spec, progress=self.progress, device=self.device, dtype=self.dtype)
        return self.models[side]

    def drop(self, *sides: str) -> None:
        """Free the models of ``sides``."""
        for s in sides:
            self.models.pop(s, None)


def _attribute(task: DemoTask, cache: ModelCache, out: Path, options, prompts, progress: bool) -> dict:
    from tuneshift.files import check_out_dir
    from tuneshift.pipelines.attribute_run import check_resume_before_load, run_attribution

    run_dir = task_dir(out, task)
    check_out_dir(run_dir)
    spec = options.pair.tuned if task.side == "tuned" else options.pair.base
    attribution = attribution_options(out, options, task.protocol)
    check_resume_before_load(run_dir, spec, prompts, attribution, dtype=options.dtype)  # other settings: before a load
    s = run_attribution(
        cache.get(task.side),
        prompts,
        run_dir,
        attribution,
        label=f"{task.protocol}, {task.side}: {spec}",
        progress=progress,
    )
    return {"summary": dataclasses.asdict(s)}


def _ablate(task: DemoTask, cache: ModelCache, out: Path, options, progress: bool) -> dict:
    """The causal check of the ``gold`` attribution run of ``task.side`` (``OUT/gold/<side>/ablation``)."""
    from tuneshift.data.prompts import bundled_prompts_path
    from tuneshift.pipelines.ablate_run import plan_ablation, run_ablation
    from tuneshift.pipelines.demo_options import TEMPLATE_FILE

    run_dir = out / task.protocol / task.side
    template = out / TEMPLATE_FILE
    plan = plan_ablation(run_dir, bundled_prompts_path(), template if template.is_file() else None)
    if not plan.todo:  # finished: no model is loaded
        return {"ablated": 0, "skipped": True}
    s = run_ablation(cache.get(task.side), plan, progress=progress, label=f"ablate {task.protocol}, {task.side}")
    return {"ablated": s.n_ablated, "rows": s.n_rows, "skipped": len(s.skipped)}


def _heads(task: DemoTask, cache: ModelCache, out: Path, options, progress: bool) -> dict:
    from tuneshift.files import check_out_dir
    from tuneshift.pipelines.heads_run import HeadsOptions, run_heads
    from tuneshift.progress import progress_bar

    run_dir = task_dir(out, task)
    check_out_dir(run_dir, kind="heads")
    loaded = cache.get(task.side)
    with progress_bar(f"heads, {task.side}", unit="heads", enabled=progress) as bar:
        s = run_heads(
            loaded, run_dir, HeadsOptions(), on_start=lambda n: bar.update(total=n), on_heads_done=bar.advance
        )
    return {"layers": len(s.layers_done) + len(s.layers_skipped), "pairs": s.n_pairs}


def _concepts(task: DemoTask, cache: ModelCache, out: Path, options, progress: bool) -> dict:
    from tuneshift.files import check_out_dir
    from tuneshift.pipelines.concepts_run import ConceptsOptions, run_concepts
    from tuneshift.progress import progress_bar

    run_dir = task_dir(out, task)
    check_out_dir(run_dir, kind="concepts")
    loaded = cache.get(task.side)
    with progress_bar(f"concepts, {task.side}", unit="layers", enabled=progress) as bar:
        s = run_concepts(
            loaded,
            run_dir,
            ConceptsOptions(),
            on_start=lambda n: bar.update(total=n),
            on_layer_done=lambda _l: bar.advance(),
        )
    return {"layers": len(s.layers_done) + len(s.layers_skipped)}


def _annotate(task: DemoTask, cache: ModelCache, out: Path, options, progress: bool, annotators: dict) -> dict:
    from tuneshift.methods.concepts.annotators import make_backend
    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.progress import progress_bar

    if options.annotator not in annotators:
        annotators[options.annotator] = make_backend(options.annotator, device=options.device, dtype=options.dtype)
    backend = annotators[options.annotator]
    kw = {}
    if options.annotate_batch_size is not None:
        kw["batch_size"] = options.annotate_batch_size
    with progress_bar(f"annotate, {task.side}", unit="labels", enabled=progress) as bar:
        s = annotate_run(
            task_dir(out, task),
            backend,
            runs=options.annotate_runs,
            components=options.annotate_components,
            on_start=lambda n: bar.update(total=n),
            on_done=bar.advance,
            **kw,
        )
    return {"answered": s.answered, "failures": s.failures, "requests": s.requests}


def _read_tasks_file(out: Path) -> dict:
    try:
        return json.loads((out / TASKS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _record_done(out: Path, task: DemoTask, key: dict) -> None:
    """Add ``task``'s key to ``OUT/demo_tasks.json`` (read-modify-write; each lane writes only its
    own tasks' entries, and the file is replaced atomically under a lock)."""
    import fcntl

    from tuneshift.files import atomic_write_text

    with open(out / (TASKS_FILE + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = _read_tasks_file(out)
        done[task.name] = key
        atomic_write_text(out / TASKS_FILE, json.dumps(done, indent=1, sort_keys=True) + "\n")


def finished_task(out: Path, task: DemoTask, key: dict) -> bool:
    """Whether a weight-based step is finished with the same key and its run says complete."""
    from tuneshift.files import MANIFEST

    if _read_tasks_file(out).get(task.name) != key or None in key["models"].values():
        return False
    try:
        manifest = json.loads((task_dir(out, task) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if task.kind == "annotate":
        return (task_dir(out, task) / "annotations.parquet").is_file()
    return manifest.get("status") == "complete"


def run_lane(
    lane: list[tuple[str, str, str]],
    out_dir: str,
    options_dict: dict,
    identities: dict,
    threads: int | None,
    lines: bool,
    progress: bool = True,
) -> list[dict]:
    """Run one lane of steps in order (in a worker process or in the driver's).

    Args:
        lane: ``(kind, side, protocol)`` per step (:class:`DemoTask` fields).
        out_dir: the demo's folder. options_dict: :class:`~tuneshift.pipelines.demo_options.DemoOptions`
            as a dict (:func:`~tuneshift.pipelines.demo_options.options_to_dict`).
        identities: ``{"base": ..., "tuned": ...}`` content identities (None where unknown) for
            :func:`task_key`.
        threads: torch intra-op threads in this process (None: unchanged).
        lines: progress as plain lines (two workers share one terminal: no live bars).
        progress: show progress at all.

    Returns:
        Per step ``{"task": name, "seconds": s, "skipped": bool, ...}``; an attribution step adds
        ``summary`` (the :class:`~tuneshift.pipelines.attribute_run.RunSummary` as a dict).
    """
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts

    if lines:
        from tuneshift.progress import LINES_ENV

        os.environ[LINES_ENV] = "lines"
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    out = Path(out_dir)
    options = options_from_dict(options_dict)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prompts = read_prompts(bundled_prompts_path(), limit=options.limit)
    cache = ModelCache(options.pair, options.device, options.dtype, options.null_seed, progress)
    annotators: dict = {}
    results = []
    remaining = [DemoTask(*t) for t in lane]
    for i, task in enumerate(remaining):
        t0 = time.time()
        key = None if task.kind in ("attribute", "ablate") else task_key(task, options, identities)
        if key is not None and finished_task(out, task, key):
            results.append({"task": task.name, "seconds": 0.0, "skipped": True})
            continue
        if task.kind == "attribute":
            res = _attribute(task, cache, out, options, prompts, progress)
        elif task.kind == "ablate":
            res = _ablate(task, cache, out, options, progress)
        elif task.kind == "heads":
            res = _heads(task, cache, out, options, progress)
        elif task.kind == "concepts":
            res = _concepts(task, cache, out, options, progress)
        else:
            res = _annotate(task, cache, out, options, progress, annotators)
        if key is not None:
            _record_done(out, task, key)
        needed = {
            s
            for t in remaining[i + 1 :]
            if t.kind != "annotate"
            for s in ([t.side] if t.side != "null" else ["base", "tuned", "null"])
        }
        cache.drop(*[s for s in list(cache.models) if s not in needed])  # free what no later step reads
        results.append({"task": task.name, "seconds": round(time.time() - t0, 1), "skipped": False, **res})
    return results
