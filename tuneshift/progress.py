"""One progress helper: a rich progress bar on stderr with a count, elapsed time and an ETA.

Every long step of tuneshift (attribution runs, heads and concepts runs, annotation, tuning,
following evaluation, the paper import) shows its progress through :func:`progress_bar`, so
they all look and behave the same: a label, a bar, ``done/total`` with a unit, optional live
fields (``loss 0.41``), elapsed time and the estimated time remaining. It writes to stderr,
so results on stdout (``--json``) stay clean, and it can be disabled for library use.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

__all__ = ["Bar", "progress_bar"]


class Bar:
    """Handle of a running :func:`progress_bar` (no-op methods when disabled)."""

    def __init__(self, progress, task):
        self._progress, self._task = progress, task

    @property
    def console(self):
        """The ``rich.console.Console`` the bar draws on (print through it to keep the bar intact)."""
        return self._progress.console

    def advance(self, n: float = 1, **fields) -> None:
        """Count ``n`` more units done and update the live fields."""
        self._progress.update(self._task, advance=n, **fields)

    def update(self, *, total: float | None = None, completed: float | None = None, description: str | None = None,
               **fields) -> None:
        """Set the total, the done count, the label or live fields."""
        kw = {k: v for k, v in (("total", total), ("completed", completed), ("description", description)) if v is not None}
        self._progress.update(self._task, **kw, **fields)


@contextmanager
def progress_bar(label: str, total: float | None = None, unit: str = "", fields: dict[str, str] | None = None,
                 completed: float = 0, enabled: bool = True, console=None) -> Iterator[Bar]:
    """Show a progress bar while the ``with`` block runs.

    Args:
        label: what is being done (plain text, e.g. ``heads`` or ``base: gemma-3-270m``).
        total: units to do (None: unknown until :meth:`Bar.update`).
        unit: shown after the count (``records``, ``heads``, ``steps``).
        fields: live fields shown after the count, ``{name: initial text}``, each rendered as
            ``name value`` (the field ``detail`` bare, after the ETA) and updated through
            ``advance(name=...)``/``update(name=...)``.
        completed: units already done (a resumed run).
        enabled: False hides the bar (library calls, tests).
        console: a ``rich.console.Console`` (default: stderr).

    Yields:
        A :class:`Bar`.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    fields = dict(fields or {})
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(escape(unit)))
    columns += [TextColumn(f"{escape(k)} {{task.fields[{k}]}}") for k in fields if k != "detail"]
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    if "detail" in fields:
        columns.append(TextColumn("{task.fields[detail]}"))
    console = console or Console(stderr=True, soft_wrap=True)
    with Progress(*columns, console=console, disable=not enabled, transient=False) as progress:
        task = progress.add_task(escape(label), total=total, completed=completed, **fields)
        yield Bar(progress, task)
