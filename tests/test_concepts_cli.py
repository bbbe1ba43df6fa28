"""``tuneshift concepts`` and ``compare-concepts`` from the command line: a tiny run, resume, errors."""

from __future__ import annotations

import json

from helpers_tiny import assert_one_line_error as _one_line_error  # the `cli` fixture is in conftest.py
from tuneshift.storage.concepts import load_concepts

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
    _one_line_error(
        cli("concepts", "--model", tiny_llama_dir, "--out", out, "--vocab", vocab, "--rank", 4),
        "other settings",
        "rank",
    )
    _one_line_error(
        cli("concepts", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab, "--rank", 0), "--rank"
    )
    _one_line_error(
        cli("concepts", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab, "--rank", 99), "--rank"
    )
    _one_line_error(
        cli("concepts", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab, "--layers", "9"),
        "--layers",
    )
    out2 = tmp_path / "c2"
    assert cli("concepts", "--model", tiny_llama_other_dir, "--out", out2, "--vocab", vocab, "--rank", 3).code == 0
    r = cli("compare-concepts", out, out2, "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert [x["layer"] for x in d["rotation"]] == [0, 1] and d["rotation"][0]["rank_base"] == 3
    _one_line_error(cli("compare-concepts", out, out), "given as both concepts runs")  # as compare refuses
    _one_line_error(cli("compare-concepts", out, tmp_path / "c" / "."), "given as both concepts runs")
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
    from tuneshift.pipelines.concepts_run import FINAL_NORM_CHOICES

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
    assert (
        cli(
            "concepts", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--vocab", vocab, "--final-norm", "logit"
        ).code
        == 2
    )
    _one_line_error(cli("compare-concepts", a, b), "final_norm: fold vs none")
    m = json.loads((b / "manifest.json").read_text())
    m["identity"]["method"]["version"] = 1
    del m["identity"]["options"]["final_norm"], m["identity"]["options"]["ffn_rows"]
    (b / "manifest.json").write_text(json.dumps(m))
    _one_line_error(cli("compare-concepts", a, b), "method version: 2 vs 1")


def test_concepts_random_update_null_round_trip(cli, tiny_llama_dir, tmp_path):
    import numpy as np
    import pyarrow.parquet as pq
    import pytest
    from scipy.linalg import subspace_angles

    from helpers_tiny import make_lora_adapter

    adapter = make_lora_adapter(tiny_llama_dir, tmp_path / "lora")
    vocab = tmp_path / "v.txt"
    vocab.write_text("\n".join(WORDS))
    common = ["--vocab", vocab, "--rank", 4, "--threads", 1]
    base, tuned, null = tmp_path / "b", tmp_path / "t", tmp_path / "n"
    assert cli("concepts", "--model", tiny_llama_dir, "--out", base, *common).code == 0
    assert cli("concepts", "--model", tiny_llama_dir, "--adapter", adapter, "--out", tuned, *common).code == 0
    r = cli(
        "concepts",
        "--model",
        tiny_llama_dir,
        "--random-update-like",
        tiny_llama_dir,
        "--adapter",
        adapter,
        "--null-seed",
        7,
        "--out",
        null,
        *common,
    )
    assert r.code == 0, r.err
    mn = json.loads((null / "manifest.json").read_text())["identity"]["model"]
    assert mn["random_update"]["seed"] == 7
    assert mn["random_update"]["of"] == json.loads((base / "manifest.json").read_text())["identity"]["model"]
    r = cli("compare-concepts", base, tuned, "--null", null, "--out", tmp_path / "cmp", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["null_update"]["seed"] == 7 and [x["layer"] for x in d["null_update"]["rotation"]] == [0, 1]

    def components(run, layer):
        t = pq.read_table(run / "layers" / f"layer-{layer:05d}.parquet").to_pandas().sort_values("rank")
        return np.stack(t["vector"].to_numpy()).astype(np.float64)

    for side, run in (("rotation", tuned), ("null", null)):
        rows = d["rotation"] if side == "rotation" else d["null_update"]["rotation"]
        for x in rows:
            b, o = components(base, x["layer"]), components(run, x["layer"])
            ang = subspace_angles(b.T, o.T)
            assert x["angle_mean"] == pytest.approx(ang.mean(), abs=1e-9)
            assert x["overlap"] == pytest.approx(np.mean(np.cos(ang) ** 2), abs=1e-12)
            cos = np.abs((b / np.linalg.norm(b, axis=1)[:, None]) @ (o / np.linalg.norm(o, axis=1)[:, None]).T)
            assert x["share_matched"] == pytest.approx(np.mean(cos.max(axis=1) >= 0.9), abs=1e-12)
    md = (tmp_path / "cmp" / "concepts_rotation.md").read_text()
    assert "random update of the same size in" in md and "mean angle: random update (null)" in md
    from tuneshift.stats.concepts_rotation import RotationComparison

    back = RotationComparison.load(tmp_path / "cmp")
    assert back.null is not None and back.null.seed == 7 and len(back.null.layers) == 2
    # bad nulls
    _one_line_error(cli("compare-concepts", base, tuned, "--null", tuned), "given as the null")
    other = tmp_path / "n3"
    assert (
        cli(
            "concepts",
            "--model",
            tiny_llama_dir,
            "--random-update-like",
            tiny_llama_dir,
            "--adapter",
            adapter,
            "--out",
            other,
            "--vocab",
            vocab,
            "--rank",
            3,
            "--threads",
            1,
        ).code
        == 0
    )
    _one_line_error(cli("compare-concepts", base, tuned, "--null", other), "other concepts settings")
    _one_line_error(cli("compare-concepts", base, tuned, "--null", tmp_path / "nothing"), "does not exist")
