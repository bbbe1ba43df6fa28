"""``tuneshift report``: the HTML page's content, escaping, offline-ness and input handling
(the page in a real browser: test_report_browser.py)."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from conftest import HOSTILE_RECORD

from tuneshift.errors import InputFileError, OptionError
from tuneshift.reports.formatting import num
from tuneshift.reports.html import collect_inputs, render_report, write_report
from tuneshift.reports.html.inputs import ConceptsInput, HeadsInput
from tuneshift.reports.html.sections import display_token, script_json
from tuneshift.stats.compare import RunComparison
from tuneshift.stats.concepts_rotation import RotationComparison, subspace_rotation
from tuneshift.stats.heads_compare import compare_knowledge, verb_head_changes
from tuneshift.storage.attribution import load_run


@pytest.fixture(scope="module")
def page(report_comparison_dir) -> str:
    return render_report(collect_inputs([report_comparison_dir]))


def _heat(page: str) -> dict:
    m = re.search(r'<script type="application/json" class="heat-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


# ----------------------------------------------------------------------------- escaping and offline


def test_markup_in_prompts_and_ids_is_text(page):
    # the only <script> elements are the page's own: one data block per attribution section, one program
    assert page.count("<script") == 2 and "<img" not in page
    assert "xss&lt;b&gt;" in page and "xss<b>" not in page
    # the hostile record's prompt, tags stripped and entities decoded, reads as the original text
    art = re.search(r'<article class="record-detail"[^>]*>\s*<h4>Record xss&lt;b&gt; .*?</article>', page, re.S).group(
        0
    )
    prompt = re.search(r'<div class="prompt">(.*?)</div>', art, re.S).group(1)
    text = html.unescape(re.sub(r"<[^>]+>", "", prompt))
    assert 'Rewrite the text <script>alert("x")</script> politely.' in text
    assert "</script><img src=x onerror=alert(1)> & more" in text
    # the data block cannot be closed early: no '<' inside it, and it parses back to the tokens
    data = re.search(r'<script type="application/json" class="heat-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data and ">" not in data
    assert any("".join(v["prompt"]).count("</script>") == 2 for v in json.loads(data).values())


def test_script_json_escapes_and_round_trips():
    obj = {"a": "</script><b>&\u2028", "n": float("nan"), "x": [1.5, 2]}
    text = script_json(obj)
    assert not set("<>&\u2028") & set(text)
    assert json.loads(text) == {"a": "</script><b>&\u2028", "n": None, "x": [1.5, 2]}


def test_page_is_self_contained(page):
    assert not re.search(r"""<(link|iframe|object|embed)\b""", page, re.I)
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "@import" not in page and not re.search(r"url\((?!#)", page)  # only in-page fragments (SVG clip paths)
    assert "fetch(" not in page and "XMLHttpRequest" not in page


# ----------------------------------------------------------------------------- content


def test_records_tables_and_details_match_the_comparison(page, report_comparison_dir):
    c = RunComparison.load(report_comparison_dir)
    assert len(c.records) == 7
    for r in c.records:
        assert f'data-value="{html.escape(r.id, quote=True)}"' in page
        assert num(r.tuned_score - r.base_score) in page
    for r in c.paired:
        if r.group == "overall":  # 7 pairs: below the sample rule's 10, the row says so and shows no CI
            assert r.reason == f"too few pairs ({r.n_pairs})" and r.reason in page
            assert f"[{num(r.ci_low)}, {num(r.ci_high)}]" not in page
    body = page.split('data-kind="attribution"')[1]
    assert '<tr class="pos">' not in body and '<tr class="neg">' not in body  # nothing coloured below the rule
    assert "score (primary)" in page
    assert page.count('class="record-detail"') == 7
    # the example record's view is the one shown first
    first = re.search(r'<article class="record-detail" id="[^"]+">\s*<h4>Record ([^<]+) <', page).group(1)
    assert html.unescape(first.strip()) == c.example_record
    assert "<svg" in page  # the position profile


def test_densities_and_heat_map_come_from_the_runs(page, report_comparison_dir):
    """Independent check: token titles carry the stored densities; heat-map values are the
    thresholded, discretised matrix (computed here by hand) divided by L."""
    base = load_run(report_comparison_dir / "base")
    a = base.by_id()["rewrite"]
    for i, d in enumerate(a.density):
        assert f"token {i}: density {float(d):.3f}" in page
    heat = _heat(page)
    key = next(
        k for k, v in heat.items() if k.endswith("-base") and v["prompt"] == [display_token(t) for t in a.prompt_pieces]
    )
    raw = np.asarray(a.raw, dtype=np.float64)
    L, b = 10, 7  # the run's defaults
    top = np.clip(raw, 0, None).max(axis=0)
    scaled = np.divide(np.clip(raw, 0, None), top, out=np.zeros_like(raw), where=top > 0)
    levels = np.ceil(L * scaled - 1e-12)
    expected = np.where(levels > b, levels, 0) / L
    np.testing.assert_allclose(np.asarray(heat[key]["values"]), np.round(expected, 2), atol=0.0100001)


def test_template_tokens_are_greyed_placeholders(page, report_comparison_dir):
    a = load_run(report_comparison_dir / "base").by_id()["rewrite"]
    before = int(a.prompt_positions[0])
    after = int(a.n_input_tokens) - int(a.prompt_positions[-1]) - 1
    assert before > 0 and after > 0
    assert f"&#x27E8;{before} template&#x27E9;" in page and f"&#x27E8;{after} template&#x27E9;" in page
    assert 'class="tok ins"' in page


def test_max_records_limits_the_side_by_side_views(report_comparison_dir):
    c = RunComparison.load(report_comparison_dir)
    page = render_report(collect_inputs([report_comparison_dir]), max_records=2)
    assert page.count('class="record-detail"') == 2
    assert "2 of 7 records have a per-record view" in page
    diffs = sorted(c.records, key=lambda r: -abs(r.tuned_score - r.base_score))
    shown = {html.unescape(x.strip()) for x in re.findall(r"<h4>Record ([^<]+) <", page)}
    assert c.example_record in shown and len(shown) == 2
    assert (shown - {c.example_record}) <= {diffs[0].id, diffs[1].id}
    with pytest.raises(OptionError, match="max_records"):
        render_report([], max_records=-1)


def test_a_pair_of_runs_is_compared_on_the_spot(report_comparison_dir):
    items = collect_inputs([report_comparison_dir / "base", report_comparison_dir / "tuned"])
    assert len(items) == 1 and items[0].base is not None
    saved = RunComparison.load(report_comparison_dir)
    assert [r.id for r in items[0].comparison.records] == [r.id for r in saved.records]


def test_moved_comparison_finds_runs_next_to_it(report_comparison_dir, tmp_path):
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(report_comparison_dir, moved)
    d = json.loads((moved / "comparison.json").read_text())
    d["base_run"], d["tuned_run"] = "/nowhere/base", "/nowhere/tuned"
    (moved / "comparison.json").write_text(json.dumps(d))
    (item,) = collect_inputs([moved])
    assert item.base is not None and item.base.path == moved / "base" and item.tuned.path == moved / "tuned"
    shutil.rmtree(moved / "base")
    (item,) = collect_inputs([moved])
    assert item.base is None and "not found" in item.notes[0]
    page = render_report([item])
    assert 'class="record-detail"' not in page and "not found" in page


# ----------------------------------------------------------------------------- heads and concepts


def _knowledge(pairs_by_head):
    return {h: {frozenset(p) for p in ps} for h, ps in pairs_by_head.items()}


def test_verb_head_changes_hand_worked():
    base = _knowledge({(0, 0): [("write", "poem"), ("cat", "dog")], (0, 1): [("write", "code")], (1, 0): []})
    tuned = _knowledge(
        {
            (0, 0): [("write", "poem"), ("write", "essay"), ("write", "story")],
            (0, 1): [("write", "text")],
            (1, 0): [("explain", "why")],
        }
    )
    ch = verb_head_changes(base, tuned, ["Write", "explain", "translate"])
    assert [(r.layer, r.head, r.base, r.tuned, r.change) for r in ch["write"]] == [(0, 0, 1, 3, 2), (0, 1, 1, 1, 0)]
    assert ch["write"][0].gained == ["essay", "story"] and ch["write"][0].lost == []
    assert ch["write"][1].gained == ["text"] and ch["write"][1].lost == ["code"]
    assert [(r.layer, r.head, r.change) for r in ch["explain"]] == [(1, 0, 1)]
    assert ch["translate"] == []
    assert verb_head_changes(base, tuned, ["write"], layers=[1])["write"] == []


def test_heads_and_concepts_sections():
    base = _knowledge({(0, 0): [("write", "poem")], (1, 0): [("explain", "why")]})
    tuned = _knowledge({(0, 0): [("write", "poem"), ("write", "<essay>")], (1, 0): []})
    hc = compare_knowledge(base, tuned, n_layers=2, n_groups=2)
    rng = np.random.default_rng(0)
    rot = RotationComparison(
        "base-model",
        "tuned-model",
        [subspace_rotation(rng.normal(size=(3, 8)), rng.normal(size=(3, 8)), layer=l) for l in range(2)],
    )
    page = render_report(
        [
            HeadsInput("heads run", hc, verb_head_changes(base, tuned, ["write", "explain"])),
            ConceptsInput("concepts run", rot),
        ]
    )
    assert "Table 3" in page and "L0.H0" in page and "&lt;essay&gt;" in page and "<essay>" not in page
    assert "<b>write</b>: 1 head changed (1 with more pairs, 0 with fewer)" in page
    assert "<b>explain</b>: 1 head changed (0 with more pairs, 1 with fewer)" in page
    assert "No change in any head: " not in page
    page2 = render_report([HeadsInput("heads run", hc, verb_head_changes(base, tuned, ["write", "translate", "act"]))])
    assert "No change in any head: translate, act." in page2 and "<b>translate</b>" not in page2
    assert '<td class="txt">0</td>' in page2 and '<td class="txt">1</td>' in page2  # the layers compared per group
    assert num(rot.layers[1].angle_mean_degrees, 1) in page and page.count("<svg") == 1
    assert "tuneshift annotate" in page  # no annotations: the shares are explained, not silently missing
    assert page.count("<script") == 1  # no attribution section: only the program


def test_heads_and_concepts_sections_show_the_null():
    from tuneshift.stats.concepts_rotation import RotationNull
    from tuneshift.stats.heads_compare import HeadsNull, HeadsRunInfo

    base = _knowledge({(0, 0): [("write", "poem"), ("cat", "dog")], (1, 0): [("explain", "why")]})
    tuned = _knowledge({(0, 0): [("write", "poem")], (1, 0): [("explain", "why")]})
    null = _knowledge({(0, 0): [("write", "poem"), ("cat", "dog")], (1, 0): [("sky", "blue")]})
    hc = compare_knowledge(base, tuned, n_layers=2, n_groups=2)
    hz = compare_knowledge(base, null, n_layers=2, n_groups=2)
    hc.null = HeadsNull(HeadsRunInfo("random-update(b, like t, seed 0)"), 0, hz.table3, hz.jaccard)
    rng = np.random.default_rng(0)
    b = [rng.normal(size=(3, 8)) for _ in range(2)]
    rot = RotationComparison(
        "b",
        "t",
        [subspace_rotation(x, x + 0.1 * rng.normal(size=x.shape), layer=l) for l, x in enumerate(b)],
        null=RotationNull(
            "random-update(b, like t, seed 0)",
            0,
            "",
            [subspace_rotation(x, x + 0.3 * rng.normal(size=x.shape), layer=l) for l, x in enumerate(b)],
        ),
    )
    page = render_report([HeadsInput("heads run", hc, None), ConceptsInput("concepts run", rot)])
    assert page.count("random update (null)") >= 4 and page.count("<svg") == 2  # the Jaccard plot and the rotation plot
    assert html.escape(hc.null_summary()) in page and html.escape(rot.null_summary()) in page
    assert "in 1 of 2 layers" in hc.null_summary() and "in 0 of 2 layers by mean principal angle" in rot.null_summary()
    assert f"<td>{num(rot.null.layers[1].angle_mean_degrees, 2)}</td>" in page
    assert "<td>1</td><td>1.000</td><td>0.000</td>" in page  # layer 1: Jaccard tuned 1, null 0


# ----------------------------------------------------------------------------- inputs and CLI


def test_bad_inputs_are_clear_errors(report_comparison_dir, tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        collect_inputs([tmp_path / "nope"])
    with pytest.raises(InputFileError, match="without a partner"):
        collect_inputs([report_comparison_dir / "base"])
    with pytest.raises(InputFileError, match="without a partner"):
        collect_inputs([report_comparison_dir / "base", report_comparison_dir])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="not a comparison"):
        collect_inputs([tmp_path / "empty"])
    with pytest.raises(InputFileError, match="at least one"):
        collect_inputs([])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "comparison.json").write_text("{not json")
    with pytest.raises(InputFileError):
        collect_inputs([bad])
    (bad / "comparison.json").write_text('{"records": []}')
    with pytest.raises(InputFileError, match=r"comparison.json is not a RunComparison written by tuneshift \(missing"):
        collect_inputs([bad])
    with pytest.raises(OptionError, match="is a directory"):
        write_report([report_comparison_dir], tmp_path)


def test_out_never_destroys_inputs_or_other_files(report_comparison_dir, tmp_path):
    cmp = report_comparison_dir / "comparison.json"
    before = cmp.read_bytes()
    for out, match in (
        (cmp, "inside the input"),
        (report_comparison_dir / "r.html", "inside the input"),
        (report_comparison_dir / "base" / "manifest.json", "inside the input"),
        (tmp_path / "missing" / "r.html", "does not exist"),
    ):
        with pytest.raises(OptionError, match=match):
            write_report([report_comparison_dir], out)
    with pytest.raises(OptionError, match="is an input"):
        write_report([cmp], cmp)
    assert cmp.read_bytes() == before and not (tmp_path / "missing").exists()
    notes = tmp_path / "notes.html"
    notes.write_text("my notes")
    with pytest.raises(OptionError, match="not a tuneshift report"):
        write_report([report_comparison_dir], notes)
    assert notes.read_text() == "my notes"
    ok = write_report([report_comparison_dir], tmp_path / "r.html")
    write_report([report_comparison_dir], ok)  # an earlier report is replaced
    assert ok.read_text().startswith("<!DOCTYPE html>")


def test_max_records_zero_says_so(report_comparison_dir):
    page = render_report(collect_inputs([report_comparison_dir]), max_records=0)
    assert "0 of 7 records have a per-record view" in page and "click a record" not in page


def test_runs_are_found_from_another_working_directory(report_comparison_dir, tmp_path, monkeypatch):
    """compare stored relative paths (run from the comparison's parent folder); the report runs elsewhere."""
    import shutil

    top = tmp_path / "project"
    shutil.copytree(report_comparison_dir, top / "cmp")
    d = json.loads((top / "cmp" / "comparison.json").read_text())
    (top / "cmp" / "base").rename(top / "runs-base")
    (top / "cmp" / "tuned").rename(top / "runs-tuned")
    d["base_run"], d["tuned_run"] = "runs-base", "runs-tuned"
    (top / "cmp" / "comparison.json").write_text(json.dumps(d))
    monkeypatch.chdir(tmp_path)
    (item,) = collect_inputs([top / "cmp"])
    assert item.base is not None and item.base.path.resolve() == (top / "runs-base").resolve()
    shutil.rmtree(top / "runs-tuned")
    (item,) = collect_inputs([top / "cmp"])
    assert item.base is None and "tried" in item.notes[0] and "runs-tuned" in item.notes[0]


def test_cli_report(cli, report_comparison_dir, tmp_path):
    out = tmp_path / "r.html"
    res = cli("report", report_comparison_dir.parent / report_comparison_dir.name, "--out", out, "--title", "T <x>")
    assert res.code == 0 and res.out.strip() == str(out)
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<title>T &lt;x&gt;</title>" in text
    res = cli("report", report_comparison_dir, "--out", tmp_path)
    assert res.code == 2 and "--out" in res.err and "is a directory" in res.err and "Traceback" not in res.err
    res = cli("report", tmp_path / "missing")
    assert res.code == 2 and "does not exist" in res.err and "Traceback" not in res.err
    res = cli("report", report_comparison_dir, "--max-records", "-3", "--out", tmp_path / "x.html")
    assert res.code == 2 and "--max-records" in res.err
    res = cli("report", report_comparison_dir, "--out", "/proc/tuneshift-report.html")
    assert res.code == 2 and "cannot write /proc/tuneshift-report.html" in res.err and "internal" not in res.err
    res = cli("report", report_comparison_dir, "--out", tmp_path / "e.html", "--title", " ")
    assert res.code == 0 and "<title>tuneshift report</title>" in (tmp_path / "e.html").read_text()
    assert "kB (opens offline)" in res.err


def test_hostile_record_is_in_the_fixture(report_comparison_dir):
    assert HOSTILE_RECORD["id"] in load_run(report_comparison_dir / "base").by_id()


# ----------------------------------------------------------------------------- the section registry


def test_every_registered_section_has_its_partial():
    from importlib import resources

    from tuneshift.reports.html.sections import SECTIONS

    assert SECTIONS.names() == ["attribution", "heads", "concepts", "findings", "ablation"]
    templates = resources.files("tuneshift.reports.html").joinpath("templates")
    for sec in SECTIONS.values():
        assert (
            templates.joinpath(*sec.template.split("/"))
            .read_text()
            .startswith(f'<section class="report-section {sec.name}"')
        )
    assert [s.name for s in SECTIONS.values() if s.order < 100] == ["findings"]  # the findings table opens the page


def test_a_section_is_a_view_function_and_a_partial(monkeypatch):
    """Adding a section: one registered view function and one partial (served here by the loader)."""
    from dataclasses import dataclass

    import tuneshift.reports.html as page_module
    from tuneshift.reports.html.sections import SECTIONS, SectionContext, page_sections, register_section

    monkeypatch.setattr(SECTIONS, "_entries", dict(SECTIONS._entries))  # restored after the test

    @dataclass
    class NoteInput:
        title: str
        text: str

    @register_section("note", input_type=NoteInput, order=50)
    def note_view(item: NoteInput, ctx: SectionContext) -> dict:
        return {"title": item.title, "text": item.text}

    @register_section("heads_count", input_type=HeadsInput)  # a second section of an existing input
    def heads_count_view(item: HeadsInput, ctx: SectionContext) -> dict:
        return {"title": item.title, "text": f"{len(item.comparison.layers)} layers"}

    partials = {
        "sections/note.html.j2": '<section class="report-section note" id="{{ s.id }}"><p>{{ s.text }}</p></section>\n',
        "sections/heads_count.html.j2": '<section id="{{ s.id }}"><p>{{ s.text }}</p></section>\n',
    }
    real = page_module._template_source
    monkeypatch.setattr(page_module, "_template_source", lambda name: partials.get(name) or real(name))

    base = _knowledge({(0, 0): [("write", "poem")]})
    hc = compare_knowledge(base, base, n_layers=1, n_groups=1)
    items = [HeadsInput("h", hc, None), NoteInput("n <1>", "a <b> note"), NoteInput("n <1>", "again")]
    assert [(v["kind"], v["id"]) for v in page_sections(items)] == [
        ("note", "note-n-1"),
        ("note", "note-n-1-2"),
        ("heads", "heads-h"),
        ("heads_count", "heads-count-h"),
    ]
    page = render_report(items)
    assert "<p>a &lt;b&gt; note</p>" in page and "<p>1 layers</p>" in page
    assert page.index('id="note-n-1"') < page.index('id="heads-h"') < page.index('id="heads-count-h"')
    assert '<a href="#note-n-1-2">note: n &lt;1&gt;</a>' in page

    assert register_section("note", input_type=NoteInput, order=50)(note_view) is note_view  # the same view again
    with pytest.raises(ValueError, match="report section 'note' is already registered"):
        register_section("note", input_type=NoteInput)(heads_count_view)
    with pytest.raises(ValueError, match="letters, digits"):
        register_section("no/te", input_type=NoteInput)
    with pytest.raises(TypeError, match=r"no report section shows a dict; sections: attribution \(AttributionInput\)"):
        page_sections([{"title": "x"}])
