"""The controlled comparison: response protocols, matched runs, controls, paired statistics, sensitivity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import tuneshift
from tuneshift.data.prompts import read_prompts
from tuneshift.errors import InputFileError, OptionError
from tuneshift.methods.attribution.api import AttributionOptions, attribute_batch
from tuneshift.methods.attribution.importance import ImportanceSettings, density_and_score
from tuneshift.pipelines.attribute_run import run_attribution
from tuneshift.reports.markdown import render_markdown
from tuneshift.stats.compare import ScoreSettings, compare_runs, example_record, sensitivity
from tuneshift.stats.controls import (
    RecordControls,
    copy_share,
    paired_by_group,
    paired_contrast,
    positional_baseline,
    random_span_baseline,
)
from tuneshift.stats.tests import bootstrap_mean_ci, holm, paired_t
from tuneshift.storage.attribution import load_run

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`


# ------------------------------------------------------------------ controls, by hand


def test_copy_share_by_hand():
    p = ["a", "b", "c", "d", "e"]
    # response: x [a b c d] y -> the 4-gram a b c d occurs in the prompt: 4 of 6 tokens copied
    assert copy_share(p, ["x", "a", "b", "c", "d", "y"]) == pytest.approx(4 / 6)
    assert copy_share(p, ["a", "b", "c"]) == 0.0  # shorter than n
    assert copy_share(p, ["b", "c", "d", "e", "a", "b", "c", "d"]) == 1.0
    assert math.isnan(copy_share(p, []))


def test_random_span_baseline_by_hand():
    d = np.array([1.0, 0.0, 0.5, 0.5])
    # spans of 2: 1.0, 0.5, 1.0 -> mean 2.5/3, divided by log2(4) = 2
    assert random_span_baseline(d, 2) == pytest.approx((2.5 / 3) / 2)
    assert random_span_baseline(d, 4) == pytest.approx(2.0 / math.log2(6))
    assert math.isnan(random_span_baseline(d, 0)) and math.isnan(random_span_baseline(d, 5))


def test_positional_baseline_by_hand():
    profile = np.arange(10) / 10.0  # bin b has mean density b/10
    mask = np.array([True, False, False, True, False])  # N = 5: tokens 0 and 3 -> bins 1 and 7
    assert positional_baseline(mask, profile) == pytest.approx((0.1 + 0.7) / math.log2(4))
    assert math.isnan(positional_baseline(np.zeros(5, bool), profile))


# ------------------------------------------------------------------ paired statistics


def test_paired_statistics_match_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    b = a + 0.3 + rng.normal(scale=0.5, size=30)
    t, p = paired_t(a, b)
    ref = stats.ttest_rel(b, a)
    assert (t, p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    m, lo, hi = bootstrap_mean_ci(a, b, n_resamples=2000)
    assert m == pytest.approx(np.mean(b - a)) and lo < m < hi
    assert bootstrap_mean_ci(a, b, n_resamples=2000) == (m, lo, hi)  # seeded: reproducible
    c = paired_contrast("score", "overall", a, b, n_resamples=2000)
    assert (
        c.n_pairs == 30
        and c.mean_diff == pytest.approx(m)
        and c.wilcoxon_p == pytest.approx(stats.wilcoxon(a, b).pvalue)
    )
    assert bootstrap_mean_ci([1, 2], [2, 3]) == (1.0, 1.0, 1.0)  # every difference 1


def test_holm_by_hand():
    # m = 3: sorted 0.01, 0.02, 0.04 -> 0.03, max(0.03, 0.04), max(0.04, 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    out = holm([0.5, float("nan"), 0.01])
    assert out[0] == pytest.approx(0.5) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def _rec(i, g, base, tuned):
    return RecordControls(i, g, base, tuned, 10, 10, 10, base, tuned, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_paired_by_group_and_the_example_rule():
    recs = [_rec("a", "x", 1.0, 1.5), _rec("b", "x", 1.0, 0.9), _rec("c", "y", 0.5, 0.8), _rec("d", "y", 0.2, 0.2)]
    rows = paired_by_group(recs, controls=("score",), n_resamples=500)
    assert [r.group for r in rows] == ["overall", "x", "y"]
    assert rows[0].n_pairs == 4 and rows[0].mean_diff == pytest.approx((0.5 - 0.1 + 0.3 + 0.0) / 4)
    assert [r.p_holm for r in rows[1:]] == pytest.approx(holm([r.p for r in rows[1:]]), nan_ok=True)
    # differences 0.5, -0.1, 0.3, 0.0 -> sorted -0.1, 0.0, 0.3, 0.5: the lower median is 0.0 (record d)
    assert example_record(recs) == "d"


# ------------------------------------------------------------------ response protocols


def test_gold_gives_both_models_identical_response_ids(tiny_llama, tiny_llama_other_dir, tiny_prompts_file):
    other = tuneshift.load_model(str(tiny_llama_other_dir), progress=False)
    recs = [r for r in read_prompts(tiny_prompts_file).records if r.response]
    opts = AttributionOptions(responses="gold", batch_size=4)
    a = attribute_batch(tiny_llama, recs, opts)
    b = attribute_batch(other, recs, opts)
    for x, y in zip(a, b):
        assert x.response_token_ids.tolist() == y.response_token_ids.tolist() and len(x.response_token_ids) > 0
        assert not np.allclose(x.raw, y.raw)  # two different models, same tokens


def test_join_space_marks_the_first_response_word(tiny_llama, tiny_prompts_file):
    rec = read_prompts(tiny_prompts_file).records[0]
    tok = tiny_llama.tokenizer
    (none,) = attribute_batch(tiny_llama, [rec], AttributionOptions(responses="gold", chat_template="none"))
    (space,) = attribute_batch(
        tiny_llama, [rec], AttributionOptions(responses="gold", chat_template="none", join="space")
    )
    assert none.response_token_ids.tolist() == tok(rec.response, add_special_tokens=False)["input_ids"]
    assert space.response_token_ids.tolist() == tok(" " + rec.response, add_special_tokens=False)["input_ids"]
    assert none.response_tokens[0] != space.response_tokens[0]  # 'Could' vs 'ĠCould'


def test_cross_forces_the_other_runs_answers(tiny_llama, tiny_llama_other_dir, tiny_prompts_file, tmp_path):
    other = tuneshift.load_model(str(tiny_llama_other_dir), progress=False)
    ps = read_prompts(tiny_prompts_file)
    run_attribution(tiny_llama, ps, tmp_path / "base_own", AttributionOptions(max_new_tokens=4), progress=False)
    opts = AttributionOptions(responses="cross", responses_from=str(tmp_path / "base_own"), max_new_tokens=4)
    run_attribution(other, ps, tmp_path / "tuned_cross", opts, progress=False)
    src, got = load_run(tmp_path / "base_own").by_id(), load_run(tmp_path / "tuned_cross")
    assert got.attributions and got.manifest["identity"]["options"]["responses"] == "cross"
    assert got.manifest["identity"]["options"]["responses_from"]["model"]["spec"] == str(tiny_llama.spec.spec)
    for a in got.attributions:
        assert a.response_token_ids.tolist() == src[a.record_id].response_token_ids.tolist()
    with pytest.raises(OptionError, match="responses_from"):
        AttributionOptions(responses="cross")
    # the natural partner of a cross run: the run whose answers it was forced to
    c = compare_runs(tmp_path / "base_own", tmp_path / "tuned_cross", include_short=True, n_resamples=200)
    assert c.records and all(r.base_n_response == r.tuned_n_response for r in c.records)


def test_chat_template_file_is_used_and_identified_by_hash(tiny_llama, tiny_prompts_file, tmp_path):
    f = tmp_path / "t.jinja"
    f.write_text("{% for m in messages %}### Instruction:\n{{ m['content'] }}\n\n{% endfor %}### Response:\n")
    opts = AttributionOptions(responses="gold", chat_template=str(f))
    assert opts.to_dict()["chat_template"].startswith("file:sha256:")
    rec = read_prompts(tiny_prompts_file).records[0]
    (a,) = attribute_batch(tiny_llama, [rec], opts)
    assert a.n_input_tokens > len(a.prompt_positions) + 1  # template tokens around the prompt
    with pytest.raises(OptionError, match="not a file"):
        AttributionOptions(chat_template=str(tmp_path / "missing.jinja"))
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}{{ m.content }")
    with pytest.raises(OptionError, match="not a valid Jinja template"):
        AttributionOptions(chat_template=str(bad))
    with pytest.raises(OptionError, match="threshold"):
        AttributionOptions(importance=ImportanceSettings(threshold=float("inf")))


# ------------------------------------------------------------------ matched runs and the comparison


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama, tiny_llama_other_dir, tiny_prompts_file):
    d = tmp_path_factory.mktemp("controlled")
    other = tuneshift.load_model(str(tiny_llama_other_dir), progress=False)
    ps = read_prompts(tiny_prompts_file)
    out = {}
    for protocol in ("own", "gold"):
        opts = AttributionOptions(
            responses=protocol, max_new_tokens=6, importance=ImportanceSettings(min_response_tokens=1)
        )
        for side, m in (("base", tiny_llama), ("tuned", other)):
            run_attribution(m, ps, d / protocol / side, opts, progress=False)
            out[(protocol, side)] = d / protocol / side
    return out


def test_compare_refuses_runs_made_under_different_protocols(runs):
    with pytest.raises(InputFileError, match="not made under the same protocol.*responses: base 'own', tuned 'gold'"):
        compare_runs(runs[("own", "base")], runs[("gold", "tuned")])
    c = compare_runs(runs[("own", "base")], runs[("gold", "tuned")], allow_mismatch=True, n_resamples=500)
    assert any("responses: base 'own', tuned 'gold'" in w for w in c.warnings)
    with pytest.raises(InputFileError, match="given as both runs"):
        compare_runs(runs[("own", "base")], runs[("own", "base")])


def test_gold_runs_with_other_generation_limits_are_comparable(
    tiny_llama, tiny_llama_other_dir, tiny_prompts_file, tmp_path, runs
):
    other = tuneshift.load_model(str(tiny_llama_other_dir), progress=False)
    opts = AttributionOptions(responses="gold", max_new_tokens=99, importance=ImportanceSettings(min_response_tokens=1))
    run_attribution(other, read_prompts(tiny_prompts_file), tmp_path / "t99", opts, progress=False)
    c = compare_runs(runs[("gold", "base")], tmp_path / "t99", n_resamples=200)  # the limit plays no part
    assert c.records and not c.warnings


def test_comparison_paired_rows_equal_a_direct_computation(runs):
    c = compare_runs(runs[("gold", "base")], runs[("gold", "tuned")], n_resamples=500)
    assert not c.warnings or all("differ" not in w for w in c.warnings)
    b, t = load_run(runs[("gold", "base")]).by_id(), load_run(runs[("gold", "tuned")]).by_id()
    ids = [r.id for r in c.records]
    assert ids and ids == sorted(
        i for i in b if i in t and np.isfinite(b[i].instruction_score) and np.isfinite(t[i].instruction_score)
    )
    overall = next(r for r in c.paired if r.control == "score" and r.group == "overall")
    diffs = [t[i].instruction_score - b[i].instruction_score for i in ids]
    assert overall.n_pairs == len(ids) and overall.mean_diff == pytest.approx(np.mean(diffs))
    # gold: identical response lengths, so the common-length control equals the score
    for r in c.records:
        assert r.base_n_response == r.tuned_n_response == r.common_length
        assert (r.base_common, r.tuned_common) == (pytest.approx(r.base_score), pytest.approx(r.tuned_score))
    assert c.example_record in ids
    assert {p.control for p in c.paired} >= {"score", "score at common length", "score - random-span baseline"}
    assert c.protocol["base"]["responses"] == "gold" and c.protocol["base"] == {
        **c.protocol["tuned"],
        "method": c.protocol["base"]["method"],
    }


def test_common_length_control_recomputes_from_the_stored_matrix(runs):
    c = compare_runs(runs[("own", "base")], runs[("own", "tuned")], n_resamples=500)
    b = load_run(runs[("own", "base")]).by_id()
    for r in c.records:
        a = b[r.id]
        k = r.common_length
        want = density_and_score(a.raw[:, :k], a.instruction_mask, ImportanceSettings(min_response_tokens=1))[1]
        assert r.base_common == pytest.approx(want)


def test_sensitivity_grid(runs):
    grid = {"threshold": (5, 7), "norm_p": (4,), "max_response_tokens": (2, None)}
    s = sensitivity(runs[("gold", "base")], runs[("gold", "tuned")], grid=grid, n_resamples=200)
    assert len(s.rows) == 4 and {(r.threshold, r.max_response_tokens) for r in s.rows} == {
        (5, 2),
        (5, None),
        (7, 2),
        (7, None),
    }
    c = compare_runs(
        runs[("gold", "base")], runs[("gold", "tuned")], settings=ScoreSettings(threshold=5, norm_p=4), n_resamples=200
    )
    row = next(r for r in s.rows if r.threshold == 5 and r.max_response_tokens is None)
    assert row.paired.mean_diff == pytest.approx(
        next(p.mean_diff for p in c.paired if p.control == "score" and p.group == "overall")
    )
    assert "Sensitivity" in render_markdown(s)
    back = type(s).from_dict(s.to_dict())
    assert back.to_dict() == s.to_dict() and back.rows[0].paired.n_pairs == s.rows[0].paired.n_pairs


def test_sensitivity_grid_size_of_our_runs(runs):
    """Issue 23 item 4: our runs' grid is the whole default grid (108 points), from the runs, their
    paths or a comparison's protocols; a custom grid is counted as walked."""
    from tuneshift.stats.compare import SENSITIVITY_GRID, grid_size, sensitivity_grid

    b, t = runs[("gold", "base")], runs[("gold", "tuned")]
    assert sensitivity_grid(b, t) == SENSITIVITY_GRID and grid_size(sensitivity_grid(b, t)) == 108
    c = compare_runs(b, t, n_resamples=50)
    assert sensitivity_grid(*c.protocol.values()) == SENSITIVITY_GRID
    grid = {"threshold": (5, 7), "norm_p": (4,), "max_response_tokens": (2, None)}
    assert grid_size(sensitivity_grid(b, t, grid=grid)) == 4 == len(sensitivity(b, t, grid=grid, n_resamples=50).rows)
    with pytest.raises(OptionError, match="unknown settings"):
        sensitivity_grid(b, t, grid={"bogus": (1,)})
