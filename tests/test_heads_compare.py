"""compare-heads: the paper's Table 3 on hand-made results, Jaccard, rising/falling words, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from tuneshift.cli import app
from tuneshift.errors import InputFileError, OptionError
from tuneshift.methods.heads.core import LayerPairs
from tuneshift.reports.markdown import render_markdown, save_with_markdown
from tuneshift.stats.heads_compare import (
    INSTRUCTION_VERBS,
    HeadsComparison,
    HeadsRunInfo,
    Table3Row,
    WordChange,
    compare_heads,
    compare_knowledge,
    general_verbs,
    layer_groups,
)
from tuneshift.stats.tests import SampleStats
from tuneshift.storage.heads import HeadsResult, HeadsWriter, load_heads

P = lambda a, b: frozenset((a, b))  # noqa: E731

# 2 layers x 2 heads, hand-made knowledge
BASE = {
    (0, 0): {P("write", "text"), P("write", "poem")},
    (0, 1): {P("explain", "why")},
    (1, 0): {P("run", "fast"), P("help", "me")},
    (1, 1): set(),
}
TUNED = {
    (0, 0): {P("write", "text"), P("write", "poem"), P("write", "essay")},
    (0, 1): {P("explain", "why"), P("write", "code")},
    (1, 0): set(),
    (1, 1): {P("run", "walk"), P("eat", "food")},
}
INSTR = ["write", "explain", "help"]
GENERAL = ["run", "eat", "walk"]


def test_table3_below_the_sample_rule_has_no_test():
    """Issue 19: 2 instruction verbs against 3 general verbs is below the default minimum of 10."""
    c = compare_knowledge(BASE, TUNED, n_layers=2, n_groups=2, instruction=INSTR, general=GENERAL)
    r = {r.group: r for r in c.table3}["all"]
    assert r.reason == "too few (2)" and np.isnan(r.t) and np.isnan(r.p)
    assert r.instruction.n == 2 and r.general.n == 3  # the sample is still described
    assert "too few (2)" in render_markdown(c)
    # a constant group gives no test even when the minimum is met
    z = compare_knowledge(BASE, TUNED, n_layers=2, n_groups=2, instruction=INSTR, general=GENERAL, min_n=2)
    assert {r.group: r for r in z.table3}["L1"].reason in ("too few (1)", "no variance")


def test_table3_hand_computed():
    c = compare_knowledge(BASE, TUNED, n_layers=2, n_groups=2, instruction=INSTR, general=GENERAL, min_n=2)
    rows = {r.group: r for r in c.table3}
    assert list(rows) == ["L0", "L1", "all"]
    # L0: write changed in (0,0) 2->3 and (0,1) 0->1: 2/2 = 1; explain, help: no change -> no score
    assert rows["L0"].instruction == SampleStats(1.0, 0.0, 1)
    assert rows["L0"].general.n == 0
    # L1: help (1,0) 1->0: 0/1 = 0; run (1,0) 1->0, (1,1) 0->1: 1/2; eat, walk (1,1) 0->1: 1
    assert rows["L1"].instruction == SampleStats(0.0, 0.0, 1)
    assert rows["L1"].general.mean == pytest.approx(2.5 / 3)
    # all layers: instruction [write 1, help 0]; general [run 0.5, eat 1, walk 1]
    a, b = [1.0, 0.0], [0.5, 1.0, 1.0]
    r = rows["all"]
    assert r.instruction.mean == pytest.approx(0.5) and r.instruction.std == pytest.approx(0.5)
    assert r.general.mean == pytest.approx(np.mean(b)) and r.general.std == pytest.approx(np.std(b))
    ref = stats.ttest_ind(a, b, equal_var=False, alternative="two-sided")
    assert r.t == pytest.approx(ref.statistic) and r.p == pytest.approx(ref.pvalue)
    assert np.isnan(rows["L0"].t)  # fewer than 2 words with a score
    assert c.word_scores["all"].instruction == {"write": 1.0, "help": 0.0}
    # Jaccard: layer 0 heads 2/3 and 1/2; layer 1 heads 0 and 0
    jac = {j.layer: j for j in c.jaccard}
    assert jac[0].mean == pytest.approx((2 / 3 + 1 / 2) / 2) and jac[1].mean == 0.0
    assert jac[0].per_head == pytest.approx([2 / 3, 1 / 2]) and jac[1].n_heads == 2
    assert [(x.word, x.change) for x in c.rising] == [
        ("write", 2),
        ("code", 1),
        ("eat", 1),
        ("essay", 1),
        ("food", 1),
        ("walk", 1),
    ]
    assert [(x.word, x.change) for x in c.falling] == [("fast", -1), ("help", -1), ("me", -1)]
    assert c.rising[0] == WordChange("write", 2, 4, 2)
    md = render_markdown(c)
    assert "Table 3" in md and "| all | 0.500 (0.500, 2) | 0.833 (0.236, 3) |" in md
    assert "| L0 | 1.000 (0.000, 1) | – (–, 0) | – | too few (0) |" in md  # undefined numbers print as a dash
    assert "| write | 2 | 4 | +2 |" in md and "| fast | 1 | 0 | -1 |" in md


def test_heads_comparison_round_trip(tmp_path):
    c = compare_knowledge(
        BASE,
        TUNED,
        n_layers=2,
        n_groups=2,
        instruction=INSTR,
        general=GENERAL,
        base_info=HeadsRunInfo("b", "glove", "/runs/b", {"sha256": "ab"}, 5),
    )
    d = c.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d  # NaN -> null
    l0 = d["table3"][0]
    assert l0 == {
        "group": "L0",
        "layers": [0],
        "n_heads": 2,
        "instruction": {"mean": 1.0, "std": 0.0, "n": 1},
        "general": {"mean": None, "std": None, "n": 0},
        "t": None,
        "p": None,
        "reason": "too few (0)",
    }
    assert d["base"] == {
        "model": "b",
        "vectors": "glove",
        "path": "/runs/b",
        "vocabulary": {"sha256": "ab"},
        "top_k": 5,
        "rms_factor": "none",
    }
    assert d["rising"][0] == {"word": "write", "base": 2, "tuned": 4, "change": 2}
    assert d["word_scores"]["all"] == {"instruction": {"write": 1.0, "help": 0.0}}
    back = HeadsComparison.from_dict(d)
    assert isinstance(back.table3[0], Table3Row) and isinstance(back.table3[0].general, SampleStats)
    assert np.isnan(back.table3[0].t) and back.base.top_k == 5
    assert back.to_dict() == d
    paths = save_with_markdown(c, tmp_path / "out")
    assert [p.name for p in paths.values()] == ["heads_comparison.json", "heads_comparison.md"]
    loaded = HeadsComparison.load(tmp_path / "out")
    assert loaded.to_dict() == d and render_markdown(loaded) == render_markdown(c)
    assert paths["markdown"].read_text() == render_markdown(c)


def test_layer_groups_quarters():
    g = layer_groups(18)
    assert [x[0] for x in g] == ["L0-4", "L5-9", "L10-13", "L14-17"]
    assert sum(len(x[1]) for x in g) == 18
    with pytest.raises(OptionError, match="n_groups must be >= 1"):
        layer_groups(4, 0)


def test_verb_lists():
    assert len(INSTRUCTION_VERBS) == 38 and "summarize" in INSTRUCTION_VERBS
    gv = general_verbs()
    assert len(gv) == 3000 and not set(gv) & set(INSTRUCTION_VERBS)
    assert all(w.isalpha() and w == w.lower() for w in gv)


# ------------------------------------------------------------------ through saved directories


def _write_run(path, model, dims_by_head, n_layers=1, n_heads=2):
    """dims_by_head: {(layer, head): [list of (q, k) pairs per dimension]}."""
    words = sorted({w for dims in dims_by_head.values() for d in dims for p in d for w in p})
    ix = {w: i for i, w in enumerate(words)}
    w = HeadsWriter(
        path,
        {"model": {"spec": model}, "vectors": "custom", "options": {"top_k": 2}},
        {"n_layers": n_layers, "n_heads": n_heads},
    )
    for layer in range(n_layers):
        head, dim, rank, off, qi, ki = [], [], [], [0], [], []
        for h in range(n_heads):
            for d, pairs in enumerate(dims_by_head.get((layer, h), [])):
                head.append(h), dim.append(d), rank.append(d)
                qi += [ix[a] for a, _ in pairs]
                ki += [ix[b] for _, b in pairs]
                off.append(len(qi))
        lp = LayerPairs(
            layer,
            np.array(head),
            np.array(dim),
            np.array(rank),
            np.ones(len(head)),
            np.array(off),
            np.array(qi, dtype=np.int64),
            np.array(ki, dtype=np.int64),
            np.full(len(qi), 0.5, dtype=np.float32),
        )
        w.write_layer(lp, words)
    w.write_manifest(status="complete")
    return path


def test_knowledge_from_saved_run(tmp_path):
    p = _write_run(
        tmp_path / "b",
        "m",
        {
            (0, 0): [[("Write", "text"), ("text", "write")], [("write", "text"), ("poem", "write")], [("a", "a")]],
            (0, 1): [[("sky", "blue")]],
        },
    )
    r = load_heads(p)
    k = r.knowledge()
    # write-text: dims 0 and 1 (both orders and cases in dim 0 count once) -> knowledge; poem once -> not
    assert k[(0, 0)] == {P("write", "text")} and k[(0, 1)] == set()
    assert r.pairs(0, 0, 1) == [("write", "text", 0.5), ("poem", "write", 0.5)]


def test_heads_result_round_trip(tmp_path):
    p = _write_run(
        tmp_path / "b",
        "m",
        {
            (0, 0): [[("write", "text"), ("poem", "write")], [("write", "text")]],
            (0, 1): [[("sky", "blue")]],
            (1, 1): [[("run", "fast"), ("eat", "food"), ("sky", "blue")]],
        },
        n_layers=2,
    )
    (p / "words.parquet").write_bytes(b"words")  # _write_run writes no vocabulary: any file is copied as is
    r = HeadsResult.load(p)
    assert load_heads(p).to_dict() == r.to_dict()  # load_heads is an alias
    d = r.to_dict()
    assert d["kind"] == "heads" and d["path"] == str(p) and d["manifest"]["identity"]["vectors"] == "custom"
    assert d["summary"] == {"layers": [0, 1], "n_layers": 2, "n_heads": 2, "n_dimensions": 4, "n_pairs": 7}
    written = r.save(tmp_path / "copy")
    assert list(written) == [
        "layers/layer-00000.parquet",
        "layers/layer-00001.parquet",
        "words.parquet",
        "manifest.json",
    ]
    back = HeadsResult.load(tmp_path / "copy")
    assert back.manifest == r.manifest and back.knowledge() == r.knowledge()
    pd.testing.assert_frame_equal(back.table, r.table)
    assert back.pairs(1, 1, 0) == [("run", "fast", 0.5), ("eat", "food", 0.5), ("sky", "blue", 0.5)]
    assert (tmp_path / "copy" / "words.parquet").read_bytes() == b"words"
    assert back.to_dict()["summary"] == d["summary"]
    with pytest.raises(InputFileError, match="not empty"):
        r.save(p)


def test_compare_heads_cli(tmp_path):
    b = _write_run(tmp_path / "base", "base-model", {(0, 0): [[("write", "text")], [("write", "text")]]})
    t = _write_run(
        tmp_path / "tuned",
        "tuned-model",
        {(0, 0): [[("write", "text"), ("write", "poem")], [("write", "text"), ("poem", "write")]]},
    )
    runner = CliRunner()
    res = runner.invoke(app, ["compare-heads", str(b), str(t), "--json", "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    allrow = [r for r in d["table3"] if r["group"] == "all"][0]
    assert allrow["instruction"]["mean"] == 1.0  # write: 1 -> 2 pairs in the one head
    assert d["base"]["model"] == "base-model" and d["base"]["top_k"] == 2 and d["base"]["path"] == str(b)
    assert json.loads((tmp_path / "cmp" / "heads_comparison.json").read_text()) == d
    md = (tmp_path / "cmp" / "heads_comparison.md").read_text()
    res = runner.invoke(app, ["compare-heads", str(b), str(t)])
    assert res.exit_code == 0 and "Table 3" in res.stdout
    assert res.stdout.strip() == md.strip()  # the terminal shows what --out saves


def test_compare_heads_errors(tmp_path):
    b = _write_run(tmp_path / "base", "m", {(0, 0): [[("a", "b")]]})
    other = _write_run(tmp_path / "other", "m", {(0, 0): [[("a", "b")]]}, n_heads=3)
    with pytest.raises(InputFileError, match="layers x"):
        compare_heads(b, other)
    with pytest.raises(InputFileError, match="does not exist"):
        compare_heads(b, tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputFileError, match="not a tuneshift heads run"):
        compare_heads(tmp_path / "plain", b)


def _kn(d):
    return {h: {frozenset(p) for p in ps} for h, ps in d.items()}


def test_null_beside_tuned_summary_and_round_trip(tmp_path):
    from tuneshift.stats.heads_compare import HeadsComparison, HeadsNull, HeadsRunInfo

    base = _kn({(0, 0): [("a", "b"), ("c", "d")], (1, 0): [("a", "b"), ("e", "f")]})
    tuned = _kn({(0, 0): [("a", "b")], (1, 0): [("a", "b"), ("e", "f")]})  # J = 1/2, 1
    null = _kn({(0, 0): [("a", "b"), ("c", "d"), ("x", "y")], (1, 0): [("q", "r")]})  # J = 2/3, 0
    c = compare_knowledge(base, tuned, n_layers=2, n_groups=2)
    z = compare_knowledge(base, null, n_layers=2, n_groups=2)
    c.null = HeadsNull(HeadsRunInfo("random-update(b, like t, seed 0)"), 0, z.table3, z.jaccard)
    assert c.null_rows() == [(0, 0.5, pytest.approx(2 / 3)), (1, 1.0, 0.0)]
    assert c.null_summary().endswith("in 1 of 2 layers")
    md = render_markdown(c)
    assert "| 0 | 0.500 | 0.667 |" in md and "Random-update null (seed 0)" in md
    c.save(tmp_path)
    back = HeadsComparison.load(tmp_path)
    assert back.null.seed == 0 and [j.mean for j in back.null.jaccard] == pytest.approx([2 / 3, 0.0])
    # a comparison saved before the null existed still loads, without one
    d = json.loads((tmp_path / "heads_comparison.json").read_text())
    d.pop("null")
    old = HeadsComparison.from_dict(d)
    assert old.null is None and old.null_summary() == "" and "Random-update" not in render_markdown(old)


def _loop_knowledge(table):
    """Independent reference: the per-dimension loop (one count per dimension, then > 1)."""
    from collections import Counter

    out = {}
    for (layer, head), g in table.groupby(["layer", "head"], sort=True):
        counts = Counter()
        for qs, ks in zip(g.query_word, g.key_word):
            counts.update({frozenset((q.lower(), k.lower())) for q, k in zip(qs, ks) if q.lower() != k.lower()})
        out[(int(layer), int(head))] = {p for p, c in counts.items() if c > 1}
    return out


def test_knowledge_vectorised_equals_loop():
    import pandas as pd

    from tuneshift.storage.heads import HeadsResult

    rng = np.random.default_rng(3)
    words = ["Write", "write", "text", "Text", "poem", "sky", "blue", "a", "Ünïcode", "ünïcode"]
    rows = []
    for layer in range(3):
        for head in (0, 2, 5):  # head numbers with gaps
            for dim in range(int(rng.integers(1, 6))):
                n = int(rng.integers(0, 7))  # empty dimensions too
                q = [words[i] for i in rng.integers(0, len(words), n)]
                k = [words[i] for i in rng.integers(0, len(words), n)]
                rows.append(
                    {
                        "layer": layer,
                        "head": head,
                        "dim": dim,
                        "rank": dim,
                        "energy": 1.0,
                        "query_word": q,
                        "key_word": k,
                        "cos": [0.5] * n,
                    }
                )
    table = pd.DataFrame(rows)
    r = HeadsResult(path=None, manifest={}, table=table)
    got = r.knowledge()
    want = _loop_knowledge(table)
    assert got == want and set(got) == {(la, h) for la in range(3) for h in (0, 2, 5)}
    assert sum(map(len, got.values())) > 5  # the sample has repeated pairs to find
    assert r.knowledge() is got  # memoised
    empty = HeadsResult(
        path=None, manifest={}, table=table.assign(query_word=[[]] * len(table), key_word=[[]] * len(table))
    )
    assert empty.knowledge() == {h: set() for h in want}
