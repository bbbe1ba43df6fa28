"""The paper's released attributions: safe loading, instruction masks, import, and the tables.

Source: Wu et al., NAACL 2024 (arXiv 2310.00492) and the authors' released files (their
repository, docs/paper_reproduction.md). The unit tests build their own tiny pickles and prompts;
the reproduction tests at the end read ``$TUNESHIFT_PAPER_DATA`` (in this repository's CI, when it
is unset, ``../shared/paper`` relative to the repository root) and are skipped with the reason
when it is absent.
They pin the numbers this implementation produces, so that a later change to the shared
statistics (``tuneshift.stats.tests``, ``compare_runs``, ``importance``) that moves them fails.
"""

from __future__ import annotations

import builtins
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from helpers_tiny import paper_dir, paper_skip_reason
from tuneshift.cli import main
from tuneshift.data.paper_release import (
    InstructionMask,
    RestrictedUnpickler,
    UnsafePickleError,
    instruction_mask,
    instruction_sentences,
    mask_for_record,
    read_released_file,
    rebuild_text,
    released_model_dirs,
    safe_load_pickle,
    split_sentences,
)
from tuneshift.errors import InputFileError, RunMismatchError, TuneshiftError
from tuneshift.methods.attribution.importance import released_density_and_score, sparsify
from tuneshift.pipelines.import_paper import import_paper, load_release
from tuneshift.reports.markdown import save_with_markdown
from tuneshift.stats.compare import compare_runs
from tuneshift.stats.paper_tables import (
    GROUPS,
    paper_tables,
    sweep,
)
from tuneshift.storage.attribution import load_run


def _paper():
    from tuneshift.data.paper_release import paper_data

    d = paper_dir()
    try:
        return paper_data(d) if d else None
    except TuneshiftError:
        return None


PAPER = _paper()  # a PaperData: $TUNESHIFT_PAPER_DATA, else CI's ../shared/paper (helpers_tiny.paper_dir)
needs_paper = pytest.mark.skipif(PAPER is None, reason=paper_skip_reason() + "; the reproduction tests need it")


# ------------------------------------------------------------------ restricted unpickler


