"""How many CPU threads a tuneshift process gives torch when the user does not say.

torch's own default is one intra-op thread per core, and its OpenMP threads spin-wait at every
barrier. On a machine whose cores are busy with other work that collapses: measured on this
project's 2-core machine with a CPU burner (``while :; do :; done``) on one core, an 8-record
attribution took 45 s with torch's 2 threads, against 15 s idle; with 1 thread it took 24 s, and
with 2 threads under ``OMP_WAIT_POLICY=PASSIVE`` 23 s, but passive waiting cost 25% when idle
(19-20 s instead of 15-16 s). So the default here counts the busy cores instead:

    threads = max(1, usable cores - round(1-minute load average))

(capped at the usable cores; ``os.sched_getaffinity``). Idle, that is torch's default; with one
core busy, one thread fewer. The choice is not printed. The load average is read once, when the command starts; it lags
(a burner started seconds ago barely shows) and, inside a container, may describe the whole
host, which then gives 1 thread: give ``--threads`` to choose. ``tuneshift demo`` does not use
this rule: it runs its two models in two worker processes with one thread each, which degrade
only by the fair share of a busy machine (:mod:`tuneshift.pipelines.demo`).
"""

from __future__ import annotations

import os

__all__ = ["usable_cores", "busy_cores", "default_threads"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores busy with other work: the 1-minute load average, rounded (0 where it is unknown)."""
    try:
        return max(0, round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        return 0


def default_threads() -> int:
    """torch intra-op threads for a command run without ``--threads`` (see the module docstring).

    Returns:
        An int in ``[1, usable_cores()]``.
    """
    usable = usable_cores()
    return max(1, min(usable, usable - busy_cores()))
