"""One row per finding of the paper: what Wu et al. report for LLaMA-7B vs Vicuna-7B, what a pair shows.

The findings of Wu et al., NAACL 2024 ("From Language Modeling to Instruction Following"), each
read off the comparisons tuneshift makes, with its estimate, its 95% CI or test, its n and a
verdict in words. Every estimate is signed so that **positive is the paper's direction**:

* ``importance_own`` (the pre-declared primary outcome): the mean paired difference tuned - base
  of the instruction score, each model on its own greedy answer (the paper's protocol; its
  Fig. 2 and the reproduction on the released attributions, docs/paper_reproduction.md);
  bootstrap 95% CI (BCa), paired t-test, n = pairs.
* ``importance_gold``: the same with both models forced to the reference answer (a control the
  paper does not run: the same response tokens for both).
* ``heads_verbs``: Table 3 over all layers, the mean per-verb share of changed heads in which
  the verb gained pairs, instruction verbs minus general verbs; Welch's t-test, n = instruction
  verbs with a changed head.
* ``concepts_rotation``: per layer, the share of base principal components that keep a close
  partner (``|cos| >= 0.9``) under a random update of the tuned update's size minus under the
  tuning (positive: tuning re-mixes the concepts more than a random update of equal size);
  bootstrap CI over layers, Wilcoxon signed-rank test, n = layers. The paper has no such null.
* ``ablation_gold``: the causal check of ``importance_gold`` (issue 20): the mean paired difference
  tuned - base of the log-probability (nats per response token) the reference answer loses when
  the instruction is swapped for another record's (:mod:`tuneshift.stats.ablation_compare`, its
  primary row); bootstrap 95% CI, paired t-test, n = pairs. The paper has no such check.
* ``concepts_tasks``: the share of annotated components (the demo's fixed sample) whose tasks
  include a user task (writing, math, coding, translation), tuned minus base; bootstrap CI of
  the difference of two proportions, Fisher's exact test, n = annotated components per model.

Verdicts: where the sample rule (:mod:`tuneshift.stats.sample_rule`) refuses a CI or test:
``"too few ... (n): no claim"``; else ``"same direction as the paper"`` when the CI (or, without
a CI, a two-sided p < 0.05) excludes 0 on the positive side, ``"opposite to the paper"`` on the
negative side, ``"no detectable difference at this n"`` otherwise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from tuneshift.results import Result
from tuneshift.stats.sample_rule import DEFAULT_MIN_N, check_min_n, paired_reason

__all__ = ["FindingRow", "Findings", "build_findings", "verdict", "PAPER", "USER_TASKS"]

#: what the paper reports, per finding (LLaMA-7B -> Vicuna-7B v1.1).
PAPER = {
    "importance_own": "Vicuna-7B draws more on the instruction than LLaMA-7B for its own answers "
    "(released attributions, `tuneshift paper-tables`: Welch one-sided p = 1.9e-5 Self-Instruct, "
    "2.5e-14 LIMA, 0.038 MT-Bench)",
    "importance_gold": "not measured (the paper attributes each model's own answer); the paper's direction is "
    "tuned > base",
    "heads_verbs": "instruction verbs gain pairs in more of the changed heads than general verbs (Table 3)",
    "concepts_rotation": "feed-forward concepts rotate after tuning (Fig. 3, read through annotations; no "
    "random-update null)",
    "concepts_tasks": "more concepts serve user tasks (writing, coding, math) after tuning (Table 5)",
    "ablation_gold": "not measured (the paper has no causal check); its claim implies the tuned model's response "
    "depends more on the instruction",
}
#: task categories counted as user tasks in ``concepts_tasks`` (tuneshift.stats.concepts_shares).
USER_TASKS = ("any writing", "math", "coding", "translation")


@dataclass
class FindingRow:
    """One finding on one pair.

    Attributes:
        key: ``importance_own``, ``importance_gold``, ``ablation_gold``, ``heads_verbs``,
            ``concepts_rotation``, ``concepts_tasks``. finding: its name. paper: what the paper reports (:data:`PAPER`).
        measure: what ``estimate`` is (positive: the paper's direction).
        estimate: the estimate (NaN when it cannot be computed). ci_low, ci_high: its 95% CI
            (NaN: none). test: the test's name. p: its two-sided p-value (NaN: none).
        n: the sample size, in ``n_unit`` (``pairs``, ``instruction verbs``...).
        reason: why there is no CI or p (the sample rule), or None.
        verdict: in words (see the module docstring). role: ``primary`` or ``secondary``.
        detail: the numbers behind the estimate (e.g. both shares), for the reader.
    """

    key: str
    finding: str
    paper: str
    measure: str
    estimate: float
    ci_low: float
    ci_high: float
    test: str
    p: float
    n: int
    n_unit: str
    reason: str | None
    verdict: str
    role: str = "secondary"
    detail: str = ""

    @classmethod
    def no_claim(
        cls, key: str, finding: str, measure: str, test: str, n_unit: str, reason: str, role: str = "secondary"
    ) -> "FindingRow":
        """The row of a finding with nothing to measure (no pairs, not run, not annotated...):
        no estimate, CI or p, n 0, verdict ``"REASON: no claim"``."""
        nan = float("nan")
        return cls(
            key, finding, PAPER[key], measure, nan, nan, nan, test, nan, 0, n_unit, reason, f"{reason}: no claim", role
        )


@dataclass
class Findings(Result):
    """The findings table of a pair (``findings.json``; rendered by :mod:`tuneshift.reports.findings_report`).

    Attributes:
        pair: ``"base vs tuned"`` labels. min_n: the sample rule's minimum. rows: :class:`FindingRow`
            in the order of the paper. notes: what the reader should know about the inputs.
    """

    FILE = "findings.json"

    pair: str
    min_n: int
    rows: list[FindingRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def verdict(estimate: float, ci_low: float, ci_high: float, p: float, reason: str | None) -> str:
    """The verdict in words (module docstring), positive being the paper's direction."""
    if reason:
        return f"{reason}: no claim"
    if not math.isfinite(estimate):
        return "not computable"
    if math.isfinite(ci_low) and math.isfinite(ci_high):
        if ci_low > 0:
            return "same direction as the paper"
        if ci_high < 0:
            return "opposite to the paper"
        return "no detectable difference at this n"
    if math.isfinite(p) and p < 0.05:
        return "same direction as the paper" if estimate > 0 else "opposite to the paper"
    return "no detectable difference at this n"


def _nan() -> float:
    return float("nan")


def _importance_row(key: str, comparison, min_n: int) -> FindingRow:
    name = {
        "importance_own": "instruction importance, own answers",
        "importance_gold": "instruction importance, reference answers",
    }[key]
    measure = "mean paired difference tuned − base of the instruction score"
    row = None
    if comparison is not None:
        row = next((r for r in comparison.paired if r.control == "score" and r.group == "overall"), None)
    if row is None:
        return FindingRow.no_claim(
            key,
            name,
            measure,
            "paired t",
            "pairs",
            "no pairs",
            role="primary" if key == "importance_own" else "secondary",
        )
    reason = row.reason
    return FindingRow(
        key,
        name,
        PAPER[key],
        measure,
        float(row.mean_diff),
        float(row.ci_low),
        float(row.ci_high),
        "paired t",
        float(row.p),
        int(row.n_pairs),
        "pairs",
        reason,
        verdict(row.mean_diff, row.ci_low, row.ci_high, row.p, reason),
        "primary" if key == "importance_own" else "secondary",
        f"base {row.base_mean:.3f}, tuned {row.tuned_mean:.3f}",
    )


def _ablation_row(ablation) -> FindingRow:
    key, name = "ablation_gold", "instruction ablation (swap), reference answers"
    measure = "mean paired difference tuned − base of the log-probability lost per response token when the instruction is swapped"
    c = ablation.primary() if ablation is not None else None
    if c is None:
        return FindingRow.no_claim(key, name, measure, "paired t", "pairs", "not run")
    return FindingRow(
        key,
        name,
        PAPER[key],
        measure,
        float(c.diff),
        float(c.ci_low),
        float(c.ci_high),
        "paired t",
        float(c.t_p),
        int(c.n),
        "pairs",
        c.reason,
        verdict(c.diff, c.ci_low, c.ci_high, c.t_p, c.reason),
        detail=f"base {c.base_mean:.3f}, tuned {c.tuned_mean:.3f} nats/token",
    )


def _heads_row(heads, min_n: int) -> FindingRow:
    key, name = "heads_verbs", "instruction verbs in attention heads (Table 3, all layers)"
    measure = "mean share of changed heads where the verb gained pairs: instruction verbs − general verbs"
    row = None if heads is None else next((r for r in heads.table3 if r.group == "all"), None)
    if row is None:
        return FindingRow.no_claim(key, name, measure, "Welch t", "instruction verbs", "no heads compared")
    est = row.instruction.mean - row.general.mean if row.instruction.n and row.general.n else _nan()
    reason = getattr(row, "reason", None)
    if reason is None and not math.isfinite(row.p):
        reason = f"too few ({min(row.instruction.n, row.general.n)})"
    p = _nan() if reason else float(row.p)
    return FindingRow(
        key,
        name,
        PAPER[key],
        measure,
        float(est),
        _nan(),
        _nan(),
        "Welch t",
        p,
        int(row.instruction.n),
        "instruction verbs",
        reason,
        verdict(est, _nan(), _nan(), p, reason),
        detail=(
            f"instruction {row.instruction.mean:.3f} (n {row.instruction.n}), "
            f"general {row.general.mean:.3f} (n {row.general.n})"
        ),
    )


def _null_layers(concepts):
    """``(tuned, null)`` per-layer rotation lists of the layers in both (``(rows, None)`` without a null)."""
    rows = concepts.null_rows() if getattr(concepts, "null", None) is not None else []
    if not rows:
        return concepts.layers, None
    return [t for t, _n in rows], [n for _t, n in rows]


def _rotation_row(concepts, min_n: int) -> FindingRow:
    from tuneshift.stats.tests import bootstrap_mean_ci

    key, name = "concepts_rotation", "feed-forward concepts re-mixed beyond a random update"
    measure = (
        "per layer, share of base components keeping a |cos| ≥ 0.9 partner: random update − tuned "
        "(positive: tuning re-mixes more)"
    )
    if concepts is None:
        return FindingRow.no_claim(key, name, measure, "Wilcoxon", "layers", "no concepts compared")
    tuned, null = _null_layers(concepts)
    if not null:
        return FindingRow.no_claim(key, name, measure, "Wilcoxon", "layers", "no random-update null")
    by_layer = {r.layer: r for r in null}
    pairs = [(by_layer[r.layer].share_matched, r.share_matched) for r in tuned if r.layer in by_layer]
    a = np.array([p[0] for p in pairs], dtype=np.float64)  # null
    b = np.array([p[1] for p in pairs], dtype=np.float64)  # tuned
    d = a - b
    reason = paired_reason(d, min_n)
    est = float(d.mean()) if d.size else _nan()
    lo = hi = p = _nan()
    if reason is None:
        from scipy import stats

        _m, lo, hi = bootstrap_mean_ci(b, a)  # mean(a - b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(stats.wilcoxon(a, b).pvalue)
    ta = np.mean([r.angle_mean_degrees for r in tuned]) if tuned else _nan()
    na = np.mean([r.angle_mean_degrees for r in null]) if null else _nan()
    return FindingRow(
        key,
        name,
        PAPER[key],
        measure,
        est,
        lo,
        hi,
        "Wilcoxon",
        p,
        int(d.size),
        "layers",
        reason,
        verdict(est, lo, hi, p, reason),
        detail=(
            f"matched share tuned {b.mean():.2f}, random update {a.mean():.2f}; mean principal angle "
            f"tuned {ta:.2f}°, random update {na:.2f}°"
        ),
    )


def _user_task_flags(df) -> np.ndarray:
    """Per annotated row (component, run): 1.0 when its tasks include a user task (:data:`USER_TASKS`)."""
    from tuneshift.stats.concepts_shares import has_category

    if df is None or len(df) == 0:
        return np.zeros(0)
    return np.array(
        [
            float(any(has_category(t, lv, c) for c in USER_TASKS) and bool(e))
            for t, lv, e in zip(df["tasks"], df["level"], df["explainable"])
        ]
    )


def _tasks_row(base_df, tuned_df, min_n: int) -> FindingRow:
    key, name = "concepts_tasks", "concepts serving user tasks (Table 5)"
    measure = "share of annotated components with a user task (writing, math, coding, translation): tuned − base"
    if base_df is None or tuned_df is None:
        return FindingRow.no_claim(key, name, measure, "Fisher exact", "components per model", "not annotated")
    from scipy import stats

    xb, xt = _user_task_flags(base_df), _user_task_flags(tuned_df)
    n = int(min(xb.size, xt.size))
    # two proportions: Fisher's exact test is valid when one side is constant (0 of 18 vs 5 of 18);
    # it needs min_n components per model and some variation over both together
    reason = None
    if n < min_n:
        reason = f"too few components ({n})"
    elif np.all(np.concatenate([xb, xt]) == (xb[0] if xb.size else 0)):
        reason = "no variance"
    est = float(xt.mean() - xb.mean()) if xb.size and xt.size else _nan()
    lo = hi = p = _nan()
    if reason is None:
        table = [[int(xt.sum()), int(xt.size - xt.sum())], [int(xb.sum()), int(xb.size - xb.sum())]]
        p = float(stats.fisher_exact(table).pvalue)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (xb, xt),
                lambda x, y, axis=-1: np.mean(y, axis=axis) - np.mean(x, axis=axis),
                n_resamples=9999,
                method="percentile",
                rng=np.random.default_rng(0),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return FindingRow(
        key,
        name,
        PAPER[key],
        measure,
        est,
        lo,
        hi,
        "Fisher exact",
        p,
        n,
        "components per model",
        reason,
        verdict(est, lo, hi, p, reason),
        detail=(f"base {int(xb.sum())}/{xb.size}, tuned {int(xt.sum())}/{xt.size}"),
    )


def build_findings(
    comparisons: dict,
    heads=None,
    concepts=None,
    base_annotations=None,
    tuned_annotations=None,
    min_n: int = DEFAULT_MIN_N,
    pair_label: str = "",
    ablation=None,
) -> Findings:
    """The findings table of a pair from its comparisons.

    Args:
        comparisons: ``{protocol: RunComparison}`` (``own`` and ``gold``; a missing one gives a
            row with no claim).
        heads: a :class:`~tuneshift.stats.heads_compare.HeadsComparison` or None.
        concepts: a :class:`~tuneshift.stats.concepts_rotation.RotationComparison` (with its
            random-update null for the rotation row) or None.
        base_annotations, tuned_annotations: the annotation tables
            (:func:`~tuneshift.stats.concepts_shares.load_annotations`) or None.
        min_n: the sample rule's minimum (pairs, verbs, layers, components).
        pair_label: ``"base vs tuned"``.
        ablation: an :class:`~tuneshift.stats.ablation_compare.AblationComparison` of the gold runs, or
            None (its row is left out).

    Returns:
        :class:`Findings`, rows in the order of :data:`PAPER`.

    Raises:
        OptionError: ``min_n`` < 2.
    """
    min_n = check_min_n(min_n)
    rows = [
        _importance_row("importance_own", comparisons.get("own"), min_n),
        _importance_row("importance_gold", comparisons.get("gold"), min_n),
        *([_ablation_row(ablation)] if ablation is not None else []),
        _heads_row(heads, min_n),
        _rotation_row(concepts, min_n),
        _tasks_row(base_annotations, tuned_annotations, min_n),
    ]
    notes = [
        f"positive estimates point the paper's way; below {min_n} (pairs, verbs, layers, components) or with "
        'no variance there is no CI, no p and no verdict but "no claim"'
    ]
    return Findings(pair=pair_label, min_n=min_n, rows=rows, notes=notes)
