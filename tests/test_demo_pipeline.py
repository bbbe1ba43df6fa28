"""`tuneshift demo` runs the paper's three methods, the random-update null, the annotator sample and
the findings table (issue 19, items 1, 2 and 6), on tiny models built from a config."""

from __future__ import annotations

import json

import pytest

from tuneshift.errors import TuneshiftError
from tuneshift.models.pair import ModelPair
from tuneshift.pipelines.demo import run_demo
from tuneshift.pipelines.demo_options import DemoOptions


def _options(base, tuned, **kw) -> DemoOptions:
    return DemoOptions(
        pair=ModelPair(str(base), str(tuned)), max_new_tokens=6, batch_size=2, limit=3, annotator=f"local:{tuned}", **kw
    )


@pytest.mark.slow  # the whole demo on tiny models (~30 s)
def test_demo_runs_all_three_methods_and_opens_the_report_with_the_findings(
    tiny_llama_dir, tiny_llama_chat_other_dir, tmp_path, monkeypatch
):
    out = tmp_path / "demo"
    opts = _options(tiny_llama_dir, tiny_llama_chat_other_dir, workers=1)
    res = run_demo(out, opts, progress=False)
    for kind in ("heads", "concepts"):
        for side in ("base", "tuned", "null"):
            m = json.loads((out / kind / side / "manifest.json").read_text())
            assert m["status"] == "complete", (kind, side)
    null_model = json.loads((out / "heads" / "null" / "manifest.json").read_text())["identity"]["model"]
    assert "random_update" in json.dumps(null_model)
    assert (out / "concepts" / "base" / "annotations.parquet").is_file()
    assert (out / "concepts" / "tuned" / "annotations.parquet").is_file()
    assert (out / "heads" / "heads_comparison.json").is_file() and (
        out / "concepts" / "concepts_rotation.json"
    ).is_file()
    # the findings: 3 pairs, 2 layers, a handful of components -- all below the minimum of 10: no claim anywhere
    rows = {r.key: r for r in res.findings.rows}
    assert list(rows) == [
        "importance_own",
        "importance_gold",
        "ablation_gold",
        "heads_verbs",
        "concepts_rotation",
        "concepts_tasks",
    ]
    for side in ("base", "tuned"):
        assert json.loads((out / "gold" / side / "ablation" / "manifest.json").read_text())["status"] == "complete"
    assert (out / "gold" / "ablation_comparison.json").is_file()
    assert rows["ablation_gold"].reason == f"too few pairs ({rows['ablation_gold'].n})"
    assert rows["importance_own"].role == "primary"
    for r in rows.values():
        assert r.verdict.endswith("no claim"), (r.key, r.verdict)
        assert r.p != r.p and r.ci_low != r.ci_low  # NaN: no p, no CI
    assert rows["importance_gold"].reason == f"too few pairs ({rows['importance_gold'].n})"
    assert (out / "findings.md").read_text().startswith("## Findings")
    html = res.report.read_text()
    assert (
        html.index('data-kind="findings"')
        < html.index('data-kind="attribution"')
        < html.index('data-kind="heads"')
        < html.index('data-kind="concepts"')
    )
    assert (
        "findings-table" in html
        and '<tr class="pos' not in html.split('data-kind="findings"')[1].split("</section>")[0]
    )

    # a re-run loads no model: every step is finished with the same identity
    import tuneshift.models.loading as loading

    def no_load(*a, **k):
        raise TuneshiftError("a model was loaded")

    monkeypatch.setattr(loading, "load_model", no_load)
    again = run_demo(out, opts, progress=False)
    assert (
        all(s["skipped"] for s in again.steps) and len(again.steps) == 10
    )  # ablate x2; heads, concepts x3; annotate x2
    assert again.findings.to_dict() == res.findings.to_dict()


@pytest.mark.slow  # starts a subprocess
def test_two_workers_give_the_same_results_as_one(tiny_llama_dir, tiny_llama_chat_dir, tmp_path):
    one = run_demo(
        tmp_path / "one",
        _options(tiny_llama_dir, tiny_llama_chat_dir, workers=1, methods=("attribution",)),
        progress=False,
    )
    two = run_demo(
        tmp_path / "two",
        _options(tiny_llama_dir, tiny_llama_chat_dir, workers=2, methods=("attribution",)),
        progress=False,
    )
    assert two.workers == 2 and one.workers == 1
    for p in ("own", "gold"):
        a, b = one.comparisons[p].to_dict(), two.comparisons[p].to_dict()
        for d in (a, b):
            d.pop("base_run"), d.pop("tuned_run")
        assert a == b
    assert sorted(two.summaries) == ["gold, base", "gold, tuned", "own, base", "own, tuned"]


def test_demo_refuses_an_annotator_it_cannot_run_offline_before_any_load(tiny_llama_dir, tiny_llama_chat_dir, tmp_path):
    from tuneshift.errors import ModelSpecError

    opts = DemoOptions(pair=ModelPair(str(tiny_llama_dir), str(tiny_llama_chat_dir)), annotator="openai:gpt-4o")
    with pytest.raises(ModelSpecError, match="local:SPEC"):
        run_demo(tmp_path / "d", opts, progress=False)
    assert not (tmp_path / "d").exists()