class _SystemCall:
    """Unpickling this would run ``os.system(cmd)``."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _EvalCall:
    """Unpickling this would run ``builtins.eval(src)``."""

    def __init__(self, src):
        self.src = src

    def __reduce__(self):
        return (builtins.eval, (self.src,))


def _released_dict(rid="user_oriented_task_1", n_in=4, n_out=3, **over):
    d = {
        "ID": rid,
        "Input": ["▁Write", "▁a", "▁poem", "."][:n_in] + ["x"] * max(0, n_in - 4),
        "Reference": "ref",
        "Output": ["▁Roses", "▁are", "▁red"][:n_out] + ["y"] * max(0, n_out - 3),
        "Explain": np.arange(n_in * n_out, dtype=np.float32).reshape(n_in, n_out) % 11,
    }
    d.update(over)
    return d


def _dump(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


@pytest.mark.parametrize("kind", ["system", "eval"])
def test_malicious_pickle_is_refused_without_side_effect(tmp_path, kind):
    marker = tmp_path / f"pwned_{kind}"
    if kind == "system":
        evil, needle = _SystemCall(f"touch {marker}"), ".system"
    else:
        evil, needle = _EvalCall(f"open({str(marker)!r}, 'w').write('x')"), "builtins.eval"
    # sanity: the payload really works with the ordinary unpickler
    probe = tmp_path / "probe"
    if kind == "system":
        pickle.loads(pickle.dumps(_SystemCall(f"touch {probe}")))
    else:
        pickle.loads(pickle.dumps(_EvalCall(f"open({str(probe)!r}, 'w').write('x')")))
    assert probe.exists()
    # hidden inside an otherwise well-formed released file
    path = _dump(tmp_path / "ifa_vicuna_7b" / "user_oriented_task_1.pkl", _released_dict(Reference=evil))
    for load in (safe_load_pickle, read_released_file):
        with pytest.raises(UnsafePickleError) as ei:
            load(path)
        msg = str(ei.value)
        assert needle in msg and "refused" in msg and str(path) in msg and "\n" not in msg
    assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
    import collections

    for obj, name in ((collections.OrderedDict(a=1), "collections.OrderedDict"), (np.load, "numpy.load")):
        p = _dump(tmp_path / "x.pkl", obj)
        with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
            safe_load_pickle(p)


def test_numpy_arrays_and_containers_load(tmp_path):
    obj = {
        "a": [np.arange(6, dtype=np.float32).reshape(2, 3), np.float64(2.5), np.int64(3)],
        "b": (1, "x", None, True),
        "c": {1, 2},
        "d": frozenset({3}),
        "e": bytearray(b"ab"),
    }
    for proto in (2, 4, 5):
        p = tmp_path / f"ok{proto}.pkl"
        p.write_bytes(pickle.dumps(obj, protocol=proto))
        back = safe_load_pickle(p)
        np.testing.assert_array_equal(back["a"][0], obj["a"][0])
        assert back["a"][1] == 2.5 and back["b"] == obj["b"] and back["c"] == {1, 2} and back["e"] == b"ab"
    with open(tmp_path / "ok4.pkl", "rb") as f:
        assert isinstance(RestrictedUnpickler(f).load(), dict)


# ------------------------------------------------------------------ one released file


def test_read_released_file(tmp_path):
    p = _dump(tmp_path / "user_oriented_task_1.pkl", _released_dict())
    ra = read_released_file(p)
    assert ra.id == "user_oriented_task_1" and ra.shape == (4, 3) and ra.explain.dtype == np.float32
    assert ra.input_pieces[0] == "▁Write" and ra.reference == "ref"
    # the one released file with an empty response stores a 0-size (0,) array
    p = _dump(tmp_path / "lima_author_1.pkl", _released_dict("lima_author_1", n_out=0, Output=[], Explain=np.array([])))
    assert read_released_file(p).explain.shape == (4, 0)


@pytest.mark.parametrize(
    "change, needles",
    [
        (dict(Explain=np.zeros((3, 3), np.float32)), ["shape (3, 3)", "expected (4, 3)"]),
        (dict(Explain=np.zeros(12, np.float32)), ["shape (12,)"]),
        (dict(Explain=[[0.0]]), ["numpy array"]),
        (dict(Explain=np.full((4, 3), np.nan, np.float32)), ["finite"]),
        (dict(Input="▁Write a poem"), ["'Input' must be a list"]),
        (dict(ID="lima_author_9"), ["'ID' is 'lima_author_9'"]),
    ],
)
def test_malformed_released_file(tmp_path, change, needles):
    p = _dump(tmp_path / "user_oriented_task_1.pkl", _released_dict(**change))
    with pytest.raises(InputFileError) as ei:
        read_released_file(p)
    for n in needles:
        assert n in str(ei.value), str(ei.value)
    assert "\n" not in str(ei.value)


def test_not_a_dict_missing_keys_garbage(tmp_path):
    with pytest.raises(InputFileError, match="expected a dict"):
        read_released_file(_dump(tmp_path / "a.pkl", [1, 2]))
    d = _released_dict("b")
    del d["Explain"]
    with pytest.raises(InputFileError, match="missing key.*Explain"):
        read_released_file(_dump(tmp_path / "b.pkl", d))
    (tmp_path / "c.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(InputFileError, match="not a valid pickle"):
        read_released_file(tmp_path / "c.pkl")
    with pytest.raises(InputFileError, match="not found"):
        read_released_file(tmp_path / "missing.pkl")


def test_released_model_dirs_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        released_model_dirs(tmp_path / "nope")
    (tmp_path / "ifa_llama_7b").mkdir()
    _dump(tmp_path / "ifa_llama_7b" / "a.pkl", _released_dict("a"))
    with pytest.raises(InputFileError, match="ifa_vicuna_7b"):
        released_model_dirs(tmp_path)
    (tmp_path / "ifa_vicuna_7b").mkdir()
    with pytest.raises(InputFileError, match="no .pkl"):
        released_model_dirs(tmp_path)


# ------------------------------------------------------------------ text from pieces


def test_rebuild_text_spaces_bytes_and_ranges():
    pieces = ["▁It", "<0xE2>", "<0x80>", "<0x99>", "s", "<0x0A>", "▁ok", "▁▁▁", "!"]
    text, ranges = rebuild_text(pieces)
    assert text == " It’s\n ok   !"
    assert ranges == [(0, 3), (3, 4), (3, 4), (3, 4), (4, 5), (5, 6), (6, 9), (9, 12), (12, 13)]
    for piece, (a, b) in zip(pieces, ranges):
        assert b > a
        if not piece.startswith("<0x"):
            assert text[a:b] == piece.replace("▁", " ")


def test_rebuild_text_two_chars_in_one_run_and_invalid_bytes():
    text, ranges = rebuild_text(["<0xC3>", "<0xA9>", "<0xC3>", "<0xA9>", "t", "<0x0A>", "<0x0A>"])
    assert text == "éét\n\n" and ranges == [(0, 1), (0, 1), (1, 2), (1, 2), (2, 3), (3, 4), (4, 5)]
    text, ranges = rebuild_text(["a", "<0xFF>", "b", "<0xE2>", "<0x80>"])  # invalid; truncated at the end
    assert text == "a\ufffdb\ufffd" and ranges[1] == (1, 2) and ranges[3] == ranges[4] == (3, 4)
    assert rebuild_text([]) == ("", [])


# ------------------------------------------------------------------ sentences and masks


def test_split_sentences():
    text = "Rewrite this: it is bad. Why?  Because!\nInput: hello world.\n\nSee e.g.this, 3.5 litres\tDone"
    assert split_sentences(text) == [
        "Rewrite this:",
        "it is bad.",
        "Why?",
        "Because!",
        "Input:",
        "hello world.",
        "",
        "See e.g.this, 3.5 litres\tDone",
    ]


def test_annotation_fragment_stands_for_its_whole_prompt_sentence():
    prompt = "Here is a story about a cat. Please summarise the text below in one sentence.\nThe cat sat on the mat."
    sents, unmatched = instruction_sentences(prompt, "summarise the text below|||&&&The cat sat on the mat.")
    assert sents == ["Please summarise the text below in one sentence."] and unmatched == []
    # the FIRST prompt sentence containing the fragment wins
    assert instruction_sentences(prompt, ["the"])[0] == ["Please summarise the text below in one sentence."]
    assert instruction_sentences(prompt, ["cat"])[0] == ["Here is a story about a cat."]


def test_annotation_split_on_bars_newlines_and_sentences():
    prompt = "Translate to French. Keep the tone.\nBe brief:\nInput: Good morning, friend."
    sents, unmatched = instruction_sentences(
        prompt, "Translate to French. Keep the tone.|||Be brief:\nInput: Good morning|||"
    )
    # "Input: Good morning, friend." is split after "Input:" itself (":" + space); the annotated
    # "Input:" sentence stands for the prompt sentence "Input:", which loses its prefix -> ""
    assert sents == ["Translate to French.", "Keep the tone.", "Be brief:", "", "Good morning, friend."]
    assert unmatched == []
    # a prompt sentence starting with "Input:" (no space after the colon) loses the prefix too
    sents, _ = instruction_sentences("Do it.\nInput:Good morning.", ["Good morning"])
    assert sents == ["Good morning."]
    sents, unmatched = instruction_sentences(prompt, ["Translate to German."])
    assert sents == [] and unmatched == ["Translate to German."]


def _pieces(*ps):
    return list(ps)


def test_mask_marks_overlapping_pieces_and_trims_end_pieces():
    pieces = _pieces("▁Write", "▁a", "▁po", "em", ".", "<0x0A>", "About", "▁cats", ".")
    m = instruction_mask(pieces, ["Write a poem."])
    assert m.mask.tolist() == [True] * 5 + [False] * 4 and m.unlocated == []
    m = instruction_mask(pieces, ["poem.\nAbout"])  # a span reaching over the newline keeps it
    assert m.mask.tolist() == [False, False, True, True, True, True, True, False, False]
    # pieces "▁", "<0x0A>", '▁"' at either end of a span are not marked
    pieces = _pieces("▁Say", "▁", "<0x0A>", '▁"', "hi", '"', "▁now")
    text, _ = rebuild_text(pieces)
    assert text == ' Say \n "hi" now'
    assert instruction_mask(pieces, ['"hi"']).mask.tolist() == [False, False, False, False, True, True, False]
    assert instruction_mask(pieces, ["Say \n "]).mask.tolist() == [True] + [False] * 6
    assert instruction_mask(pieces, ["\n"]).mask.tolist() == [False] * 7  # only strippable pieces


def test_mask_byte_pieces_first_occurrence_and_unlocated():
    pieces = _pieces("▁It", "<0xE2>", "<0x80>", "<0x99>", "s", "▁fine", ".", "▁It", "’", "s")
    m = instruction_mask(pieces, ["It’s"])
    assert m.mask.tolist() == [True] * 5 + [False] * 5  # first occurrence only
    m = instruction_mask(pieces, ["It’s fine.", "missing sentence", ""])
    assert m.mask[:7].all() and not m.mask[7:].any()
    assert m.unlocated == ["missing sentence"] and m.n_unlocated == 1


def test_mask_for_record_counts_unmatched_and_unlocated():
    pieces = _pieces("▁Write", "▁a", "▁poem", ".", "<0x0A>", "Input", ":", "▁cats")
    m = mask_for_record(pieces, "Write a poem.\nInput: cats", ["Write a poem", "Input: cats", "dogs"])
    assert isinstance(m, InstructionMask)
    assert m.sentences == ["Write a poem.", "", "cats"] and m.unmatched == ["dogs"]
    assert m.mask.tolist() == [True, True, True, True, False, False, False, True]
    assert m.n_unlocated == 1 and m.problems == ["dogs"]


# ------------------------------------------------------------------ score


def _authors_compute_density(x, eps=7, p=4):
    """The released ``utils.compute_density`` (oracle for the tests)."""
    xmax, xmin = x.max(), x.min()
    if not (xmax == 10.0 and xmin == 0.0):
        x = np.maximum(np.zeros_like(x), x)
        x = x / (x.max(axis=0, keepdims=True) + 1e-9)
        x = np.ceil(x * 10.0)
    x = np.where(x <= eps, 0.0, x)
    l1 = x.sum(axis=-1)
    lp = (x**p).sum(axis=-1) ** (1.0 / p) + 1e-9
    x = l1 / lp
    return x / (1e-9 + x.max())


def _authors_score(matrix, mask, eps=7, p=4):
    if matrix.shape[1] == 0:
        return 0.0
    m = mask.astype(float)
    return float((_authors_compute_density(matrix.astype(np.float64), eps, p) * m).sum() / np.log2(2 + m.sum()))


def test_score_matches_the_released_formula_and_keeps_columns_below_10():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, size=(12, 9)).astype(np.float32)
    x[:, 0] = 0
    x[0, 0] = 10  # overall max 10, min 0: the released code uses the matrix as stored
    x[:, 3] = np.minimum(x[:, 3], 9)  # a column whose maximum is below 10, as in ~2% of released columns
    mask = np.zeros(12, bool)
    mask[2:6] = True
    for b in (0, 5, 7, 9):
        for p in (2, 4, 8):
            d, s = released_density_and_score(x, mask, b, p)
            assert s == pytest.approx(_authors_score(x, mask, b, p), rel=1e-8)
            assert d.max() == pytest.approx(1.0)
    # re-running the full post-processing would rescale column 3 to 10 and change the result
    assert not np.array_equal(sparsify(x, 10, 7)[:, 3], np.where(x[:, 3] <= 7, 0, x[:, 3]))
    d, s = released_density_and_score(np.zeros((4, 0), np.float32), np.ones(4, bool))
    assert s == 0.0 and not d.any()  # the empty response scores 0, as in the released code
    assert math.isnan(released_density_and_score(x, np.zeros(12, bool))[1])


# ------------------------------------------------------------------ import on a tiny release


def _tiny_release(root: Path) -> dict:
    """Three prompts (one per group), both models, ratings for Vicuna."""
    prompts = {
        "user_oriented_task_1": (
            "Write a poem. Make it rhyme./nAbout cats.",
            "Write a poem|||Make it rhyme&&&About cats.",
        ),
        "lima_author_2": ("Explain gravity to a child.", "Explain gravity to a child.&&&"),
        "mtbench_writing_3": ("Compose a tweet./nInput: Summer sale", "Compose a tweet.|||Input: Summer sale&&&"),
    }
    pieces = {
        "user_oriented_task_1": [
            "▁Write",
            "▁a",
            "▁poem",
            ".",
            "▁Make",
            "▁it",
            "▁rh",
            "yme",
            ".",
            "<0x0A>",
            "About",
            "▁cats",
            ".",
        ],
        "lima_author_2": ["▁Exp", "lain", "▁gravity", "▁to", "▁a", "▁child", "."],
        "mtbench_writing_3": ["▁Comp", "ose", "▁a", "▁tweet", ".", "<0x0A>", "Input", ":", "▁Summer", "▁sale"],
    }
    ds = root / "FinalDataset.tsv"
    ds.write_text(
        "ID\tPrompt\tResponse\tInstruct&Context\n" + "".join(f"{k}\t{p}\tref\t{a}\n" for k, (p, a) in prompts.items()),
        encoding="utf-8",
    )
    rt = root / "AnnotatedDataset.tsv"
    rt.write_text(
        "File\tModel\tPrompt\tReference\tInstruct\tResponse\tRating\n"
        + "user_oriented_task_1.pkl\tvicuna_7B\tp\tr\ti\tresp\t4\n"
        + "lima_author_2.pkl\tvicuna_7B\tp\tr\ti\tresp\t1\n"
        + "mtbench_writing_3.pkl\tvicuna_7B\tp\tr\ti\tresp\t-1\n",
        encoding="utf-8",
    )
    rng = np.random.default_rng(1)
    rel = root / "released"
    for sub, n_out in (("ifa_llama_7b", 6), ("ifa_vicuna_7b", 3)):
        for k, ps in pieces.items():
            ex = rng.integers(0, 11, size=(len(ps), n_out)).astype(np.float32)
            ex[0, :] = 10
            _dump(
                rel / sub / f"{k}.pkl",
                {"ID": k, "Input": ps, "Reference": "ref", "Output": ["▁ok"] * n_out, "Explain": ex},
            )
    return {"released": rel, "dataset": ds, "ratings": rt}


def test_import_tiny_release_resume_and_refusals(tmp_path):
    f = _tiny_release(tmp_path)
    out = tmp_path / "runs"
    s = import_paper(f["released"], f["dataset"], f["ratings"], out, progress=False)
    assert s.n_imported == {"llama_7b": 3, "vicuna_7b": 3} and sum(s.n_unlocated_spans.values()) == 0
    assert s.n_short == {"llama_7b": 0, "vicuna_7b": 3}  # Vicuna's 3-token responses are short
    llama, vicuna = load_run(out / "llama_7b"), load_run(out / "vicuna_7b")
    assert [a.rating for a in llama.attributions] == [None, None, None]
    assert [a.rating for a in vicuna.attributions] == [4, 1, None]
    assert [a.group for a in vicuna.attributions] == ["self_instruct", "lima", "mt_bench"]
    a = vicuna.by_id()["mtbench_writing_3"]
    assert a.prompt_roles == ["instruction"] * 5 + ["prompt"] * 3 + ["instruction"] * 2
    assert a.raw.dtype == np.float32 and a.shape == (10, 3) and a.response_text == "ok ok ok"
    assert list(a.prompt_positions) == list(range(1, 11)) and a.n_input_tokens == 11
    a = vicuna.by_id()["user_oriented_task_1"]
    assert a.instruction_mask.tolist() == [True] * 9 + [False] * 4
    d, s_ = released_density_and_score(a.raw, a.instruction_mask)
    assert a.instruction_score == pytest.approx(s_) and np.allclose(a.density, d)
    m = vicuna.manifest
    assert m["status"] == "complete" and m["identity"]["model"]["spec"] == "paper:vicuna_7b"
    assert "Wu et al." in m["info"]["source"]["paper"] and m["info"]["ratings_path"] == str(f["ratings"])
    # resume: nothing to do
    s = import_paper(f["released"], f["dataset"], f["ratings"], out, progress=False)
    assert s.n_imported == {"llama_7b": 0, "vicuna_7b": 0} and s.n_done_before == {"llama_7b": 3, "vicuna_7b": 3}
    assert len(load_run(out / "vicuna_7b").attributions) == 3
    # other ratings -> refused, named
    with pytest.raises(RunMismatchError, match="ratings_sha256"):
        import_paper(f["released"], f["dataset"], None, out, progress=False)
    # changed released file -> refused
    _dump(
        f["released"] / "ifa_llama_7b" / "lima_author_2.pkl",
        {
            "ID": "lima_author_2",
            "Input": ["▁Hi"],
            "Reference": "",
            "Output": [],
            "Explain": np.zeros((1, 0), np.float32),
        },
    )
    with pytest.raises(RunMismatchError, match="files_sha256"):
        import_paper(f["released"], f["dataset"], f["ratings"], out, progress=False)
    # --out that is a file, a run, or a foreign folder
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputFileError, match="is a file"):
        import_paper(f["released"], f["dataset"], None, tmp_path / "file", progress=False)
    with pytest.raises(InputFileError, match="itself a run"):
        import_paper(f["released"], f["dataset"], None, out / "llama_7b", progress=False)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("x")
    with pytest.raises(InputFileError, match="other things"):
        import_paper(f["released"], f["dataset"], None, tmp_path / "foreign", progress=False)


def test_import_skips_missing_and_malformed_files_and_refuses_malicious(tmp_path):
    f = _tiny_release(tmp_path)
    (f["released"] / "ifa_vicuna_7b" / "lima_author_2.pkl").unlink()
    _dump(
        f["released"] / "ifa_llama_7b" / "lima_author_2.pkl",
        {"ID": "lima_author_2", "Input": ["▁a"], "Output": ["▁b"], "Explain": np.zeros((2, 2), np.float32)},
    )
    s = import_paper(f["released"], f["dataset"], f["ratings"], tmp_path / "runs", progress=False)
    assert s.n_skipped == {"llama_7b": 1, "vicuna_7b": 1} and s.n_imported == {"llama_7b": 2, "vicuna_7b": 2}
    assert "shape (2, 2)" in load_run(tmp_path / "runs" / "llama_7b").skipped["lima_author_2"]
    assert "no released file" in load_run(tmp_path / "runs" / "vicuna_7b").skipped["lima_author_2"]
    marker = tmp_path / "pwned"
    _dump(
        f["released"] / "ifa_llama_7b" / "lima_author_2.pkl",
        _released_dict("lima_author_2", Reference=_SystemCall(f"touch {marker}")),
    )
    with pytest.raises(UnsafePickleError, match="refused"):
        import_paper(f["released"], f["dataset"], f["ratings"], tmp_path / "runs2", progress=False)
    assert not marker.exists()


def test_tables_on_tiny_release_from_files_and_runs_agree(tmp_path):
    f = _tiny_release(tmp_path)
    data = load_release(f["released"], f["dataset"], f["ratings"])
    import_paper(f["released"], f["dataset"], f["ratings"], tmp_path / "runs", progress=False)
    runs = load_run(tmp_path / "runs" / "llama_7b"), load_run(tmp_path / "runs" / "vicuna_7b")
    a, b = paper_tables(data.base, data.tuned).to_json(), paper_tables(*runs).to_json()
    assert a == b
    assert set(a) == {"table1", "table2"} and set(a["table1"]) == set(GROUPS)
    assert a["table2"]["lima"]["llama"]["n"] == 1 and a["table2"]["lima"]["t"] is None  # n = 1: no test
    assert a["table1"]["lima"]["followed"]["n"] == 0  # Vicuna's responses are all short here


# ------------------------------------------------------------------ CLI


@pytest.fixture
def cli(capsys, monkeypatch):
    monkeypatch.delenv("TUNESHIFT_DEBUG", raising=False)

    def run(*args):
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = 0 if e.code is None else e.code
        o, e = capsys.readouterr()
        assert "Traceback" not in e and "internal error" not in e, e
        return code, o, e

    return run


def _one_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_cli_errors_are_one_line(cli, tmp_path):
    f = _tiny_release(tmp_path)
    code, _, err = cli(
        "paper-tables", "--released", tmp_path / "nope", "--dataset", f["dataset"], "--ratings", f["ratings"]
    )
    assert code == 2 and "not found" in _one_error(err)
    code, _, err = cli(
        "paper-tables", "--released", f["released"], "--dataset", tmp_path / "x.tsv", "--ratings", f["ratings"]
    )
    assert code == 2 and "x.tsv" in _one_error(err)
    code, _, err = cli(
        "paper-tables", "--released", f["released"], "--dataset", f["dataset"], "--ratings", f["ratings"], "-p", "1"
    )
    assert code == 2 and "--norm-p" in _one_error(err)
    _dump(
        f["released"] / "ifa_vicuna_7b" / "lima_author_2.pkl",
        _released_dict("lima_author_2", Reference=_EvalCall("1+1")),
    )
    code, _, err = cli("import-paper", "--released", f["released"], "--dataset", f["dataset"], "--out", tmp_path / "o")
    assert code == 2 and "builtins.eval" in _one_error(err)


def test_cli_import_and_tables_json(cli, tmp_path):
    import json

    f = _tiny_release(tmp_path)
    code, _, err = cli(
        "import-paper",
        "--released",
        f["released"],
        "--dataset",
        f["dataset"],
        "--ratings",
        f["ratings"],
        "--out",
        tmp_path / "o",
    )
    assert code == 0 and "vicuna_7b: 3 imported" in err
    code, out, _ = cli(
        "paper-tables", "--released", f["released"], "--dataset", f["dataset"], "--ratings", f["ratings"], "--json"
    )
    doc = json.loads(out)
    assert set(doc) == {"table1", "table2"}
    for g in GROUPS:
        assert set(doc["table1"][g]) == {"followed", "unfollowed", "t", "p"}
        assert set(doc["table2"][g]) == {"llama", "vicuna", "t", "p"}
        assert set(doc["table2"][g]["llama"]) == {"mean", "std", "n"}
    code, out, _ = cli(
        "paper-tables", "--released", f["released"], "--dataset", f["dataset"], "--ratings", f["ratings"]
    )
    assert code == 0 and "Table 1" in out and "Table 2" in out and "LLaMA-7B" in out


# ------------------------------------------------------------------ the full reproduction on the shared data

# Numbers this implementation produces on ../shared/paper (b = 7, p = 4): (mean, std ddof=0, n), Welch t, one-sided p.
EXPECTED = {
    "table1": {
        "self_instruct": {
            "followed": (1.228348958464269, 0.5236843263644253, 194),
            "unfollowed": (0.8917357120010667, 0.4786709856559452, 44),
            "t": -4.0972869539630805,
            "p": 5.686690419165509e-05,
        },
        "lima": {
            "followed": (1.6172633116121535, 0.4714671217420736, 249),
            "unfollowed": (1.2798628013270406, 0.4415853507998796, 50),
            "t": -4.831934871993735,
            "p": 3.6436287700963696e-06,
        },
        "mt_bench": {
            "followed": (1.4583658566358702, 0.5468320748363595, 60),
            "unfollowed": (0.9290024508147728, 0.5342273515343882, 19),
            "t": -3.6596073015310333,
            "p": 0.00047533680324363727,
        },
    },
    "table2": {
        "self_instruct": {
            "llama": (0.939358166022293, 0.4833147421885551, 252),
            "vicuna": (1.1301966062601154, 0.5441605909042422, 252),
            "t": -4.154187919416355,
            "p": 1.9226542390409498e-05,
        },
        "lima": {
            "llama": (1.2682533776664917, 0.43102772871175643, 300),
            "vicuna": (1.5579265644260063, 0.48511294352892825, 300),
            "t": -7.718647901152935,
            "p": 2.526143326431185e-14,
        },
        "mt_bench": {
            "llama": (1.1777284867396516, 0.5752516112349504, 80),
            "vicuna": (1.3440086215927785, 0.5965426598903467, 80),
            "t": -1.78338810271521,
            "p": 0.03822269789415945,
        },
    },
}
EXPECTED_POSITION = {
    "llama": [
        0.40670382186248705,
        0.25043911235774224,
        0.21674622027654464,
        0.21702224320294153,
        0.19965470620841447,
        0.202109082585892,
        0.20685829879856849,
        0.19474466689918457,
        0.19517304465342356,
        0.36254556133611937,
    ],
    "vicuna": [
        0.386275039701712,
        0.2670235103178616,
        0.2505372538755497,
        0.25093294159416635,
        0.24073868019999184,
        0.23683821551308476,
        0.26369293171449554,
        0.2523416864990659,
        0.2571531761442188,
        0.40477031651328516,
    ],
}
# sweep corners: (b, p) -> {table: {group: (t, p)}}
EXPECTED_SWEEP = {
    (0, 2): {
        "table1": {
            "self_instruct": (-2.8284813848107873, 0.002810760102597623),
            "lima": (-4.084176562346283, 4.0750802158189646e-05),
            "mt_bench": (-0.3688148418823214, 0.3578023282137878),
        },
        "table2": {
            "self_instruct": (0.15660902176060404, 0.5621917718058835),
            "lima": (-1.659012462092041, 0.04882007409474356),
            "mt_bench": (-0.580874715598969, 0.2810767610931663),
        },
    },
    (9, 8): {
        "table1": {
            "self_instruct": (-3.645791190993492, 0.0002624036054297376),
            "lima": (-4.007922218936664, 7.417166542924506e-05),
            "mt_bench": (-4.022034549997083, 0.00014287985625487646),
        },
        "table2": {
            "self_instruct": (-4.094759015514837, 2.466829378572389e-05),
            "lima": (-7.274636173774135, 5.526326766549154e-13),
            "mt_bench": (-1.7022552655051912, 0.04534052268601451),
        },
    },
}
REL = 1e-9


@pytest.fixture(scope="session")
def paper(tmp_path_factory):
    """The released data read once, and imported once as two runs (cached for the session)."""
    if PAPER is None:
        pytest.skip(paper_skip_reason())
    ds, rt = PAPER.dataset, PAPER.ratings
    data = load_release(PAPER.released, ds, rt)
    out = tmp_path_factory.mktemp("paper_runs")
    summary = import_paper(PAPER.released, ds, rt, out, progress=False)
    return {
        "data": data,
        "summary": summary,
        "llama": load_run(out / "llama_7b"),
        "vicuna": load_run(out / "vicuna_7b"),
        "tables": paper_tables(data.base, data.tuned),
    }


def _check_stats(got, want):
    mean, std, n = want
    assert got["n"] == n
    assert got["mean"] == pytest.approx(mean, rel=REL) and got["std"] == pytest.approx(std, rel=REL)


@pytest.mark.slow  # the paper's whole reproduction (its `paper` fixture: ~7 s)
@needs_paper
def test_full_reproduction_numbers(paper):
    got = paper["tables"].to_json()
    for table, rows in EXPECTED.items():
        assert set(got[table]) == set(GROUPS)
        for g, row in rows.items():
            for side, want in row.items():
                if side in ("t", "p"):
                    assert got[table][g][side] == pytest.approx(want, rel=REL), (table, g, side)
                else:
                    _check_stats(got[table][g][side], want)
    # the paper's claims hold in every group: followed > unfollowed and Vicuna > LLaMA, p < 0.05
    for g in GROUPS:
        assert got["table1"][g]["p"] < 0.05 and got["table2"][g]["p"] < 0.05


@pytest.mark.slow  # the paper's whole reproduction (its `paper` fixture: ~7 s)
@needs_paper
def test_every_span_located_and_every_record_imported(paper):
    assert paper["data"].n_unlocated == 0 and paper["data"].problems == []
    s = paper["summary"]
    assert s.n_unlocated_spans == {"llama_7b": 0, "vicuna_7b": 0}
    assert s.n_imported == {"llama_7b": 632, "vicuna_7b": 632} and s.n_skipped == {"llama_7b": 0, "vicuna_7b": 0}
    assert all(a.instruction_mask.any() for a in paper["vicuna"].attributions)
    ex = paper["tables"].excluded
    assert ex["table1"] == {"unrated": 3, "short_response": 13, "no_instruction": 0}


@pytest.mark.slow  # the paper's whole reproduction (its `paper` fixture: ~7 s)
@needs_paper
def test_compare_runs_on_imported_runs_gives_the_same_tables(paper):
    tables = paper["tables"]
    c = compare_runs(paper["llama"], paper["vicuna"], include_short=True)  # Table 2: all prompts
    assert c.same_dataset
    by_group = {k.group: k for k in c.contrasts}
    for g in GROUPS:
        row, k = tables.table2[g], by_group[g]
        assert (k.base.n, k.tuned.n) == (row.base.n, row.tuned.n)
        for x, y in (
            (k.base.mean, row.base.mean),
            (k.base.std, row.base.std),
            (k.tuned.mean, row.tuned.mean),
            (k.tuned.std, row.tuned.std),
            (k.t, row.t),
            (k.p, row.p),
        ):
            assert x == pytest.approx(y, rel=1e-12)
    np.testing.assert_allclose(c.position.base, tables.position.base, rtol=1e-12)
    np.testing.assert_allclose(c.position.tuned, tables.position.tuned, rtol=1e-12)
    c = compare_runs(paper["llama"], paper["vicuna"])  # Table 1: short responses left out
    fol = {f.group: f for f in c.followed if f.model == "tuned"}
    assert not any(f.model == "base" for f in c.followed)  # ratings only on the Vicuna run
    for g in GROUPS:
        row, f = tables.table1[g], fol[g]
        assert (f.followed.n, f.unfollowed.n) == (row.followed.n, row.unfollowed.n)
        assert f.followed.mean == pytest.approx(row.followed.mean, rel=1e-12)
        assert f.unfollowed.std == pytest.approx(row.unfollowed.std, rel=1e-12)
        assert (f.t, f.p) == (pytest.approx(row.t, rel=1e-12), pytest.approx(row.p, rel=1e-12))


@pytest.mark.slow  # the paper's whole reproduction (its `paper` fixture: ~7 s)
@needs_paper
def test_tables_from_runs_equal_tables_from_files(paper):
    assert paper_tables(paper["llama"], paper["vicuna"], with_position=False).to_json() == paper["tables"].to_json()


@pytest.mark.slow  # the paper's whole reproduction (its `paper` fixture: ~7 s)
@needs_paper
def test_scores_match_the_released_analysis_formula(paper):
    """Each stored score equals the authors' compute_density + evaluate (with their 1e-9 terms)."""
    for run in (paper["llama"], paper["vicuna"]):
        for a in run.attributions:
            assert a.instruction_score == pytest.approx(_authors_score(a.raw, a.instruction_mask), rel=1e-7, abs=1e-12)


