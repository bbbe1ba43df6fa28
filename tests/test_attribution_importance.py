"""Hand-worked examples of Method A's post-processing (Wu et al., NAACL 2024, Sec. 3.1).

raw [n_prompt, n_response] -> clip at 0 -> divide each response column by its max ->
ceil(L * x) -> zero every value <= b -> density_n = ||S_n||_1 / ||S_n||_p, divided by its max
over prompt tokens -> instruction score = sum(density over instruction tokens) / log2(2 + n).
Defaults L = 10, b = 7, p = 4. Every expected value below is worked out by hand in comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneshift.methods.attribution import (
    ImportanceSettings,
    density_and_score,
    importance_density,
    instruction_score,
    sparsify,
)

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

# 3 prompt tokens (rows) x 4 response tokens (columns)
RAW = np.array(
    [
        [5.0, -1.0, 0.0, 10.0],
        [10.0, -2.0, 0.0, 7.1],
        [-3.0, -0.5, 0.0, 7.0],
    ]
)
# column 0: clip -> [5, 10, 0], max 10 -> [0.5, 1, 0] -> ceil(10x) = [5, 10, 0] -> 5 <= 7 -> [0, 10, 0]
# column 1: all negative -> clipped to [0, 0, 0] -> stays zero (no division by a zero max)
# column 2: all zero -> stays zero
# column 3: max 10 -> [1.0, 0.71, 0.70] -> ceil(10x) = [10, ceil(7.1) = 8, ceil(7.0) = 7]
#           -> 7 <= 7 is zeroed (exactly 0.7 of the max is NOT kept), 8 > 7 kept -> [10, 8, 0]
SPARSE = np.array(
    [
        [0.0, 0.0, 0.0, 10.0],
        [10.0, 0.0, 0.0, 8.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
)
# densities before normalisation (p = 4):
#   row 0: L1 = 10, L4 = (10^4)^(1/4) = 10                    -> 1
#   row 1: L1 = 18, L4 = (10^4 + 8^4)^(1/4) = 14096^(1/4) = 10.896 -> 18 / 10.896 = 1.65196
#   row 2: all zero                                            -> 0
# normalised by the max (1.65196): [0.60535, 1, 0]
D1 = 18 / 14096**0.25
DENSITY = np.array([1 / D1, 1.0, 0.0])


def test_hand_numbers():
    assert math.isclose(14096**0.25, 10.896172568, rel_tol=1e-9)
    assert math.isclose(D1, 1.6519562156, rel_tol=1e-9)
    assert math.isclose(1 / D1, 0.6053427, rel_tol=1e-6)


def test_sparsify_hand_example():
    out = sparsify(RAW)
    np.testing.assert_array_equal(out, SPARSE)
    assert out.shape == RAW.shape and out.dtype == np.float64


def test_all_negative_and_zero_columns_stay_zero():
    raw = np.array([[-1.0, 0.0, 3.0], [-5.0, 0.0, 1.0]])
    out = sparsify(raw)
    np.testing.assert_array_equal(out[:, 0], [0, 0])
    np.testing.assert_array_equal(out[:, 1], [0, 0])
    # column 2: [3, 1] / 3 -> ceil(10 * [1, 0.333]) = [10, 4] -> [10, 0]
    np.testing.assert_array_equal(out[:, 2], [10, 0])
    assert not np.isnan(out).any()


def test_threshold_boundary():
    col = np.array([[10.0], [7.0], [7.1], [7.01], [6.9]])
    # /10 -> [1, 0.7, 0.71, 0.701, 0.69]; ceil(10x) -> [10, 7, 8, 8, 7]; <= 7 -> 0
    np.testing.assert_array_equal(sparsify(col)[:, 0], [10, 0, 8, 8, 0])


def test_column_scaling_is_per_response_token():
    # each column divided by its own max: multiplying a column by 2^k changes nothing
    scaled = RAW * np.array([2.0**-20, 4.0, 1.0, 2.0**30])
    np.testing.assert_array_equal(sparsify(scaled), SPARSE)


def test_density_hand_example():
    np.testing.assert_allclose(importance_density(SPARSE), DENSITY, rtol=1e-12, atol=0)


def test_density_is_k_to_three_quarters_for_k_equal_entries():
    # k equal entries c: L1 = k c, L4 = c k^(1/4) -> ratio k^(3/4), whatever c is
    sparse = np.zeros((5, 16))
    for row, k in enumerate([1, 2, 4, 16]):
        sparse[row, :k] = 8.0
    sparse[4, :2] = 10.0  # 2 entries of another value: same density as row 1
    ks = np.array([1, 2, 4, 16, 2], dtype=float)
    expected = ks**0.75 / 16**0.75  # max at k = 16: 16^(3/4) = 8
    np.testing.assert_allclose(importance_density(sparse), expected, rtol=1e-12)
    np.testing.assert_allclose(expected[:4], [1 / 8, 2**0.75 / 8, 2**1.5 / 8, 1.0], rtol=1e-12)
    # unequal values spread less: [10, 8] gives 1.65196 < 2^(3/4) = 1.68179
    assert D1 < 2**0.75


def test_density_all_zero():
    np.testing.assert_array_equal(importance_density(np.zeros((3, 4))), [0, 0, 0])
    np.testing.assert_array_equal(importance_density(np.zeros((3, 0))), [0, 0, 0])


def test_instruction_score_hand_example():
    # instruction = rows 0 and 2: (0.60535 + 0) / log2(2 + 2) = 0.60535 / 2 = 0.302671
    assert math.isclose(instruction_score(DENSITY, np.array([True, False, True])), (1 / D1) / 2, rel_tol=1e-12)
    # instruction = row 1 only: 1 / log2(3) = 0.63093
    assert math.isclose(instruction_score(DENSITY, np.array([False, True, False])), 1 / math.log2(3), rel_tol=1e-12)
    # all three: (0.60535 + 1 + 0) / log2(5) = 1.60535 / 2.32193 = 0.69139
    assert math.isclose(instruction_score(DENSITY, np.ones(3, bool)), (1 / D1 + 1) / math.log2(5), rel_tol=1e-12)
    assert math.isclose((1 / D1 + 1) / math.log2(5), 0.69139, rel_tol=1e-4)


def test_instruction_score_nan_without_instruction_tokens():
    assert math.isnan(instruction_score(DENSITY, np.zeros(3, bool)))
    _, score = density_and_score(RAW, np.zeros(3, bool))
    assert math.isnan(score)


def test_instruction_score_rejects_a_wrong_mask():
    with pytest.raises(ValueError):
        instruction_score(DENSITY, np.array([True, False]))


def test_non_2d_input_is_rejected():
    with pytest.raises(ValueError):
        sparsify(np.zeros(4))
    with pytest.raises(ValueError):
        importance_density(np.zeros((2, 3, 4)))


def test_density_and_score_default_settings():
    density, score = density_and_score(RAW, np.array([True, False, True]))
    np.testing.assert_allclose(density, DENSITY, rtol=1e-12)
    assert math.isclose(score, (1 / D1) / 2, rel_tol=1e-12)


def test_settings_threshold_b4():
    # b = 4 keeps the 5 of column 0: S = [[5,0,0,10], [10,0,0,8], [0,0,0,0]]
    #   (column 3 row 2: ceil(7.0) = 7 > 4 -> kept too): S[2] = [0,0,0,7]
    s = ImportanceSettings(threshold=4)
    np.testing.assert_array_equal(sparsify(RAW, s.levels, s.threshold), [[5, 0, 0, 10], [10, 0, 0, 8], [0, 0, 0, 7]])
    # row 0: 15 / (5^4 + 10^4)^(1/4) = 15 / 10625^(1/4) = 15 / 10.1527 = 1.47743
    # row 1: 1.65196 (as before); row 2: 7 / 7 = 1
    d0, d2 = 15 / 10625**0.25, 1.0
    density, score = density_and_score(RAW, np.array([False, False, True]), s)
    np.testing.assert_allclose(density, [d0 / D1, 1.0, d2 / D1], rtol=1e-12)
    assert math.isclose(d0, 1.47743, rel_tol=1e-5)
    # one instruction token (row 2): (1 / 1.65196) / log2(3)
    assert math.isclose(score, (1 / D1) / math.log2(3), rel_tol=1e-12)


def test_settings_norm_p2():
    # p = 2, same sparse matrix: row 0: 10 / 10 = 1; row 1: 18 / sqrt(100 + 64) = 18 / 12.8062 = 1.40556
    density, _ = density_and_score(RAW, np.ones(3, bool), ImportanceSettings(norm_p=2))
    d1 = 18 / math.sqrt(164)
    np.testing.assert_allclose(density, [1 / d1, 1.0, 0.0], rtol=1e-12)
    assert math.isclose(1 / d1, 0.711458, rel_tol=1e-5)
    # k equal entries with p = 2: ratio sqrt(k)
    sparse = np.zeros((2, 9))
    sparse[0, :1] = 3
    sparse[1, :9] = 3
    np.testing.assert_allclose(importance_density(sparse, norm_p=2), [1 / 3, 1.0], rtol=1e-12)


def test_settings_levels_4_threshold_2():
    # L = 4, b = 2: column 0: ceil(4 * [0.5, 1, 0]) = [2, 4, 0] -> 2 <= 2 -> [0, 4, 0]
    #               column 3: ceil(4 * [1, 0.71, 0.7]) = [4, ceil(2.84) = 3, ceil(2.8) = 3] -> [4, 3, 3]
    s = ImportanceSettings(levels=4, threshold=2)
    sparse = sparsify(RAW, s.levels, s.threshold)
    np.testing.assert_array_equal(sparse, [[0, 0, 0, 4], [4, 0, 0, 3], [0, 0, 0, 3]])
    # densities: row 0: 4/4 = 1; row 1: 7 / (256 + 81)^(1/4) = 7 / 4.28457 = 1.63376; row 2: 3/3 = 1
    d1 = 7 / 337**0.25
    density, score = density_and_score(RAW, np.array([True, True, False]), s)
    np.testing.assert_allclose(density, [1 / d1, 1.0, 1 / d1], rtol=1e-12)
    assert math.isclose(d1, 1.63376, rel_tol=1e-5)
    # score with 2 instruction tokens: (0.61208 + 1) / log2(4) = 0.80604
    assert math.isclose(score, (1 / d1 + 1) / 2, rel_tol=1e-12)


def test_sparse_values_are_zero_or_above_threshold():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(12, 30))
    for levels, threshold in [(10, 7), (4, 2), (20, 0)]:
        s = sparsify(raw, levels, threshold)
        nz = s[s != 0]
        assert ((nz > threshold) & (nz <= levels) & (nz == np.round(nz))).all()
        # every column with a positive entry keeps its maximum at L
        pos = (raw > 0).any(axis=0)
        np.testing.assert_array_equal(s.max(axis=0)[pos], levels)
        np.testing.assert_array_equal(s[:, ~pos], 0)
    d = importance_density(sparsify(raw))
    assert d.max() == 1.0 and (d >= 0).all()


def test_settings_defaults_are_the_papers():
    s = ImportanceSettings()
    assert (s.levels, s.threshold, s.norm_p) == (10, 7, 4)
    assert s.to_dict() == {"levels": 10, "threshold": 7, "norm_p": 4, "min_response_tokens": 5}


def test_the_papers_defaults_have_one_home():
    """Issue 23 item 3: b, p, L and the minimum length are read from ImportanceSettings everywhere."""
    import inspect

    from tuneshift.methods.attribution.importance import released_density_and_score
    from tuneshift.pipelines.import_paper import attribution_from_release
    from tuneshift.stats import paper_tables

    paper = ImportanceSettings.PAPER
    assert paper == ImportanceSettings()
    assert (
        (paper.levels, paper.threshold, paper.norm_p, paper.min_response_tokens)
        == (
            ImportanceSettings.DEFAULT_LEVELS,
            ImportanceSettings.DEFAULT_THRESHOLD,
            ImportanceSettings.DEFAULT_NORM_P,
            ImportanceSettings.DEFAULT_MIN_RESPONSE_TOKENS,
        )
        == (10, 7, 4, 5)
    )

    def default(f, name):
        return inspect.signature(f).parameters[name].default

    assert (default(sparsify, "levels"), default(sparsify, "threshold")) == (paper.levels, paper.threshold)
    assert default(importance_density, "norm_p") == paper.norm_p
    for f in (
        released_density_and_score,
        attribution_from_release,
        paper_tables.paper_tables,
        paper_tables.paper_settings,
    ):
        assert (default(f, "threshold"), default(f, "norm_p")) == (paper.threshold, paper.norm_p), f
    assert paper_tables.paper_settings().min_response_tokens == paper.min_response_tokens


# the messages AttributionOptions and ScoreSettings gave before the checks moved into
# ImportanceSettings (the CLI shows them with its flag spellings)
WHOLE_ERRORS = [
    (dict(levels=0), "levels (L) must be at least 1, not 0"),
    (dict(threshold=10), "threshold (b) must be a number in [0, L = 10) (at b >= L every value is zeroed), not 10"),
    (dict(threshold=-1), "threshold (b) must be a number in [0, L = 10) (at b >= L every value is zeroed), not -1"),
    (
        dict(levels=4, threshold=4),
        "threshold (b) must be a number in [0, L = 4) (at b >= L every value is zeroed), not 4",
    ),
    (
        dict(threshold=float("nan")),
        "threshold (b) must be a number in [0, L = 10) (at b >= L every value is zeroed), not nan",
    ),
    (dict(norm_p=1), "norm_p (p) must be a finite number > 1, not 1"),
    (dict(norm_p=float("inf")), "norm_p (p) must be a finite number > 1, not inf"),
    (dict(norm_p=float("nan")), "norm_p (p) must be a finite number > 1, not nan"),
    (dict(min_response_tokens=-1), "min_response_tokens must be >= 0"),
    (dict(sign="x"), "sign must be one of clip, abs, signed, not 'x'"),
    (dict(sign="x", levels=0, norm_p=0), "sign must be one of clip, abs, signed, not 'x'"),  # the first bad one
    (dict(levels=0, threshold=20), "levels (L) must be at least 1, not 0"),
]


@pytest.mark.parametrize("kwargs, message", WHOLE_ERRORS)
def test_importance_settings_check_themselves(kwargs, message):
    from tuneshift.errors import OptionError

    with pytest.raises(OptionError) as e:
        ImportanceSettings(**kwargs)
    assert str(e.value) == message and list(e.value.problems) == [message.split()[0]]


def test_override_checks_keep_their_messages():
    from tuneshift.errors import OptionError
    from tuneshift.stats.compare import ScoreSettings

    for kwargs, message in [
        (dict(threshold=float("inf")), "threshold (b) must be a finite number, got inf"),
        (dict(norm_p=1), "norm_p (p) must be a finite number > 1 (the density is L1 / Lp), got 1"),
        (dict(levels=0), "levels (L) must be at least 1, got 0"),
        (dict(min_response_tokens=-1), "min_response_tokens must be >= 0, got -1"),
        (dict(max_response_tokens=0, sign="x"), "max_response_tokens must be >= 1, got 0"),
        (dict(sign="x"), "sign must be one of clip, abs, signed, not 'x'"),
    ]:
        with pytest.raises(OptionError) as e:
            ScoreSettings(**kwargs)
        assert str(e.value) == message
        if "max_response_tokens" not in kwargs:
            with pytest.raises(OptionError) as e:
                ImportanceSettings.check_overrides(**kwargs)
            assert str(e.value) == message
    ScoreSettings(threshold=12, levels=None)  # on its own a b is only checked to be finite: L is the run's
    with pytest.raises(OptionError, match=r"\(b\) must be a number in \[0, L = 10\)"):
        from tuneshift.stats.paper_tables import paper_settings

        paper_settings(10, 4)  # the released matrices have L = 10 levels: refused before any data is read
