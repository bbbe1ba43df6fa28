"""A re-run of a finished demo loads no model (issue 21, item 11): every run complete with the same
identity, computed without a load (``planned_identity``), is detected first."""

from __future__ import annotations

import json

import pytest

from tuneshift.errors import TuneshiftError
from tuneshift.models.pair import ModelPair
from tuneshift.pipelines.demo import DemoOptions, run_demo


def test_planned_identity_equals_the_identity_of_a_loaded_model(tiny_llama_dir, tiny_prompts_file):
    import tuneshift
    from tuneshift.data.prompts import read_prompts
    from tuneshift.methods.attribution.api import AttributionOptions
    from tuneshift.pipelines.attribute_run import planned_identity, run_identity

    prompts = read_prompts(tiny_prompts_file)
    options = AttributionOptions(responses="given", batch_size=2)
    loaded = tuneshift.load_model(str(tiny_llama_dir), progress=False)
    want = json.loads(json.dumps(run_identity(loaded, prompts, options)[0], default=str))
    assert planned_identity(str(tiny_llama_dir), prompts, options) == want
    assert planned_identity(str(tiny_llama_dir), prompts, options, dtype="float64") != want  # dtype is identity


def test_rerun_of_a_finished_demo_loads_no_model(tiny_llama_dir, tiny_llama_chat_dir, tmp_path, monkeypatch):
    opts = DemoOptions(
        pair=ModelPair(str(tiny_llama_dir), str(tiny_llama_chat_dir)),
        max_new_tokens=6,
        batch_size=2,
        limit=3,
        methods=("attribution",),
        workers=1,
    )  # heads and concepts: tests/test_demo_pipeline.py
    first = run_demo(tmp_path / "demo", opts, progress=False)
    assert first.prompt_form == "template"
    manifests = {
        p: (tmp_path / "demo" / p / s / "manifest.json").read_text() for p in opts.protocols for s in ("base", "tuned")
    }

    import tuneshift.models.loading as loading

    def no_load(*a, **k):
        raise TuneshiftError("a model was loaded")

    monkeypatch.setattr(loading, "load_model", no_load)
    seen = []
    again = run_demo(tmp_path / "demo", opts, progress=False, on_summary=lambda side, s: seen.append((side, s)))
    assert [side for side, _ in seen] == ["own, tuned", "gold, tuned", "own, base", "gold, base"]
    assert all((s.n_records, s.n_done_before, s.n_attributed, s.status) == (3, 3, 0, "complete") for _, s in seen)
    assert {
        p: (tmp_path / "demo" / p / s / "manifest.json").read_text() for p in opts.protocols for s in ("base", "tuned")
    } == manifests  # untouched
    for p in opts.protocols:  # the same comparisons, made again from the runs
        assert again.comparisons[p].to_dict() == first.comparisons[p].to_dict()
    assert again.prompt_form == "template" and again.report.is_file()
    # other settings (another generation limit) in the same folder: refused before any model loads
    from tuneshift.errors import RunMismatchError

    with pytest.raises(RunMismatchError, match="max_new_tokens"):
        run_demo(
            tmp_path / "demo",
            DemoOptions(pair=opts.pair, max_new_tokens=7, batch_size=2, limit=3, methods=("attribution",), workers=1),
            progress=False,
        )
    # in a new folder the models are needed again
    with pytest.raises(TuneshiftError, match="a model was loaded"):
        run_demo(
            tmp_path / "demo7",
            DemoOptions(pair=opts.pair, max_new_tokens=7, batch_size=2, limit=3, methods=("attribution",), workers=1),
            progress=False,
        )


def test_finished_run_computes_the_identity_only_for_a_complete_run(tiny_llama_dir, tiny_prompts_file, tmp_path):
    """Hashing a large model's weights is paid only when a complete run is there to compare with;
    a model the driver cannot resolve (a path only a cluster's workers see) means "not finished"."""
    import tuneshift
    from tuneshift.data.prompts import read_prompts
    from tuneshift.errors import ModelSpecError
    from tuneshift.methods.attribution.api import AttributionOptions
    from tuneshift.pipelines.attribute_run import finished_run, planned_identity, run_attribution

    prompts = read_prompts(tiny_prompts_file)
    options = AttributionOptions(responses="given", batch_size=4)
    calls = []

    def ident():
        calls.append(1)
        return planned_identity(str(tiny_llama_dir), prompts, options)

    assert finished_run(tmp_path / "run", ident, prompts) is None and calls == []  # no run yet: not computed
    run_attribution(
        tuneshift.load_model(str(tiny_llama_dir), progress=False), prompts, tmp_path / "run", options, progress=False
    )
    s = finished_run(tmp_path / "run", ident, prompts)
    assert calls == [1] and (s.n_done_before, s.n_attributed, s.status) == (len(prompts.records), 0, "complete")

    def unresolvable():
        raise ModelSpecError("model path /cluster/only does not exist")

    assert finished_run(tmp_path / "run", unresolvable, prompts) is None