@pytest.mark.slow  # the paper's whole reproduction (its `paper` fixture: ~7 s)
@needs_paper
def test_position_profile(paper):
    pos = paper["tables"].position
    np.testing.assert_allclose(pos.base, EXPECTED_POSITION["llama"], rtol=REL)
    np.testing.assert_allclose(pos.tuned, EXPECTED_POSITION["vicuna"], rtol=REL)
    # the pre-trained model loses the middle of the prompt more than the tuned one
    assert pos.middle_to_ends["base"] < pos.middle_to_ends["tuned"]
    assert pos.wilcoxon_p < 1e-3


@pytest.mark.slow  # the paper's whole reproduction (its `paper` fixture: ~7 s)
@needs_paper
def test_sweep_corners_and_default_point(paper):
    pts = {(pt.threshold, pt.norm_p): pt for pt in sweep(paper["data"].base, paper["data"].tuned, (0, 7, 9), (2, 4, 8))}
    for key, want in EXPECTED_SWEEP.items():
        for table, rows in want.items():
            for g, (t, p) in rows.items():
                got = getattr(pts[key], table)[g]
                assert (got.t, got.p) == (pytest.approx(t, rel=REL), pytest.approx(p, rel=REL)), (key, table, g)
    default = paper["tables"]
    for g in GROUPS:
        assert pts[(7, 4)].table1[g].p == pytest.approx(default.table1[g].p, rel=1e-12)
        assert pts[(7, 4)].table2[g].p == pytest.approx(default.table2[g].p, rel=1e-12)


