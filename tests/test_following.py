"""eval-following: the held-out set, the checks on hand-made answers, ROUGE-L, the driver on a
tiny model, the CLI; and the tuning corpus: size, task types, no 8-gram shared with any
evaluation prompt."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from helpers_tiny import assert_one_line_error
from tuneshift.errors import InputFileError
from tuneshift.reports.markdown import render_markdown, save_with_markdown
from tuneshift.tuning.corpus import load_corpus, overlapping_ngrams, word_ngrams
from tuneshift.tuning.following import (
    FollowingEvaluation,
    FollowingItem,
    FollowingResult,
    FollowingRow,
    PassRates,
    check_answer,
    evaluate_following,
    load_following_set,
    rouge_l,
)

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "tuning" / "corpus.jsonl"


def item(kind="none", **check):
    return FollowingItem("x", "t", "Name three fruits.", None, {"kind": kind, **check})


def test_bundled_set():
    items = load_following_set()
    assert len(items) == 40 and len({i.id for i in items}) == 40
    tasks = Counter(i.task for i in items)
    assert len(tasks) >= 8 and min(tasks.values()) >= 3
    assert {i.check["kind"] for i in items} >= {"list", "label", "number", "contains_any", "code"}


def test_rouge_l_by_hand():
    # LCS of "the cat sat" and "the cat sat on the mat" is 3 words: P = 1, R = 3/6, F1 = 2/3
    assert rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert rouge_l("dogs bark", "the cat sat") == 0.0
    # stemmed: "cats" -> "cat" matches, "sat" != "sit": LCS 1, P = 1/2, R = 1/3, F1 = 0.4
    assert rouge_l("Cats sat.", "the cat sits") == pytest.approx(0.4)


@pytest.mark.parametrize(
    "kind,check,answer,ok",
    [
        ("list", {"min_items": 3}, "1. apple\n2. pear\n3. plum", True),
        ("list", {"min_items": 3}, "- apple\n- pear", False),
        ("list", {"min_items": 3}, "Apples, pears and plums", True),
        ("list", {"min_items": 4}, "• a\n• b\n• c\n• d", True),
        ("label", {"labels": ["positive", "negative"]}, "Positive.", True),
        ("label", {"labels": ["positive", "negative"]}, "Positive or negative", False),
        ("label", {"labels": ["happy", "unhappy"]}, "Unhappy", True),
        ("label", {"labels": ["positive", "negative"]}, "It is good", False),
        ("number", {"answer": 12}, "3 x 4 = 12. The answer is 12.", True),
        ("number", {"answer": 12}, "The answer is 13.", False),
        ("number", {"answer": 1500}, "It costs 1,500 dollars", True),
        ("contains_any", {"words": ["Japan"]}, "japan", True),
        ("contains_any", {"words": ["wasser"]}, "Water", False),
        ("code", {"must_contain": ["def ", "return"]}, "def f(x):\n    return x", True),
        ("code", {"must_contain": ["def ", "return"]}, "print(1)", False),
    ],
)
def test_task_checks(kind, check, answer, ok):
    assert check_answer(item(kind, **check), answer, True)["task_check"] is ok


def test_generic_checks():
    it = item()
    good = check_answer(it, "Apple, banana and cherry.", True)
    assert good == {
        "non_empty": True,
        "not_copy": True,
        "eos": True,
        "task_check": None,
        "rouge_l": good["rouge_l"],
        "passed": True,
    }
    assert check_answer(it, "Apple.", False)["passed"] is False  # did not stop
    copy = check_answer(it, "Name three fruits. Name three fruits.", True)
    assert copy["not_copy"] is False and copy["passed"] is False and copy["rouge_l"] >= 0.5
    assert check_answer(it, "  ...  ", True)["non_empty"] is False


def test_bad_sets(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"id": "a", "instruction": "x", "check": {"kind": "vibes"}}\n')
    with pytest.raises(InputFileError, match="check.kind"):
        load_following_set(p)
    p.write_text('{"id": "a", "instruction": "x"}\n{"id": "a", "instruction": "y"}\n')
    with pytest.raises(InputFileError, match="duplicate id"):
        load_following_set(p)
    with pytest.raises(InputFileError, match="does not exist"):
        load_following_set(tmp_path / "none.jsonl")
    for check, needle in (
        ({"kind": "label"}, "'labels'"),
        ({"kind": "code"}, "'must_contain'"),
        ({"kind": "number", "answer": "two"}, "numeric 'answer'"),
        ({"kind": "contains_any", "words": []}, "'words'"),
        ({"kind": "list", "min_items": 0}, "min_items"),
    ):
        p.write_text(
            '{"id": "a", "instruction": "x"}\n' + json.dumps({"id": "b", "instruction": "y", "check": check}) + "\n"
        )
        with pytest.raises(InputFileError, match=rf"s.jsonl:2: check of kind .*{needle}"):
            load_following_set(p)


def test_evaluate_following_on_a_tiny_model(tiny_llama, tmp_path):
    items = load_following_set()[:3]
    res = evaluate_following(tiny_llama, items, max_new_tokens=4, batch_size=2)
    assert [r.id for r in res.rows] == [i.id for i in items]
    for r in res.rows:
        assert r.n_tokens <= 4 and r.passed == (r.non_empty and r.not_copy and r.eos and r.task_check is not False)
    # batching does not change greedy answers
    one = evaluate_following(tiny_llama, items, max_new_tokens=4, batch_size=1)
    assert [r.answer for r in one.rows] == [r.answer for r in res.rows]
    save_with_markdown(res, tmp_path)
    back = FollowingResult.load(tmp_path)
    assert back.rows == res.rows and back.pass_rate == res.pass_rate
    rates = back.rates()
    assert rates["all"].n == 3 and 0 <= rates["all"].passed <= 1
    assert (tmp_path / "following_answers.md").read_text() == render_markdown(res)


def _row(id, task, passed, task_check=None, answer="An answer."):
    return FollowingRow(
        id,
        task,
        f"Do {id}.",
        None,
        answer,
        3,
        passed,
        True,
        True,
        passed,
        task_check,
        0.1,
        passed and task_check is not False,
    )


def test_following_results_round_trip_and_rates(tmp_path):
    a = FollowingResult(
        "base",
        8,
        [
            _row("m1", "math", False, False),
            _row("m2", "math", True, True),
            _row("w1", "writing", True, answer="A | B\nC"),
        ],
        seconds=1.5,
    )
    rates = a.rates()
    assert list(rates) == ["all", "math", "writing"]
    assert rates["all"] == PassRates(3, 2 / 3, 1.0, 1.0, 2 / 3, 0.5)
    assert np.isnan(rates["writing"].task_check)  # no item with a task check
    d = a.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["kind"] == "following" and d["rates"]["writing"]["task_check"] is None
    assert d["rows"][0] == {
        "id": "m1",
        "task": "math",
        "instruction": "Do m1.",
        "input": None,
        "answer": "An answer.",
        "n_tokens": 3,
        "ended_with_eos": False,
        "non_empty": True,
        "not_copy": True,
        "eos": False,
        "task_check": False,
        "rouge_l": 0.1,
        "passed": False,
    }
    back = FollowingResult.from_dict(d)
    assert back == a and back.to_dict() == d
    with pytest.raises(InputFileError, match="not an eval-following result"):
        FollowingResult.from_dict({**d, "kind": "comparison"})
    b = FollowingResult(
        "tuned", 8, [_row("m1", "math", True, True), _row("m2", "math", True, True), _row("w1", "writing", True)]
    )
    ev = FollowingEvaluation(3, 8, [a, b], examples=2)
    paths = save_with_markdown(ev, tmp_path)
    assert [p.name for p in paths.values()] == ["following.json", "following.md"]
    loaded = FollowingEvaluation.load(tmp_path)
    assert loaded == ev and loaded.to_dict() == ev.to_dict()
    md = paths["markdown"].read_text()
    assert "| **all** | 3 | 67% | 100% |" in md and "| writing | 1 | 100% | 100% |" in md
    assert "| task-specific check (items that have one) | 50% | 100% |" in md
    assert "| `m1`: Do m1. | An answer.<br>(fail: eos, task_check) | An answer.<br>(**pass**) |" in md
    assert "A \\| B<br>C" in md  # a pipe in an answer is escaped once, a line break is <br>
    assert md.count("`m") == 1 and md.count("`w1`") == 1  # 2 examples: the first item of each task type


def test_cli_eval_following(tiny_llama_dir, tmp_path, cli):
    s = tmp_path / "s.jsonl"
    s.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "a", "task": "math", "instruction": "Add 1 and 2.", "check": {"kind": "number", "answer": 3}},
                {"id": "b", "task": "list", "instruction": "Name fruits.", "check": {"kind": "list", "min_items": 3}},
            ]
        )
        + "\n"
    )
    r = cli("eval-following", "--model", tiny_llama_dir, "--set", s, "--max-new-tokens", "3", "--out", tmp_path / "o")
    assert r.code == 0, r.err
    assert "| **all** | 2 |" in r.out and "| math | 1 |" in r.out
    assert (tmp_path / "o" / "following.md").read_text().count("`a`") == 1
    saved = FollowingEvaluation.load(tmp_path / "o")
    assert (
        saved.n_items == 2 and saved.max_new_tokens == 3 and [r.model for r in saved.results] == [str(tiny_llama_dir)]
    )
    assert [r.id for r in saved.results[0].rows] == ["a", "b"]
    assert (tmp_path / "o" / "following.md").read_text() == render_markdown(saved)
    r = cli("eval-following", "--model", tiny_llama_dir, "--set", s, "--max-new-tokens", "3", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)[str(tiny_llama_dir)]
    assert list(d) == ["all", "math", "list"] and d["all"]["n"] == 2 and d["math"]["n"] == 1
    r = cli("eval-following", "--model", tiny_llama_dir, "--set", tmp_path / "none.jsonl")
    assert_one_line_error(r, "does not exist")
    r = cli("eval-following", "--model", tiny_llama_dir, "--max-new-tokens", "0")
    assert_one_line_error(r, "--max-new-tokens")


# ---- the tuning corpus ------------------------------------------------------------------------


def _paper_prompts() -> list[str]:
    from helpers_tiny import paper_dir
    from tuneshift.data.prompts import read_prompts

    d = paper_dir()
    return [r.prompt for r in read_prompts(d / "datasets" / "FinalDataset.tsv").records] if d else []


def test_corpus_size_and_task_types():
    ex = load_corpus(CORPUS)
    tasks = Counter(e.task for e in ex)
    assert len(ex) >= 1000 and len(tasks) >= 8 and min(tasks.values()) >= 80
    assert len({(e.instruction, e.input, e.response) for e in ex}) == len(ex)


def test_corpus_shares_no_8gram_with_any_evaluation_prompt():
    corpus = [f"{e.instruction}\n{e.input or ''}\n{e.response}" for e in load_corpus(CORPUS)]
    demo = [
        json.loads(line)["prompt"]
        for line in resources.files("tuneshift.data").joinpath("bundled", "demo_prompts.jsonl").read_text().splitlines()
        if line.strip()
    ]
    held_out = [i.user for i in load_following_set()]
    paper = _paper_prompts()
    for name, texts in (("demo prompts", demo), ("held-out instructions", held_out), ("FinalDataset.tsv", paper)):
        bad = overlapping_ngrams(corpus, texts)
        assert not bad, f"{name}: {len(bad)} prompts share an 8-gram with the corpus, e.g. {next(iter(bad.items()))}"
    # short held-out instructions (< 8 words) do not occur word for word either
    from tuneshift.tuning.corpus import words

    joined = " | ".join(" ".join(words(t)) for t in corpus)
    for i in load_following_set():
        for part in (i.instruction, i.input):
            if part:
                assert f" {' '.join(words(part))} " not in f" {joined} ", part
    # the test can fail: a corpus holding an evaluation prompt is caught
    assert overlapping_ngrams(corpus + [demo[0]], demo) and word_ngrams(demo[0])
    if not paper:
        pytest.skip("FinalDataset.tsv not present; demo and held-out prompts checked")
