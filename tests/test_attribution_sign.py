"""The sign policy of negative attributions (issue 18 item 8): clip (the paper's, default), abs,
signed; in the run identity, at compare time, and stated by `show` and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers_tiny import assert_one_line_error
from tuneshift.errors import OptionError
from tuneshift.methods.attribution.importance import ImportanceSettings, density_and_score, sparsify
from tuneshift.reports.markdown import render_markdown

# hand-worked example: 3 prompt tokens x 2 response tokens, L = 10, b = 4, p = 2
RAW = np.array([[2.0, -4.0], [-1.0, 1.0], [1.0, -2.0]])
MASK = np.array([True, True, False])
S2 = math.sqrt(2.0)


def _settings(sign):
    return ImportanceSettings(levels=10, threshold=4, norm_p=2, sign=sign)


def test_hand_worked_sign_policies():
    # column 0: clip [2, 0, 1] / 2 -> ceil(10 x) = [10, 0, 5]; |.| [2, 1, 1] / 2 -> [10, 5, 5]
    # column 1: clip [0, 1, 0] / 1 -> [0, 10, 0];  |.| [4, 1, 2] / 4 -> [10, 3, 5] -> b = 4 -> [10, 0, 5]
    np.testing.assert_array_equal(sparsify(RAW, 10, 4, "clip"), [[10, 0], [0, 10], [5, 0]])
    np.testing.assert_array_equal(sparsify(RAW, 10, 4, "abs"), [[10, 10], [5, 0], [5, 5]])
    np.testing.assert_array_equal(sparsify(RAW, 10, 4, "signed"), [[10, -10], [-5, 0], [5, -5]])
    np.testing.assert_array_equal(sparsify(RAW, 10, 4), sparsify(RAW, 10, 4, "clip"))  # the default
    # densities (p = 2): clip: every row has one non-zero entry -> 1, 1, 1
    d, s = density_and_score(RAW, MASK, _settings("clip"))
    np.testing.assert_allclose(d, [1, 1, 1])
    assert s == pytest.approx(2 / 2)  # (1 + 1) / log2(2 + 2)
    # abs: 20 / sqrt(200) = sqrt2, 5 / 5 = 1, 10 / sqrt(50) = sqrt2 -> / sqrt2
    d, s = density_and_score(RAW, MASK, _settings("abs"))
    np.testing.assert_allclose(d, [1, 1 / S2, 1])
    assert s == pytest.approx((1 + 1 / S2) / 2)
    # signed: net 0 / sqrt(200) = 0, -5 / 5 = -1, 0 -> / max |d| = 1
    d, s = density_and_score(RAW, MASK, _settings("signed"))
    np.testing.assert_allclose(d, [0, -1, 0])
    assert s == pytest.approx(-0.5)


def test_sign_is_validated_and_in_the_identity():
    with pytest.raises(OptionError, match="sign must be one of clip, abs, signed"):
        ImportanceSettings(sign="negative")
    assert "sign" not in ImportanceSettings().to_dict()  # clip: as runs made before the option
    assert ImportanceSettings(sign="abs").to_dict()["sign"] == "abs"
    from tuneshift.stats.compare import ScoreSettings

    with pytest.raises(OptionError, match="sign"):
        ScoreSettings(sign="x")


@pytest.fixture(scope="module")
def sign_runs(tiny_llama_dir, tiny_llama_other_dir, tiny_prompts_file, tmp_path_factory):
    from tuneshift.cli import main

    root = tmp_path_factory.mktemp("sign")
    for name, model, extra in (
        ("base", tiny_llama_dir, []),
        ("tuned", tiny_llama_other_dir, []),
        ("base_abs", tiny_llama_dir, ["--sign", "abs"]),
        ("tuned_abs", tiny_llama_other_dir, ["--sign", "abs"]),
    ):
        with pytest.raises(SystemExit) as e:
            main(
                [
                    "attribute",
                    "--model",
                    str(model),
                    "--prompts",
                    str(tiny_prompts_file),
                    "--out",
                    str(root / name),
                    "--responses",
                    "gold",
                    "--threads",
                    "1",
                    *extra,
                ]
            )
        assert e.value.code == 0
    return root


def test_attribute_sign_abs_is_stored_and_scored(sign_runs):
    from tuneshift.storage.attribution import load_run

    clip, ab = load_run(sign_runs / "base"), load_run(sign_runs / "base_abs")
    assert "sign" not in clip.manifest["identity"]["options"]["importance"]
    assert ab.manifest["identity"]["options"]["importance"]["sign"] == "abs"
    n_neg = 0
    for x, y in zip(clip.attributions, ab.attributions):
        np.testing.assert_array_equal(x.raw, y.raw)  # same attributions, other post-processing
        n_neg += int((x.raw < 0).sum())
        # independent: the clip pipeline applied to |raw| is the abs policy
        d, s = density_and_score(np.abs(x.raw), y.instruction_mask, ImportanceSettings())
        np.testing.assert_allclose(y.density, d)
        assert (math.isnan(s) and math.isnan(y.instruction_score)) or y.instruction_score == pytest.approx(s)
    assert n_neg > 0  # the example has negative attributions to treat


def test_resume_with_another_sign_is_refused(sign_runs, tiny_llama_dir, tiny_prompts_file, cli):
    r = cli(
        "attribute",
        "--model",
        str(tiny_llama_dir),
        "--prompts",
        str(tiny_prompts_file),
        "--out",
        str(sign_runs / "base_abs"),
        "--responses",
        "gold",
        "--threads",
        "1",
    )
    assert_one_line_error(r, "sign", "existing 'abs', requested not set (the default)")


def test_compare_rescored_with_a_sign(sign_runs, cli):
    from tuneshift.stats.compare import ScoreSettings, compare_runs

    c_abs = compare_runs(sign_runs / "base_abs", sign_runs / "tuned_abs", n_resamples=200)
    c_re = compare_runs(sign_runs / "base", sign_runs / "tuned", settings=ScoreSettings(sign="abs"), n_resamples=200)
    assert [r.base_score for r in c_re.records] == pytest.approx([r.base_score for r in c_abs.records])
    c_s = compare_runs(sign_runs / "base", sign_runs / "tuned", settings=ScoreSettings(sign="signed"), n_resamples=200)
    assert all(math.isnan(v) for v in c_s.position.middle_share.values())
    assert math.isnan(c_s.position.wilcoxon_p) and any("signed" in w for w in c_s.warnings)
    assert any(np.isfinite(x) for x in c_s.position.base)  # the bin means are still there
    r = cli("compare", str(sign_runs / "base"), str(sign_runs / "tuned"))
    assert r.code == 0 and "clipped at 0" in r.out, r.err
    r = cli("compare", str(sign_runs / "base"), str(sign_runs / "tuned"), "--sign", "abs")
    assert r.code == 0 and "sign=abs" in r.out and "magnitude" in r.out, r.err
    # runs made with different sign policies are not compared silently
    r = cli("compare", str(sign_runs / "base"), str(sign_runs / "tuned_abs"))
    assert_one_line_error(r, "importance")


def test_sensitivity_grid_takes_the_sign(sign_runs):
    from tuneshift.stats.compare import sensitivity

    grid = {"threshold": (7,), "sign": ("clip", "abs", "signed")}
    s = sensitivity(sign_runs / "base", sign_runs / "tuned", grid=grid, n_resamples=200)
    assert [r.sign for r in s.rows] == ["clip", "abs", "signed"]
    assert "| sign |" in render_markdown(s) and "| abs |" in render_markdown(s)


def test_released_runs_admit_clip_only(sign_runs, tmp_path, cli):
    import shutil

    from tuneshift.stats.compare import ScoreSettings, compare_runs

    for side in ("base", "tuned"):  # as the paper's imported runs: already discretised, rescale false
        shutil.copytree(sign_runs / side, tmp_path / side)
        mf = tmp_path / side / "manifest.json"
        m = json.loads(mf.read_text())
        m["identity"]["options"]["importance"]["rescale"] = False
        mf.write_text(json.dumps(m))
    compare_runs(tmp_path / "base", tmp_path / "tuned", settings=ScoreSettings(threshold=5), n_resamples=100)
    with pytest.raises(OptionError, match="released matrices were clipped"):
        compare_runs(tmp_path / "base", tmp_path / "tuned", settings=ScoreSettings(sign="abs"), n_resamples=100)
    r = cli("compare", str(tmp_path / "base"), str(tmp_path / "tuned"), "--sign", "signed")
    assert_one_line_error(r, "--sign", "clipped at 0")


def test_show_and_report_say_what_happened_to_negative_attributions(sign_runs, cli, tmp_path):
    import html
    import re

    from tuneshift.reports.html import collect_inputs, render_report
    from tuneshift.storage.attribution import load_run

    a = load_run(sign_runs / "base").attributions[0]
    share = 100 * float((a.raw < 0).mean())
    r = cli("show", str(sign_runs / "base"))
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert (
        "negative attributions" in out and "clipped at 0" in out and f"({share:.0f}% of this record's entries)" in out
    )
    r = cli("show", str(sign_runs / "base_abs"), "--png", str(tmp_path / "h.png"))
    assert r.code == 0 and "magnitude" in " ".join(r.out.split()), r.err
    page = html.unescape(render_report(collect_inputs([sign_runs / "base", sign_runs / "tuned"])))
    assert "Negative attributions clipped at 0 (the paper's rule, sign policy clip)." in page
    runs = [load_run(sign_runs / s) for s in ("base", "tuned")]
    for side, run in zip(("base", "tuned"), runs):
        neg = sum(int((x.raw < 0).sum()) for x in run.attributions)
        tot = sum(x.raw.size for x in run.attributions)
        assert f"{side} {100 * neg / tot:.0f}%" in page
    page = html.unescape(render_report(collect_inputs([sign_runs / "base_abs", sign_runs / "tuned_abs"])))
    assert "counted by magnitude (sign policy abs" in page
    assert re.search(r"Negative entries of the raw attribution matrices: base \d+%, tuned \d+%", page)


def test_compare_with_a_sign_pairs_runs_stored_with_other_signs(sign_runs, cli):
    # --sign re-scores both runs from their raw matrices: the stored policies are no difference
    from tuneshift.stats.compare import ScoreSettings, compare_runs

    mixed = compare_runs(
        sign_runs / "base", sign_runs / "tuned_abs", settings=ScoreSettings(sign="clip"), n_resamples=200
    )
    same = compare_runs(sign_runs / "base", sign_runs / "tuned", settings=ScoreSettings(sign="clip"), n_resamples=200)
    assert [r.tuned_score for r in mixed.records] == pytest.approx([r.tuned_score for r in same.records])
    assert not any("differ" in w for w in mixed.warnings)
    r = cli("compare", str(sign_runs / "base"), str(sign_runs / "tuned_abs"), "--sign", "clip")
    assert r.code == 0 and "sign=clip" in r.out, r.err
    # without --sign the stored policies differ; the refusal names the flag that allows it anyway
    r = cli("compare", str(sign_runs / "base"), str(sign_runs / "tuned_abs"))
    assert_one_line_error(r, "--allow-mismatch", "'sign': 'clip'")
    assert "'sign': None" not in r.err
