"""The findings table (:class:`~tuneshift.stats.findings.Findings`) as Markdown and on the terminal
(``findings.md`` is written by :func:`tuneshift.reports.markdown.save_with_markdown`)."""

from __future__ import annotations

import math

from tuneshift.reports.formatting import markdown_table, print_table, pval

__all__ = ["findings_markdown", "finding_cells", "print_findings"]

HEADERS = ["finding", "paper (LLaMA-7B → Vicuna-7B)", "this pair: estimate [95% CI]", "test", "n", "verdict"]


def _num(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:+.3f}".replace("-", "−")


def finding_cells(row) -> list[str]:
    """The table cells of one :class:`~tuneshift.stats.findings.FindingRow` (:data:`HEADERS`)."""
    est = _num(row.estimate)
    if math.isfinite(row.ci_low) and math.isfinite(row.ci_high):
        est += f" [{_num(row.ci_low)}, {_num(row.ci_high)}]"
    if row.detail:
        est += f" ({row.detail})"
    test = f"{row.test} p {pval(row.p)}" if math.isfinite(row.p) else (row.reason or "–")
    name = row.finding + (" (primary)" if row.role == "primary" else "")
    return [name, row.paper, est, test, f"{row.n} {row.n_unit}", row.verdict]


def findings_markdown(findings) -> str:
    """The findings as a Markdown section: one table, then how to read it."""
    rows = [finding_cells(r) for r in findings.rows]
    parts = [f"## Findings: {findings.pair}" if findings.pair else "## Findings", markdown_table(HEADERS, rows)]
    parts += [f"* {n}" for n in findings.notes]
    return "\n\n".join(parts[:2]) + ("\n\n" + "\n".join(parts[2:]) if len(parts) > 2 else "") + "\n"


def print_findings(findings, console) -> None:
    """The findings on ``console`` (:func:`~tuneshift.reports.formatting.print_table`: a ``rich``
    table on a terminal, Markdown outside one), then how to read them."""
    print_table(
        f"Findings: {findings.pair}" if findings.pair else "Findings",
        HEADERS,
        [finding_cells(r) for r in findings.rows],
        console,
        left=range(len(HEADERS)),
    )
    for n in findings.notes:
        console.print(f"* {n}", markup=False, highlight=False)
