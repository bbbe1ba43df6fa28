"""Annotator building blocks: parsing of messy answers, the SQLite cache, the three stages."""

from __future__ import annotations

import threading

import pytest

from tuneshift.methods.concepts.annotate import (
    CANNOT_TELL,
    UNPARSED,
    AnswerCache,
    annotate_component,
    cache_key,
    concept_prompt,
    level_prompt,
    parse_concept,
    parse_level,
    parse_tasks,
    tasks_prompt,
)


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("Months of the year", ("Months of the year", True)),
        ('  Concept: "Months of the year."\nBecause they are all months.', ("Months of the year", True)),
        ("**Answer:** colours", ("colours", True)),
        ("Cannot tell.", (CANNOT_TELL, False)),
        ("I can't tell what these share", (CANNOT_TELL, False)),
        ("cannot  TELL", (CANNOT_TELL, False)),
        ("", (UNPARSED, None)),
        ("  \n ", (UNPARSED, None)),
    ],
)
def test_parse_concept(answer, expected):
    assert parse_concept(answer) == expected


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("semantics", "semantics"),
        ("Semantics.", "semantics"),
        ("Level: SYNTAX", "syntax"),
        ("It is syntactic.", "syntax"),
        ("morphological", "morphology"),
        ("phonology!", "phonology"),
        ("semantics or syntax", UNPARSED),
        ("pragmatics", UNPARSED),
        ("", UNPARSED),
    ],
)
def test_parse_level(answer, expected):
    assert parse_level(answer) == expected


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("coding", ["coding"]),
        ("Tasks: Coding, Math.", ["math", "coding"]),
        ("professional writing, daily writing", ["daily writing", "professional writing"]),
        ("Literary-writing; translation", ["literary writing", "translation"]),
        ("programming and mathematics", ["math", "coding"]),
        ("None.", ["none"]),
        ("none of them", ["none"]),
        ("none, coding", [UNPARSED]),
        ("cooking", [UNPARSED]),
        ("", [UNPARSED]),
    ],
)
def test_parse_tasks(answer, expected):
    assert parse_tasks(answer) == expected


def test_prompts():
    p = concept_prompt(["cat", "dog"])
    assert p.endswith("Words: cat, dog\nConcept:") and CANNOT_TELL in p
    assert level_prompt("Pets").endswith("Concept: Pets\nLevel:")
    assert tasks_prompt("Pets").endswith("Concept: Pets\nTasks:")
    with pytest.raises(ValueError):
        concept_prompt([])


