"""Ctrl-C that is never lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT arrives.
If that is inside a ``__del__`` (e.g. a regex object collected while a tokenizer loads) the
exception is printed as "Exception ignored in ..." and swallowed, and the command went on to
the end (seen once in 12 Ctrl-C's during a model load, in a new-user trial). The CLI therefore
installs :func:`install`'s handler: it records the interrupt before raising, and the long loops
call :func:`check` at their safe points (after each progress step, inside every backward pass
through the gradient hooks of :mod:`tuneshift.methods.attribution.gradient`), so a swallowed
interrupt is raised again there. Library use without :func:`install` is unchanged.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["install", "check", "pending", "reset"]

_pending = False


def _on_sigint(signum, frame) -> None:
    """The SIGINT handler: remember the interrupt, then raise as Python's default handler does."""
    global _pending
    _pending = True
    raise KeyboardInterrupt


def install() -> None:
    """Use the remembering SIGINT handler (the CLI's entry point calls this); clears an earlier
    interrupt. A no-op outside the main thread (signal handlers can only be set there)."""
    reset()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived and was swallowed since :func:`install`.

    Raises:
        KeyboardInterrupt: an interrupt is pending.
    """
    if _pending:
        raise KeyboardInterrupt


def pending() -> bool:
    """True when a Ctrl-C arrived since :func:`install` (or :func:`reset`)."""
    return _pending


def reset() -> None:
    """Forget a recorded interrupt."""
    global _pending
    _pending = False
