"""Shared fixtures: tiny offline models (see ``helpers_tiny.py``) and a private model cache.

Cache policy: unless ``TUNESHIFT_CACHE`` is already set in the environment, every test runs
with ``TUNESHIFT_CACHE`` pointing to a temporary directory made for this session (loading a
tiny local model writes a hash memo into the cache; tests must never touch the user's cache),
*except* tests marked ``real_model``: they run with the variable unset, so they use the real
``~/.cache/tuneshift`` where the packaged GGUF models have already been converted (converting
takes minutes). The switch happens in ``pytest_runtest_setup`` (before any fixture of the test,
including module- and session-scoped ones, is set up). If the user set ``TUNESHIFT_CACHE``
themselves, it is left alone for every test.

Tiers: ``slow`` marks the tests ``make test-fast`` (``pytest -m "not slow"``) leaves out: Ray, the
headless browser, subprocesses, the real models (every ``real_model`` test is made ``slow`` in
``pytest_collection_modifyitems``) and anything else taking more than ~5 s. ``make test`` runs all.

Threads: tests not marked ``real_model`` run torch with one intra-op thread. The tiny models'
matrices are so small that a second thread only adds synchronisation, and on a busy 2-core
machine it makes every forward pass ~30x slower (spin-waiting). ``real_model`` tests get
torch's default thread count back. Set ``TUNESHIFT_TEST_THREADS`` to override the tiny-test
setting.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import helpers_tiny  # noqa: E402

_USER_CACHE = os.environ.get("TUNESHIFT_CACHE")
_TMP_CACHE: str | None = None


def pytest_configure(config):
    global _TMP_CACHE
    if _USER_CACHE is None:
        _TMP_CACHE = tempfile.mkdtemp(prefix="tuneshift-test-cache-")
        os.environ["TUNESHIFT_CACHE"] = _TMP_CACHE


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """Every ``real_model`` test is also ``slow``: ``make test-fast`` (``-m "not slow"``) leaves it out."""
    for item in items:
        if item.get_closest_marker("real_model") is not None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


def pytest_unconfigure(config):
    if _TMP_CACHE is not None:
        shutil.rmtree(_TMP_CACHE, ignore_errors=True)
        if os.environ.get("TUNESHIFT_CACHE") == _TMP_CACHE:
            del os.environ["TUNESHIFT_CACHE"]


_DEFAULT_THREADS: int | None = None


def _set_threads(real: bool) -> None:
    global _DEFAULT_THREADS
    torch = sys.modules.get("torch")  # never import torch just for this
    if torch is None:
        return
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    want = _DEFAULT_THREADS if real else int(os.environ.get("TUNESHIFT_TEST_THREADS", "1"))
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    real = item.get_closest_marker("real_model") is not None
    _set_threads(real)
    if _TMP_CACHE is None:  # the user chose a cache: use it everywhere
        return
    if real:
        os.environ.pop("TUNESHIFT_CACHE", None)  # the real ~/.cache/tuneshift (or $XDG_CACHE_HOME)
    else:
        os.environ["TUNESHIFT_CACHE"] = _TMP_CACHE


@pytest.fixture(scope="session")
def tiny_cache_dir() -> Path | None:
    """The session's temporary ``TUNESHIFT_CACHE`` (None if the user set their own)."""
    return Path(_TMP_CACHE) if _TMP_CACHE else None


# ------------------------------------------------------------------ the paper's released data


@pytest.fixture(scope="session")
def paper_data():
    """The paper's released data (:class:`tuneshift.data.paper_release.PaperData`) from
    ``$TUNESHIFT_PAPER_DATA``, else CI's ``../shared/paper`` (:func:`helpers_tiny.paper_dir`); the
    test is skipped with the reason when it is absent."""
    from tuneshift.data.paper_release import paper_data as locate

    d = helpers_tiny.paper_dir()
    if d is None:
        pytest.skip(helpers_tiny.paper_skip_reason())
    return locate(d)


# ------------------------------------------------------------------ tiny model folders


def _model_dir(tmp_path_factory, name, **kw) -> Path:
    return helpers_tiny.make_tiny_model_dir(tmp_path_factory.mktemp(name) / "model", **kw)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """Tiny llama (byte-level BPE tokenizer, no chat template, no BOS added), saved to disk."""
    return _model_dir(tmp_path_factory, "tiny_llama", family="llama", tokenizer_kind="bpe")


@pytest.fixture(scope="session")
def tiny_llama_other_dir(tmp_path_factory) -> Path:
    """Same architecture and tokenizer as ``tiny_llama_dir`` but other random weights (seed 1)."""
    return _model_dir(tmp_path_factory, "tiny_llama_other", family="llama", tokenizer_kind="bpe", seed=1)


@pytest.fixture(scope="session")
def tiny_llama_sp_dir(tmp_path_factory) -> Path:
    """Tiny llama with the SentencePiece-style tokenizer (``<s>`` BOS prepended)."""
    return _model_dir(tmp_path_factory, "tiny_llama_sp", family="llama", tokenizer_kind="sp")


