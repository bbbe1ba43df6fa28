"""Issue 21 item 10a: a comparison with no pairs (every answer short) says so and exits 3."""

from __future__ import annotations

import json

from test_cli import FAST, attribute_args

import helpers_tiny as H


def test_compare_with_no_pairs_says_so_and_exits_3(cli, tiny_llama_dir, tiny_llama_other_dir, tmp_path):
    p = H.write_prompts_jsonl(tmp_path / "p.jsonl", H.TINY_PROMPTS[:3])
    for name, model in (("base", tiny_llama_dir), ("tuned", tiny_llama_other_dir)):
        r = cli(*attribute_args(model, p, tmp_path / name, *FAST))  # 3 new tokens < 5: every answer short
        assert r.code == 0, r.err
    r = cli("compare", tmp_path / "base", tmp_path / "tuned", "--out", tmp_path / "cmp")
    assert r.code == 3, r.err
    assert (
        "no record is valid in both runs, nothing was compared (base: 3 short responses; tuned: 3 short "
        "responses); --include-short keeps short responses; exit code 3"
    ) in r.err
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["records"] == []  # the report is written
    assert "**no record is valid in both runs, nothing was compared" in (tmp_path / "cmp" / "comparison.md").read_text()
    r = cli("compare", tmp_path / "base", tmp_path / "tuned", "--include-short", "--json")
    assert r.code == 0 and "nothing was compared" not in r.err
    assert len(json.loads(r.out)["records"]) == 3
