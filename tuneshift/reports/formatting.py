"""One formatting module for numbers and tables, in the terminal (rich) and in Markdown.

Conventions (every report uses them): an undefined number (None, NaN, inf) prints as ``–``;
means and statistics with 3 decimals unless said otherwise; p-values with 4 decimals, or in
scientific notation below 1e-3; shares as percentages with no decimals.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["num", "pval", "pct", "mean_std", "markdown_table", "print_table", "DASH"]

DASH = "–"


def _undefined(x) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def num(x: float | None, nd: int = 3) -> str:
    """``x`` with ``nd`` decimals, ``–`` when undefined."""
    return DASH if _undefined(x) else f"{float(x):.{nd}f}"


def pval(x: float | None) -> str:
    """A p-value: ``0.0123``, ``1.23e-05``, or ``–`` when undefined."""
    if _undefined(x):
        return DASH
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def pct(x: float | None, nd: int = 0) -> str:
    """A share in [0, 1] as a percentage (``0.7`` -> ``70%``), ``–`` when undefined."""
    return DASH if _undefined(x) else f"{100 * float(x):.{nd}f}%"


def mean_std(mean: float | None, std: float | None, nd: int = 3) -> str:
    """``mean±std`` (``–`` for an undefined part)."""
    return f"{num(mean, nd)}±{num(std, nd)}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (cells are used as given; ``|`` is escaped)."""

    def cell(c) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def print_table(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    console=None,
    left: Sequence[int] = (0,),
    min_width: int = 0,
) -> None:
    """Print a rich table: columns in ``left`` are left-aligned, the others right-aligned.

    Outside a terminal (a log file, a pipe) the table is printed as its title and a Markdown
    table (:func:`markdown_table`) instead: a rich table there is cut to the console width
    (80 columns), dropping the last columns and wrapping labels over several lines.

    Args:
        title: table title (plain text; not parsed as rich markup).
        header, rows: column names and string cells.
        console: a ``rich.console.Console`` (default: a new one on stdout).
        left: indices of left-aligned columns.
        min_width: kept for callers; outside a terminal the Markdown table has no width limit.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:  # a log or a pipe: every column, one line per row, whatever the width
        console.print(f"{title}\n\n{markdown_table(header, rows)}\n", markup=False, highlight=False, soft_wrap=True)
        return
    tab = Table(title=escape(title), title_justify="left")
    for i, h in enumerate(header):
        tab.add_column(escape(str(h)), justify="left" if i in left else "right")
    for r in rows:
        tab.add_row(*[escape(str(c)) for c in r])
    console.print(tab)
