"""Issue 21 item 6: output outside a terminal (a log file, a pipe). Tables keep every column on
one line and never wrap a label, each progress step is one rate-limited line (not a line plus a
bar), and transformers' `Loading weights` bar does not appear on tuneshift's loads."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from test_cli import attribute_args, no_traceback, sh

import helpers_tiny as H
from tuneshift.progress import progress_bar
from tuneshift.reports.compare_report import PAIRED_HEADER

BAR_CHARS = re.compile("[━╸╺█▏▎▍▌▋▊▉]")


def _tables(text: str) -> list[list[list[str]]]:
    """Markdown tables of ``text``: per table, its lines split into cells."""
    tables, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            tables.append(cur)
            cur = []
    return tables


@pytest.mark.slow  # starts subprocesses
def test_logs_get_whole_tables_single_progress_lines_and_no_loading_bar(tiny_llama_dir, tiny_llama_other_dir, tmp_path):
    p = H.write_prompts_jsonl(tmp_path / "p.jsonl", H.TINY_PROMPTS)
    for name, model in (("base", tiny_llama_dir), ("tuned", tiny_llama_other_dir)):
        r = sh(*attribute_args(model, p, tmp_path / name, "--responses", "gold", "--batch-size", "2", "--threads", "1"))
        no_traceback(r)
        assert r.code == 0, r.err
        assert "Loading weights" not in r.err and "Loading weights" not in r.out  # transformers' bar is off
        assert not BAR_CHARS.search(r.err), r.err  # no bar drawn as text
        steps = [ln for ln in r.err.splitlines() if re.search(r": \d+/6 records", ln)]
        assert steps and len(steps) == len(set(ln.split(", elapsed")[0] for ln in steps)), r.err  # each step once
        assert all("elapsed" in ln and ("ETA" in ln or ln.endswith("done")) for ln in steps), steps
        assert steps[-1].split(", elapsed")[0].endswith("6/6 records")
    r = sh("compare", tmp_path / "base", tmp_path / "tuned")
    no_traceback(r)
    assert r.code == 0, r.err
    tables = _tables(r.out)
    headers = [t[0] for t in tables]
    assert PAIRED_HEADER in headers, r.out  # every column, Holm p included
    assert any(h[0] == "group" and h[-1] == "Wilcoxon p" for h in headers)  # the Welch table, whole
    for t in tables:  # no label wrapped onto a line of its own: every row has all its cells
        assert all(len(row) == len(t[0]) for row in t), t
    labels = [row[0] for t in tables for row in t[2:]]
    assert str(tiny_llama_dir) in labels  # the long model label on one line
    assert not any(len(ln) <= 80 and ln.endswith(" ") for ln in r.out.splitlines())  # nothing cut at 80 columns


def test_plain_progress_is_rate_limited_with_count_elapsed_and_eta():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=80)
    with progress_bar("job", total=10_000, unit="records", console=console) as bar:
        for _ in range(10_000):
            bar.advance(1)
    lines = buf.getvalue().splitlines()
    assert 1 <= len(lines) <= 11, lines  # one per 10% (and per 30 s), not one per record
    assert all(re.match(r"job: \d+/10000 records, elapsed \d+ s, (ETA \S+ \S+|done)$", ln) for ln in lines), lines
    assert lines[-1].startswith("job: 10000/10000 records") and lines[-1].endswith("done")
    assert len(lines) == len(set(ln.split(", elapsed")[0] for ln in lines))  # the final state once


def test_plain_progress_final_line_and_fields():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False)
    with progress_bar("tune", unit="steps", fields={"loss": "-"}, console=console, plain_interval=0) as bar:
        bar.update(total=3, completed=0)
        for step in (1, 2, 3):
            bar.update(completed=step, loss=f"{1 / step:.3f}")
    lines = buf.getvalue().splitlines()
    assert lines[-1].startswith("tune: 3/3 steps, loss 0.333, elapsed ") and lines[-1].endswith("done")
    assert [ln.split(",")[0] for ln in lines] == ["tune: 1/3 steps", "tune: 2/3 steps", "tune: 3/3 steps"]


def test_load_model_silences_transformers_bars_and_restores_the_users_setting(tiny_llama_dir, capfd):
    import transformers.utils.logging as hf_logging

    import tuneshift

    assert hf_logging.is_progress_bar_enabled()
    tuneshift.load_model(str(tiny_llama_dir), progress=False)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored
    hf_logging.disable_progress_bar()
    try:
        tuneshift.load_model(str(tiny_llama_dir), progress=False)
        assert not hf_logging.is_progress_bar_enabled()  # the user's choice is kept
    finally:
        hf_logging.enable_progress_bar()
