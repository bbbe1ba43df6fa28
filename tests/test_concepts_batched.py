"""The batched annotator: the local backend's batched generation and Gumbel-max sampler, the
batched driver (stages, dedup, failures, cache), the sampler version in the cache, --batch-size."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from tuneshift.methods.concepts.annotate import (
    CANNOT_TELL,
    AnswerCache,
    annotate_components,
    cache_key,
    concept_prompt,
    level_prompt,
    tasks_prompt,
)

PARAMS = {"temperature": 1.0, "max_new_tokens": 8}
PROMPTS = [
    concept_prompt(["sky", "wind"]),
    level_prompt("Weather"),
    "Hi",
    tasks_prompt("Programming and source code, loops and arrays"),
    concept_prompt(["one", "two", "three", "four"]),
    "Words: report, team\nConcept:",
]


@pytest.fixture(scope="module")
def backend(tiny_llama_chat_dir):
    from tuneshift.methods.concepts.annotators import LocalBackend

    return LocalBackend(str(tiny_llama_chat_dir))


def test_batched_answers_equal_one_at_a_time(backend):
    runs = [0, 1, 0, 2, 1, 0]
    single = [backend.complete(p, PARAMS, r) for p, r in zip(PROMPTS, runs)]
    assert all(isinstance(a, str) and a for a in single)
    assert backend.complete_batch(PROMPTS, PARAMS, runs) == single
    # other compositions and sizes: reversed, pairs, triples, each prompt beside a different neighbour
    assert backend.complete_batch(PROMPTS[::-1], PARAMS, runs[::-1]) == single[::-1]
    for size in (2, 3, 4):
        for start in range(0, len(PROMPTS), size):
            assert (
                backend.complete_batch(PROMPTS[start : start + size], PARAMS, runs[start : start + size])
                == single[start : start + size]
            )
    mixed = [0, 5, 3]
    assert backend.complete_batch([PROMPTS[i] for i in mixed], PARAMS, [runs[i] for i in mixed]) == [
        single[i] for i in mixed
    ]
    # the run index is the seed: another run of the same prompts gives other samples
    other = backend.complete_batch(PROMPTS, PARAMS, [r + 10 for r in runs])
    assert sum(a != b for a, b in zip(other, single)) >= 4
    # greedy (temperature 0) is batch independent too
    greedy = {**PARAMS, "temperature": 0.0}
    assert backend.complete_batch(PROMPTS, greedy, runs) == [backend.complete(p, greedy, 0) for p in PROMPTS]
    assert backend.complete_batch([], PARAMS, []) == []
    with pytest.raises(ValueError, match="2 prompts but 1 runs"):
        backend.complete_batch(PROMPTS[:2], PARAMS, [0])


def test_rows_stop_independently_at_their_own_eos(tiny_llama_chat_dir):
    """Make tokens of the first answers end-of-sequence tokens: rows stop early, each at its own
    point, and the batched answers still equal the one-at-a-time ones."""
    from tuneshift.methods.concepts.annotators import LocalBackend

    b = LocalBackend(str(tiny_llama_chat_dir))
    runs = [0] * len(PROMPTS)
    params = {**PARAMS, "max_new_tokens": 12}
    before = b.complete_batch(PROMPTS, params, runs)
    tok = b.loaded.tokenizer
    stop = {ids[len(ids) // 2] for a in before[:3] if (ids := tok(a, add_special_tokens=False)["input_ids"])}
    gc = b.loaded.model.generation_config
    gc.eos_token_id = sorted(stop | {tok.eos_token_id})
    single = [b.complete(p, params, r) for p, r in zip(PROMPTS, runs)]
    assert b.complete_batch(PROMPTS, params, runs) == single
    shorter = [len(s) < len(a) for s, a in zip(single, before)]
    assert any(shorter) and not all(shorter)  # some rows stopped early, others ran on
    assert all(a.startswith(s) for s, a in zip(single, before))  # the same sample, cut at the stop


def test_batch_logits_match_single_logits(backend):
    """Left padding + attention mask + positions from the mask: a row's next-token logits do
    not depend on its batch, up to float32 rounding (measured: max |diff| <= 2.5e-6 here, logits
    ~4; 3e-5 on smollm2-135m-instruct, logits ~30)."""
    import torch

    rows = [backend._ids(p) for p in PROMPTS]
    width = max(map(len, rows))
    pad = backend.loaded.tokenizer.pad_token_id or 0
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    model = backend.loaded.model
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[
            :, -1
        ]
        for i, r in enumerate(rows):
            alone = model(input_ids=torch.tensor([r])).logits[0, -1]
            assert torch.allclose(batched[i], alone, atol=1e-4, rtol=0), (i, (batched[i] - alone).abs().max())


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_gumbel_max_sampler_reproduces_softmax(temperature):
    import torch
    from scipy.stats import chisquare

    from tuneshift.methods.concepts.annotators import GumbelMaxSampler

    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    n = 20000
    sampler = GumbelMaxSampler([torch.Generator().manual_seed(s) for s in range(n)], temperature)
    picks = sampler(None, logits.expand(n, -1).clone()).argmax(-1)
    counts = np.bincount(picks.numpy(), minlength=len(logits))
    expected = torch.softmax(logits.double() / temperature, -1).numpy() * n
    assert chisquare(counts, expected).pvalue > 1e-3
    assert np.abs(counts / n - expected / n).max() < 0.015
    # the next step draws new noise (generators advance): independent picks of the same
    # distribution, so they differ with probability 1 - sum(p^2)
    picks2 = sampler(None, logits.expand(n, -1).clone()).argmax(-1)
    p = expected / n
    assert abs((picks2 != picks).double().mean().item() - (1 - (p**2).sum())) < 0.02
    assert chisquare(np.bincount(picks2.numpy(), minlength=len(logits)), expected).pvalue > 1e-3


def test_gumbel_temperature_and_row_independence():
    import torch

    from tuneshift.methods.concepts.annotators import GumbelMaxSampler

    logits = torch.tensor([2.0, 1.0, 0.0])
    n = 4000
    cold = GumbelMaxSampler([torch.Generator().manual_seed(s) for s in range(n)], 0.05)
    assert (cold(None, logits.expand(n, -1).clone()).argmax(-1) == 0).float().mean() > 0.99  # T -> 0: the argmax
    hot = GumbelMaxSampler([torch.Generator().manual_seed(s) for s in range(n)], 100.0)
    share = np.bincount(hot(None, logits.expand(n, -1).clone()).argmax(-1).numpy(), minlength=3) / n
    assert np.abs(share - 1 / 3).max() < 0.04  # T large: uniform
    # a row's noise depends on its own generator only, not on its neighbours or the batch size
    alone = GumbelMaxSampler([torch.Generator().manual_seed(7)], 1.0).noise(5)
    among = GumbelMaxSampler([torch.Generator().manual_seed(s) for s in (3, 7, 9)], 1.0).noise(5)
    assert torch.equal(alone[0], among[1]) and not torch.equal(among[0], among[1])
    with pytest.raises(ValueError, match="temperature"):
        GumbelMaxSampler([], 0.0)
    with pytest.raises(ValueError, match="2 rows of scores for 1 generators"):
        GumbelMaxSampler([torch.Generator()], 1.0)(None, torch.zeros(2, 3))


class _Batcher:
    """A fake batching backend: answers by prompt kind; records every batch; fails on request."""

    name, model_name, sampler = "fake", "m", "fake-v1"

    def __init__(self, fail_when=lambda prompts: False):
        self.batches = []
        self.fail_when = fail_when

    def complete_batch(self, prompts, params, runs):
        self.batches.append(list(zip(prompts, runs)))
        if self.fail_when(prompts):
            raise TimeoutError("slow")
        out = []
        for p in prompts:
            if p.endswith("Concept:"):
                out.append(CANNOT_TELL if "Words: zz" in p else "Colours" if "Words: red" in p else "Numbers")
            elif p.endswith("Level:"):
                out.append("semantics")
            else:
                out.append("math")
        return out


def _items():
    words = [["red", "blue"], ["one", "two"], ["zz", "yy"], ["red", "blue"], ["three", "four"]]
    return [(w, r) for w in words for r in (0, 1)]


def test_annotate_components_batches_stages_dedups_and_counts(tmp_path):
    fake = _Batcher()
    cache = AnswerCache(tmp_path / "c.sqlite")
    done = []
    res = annotate_components(
        _items(),
        fake.complete_batch,
        cache,
        "fake",
        "m",
        {"temperature": 1.0},
        batch_size=3,
        sampler="fake-v1",
        on_done=done.append,
    )
    got = [(r.run, r.concept, r.explainable, r.level, r.tasks) for r in res]
    assert got == [
        (0, "Colours", True, "semantics", ["math"]),
        (1, "Colours", True, "semantics", ["math"]),
        (0, "Numbers", True, "semantics", ["math"]),
        (1, "Numbers", True, "semantics", ["math"]),
        (0, CANNOT_TELL, False, None, []),
        (1, CANNOT_TELL, False, None, []),
        (0, "Colours", True, "semantics", ["math"]),
        (1, "Colours", True, "semantics", ["math"]),
        (0, "Numbers", True, "semantics", ["math"]),
        (1, "Numbers", True, "semantics", ["math"]),
    ]
    assert len(done) == 10 and sum(done) == 10
    assert all(len(b) <= 3 for b in fake.batches)
    for b in fake.batches:  # one stage per batch
        assert len({p.endswith("Concept:") for p, _r in b}) == 1
    asked = [k for b in fake.batches for k in b]
    assert len(asked) == len(set(asked))  # each (prompt, run) asked once
    # 8 distinct concept prompts (components 0 and 3 share words); level and tasks of "Colours"
    # and "Numbers" per run: 2 labels x 2 runs x 2 prompts = 8
    assert len(asked) == 8 + 8
    assert sum(r.requests for r in res) == 16 and sum(r.cache_hits for r in res) == (10 + 8 * 2) - 16
    # (10 concept asks + level and tasks of the 8 explainable items, minus the 16 requests)
    # a second pass: everything from the cache, no batch at all
    again = _Batcher()
    res2 = annotate_components(
        _items(), again.complete_batch, cache, "fake", "m", {"temperature": 1.0}, batch_size=3, sampler="fake-v1"
    )
    assert again.batches == [] and sum(r.requests for r in res2) == 0
    assert [(r.concept, r.level, r.tasks) for r in res2] == [(r.concept, r.level, r.tasks) for r in res]
    # another sampler version: other keys, asked again
    other = _Batcher()
    annotate_components(
        _items(), other.complete_batch, cache, "fake", "m", {"temperature": 1.0}, batch_size=3, sampler="fake-v2"
    )
    assert len([k for b in other.batches for k in b]) == 16
    with pytest.raises(ValueError, match="batch_size"):
        annotate_components(_items(), fake.complete_batch, None, "fake", "m", batch_size=0)


def test_annotate_components_a_failed_batch_fails_only_its_items():
    fake = _Batcher(fail_when=lambda prompts: any(p.endswith("Level:") and "Numbers" in p for p in prompts))
    res = annotate_components(_items(), fake.complete_batch, None, "fake", "m", batch_size=1)
    failed = [i for i, r in enumerate(res) if isinstance(r, Exception)]
    assert failed == [2, 3, 8, 9]  # the "Numbers" components: their level prompt failed
    assert all(isinstance(res[i], TimeoutError) for i in failed)
    assert [res[i].concept for i in (0, 1, 4, 5, 6, 7)] == [
        "Colours",
        "Colours",
        CANNOT_TELL,
        CANNOT_TELL,
        "Colours",
        "Colours",
    ]

    class Fatal(Exception):
        pass

    def fatal(prompts, params, runs):
        raise Fatal("no server")

    with pytest.raises(Fatal):
        annotate_components(_items(), fatal, None, "fake", "m", fatal=(Fatal,))


def test_sampler_version_in_cache_key_and_old_cache_file(tmp_path):
    assert cache_key("local", "m", "p", {}, 0) != cache_key("local", "m", "p", {}, 0, "gumbel-max-v1")
    assert cache_key("openai", "m", "p", {}, 0, None) == cache_key("openai", "m", "p", {}, 0)
    # a cache file made before the sampler column existed: opened, its old answers kept under
    # their old keys, never returned for the new sampler
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(str(path))
    db.execute(
        "CREATE TABLE answers (key TEXT PRIMARY KEY, backend TEXT, model TEXT, prompt TEXT, params TEXT, "
        "run INTEGER, answer TEXT, created REAL)"
    )
    db.execute(
        "INSERT INTO answers VALUES (?, 'local', 'm', 'p', '{}', 0, 'old answer', 0)",
        (cache_key("local", "m", "p", {}, 0),),
    )
    db.commit()
    db.close()
    c = AnswerCache(path)
    assert c.get("local", "m", "p", {}, 0) == "old answer"
    assert c.get("local", "m", "p", {}, 0, "gumbel-max-v1") is None
    c.put("local", "m", "p", {}, 0, "new answer", "gumbel-max-v1")
    assert c.get("local", "m", "p", {}, 0, "gumbel-max-v1") == "new answer" and len(c) == 2
    c.close()
    rows = sqlite3.connect(str(path)).execute("SELECT answer, sampler FROM answers ORDER BY answer").fetchall()
    assert rows == [("new answer", "gumbel-max-v1"), ("old answer", None)]


def _concepts_dir(tiny_llama, tmp_path, name="c"):
    from tuneshift.pipelines.concepts_run import run_concepts

    vocab = tmp_path / "v.txt"
    vocab.write_text("report\nsky\nsentence\nteam\npoem\nwind\n")
    d = tmp_path / name
    run_concepts(tiny_llama, d, vocab=vocab, rank=3, top_k=4)
    return d


def test_annotate_run_batched_equals_unbatched_and_reruns_free(tiny_llama, tiny_llama_chat_dir, tmp_path, backend):
    import pyarrow.parquet as pq

    from tuneshift.pipelines.annotate_run import annotate_run

    d1 = _concepts_dir(tiny_llama, tmp_path)
    d4 = tmp_path / "c4"
    shutil.copytree(d1, d4)
    sizes = []

    class Recording:
        name, model_name, sampler = backend.name, backend.model_name, backend.sampler

        def complete_batch(self, prompts, params, runs):
            sizes.append(len(prompts))
            return backend.complete_batch(prompts, params, runs)

    params = {"temperature": 1.0, "max_new_tokens": 6}
    s1 = annotate_run(d1, backend, runs=2, params=params, batch_size=1)
    s4 = annotate_run(d4, Recording(), runs=2, params=params, batch_size=4)
    assert s1.failures == s4.failures == 0 and s1.rows == s4.rows == 3 * 2 * 2
    assert s4.requests == s1.requests == sum(sizes) and max(sizes) == 4
    t1 = pq.read_table(d1 / "annotations.parquet").to_pandas()
    assert t1.equals(pq.read_table(d4 / "annotations.parquet").to_pandas())  # same labels, any batch size
    meta = json.loads((d4 / "annotations.json").read_text())
    assert meta["sampler"] == "gumbel-max-v1" and meta["batch_size"] == 4
    sizes.clear()
    again = annotate_run(d4, Recording(), runs=2, params=params, batch_size=4)
    assert again.requests == 0 and again.cache_hits == s4.requests and sizes == []  # re-run: no request
    # labels of the old local sampler (an annotations.json without "sampler") are not mixed in
    meta.pop("sampler")
    (d4 / "annotations.json").write_text(json.dumps(meta))
    from tuneshift.errors import TuneshiftError

    with pytest.raises(TuneshiftError, match="sampler None here 'gumbel-max-v1'"):
        annotate_run(d4, backend, runs=2, params=params)
    with pytest.raises(TuneshiftError, match="batch_size"):
        annotate_run(d1, backend, runs=2, params=params, batch_size=0)


def test_annotate_cli_batch_size(tiny_llama, tmp_path, cli, monkeypatch):
    d = _concepts_dir(tiny_llama, tmp_path)
    for bad in ("0", "-3"):
        r = cli("annotate", str(d), "--batch-size", bad)
        assert r.code == 2 and r.err.strip() == "error: --batch-size must be >= 1", r.err
    seen = {}

    def fake_run(*a, **k):
        seen.update(k)
        raise KeyboardInterrupt

    monkeypatch.setattr("tuneshift.cli.concepts.make_backend", lambda *a, **k: _Batcher())
    monkeypatch.setattr("tuneshift.cli.concepts.annotate_run", fake_run)
    cli("annotate", str(d), "--batch-size", "5")
    assert seen["batch_size"] == 5
    seen.clear()
    cli("annotate", str(d))
    from tuneshift.pipelines.annotate_run import DEFAULT_BATCH_SIZE

    assert seen["batch_size"] == DEFAULT_BATCH_SIZE
