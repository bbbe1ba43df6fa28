"""Small statistical building blocks shared by every comparison.

Standard deviations are population standard deviations (numpy's default, ddof = 0), as in
the paper's released analysis; effect sizes use the unbiased (ddof = 1) pooled variance.
Tests come from :mod:`scipy.stats`, imported by the functions that use it (importing this module,
and the CLI's ``--help``, does not import scipy).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class SampleStats:
    """Mean, standard deviation (ddof = 0) and size of a sample of scores."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values) -> "SampleStats":
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return cls(float("nan"), float("nan"), 0)
        return cls(float(v.mean()), float(v.std()), int(v.size))

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(x) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    return v[np.isfinite(v)]


def welch_t(a, b, alternative: str = "less") -> tuple[float, float]:
    """Welch's t-test of samples a and b (``scipy.stats.ttest_ind(equal_var=False)``).

    Args:
        a, b: 1-D samples (non-finite values dropped).
        alternative: ``less`` (H1: mean a < mean b, the paper's one-sided test),
            ``greater`` or ``two-sided``.

    Returns:
        ``(t, p)``; NaN when either sample has fewer than 2 values or both have zero variance.
    """
    from scipy import stats

    a, b = _finite(a), _finite(b)
    if a.size < 2 or b.size < 2 or (a.var() == 0 and b.var() == 0):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
    return float(res.statistic), float(res.pvalue)


def hedges_g(a, b) -> float:
    """Hedges' g of b relative to a: (mean b - mean a) / pooled sd, small-sample corrected.

    ``g = J * (mean_b - mean_a) / s_p`` with ``s_p^2 = ((n_a-1) s_a^2 + (n_b-1) s_b^2) / (n_a+n_b-2)``
    (ddof = 1 variances) and ``J = 1 - 3 / (4 (n_a + n_b) - 9)`` (Hedges & Olkin 1985).
    Positive when b is larger. NaN when undefined.
    """
    a, b = _finite(a), _finite(b)
    na, nb = a.size, b.size
    if na < 2 or nb < 2:
        return float("nan")
    sp2 = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)
    if sp2 <= 0:
        return float("nan")
    j = 1.0 - 3.0 / (4.0 * (na + nb) - 9.0)
    return float(j * (b.mean() - a.mean()) / math.sqrt(sp2))


def wilcoxon_paired(a, b, alternative: str = "less") -> tuple[float, float]:
    """Wilcoxon signed-rank test on paired samples (``scipy.stats.wilcoxon(a - b)``).

    Args:
        a, b: equal-length paired samples; pairs with a non-finite value are dropped.
        alternative: ``less`` (H1: a tends to be smaller than b), ``greater`` or ``two-sided``.

    Returns:
        ``(statistic, p)``; NaN with fewer than 2 pairs or when all differences are zero.
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    if d.size < 2 or np.all(d == 0):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.wilcoxon(a[keep], b[keep], alternative=alternative)
    return float(res.statistic), float(res.pvalue)


def _paired(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return b[keep] - a[keep]


def paired_t(a, b, alternative: str = "two-sided") -> tuple[float, float]:
    """Paired t-test of ``b - a`` (``scipy.stats.ttest_rel(b, a)``).

    Args:
        a, b: equal-length paired samples; pairs with a non-finite value are dropped.
        alternative: ``two-sided``, ``greater`` (H1: b > a) or ``less``.

    Returns:
        ``(t, p)``; NaN with fewer than 2 pairs or zero variance of the differences.
    """
    from scipy import stats

    d = _paired(a, b)
    if d.size < 2 or d.var() == 0:
        return float("nan"), float("nan")
    res = stats.ttest_1samp(d, 0.0, alternative=alternative)
    return float(res.statistic), float(res.pvalue)


def bootstrap_mean_ci(
    a, b, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> tuple[float, float, float]:
    """Mean paired difference ``mean(b - a)`` and its bootstrap confidence interval.

    ``scipy.stats.bootstrap`` (BCa) over pairs, seeded, so the interval is reproducible.

    Args:
        a, b: equal-length paired samples; pairs with a non-finite value are dropped.
        confidence: level of the interval (0.95).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        ``(mean, low, high)``; the interval is NaN with fewer than 2 pairs, and equals the mean
        when every difference is the same.
    """
    from scipy import stats

    d = _paired(a, b)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(d.mean())
    if d.size < 2:
        return m, float("nan"), float("nan")
    if np.all(d == d[0]):
        return m, m, m
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (d,),
            np.mean,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # BCa can fail on tiny or degenerate samples
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (d,),
                np.mean,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return m, lo, hi


def holm(pvalues) -> list[float]:
    """Holm-Bonferroni adjusted p-values (``scipy.stats.false_discovery_control (Benjamini-Hochberg/Yekutieli)`` has no Holm).

    ``p_(i)`` sorted ascending is adjusted to ``max_{j <= i} min(1, (m - j) p_(j))`` over the m
    finite p-values; NaN stays NaN and is not counted in m (Holm 1979).

    Args:
        pvalues: p-values of one family of tests.

    Returns:
        Adjusted p-values in the input order.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out.tolist()
