"""``tuneshift heads`` and ``compare-heads`` from the command line: a tiny run, resume, error cases."""

from __future__ import annotations

import json

import pytest

from helpers_tiny import VOCAB_WORDS as WORDS  # the `cli` and `vocab_file` (these words) fixtures are in conftest.py
from helpers_tiny import assert_one_line_error as _one_line_error
from tuneshift.storage.heads import load_heads


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


@pytest.mark.parametrize(
    "extra,needles",
    [
        (["--vocab", "NOFILE"], ["does not exist"]),
        (["--vectors", "nonsense-vectors"], ["unknown word vectors"]),
        (["--layers", "9"], ["out of range"]),
        (["--layers", "a-b"], ["--layers"]),
        (["--top-k", "0"], ["--top-k"]),
    ],
)
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


def _naive_knowledge(run_dir):
    """{(layer, head): set of frozenset pairs in more than one dimension}, read from the Parquet files."""
    import collections

    import pyarrow.parquet as pq

    counts = collections.defaultdict(collections.Counter)
    for f in sorted((run_dir / "layers").glob("layer-*.parquet")):
        for row in pq.read_table(f).to_pylist():
            pairs = {
                frozenset((q.lower(), k.lower()))
                for q, k in zip(row["query_word"], row["key_word"])
                if q.lower() != k.lower()
            }
            counts[(row["layer"], row["head"])].update(pairs)
    return {h: {p for p, n in c.items() if n > 1} for h, c in counts.items()}


def test_heads_random_update_null_round_trip(cli, tiny_llama_dir, tiny_llama_other_dir, vocab_file, tmp_path):
    from helpers_tiny import make_lora_adapter

    adapter = make_lora_adapter(tiny_llama_dir, tmp_path / "lora")
    common = ["--vocab", vocab_file, "--top-k", 8, "--threads", 1]
    base, tuned, null = tmp_path / "b", tmp_path / "t", tmp_path / "n"
    assert cli("heads", "--model", tiny_llama_dir, "--out", base, *common).code == 0
    assert cli("heads", "--model", tiny_llama_dir, "--adapter", adapter, "--out", tuned, *common).code == 0
    r = cli(
        "heads",
        "--model",
        tiny_llama_dir,
        "--random-update-like",
        tiny_llama_dir,
        "--adapter",
        adapter,
        "--out",
        null,
        *common,
    )
    assert r.code == 0, r.err
    assert "random update of" in r.err and "low rank [2]" in r.err
    mb, mt, mn = (json.loads((d / "manifest.json").read_text())["identity"]["model"] for d in (base, tuned, null))
    assert mn["random_update"]["of"] == mb and mn["random_update"]["like"] == mt and mn["random_update"]["seed"] == 0
    assert mn != mb and mn["spec"].startswith("random-update(")
    r = cli(
        "heads",
        "--model",
        tiny_llama_dir,
        "--random-update-like",
        tiny_llama_dir,
        "--adapter",
        adapter,
        "--out",
        null,
        *common,
    )
    assert r.code == 0 and "0 layers done, 2 already done" in r.err  # resumes: same identity
    _one_line_error(
        cli(
            "heads",
            "--model",
            tiny_llama_dir,
            "--random-update-like",
            tiny_llama_dir,
            "--adapter",
            adapter,
            "--null-seed",
            1,
            "--out",
            null,
            *common,
        ),
        "other settings",
    )
    _one_line_error(
        cli("heads", "--model", tiny_llama_dir, "--null-seed", 1, "--out", tmp_path / "x", *common),
        "--null-seed",
        "--random-update-like",
    )
    _one_line_error(
        cli(
            "heads", "--model", tiny_llama_dir, "--random-update-like", tiny_llama_dir, "--out", tmp_path / "x", *common
        ),
        "base model itself",
    )

    r = cli("compare-heads", base, tuned, "--null", null, "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    kb, kt, kn = (_naive_knowledge(x) for x in (base, tuned, null))

    def jaccard(a, b, layer):
        vals = [len(a[h] & b[h]) / len(a[h] | b[h]) for h in sorted(a) if h[0] == layer and (a[h] | b[h])]
        return sum(vals) / len(vals) if vals else None

    for side, other in (("tuned", kt), ("null", kn)):
        rows = d["jaccard"] if side == "tuned" else d["null"]["jaccard"]
        assert [x["layer"] for x in rows] == [0, 1]
        for x in rows:
            want = jaccard(kb, other, x["layer"])
            assert (x["mean"] is None and want is None) or x["mean"] == pytest.approx(want, abs=1e-12)
    assert d["null"]["seed"] == 0 and d["null"]["info"]["model"] == mn["spec"]
    assert [x["group"] for x in d["null"]["table3"]][-1] == "all"
    r = cli("compare-heads", base, tuned, "--null", null, "--out", tmp_path / "cmp")
    assert r.code == 0 and "random update of the same size" in r.out and "mean Jaccard: random update (null)" in r.out

    # bad nulls: one line each
    import shutil

    shutil.copytree(tuned, tmp_path / "t_copy")
    _one_line_error(cli("compare-heads", base, tuned, "--null", tmp_path / "t_copy"), "not a random-update run")
    _one_line_error(cli("compare-heads", base, tuned, "--null", tuned), "given as the null")
    _one_line_error(cli("compare-heads", base, tuned, "--null", base), "given as the null")
    other_k = tmp_path / "n5"
    assert (
        cli(
            "heads",
            "--model",
            tiny_llama_dir,
            "--random-update-like",
            tiny_llama_dir,
            "--adapter",
            adapter,
            "--out",
            other_k,
            "--vocab",
            vocab_file,
            "--top-k",
            5,
            "--threads",
            1,
        ).code
        == 0
    )
    _one_line_error(cli("compare-heads", base, tuned, "--null", other_k), "other heads settings", "options")
    other_base = tmp_path / "b2"
    assert cli("heads", "--model", tiny_llama_other_dir, "--out", other_base, *common).code == 0
    _one_line_error(cli("compare-heads", other_base, tuned, "--null", null), "is a random update of")