@pytest.fixture(scope="session")
def tiny_llama_chat_dir(tmp_path_factory) -> Path:
    """Tiny llama whose byte-level tokenizer has a ChatML chat template."""
    return _model_dir(tmp_path_factory, "tiny_llama_chat", family="llama", tokenizer_kind="bpe", chat_template=True)


@pytest.fixture(scope="session")
def tiny_llama_chat_other_dir(tmp_path_factory) -> Path:
    """``tiny_llama_chat_dir`` with other random weights (seed 1): a "tuned" model whose update is not zero."""
    return _model_dir(
        tmp_path_factory, "tiny_llama_chat_other", family="llama", tokenizer_kind="bpe", chat_template=True, seed=1
    )


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory) -> Path:
    """Tiny text-only Gemma 3 (``gemma3_text``) with the SentencePiece-style tokenizer."""
    return _model_dir(tmp_path_factory, "tiny_gemma3", family="gemma3", tokenizer_kind="sp")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """Tiny GPT-2 with the byte-level tokenizer."""
    return _model_dir(tmp_path_factory, "tiny_gpt2", family="gpt2", tokenizer_kind="bpe")


@pytest.fixture(scope="session")
def tiny_model_dir_factory(tmp_path_factory):
    """``make(family="llama", tokenizer_kind="bpe", chat_template=False, seed=0, **config_overrides)``
    -> a saved tiny model folder (memoised per argument set for the session)."""
    made: dict = {}

    def make(family="llama", tokenizer_kind="bpe", chat_template=False, seed=0, **overrides):
        key = (family, tokenizer_kind, str(chat_template), seed, tuple(sorted(overrides.items())))
        if key not in made:
            made[key] = _model_dir(
                tmp_path_factory,
                f"tiny_{family}",
                family=family,
                tokenizer_kind=tokenizer_kind,
                chat_template=chat_template,
                seed=seed,
                **overrides,
            )
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_dir):
    """``tuneshift.load_model`` of ``tiny_llama_dir`` (float32), shared: do not modify it
    (no ``.double()``, no weight edits); load your own copy for that."""
    import tuneshift

    return tuneshift.load_model(str(tiny_llama_dir), progress=False)


# ------------------------------------------------------------------ prompts


@pytest.fixture(scope="session")
def tiny_prompts_file(tmp_path_factory) -> Path:
    """A JSONL prompt file with the six records of ``helpers_tiny.TINY_PROMPTS``
    (instruction spans, some contexts, responses; ids rewrite, summary, answer, translate,
    classify, poem)."""
    return helpers_tiny.write_prompts_jsonl(tmp_path_factory.mktemp("prompts") / "tiny_prompts.jsonl")


@pytest.fixture
def vocab_file(tmp_path) -> Path:
    """A word file (one per line) with ``helpers_tiny.VOCAB_WORDS``."""
    p = tmp_path / "vocab.txt"
    p.write_text("\n".join(helpers_tiny.VOCAB_WORDS) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``tuneshift ARGS`` in-process through :func:`tuneshift.cli.main`; returns a CliResult."""
    from helpers_tiny import CliResult
    from tuneshift.cli import main

    monkeypatch.delenv("TUNESHIFT_DEBUG", raising=False)

    def run(*args) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


# ------------------------------------------------------------------ report


#: a record whose prompt and response hold markup: the report must show it as text.
HOSTILE_RECORD = {
    "id": "xss<b>",
    "prompt": 'Rewrite the text <script>alert("x")</script> politely.\nInput: </script><img src=x onerror=alert(1)> & more',
    "instruction": ['Rewrite the text <script>alert("x")</script> politely.'],
    "response": "<script>alert(2)</script> done",
}


@pytest.fixture(scope="session")
def report_comparison_dir(tmp_path_factory, tiny_llama_dir, tiny_llama_other_dir) -> Path:
    """A saved attribution comparison of two tiny models (``gold`` protocol) over the tiny
    prompts plus :data:`HOSTILE_RECORD`, one chat template for both (so the prompts have
    template tokens around them): ``DIR/base``, ``DIR/tuned`` (runs) and
    ``DIR/comparison.json`` (``tuneshift compare --out DIR``)."""
    from tuneshift.cli import main

    d = tmp_path_factory.mktemp("report")
    prompts = helpers_tiny.write_prompts_jsonl(d / "prompts.jsonl", [*helpers_tiny.TINY_PROMPTS, HOSTILE_RECORD])
    template = d / "form.jinja"
    template.write_text(
        "{% for m in messages %}user: {{ m['content'] }} end{% endfor %}"
        "{% if add_generation_prompt %} model:{% endif %}"
    )
    for side, model in (("base", tiny_llama_dir), ("tuned", tiny_llama_other_dir)):
        try:
            main(
                [
                    "attribute",
                    "--model",
                    str(model),
                    "--prompts",
                    str(prompts),
                    "--out",
                    str(d / side),
                    "--responses",
                    "gold",
                    "--chat-template",
                    str(template),
                    "--min-response-tokens",
                    "1",
                    "--threads",
                    "1",
                ]
            )
        except SystemExit as e:
            assert e.code in (0, None), e.code
    try:
        main(["compare", str(d / "base"), str(d / "tuned"), "--out", str(d), "--include-short"])
    except SystemExit as e:
        assert e.code in (0, None), e.code
    return d
