"""The demo's lanes and thread choice (issue 19, item 6), and the tokenizer-only template."""

from __future__ import annotations

import pytest

from tuneshift.pipelines.demo import plan_lanes, worker_layout
from tuneshift.pipelines.demo_options import DemoOptions


def test_two_lanes_one_per_model_with_the_null_in_the_tuned_lane():
    tuned, base = plan_lanes(DemoOptions(), workers=2)
    assert tuned == [
        ("attribute", "tuned", "own"),
        ("attribute", "tuned", "gold"),
        ("ablate", "tuned", "gold"),
        ("heads", "tuned", ""),
        ("concepts", "tuned", ""),
        ("heads", "null", ""),
        ("concepts", "null", ""),
        ("annotate", "tuned", ""),
    ]
    assert base == [
        ("attribute", "base", "own"),
        ("attribute", "base", "gold"),
        ("ablate", "base", "gold"),
        ("heads", "base", ""),
        ("concepts", "base", ""),
        ("annotate", "base", ""),
    ]
    (one,) = plan_lanes(DemoOptions(), workers=1)
    assert sorted(one) == sorted(tuned + base)
    assert plan_lanes(DemoOptions(methods=("attribution",)), workers=2) == [tuned[:3], base[:3]]
    assert plan_lanes(DemoOptions(methods=("attribution",), ablation=False), workers=2) == [tuned[:2], base[:2]]
    assert plan_lanes(DemoOptions(methods=("attribution",), protocols=("own",)), workers=2) == [tuned[:1], base[:1]]
    no_annot = plan_lanes(DemoOptions(annotate_components=0), workers=2)
    assert all(t[0] != "annotate" for lane in no_annot for t in lane)


def test_worker_layout_follows_the_cores(monkeypatch):
    import tuneshift.threads as th

    monkeypatch.setattr(th, "usable_cores", lambda: 2)
    assert worker_layout(DemoOptions()) == (2, 1)
    assert worker_layout(DemoOptions(threads=2)) == (2, 2)
    assert worker_layout(DemoOptions(workers=1)) == (1, 2)
    monkeypatch.setattr(th, "usable_cores", lambda: 8)
    assert worker_layout(DemoOptions()) == (2, 4)
    monkeypatch.setattr(th, "usable_cores", lambda: 1)
    assert worker_layout(DemoOptions()) == (1, 1)


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    import tuneshift.threads as th

    monkeypatch.setattr(th.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for load, want in ((0.1, 2), (0.6, 1), (1.2, 1), (3.0, 1)):
        monkeypatch.setattr(th.os, "getloadavg", lambda load=load: (load, load, load))
        assert th.default_threads() == want


def test_bad_demo_options_are_refused():
    from tuneshift.errors import OptionError

    for kw in (
        {"methods": ("heads", "nonsense")},
        {"workers": 0},
        {"threads": 0},
        {"min_n": 1},
        {"annotate_components": -1},
    ):
        with pytest.raises(OptionError):
            DemoOptions(**kw)


def test_load_tokenizer_gives_load_models_template(tiny_llama_chat_dir):
    import tuneshift
    from tuneshift.data.encoding import model_chat_template
    from tuneshift.models.loading import load_tokenizer

    want = model_chat_template(tuneshift.load_model(str(tiny_llama_chat_dir), progress=False).tokenizer)
    assert want is not None
    assert model_chat_template(load_tokenizer(str(tiny_llama_chat_dir), progress=False)) == want
