"""The main job: a model pair answers the bundled instructions; attribute both; compare.

``tuneshift demo`` is this module with a progress display. Re-running resumes: finished
records of each run are kept (the run directories are ordinary attribution runs); a model whose
runs are all complete with the same identity (model hashes, prompts, options: computed without
loading it, :func:`~tuneshift.runs.attribute_run.planned_identity`) is not loaded at all, so a
re-run of a finished demo only re-makes the comparisons and the report.

The protocol is the same for both models (docs/attribution.md, "Which protocol answers which
question"): the same prompt form -- the tuned model's chat template, written to
``OUT/prompt_template.jinja``, wraps every prompt for both models (the packaged base has no
template, and the tuned model given a raw prompt mostly stops at once, so raw prompts for both
cannot be run on this pair); when the tuned model has no template, both get the raw prompt. Two
response protocols: ``own`` (each model's greedy answer: how each reads the instruction while
writing its own answer) and ``gold`` (both models forced to the record's reference response,
identical response token ids: how each reads the instruction for the same answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tuneshift.files import atomic_write_text, check_out_dir
from tuneshift.models.pair import DEMO_PAIR, ModelPair

__all__ = ["DemoOptions", "DemoResult", "run_demo"]


@dataclass
class DemoOptions:
    """Settings of ``tuneshift demo``.

    Attributes:
        pair: the two models (default: the packaged Gemma 3 270M and its shipped instruct adapter).
        max_new_tokens: generation limit per response (tokens); 32 keeps the demo under ~10
            minutes on a 2-core CPU.
        batch_size: prompts per forward/backward batch.
        limit: only the first N bundled prompts (None: all 28).
        protocols: response protocols to run, each compared separately (``own``, ``gold``).
        device: where both models run (:func:`~tuneshift.models.loading.load_model`'s ``device``).
        dtype: the weights dtype of both models (``float32`` default; in each run's identity).
    """

    pair: ModelPair = field(default_factory=lambda: DEMO_PAIR)
    max_new_tokens: int = 32
    batch_size: int = 4
    limit: int | None = None
    protocols: tuple[str, ...] = ("own", "gold")
    device: str = "cpu"
    dtype: str = "float32"


@dataclass
class DemoResult:
    """What :func:`run_demo` made.

    Attributes:
        summaries: ``{(protocol, side): RunSummary}``.
        comparisons: ``{protocol: RunComparison}`` (each also saved in ``OUT/<protocol>/``).
        prompt_form: ``template`` (the tuned model's template for both) or ``raw``.
        report: the HTML report of the comparisons (``OUT/report.html``, ``tuneshift report``).
    """

    summaries: dict
    comparisons: dict
    prompt_form: str
    report: Path | None = None


def run_demo(out_dir: str | Path, options: DemoOptions = DemoOptions(),
             on_summary: Callable[[str, object], None] | None = None, progress: bool = True) -> DemoResult:
    """Attribute both models of the pair on the bundled prompts and compare them.

    Args:
        out_dir: folder for ``<protocol>/base``, ``<protocol>/tuned`` (runs), their
            ``<protocol>/comparison.json``/``.md``, ``prompt_template.jinja`` and ``report.html``.
        options: :class:`DemoOptions`.
        on_summary: called with ``("<protocol>, <side>", RunSummary)`` after each run.
        progress: show progress bars on stderr.

    Returns:
        A :class:`DemoResult`.

    Raises:
        InputFileError: ``out_dir`` is a file or a foreign folder.
        ModelSpecError: a model of the pair is not installed.
    """
    from tuneshift.data.encoding import model_chat_template
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts
    from tuneshift.methods.attribution.api import AttributionOptions
    from tuneshift.models.loading import load_model
    from tuneshift.models.specs import check_packaged, resolve_spec
    from tuneshift.runs.attribute_run import finished_run, planned_identity, run_attribution
    from tuneshift.stats.compare import compare_runs

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from tuneshift.errors import InputFileError

        raise InputFileError(f"output directory {out} is a file, not a directory")
    pair = options.pair
    for spec in (pair.base, pair.tuned):  # fail before the first long load if a model is missing
        check_packaged(resolve_spec(spec))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prompts = read_prompts(bundled_prompts_path(), limit=options.limit)
    out.mkdir(parents=True, exist_ok=True)
    summaries = {}
    template_file = out / "prompt_template.jinja"  # written by the tuned side; read by a re-run

    def attribution_options(protocol: str) -> AttributionOptions:
        return AttributionOptions(responses=protocol, max_new_tokens=options.max_new_tokens,
                                  batch_size=options.batch_size,
                                  chat_template=str(template_file) if template_file.is_file() else "none")

    for side, spec in (("tuned", pair.tuned), ("base", pair.base)):  # tuned first: its template is the form
        # a re-run: every run of this side complete with the same identity -> no model load at all
        finished = {p: finished_run(out / p / side,
                                    lambda p=p: planned_identity(spec, prompts, attribution_options(p), dtype=options.dtype),
                                    prompts) for p in options.protocols}
        if all(s is not None for s in finished.values()):
            for protocol, summary in finished.items():
                summaries[(protocol, side)] = summary
                if on_summary is not None:
                    on_summary(f"{protocol}, {side}", summary)
            continue
        loaded = load_model(spec, progress=progress, device=options.device, dtype=options.dtype)
        if side == "tuned":
            form = model_chat_template(loaded.tokenizer)
            if form is not None:  # the same text as `tuneshift template TUNED`
                atomic_write_text(template_file, form + "\n")
            elif template_file.is_file():
                template_file.unlink()  # this tuned model has no template: raw prompts for both
        for protocol in options.protocols:
            attribution = attribution_options(protocol)
            run_dir = out / protocol / side
            check_out_dir(run_dir)
            summaries[(protocol, side)] = run_attribution(loaded, prompts, run_dir, attribution,
                                                          label=f"{protocol}, {side}: {spec}", progress=progress)
            if on_summary is not None:
                on_summary(f"{protocol}, {side}", summaries[(protocol, side)])
        del loaded
    comparisons = {}
    for protocol in options.protocols:
        comparisons[protocol] = compare_runs(out / protocol / "base", out / protocol / "tuned", pair=pair)
        comparisons[protocol].save(out / protocol)
    from tuneshift.reports.html import write_report

    report = write_report([out / p for p in options.protocols], out / "report.html",
                          title=f"tuneshift demo: {pair.base_label} vs {pair.tuned_label}")
    return DemoResult(summaries, comparisons, "template" if template_file.is_file() else "raw", report)
