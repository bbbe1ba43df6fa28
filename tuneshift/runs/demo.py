"""The main job: a model pair answers the bundled instructions; attribute both; compare.

``tuneshift demo`` is this module with a progress display. Re-running resumes: finished
records of each run are kept (the run directories are ordinary attribution runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tuneshift.files import check_out_dir
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
    """

    pair: ModelPair = field(default_factory=lambda: DEMO_PAIR)
    max_new_tokens: int = 32
    batch_size: int = 4
    limit: int | None = None


@dataclass
class DemoResult:
    """What :func:`run_demo` made: the run summaries (``{"base": ..., "tuned": ...}``) and the comparison."""

    summaries: dict
    comparison: object


def run_demo(out_dir: str | Path, options: DemoOptions = DemoOptions(),
             on_summary: Callable[[str, object], None] | None = None, progress: bool = True) -> DemoResult:
    """Attribute both models of the pair on the bundled prompts and compare them.

    Args:
        out_dir: folder for ``base/``, ``tuned/`` (runs) and ``comparison.json``/``.md``.
        options: :class:`DemoOptions`.
        on_summary: called with ``(side, RunSummary)`` after each run.
        progress: show progress bars on stderr.

    Returns:
        A :class:`DemoResult`.

    Raises:
        InputFileError: ``out_dir`` is a file or a foreign folder.
        ModelSpecError: a model of the pair is not installed.
    """
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts
    from tuneshift.methods.attribution.api import AttributionOptions
    from tuneshift.models.loading import load_model
    from tuneshift.models.specs import check_packaged, resolve_spec
    from tuneshift.runs.attribute_run import run_attribution
    from tuneshift.stats.compare import compare_runs

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from tuneshift.errors import InputFileError

        raise InputFileError(f"output directory {out} is a file, not a directory")
    pair = options.pair
    for spec in (pair.base, pair.tuned):  # fail before the first long load if a model is missing
        check_packaged(resolve_spec(spec))
    attribution = AttributionOptions(responses="generate", max_new_tokens=options.max_new_tokens,
                                     batch_size=options.batch_size)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prompts = read_prompts(bundled_prompts_path(), limit=options.limit)
    summaries = {}
    for side, spec in (("base", pair.base), ("tuned", pair.tuned)):
        check_out_dir(out / side)
        loaded = load_model(spec, progress=progress)
        summaries[side] = run_attribution(loaded, prompts, out / side, attribution, label=f"{side}: {spec}",
                                          progress=progress)
        if on_summary is not None:
            on_summary(side, summaries[side])
        del loaded
    comparison = compare_runs(out / "base", out / "tuned", pair=pair)
    comparison.save(out)
    return DemoResult(summaries, comparison)
