"""The main job: the paper's three methods on a model pair, compared, in one folder and one report.

``tuneshift demo`` is this module with a progress display. Its steps (:mod:`tuneshift.pipelines.demo_tasks`):

1. **Attribution** (method A): both models attributed on the 28 bundled instructions under two
   response protocols: ``own`` (each model's greedy answer) and ``gold`` (both forced to the
   record's reference response, identical response token ids). The prompt form is the same for
   both (docs/attribution.md, "Which protocol answers which question"): the tuned model's chat
   template, written to ``OUT/prompt_template.jinja`` from its tokenizer alone before any model
   loads (the packaged base has no template, and the tuned model given a raw prompt mostly stops
   at once); when the tuned model has no template, both get the raw prompt.
2. **Heads** (method B) on every layer of both models and of the **null model** (the base plus
   a seeded random update of the tuned update's size per matrix,
   :func:`~tuneshift.models.random_update.random_update_model`), then ``compare-heads`` with the
   null beside the tuned shift.
3. **Concepts** (method C) on every layer of the three, ``compare-concepts`` (rotation by
   principal angles, tuned beside null), and the Table 5 shares of a fixed sample of components
   (the first ``annotate_components`` of every layer, ``annotate_runs`` runs) named by the local
   annotator (answers cached: a re-run asks nothing).
4. **Findings**: one row per finding of the paper (:mod:`tuneshift.stats.findings`), saved as
   ``OUT/findings.json``/``.md`` and the first section of ``OUT/report.html``.

**Parallel lanes.** The steps run in two worker processes (``workers``), one per model, each with
one torch thread (``threads``): measured on this 2-core machine, two 1-thread attributions side by
side took 61 s each for 8 records where one 2-thread attribution took 46 s, i.e. 1.5x the
throughput; and 1-thread workers never spin-wait, so a core busy with other work costs them only
its fair share (two 2-thread processes under a CPU burner: 3x slower). The ``tuned`` lane also runs
the null model's steps (it loads the base there); each lane loads its models once.

Re-running resumes: finished records and layers are kept; a step finished with the same identity
(model content hashes, options; ``OUT/demo_tasks.json`` for the weight-based steps) is skipped
without loading its model, so a re-run of a finished demo only re-makes the comparisons, the
findings and the report.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tuneshift.files import atomic_write_text
from tuneshift.pipelines.demo_options import TEMPLATE_FILE, DemoOptions, attribution_options, options_to_dict
from tuneshift.pipelines.demo_tasks import run_lane

__all__ = ["DemoOptions", "DemoResult", "run_demo", "plan_lanes", "worker_layout"]


@dataclass
class DemoResult:
    """What :func:`run_demo` made.

    Attributes:
        summaries: ``{"<protocol>, <side>": RunSummary}`` of the attribution runs.
        comparisons: ``{protocol: RunComparison}`` (each also saved in ``OUT/<protocol>/``).
        heads: the :class:`~tuneshift.stats.heads_compare.HeadsComparison` (``OUT/heads/``), or None.
        concepts: the :class:`~tuneshift.stats.concepts_rotation.RotationComparison`
            (``OUT/concepts/``), or None.
        findings: the :class:`~tuneshift.stats.findings.Findings` (``OUT/findings.json``).
        ablation: the :class:`~tuneshift.stats.ablation_compare.AblationComparison` of the gold runs
            (``OUT/gold/ablation_comparison.json``), or None.
        prompt_form: ``template`` (the tuned model's template for both) or ``raw``.
        report: the HTML report (``OUT/report.html``).
        steps: per step ``{"task", "seconds", "skipped", ...}`` as the lanes returned them.
        workers, threads: the layout used.
    """

    summaries: dict
    comparisons: dict
    heads: object = None
    concepts: object = None
    findings: object = None
    ablation: object = None
    prompt_form: str = "raw"
    report: Path | None = None
    steps: list = field(default_factory=list)
    workers: int = 1
    threads: int = 1


def worker_layout(options: DemoOptions) -> tuple[int, int]:
    """``(workers, threads per worker)`` for ``options`` (see :class:`DemoOptions`)."""
    from tuneshift.threads import usable_cores

    cores = usable_cores()
    workers = options.workers or (2 if cores >= 2 else 1)
    threads = options.threads or max(1, cores // workers)
    return workers, threads


def plan_lanes(options: DemoOptions, workers: int) -> list[list[tuple[str, str, str]]]:
    """The demo's steps as lanes of ``(kind, side, protocol)``: one per model with two workers
    (the tuned lane also runs the null model's heads and concepts), one lane with one worker.
    Annotation comes last in each lane (its model is small; the Gemma models are freed first)."""
    tuned, base = [], []
    if "attribution" in options.methods:
        tuned += [("attribute", "tuned", p) for p in options.protocols]
        base += [("attribute", "base", p) for p in options.protocols]
        if options.ablation and "gold" in options.protocols:  # the causal check: forward passes, model still loaded
            tuned.append(("ablate", "tuned", "gold"))
            base.append(("ablate", "base", "gold"))
    for kind in ("heads", "concepts"):
        if kind in options.methods:
            tuned.append((kind, "tuned", ""))
            base.append((kind, "base", ""))
    null = [(kind, "null", "") for kind in ("heads", "concepts") if kind in options.methods]
    annotate = "concepts" in options.methods and options.annotate_components > 0
    tuned_lane = tuned + null + ([("annotate", "tuned", "")] if annotate else [])
    base_lane = base + ([("annotate", "base", "")] if annotate else [])
    if workers >= 2:
        return [tuned_lane, base_lane]
    # one worker: the base steps, then the tuned and null ones (the base stays loaded for the null)
    return [base + tuned + null + ([("annotate", "base", ""), ("annotate", "tuned", "")] if annotate else [])]


def _check_annotator(spec: str) -> None:
    """Refuse an annotator the demo cannot use, before any load: it runs offline, so only a
    ``local:SPEC`` whose model is installed.

    Raises:
        ModelSpecError: another backend, or the model is not installed.
    """
    from tuneshift.errors import ModelSpecError
    from tuneshift.models.specs import check_packaged, resolve_spec

    if not spec.startswith("local:") or not spec[6:]:
        raise ModelSpecError(
            f"the demo's annotator must be local:SPEC (offline), not {spec!r}; "
            "run `tuneshift annotate` yourself for another backend"
        )
    check_packaged(resolve_spec(spec[6:]))


def _identities(pair) -> dict:
    """Content identities of the two models without loading them (None where unknown)."""
    from tuneshift.models.loading import resolve_without_loading

    ids = {}
    for side, spec in (("base", pair.base), ("tuned", pair.tuned)):
        r = resolve_without_loading(spec)
        ids[side] = None if r is None else r.to_dict()
    return ids


def _write_template(out: Path, pair, progress: bool) -> None:
    """``OUT/prompt_template.jinja`` from the tuned model's tokenizer (no weights are read)."""
    from tuneshift.data.encoding import model_chat_template
    from tuneshift.models.loading import load_tokenizer

    form = model_chat_template(load_tokenizer(pair.tuned, progress=progress))
    path = out / TEMPLATE_FILE
    if form is not None:  # the same text as `tuneshift template TUNED`
        if not path.is_file() or path.read_text(encoding="utf-8") != form + "\n":
            atomic_write_text(path, form + "\n")
    elif path.is_file():
        path.unlink()  # this tuned model has no template: raw prompts for both


def _finished_attributions(out: Path, options: DemoOptions, prompts) -> dict:
    """``{"<protocol>, <side>": RunSummary}`` of the attribution runs already complete with the
    planned identity (computed without loading a model)."""
    from tuneshift.pipelines.attribute_run import finished_run, planned_identity

    done = {}
    for side, spec in (("tuned", options.pair.tuned), ("base", options.pair.base)):
        for p in options.protocols:
            s = finished_run(
                out / p / side,
                lambda p=p, spec=spec: planned_identity(
                    spec, prompts, attribution_options(out, options, p), dtype=options.dtype
                ),
                prompts,
            )
            if s is not None:
                done[f"{p}, {side}"] = s
    return done


def run_demo(
    out_dir: str | Path,
    options: DemoOptions = DemoOptions(),
    on_summary: Callable[[str, object], None] | None = None,
    progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> DemoResult:
    """Run the paper's three methods on both models of the pair, compare them, write the report.

    Args:
        out_dir: the demo's folder: ``<protocol>/base``, ``<protocol>/tuned`` (attribution runs)
            and ``<protocol>/comparison.json``/``.md``; ``heads/{base,tuned,null}`` and
            ``heads/heads_comparison.json``; ``concepts/{base,tuned,null}`` and
            ``concepts/concepts_comparison.json``; ``prompt_template.jinja``, ``findings.json``/
            ``.md``, ``report.html``.
        options: :class:`DemoOptions`.
        on_summary: called with ``("<protocol>, <side>", RunSummary)`` after each attribution run.
        progress: show progress on stderr (two workers print plain lines, one live bars).
        on_step: called with each finished step's dict (``task``, ``seconds``, ``skipped``).

    Returns:
        A :class:`DemoResult`.

    Raises:
        InputFileError: ``out_dir`` is a file or a foreign folder.
        ModelSpecError: a model of the pair is not installed (checked before any load).
        KeyboardInterrupt: Ctrl-C (every finished record, layer and answer is kept).
    """
    import warnings

    from tuneshift.data.prompts import bundled_prompts_path, read_prompts
    from tuneshift.errors import InputFileError
    from tuneshift.models.specs import check_packaged, resolve_spec
    from tuneshift.pipelines.attribute_run import RunSummary

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputFileError(f"output directory {out} is a file, not a directory")
    pair = options.pair
    for spec in (pair.base, pair.tuned):  # fail before the first long load if a model is missing
        check_packaged(resolve_spec(spec))
    if options.annotate_components and "concepts" in options.methods:
        _check_annotator(options.annotator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prompts = read_prompts(bundled_prompts_path(), limit=options.limit)
    out.mkdir(parents=True, exist_ok=True)
    if "attribution" in options.methods:
        _write_template(out, pair, progress)
    workers, threads = worker_layout(options)
    summaries = _finished_attributions(out, options, prompts) if "attribution" in options.methods else {}
    lanes = plan_lanes(options, workers)
    # attribution steps already complete need no model: leave them out of the lanes
    lanes = [[t for t in lane if not (t[0] == "attribute" and f"{t[2]}, {t[1]}" in summaries)] for lane in lanes]
    lanes = [lane for lane in lanes if lane]
    for label, s in summaries.items():
        if on_summary is not None:
            on_summary(label, s)
    identities = _identities(pair)
    args = (str(out), options_to_dict(options), identities)
    steps: list[dict] = []

    def take(results: list[dict]) -> None:
        for r in results:
            steps.append(r)
            if "summary" in r:
                label = r["task"].split(" ", 1)[1].replace("/", ", ")
                summaries[label] = RunSummary(**r["summary"])
                if on_summary is not None:
                    on_summary(label, summaries[label])
            if on_step is not None:
                on_step(r)

    if len(lanes) <= 1:
        for lane in lanes:
            take(run_lane(lane, *args, threads=threads, lines=False, progress=progress))
    else:
        import multiprocessing

        with ProcessPoolExecutor(
            max_workers=len(lanes),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            futures = [
                pool.submit(run_lane, lane, *args, threads=threads, lines=True, progress=progress) for lane in lanes
            ]
            try:
                for f in futures:
                    take(f.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    result = DemoResult(
        summaries,
        {},
        prompt_form="template" if (out / TEMPLATE_FILE).is_file() else "raw",
        steps=steps,
        workers=len(lanes) or 1,
        threads=threads,
    )
    _compare(out, options, result)
    return result


def exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Worker initializer: end this worker process when the demo process that started it is gone.

    A demo killed with SIGKILL (or a terminal closed) cannot shut its process pool down, and spawn
    workers would run on, orphaned, competing for the cores with the next run and writing into its
    output folder. A daemon thread polls the parent's pid (every ``poll_seconds``) and exits the
    worker at once (``os._exit(1)``; finished steps are on disk and a re-run resumes).

    Args:
        parent_pid: the demo process's pid (``os.getpid()`` in the parent).
    """
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _compare(out: Path, options: DemoOptions, result: DemoResult) -> None:
    """The comparisons, the findings and the report, from what the steps wrote."""
    from tuneshift.reports.html import write_report
    from tuneshift.reports.markdown import save_with_markdown
    from tuneshift.stats.findings import build_findings

    pair = options.pair
    inputs = []
    if "attribution" in options.methods:
        from tuneshift.stats.compare import compare_runs

        for protocol in options.protocols:
            c = compare_runs(out / protocol / "base", out / protocol / "tuned", pair=pair, min_n=options.min_n)
            save_with_markdown(c, out / protocol)
            result.comparisons[protocol] = c
            inputs.append(out / protocol)
        if options.ablation and "gold" in options.protocols:
            from tuneshift.stats.ablation_compare import compare_ablation

            result.ablation = compare_ablation(
                out / "gold" / "base" / "ablation", out / "gold" / "tuned" / "ablation", min_n=options.min_n
            )
            save_with_markdown(result.ablation, out / "gold")
    if "heads" in options.methods:
        from tuneshift.stats.heads_compare import compare_heads

        result.heads = compare_heads(
            out / "heads" / "base", out / "heads" / "tuned", null=out / "heads" / "null", min_n=options.min_n
        )
        save_with_markdown(result.heads, out / "heads")
        inputs.append(out / "heads")
    annotations = (None, None)
    if "concepts" in options.methods:
        from tuneshift.stats.concepts_rotation import compare_rotation
        from tuneshift.stats.concepts_shares import load_annotations

        result.concepts = compare_rotation(
            out / "concepts" / "base", out / "concepts" / "tuned", null=out / "concepts" / "null", min_n=options.min_n
        )
        save_with_markdown(result.concepts, out / "concepts")
        inputs.append(out / "concepts")
        if options.annotate_components:
            annotations = tuple(load_annotations(out / "concepts" / side) for side in ("base", "tuned"))
    result.findings = build_findings(
        result.comparisons,
        result.heads,
        result.concepts,
        *annotations,
        min_n=options.min_n,
        pair_label=f"{pair.base_label} vs {pair.tuned_label}",
        ablation=result.ablation,
    )
    save_with_markdown(result.findings, out)
    result.report = write_report(
        [out / "findings.json"] + inputs,
        out / "report.html",
        title=f"tuneshift demo: {pair.base_label} vs {pair.tuned_label}",
    )
