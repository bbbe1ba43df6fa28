"""What ``tuneshift attribute`` refuses (or warns about) before the model loads (issue 21, items 2
and 3), and the status of a run in which nothing was attributed.

"Before the model loads" is tested by replacing the CLI's loader with one that raises: a check
that ran after the load would report the loader's error instead.
"""

from __future__ import annotations

import json

import pytest

import helpers_tiny as H
from tuneshift.errors import TuneshiftError
from tuneshift.storage.attribution import load_run

LOADER_CALLED = "the model loader was called"


@pytest.fixture
def no_load(monkeypatch):
    """The CLI's model loader raises: anything refused after a load shows this message instead."""
    import tuneshift.cli.attribution as cli_attr

    def boom(*a, **k):
        raise TuneshiftError(LOADER_CALLED)

    monkeypatch.setattr(cli_attr, "_load_model", boom)


def _args(model, prompts, out, *extra):
    return ["attribute", "--model", model, "--prompts", prompts, "--out", out, *extra]


def _one_error(r, *needles) -> str:
    assert "Traceback" not in r.err, r.err
    assert r.code == 2, (r.code, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.err
    assert LOADER_CALLED not in lines[0], r.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def source_run(tiny_llama_dir, tmp_path_factory):
    """A given-response run of the tiny llama over TINY_PROMPTS (the source of cross answers)."""
    from tuneshift.cli import main

    d = tmp_path_factory.mktemp("cross_src")
    p = H.write_prompts_jsonl(d / "prompts.jsonl")
    with pytest.raises(SystemExit) as e:
        main(_args(tiny_llama_dir, p, d / "run", "--responses", "gold", "--limit", "2"))
    assert e.value.code == 0
    return p, d / "run"


def test_cross_from_a_run_on_other_prompts_is_refused_before_the_load(
    cli, no_load, tiny_llama_dir, source_run, tmp_path
):
    _, src = source_run
    other = H.write_prompts_jsonl(tmp_path / "other.jsonl", [dict(r, id=r["id"] + "_x") for r in H.TINY_PROMPTS])
    r = cli(*_args(tiny_llama_dir, other, tmp_path / "run", "--responses", "cross", "--responses-from", src))
    line = _one_error(r, "--responses-from", str(src), "another prompt file")
    want = json.loads((src / "manifest.json").read_text())["identity"]["dataset"]["sha256"][:12]
    assert want in line
    assert not (tmp_path / "run").exists()


def test_cross_from_a_folder_that_is_not_a_run(cli, no_load, tiny_llama_dir, source_run, tmp_path):
    prompts, _ = source_run
    (tmp_path / "notarun").mkdir()
    r = cli(
        *_args(
            tiny_llama_dir, prompts, tmp_path / "run", "--responses", "cross", "--responses-from", tmp_path / "notarun"
        )
    )
    _one_error(r, "not a tuneshift run")
    r = cli(
        *_args(
            tiny_llama_dir, prompts, tmp_path / "run", "--responses", "cross", "--responses-from", tmp_path / "missing"
        )
    )
    _one_error(r, "does not exist")
    assert not (tmp_path / "run").exists()


def test_cross_from_the_same_file_passes_the_check(cli, no_load, tiny_llama_dir, source_run, tmp_path):
    prompts, src = source_run  # same prompt file: the check lets it through to the (patched) load
    r = cli(*_args(tiny_llama_dir, prompts, tmp_path / "run", "--responses", "cross", "--responses-from", src))
    assert r.code == 2 and LOADER_CALLED in r.err, r.err


def test_gold_file_without_responses_is_refused_before_the_load(cli, no_load, tiny_llama_dir, tmp_path):
    recs = [{k: v for k, v in r.items() if k != "response"} for r in H.TINY_PROMPTS]
    p = H.write_prompts_jsonl(tmp_path / "noresp.jsonl", recs)
    r = cli(*_args(tiny_llama_dir, p, tmp_path / "run", "--responses", "gold"))
    _one_error(r, "no record of", "'response' field", "gold protocol")
    assert not (tmp_path / "run").exists()
    # some responses missing: a warning up front names how many, and the run goes on
    recs2 = [dict(H.TINY_PROMPTS[0]), recs[1]]
    p2 = H.write_prompts_jsonl(tmp_path / "someresp.jsonl", recs2)
    r = cli(*_args(tiny_llama_dir, p2, tmp_path / "run", "--responses", "gold"))
    assert "warning: 1 of 2 records have no 'response' field and will be skipped (e.g. summary)" in r.err, r.err
    assert r.err.index("warning: 1 of 2") < r.err.index(LOADER_CALLED)


def test_a_template_that_does_not_render_is_refused_before_the_load(
    cli, no_load, tiny_llama_dir, tiny_prompts_file, tmp_path
):
    t = tmp_path / "bad.jinja"
    t.write_text("{% for m in messages %}{{ raise_exception('no user turns here') }}{% endfor %}")
    r = cli(*_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--chat-template", t))
    _one_error(r, "does not render", "no user turns here")
    t.write_text("<start>{{ undefined_function() }}")
    r = cli(*_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--chat-template", t))
    _one_error(r, "does not render")
    t.write_text("<start>{% if add_generation_prompt %}<model>{% endif %}")  # drops the prompt
    r = cli(*_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--chat-template", t))
    _one_error(r, "does not contain the prompt")
    assert not (tmp_path / "run").exists()


def test_max_new_tokens_below_min_response_tokens_warns_before_the_load(
    cli, no_load, tiny_llama_dir, tiny_prompts_file, tmp_path
):
    r = cli(
        *_args(
            tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--max-new-tokens", "4", "--min-response-tokens", "5"
        )
    )
    want = (
        "warning: --max-new-tokens 4 is below --min-response-tokens 5: every generated answer will be flagged "
        "short and left out of compare's statistics"
    )
    assert want in r.err, r.err
    assert r.err.index(want) < r.err.index(LOADER_CALLED)
    r = cli(
        *_args(
            tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--max-new-tokens", "5", "--min-response-tokens", "5"
        )
    )
    assert "warning: --max-new-tokens" not in r.err, r.err
    r = cli(*_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--max-new-tokens", "4", "--responses", "gold"))
    assert "warning: --max-new-tokens" not in r.err, r.err  # forced answers: the limit plays no part


def test_a_run_with_nothing_attributed_is_marked_empty_not_complete(cli, tiny_llama_dir, tmp_path):
    long = " ".join(["the report is ready"] * 60)  # > the tiny models' 128 positions
    p = H.write_prompts_jsonl(
        tmp_path / "long.jsonl", [{"id": "too_long", "prompt": long, "instruction": ["the report"]}]
    )
    r = cli(*_args(tiny_llama_dir, p, tmp_path / "run", "--max-new-tokens", "5"))
    assert "Traceback" not in r.err
    assert r.code == 2, (r.code, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert lines == [
        f"error: no record was attributed (1 skipped, reasons in {tmp_path / 'run' / 'skipped.json'}); "
        "the run is marked empty, not complete"
    ], r.err
    run = load_run(tmp_path / "run")
    assert run.manifest["status"] == "empty" and run.attributions == [] and list(run.skipped) == ["too_long"]
    assert run.manifest["counts"]["n_attributed"] == 0


@pytest.mark.slow  # reads the packaged real models' tokenizers (~2 min in a fresh cache)
def test_demo_warns_about_a_generation_limit_below_the_minimum_length_before_the_load(cli, monkeypatch, tmp_path):
    import tuneshift.models.loading as loading

    def boom(*a, **k):
        raise TuneshiftError(LOADER_CALLED)

    monkeypatch.setattr(loading, "load_model", boom)
    r = cli("demo", "--out", tmp_path / "demo", "--limit", "1", "--max-new-tokens", "4", "--workers", "1")
    want = (
        "warning: --max-new-tokens 4 is below the minimum response length 5: every own answer will be flagged "
        "short and left out of the own comparison"
    )
    assert want in r.err and r.err.index(want) < r.err.index(LOADER_CALLED), r.err
    r = cli("demo", "--out", tmp_path / "demo", "--limit", "1", "--max-new-tokens", "5", "--workers", "1")
    assert "warning: --max-new-tokens" not in r.err and LOADER_CALLED in r.err, r.err


def test_resuming_with_other_settings_is_refused_before_the_load(cli, tiny_llama_dir, source_run, monkeypatch):
    # a new-user trial: --sign abs (or another --max-new-tokens, b, p, L...) into an existing run
    # was refused only after the model had loaded
    import shutil

    prompts, run = source_run
    other = run.parent / "resume_other"
    shutil.copytree(run, other)
    import tuneshift.cli.attribution as cli_attr

    def boom(*a, **k):
        raise TuneshiftError(LOADER_CALLED)

    monkeypatch.setattr(cli_attr, "_load_model", boom)
    line = _one_error(
        cli(*_args(tiny_llama_dir, prompts, other, "--responses", "gold", "--limit", "2", "--sign", "abs")),
        "other settings",
        "options.importance.sign",
    )
    assert "existing not set (the default), requested 'abs'" in line
    _one_error(
        cli(*_args(tiny_llama_dir, prompts, other, "--responses", "gold", "--limit", "2", "--threshold", "3")),
        "other settings",
        "threshold",
    )
    # the same settings pass the check (and reach the loader)
    r = cli(*_args(tiny_llama_dir, prompts, other, "--responses", "gold", "--limit", "2"))
    assert LOADER_CALLED in r.err
