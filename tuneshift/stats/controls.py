"""Controls for a base-vs-tuned comparison, and paired statistics over the records both scored.

The instruction score of a record depends on more than how the model reads the instruction:
on how long the response is (the density is an L1/Lp ratio over response tokens), on whether
the response copies the prompt, and on where the instruction sits in the prompt (importance is
not uniform over positions). Each control below is computed exactly from what a run stores (the
raw matrix, the instruction mask, the tokens), per record:

* **response length** ``n_response``; and the **score at a common length**: for a pair of
  records, both matrices cut to their first ``min(n_base, n_tuned)`` response tokens and scored
  again with each run's own b, p, L (a generation limit of that length would have given the
  same columns for greedy answers).
* **copy share**: the share of response tokens that lie inside a token 4-gram that also occurs
  in the prompt (token strings, so any tokenizer works).
* **random-span baseline**: the score a contiguous span of the same number of tokens as the
  instruction would get at a uniformly random position: the mean, over every position, of the
  span's density sum / log2(2 + m). Exact (no sampling).
* **positional baseline**: the score the instruction's positions would get from position alone:
  the run's mean density per relative-position bin (10 bins, over the run's valid records),
  summed over the instruction tokens' bins / log2(2 + m).

Paired statistics (:func:`paired_contrast`): over records valid in both runs, the mean paired
difference tuned - base with a bootstrap 95% CI (``scipy.stats.bootstrap``, BCa, seeded), the
Wilcoxon signed-rank test and the paired t-test (both two-sided); per group with Holm's
correction over the groups (:func:`tuneshift.stats.tests.holm`).

The sample rule (:mod:`tuneshift.stats.sample_rule`): a row with fewer than ``min_n`` pairs
(default 10) or with identical differences gets no CI and no p-value (NaN, JSON ``null``) and a
``reason`` (``"too few pairs (5)"``, ``"no variance"``); Holm's correction counts only the rows
that have a p-value.

Roles: the overall paired difference of the instruction score (control ``score``, group
``overall``) is the pre-declared **primary** outcome (:data:`PRIMARY`); every other row -- the
controlled variants and the per-group rows -- is a **control**.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tuneshift.stats.sample_rule import DEFAULT_MIN_N, check_min_n, paired_reason
from tuneshift.stats.tests import bootstrap_mean_ci, holm, paired_t, wilcoxon_paired

__all__ = [
    "COPY_NGRAM",
    "RecordControls",
    "PairedContrast",
    "copy_share",
    "random_span_baseline",
    "positional_baseline",
    "paired_contrast",
    "paired_by_group",
    "CONTROLS",
    "PRIMARY",
    "role_of",
]

#: n of the token n-grams used for the copy share.
COPY_NGRAM = 4
#: copy share at or above which a response counts as copying the prompt (the copy control).
COPY_LIMIT = 0.5
#: the controlled variants of the paired difference, in report order.
CONTROLS = (
    "score",
    "score at common length",
    "score - random-span baseline",
    "score - positional baseline",
    "score, pairs copying < 50% on both sides",
)
#: the pre-declared primary outcome: (control, group) of the overall paired score difference.
PRIMARY = ("score", "overall")


def role_of(control: str, group: str) -> str:
    """``"primary"`` for the pre-declared primary row (:data:`PRIMARY`), else ``"control"``."""
    return "primary" if (control, group) == PRIMARY else "control"


def copy_share(prompt_tokens: Sequence[str], response_tokens: Sequence[str], n: int = COPY_NGRAM) -> float:
    """Share of response tokens inside a token n-gram that also occurs in the prompt.

    Args:
        prompt_tokens, response_tokens: token strings.
        n: n-gram length (default 4).

    Returns:
        A share in [0, 1]; 0 for a response shorter than ``n``; NaN for an empty response.
    """
    r = list(response_tokens)
    if not r:
        return float("nan")
    p = list(prompt_tokens)
    grams = {tuple(p[i : i + n]) for i in range(len(p) - n + 1)}
    covered = np.zeros(len(r), dtype=bool)
    for i in range(len(r) - n + 1):
        if tuple(r[i : i + n]) in grams:
            covered[i : i + n] = True
    return float(covered.mean())


def random_span_baseline(density: np.ndarray, m: int) -> float:
    """Expected score of a contiguous span of ``m`` tokens at a uniformly random position.

    ``mean_i sum(density[i:i+m]) / log2(2 + m)`` over the ``N - m + 1`` positions.

    Returns:
        The baseline; NaN when ``m`` is 0 or larger than the prompt.
    """
    d = np.asarray(density, dtype=np.float64)
    if m <= 0 or m > d.size:
        return float("nan")
    c = np.concatenate([[0.0], np.cumsum(d)])
    sums = c[m:] - c[:-m]
    return float(sums.mean() / math.log2(2.0 + m))


def positional_baseline(mask: np.ndarray, profile: np.ndarray) -> float:
    """Score the instruction's positions would get from position alone.

    Args:
        mask: ``[N]`` instruction mask of the record.
        profile: ``[n_bins]`` the run's mean density per relative-position bin (a token at index
            n of N falls in bin ``floor(n_bins (n + 0.5) / N)``).

    Returns:
        ``sum(profile[bin(n)] for instruction tokens n) / log2(2 + m)``; NaN without
        instruction tokens or with an undefined bin.
    """
    mask = np.asarray(mask, dtype=bool)
    m, n = int(mask.sum()), mask.size
    if m == 0:
        return float("nan")
    nb = len(profile)
    bins = np.minimum((nb * (np.arange(n) + 0.5) / n).astype(int), nb - 1)
    return float(np.asarray(profile, dtype=np.float64)[bins[mask]].sum() / math.log2(2.0 + m))


@dataclass
class RecordControls:
    """One record scored by both models, with its controls.

    Attributes:
        id, group: the record.
        base_score, tuned_score: instruction scores.
        base_n_response, tuned_n_response: response tokens.
        common_length: ``min`` of the two; base_common, tuned_common: the scores at it.
        base_copy_share, tuned_copy_share: shares of response tokens copied from the prompt.
        base_random_span, tuned_random_span: random-span baselines.
        base_positional, tuned_positional: positional baselines.
    """

    id: str
    group: str
    base_score: float
    tuned_score: float
    base_n_response: int
    tuned_n_response: int
    common_length: int
    base_common: float
    tuned_common: float
    base_copy_share: float
    tuned_copy_share: float
    base_random_span: float
    tuned_random_span: float
    base_positional: float
    tuned_positional: float

    @property
    def difference(self) -> float:
        """tuned - base score."""
        return self.tuned_score - self.base_score


@dataclass
class PairedContrast:
    """Paired difference tuned - base of one control in one group.

    Attributes:
        control: one of :data:`CONTROLS`. group: group name or ``overall``.
        n_pairs: records valid in both runs (and kept by the control).
        base_mean, tuned_mean: means of the two sides over those pairs.
        mean_diff, ci_low, ci_high: mean paired difference and its bootstrap 95% CI.
        wilcoxon_p: Wilcoxon signed-rank, two-sided. t, p: paired t-test, two-sided.
        p_holm: ``p`` Holm-adjusted over the groups of this control that have a p-value (the
            overall row: ``p``).
        reason: why the row has no CI and no p-value (``"too few pairs (5)"``, ``"no variance"``;
            :mod:`tuneshift.stats.sample_rule`), None when it has them.
        role: ``primary`` (the overall score difference, pre-declared) or ``control``.
    """

    control: str
    group: str
    n_pairs: int
    base_mean: float
    tuned_mean: float
    mean_diff: float
    ci_low: float
    ci_high: float
    wilcoxon_p: float
    t: float
    p: float
    p_holm: float = float("nan")
    reason: str | None = None
    role: str = "control"

    @property
    def ci_excludes_zero(self) -> bool:
        """True when the row has a CI (it passed the sample rule) and the CI lies above or below 0."""
        return self.reason is None and (self.ci_low > 0 or self.ci_high < 0)


def paired_contrast(
    control: str,
    group: str,
    a: Sequence[float],
    b: Sequence[float],
    n_resamples: int = 9999,
    min_n: int = DEFAULT_MIN_N,
) -> PairedContrast:
    """Paired statistics of ``b - a`` (``a`` base, ``b`` tuned; non-finite pairs dropped).

    Args:
        control, group: what the row is (its ``role`` follows from them, :func:`role_of`).
        a, b: base and tuned values of the same records.
        n_resamples: bootstrap resamples of the CI.
        min_n: the sample rule's minimum number of pairs (:mod:`tuneshift.stats.sample_rule`).

    Returns:
        A :class:`PairedContrast`; below the sample rule its CI, t and p-values are NaN and
        ``reason`` says why (the means are still given).

    Raises:
        OptionError: a bad ``min_n``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    nan = float("nan")
    why = paired_reason(b - a, min_n)
    if why is None:
        m, lo, hi = bootstrap_mean_ci(a, b, n_resamples=n_resamples)
        _, wp = wilcoxon_paired(a, b, "two-sided")
        t, p = paired_t(a, b, "two-sided")
    else:
        m = float((b - a).mean()) if a.size else nan
        lo = hi = wp = t = p = nan
    return PairedContrast(
        control,
        group,
        int(a.size),
        float(a.mean()) if a.size else nan,
        float(b.mean()) if b.size else nan,
        m,
        lo,
        hi,
        wp,
        t,
        p,
        p,
        reason=why,
        role=role_of(control, group),
    )


