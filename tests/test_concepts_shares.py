"""Annotator shares (Table 5), Welch t-test, per-group shares and the plot, on hand-made labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from tuneshift.errors import InputFileError
from tuneshift.pipelines.concepts_run import run_concepts
from tuneshift.reports.markdown import render_markdown, save_with_markdown
from tuneshift.stats.concepts_rotation import RotationComparison, compare_rotation
from tuneshift.stats.concepts_shares import (
    GroupShare,
    ShareRow,
    SharesComparison,
    compare_annotations,
    compare_shares,
    group_shares,
    load_annotations,
    run_shares,
)


def _df(rows):
    return pd.DataFrame(rows, columns=["layer", "rank", "run", "explainable", "level", "tasks"])


def test_run_shares_by_hand():
    df = _df(
        [
            (0, 0, 0, True, "semantics", ["coding"]),
            (0, 1, 0, True, "syntax", ["daily writing", "math"]),
            (0, 2, 0, False, None, []),
            (0, 3, 0, True, "unparsed", ["unparsed"]),
            (0, 0, 1, True, "semantics", ["none"]),
            (0, 1, 1, None, None, []),
        ]
    )
    s = run_shares(df)
    np.testing.assert_allclose(s["explainable"], [3 / 4, 1 / 2])
    np.testing.assert_allclose(s["coding"], [1 / 3, 0])
    np.testing.assert_allclose(s["any writing"], [1 / 3, 0])
    np.testing.assert_allclose(s["math"], [1 / 3, 0])
    np.testing.assert_allclose(s["none"], [0, 1])
    np.testing.assert_allclose(s["semantics"], [1 / 3, 1])
    np.testing.assert_allclose(s["syntax"], [1 / 3, 0])


def test_compare_shares_ttest():
    base = _df(
        [(0, 0, r, True, "semantics", ["coding"] if r < 2 else ["translation"]) for r in range(4)]
        + [(0, 1, r, True, "semantics", ["translation"]) for r in range(4)]
    )
    tuned = _df(
        [(0, 0, r, True, "semantics", ["coding"]) for r in range(4)]
        + [(0, 1, r, True, "syntax", ["coding"] if r == 0 else ["none"]) for r in range(4)]
    )
    rows = {r.category: r for r in compare_shares(base, tuned, min_n=2)}
    assert {r.category: r for r in compare_shares(base, tuned)}["coding"].reason == "too few (4)"  # 4 runs < 10
    x = np.array([0.5, 0.5, 0, 0])
    y = np.array([1, 0.5, 0.5, 0.5])
    t, p = stats.ttest_ind(x, y, equal_var=False)
    assert rows["coding"].t == pytest.approx(t) and rows["coding"].p == pytest.approx(p)
    # std with ddof = 0, the one convention of tuneshift's statistics (SampleStats)
    assert rows["coding"].base_mean == pytest.approx(0.25) and rows["coding"].tuned_std == pytest.approx(y.std(ddof=0))
    assert rows["coding"].tuned_std == pytest.approx(0.2165063509) and rows["coding"].n_runs_tuned == 4
    assert np.isnan(rows["semantics"].t)  # both models constant over runs: t undefined -> NaN (null in JSON)
    assert np.isnan(rows["explainable"].p)
    c = SharesComparison("b", "t", list(rows.values()))
    d = c.to_dict()
    assert d["table5"][0]["category"] == "explainable" and d["table5"][0]["t"] is None
    assert {k: v for k, v in d["table5"][2].items() if k in ("category", "base_std", "n_runs_base")} == {
        "category": "math",
        "base_std": 0.0,
        "n_runs_base": 4,
    }
    back = SharesComparison.from_dict(d)
    assert isinstance(back.table5[0], ShareRow) and np.isnan(back.table5[0].t) and back.to_dict() == d
    assert "| coding | 0.250±0.250 | 0.625±0.217 |" in render_markdown(c)


def test_groups_plot_and_compare_integration(tiny_llama, tmp_path):
    vocab = tmp_path / "v.txt"
    vocab.write_text("report\nsky\nsentence\nteam\n")
    a = tmp_path / "a"
    run_concepts(tiny_llama, a, vocab=vocab, rank=2, top_k=3)
    with pytest.raises(InputFileError, match="annotate"):
        load_annotations(a)
    import shutil

    shutil.copytree(a, tmp_path / "a_copy")  # the same directory twice is refused
    c = compare_rotation(a, tmp_path / "a_copy")
    assert c.table5 is None and "table5" not in c.to_dict()
    with pytest.raises(InputFileError, match="annotate"):
        compare_annotations(a, a)
    rows = [
        {
            "layer": l,
            "rank": k,
            "run": r,
            "concept": "x",
            "explainable": True,
            "level": "semantics",
            "tasks": ["coding"] if (l + r) % 2 else ["math"],
            "backend": "fake",
            "model": "m",
        }
        for l in (0, 1)
        for k in (0, 1)
        for r in range(3)
    ]
    pq.write_table(pa.Table.from_pylist(rows), a / "annotations.parquet")
    g = group_shares(load_annotations(a), group_size=1)
    coding = {r.group: r.share for r in g if r.category == "coding"}
    assert coding == {0: pytest.approx(1 / 3), 1: pytest.approx(2 / 3)}
    assert g[0] == GroupShare(0, "0-0", "explainable", 1.0)
    shutil.copy(a / "annotations.parquet", tmp_path / "a_copy" / "annotations.parquet")
    c = compare_rotation(a, tmp_path / "a_copy", group_size=1)
    assert c.table5 is not None and "Shares of explainable concepts" in render_markdown(c)
    assert c.groups_base == c.groups_tuned == g and c.shares.base == c.base
    paths = c.save(tmp_path / "out")
    assert paths["plot"].stat().st_size > 1000 and paths["plot"].read_bytes()[:4] == b"\x89PNG"
    assert "tuned,1,1-1,coding," in paths["groups"].read_text()
    d = json.loads(paths["json"].read_text())
    assert d["table5"][0]["category"] == "explainable"
    assert list(d) == ["base", "tuned", "rotation", "skipped_layers", "table5", "groups_base", "groups_tuned"]
    back = RotationComparison.load(tmp_path / "out")
    assert back.to_dict() == d and back.groups_base == g and render_markdown(back) == render_markdown(c)
    # the shares alone: their own result file, Markdown twin and figures
    s = compare_annotations(a, a, group_size=1, base="m1", tuned="m2")
    paths = save_with_markdown(s, tmp_path / "shares")
    assert sorted(p.name for p in paths.values()) == [
        "concepts_groups.csv",
        "concepts_groups.png",
        "concepts_shares.json",
        "concepts_shares.md",
    ]
    assert SharesComparison.load(tmp_path / "shares").to_dict() == s.to_dict()
    assert s.to_dict()["table5"] == d["table5"] and "# Concept shares: m1 -> m2" in paths["markdown"].read_text()