def test_paper_tables_and_comparison_round_trip(tmp_path):
    from tuneshift.stats.compare import RunComparison
    from tuneshift.stats.paper_tables import PaperTables

    f = _tiny_release(tmp_path)
    data = load_release(f["released"], f["dataset"], f["ratings"])
    t = paper_tables(data.base, data.tuned)
    save_with_markdown(t, tmp_path / "t")
    back = PaperTables.load(tmp_path / "t")
    assert back.to_dict() == t.to_dict() and back.to_json() == t.to_json()
    assert (
        back.pair.labels == ("LLaMA-7B", "Vicuna-7B")
        and "LLaMA-7B mean±std" in (tmp_path / "t" / "paper_tables.md").read_text()
    )
    c = compare_runs(data.base, data.tuned, include_short=True)
    c.save(tmp_path / "c")
    cb = RunComparison.load(tmp_path / "c")
    assert cb.to_dict() == c.to_dict() and cb.contrast().base.n == c.contrast().base.n
    assert cb.base_model == "paper:llama_7b" and isinstance(cb.position.base, list)


# ------------------------------------------------------------------ the data folder: --paper-data / $TUNESHIFT_PAPER_DATA


def _authors_layout(root: Path) -> Path:
    """The tiny release laid out as a clone of the authors' repository."""
    import shutil

    (root / "src").mkdir()
    f = _tiny_release(root / "src")
    repo = root / "Interpret_Instruction_Tuning_LLMs"
    (repo / "datasets").mkdir(parents=True)
    shutil.copy(f["dataset"], repo / "datasets" / "FinalDataset.tsv")
    shutil.copy(f["ratings"], repo / "datasets" / "AnnotatedDataset.tsv")
    shutil.copytree(f["released"], repo / "results" / "attribution_interpret")
    return repo