def _values(control: str, r: RecordControls) -> tuple[float, float] | None:
    if control == "score":
        return r.base_score, r.tuned_score
    if control == "score at common length":
        return r.base_common, r.tuned_common
    if control == "score - random-span baseline":
        return r.base_score - r.base_random_span, r.tuned_score - r.tuned_random_span
    if control == "score - positional baseline":
        return r.base_score - r.base_positional, r.tuned_score - r.tuned_positional
    if control == "score, pairs copying < 50% on both sides":
        if not (r.base_copy_share < COPY_LIMIT and r.tuned_copy_share < COPY_LIMIT):
            return None
        return r.base_score, r.tuned_score
    raise KeyError(control)


def paired_by_group(
    records: Sequence[RecordControls],
    controls: Sequence[str] = CONTROLS,
    n_resamples: int = 9999,
    min_n: int = DEFAULT_MIN_N,
) -> list[PairedContrast]:
    """Every control, overall and per group (Holm over the groups of each control that have a p).

    Args:
        records: the records valid in both runs.
        controls: the controls, in report order (default :data:`CONTROLS`).
        n_resamples: bootstrap resamples per row.
        min_n: the sample rule's minimum number of pairs per row.

    Returns:
        For each control: the ``overall`` row, then one row per group (sorted).

    Raises:
        OptionError: a bad ``min_n``.
    """
    min_n = check_min_n(min_n)
    groups = sorted({r.group for r in records})
    out: list[PairedContrast] = []
    for c in controls:
        rows = []
        for g in ["overall"] + groups:
            vals = [v for r in records if (g == "overall" or r.group == g) and (v := _values(c, r)) is not None]
            rows.append(paired_contrast(c, g, [v[0] for v in vals], [v[1] for v in vals], n_resamples, min_n))
        adj = holm([r.p for r in rows[1:]])  # NaN (no p: below the sample rule) is not counted
        for r, q in zip(rows[1:], adj):
            r.p_holm = q
        out += rows
    return out


@dataclass
class DroppedRecords:
    """Records left out of the paired statistics, named, per side: ``{reason: [ids]}``."""

    base: dict[str, list[str]] = field(default_factory=dict)
    tuned: dict[str, list[str]] = field(default_factory=dict)
