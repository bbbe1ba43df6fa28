"""Tests of tuneshift.data.prompts: JSONL/paper-TSV reading, problems, ratings, bundled demo set.

Formats: Wu et al. 2024 (arXiv 2310.00492) reference data, described in shared/paper/README.md.
"""

from __future__ import annotations

import collections
import json
import warnings
from pathlib import Path

import pytest

from helpers_tiny import paper_dir, paper_skip_reason
from tuneshift.data import (
    PromptRecord,
    PromptSet,
    bundled_prompts_path,
    group_from_id,
    read_prompts,
)
from tuneshift.errors import InputFileError, TuneshiftError

PAPER = paper_dir() / "datasets" if paper_dir() else None
needs_paper = pytest.mark.skipif(PAPER is None, reason=paper_skip_reason())


def _write_jsonl(path: Path, lines: list) -> Path:
    out = []
    for ln in lines:
        out.append(ln if isinstance(ln, str) else json.dumps(ln))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _read_quiet(*args, **kwargs) -> PromptSet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_prompts(*args, **kwargs)


# ------------------------------------------------------------------ JSONL


def test_jsonl_all_fields(tmp_path):
    p = _write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "id": "a",
                "prompt": "Summarise this.\n\nText: cats sleep a lot",
                "response": "Cats sleep.",
                "instruction": ["Summarise this."],
                "context": "cats sleep a lot",
                "rating": 3,
                "group": "summarise",
            },
            "",
            "   ",
            {"id": "lima_author_7", "prompt": "Why is the sky blue?"},
            {"id": 12, "prompt": "Hi", "instruction": "Hi", "rating": -1},
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # blank lines are ignored silently
        ps = read_prompts(p)
    assert ps.format == "jsonl"
    assert ps.path == str(p)
    assert ps.problems == [] and ps.n_skipped == 0
    a, b, c = ps.records
    assert a == PromptRecord(
        id="a",
        prompt="Summarise this.\n\nText: cats sleep a lot",
        response="Cats sleep.",
        instruction=["Summarise this."],
        context="cats sleep a lot",
        rating=3,
        group="summarise",
        source_line=1,
    )
    assert (b.group, b.source_line, b.instruction, b.context, b.rating) == ("lima", 4, [], None, None)
    assert (c.id, c.instruction, c.rating, c.group) == ("12", ["Hi"], None, "default")
    assert len(ps.sha256()) == 64
    import hashlib

    assert ps.sha256() == hashlib.sha256(p.read_bytes()).hexdigest()


def test_jsonl_malformed_line_is_skipped_and_named(tmp_path):
    p = _write_jsonl(
        tmp_path / "prompts.jsonl",
        [
            {"id": "r1", "prompt": "one"},
            {"id": "r2", "prompt": "two"},
            '{"id": "r3", "prompt": "three"',  # line 3: truncated
            {"id": "r4", "prompt": "four"},
        ],
    )
    with pytest.warns(UserWarning, match="prompts.jsonl line 3: malformed JSON"):
        ps = read_prompts(p)
    assert [r.id for r in ps.records] == ["r1", "r2", "r4"]
    assert [r.source_line for r in ps.records] == [1, 2, 4]
    assert ps.n_skipped == 1
    assert ps.problems[0].startswith("prompts.jsonl line 3: malformed JSON (")
    assert ps.problems[0].endswith("; line skipped")
    assert "\n" not in ps.problems[0]