def test_paper_data_layouts_and_errors(tmp_path, monkeypatch):
    from tuneshift.data.paper_release import PAPER_DATA_ENV, paper_data

    repo = _authors_layout(tmp_path)
    d = paper_data(repo)
    assert (d.released, d.dataset, d.ratings, d.vocab) == (
        repo / "results" / "attribution_interpret",
        repo / "datasets" / "FinalDataset.tsv",
        repo / "datasets" / "AnnotatedDataset.tsv",
        None,
    )
    monkeypatch.setenv(PAPER_DATA_ENV, str(repo))
    assert paper_data() == d
    monkeypatch.delenv(PAPER_DATA_ENV)
    with pytest.raises(InputFileError, match="TUNESHIFT_PAPER_DATA.*repository of the paper's authors"):
        paper_data()
    with pytest.raises(InputFileError, match="no datasets/FinalDataset.tsv"):
        paper_data(tmp_path / "src")
    (tmp_path / "flat" / "datasets").mkdir(parents=True)  # this repository's shared layout
    (tmp_path / "flat" / "datasets" / "FinalDataset.tsv").write_text("x")
    with pytest.raises(InputFileError, match="attribution_interpret"):
        paper_data(tmp_path / "flat")
    (tmp_path / "flat" / "released_attributions" / "ifa_llama_7b").mkdir(parents=True)
    assert paper_data(tmp_path / "flat").released == tmp_path / "flat" / "released_attributions"


