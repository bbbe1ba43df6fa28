"""What ``tuneshift report`` is given: saved comparisons, pairs of runs, or folders of comparisons.

Each path on the command line is one of:

* a saved comparison -- a folder holding (or the file itself) ``comparison.json``
  (``tuneshift compare``), ``heads_comparison.json`` (``compare-heads``) or
  ``concepts_rotation.json`` (``compare-concepts``);
* a run directory (``attribute``, ``heads`` or ``concepts``): runs come in pairs, the
  pre-trained model's run first, and the pair is compared on the spot with the defaults of the
  matching compare command;
* a folder whose sub-folders hold saved comparisons (the output of ``tuneshift demo``), with
  the demo's findings table (``findings.json``) when the folder has one;
* a findings table (``findings.json``, :class:`~tuneshift.stats.findings.Findings`), shown first.

An attribution comparison needs its two runs for the per-record view; they are found at the
paths stored in ``comparison.json`` or, when those moved, as ``base``/``tuned`` next to it (the
demo's layout). The per-verb heads view needs the two heads runs in the same way.

This module only finds and reads the inputs; which section shows an input of each type is the
section registry's (:mod:`tuneshift.reports.html.sections`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

from tuneshift.errors import InputFileError

__all__ = [
    "AttributionInput",
    "HeadsInput",
    "ConceptsInput",
    "FindingsInput",
    "AblationInput",
    "ReportInput",
    "collect_inputs",
]

COMPARISON_FILES = {
    "comparison.json": "attribution",
    "heads_comparison.json": "heads",
    "concepts_rotation.json": "concepts",
}


@dataclass
class AttributionInput:
    """An attribution comparison and (when found) its two runs.

    Attributes:
        title: section title (the comparison's folder). comparison: the
            :class:`~tuneshift.stats.compare.RunComparison`. base, tuned: the runs
            (:class:`~tuneshift.storage.attribution.Run`), or None when they cannot be found.
        notes: what could not be shown and why.
    """

    title: str
    comparison: object
    base: object | None = None
    tuned: object | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class HeadsInput:
    """A heads comparison and, when its runs are found, the per-verb head changes.

    Attributes:
        title: section title. comparison: :class:`~tuneshift.stats.heads_compare.HeadsComparison`.
        verb_heads: ``{verb: [HeadChange]}`` (:func:`~tuneshift.stats.heads_compare.verb_head_changes`)
            or None when the runs are not found. notes: as in :class:`AttributionInput`.
    """

    title: str
    comparison: object
    verb_heads: dict | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ConceptsInput:
    """A concepts comparison (:class:`~tuneshift.stats.concepts_rotation.RotationComparison`)."""

    title: str
    comparison: object
    notes: list[str] = field(default_factory=list)


@dataclass
class FindingsInput:
    """The findings table of a pair (:class:`~tuneshift.stats.findings.Findings`); the page shows it first."""

    title: str
    findings: object
    notes: list[str] = field(default_factory=list)


@dataclass
class AblationInput:
    """An ablation comparison (:class:`~tuneshift.stats.ablation_compare.AblationComparison`,
    ``ablation_comparison.json``), shown after the attribution comparison of the same folder."""

    title: str
    comparison: object
    notes: list[str] = field(default_factory=list)


FINDINGS_FILE = "findings.json"
ABLATION_FILE = "ablation_comparison.json"

ReportInput = Union[AttributionInput, HeadsInput, ConceptsInput, FindingsInput, AblationInput]


def _ablation_from_file(f: Path) -> AblationInput:
    from tuneshift.stats.ablation_compare import AblationComparison

    return AblationInput(str(f.parent), AblationComparison.load(f))


def _with_ablation(f: Path) -> list:
    """The comparison of ``f`` and, when its folder holds one, the ablation comparison next to it."""
    items = [_from_file(f)]
    if (f.parent / ABLATION_FILE).is_file():
        items.append(_ablation_from_file(f.parent / ABLATION_FILE))
    return items


def _comparison_file(p: Path) -> Path | None:
    if p.is_file() and p.name in COMPARISON_FILES:
        return p
    if p.is_dir():
        for name in COMPARISON_FILES:
            if (p / name).is_file():
                return p / name
    return None


def _run_kind(p: Path) -> str | None:
    mf = p / "manifest.json"
    if not (p.is_dir() and mf.is_file()):
        return None
    try:
        m = json.loads(mf.read_text())
    except (OSError, ValueError) as e:
        raise InputFileError(f"{mf} is not valid JSON ({e})") from None
    return m.get("kind", "attribution") if isinstance(m, dict) else None


def _run_candidates(stored: str | None, near: Path, side: str) -> list[Path]:
    """Where the run a saved comparison names may be: the stored path (relative paths: from the
    working directory, the comparison's folder or one of its three nearest ancestors, since the
    compare command may have run anywhere), then ``near/side`` and ``near/<stored name>``."""
    out: list[Path] = []
    if stored:
        s = Path(stored)
        out.append(s)
        if not s.is_absolute():
            out += [near / s, *(a / s for a in list(near.resolve().parents)[:3])]
    out.append(near / side)
    if stored:
        out.append(near / Path(stored).name)
    seen, unique = set(), []
    for c in out:
        if str(c) not in seen:
            seen.add(str(c))
            unique.append(c)
    return unique


def _find_run(stored: str | None, near: Path, side: str) -> Path | None:
    """The run a saved comparison points to (:func:`_run_candidates`), or None."""
    return next((c for c in _run_candidates(stored, near, side) if (c / "manifest.json").is_file()), None)


def _not_found(near: Path, missing: dict[str, str | None]) -> str:
    tried = "; ".join(
        f"{side} ({stored}): tried {', '.join(str(c) for c in _run_candidates(stored, near, side))}"
        for side, stored in missing.items()
    )
    return f"run directories not found -- {tried}"


def _attribution_from_file(f: Path) -> AttributionInput:
    from tuneshift.stats.compare import RunComparison
    from tuneshift.storage.attribution import load_run

    c = RunComparison.load(f)
    item = AttributionInput(str(f.parent), c)
    paths = {side: _find_run(stored, f.parent, side) for side, stored in (("base", c.base_run), ("tuned", c.tuned_run))}
    if all(paths.values()):
        item.base, item.tuned = load_run(paths["base"]), load_run(paths["tuned"])
    else:
        missing = {
            side: stored for side, stored in (("base", c.base_run), ("tuned", c.tuned_run)) if paths[side] is None
        }
        item.notes.append(_not_found(f.parent, missing) + "; the per-record view needs them")
    return item


def _verb_heads(c, base_path: Path | None, tuned_path: Path | None):
    from tuneshift.stats.heads_compare import INSTRUCTION_VERBS, verb_head_changes
    from tuneshift.storage.heads import load_heads

    b, t = load_heads(base_path), load_heads(tuned_path)
    return verb_head_changes(b.knowledge(), t.knowledge(), INSTRUCTION_VERBS, layers=c.layers)


def _heads_from_file(f: Path) -> HeadsInput:
    from tuneshift.stats.heads_compare import HeadsComparison

    c = HeadsComparison.load(f)
    item = HeadsInput(str(f.parent), c)
    bp, tp = (_find_run(info.path, f.parent, side) for side, info in (("base", c.base), ("tuned", c.tuned)))
    if bp and tp:
        item.verb_heads = _verb_heads(c, bp, tp)
    else:
        missing = {side: info.path for side, info, p in (("base", c.base, bp), ("tuned", c.tuned, tp)) if p is None}
        item.notes.append(_not_found(f.parent, missing) + "; the per-verb view of changed heads needs them")
    return item


def _findings_from_file(f: Path) -> FindingsInput:
    from tuneshift.stats.findings import Findings

    return FindingsInput(str(f.parent), Findings.load(f))


def _concepts_from_file(f: Path) -> ConceptsInput:
    from tuneshift.stats.concepts_rotation import RotationComparison

    return ConceptsInput(str(f.parent), RotationComparison.load(f))


def _attribution_from_runs(title: str, base: Path, tuned: Path, allow_mismatch: bool) -> AttributionInput:
    from tuneshift.stats.compare import compare_runs
    from tuneshift.storage.attribution import load_run

    b, t = load_run(base), load_run(tuned)
    return AttributionInput(title, compare_runs(b, t, allow_mismatch=allow_mismatch), b, t)


def _heads_from_runs(title: str, base: Path, tuned: Path, allow_mismatch: bool) -> HeadsInput:
    from tuneshift.stats.heads_compare import compare_heads

    c = compare_heads(base, tuned)
    return HeadsInput(title, c, _verb_heads(c, base, tuned))


def _concepts_from_runs(title: str, base: Path, tuned: Path, allow_mismatch: bool) -> ConceptsInput:
    from tuneshift.stats.concepts_rotation import compare_rotation

    return ConceptsInput(title, compare_rotation(base, tuned))


#: comparison kind (:data:`COMPARISON_FILES`) -> reader of its saved file
FILE_READERS = {"attribution": _attribution_from_file, "heads": _heads_from_file, "concepts": _concepts_from_file}
#: run kind (the manifest's ``kind``) -> the comparison of a pair of such runs, made on the spot
RUN_COMPARERS = {"attribution": _attribution_from_runs, "heads": _heads_from_runs, "concepts": _concepts_from_runs}


def _from_file(f: Path) -> ReportInput:
    return FILE_READERS[COMPARISON_FILES[f.name]](f)


def _from_runs(kind: str, base: Path, tuned: Path, allow_mismatch: bool) -> ReportInput:
    compare = RUN_COMPARERS.get(kind)
    if compare is None:
        kinds = list(RUN_COMPARERS)
        raise InputFileError(
            f"{base} is a '{kind}' directory; the report shows {', '.join(kinds[:-1])} and {kinds[-1]} results"
        )
    return compare(f"{base} vs {tuned}", base, tuned, allow_mismatch)


def collect_inputs(paths: Sequence[str | Path], allow_mismatch: bool = False) -> list[ReportInput]:
    """Resolve the report's command-line paths into comparisons (see the module docstring).

    Args:
        paths: comparisons, run directories (in base, tuned pairs) or folders of comparisons.
        allow_mismatch: compare a pair of attribution runs made under different protocols
            (as ``tuneshift compare --allow-mismatch``).

    Returns:
        One input per comparison, in the order given (a folder's comparisons by sub-folder name).

    Raises:
        InputFileError: a path does not exist or holds nothing the report shows; a run
            without its partner run of the same kind; unreadable results.
        ProtocolMismatchError: a pair of attribution runs made under different protocols.
    """
    if not paths:
        raise InputFileError("give at least one comparison, pair of runs, or folder of comparisons")
    out: list[ReportInput] = []
    pending: tuple[str, Path] | None = None
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputFileError(f"{p} does not exist")
        if p.name == FINDINGS_FILE and p.is_file():
            out.append(_findings_from_file(p))
            continue
        if p.name == ABLATION_FILE and p.is_file():
            out.append(_ablation_from_file(p))
            continue
        kind = _run_kind(p)
        if kind is not None:
            if pending is None:
                pending = (kind, p)
                continue
            if pending[0] != kind:
                raise InputFileError(
                    f"{pending[1]} is a {pending[0]} run but {p} is a {kind} run; runs are given in "
                    "pairs of the same kind (pre-trained first, then instruction-tuned)"
                )
            out.append(_from_runs(kind, pending[1], p, allow_mismatch))
            pending = None
            continue
        if pending is not None:
            raise InputFileError(
                f"{pending[1]} is a run without a partner: give the instruction-tuned model's "
                f"{pending[0]} run right after it"
            )
        f = _comparison_file(p)
        if f is not None:
            out.extend(_with_ablation(f) if p.is_dir() else [_from_file(f)])
            continue
        found = (
            sorted(f for d in sorted(p.iterdir()) if d.is_dir() and (f := _comparison_file(d)) is not None)
            if p.is_dir()
            else []
        )
        findings = p / FINDINGS_FILE if p.is_dir() and (p / FINDINGS_FILE).is_file() else None
        if not found and findings is None:
            raise InputFileError(
                f"{p} is not a comparison, a run directory or a folder of comparisons "
                f"(looked for {', '.join(COMPARISON_FILES)})"
            )
        if findings is not None:
            out.append(_findings_from_file(findings))
        out.extend(x for f in found for x in _with_ablation(f))
    if pending is not None:
        raise InputFileError(
            f"{pending[1]} is a run without a partner: give the instruction-tuned model's "
            f"{pending[0]} run right after it"
        )
    return out