def test_jsonl_bad_records_skipped(tmp_path):
    p = _write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "ok", "prompt": "fine"},
            {"id": "empty", "prompt": "   \n "},  # 2 empty prompt
            {"prompt": "no id"},  # 3 missing id
            {"id": "ok", "prompt": "dup"},  # 4 duplicate id
            {"id": "r5", "prompt": "x", "rating": "4"},  # 5 rating not int
            {"id": "r6", "prompt": "x", "rating": 2.0},  # 6 rating float
            {"id": "r7", "prompt": "x", "instruction": [1, 2]},  # 7 spans not str
            ["not", "an", "object"],  # 8
            {"id": "r9"},  # 9 no prompt
            {"id": "r10", "prompt": "x", "rating": 9},  # 10 out of range
            {"id": "last", "prompt": "kept", "instruction": ["", "  ", "kept"]},
        ],
    )
    ps = _read_quiet(p)
    assert [r.id for r in ps.records] == ["ok", "last"]
    assert ps.records[0].prompt == "fine"  # the first of a duplicate id wins
    assert ps.records[1].instruction == ["kept"]  # empty spans dropped
    lines = [int(pr.split(" line ")[1].split(":")[0]) for pr in ps.problems]
    assert lines == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert all(pr.startswith("p.jsonl line ") and pr.endswith("line skipped") for pr in ps.problems)
    assert "empty 'prompt'" in ps.problems[0]
    assert "missing 'id'" in ps.problems[1]
    assert "duplicate id 'ok' (first at line 1)" in ps.problems[2]
    assert "'rating'" in ps.problems[3]
    assert ps.n_skipped == 9


def test_limit_keeps_first_valid_records(tmp_path):
    p = _write_jsonl(
        tmp_path / "p.jsonl",
        ["{bad", {"id": "a", "prompt": "1"}, {"id": "b", "prompt": "2"}, {"id": "c", "prompt": "3"}],
    )
    ps = _read_quiet(p, limit=2)
    assert [r.id for r in ps.records] == ["a", "b"]
    assert ps.n_skipped == 1
    with pytest.raises(TuneshiftError, match="limit"):
        read_prompts(p, limit=0)


def test_json_array_file(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps([{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]), encoding="utf-8")
    ps = _read_quiet(p)
    assert [r.prompt for r in ps.records] == ["x"]
    assert ps.problems == ["p.json record 2: duplicate id 'a' (first at record 1); record skipped"]


def test_unicode_line_separator_inside_json_string(tmp_path):
    p = tmp_path / "p.jsonl"
    rec = {"id": "u", "prompt": "a\u2028b\u0085c"}
    p.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_prompts(p).records[0].prompt == "a\u2028b\u0085c"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d / "missing.jsonl", "not found"),
        (lambda d: d, "directory"),
        (lambda d: (d / "x.csv").write_text("id,prompt\n") and d / "x.csv", "unknown prompt file extension"),
        (lambda d: (d / "x.jsonl").write_bytes(b'{"id": "a", "prompt": "\xff\xfe"}\n') and d / "x.jsonl", "not UTF-8"),
        (lambda d: (d / "e.jsonl").write_text("\n\n") and d / "e.jsonl", "no valid prompt records"),
        (lambda d: (d / "bad.jsonl").write_text("{nope\n") and d / "bad.jsonl", "no valid prompt records.*line 1"),
        (lambda d: (d / "t.tsv").write_text("ID\tText\na\tb\n") and d / "t.tsv", "missing TSV column"),
    ],
    ids=["missing", "directory", "extension", "not-utf8", "empty", "all-bad", "tsv-columns"],
)
def test_whole_file_problems_raise(tmp_path, make, match):
    path = make(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputFileError, match=match) as ei:
            read_prompts(path)
    assert "\n" not in str(ei.value)


def test_group_from_id():
    assert group_from_id("user_oriented_task_17") == "self_instruct"
    assert group_from_id("lima_author_3") == "lima"
    assert group_from_id("mtbench_math_111") == "mt_bench"
    assert group_from_id("rewrite_01") is None


# ------------------------------------------------------------------ paper TSV (small, synthetic)