def test_cli_takes_the_folder_from_an_option_or_the_environment(cli, tmp_path, monkeypatch):
    import json

    monkeypatch.delenv("TUNESHIFT_PAPER_DATA", raising=False)
    repo = _authors_layout(tmp_path)
    f = {
        "released": repo / "results" / "attribution_interpret",
        "dataset": repo / "datasets" / "FinalDataset.tsv",
        "ratings": repo / "datasets" / "AnnotatedDataset.tsv",
    }
    want = json.loads(
        cli(
            "paper-tables", "--released", f["released"], "--dataset", f["dataset"], "--ratings", f["ratings"], "--json"
        )[1]
    )
    code, out, err = cli("paper-tables", "--paper-data", repo, "--json")
    assert code == 0, err
    assert json.loads(out) == want
    code, _, err = cli("paper-tables")
    assert code == 2 and "--paper-data DIR (or set TUNESHIFT_PAPER_DATA)" in _one_error(err)
    assert "repository of the paper's authors" in err
    code, _, err = cli("paper-tables", "--released", f["released"], "--dataset", f["dataset"])
    assert code == 2 and _one_error(err).startswith("error: --ratings is needed")
    monkeypatch.setenv("TUNESHIFT_PAPER_DATA", str(repo))
    code, out, err = cli("paper-tables", "--json")
    assert code == 0 and json.loads(out) == want, err
    code, _, err = cli("import-paper", "--out", tmp_path / "runs")
    assert code == 0 and "vicuna_7b: 3 imported" in err
    code, _, err = cli("paper-tables", "--paper-data", tmp_path / "nowhere")
    assert code == 2 and "is not a directory" in _one_error(err)


