"""Every result's Markdown twin: one renderer per result type, dispatched by type.

Results (:class:`~tuneshift.results.Result`) do not render themselves: ``result.save(dir)``
writes its JSON only. :func:`render_markdown` turns a result into its Markdown document, the
renderer chosen by the result's type (``functools.singledispatch``); :func:`save_with_markdown`
writes the JSON and, next to it, the twin ``<FILE stem>.md`` (``comparison.json`` ->
``comparison.md``), atomically.

Renderers, by result type:

* :class:`~tuneshift.stats.compare.RunComparison`: :func:`~tuneshift.reports.compare_report.comparison_markdown`
* :class:`~tuneshift.stats.compare.Sensitivity`: :func:`~tuneshift.reports.compare_report.sensitivity_markdown`
* :class:`~tuneshift.stats.paper_tables.PaperTables`: :func:`~tuneshift.reports.paper_tables_report.tables_markdown`
* :class:`~tuneshift.stats.heads_compare.HeadsComparison`: :func:`~tuneshift.reports.heads_report.heads_markdown`
* :class:`~tuneshift.stats.concepts_rotation.RotationComparison`:
  :func:`~tuneshift.reports.concepts_report.rotation_markdown`
* :class:`~tuneshift.stats.concepts_shares.SharesComparison`: :func:`~tuneshift.reports.concepts_report.shares_markdown`
* :class:`~tuneshift.stats.ablation_compare.AblationComparison`:
  :func:`~tuneshift.reports.ablation_report.ablation_markdown`
* :class:`~tuneshift.stats.findings.Findings`: :func:`~tuneshift.reports.findings_report.findings_markdown`
* :class:`~tuneshift.tuning.following.FollowingEvaluation`:
  :func:`~tuneshift.reports.following_report.evaluation_markdown`
* :class:`~tuneshift.tuning.following.FollowingResult`:
  :func:`~tuneshift.reports.following_report.following_result_markdown`

A new result type gets a twin with ``render_markdown.register(MyResult, my_markdown)``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from tuneshift.files import atomic_write_text
from tuneshift.reports.ablation_report import ablation_markdown
from tuneshift.reports.compare_report import comparison_markdown, sensitivity_markdown
from tuneshift.reports.concepts_report import rotation_markdown, shares_markdown
from tuneshift.reports.findings_report import findings_markdown
from tuneshift.reports.following_report import evaluation_markdown, following_result_markdown
from tuneshift.reports.heads_report import heads_markdown
from tuneshift.reports.paper_tables_report import tables_markdown
from tuneshift.results import Result
from tuneshift.stats.ablation_compare import AblationComparison
from tuneshift.stats.compare import RunComparison, Sensitivity
from tuneshift.stats.concepts_rotation import RotationComparison
from tuneshift.stats.concepts_shares import SharesComparison
from tuneshift.stats.findings import Findings
from tuneshift.stats.heads_compare import HeadsComparison
from tuneshift.stats.paper_tables import PaperTables
from tuneshift.tuning.following import FollowingEvaluation, FollowingResult

__all__ = ["render_markdown", "markdown_path", "save_with_markdown"]


@functools.singledispatch
def render_markdown(result) -> str:
    """The Markdown document of ``result`` (the renderer registered for its type; see the module docstring).

    Raises:
        TypeError: no renderer is registered for the type of ``result``.
    """
    raise TypeError(
        f"no Markdown renderer for {type(result).__name__}; "
        "register one with tuneshift.reports.markdown.render_markdown.register"
    )


for _type, _renderer in (
    (RunComparison, comparison_markdown),
    (Sensitivity, sensitivity_markdown),
    (PaperTables, tables_markdown),
    (HeadsComparison, heads_markdown),
    (RotationComparison, rotation_markdown),
    (SharesComparison, shares_markdown),
    (AblationComparison, ablation_markdown),
    (Findings, findings_markdown),
    (FollowingEvaluation, evaluation_markdown),
    (FollowingResult, following_result_markdown),
):
    render_markdown.register(_type, _renderer)
del _type, _renderer


def markdown_path(result: Result, out_dir: str | os.PathLike) -> Path:
    """Where the twin of ``result`` goes: ``out_dir/<FILE stem>.md`` (``comparison.json`` -> ``comparison.md``)."""
    return Path(out_dir) / (Path(result.FILE).stem + ".md")


def save_with_markdown(result: Result, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Save ``result`` (:meth:`~tuneshift.results.Result.save`: its JSON, and whatever else its
    class writes, e.g. the figures of a concepts comparison) and its Markdown twin
    (:func:`render_markdown`, written atomically to :func:`markdown_path`).

    The Markdown is rendered before anything is written, so a result without a renderer writes nothing.

    Returns:
        ``{"json": path, "markdown": path, ...}``: the paths :meth:`~tuneshift.results.Result.save`
        returned, with the twin second.

    Raises:
        TypeError: no renderer for the type of ``result``.
        InputFileError: ``out_dir`` is a file.
    """
    text = render_markdown(result)
    paths = result.save(out_dir)
    md = markdown_path(result, out_dir)
    atomic_write_text(md, text)
    return {"json": paths["json"], "markdown": md, **{k: p for k, p in paths.items() if k != "json"}}
