"""The annotator-free rotation measure of compare-concepts, on hand-made subspaces and tiny runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tuneshift.errors import InputFileError, TuneshiftError
from tuneshift.pipelines.concepts_run import run_concepts
from tuneshift.reports.markdown import render_markdown, save_with_markdown
from tuneshift.stats.concepts_rotation import LayerRotation, RotationComparison, compare_rotation, subspace_rotation

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

WORDS = ["report", "sky", "sentence", "team", "poem", "wind", "review", "food", "story", "cat", "sea", "blue"]


def _rot(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def test_identical_subspaces_angles_zero():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(10, 3)))
    base = q.T
    # the same subspace in another basis (mixed and sign-flipped)
    mix, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    r = subspace_rotation(base, mix @ base)
    np.testing.assert_allclose(r.angles, 0, atol=1e-7)
    assert r.overlap == pytest.approx(1.0)
    # identical vectors (one sign flipped) all match
    r = subspace_rotation(base, base * np.array([[1], [-1], [1]]))
    assert r.n_matched == 3 and r.share_matched == 1.0 and r.mean_best_cos == pytest.approx(1.0)


def test_orthogonal_subspaces_angles_right():
    e = np.eye(6)
    r = subspace_rotation(e[:2], e[2:5])
    np.testing.assert_allclose(r.angles, np.pi / 2, atol=1e-12)
    assert r.overlap == pytest.approx(0.0, abs=1e-12) and r.n_matched == 0 and r.mean_best_cos == pytest.approx(0.0)
    assert r.rank_base == 2 and r.rank_tuned == 3 and r.angles.shape == (2,)


def test_rotated_basis():
    e = np.eye(4)
    base = e[:2]
    # rotate the plane (e0, e2) by 30 degrees: e0 -> cos e0 + sin e2; e1 stays
    t = np.radians(30)
    tuned = np.stack([np.cos(t) * e[0] + np.sin(t) * e[2], e[1]])
    r = subspace_rotation(base, tuned)
    np.testing.assert_allclose(np.sort(r.angles), [0.0, t], atol=1e-10)
    assert r.overlap == pytest.approx((1 + np.cos(t) ** 2) / 2)
    # cos 30 = 0.866 < 0.9: one match (e1); with threshold 0.85 both
    assert r.n_matched == 1 and subspace_rotation(base, tuned, match_threshold=0.85).n_matched == 2
    # a rotation inside the subspace keeps it (angles 0) but loses the close matches at 45 degrees
    inside = _rot(np.radians(45)) @ base
    r = subspace_rotation(base, inside)
    np.testing.assert_allclose(r.angles, 0, atol=1e-7)
    assert r.n_matched == 0 and r.mean_best_cos == pytest.approx(np.cos(np.radians(45)))
    # float32 storage does not break it
    r = subspace_rotation(base.astype(np.float32), tuned.astype(np.float32))
    np.testing.assert_allclose(np.sort(r.angles), [0.0, t], atol=1e-6)


def test_bad_inputs():
    with pytest.raises(TuneshiftError, match="different d_model"):
        subspace_rotation(np.eye(4)[:2], np.eye(5)[:2])
    with pytest.raises(TuneshiftError, match="threshold"):
        subspace_rotation(np.eye(3), np.eye(3), match_threshold=0)
    with pytest.raises(TuneshiftError, match="threshold"):
        subspace_rotation(np.eye(3), np.eye(3), match_threshold=1.5)
    with pytest.raises(TuneshiftError, match="zero"):
        subspace_rotation(np.zeros((1, 3)), np.eye(3))
    with pytest.raises(TuneshiftError, match="non-empty"):
        subspace_rotation(np.zeros((0, 3)), np.eye(3))


def test_compare_rotation_on_runs(tiny_llama, tiny_model_dir_factory, tmp_path):
    import tuneshift

    vocab = tmp_path / "v.txt"
    vocab.write_text("\n".join(WORDS))
    a = tmp_path / "a"
    run_concepts(tiny_llama, a, vocab=vocab, rank=4, top_k=3)
    # a model compared with itself (a copy: the same directory twice is refused): no rotation
    import shutil

    shutil.copytree(a, tmp_path / "a_copy")
    with pytest.raises(InputFileError, match="given as both concepts runs"):
        compare_rotation(a, a)
    c = compare_rotation(a, tmp_path / "a_copy")
    assert [l.layer for l in c.layers] == [0, 1]
    for l in c.layers:
        np.testing.assert_allclose(l.angles, 0, atol=1e-3)
        assert l.n_matched == 4
    paths = save_with_markdown(c, tmp_path / "cmp")
    d = json.loads(paths["json"].read_text())
    assert d["rotation"][0]["n_matched"] == 4 and "| 0 | 4 | 4 |" in paths["markdown"].read_text()
    assert list(d) == ["base", "tuned", "rotation", "skipped_layers"]
    back = RotationComparison.load(tmp_path / "cmp")
    assert back.to_dict() == d and render_markdown(back) == render_markdown(c)
    np.testing.assert_array_equal(back.layers[1].angles, c.layers[1].angles)
    # another random model: far from identical
    other = tuneshift.load_model(str(tiny_model_dir_factory(seed=3)), progress=False)
    b = tmp_path / "b"
    run_concepts(other, b, vocab=vocab, rank=4, top_k=3, layers="1")
    c = compare_rotation(a, b)
    assert [l.layer for l in c.layers] == [1] and c.skipped_layers == [0]
    assert c.layers[0].overlap < 0.9
    # different d_model is refused clearly
    wide = tuneshift.load_model(
        str(tiny_model_dir_factory(hidden_size=48, num_attention_heads=4, num_key_value_heads=2)), progress=False
    )
    w = tmp_path / "w"
    run_concepts(wide, w, vocab=vocab, rank=4, top_k=3, layers="0")
    with pytest.raises(TuneshiftError, match="different d_model"):
        compare_rotation(a, w)
    with pytest.raises(InputFileError, match="concepts run"):
        compare_rotation(a, tmp_path / "cmp")


def test_rotation_result_round_trip(tmp_path):
    e = np.eye(4)
    t = np.radians(30)
    r = subspace_rotation(e[:2], np.stack([np.cos(t) * e[0] + np.sin(t) * e[2], e[1]]), layer=3)
    assert r.angle_max == pytest.approx(t) and r.angle_mean_degrees == pytest.approx(15.0)
    c = RotationComparison("b", "t", [r], skipped_layers=[5])
    d = c.to_dict()
    row = d["rotation"][0]
    assert row["layer"] == 3 and row["angles"] == pytest.approx([t, 0.0], abs=1e-10)
    assert row["angle_min"] == pytest.approx(0.0, abs=1e-10) and row["angle_mean"] == pytest.approx(t / 2)
    assert (
        row["overlap"] == pytest.approx((1 + np.cos(t) ** 2) / 2) and row["n_matched"] == 1 and row["threshold"] == 0.9
    )
    back = RotationComparison.from_dict(d)
    assert isinstance(back.layers[0], LayerRotation) and back.shares is None and back.table5 is None
    assert back.layers[0].angle_mean_degrees == pytest.approx(15.0) and back.to_dict() == d
    c.save(tmp_path)
    assert RotationComparison.load(tmp_path / "concepts_rotation.json").to_dict() == d
    md = render_markdown(c)
    assert "| 3 | 2 | 2 | 15.0 | 30.0 | 0.875 | 1 | 0.500 | 0.933 |" in md and "skipped): 5" in md


def test_null_beside_tuned_summary_and_backward_compatible(tmp_path):
    from scipy.linalg import subspace_angles

    from tuneshift.stats.concepts_rotation import RotationNull

    rng = np.random.default_rng(1)
    base = [np.linalg.qr(rng.normal(size=(8, 3)))[0].T for _ in range(2)]
    near = [b + 0.05 * rng.normal(size=b.shape) for b in base]
    far = [b + 0.5 * rng.normal(size=b.shape) for b in base]
    # layer 0: tuned moves more than the null; layer 1: less
    tuned = [subspace_rotation(base[0], far[0], layer=0), subspace_rotation(base[1], near[1], layer=1)]
    nullr = [subspace_rotation(base[0], near[0], layer=0), subspace_rotation(base[1], far[1], layer=1)]
    c = RotationComparison("b", "t", tuned, null=RotationNull("random-update(b, like t, seed 2)", 2, "/n", nullr))
    assert nullr[1].angle_mean == pytest.approx(subspace_angles(base[1].T, far[1].T).mean())
    assert "in 1 of 2 layers by mean principal angle" in c.null_summary()
    d = c.to_dict()
    assert d["null_update"]["seed"] == 2 and len(d["null_update"]["rotation"]) == 2
    c.save(tmp_path)
    back = RotationComparison.load(tmp_path)
    assert back.null.model == c.null.model and back.null.layers[1].angle_mean == pytest.approx(nullr[1].angle_mean)
    assert "mean angle: random update (null)" in render_markdown(back)
    d.pop("null_update")
    old = RotationComparison.from_dict(d)
    assert old.null is None and old.null_summary() == "" and "Random-update" not in render_markdown(old)
