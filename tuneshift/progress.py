"""One progress helper: a rich progress bar on stderr with a count, elapsed time and an ETA.

Every long step of tuneshift (attribution runs, heads and concepts runs, annotation, tuning,
following evaluation, the paper import) shows its progress through :func:`progress_bar`, so
they all look and behave the same: a label, a bar, ``done/total`` with a unit, optional live
fields (``loss 0.41``), elapsed time and the estimated time remaining. It writes to stderr,
so results on stdout (``--json``) stay clean, and it can be disabled for library use.

Outside a terminal (a log file, a pipe, CI) there is no live bar: one plain line per step,
``label: 120/10000 records, elapsed 35 s, ETA 48 min``, rate-limited to one line per
:data:`PLAIN_INTERVAL` seconds and one per 10% of the total (so a 10,000-record run writes a few
dozen lines, not one per record), plus the final line. Each line is printed once. The same
plain lines are used on a terminal when ``TUNESHIFT_PROGRESS=lines`` (:data:`LINES_ENV`).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

from tuneshift import interrupts

__all__ = ["Bar", "progress_bar", "PLAIN_INTERVAL", "LINES_ENV"]

#: ``TUNESHIFT_PROGRESS=lines`` prints plain lines even on a terminal (``tuneshift demo``'s
#: worker processes share one terminal, where live bars of two processes would overwrite each other).
LINES_ENV = "TUNESHIFT_PROGRESS"

#: seconds between two plain progress lines outside a terminal (10% steps also print one).
PLAIN_INTERVAL = 30.0


def _duration(seconds: float) -> str:
    """``35 s``, ``4.2 min``, ``1.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class _PlainProgress:
    """The plain-line stand-in for ``rich.progress.Progress`` outside a terminal (one task).

    A line is printed when the done count or a field changed and either :data:`PLAIN_INTERVAL`
    seconds passed since the last line or a 10% step of the total was crossed; the final state
    is printed once when the block ends.
    """

    def __init__(self, console, label: str, unit: str, total, completed, fields: dict, interval: float):
        self.console, self.label, self.unit, self.interval = console, label, unit, interval
        self.total, self.completed, self.fields = total, completed, dict(fields)
        self.t0 = time.monotonic()
        self.start = completed  # the ETA is from this invocation's rate (a resumed run)
        self.last_line: str | None = None
        self.last_time = self.t0
        self.last_decile = self._decile()

    def _decile(self) -> int:
        return int(10 * self.completed / self.total) if self.total else -1

    def line(self) -> str:
        el = time.monotonic() - self.t0
        count = f"{self.completed:g}/{self.total:g}" if self.total is not None else f"{self.completed:g}"
        parts = [f"{self.label}: {count}" + (f" {self.unit}" if self.unit else "")]
        parts += [f"{k} {v}" for k, v in self.fields.items() if k != "detail" and str(v) != ""]
        parts.append(f"elapsed {_duration(el)}")
        done = self.completed - self.start
        if self.total is not None:
            left = max(self.total - self.completed, 0)
            parts.append("ETA " + (_duration(el / done * left) if done > 0 else "?") if left else "done")
        detail = str(self.fields.get("detail", "") or "")
        return ", ".join(parts) + (f" ({detail})" if detail else "")

    def _emit(self) -> None:
        text = self.line()
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.last_line, self.last_time, self.last_decile = text, time.monotonic(), self._decile()

    def update(self, task, advance: float | None = None, total=None, completed=None, description=None, **fields):
        changed = False
        if total is not None:
            self.total = total
        if description is not None:
            self.label = description
        if completed is not None and completed != self.completed:
            self.completed, changed = completed, True
        if advance:
            self.completed += advance
            changed = True
        for k, v in fields.items():
            if self.fields.get(k) != v:
                self.fields[k], changed = v, True
        if not changed:
            return
        now = time.monotonic()
        if now - self.last_time >= self.interval or self._decile() > self.last_decile:
            self._emit()

    def finish(self) -> None:
        self.fields["detail"] = ""
        if self.line().split(", elapsed")[0] != (self.last_line or "").split(", elapsed")[0]:
            self._emit()


class Bar:
    """Handle of a running :func:`progress_bar` (no-op methods when disabled)."""

    def __init__(self, progress, task):
        self._progress, self._task = progress, task

    @property
    def console(self):
        """The ``rich.console.Console`` the bar draws on (print through it to keep the bar intact)."""
        return self._progress.console

    def advance(self, n: float = 1, **fields) -> None:
        """Count ``n`` more units done and update the live fields. A safe point for Ctrl-C: an
        interrupt swallowed since the step began is raised here (:func:`tuneshift.interrupts.check`).

        Raises:
            KeyboardInterrupt: a Ctrl-C is pending.
        """
        self._progress.update(self._task, advance=n, **fields)
        interrupts.check()

    def update(
        self, *, total: float | None = None, completed: float | None = None, description: str | None = None, **fields
    ) -> None:
        """Set the total, the done count, the label or live fields."""
        kw = {
            k: v for k, v in (("total", total), ("completed", completed), ("description", description)) if v is not None
        }
        self._progress.update(self._task, **kw, **fields)


@contextmanager
def progress_bar(
    label: str,
    total: float | None = None,
    unit: str = "",
    fields: dict[str, str] | None = None,
    completed: float = 0,
    enabled: bool = True,
    console=None,
    plain_interval: float | None = None,
) -> Iterator[Bar]:
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
        console: a ``rich.console.Console`` (default: stderr). When it is not a terminal, plain
            lines replace the live bar (see the module docstring).
        plain_interval: seconds between plain lines (default :data:`PLAIN_INTERVAL`).

    Yields:
        A :class:`Bar`.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    fields = dict(fields or {})
    console = console or Console(stderr=True, soft_wrap=True)
    if enabled and (not console.is_terminal or os.environ.get(LINES_ENV) == "lines"):
        # a log or a pipe (or several processes sharing a terminal): plain lines, no live bar
        plain = _PlainProgress(
            console, label, unit, total, completed, fields, PLAIN_INTERVAL if plain_interval is None else plain_interval
        )
        yield Bar(plain, None)
        plain.finish()
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(escape(unit)))
    columns += [TextColumn(f"{escape(k)} {{task.fields[{k}]}}") for k in fields if k != "detail"]
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    if "detail" in fields:
        columns.append(TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console, disable=not enabled, transient=False) as progress:
        task = progress.add_task(escape(label), total=total, completed=completed, **fields)
        yield Bar(progress, task)
