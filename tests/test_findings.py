"""The findings table (issue 19, item 2): verdicts, the sample rule, and the numbers of each row
against a hand-worked or independent computation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuneshift.reports.findings_report import findings_markdown
from tuneshift.stats.findings import Findings, build_findings, verdict
from tuneshift.stats.tests import SampleStats

NAN = float("nan")


def test_verdict_words():
    assert verdict(0.2, 0.05, 0.3, 0.01, None) == "same direction as the paper"
    assert verdict(-0.2, -0.3, -0.05, 0.01, None) == "opposite to the paper"
    assert verdict(0.1, -0.05, 0.2, 0.3, None) == "no detectable difference at this n"
    assert verdict(0.1, NAN, NAN, 0.01, None) == "same direction as the paper"  # a test without a CI
    assert verdict(-0.1, NAN, NAN, 0.01, None) == "opposite to the paper"
    assert verdict(0.1, NAN, NAN, 0.2, None) == "no detectable difference at this n"
    assert verdict(0.5, 0.1, 0.9, 0.001, "too few pairs (5)") == "too few pairs (5): no claim"


def _paired_row(n, diff, lo, hi, p, reason=None):
    return SimpleNamespace(
        control="score",
        group="overall",
        n_pairs=n,
        base_mean=0.5,
        tuned_mean=0.5 + diff,
        mean_diff=diff,
        ci_low=lo,
        ci_high=hi,
        p=p,
        reason=reason,
    )


def _rotation(tuned, null):
    """A stand-in RotationComparison with a null: ``null_rows()`` pairs the layers in both."""
    ns = SimpleNamespace(layers=tuned, null_layers=null, null=object())
    ns.null_rows = lambda: [(t, n) for t, n in zip(tuned, null)]
    return ns


def _layer(layer, share, degrees):
    return SimpleNamespace(layer=layer, share_matched=share, angle_mean_degrees=degrees)


def test_importance_rows_carry_the_comparison_and_the_primary_role():
    own = SimpleNamespace(paired=[_paired_row(24, -0.225, -0.371, -0.076, 0.008)])
    gold = SimpleNamespace(paired=[_paired_row(5, 0.3, NAN, NAN, NAN, "too few pairs (5)")])
    f = build_findings({"own": own, "gold": gold})
    r_own, r_gold = f.rows[0], f.rows[1]
    assert (r_own.key, r_own.role, r_own.n, r_own.estimate) == ("importance_own", "primary", 24, -0.225)
    assert r_own.verdict == "opposite to the paper"
    assert (r_gold.role, r_gold.reason, r_gold.verdict) == (
        "secondary",
        "too few pairs (5)",
        "too few pairs (5): no claim",
    )
    assert math.isnan(r_gold.ci_low) and math.isnan(r_gold.p)
    md = findings_markdown(f)
    assert "instruction importance, own answers (primary)" in md and "too few pairs (5): no claim" in md
    assert "[−0.371, −0.076]" in md


def test_heads_row_refuses_a_test_from_three_identical_zeros():
    row = SimpleNamespace(
        group="all",
        instruction=SampleStats(0.0, 0.0, 3),
        general=SampleStats(0.476, 0.446, 374),
        t=-20.65,
        p=1e-63,
        reason="too few (3)",
    )
    f = build_findings({}, heads=SimpleNamespace(table3=[row]))
    h = f.rows[2]
    assert h.reason == "too few (3)" and math.isnan(h.p) and h.n == 3
    assert h.estimate == pytest.approx(-0.476)
    assert h.verdict == "too few (3): no claim"


def test_rotation_row_is_the_paired_difference_over_layers_against_the_null():
    rng = np.random.default_rng(1)
    tuned_share = rng.uniform(0.2, 0.8, 12)
    null_share = rng.uniform(0.8, 1.0, 12)
    concepts = _rotation(
        [_layer(i, s, 1.0) for i, s in enumerate(tuned_share)], [_layer(i, s, 0.5) for i, s in enumerate(null_share)]
    )
    r = build_findings({}, concepts=concepts).rows[3]
    assert r.n == 12 and r.n_unit == "layers"
    assert r.estimate == pytest.approx(float(np.mean(null_share - tuned_share)))
    assert r.p == pytest.approx(stats.wilcoxon(null_share, tuned_share).pvalue)
    assert r.ci_low > 0 and r.verdict == "same direction as the paper"
    assert "1.00°" in r.detail and "0.50°" in r.detail
    # 6 layers are below the minimum: an estimate, but no CI, no p, no claim
    few = _rotation(concepts.layers[:6], concepts.null_layers[:6])
    r6 = build_findings({}, concepts=few).rows[3]
    assert r6.reason == "too few pairs (6)" and math.isnan(r6.ci_low) and math.isnan(r6.p)
    # without a null: no claim
    assert (
        build_findings({}, concepts=SimpleNamespace(layers=concepts.layers, null=None)).rows[3].reason
        == "no random-update null"
    )


def _annotations(n_task: int, n: int) -> pd.DataFrame:
    tasks = [["coding"]] * n_task + [["none"]] * (n - n_task)
    return pd.DataFrame(
        {"layer": range(n), "rank": 0, "run": 0, "explainable": True, "level": "semantics", "tasks": tasks}
    )


def test_task_share_row_is_a_difference_of_proportions_with_fisher_exact():
    base, tuned = _annotations(2, 18), _annotations(9, 18)
    r = build_findings({}, base_annotations=base, tuned_annotations=tuned).rows[4]
    assert r.estimate == pytest.approx(9 / 18 - 2 / 18)
    # Fisher's exact two-sided p from the hypergeometric distribution, by hand
    hg = stats.hypergeom(36, 11, 18)  # 36 components, 11 with a user task, 18 tuned
    p_obs = hg.pmf(9)
    want = sum(hg.pmf(k) for k in range(0, 12) if hg.pmf(k) <= p_obs * (1 + 1e-7))
    assert r.p == pytest.approx(want, rel=1e-9)
    assert r.ci_low <= r.estimate <= r.ci_high
    assert r.detail == "base 2/18, tuned 9/18" and r.n == 18
    few = build_findings({}, base_annotations=_annotations(1, 6), tuned_annotations=_annotations(4, 6)).rows[4]
    assert few.reason == "too few components (6)" and math.isnan(few.p)
    flat = build_findings({}, base_annotations=_annotations(0, 12), tuned_annotations=_annotations(0, 12)).rows[4]
    assert flat.reason == "no variance"


def test_findings_round_trip_through_json(tmp_path):
    own = SimpleNamespace(paired=[_paired_row(24, 0.1, -0.05, 0.2, 0.3)])
    f = build_findings({"own": own}, pair_label="a vs b")
    f.save(tmp_path)
    g = Findings.load(tmp_path)
    assert g.pair == "a vs b" and g.min_n == 10 and len(g.rows) == 5
    assert g.rows[0].estimate == 0.1 and math.isnan(g.rows[2].estimate)
    assert findings_markdown(g) == findings_markdown(f)


def test_min_n_below_two_is_refused():
    from tuneshift.errors import OptionError

    with pytest.raises(OptionError):
        build_findings({}, min_n=1)
