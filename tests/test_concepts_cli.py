"""``tuneshift concepts`` and ``compare-concepts`` from the command line: a tiny run, resume, errors."""

from __future__ import annotations

import json


from helpers_tiny import assert_one_line_error as _one_line_error  # the `cli` fixture is in conftest.py
from tuneshift.methods.concepts import load_concepts

WORDS = ["report", "sky", "sentence", "team", "poem", "wind", "review", "food", "story", "cat", "sea", "blue"]






def test_concepts_run_resume_compare(cli, tiny_llama_dir, tiny_llama_other_dir, tmp_path):
    vocab = tmp_path / "v.txt"
    vocab.write_text("\n".join(WORDS))
    out = tmp_path / "c"
    r = cli("concepts", "--model", tiny_llama_dir, "--out", out, "--vocab", vocab, "--rank", 3, "--layers", "0")
    assert r.code == 0, r.err
    assert "1 layers done" in r.err and "3 components per layer" in r.err
    r = cli("concepts", "--model", tiny_llama_dir, "--out", out, "--vocab", vocab, "--rank", 3)
    assert r.code == 0, r.err
    assert "1 layers done, 1 already done" in r.err
    res = load_concepts(out)
    assert res.layers == [0, 1] and len(res.table) == 6
    assert len(res.table.iloc[0].top_words) == 12  # 50 capped at the vocabulary size
    _one_line_error(cli("concepts", "--model", tiny_llama_dir, "--out", out, "--vocab", vocab, "--rank", 4),
                    "other settings", "rank")
    _one_line_error(cli("concepts", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab, "--rank", 0), "--rank")
    _one_line_error(cli("concepts", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab, "--rank", 99), "--rank")
    _one_line_error(cli("concepts", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab, "--layers", "9"), "--layers")
    out2 = tmp_path / "c2"
    assert cli("concepts", "--model", tiny_llama_other_dir, "--out", out2, "--vocab", vocab, "--rank", 3).code == 0
    r = cli("compare-concepts", out, out2, "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert [x["layer"] for x in d["rotation"]] == [0, 1] and d["rotation"][0]["rank_base"] == 3
    _one_line_error(cli("compare-concepts", out, out), "given as both concepts runs")  # as compare refuses
    _one_line_error(cli("compare-concepts", out, tmp_path / "c" / "." ), "given as both concepts runs")
    r = cli("compare-concepts", out, out2, "--out", tmp_path / "cmp")
    assert r.code == 0, r.err
    assert "| 0 | 3 | 3 |" in r.out
    assert (tmp_path / "cmp" / "concepts_rotation.json").exists()
    _one_line_error(cli("compare-concepts", out, tmp_path / "nothing"), "does not exist")
    _one_line_error(cli("compare-concepts", out, out2, "--match-threshold", 2), "--match-threshold")


def test_concepts_final_norm_option(cli, tiny_llama_dir, tmp_path):
    """--final-norm is recorded, part of the identity (resume refused), a bad value is exit 2, and
    compare-concepts refuses runs with another final_norm or method version."""
    from tuneshift.cli.options import FinalNorm
    from tuneshift.methods.concepts.run import FINAL_NORM_CHOICES

    assert tuple(c.value for c in FinalNorm) == FINAL_NORM_CHOICES
    vocab = tmp_path / "v.txt"
    vocab.write_text("\n".join(WORDS))
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("concepts", "--model", tiny_llama_dir, "--out", a, "--vocab", vocab, "--rank", 3).code == 0
    r = cli("concepts", "--model", tiny_llama_dir, "--out", b, "--vocab", vocab, "--rank", 3, "--final-norm", "none")
    assert r.code == 0, r.err
    assert load_concepts(a).manifest["identity"]["options"]["final_norm"] == "fold"
    assert load_concepts(b).manifest["identity"]["options"]["final_norm"] == "none"
    _one_line_error(cli("concepts", "--model", tiny_llama_dir, "--out", b, "--vocab", vocab, "--rank", 3), "final_norm")
    assert cli("concepts", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab,
               "--final-norm", "logit").code == 2
    _one_line_error(cli("compare-concepts", a, b), "final_norm: fold vs none")
    m = json.loads((b / "manifest.json").read_text())
    m["identity"]["method"]["version"] = 1
    del m["identity"]["options"]["final_norm"], m["identity"]["options"]["ffn_rows"]
    (b / "manifest.json").write_text(json.dumps(m))
    _one_line_error(cli("compare-concepts", a, b), "method version: 2 vs 1")
