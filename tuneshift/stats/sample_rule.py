"""The one rule for when an estimate may carry a confidence interval or a test.

A bootstrap CI (BCa) of 2-5 paired differences, or a Welch t-test against a group of three
identical values, is a number without meaning: the interval is as narrow as the few values
happen to be, and a zero-variance group makes any difference look infinitely significant.
Every CI and p-value tuneshift reports (paired rows and controls, the unpaired Welch view,
followed vs unfollowed, the position profile's Wilcoxon test, the sensitivity grid, heads
Table 3, concepts Table 5) goes through this rule first:

* **one sample** (paired differences): at least ``min_n`` pairs, and the differences are not
  all the same (``"too few pairs (5)"``, ``"no variance"``);
* **two samples** (Welch): *each* group has at least ``min_n`` values, and *neither* group is
  constant -- a group whose values are all identical gives no test, even when the other
  group varies (``"too few (3)"``, naming the smaller group's size; ``"no variance"``).

Below the rule the CI and every p-value are NaN (``null`` in JSON, ``–`` in tables, never
coloured) and the row carries the reason; means, standard deviations and counts are still
reported (they describe the sample, they claim nothing beyond it).

``DEFAULT_MIN_N = 10``: below about ten values the bootstrap distribution of a mean is too
coarse for its percentiles (let alone the BCa acceleration, a jackknife over n values) to be a
95% interval, and the t distribution's tail rests on a variance estimate of a handful of values.
It is an option everywhere (``min_n=`` in Python, ``--min-n`` on the command line, at least 2)
and is stored with each saved comparison, so a report re-renders the same rule.
"""

from __future__ import annotations

import numpy as np

from tuneshift.errors import OptionError

__all__ = ["DEFAULT_MIN_N", "check_min_n", "paired_reason", "two_sample_reason", "NO_VARIANCE"]

#: the default minimum number of pairs (one sample) or of values per group (two samples).
DEFAULT_MIN_N = 10
#: the reason given when a sample's values are all identical.
NO_VARIANCE = "no variance"


def check_min_n(min_n) -> int:
    """Validate a minimum sample size.

    Args:
        min_n: the minimum number of pairs or of values per group.

    Returns:
        ``min_n`` as an int.

    Raises:
        OptionError: ``min_n`` is not an integer >= 2 (a CI or a test needs at least two values).
    """
    if isinstance(min_n, bool) or not isinstance(min_n, (int, np.integer)) or int(min_n) < 2:
        raise OptionError("min_n", f"must be an integer >= 2 (a CI or a test needs at least 2 values), got {min_n!r}")
    return int(min_n)


def _finite(x) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def paired_reason(differences, min_n: int = DEFAULT_MIN_N) -> str | None:
    """Why a one-sample estimate (paired differences) may carry no CI or test, or None.

    Args:
        differences: the paired differences (non-finite values are not counted).
        min_n: the minimum number of pairs (>= 2).

    Returns:
        ``"too few pairs (n)"`` below ``min_n`` pairs, ``"no variance"`` when every difference
        is the same, else None (a CI and tests may be computed).

    Raises:
        OptionError: a bad ``min_n``.
    """
    min_n = check_min_n(min_n)
    d = _finite(differences)
    if d.size < min_n:
        return f"too few pairs ({d.size})"
    if np.all(d == d[0]):
        return NO_VARIANCE
    return None


def two_sample_reason(a, b, min_n: int = DEFAULT_MIN_N) -> str | None:
    """Why a two-sample test (Welch) may not be computed, or None.

    Args:
        a, b: the two samples (non-finite values are not counted).
        min_n: the minimum number of values in *each* group (>= 2).

    Returns:
        ``"too few (n)"`` when a group has fewer than ``min_n`` values (``n`` the smaller
        group's size), ``"no variance"`` when either group's values are all identical, else None.

    Raises:
        OptionError: a bad ``min_n``.
    """
    min_n = check_min_n(min_n)
    a, b = _finite(a), _finite(b)
    n = min(a.size, b.size)
    if n < min_n:
        return f"too few ({n})"
    if np.all(a == a[0]) or np.all(b == b[0]):
        return NO_VARIANCE
    return None