def test_cache_keys_and_persistence(tmp_path):
    k = cache_key("openai", "m", "p", {"temperature": 1.0}, 0)
    assert k != cache_key("openai", "m", "p", {"temperature": 1.0}, 1)
    assert k != cache_key("openai", "m", "p", {"temperature": 0.5}, 0)
    assert k != cache_key("local", "m", "p", {"temperature": 1.0}, 0)
    assert k != cache_key("openai", "m2", "p", {"temperature": 1.0}, 0)
    assert k != cache_key("openai", "m", "q", {"temperature": 1.0}, 0)
    c = AnswerCache(tmp_path / "sub" / "cache.sqlite")
    assert c.get("b", "m", "p", {}, 0) is None
    c.put("b", "m", "p", {}, 0, "answer")
    threads = [threading.Thread(target=c.put, args=("b", "m", f"p{i}", {}, 0, str(i))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.close()
    c2 = AnswerCache(tmp_path / "sub" / "cache.sqlite")
    assert c2.get("b", "m", "p", {}, 0) == "answer" and len(c2) == 9 and c2.get("b", "m", "p3", {}, 0) == "3"


def test_annotate_component_stages_and_cache(tmp_path):
    calls = []

    def complete(prompt, params, run):
        calls.append((prompt, run))
        if prompt.endswith("Concept:"):
            return "Concept: Programming terms." if "Words: loop" in prompt else "Cannot tell"
        if prompt.endswith("Level:"):
            return "Semantic"
        return "coding, maybe math"

    cache = AnswerCache(tmp_path / "c.sqlite")
    words = ["loop", "array"] + [f"w{i}" for i in range(20)]
    a = annotate_component(words, complete, cache, "fake", "m", run=0)
    assert (a.concept, a.explainable, a.level, a.tasks) == ("Programming terms", True, "semantics", ["math", "coding"])
    assert a.requests == 3 and a.cache_hits == 0
    assert "w12" in calls[0][0] and "w13" not in calls[0][0]  # top 15 words shown
    b = annotate_component(words, complete, cache, "fake", "m", run=0)
    assert b.requests == 0 and b.cache_hits == 3 and len(calls) == 3  # second run: no request
    c = annotate_component(words, complete, cache, "fake", "m", run=1)
    assert c.requests == 3 and calls[-1][1] == 1
    d = annotate_component(["x", "y"], complete, cache, "fake", "m", run=0)
    assert (d.concept, d.explainable, d.level, d.tasks, d.requests) == (CANNOT_TELL, False, None, [], 1)

    # failures propagate (the caller counts them), nothing is cached
    def boom(prompt, params, run):
        raise RuntimeError("server down")

    with pytest.raises(RuntimeError):
        annotate_component(["p", "q"], boom, cache, "fake", "m", run=0)
    assert cache.get("fake", "m", concept_prompt(["p", "q"]), {"temperature": 1.0}, 0) is None


def test_local_backend_annotate_run_and_cache(tiny_llama, tiny_llama_chat_dir, tmp_path):
    import pyarrow.parquet as pq

    from tuneshift.methods.concepts.annotators import LocalBackend
    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.pipelines.concepts_run import run_concepts

    vocab = tmp_path / "v.txt"
    vocab.write_text("report\nsky\nsentence\nteam\npoem\nwind\n")
    d = tmp_path / "c"
    run_concepts(tiny_llama, d, vocab=vocab, rank=3, top_k=4)
    backend = LocalBackend(str(tiny_llama_chat_dir))
    params = {"temperature": 1.0, "max_new_tokens": 6}
    # sampling is seeded by (prompt, run): same answer twice, usually different across runs
    p = "Words: sky, wind\nConcept:"
    assert backend.complete(p, params, 0) == backend.complete(p, params, 0)
    s = annotate_run(d, backend, runs=2, components=2, params=params)
    assert s.rows == 2 * 2 * 2 and s.failures == 0 and s.requests >= 8 and s.cache_hits == 0
    t = pq.read_table(d / "annotations.parquet").to_pandas()
    assert sorted(set(t["run"])) == [0, 1] and set(t["rank"]) == {0, 1} and set(t["layer"]) == {0, 1}
    s2 = annotate_run(d, backend, runs=2, components=2, params=params)
    assert s2.requests == 0 and s2.cache_hits == s.requests  # second run: no request
    assert pq.read_table(d / "annotations.parquet").to_pandas().equals(t)


def test_annotate_cli_errors_and_failures(tiny_llama, tmp_path, capsys, monkeypatch):
    from tuneshift.cli import main
    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.pipelines.concepts_run import run_concepts

    for var in ("TUNESHIFT_DEBUG", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    vocab = tmp_path / "v.txt"
    vocab.write_text("report\nsky\nsentence\n")
    d = tmp_path / "c"
    run_concepts(tiny_llama, d, vocab=vocab, rank=2, top_k=3)
    for args, needle in (
        (
            ["annotate", str(d), "--annotator", "openai:gpt-x"],
            "needs an API key in the environment variable OPENAI_API_KEY",
        ),
        (["annotate", str(d), "--annotator", "bogus"], "unknown annotator"),
        (["annotate", str(tmp_path / "none")], "does not exist"),
        (["annotate", str(d), "--runs", "0", "--annotator", "bogus"], "--runs"),
    ):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2 and needle in capsys.readouterr().err

    class Flaky:
        name, model_name = "fake", "flaky"

        def complete(self, prompt, params, run):
            if run == 1:
                raise TimeoutError("slow")
            return "Cannot tell"

    s = annotate_run(d, Flaky(), runs=2)
    assert s.rows == 4 and s.failures == 4 and "TimeoutError" in s.first_error


class _Fake:
    """A backend that answers "Cannot tell", or raises for the runs in ``fail_runs`` (all: None)."""

    name, model_name = "fake", "m"

    def __init__(self, fail_runs=()):
        self.fail_runs = fail_runs

    def complete(self, prompt, params, run):
        if self.fail_runs is None or run in self.fail_runs:
            raise TimeoutError("slow")
        return "Cannot tell"


def test_failed_pass_never_replaces_labels_with_fewer(tiny_llama, tmp_path):
    import json

    import pyarrow.parquet as pq

    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.pipelines.concepts_run import run_concepts

    vocab = tmp_path / "v.txt"
    vocab.write_text("report\nsky\nsentence\n")
    d = tmp_path / "c"
    run_concepts(tiny_llama, d, vocab=vocab, rank=2, top_k=3)
    s = annotate_run(d, _Fake(), runs=2)
    assert (s.rows, s.answered, s.failures) == (8, 8, 0)
    before = pq.read_table(d / "annotations.parquet").to_pandas()
    # every request fails (a fresh cache, so nothing is answered from it): the 8 labels stay
    s = annotate_run(d, _Fake(fail_runs=None), runs=2, cache_path=tmp_path / "other.sqlite")
    assert (s.rows, s.answered, s.kept, s.failures) == (8, 0, 8, 8)
    assert pq.read_table(d / "annotations.parquet").to_pandas().equals(before)
    meta = json.loads((d / "annotations.json").read_text())
    assert meta["counts"]["rows"] == 8 and meta["counts"]["failures"] == 8
    assert sorted((f["layer"], f["rank"], f["run"]) for f in meta["failed"]) == sorted(
        zip(before["layer"], before["rank"], before["run"])
    )
    assert all(f["error"].startswith("TimeoutError") and f["has_earlier_label"] for f in meta["failed"])
    # more runs, run 2 fails: runs 0-1 re-answered, run 2 listed as failed, no label lost
    s = annotate_run(d, _Fake(fail_runs={2}), runs=3, cache_path=tmp_path / "third.sqlite")
    assert (s.rows, s.answered, s.kept, s.failures) == (8, 8, 0, 4)
    meta = json.loads((d / "annotations.json").read_text())
    assert {f["run"] for f in meta["failed"]} == {2} and not any(f["has_earlier_label"] for f in meta["failed"])


def test_no_labels_at_all_writes_no_empty_table(tiny_llama, tmp_path):
    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.pipelines.concepts_run import run_concepts

    vocab = tmp_path / "v.txt"
    vocab.write_text("report\nsky\nsentence\n")
    d = tmp_path / "c"
    run_concepts(tiny_llama, d, vocab=vocab, rank=2, top_k=3)
    s = annotate_run(d, _Fake(fail_runs=None), runs=1)
    assert (s.rows, s.failures) == (0, 4) and not (d / "annotations.parquet").exists()


def test_labels_of_another_annotator_are_not_mixed(tiny_llama, tmp_path):
    from tuneshift.errors import TuneshiftError
    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.pipelines.concepts_run import run_concepts

    vocab = tmp_path / "v.txt"
    vocab.write_text("report\nsky\nsentence\n")
    d = tmp_path / "c"
    run_concepts(tiny_llama, d, vocab=vocab, rank=2, top_k=3)
    annotate_run(d, _Fake(), runs=1)
    other = _Fake()
    other.model_name = "another"
    with pytest.raises(TuneshiftError, match="labels made by fake:m"):
        annotate_run(d, other, runs=1)
    with pytest.raises(TuneshiftError, match="top_words"):
        annotate_run(d, _Fake(), runs=1, top_words=5)


def test_annotate_cli_exits_3_on_failures(tiny_llama, tmp_path, cli, monkeypatch):
    import pyarrow.parquet as pq

    from tuneshift.methods.concepts import annotators
    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.pipelines.concepts_run import run_concepts

    vocab = tmp_path / "v.txt"
    vocab.write_text("report\nsky\nsentence\n")
    d = tmp_path / "c"
    run_concepts(tiny_llama, d, vocab=vocab, rank=2, top_k=3)
    annotate_run(d, _Fake(), runs=1)
    before = pq.read_table(d / "annotations.parquet").to_pandas()
    monkeypatch.setattr(annotators, "make_backend", lambda *a, **k: _Fake(fail_runs=None))
    monkeypatch.setattr("tuneshift.cli.concepts.make_backend", lambda *a, **k: _Fake(fail_runs=None))
    r = cli("annotate", str(d), "--runs", "1", "--cache", str(tmp_path / "fresh.sqlite"))
    assert r.code == 3, r.err
    assert "4 failures" in r.err and "exit code 3" in r.err and "Traceback" not in r.err
    assert pq.read_table(d / "annotations.parquet").to_pandas().equals(before)
