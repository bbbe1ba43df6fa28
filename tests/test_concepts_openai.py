"""The ``openai:`` annotator against a local OpenAI-compatible server (tests/openai_stub.py)
that injects 429, 500, slow responses, malformed JSON and auth errors."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from helpers_tiny import assert_one_line_error
from openai_stub import StubServer
from tuneshift.methods.concepts.annotate import CANNOT_TELL
from tuneshift.methods.concepts.annotators import AnnotatorFatalError, MalformedResponseError, OpenAIBackend
from tuneshift.pipelines.annotate_run import annotate_run
from tuneshift.pipelines.concepts_run import run_concepts

SECRET = "sk-test-SECRET-0123456789"
PARAMS = {"temperature": 1.0, "max_new_tokens": 16}


@pytest.fixture
def server():
    with StubServer(slow_seconds=0.6) as s:
        yield s


@pytest.fixture
def concepts_dir(tiny_llama, tmp_path_factory):
    d = tmp_path_factory.mktemp("openai") / "c"
    vocab = d.parent / "v.txt"
    vocab.write_text("report\nsky\nsentence\nteam\npoem\nwind\n")
    run_concepts(tiny_llama, d, vocab=vocab, rank=2, top_k=4)
    return d


def backend(server, monkeypatch, **kw):
    monkeypatch.setenv("TS_TEST_KEY", SECRET)
    opts = dict(api_key_env="TS_TEST_KEY", timeout=0.3, max_retries=3, retry_delay=0.01, concurrency=1)
    opts.update(kw)
    return OpenAIBackend("stub-model", base_url=server.base_url, **opts)


def test_request_contents_and_key_header(server, monkeypatch):
    b = backend(server, monkeypatch)
    assert b.complete("Words: a, b\nConcept:", PARAMS, 0) == "**Concept:** Programming and source code."
    body, headers = server.requests[0], server.headers[0]
    assert body["model"] == "stub-model" and body["temperature"] == 1.0 and body["max_tokens"] == 16
    assert body["messages"] == [{"role": "user", "content": "Words: a, b\nConcept:"}]
    assert headers.get("authorization") == f"Bearer {SECRET}"
    b.complete("Words: a, b\nConcept:", PARAMS, 1)
    b.complete("Words: a, b\nConcept:", PARAMS, 0)
    seeds = [r["seed"] for r in server.requests]
    assert seeds[0] == seeds[2] != seeds[1]  # seeded by (prompt, run)


@pytest.mark.parametrize("fault", ["429", "500", "slow", "malformed", "nochoices"])
def test_transient_faults_are_retried(server, monkeypatch, fault):
    b = backend(server, monkeypatch)
    server.faults = [fault, fault]
    assert b.complete("x\nLevel:", PARAMS, 0) == "Semantics"
    assert len(server.requests) == 3  # two faults, then the answer


def test_persistent_faults_give_the_last_error(server, monkeypatch):
    import openai

    b = backend(server, monkeypatch, max_retries=2)
    server.faults = ["500"] * 3
    with pytest.raises(openai.InternalServerError):
        b.complete("x\nLevel:", PARAMS, 0)
    assert len(server.requests) == 3
    server.faults = ["malformed"] * 3
    with pytest.raises(MalformedResponseError, match="after 3 attempts"):
        b.complete("x\nLevel:", PARAMS, 0)
    server.faults = ["slow"] * 3
    with pytest.raises(openai.APITimeoutError):
        b.complete("x\nLevel:", PARAMS, 0)


@pytest.mark.parametrize(
    "fault,needle",
    [
        ("401", "refused the API key (HTTP 401)"),
        ("403", "refused the API key (HTTP 403)"),
        ("404", "does not know the model 'stub-model'"),
    ],
)
def test_auth_and_model_errors_are_fatal(server, monkeypatch, fault, needle):
    b = backend(server, monkeypatch)
    server.faults = [fault]
    with pytest.raises(AnnotatorFatalError, match=needle.replace("(", r"\(").replace(")", r"\)")) as e:
        b.complete("x\nLevel:", PARAMS, 0)
    assert SECRET not in str(e.value) and len(server.requests) == 1  # not retried
    if fault != "404":
        assert "environment variable TS_TEST_KEY" in str(e.value) and "api_key_env" not in str(e.value)


def test_auth_error_without_a_key_says_the_variable_is_unset(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    b = OpenAIBackend("stub-model", base_url=server.base_url, max_retries=0)
    server.faults = ["401"]
    with pytest.raises(AnnotatorFatalError, match="the environment variable OPENAI_API_KEY is not set"):
        b.complete("x\nLevel:", PARAMS, 0)


def test_unreachable_server_is_fatal(monkeypatch):
    monkeypatch.setenv("TS_TEST_KEY", SECRET)
    b = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key_env="TS_TEST_KEY", max_retries=0, timeout=1)
    with pytest.raises(AnnotatorFatalError, match="cannot reach"):
        b.complete("x", PARAMS, 0)


def test_annotate_run_concurrency_failures_and_cache(server, monkeypatch, concepts_dir):
    b = backend(server, monkeypatch, concurrency=3)
    server.faults = ["slow"] * 6  # keeps requests in flight so that the bound is reached
    s = annotate_run(concepts_dir, b, runs=2, params=PARAMS)
    n_components = 2 * 2  # 2 layers x rank 2
    # stage 1 differs per component; stages 2-3 ask about the same canned concept, so within a run
    # they are mostly cache hits (two threads may race for the same prompt)
    assert s.rows == n_components * 2 and s.failures == 0 and s.requests + s.cache_hits == 3 * n_components * 2
    assert s.requests >= n_components * 2 + 2 * 2
    assert 2 <= server.max_in_flight <= 3
    t = pq.read_table(concepts_dir / "annotations.parquet").to_pandas()
    assert list(zip(t["layer"], t["rank"], t["run"])) == sorted(zip(t["layer"], t["rank"], t["run"]))
    assert set(t["concept"]) == {"Programming and source code"} and set(t["level"]) == {"semantics"}
    assert all(list(x) == ["professional writing", "coding"] for x in t["tasks"])
    assert set(t["backend"]) == {"openai"} and set(t["model"]) == {"stub-model"}
    # the second pass is free
    before = len(server.requests)
    s2 = annotate_run(concepts_dir, b, runs=2, params=PARAMS)
    assert len(server.requests) == before and s2.requests == 0 and s2.cache_hits == 3 * n_components * 2
    # a component whose requests keep failing is a counted failure; the others go on
    s3 = annotate_run(concepts_dir, backend(server, monkeypatch, max_retries=0), runs=3, params=PARAMS)
    assert s3.failures == 0 and s3.rows == n_components * 3
    server.faults = ["500"] * 1
    s4 = annotate_run(concepts_dir, backend(server, monkeypatch, max_retries=0), runs=4, params=PARAMS)
    assert s4.failures == 1 and s4.rows == n_components * 4 - 1 and "InternalServerError" in s4.first_error


def test_fatal_error_stops_the_run_and_keeps_the_cache(server, monkeypatch, concepts_dir):
    b = backend(server, monkeypatch, concurrency=2)
    server.faults = [None] * 3 + ["401"]
    with pytest.raises(AnnotatorFatalError):
        annotate_run(concepts_dir, b, runs=1, params=PARAMS)
    assert not (concepts_dir / "annotations.parquet").exists()
    done = len(server.requests)
    s = annotate_run(concepts_dir, b, runs=1, params=PARAMS)
    assert s.failures == 0 and s.cache_hits >= 2 and len(server.requests) - done == s.requests


def test_cli_openai_end_to_end_never_writes_the_key(server, monkeypatch, concepts_dir, cli):
    monkeypatch.setenv("TS_TEST_KEY", SECRET)
    server.faults = ["429", "500", "malformed"]
    r = cli(
        "annotate",
        str(concepts_dir),
        "--annotator",
        "openai:stub-model",
        "--base-url",
        server.base_url,
        "--api-key-env",
        "TS_TEST_KEY",
        "--runs",
        "2",
        "--components",
        "1",
        "--concurrency",
        "2",
        "--timeout",
        "5",
    )
    assert r.code == 0, r.err
    assert "4 labels answered" in r.err and "4 in the table" in r.err and "0 failures" in r.err
    assert SECRET not in r.out + r.err
    for f in concepts_dir.parent.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    server.faults = ["401"]
    r = cli(
        "annotate",
        str(concepts_dir),
        "--annotator",
        "openai:stub-model",
        "--base-url",
        server.base_url,
        "--api-key-env",
        "TS_TEST_KEY",
        "--runs",
        "3",
        "--components",
        "1",
    )
    assert_one_line_error(r, "refused the API key (HTTP 401)")
    assert SECRET not in r.err


def test_canned_cannot_tell_is_not_explainable(server, monkeypatch, tmp_path):
    from tuneshift.methods.concepts.annotate import annotate_component

    b = backend(server, monkeypatch)
    lab = annotate_component(["zzz", "a"], b.complete, None, b.name, b.model_name, 0, PARAMS)
    assert (lab.concept, lab.explainable, lab.requests) == (CANNOT_TELL, False, 1)
