"""Annotator-free measure of how much tuning rotated each layer's concept directions.

Beyond Wu et al. 2024 (whose feed-forward comparison goes through an LLM annotator), this
compares the two models' top-R principal-component subspaces directly, per layer:

* **principal angles** between the subspaces spanned by the base and the tuned components
  (``scipy.linalg.subspace_angles``; radians in ``[0, pi/2]``; 0 = a shared direction,
  ``pi/2`` = orthogonal); reported as min, mean and max;
* **overlap** = mean of ``cos^2`` of the principal angles = ``||Q_b^T Q_t||_F^2 / min(R_b, R_t)``
  (1 = identical subspaces, 0 = orthogonal; the expected value for random subspaces is about
  ``max(R_b, R_t) / d_model``);
* **close matches**: the number (and share) of base components ``b`` with a tuned component
  ``t`` such that ``|cos(b, t)| >= threshold`` (default 0.9; absolute because a component's
  sign is arbitrary), and the mean over base components of the best ``|cos|``.

Caveat: when ``R = d_model`` both subspaces are the whole residual space and the angles are
all 0 by construction; the close-match count stays informative. It requires the same
``d_model`` in both models (a tuned model of the same base always has it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneshift.errors import InputFileError, OptionError, TuneshiftError

__all__ = ["DEFAULT_MATCH_THRESHOLD", "LayerRotation", "RotationComparison", "subspace_rotation", "compare_rotation"]

DEFAULT_MATCH_THRESHOLD = 0.9


@dataclass
class LayerRotation:
    """Rotation measures of one layer (see the module docstring).

    Attributes:
        layer: layer index. rank_base, rank_tuned: components compared. d_model: width.
        angles: principal angles in radians, descending (``min(rank_base, rank_tuned)`` values).
        overlap: mean ``cos^2`` of the angles. n_matched: base components with a close match.
        share_matched: ``n_matched / rank_base``. mean_best_cos: mean best ``|cos|`` per base component.
        threshold: the ``|cos|`` threshold used.
    """

    layer: int
    rank_base: int
    rank_tuned: int
    d_model: int
    angles: np.ndarray
    overlap: float
    n_matched: int
    share_matched: float
    mean_best_cos: float
    threshold: float

    def to_dict(self) -> dict:
        """JSON-ready summary (angles as min/mean/max in degrees and radians)."""
        a = self.angles
        return {"layer": self.layer, "rank_base": self.rank_base, "rank_tuned": self.rank_tuned, "d_model": self.d_model,
                "angle_min": float(a.min()), "angle_mean": float(a.mean()), "angle_max": float(a.max()),
                "angle_mean_degrees": float(np.degrees(a.mean())), "overlap": self.overlap,
                "n_matched": self.n_matched, "share_matched": self.share_matched,
                "mean_best_cos": self.mean_best_cos, "threshold": self.threshold}


def subspace_rotation(base: np.ndarray, tuned: np.ndarray, threshold: float = DEFAULT_MATCH_THRESHOLD,
                      layer: int = 0) -> LayerRotation:
    """Principal angles, overlap and close matches between two sets of component vectors.

    Args:
        base: ``[R_b, d_model]`` base components (rows; need not be exactly orthonormal,
            e.g. read back as float32). tuned: ``[R_t, d_model]``.
        threshold: ``|cos|`` at or above which a base component has a close match, in (0, 1].
        layer: recorded in the result.

    Returns:
        :class:`LayerRotation`.

    Raises:
        TuneshiftError: different ``d_model`` (clear message), empty inputs, a zero or
            non-finite vector, or a threshold outside (0, 1].
    """
    from scipy.linalg import subspace_angles

    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(tuned, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] == 0 or b.shape[0] == 0:
        raise TuneshiftError(f"need non-empty [R, d_model] component matrices, got {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise TuneshiftError(
            f"the models have different d_model ({a.shape[1]} vs {b.shape[1]}); the rotation measure compares "
            "directions in the same residual space, so it needs a base model and a tuned version of it")
    if not (0 < threshold <= 1):
        raise OptionError("threshold", f"must be in (0, 1], got {threshold}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise TuneshiftError("component vectors have NaN or infinite values")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if (na == 0).any() or (nb == 0).any():
        raise TuneshiftError("a component vector is zero")
    angles = np.clip(subspace_angles(a.T, b.T), 0.0, np.pi / 2)
    cos = np.abs((a / na[:, None]) @ (b / nb[:, None]).T)
    best = cos.max(axis=1)
    n_matched = int((best >= threshold).sum())
    return LayerRotation(int(layer), a.shape[0], b.shape[0], a.shape[1], angles, float(np.mean(np.cos(angles) ** 2)),
                         n_matched, n_matched / a.shape[0], float(best.mean()), float(threshold))


@dataclass
class RotationComparison:
    """Per-layer rotation between two concepts runs.

    Attributes:
        base, tuned: model specs. layers: one :class:`LayerRotation` per common layer.
        skipped_layers: layers present in only one run.
        table5: when both runs are annotated, the shares per task / level with Welch's t-test
            (:func:`~tuneshift.methods.concepts.shares.compare_shares`), else None.
        groups_base, groups_tuned: per-layer-group shares (:func:`~tuneshift.methods.concepts.shares.group_shares`).
    """

    base: str
    tuned: str
    layers: list[LayerRotation]
    skipped_layers: list[int] = field(default_factory=list)
    table5: list[dict] | None = None
    groups_base: list[dict] | None = None
    groups_tuned: list[dict] | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        d = {"base": self.base, "tuned": self.tuned, "rotation": [l.to_dict() for l in self.layers],
             "skipped_layers": self.skipped_layers}
        if self.table5 is not None:
            d.update(table5=self.table5, groups_base=self.groups_base, groups_tuned=self.groups_tuned)
        return d

    def to_markdown(self) -> str:
        """A Markdown table, one row per layer."""
        thr = self.layers[0].threshold if self.layers else DEFAULT_MATCH_THRESHOLD
        lines = [f"# Concept rotation: {self.base} -> {self.tuned}", "",
                 "Principal angles between the layers' top-R component subspaces (degrees), overlap "
                 f"(mean cos^2), and base components with a close match (|cos| >= {thr:g}) in the tuned model.", "",
                 "| layer | R base | R tuned | mean angle | max angle | overlap | matched | share | mean best abs(cos) |",
                 "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for l in self.layers:
            d = l.to_dict()
            lines.append(f"| {l.layer} | {l.rank_base} | {l.rank_tuned} | {d['angle_mean_degrees']:.1f} | "
                         f"{np.degrees(d['angle_max']):.1f} | {l.overlap:.3f} | {l.n_matched} | {l.share_matched:.3f} | "
                         f"{l.mean_best_cos:.3f} |")
        if self.skipped_layers:
            lines += ["", f"Layers in only one run (skipped): {', '.join(map(str, self.skipped_layers))}"]
        if self.table5 is not None:
            def f(x):
                return "-" if x is None else f"{x:.3f}"
            lines += ["", "## Shares of explainable concepts (annotator; mean ± std over runs, Welch t-test)", "",
                      "| category | base | tuned | t | p |", "|---|---:|---:|---:|---:|"]
            for r in self.table5:
                lines.append(f"| {r['category']} | {f(r['base_mean'])} ± {f(r['base_std'])} | "
                             f"{f(r['tuned_mean'])} ± {f(r['tuned_std'])} | {f(r['t'])} | {f(r['p'])} |")
        return "\n".join(lines) + "\n"

    def save(self, out_dir) -> dict:
        """Write ``concepts_rotation.json`` and ``.md`` into ``out_dir`` (created); returns the paths.

        Raises:
            InputFileError: ``out_dir`` is a file.
        """
        from tuneshift.files import atomic_write_bytes, atomic_write_json

        d = Path(out_dir)
        if d.exists() and not d.is_dir():
            raise InputFileError(f"output directory {d} is a file, not a directory")
        d.mkdir(parents=True, exist_ok=True)
        paths = {"json": d / "concepts_rotation.json", "markdown": d / "concepts_rotation.md"}
        atomic_write_json(paths["json"], json.loads(json.dumps(self.to_dict())))
        atomic_write_bytes(paths["markdown"], self.to_markdown().encode())
        if self.table5 is not None:
            import csv
            import io

            from tuneshift.methods.concepts.shares import plot_groups

            paths["plot"] = plot_groups(self.groups_base, self.groups_tuned, d / "concepts_groups.png",
                                        f"{self.base} (dashed) vs {self.tuned} (solid)")
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(["model", "group", "layers", "category", "share"])
            for who, rows in (("base", self.groups_base), ("tuned", self.groups_tuned)):
                for r in rows:
                    w.writerow([who, r["group"], r["layers"], r["category"], "" if r["share"] is None else r["share"]])
            paths["groups"] = d / "concepts_groups.csv"
            atomic_write_bytes(paths["groups"], buf.getvalue().encode())
        return paths


def compare_rotation(base, tuned, threshold: float = DEFAULT_MATCH_THRESHOLD, group_size: int = 4) -> RotationComparison:
    """Rotation measures for every layer present in both concepts runs (plus, when both runs
    have ``annotations.parquet``, the annotator shares and t-tests).

    Args:
        base, tuned: concepts run directories or :class:`~tuneshift.methods.concepts.store.ConceptsResult`.
        threshold: ``|cos|`` threshold of a close match.
        group_size: layers per group for the per-group shares.

    Raises:
        InputFileError: a directory is not a concepts run.
        TuneshiftError: different ``d_model``, or no layer in common.
    """
    from tuneshift.methods.concepts.store import ConceptsResult, load_concepts

    rb = base if isinstance(base, ConceptsResult) else load_concepts(base)
    rt = tuned if isinstance(tuned, ConceptsResult) else load_concepts(tuned)
    if rb.d_model is not None and rt.d_model is not None and rb.d_model != rt.d_model:
        raise TuneshiftError(
            f"the models have different d_model ({rb.d_model} vs {rt.d_model}); the rotation measure needs a base "
            "model and a tuned version of it")
    common = sorted(set(rb.layers) & set(rt.layers))
    if not common:
        raise TuneshiftError(f"{rb.path} and {rt.path} have no finished layer in common")
    rows = [subspace_rotation(rb.components(l), rt.components(l), threshold, layer=l) for l in common]
    skipped = sorted(set(rb.layers) ^ set(rt.layers))
    c = RotationComparison(rb.model_name, rt.model_name, rows, skipped)
    if (rb.path / "annotations.parquet").is_file() and (rt.path / "annotations.parquet").is_file():
        from tuneshift.methods.concepts.shares import compare_shares, group_shares, load_annotations

        ab, at = load_annotations(rb.path), load_annotations(rt.path)
        c.table5 = compare_shares(ab, at)
        c.groups_base, c.groups_tuned = group_shares(ab, group_size), group_shares(at, group_size)
    return c
