"""Issue 21 item 4: skipped records are named on stderr (a few, then "and N more"), counted with
the right number ("1 record was skipped"), and json's messages read without a doubled "at"."""

from __future__ import annotations

import json

import pytest
from test_cli import FAST, attribute_args, no_traceback, sh
from test_paper_release import _tiny_release

import helpers_tiny as H
from tuneshift.data.prompts import read_prompts

LONG = " ".join(["the report is ready"] * 60)  # > the tiny models' 128 positions: skipped


def _prompts(tmp_path, n_long: int, bad_line: str | None = None):
    recs = [dict(r) for r in H.TINY_PROMPTS[:2]]
    recs += [{"id": f"too_long_{i}", "prompt": LONG, "instruction": ["the report"]} for i in range(n_long)]
    lines = [json.dumps(r) for r in recs]
    if bad_line is not None:
        lines.insert(1, bad_line)
    p = tmp_path / "prompts.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.slow  # starts a subprocess
def test_one_skipped_record_is_named_and_counted_in_the_singular(tiny_llama_dir, tmp_path):
    r = sh(*attribute_args(tiny_llama_dir, _prompts(tmp_path, 1), tmp_path / "run", *FAST))
    no_traceback(r)
    assert r.code == 3, r.err
    tail = r.err.splitlines()[-2:]  # the summary's end names the record, then counts it
    assert tail[0].startswith("skipped record too_long_0: prompt is "), r.err
    assert tail[1] == f"1 record was skipped (reasons in {tmp_path / 'run' / 'skipped.json'}); exit code 3", r.err
    assert "records were" not in r.err and "input lines" not in r.err


@pytest.mark.slow  # starts a subprocess
def test_many_skipped_records_name_five_then_and_n_more(tiny_llama_dir, tmp_path):
    bad = '{"id": "broken", "prompt": "abc'  # an unterminated string
    r = sh(*attribute_args(tiny_llama_dir, _prompts(tmp_path, 7, bad), tmp_path / "run", *FAST))
    no_traceback(r)
    assert r.code == 3, r.err
    lines = r.err.splitlines()
    end = lines[lines.index(next(ln for ln in lines if ln.startswith("2 attributed"))) + 1 :]
    assert (
        end[0]
        == "skipped input: prompts.jsonl line 2: malformed JSON (Unterminated string starting at column 28); line skipped"
    )
    assert [ln.split(":")[0] for ln in end[1:6]] == [f"skipped record too_long_{i}" for i in range(5)]
    assert end[6] == "... and 2 more skipped records"
    assert (
        end[7]
        == f"1 input line and 7 records were skipped (reasons in {tmp_path / 'run' / 'skipped.json'}); exit code 3"
    )
    # while the run goes, at most five skipped records are named too (not one line per record)
    during = [ln for ln in lines[: len(lines) - len(end)] if ln.startswith("skipped record")]
    assert len(during) == 5


@pytest.mark.parametrize(
    "bad, col, msg",
    [
        ('{"id": "x", "prompt": "abc', 23, "Unterminated string starting at column 23"),
        ('{"id": "x", "prompt": ', 23, "Expecting value at column 23"),
        ('{"id": "x", "prompt": "a\tb"}', 25, "Invalid control character at column 25"),
    ],
)
def test_malformed_json_message_has_one_at(tmp_path, bad, col, msg):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps(H.TINY_PROMPTS[0]) + "\n" + bad + "\n")
    with pytest.warns(UserWarning):
        ps = read_prompts(p)
    assert ps.problems == [f"p.jsonl line 2: malformed JSON ({msg}); line skipped"]
    assert " at at " not in ps.problems[0]


def test_import_paper_names_its_skipped_records(cli, tmp_path):
    f = _tiny_release(tmp_path)
    (f["released"] / "ifa_llama_7b" / "lima_author_2.pkl").unlink()
    r = cli(
        "import-paper",
        "--released",
        f["released"],
        "--dataset",
        f["dataset"],
        "--ratings",
        f["ratings"],
        "--out",
        tmp_path / "o",
    )
    assert r.code == 3, r.err
    named = [ln for ln in r.err.splitlines() if ln.startswith("llama_7b: skipped record lima_author_2")]
    assert len(named) == 1, r.err
    assert "1 record was skipped (reasons in each run's skipped.json); exit code 3" in r.err


@pytest.mark.slow  # a local Ray cluster
def test_ray_run_names_its_skipped_records_in_the_summary(cli, tiny_llama_dir, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    r = cli(
        *attribute_args(tiny_llama_dir, _prompts(tmp_path, 7), tmp_path / "run", *FAST),
        "--ray",
        "local",
        "--workers",
        "1",
        "--threads",
        "1",
    )
    assert r.code == 3, r.err
    lines = r.err.splitlines()
    named = [ln for ln in lines if ln.startswith("skipped record too_long_")]
    assert len(named) == 10, r.err  # five while the run goes, five in the summary
    assert "... and 2 more skipped records" in lines
    assert lines[-1] == f"7 records were skipped (reasons in {tmp_path / 'run' / 'skipped.json'}); exit code 3"
