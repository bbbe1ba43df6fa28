"""``tuneshift heads`` and ``compare-heads`` from the command line: a tiny run, resume, error cases."""

from __future__ import annotations

import json

import pytest

from helpers_tiny import VOCAB_WORDS as WORDS  # the `cli` and `vocab_file` (these words) fixtures are in conftest.py
from helpers_tiny import assert_one_line_error as _one_line_error
from tuneshift.methods.heads import load_heads


def test_heads_run_resume_and_compare(cli, tiny_llama_dir, tiny_llama_other_dir, vocab_file, tmp_path):
    out = tmp_path / "h"
    r = cli("heads", "--model", tiny_llama_dir, "--out", out, "--vocab", vocab_file, "--top-k", 5, "--layers", "0")
    assert r.code == 0, r.err
    assert "1 layers done" in r.err and "glove-6b-50d" in r.err
    r = cli("heads", "--model", tiny_llama_dir, "--out", out, "--vocab", vocab_file, "--top-k", 5)
    assert r.code == 0, r.err
    assert "1 layers done, 1 already done" in r.err
    res = load_heads(out)
    assert res.layers == [0, 1] and res.vectors == "glove-6b-50d"
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "heads" and m["identity"]["options"]["top_k"] == 5 and m["status"] == "complete"
    assert m["info"]["n_words"] == len(WORDS)
    # other settings -> refused
    r = cli("heads", "--model", tiny_llama_dir, "--out", out, "--vocab", vocab_file, "--top-k", 6)
    _one_line_error(r, "other settings", "top_k")
    # compare with a model of the same shape
    out2 = tmp_path / "h2"
    assert cli("heads", "--model", tiny_llama_other_dir, "--out", out2, "--vocab", vocab_file, "--top-k", 5).code == 0
    _one_line_error(cli("compare-heads", out, out), "given as both heads runs")  # as compare refuses
    r = cli("compare-heads", out, out2, "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert [x["group"] for x in d["table3"]][-1] == "all" and len(d["jaccard"]) == 2


@pytest.mark.parametrize("extra,needles", [
    (["--vocab", "NOFILE"], ["does not exist"]),
    (["--vectors", "nonsense-vectors"], ["unknown word vectors"]),
    (["--layers", "9"], ["out of range"]),
    (["--layers", "a-b"], ["--layers"]),
    (["--top-k", "0"], ["--top-k"]),
])
def test_heads_errors(cli, tiny_llama_dir, vocab_file, tmp_path, extra, needles):
    extra = [str(vocab_file.parent / "missing.txt") if e == "NOFILE" else e for e in extra]
    args = ["heads", "--model", tiny_llama_dir, "--out", tmp_path / "o"]
    if "--vocab" not in extra:
        args += ["--vocab", vocab_file]
    r = cli(*args, *extra)
    _one_line_error(r, *needles)


def test_heads_empty_vocabulary_and_bad_out(cli, tiny_llama_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    _one_line_error(cli("heads", "--model", tiny_llama_dir, "--out", tmp_path / "o", "--vocab", empty), "no words")
    notrun = tmp_path / "notrun"
    notrun.mkdir()
    (notrun / "x.txt").write_text("x")
    _one_line_error(cli("heads", "--model", tiny_llama_dir, "--out", notrun), "not empty")


def test_compare_heads_cli_errors(cli, tmp_path):
    _one_line_error(cli("compare-heads", tmp_path / "a", tmp_path / "b"), "does not exist")
    (tmp_path / "f").write_text("x")
    _one_line_error(cli("compare-heads", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "f"), "is a file")