def test_sensitivity_grid_of_imported_runs_has_54_points(cli, tmp_path):
    """Issue 23 item 4: the paper's imported runs are already discretised, so their grid has one L:
    54 points, not the 108 of our runs; compare --sensitivity's progress bar counts them."""
    from tuneshift.stats.compare import SENSITIVITY_GRID, compare_runs, grid_size, sensitivity, sensitivity_grid

    f = _tiny_release(tmp_path)
    import_paper(f["released"], f["dataset"], f["ratings"], tmp_path / "runs", progress=False)
    dirs = tmp_path / "runs" / "llama_7b", tmp_path / "runs" / "vicuna_7b"
    runs = load_run(dirs[0]), load_run(dirs[1])
    grid = sensitivity_grid(*runs)
    assert grid == {**SENSITIVITY_GRID, "levels": (None,)} and grid_size(grid) == 54
    assert grid_size(sensitivity_grid()) == grid_size(SENSITIVITY_GRID) == 108  # no imported run: the whole grid
    c = compare_runs(*runs, include_short=True, n_resamples=100)
    assert sensitivity_grid(*c.protocol.values()) == grid  # from the comparison's protocols, without the runs
    assert sensitivity_grid(c.protocol["base"], runs[1]) == grid
    assert len(sensitivity(*runs, include_short=True, n_resamples=100).rows) == 54
    code, _, err = cli("compare", *dirs, "--sensitivity", "--include-short")
    assert code in (0, 3) and "sensitivity: 54/54 settings" in err, err
