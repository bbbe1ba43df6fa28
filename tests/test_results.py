"""The shared result machinery: to_dict/from_dict/save/load, NaN -> null, Markdown twin (reports.markdown)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from tuneshift.errors import InputFileError
from tuneshift.reports.formatting import markdown_table, mean_std, num, pct, pval
from tuneshift.reports.markdown import render_markdown, save_with_markdown
from tuneshift.results import Result, nan_to_none


@dataclass
class _Inner:
    mean: float
    n: int


@dataclass
class _Outer(Result):
    FILE = "outer.json"
    name: str
    inner: _Inner
    rows: list[_Inner]
    by_group: dict[str, _Inner]
    maybe: float | None = None
    values: list[float] = field(default_factory=list)


@render_markdown.register
def _outer_markdown(r: _Outer) -> str:
    return markdown_table(["name", "mean"], [[r.name, num(r.inner.mean)]])


def _example() -> _Outer:
    return _Outer(
        "a|b",
        _Inner(float("nan"), 3),
        [_Inner(1.5, np.int64(2))],
        {"g": _Inner(np.float32(0.25), 1)},
        None,
        [1.0, float("inf"), np.float64(2.0)],
    )


def test_to_dict_is_json_with_null_for_undefined_numbers():
    d = _example().to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["inner"] == {"mean": None, "n": 3}
    assert d["rows"] == [{"mean": 1.5, "n": 2}] and d["by_group"] == {"g": {"mean": 0.25, "n": 1}}
    assert d["values"] == [1.0, None, 2.0] and d["maybe"] is None


def test_round_trip_through_save_and_load(tmp_path):
    r = _example()
    paths = save_with_markdown(r, tmp_path / "out")
    assert paths["json"].name == "outer.json" and paths["markdown"].name == "outer.md"
    assert "a\\|b" in paths["markdown"].read_text()  # a pipe in a cell is escaped
    back = _Outer.load(tmp_path / "out")
    assert isinstance(back.inner, _Inner) and math.isnan(back.inner.mean) and back.inner.n == 3
    assert back.rows[0] == _Inner(1.5, 2) and back.by_group["g"] == _Inner(0.25, 1)
    assert back.values[0] == 1.0 and math.isnan(back.values[1])
    assert back.to_dict() == r.to_dict()
    assert _Outer.load(paths["json"]).to_dict() == r.to_dict()


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        _Outer.load(tmp_path)
    (tmp_path / "outer.json").write_text("{not json")
    with pytest.raises(InputFileError, match="cannot read"):
        _Outer.load(tmp_path)
    (tmp_path / "outer.json").write_text('{"name": "x"}')
    with pytest.raises(InputFileError, match="not a _Outer"):
        _Outer.load(tmp_path)
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(InputFileError, match="is a file"):
        _example().save(f)


def test_nan_to_none_and_formatting():
    assert nan_to_none({"a": [float("nan"), 1.0, {"b": float("-inf")}]}) == {"a": [None, 1.0, {"b": None}]}
    assert num(float("nan")) == "–" and num(None) == "–" and num(0.12345) == "0.123" and num(2, 1) == "2.0"
    assert pval(0.0001234) == "1.23e-04" and pval(0.5) == "0.5000" and pval(float("nan")) == "–"
    assert pct(0.7) == "70%" and mean_std(1, float("nan")) == "1.000±–"
    assert markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_save_writes_json_only_and_the_report_writes_the_same_markdown_twin(tmp_path):
    """Issue 23: a result does not render itself. ``Result.save`` writes the JSON alone;
    ``save_with_markdown`` writes the same JSON and the ``comparison.md`` the comparison always had."""
    from test_paper_release import _tiny_release

    from tuneshift.pipelines.import_paper import load_release
    from tuneshift.reports.compare_report import WEIGHT_NOTE, comparison_markdown
    from tuneshift.stats.compare import RunComparison, compare_runs

    f = _tiny_release(tmp_path)
    data = load_release(f["released"], f["dataset"], f["ratings"])
    c = compare_runs(data.base, data.tuned, include_short=True)
    assert not hasattr(c, "markdown")
    paths = c.save(tmp_path / "json_only")
    assert list(paths) == ["json"] and sorted(p.name for p in (tmp_path / "json_only").iterdir()) == ["comparison.json"]
    both = save_with_markdown(c, tmp_path / "both")
    assert [p.name for p in both.values()] == ["comparison.json", "comparison.md"]
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["comparison.json", "comparison.md"]
    assert both["json"].read_text() == paths["json"].read_text()
    md = both["markdown"].read_text()
    assert md == render_markdown(c) == comparison_markdown(c)  # the renderer of the old RunComparison.markdown()
    lines = md.splitlines()
    assert lines[0] == f"# Instruction importance: {c.pair.base_label} (base) vs {c.pair.tuned_label} (tuned)"
    assert "## Paired differences (records both models scored)" in lines
    assert "## Unpaired (the paper's Welch test over all valid records)" in lines
    assert "## Position profile (mean density per relative-position bin)" in lines
    assert lines[-1] == WEIGHT_NOTE and f"Runs: `{c.base_run}` and `{c.tuned_run}`" in md
    assert RunComparison.load(tmp_path / "both").to_dict() == c.to_dict()
    with pytest.raises(TypeError, match="no Markdown renderer for _Inner"):
        save_with_markdown(_Inner(1.0, 1), tmp_path / "none")
    assert not (tmp_path / "none").exists()  # nothing written without a renderer