def test_small_paper_tsv(tmp_path):
    p = tmp_path / "mini.tsv"
    p.write_text(
        "ID\tPrompt\tResponse\tInstruct&Context\n"
        'user_oriented_task_0\tFix it./n/nInput: a/tb\t"He said ""hi""."\tFix it.|||Input: &&&a/tb\n'
        "lima_author_1\tWhy? Tell me.\tBecause.\tWhy?||||||Tell me.\n"
        "mtbench_x_1\tList:/nA/nB\t\tList:&&&A|||B\n",
        encoding="utf-8",
    )
    ratings = tmp_path / "ratings.tsv"
    ratings.write_text(
        "File\tModel\tRating\n"
        "user_oriented_task_0.pkl\tvicuna_7B\t2\n"
        "user_oriented_task_0.pkl\talpaca_7B\t-1\n"
        "lima_author_1.pkl\tvicuna_7B\t-1\n"
        "mtbench_x_1.pkl\tvicuna_7B\tgood\n",
        encoding="utf-8",
    )
    ps = _read_quiet(p, ratings=ratings)
    assert ps.format == "paper-tsv"
    a, b, c = ps.records
    assert a.prompt == "Fix it.\n\nInput: a\tb"
    assert a.response == 'He said "hi".'
    assert a.instruction == ["Fix it.", "Input: "]
    assert a.context == "a\tb"
    assert (a.group, a.rating, a.source_line) == ("self_instruct", 2, 2)
    assert (b.instruction, b.context, b.rating) == (["Why?", "Tell me."], None, None)
    assert (c.response, c.context, c.group, c.rating) == (None, "A\nB", "mt_bench", None)
    assert ps.problems == ["ratings.tsv line 5: rating 'good' is not an integer; row ignored"]
    assert ps.ratings_path == str(ratings)


def test_ratings_file_missing_columns(tmp_path):
    p = _write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "x"}])
    r = tmp_path / "r.tsv"
    r.write_text("Name\tScore\na\t3\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="needs columns File"):
        read_prompts(p, ratings=r)
    with pytest.raises(InputFileError, match="not found"):
        read_prompts(p, ratings=tmp_path / "nope.tsv")


# ------------------------------------------------------------------ the paper's real files


@needs_paper
def test_paper_final_dataset():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ps = read_prompts(PAPER / "FinalDataset.tsv", ratings=PAPER / "AnnotatedDataset.tsv")
    assert len(ps.records) == 632
    assert ps.problems == []
    assert collections.Counter(r.group for r in ps.records) == {
        "self_instruct": 252,
        "lima": 300,
        "mt_bench": 80,
    }
    by_id = {r.id: r for r in ps.records}
    r0 = by_id["user_oriented_task_0"]
    assert r0.prompt.startswith("The sentence you are given might be too wordy")
    assert "/n" not in r0.prompt and "\n\nInput: If you have any questions" in r0.prompt
    assert r0.prompt.endswith("\n\nOutput:")
    assert r0.instruction[-1] == "Input: "
    assert r0.context.startswith("If you have any questions about my rate")
    assert r0.rating == 4  # vicuna_7B row; alpaca rows are all -1
    # every annotated span is a substring of its prompt once /n is decoded
    assert all(s in r.prompt for r in ps.records for s in r.instruction)
    ratings = collections.Counter(r.rating for r in ps.records)
    assert ratings == {4: 427, 1: 113, 2: 59, 3: 30, None: 3}
    assert sum(not any("/n" in s for s in [r.prompt, r.response or ""]) for r in ps.records) == 632


# ------------------------------------------------------------------ bundled demo prompts


def test_bundled_demo_prompts():
    path = bundled_prompts_path()
    assert path.name == "demo_prompts.jsonl" and path.is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ps = read_prompts(path)
    assert ps.problems == []
    recs = ps.records
    assert len(recs) >= 26
    groups = collections.Counter(r.group for r in recs)
    assert len(groups) >= 6
    assert all(r.id.startswith(r.group + "_") for r in recs)
    for r in recs:
        assert r.instruction, r.id
        assert all(s in r.prompt for s in r.instruction), r.id
        if r.context is not None:
            assert r.context in r.prompt, r.id
        assert 15 <= len(r.prompt.split()) <= 60, r.id
    n_ctx = sum(r.context is not None for r in recs)
    assert 0.25 <= n_ctx / len(recs) <= 0.45
