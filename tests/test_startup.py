"""Start-up of the command line (issue 22, item 4): what ``tuneshift --help`` and the first record cost.

* ``tuneshift --help``, ``tuneshift COMMAND --help``, a usage error and a bad input refused before
  the model loads import neither torch, transformers nor scipy (each is checked in a fresh
  interpreter: ``sys.modules`` after ``main(...)``);
* a saved tokenizer of tuneshift's model cache lists its added tokens in ``tokenizer_config.json``
  (transformers otherwise parses the whole ``tokenizer.json`` a second time on every load), and
  the tokenizer loaded from it is the same.

``benchmarks/startup.py`` measures the times (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import helpers_tiny as H

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "scipy")


def _modules_after(argv: list[str], tmp_path: Path) -> tuple[int, list[str], str]:
    """Run ``tuneshift.cli.main(argv)`` in a fresh interpreter: its exit code, the heavy libraries
    in ``sys.modules`` afterwards, and its stderr."""
    code = (
        "import json, sys\n"
        "from tuneshift.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    exit_code, loaded = json.loads(r.stdout.strip().splitlines()[-1])
    return exit_code, loaded, r.stderr


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["attribute", "--help"],
        ["compare", "--help"],
        ["demo", "--help"],
        ["ablate", "--help"],
        ["heads", "--help"],
        ["concepts", "--help"],
        ["annotate", "--help"],
        ["compare-concepts", "--help"],
        ["paper-tables", "--help"],
        ["report", "--help"],
        ["tune", "--help"],
    ],
    ids=lambda a: " ".join(a),
)
def test_help_imports_no_torch_transformers_or_scipy(argv, tmp_path):
    code, loaded, err = _modules_after(argv, tmp_path)
    assert code in (0, None), err
    assert loaded == [], f"`tuneshift {' '.join(argv)}` imported {loaded}"


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--prompts", "missing.jsonl"], "prompt file not found"),  # a bad input, found in the body
        (["--prompts", "bundled:demo", "--threads", "0"], "--threads must be >= 1"),
        (["--prompts", "bundled:demo", "--device", "gpu"], "--device must be"),
        (["--prompts", "bundled:demo", "--sign", "bad"], "Invalid value for '--sign'"),  # a usage error
        # option errors: the method registry (every method module) is read without torch
        (["--prompts", "bundled:demo", "--method-option", "path=fast"], "path must be one of"),
        (["--prompts", "bundled:demo", "--method", "integrated_gradients", "--method-option", "n_steps=1"], "n_steps"),
    ],
    ids=["missing prompt file", "threads", "device spelling", "usage error", "method option", "other method"],
)
def test_errors_before_the_load_import_no_torch(extra, needle, tmp_path):
    argv = ["attribute", "--model", "gemma-3-270m", "--out", str(tmp_path / "run"), *extra]
    code, loaded, err = _modules_after(argv, tmp_path)
    assert code == 2 and needle in err, err
    assert loaded == [], f"{needle!r} imported {loaded}"
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ the tokenizer of a cache folder


def _same_tokenizer(a, b) -> None:
    assert type(a) is type(b)
    assert a.get_vocab() == b.get_vocab() and len(a) == len(b)

    def added(t):
        return {
            i: (str(v), v.special, v.normalized, v.lstrip, v.rstrip, v.single_word)
            for i, v in t.added_tokens_decoder.items()
        }

    assert added(a) == added(b)
    assert (a.all_special_tokens, a.all_special_ids) == (b.all_special_tokens, b.all_special_ids)
    assert (a.bos_token_id, a.eos_token_id, a.pad_token_id) == (b.bos_token_id, b.eos_token_id, b.pad_token_id)
    assert a.chat_template == b.chat_template
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    for text in [r["prompt"] for r in H.TINY_PROMPTS] + ["<|im_start|>user\nhi<|im_end|> <s></s><pad>"]:
        assert a(text)["input_ids"] == b(text)["input_ids"]
        assert a.decode(a(text)["input_ids"]) == b.decode(b(text)["input_ids"])


@pytest.mark.parametrize("kind", H.TOKENIZER_KINDS)
def test_listing_the_added_tokens_keeps_the_tokenizer(kind, tmp_path):
    from transformers import AutoTokenizer

    from tuneshift.models.loading import list_added_tokens

    folder = tmp_path / "tok"
    H.make_tokenizer(kind, chat_template=True).save_pretrained(folder)
    before = AutoTokenizer.from_pretrained(str(folder))
    assert "added_tokens_decoder" not in json.loads((folder / "tokenizer_config.json").read_text())
    assert list_added_tokens(folder) is True
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    added = json.loads((folder / "tokenizer.json").read_text())["added_tokens"]
    assert sorted(int(i) for i in cfg["added_tokens_decoder"]) == sorted(t["id"] for t in added)
    _same_tokenizer(before, AutoTokenizer.from_pretrained(str(folder)))
    assert list_added_tokens(folder) is False  # once


def test_only_cache_folders_are_rewritten_at_load(tiny_llama_dir, tmp_path):
    """A folder of tuneshift's cache (it has the cache marker) gets the entry at its next load; a
    user's model folder is never written to."""
    from tuneshift.models.loading import _CACHE_MARKER, load_tokenizer

    user = tmp_path / "user"
    shutil.copytree(tiny_llama_dir, user)
    config = (user / "tokenizer_config.json").read_text()
    load_tokenizer(str(user), progress=False)
    assert (user / "tokenizer_config.json").read_text() == config

    cached = tmp_path / "cached"
    shutil.copytree(tiny_llama_dir, cached)
    (cached / _CACHE_MARKER).write_text("{}")
    before = load_tokenizer(str(user), progress=False)
    after = load_tokenizer(str(cached), progress=False)
    assert "added_tokens_decoder" in json.loads((cached / "tokenizer_config.json").read_text())
    _same_tokenizer(before, after)
    _same_tokenizer(before, load_tokenizer(str(cached), progress=False))


def test_a_folder_with_other_legacy_token_files_is_left_alone(tmp_path):
    from tuneshift.models.loading import list_added_tokens

    folder = tmp_path / "tok"
    H.make_tokenizer("bpe").save_pretrained(folder)
    (folder / "special_tokens_map.json").write_text("{}")
    config = (folder / "tokenizer_config.json").read_text()
    assert list_added_tokens(folder) is False
    assert (folder / "tokenizer_config.json").read_text() == config
