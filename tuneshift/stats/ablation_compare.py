"""Ablation effects of a base and a tuned model compared, and how well the gradient score agrees.

Three readings of two ablation directories (``tuneshift ablate`` on the base's and the tuned
model's attribution runs of the same prompts and protocol):

* **Paired contrast** per (span, variant): the per-token effect (nats per response token) of
  the same record under both models, ``mean(tuned - base)`` with a bootstrap CI, a Wilcoxon
  signed-rank and a paired t-test (the statistics of the instruction score,
  :mod:`tuneshift.stats.tests`), under the sample rule of :mod:`tuneshift.stats.sample_rule`.
  The row ``instruction / swap`` is the primary one (pre-declared: the swap keeps a well-formed
  instruction, so it asks *which* instruction the response depends on); the others are controls.
* **Faithfulness** per model and variant: Spearman's rank correlation between the record's
  instruction score (the attribution run's, Wu et al. 2024 Sec. 3.1) and its instruction
  ablation effect, with a percentile bootstrap CI over records; the comprehensiveness reading
  of ERASER (DeYoung et al., ACL 2020): a faithful score ranks first the records whose
  instruction carries most of the response.
* **Swap share** per model: the share of records whose response loses log-probability when the
  instruction is swapped (effect > 0), with a Wilson 95% interval (``scipy.stats.binomtest``).
  On the bundled counterfactual set (the same context under two instructions,
  ``tuneshift/data/bundled/counterfactual_prompts.jsonl``) it is the positive control: a model
  that follows instructions should be near 1.

Records with a response shorter than the run's minimum are left out, as for the score.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneshift.errors import InputFileError
from tuneshift.results import Result
from tuneshift.stats.sample_rule import DEFAULT_MIN_N, NO_VARIANCE, check_min_n, paired_reason
from tuneshift.stats.tests import bootstrap_mean_ci, paired_t, wilcoxon_paired

__all__ = [
    "AblationContrast",
    "Faithfulness",
    "SwapShare",
    "RecordEffect",
    "AblationComparison",
    "compare_ablation",
    "compare_ablation_results",
    "spearman_ci",
    "share_ci",
    "PRIMARY",
]

PRIMARY = ("instruction", "swap")
"""The pre-declared primary row: (span, variant)."""

MEASURE = "effect_per_token"


@dataclass
class AblationContrast:
    """Paired tuned - base per-token effect of one (span, variant), nats per token.

    Attributes:
        span, variant: what was ablated. n: records in both. base_mean, tuned_mean: means.
        diff, ci_low, ci_high: ``mean(tuned - base)`` and its 95% bootstrap CI (NaN under the rule).
        wilcoxon_p, t_p: two-sided p-values (NaN under the rule). reason: why no CI/test, or None.
        role: ``primary`` or ``control``.
    """

    span: str
    variant: str
    n: int
    base_mean: float
    tuned_mean: float
    diff: float
    ci_low: float
    ci_high: float
    wilcoxon_p: float
    t_p: float
    reason: str | None = None
    role: str = "control"


@dataclass
class Faithfulness:
    """Spearman's rho between instruction score and instruction ablation effect, one model and variant.

    Attributes:
        side: ``base`` or ``tuned``. model: its spec. variant: the ablation. n: records with both.
        rho, ci_low, ci_high: the correlation and its 95% percentile bootstrap CI. p: two-sided
        ``scipy.stats.spearmanr`` p-value. reason: why no CI/p (too few, no variance), or None.
    """

    side: str
    model: str
    variant: str
    n: int
    rho: float
    ci_low: float
    ci_high: float
    p: float
    reason: str | None = None


@dataclass
class SwapShare:
    """Share of records whose response loses log-probability when the instruction is swapped.

    Attributes:
        side, model: the model. n: records. n_positive: effect > 0. share: ``n_positive / n``.
        ci_low, ci_high: Wilson 95% interval (NaN under the rule). reason: None or why not.
    """

    side: str
    model: str
    n: int
    n_positive: int
    share: float
    ci_low: float
    ci_high: float
    reason: str | None = None


@dataclass
class RecordEffect:
    """One record: its instruction score and instruction ablation effect (per token) under each model."""

    record_id: str
    group: str
    variant: str
    base_score: float
    tuned_score: float
    base_effect: float
    tuned_effect: float


@dataclass
class AblationComparison(Result):
    """``tuneshift compare-ablation``: contrasts, faithfulness, swap shares and per-record effects.

    Attributes:
        base, tuned: the ablation directories. base_model, tuned_model: specs. protocol: the
        attribution runs' response protocol. min_n: the sample rule's minimum. contrasts,
        faithfulness, swap_shares, records: see the classes. notes: caveats.
    """

    FILE = "ablation_comparison.json"

    base: str
    tuned: str
    base_model: str
    tuned_model: str
    protocol: str
    min_n: int
    contrasts: list[AblationContrast] = field(default_factory=list)
    faithfulness: list[Faithfulness] = field(default_factory=list)
    swap_shares: list[SwapShare] = field(default_factory=list)
    records: list[RecordEffect] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def primary(self) -> AblationContrast | None:
        """The primary contrast (:data:`PRIMARY`), or None when it was not run."""
        return next((c for c in self.contrasts if (c.span, c.variant) == PRIMARY), None)


def spearman_ci(
    x, y, min_n: int = DEFAULT_MIN_N, confidence: float = 0.95, n_resamples: int = 1999, seed: int = 0
) -> tuple[float, float, float, float, str | None]:
    """Spearman's rho of paired values with a percentile bootstrap CI over pairs.

    Args:
        x, y: ``[n]`` paired values (pairs with a non-finite value are dropped).
        min_n: the sample rule's minimum. confidence: CI level. n_resamples, seed: the bootstrap's.

    Returns:
        ``(rho, low, high, p, reason)``: below ``min_n`` pairs or with a constant sample, rho is
        still given when defined but the CI and p are NaN and ``reason`` says why.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    nan = float("nan")
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return nan, nan, nan, nan, (f"too few ({x.size})" if x.size < check_min_n(min_n) else NO_VARIANCE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = stats.spearmanr(x, y)
    rho, p = float(r.statistic), float(r.pvalue)
    if x.size < check_min_n(min_n):
        return rho, nan, nan, nan, f"too few ({x.size})"

    def stat(a, b):
        return stats.spearmanr(a, b).statistic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (x, y),
            stat,
            paired=True,
            vectorized=False,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return rho, float(res.confidence_interval.low), float(res.confidence_interval.high), p, None


def share_ci(k: int, n: int, min_n: int = DEFAULT_MIN_N) -> tuple[float, float, float, str | None]:
    """``k / n`` with a Wilson 95% interval (``scipy.stats.binomtest(k, n).proportion_ci``).

    Returns:
        ``(share, low, high, reason)``; the interval is NaN below ``min_n`` (``reason`` "too few (n)").
    """
    from scipy import stats

    nan = float("nan")
    if n == 0:
        return nan, nan, nan, "too few (0)"
    share = k / n
    if n < check_min_n(min_n):
        return share, nan, nan, f"too few ({n})"
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return share, float(ci.low), float(ci.high), None


def _kept(table):
    return table[~table["short_response"].astype(bool)]


def compare_ablation_results(base, tuned, min_n: int = DEFAULT_MIN_N) -> AblationComparison:
    """Compare two :class:`~tuneshift.methods.ablation.result.AblationResult` (see the module docstring).

    Raises:
        InputFileError: the two are the same directory, share no record, or differ in protocol.
        OptionError: a bad ``min_n``.
    """
    min_n = check_min_n(min_n)
    if Path(base.path).resolve() == Path(tuned.path).resolve():
        raise InputFileError(f"{base.path} is given as both ablations; compare the base model's with the tuned model's")
    if base.protocol != tuned.protocol:
        raise InputFileError(
            f"the ablations checked runs of different protocols ({base.protocol} vs {tuned.protocol}); "
            "compare runs of the same protocol"
        )
    b, t = _kept(base.table), _kept(tuned.table)
    c = AblationComparison(str(base.path), str(tuned.path), base.model, tuned.model, base.protocol, min_n)
    keys = ["record_id", "span", "variant"]
    m = b.merge(t, on=keys, suffixes=("_b", "_t"))
    if m.empty:
        raise InputFileError(f"{base.path} and {tuned.path} share no ablated record; ablate runs of the same prompts")
    for span in ("instruction", "context"):
        for variant in dict.fromkeys(m["variant"]):
            g = m[(m["span"] == span) & (m["variant"] == variant)]
            if g.empty:
                continue
            a, bb = g[MEASURE + "_b"].to_numpy(), g[MEASURE + "_t"].to_numpy()
            d = bb - a
            reason = paired_reason(d, min_n)
            wp = paired_t_p = lo = hi = float("nan")
            if reason is None:
                mean, lo, hi = bootstrap_mean_ci(a, bb)
                wp = wilcoxon_paired(bb, a, alternative="two-sided")[1]
                paired_t_p = paired_t(a, bb)[1]
            else:  # no bootstrap whose interval would be dropped
                d = d[np.isfinite(d)]
                mean = float(d.mean()) if d.size else float("nan")
            c.contrasts.append(
                AblationContrast(
                    span,
                    variant,
                    len(g),
                    float(np.mean(a)),
                    float(np.mean(bb)),
                    mean,
                    lo,
                    hi,
                    wp,
                    paired_t_p,
                    reason,
                    "primary" if (span, variant) == PRIMARY else "control",
                )
            )
    for side, res, tab in (("base", base, b), ("tuned", tuned, t)):
        ins = tab[tab["span"] == "instruction"]
        for variant in dict.fromkeys(ins["variant"]):
            g = ins[ins["variant"] == variant]
            rho, lo, hi, p, reason = spearman_ci(g["instruction_score"], g[MEASURE], min_n)
            n = int((np.isfinite(g["instruction_score"]) & np.isfinite(g[MEASURE])).sum())
            c.faithfulness.append(Faithfulness(side, res.model, variant, n, rho, lo, hi, p, reason))
        sw = ins[ins["variant"] == "swap"]
        if len(sw):
            k = int((sw["effect"] > 0).sum())
            share, lo, hi, reason = share_ci(k, len(sw), min_n)
            c.swap_shares.append(SwapShare(side, res.model, len(sw), k, share, lo, hi, reason))
    ins = m[m["span"] == "instruction"]
    for r in ins.itertuples(index=False):
        c.records.append(
            RecordEffect(
                r.record_id,
                r.group_b,
                r.variant,
                r.instruction_score_b,
                r.instruction_score_t,
                r.effect_per_token_b,
                r.effect_per_token_t,
            )
        )
    nb, nt = base.table["record_id"].nunique(), tuned.table["record_id"].nunique()
    n_short = int(base.table["short_response"].sum() + tuned.table["short_response"].sum())
    if n_short:
        c.notes.append(f"{n_short} rows with a short response are left out (the score's rule)")
    if nb != nt:
        c.notes.append(f"the base ablated {nb} records, the tuned {nt}: only the records in both are paired")
    if not any(math.isfinite(x.rho) for x in c.faithfulness):
        c.notes.append("no faithfulness correlation could be computed")
    return c


def compare_ablation(base_dir, tuned_dir, min_n: int = DEFAULT_MIN_N) -> AblationComparison:
    """Read two ablation directories and compare them (:func:`compare_ablation_results`).

    Raises:
        InputFileError: unreadable directories (see also :func:`compare_ablation_results`).
    """
    from tuneshift.methods.ablation.result import load_ablation

    return compare_ablation_results(load_ablation(base_dir), load_ablation(tuned_dir), min_n)
