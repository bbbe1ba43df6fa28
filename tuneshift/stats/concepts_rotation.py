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

With a null (``compare_rotation(..., null=DIR)``, ``tuneshift compare-concepts --null``): a
concepts run of the base plus a random update of the tuned model's per-tensor Frobenius norm
(:mod:`tuneshift.models.random_update`) is compared with the base the same way, per layer, so
that each tuned number has the number *any* update of that size gives beside it. The tuned model
rotates a layer more than the null when its mean principal angle is larger (and re-mixes its
components more when its matched share is lower).

When both runs are annotated, :func:`compare_rotation` adds the annotator shares and t-tests
of :mod:`tuneshift.stats.concepts_shares` (the paper's Table 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneshift.errors import InputFileError, OptionError, RunMismatchError, TuneshiftError
from tuneshift.results import Result
from tuneshift.stats.concepts_shares import GroupShare, ShareRow, SharesComparison
from tuneshift.stats.sample_rule import DEFAULT_MIN_N

__all__ = [
    "DEFAULT_MATCH_THRESHOLD",
    "LayerRotation",
    "RotationNull",
    "RotationComparison",
    "subspace_rotation",
    "compare_rotation",
]

DEFAULT_MATCH_THRESHOLD = 0.9


@dataclass
class LayerRotation:
    """Rotation measures of one layer (see the module docstring).

    Attributes:
        layer: layer index. rank_base, rank_tuned: components compared. d_model: width.
        angles: principal angles in radians, descending (``[min(rank_base, rank_tuned)]``).
        angle_min, angle_mean, angle_max: of ``angles``, radians; angle_mean_degrees: the mean
            in degrees (derived from ``angles``, not constructor arguments).
        overlap: mean ``cos^2`` of the angles, in [0, 1]. n_matched: base components with a
            close match. share_matched: ``n_matched / rank_base``. mean_best_cos: mean best
            ``|cos|`` per base component. threshold: the ``|cos|`` threshold used.
    """

    layer: int
    rank_base: int
    rank_tuned: int
    d_model: int
    angles: np.ndarray
    angle_min: float = field(init=False)
    angle_mean: float = field(init=False)
    angle_max: float = field(init=False)
    angle_mean_degrees: float = field(init=False)
    overlap: float
    n_matched: int
    share_matched: float
    mean_best_cos: float
    threshold: float

    def __post_init__(self):
        a = self.angles = np.asarray(self.angles, dtype=np.float64)
        self.angle_min, self.angle_mean, self.angle_max = float(a.min()), float(a.mean()), float(a.max())
        self.angle_mean_degrees = float(np.degrees(self.angle_mean))


def subspace_rotation(
    base: np.ndarray, tuned: np.ndarray, match_threshold: float = DEFAULT_MATCH_THRESHOLD, layer: int = 0
) -> LayerRotation:
    """Principal angles, overlap and close matches between two sets of component vectors.

    Args:
        base: ``[R_b, d_model]`` base components (rows; need not be exactly orthonormal,
            e.g. read back as float32). tuned: ``[R_t, d_model]``.
        match_threshold: ``|cos|`` at or above which a base component has a close match, in (0, 1].
        layer: recorded in the result.

    Returns:
        :class:`LayerRotation`.

    Raises:
        TuneshiftError: different ``d_model`` (clear message), empty inputs, a zero or
            non-finite vector, or a match_threshold outside (0, 1].
    """
    from scipy.linalg import subspace_angles

    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(tuned, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] == 0 or b.shape[0] == 0:
        raise TuneshiftError(f"need non-empty [R, d_model] component matrices, got {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise TuneshiftError(
            f"the models have different d_model ({a.shape[1]} vs {b.shape[1]}); the rotation measure compares "
            "directions in the same residual space, so it needs a base model and a tuned version of it"
        )
    if not (0 < match_threshold <= 1):
        raise OptionError("match_threshold", f"must be in (0, 1], got {match_threshold}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise TuneshiftError("component vectors have NaN or infinite values")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if (na == 0).any() or (nb == 0).any():
        raise TuneshiftError("a component vector is zero")
    angles = np.clip(subspace_angles(a.T, b.T), 0.0, np.pi / 2)
    cos = np.abs((a / na[:, None]) @ (b / nb[:, None]).T)
    best = cos.max(axis=1)
    n_matched = int((best >= match_threshold).sum())
    return LayerRotation(
        int(layer),
        a.shape[0],
        b.shape[0],
        a.shape[1],
        angles,
        overlap=float(np.mean(np.cos(angles) ** 2)),
        n_matched=n_matched,
        share_matched=n_matched / a.shape[0],
        mean_best_cos=float(best.mean()),
        threshold=float(match_threshold),
    )


_METHOD_KEYS = ("ffn_rows", "final_norm", "word_vectors", "centred")
"""Options two runs must share to be compared (rank, words and layers may differ)."""


def _method_settings(run) -> dict:
    ident = run.manifest.get("identity", {})
    opts = ident.get("options", {})
    return {
        "method version": ident.get("method", {}).get("version"),
        **{k: opts.get(k, "(not recorded: method version 1)") for k in _METHOD_KEYS},
    }


def _check_same_method(rb, rt) -> None:
    """Refuse two concepts runs made with another method version or reading (e.g. a version-1
    run, whose Gemma 2/3 and OLMo 2 components are not residual-stream directions, against a
    version-2 one, or ``final_norm`` fold against none).

    Raises:
        RunMismatchError: naming the first differing setting.
    """
    a, b = _method_settings(rb), _method_settings(rt)
    diffs = [f"{k}: {a[k]} vs {b[k]}" for k in a if a[k] != b[k]]
    if diffs:
        raise RunMismatchError(
            f"{rb.path} and {rt.path} were made with other concepts settings ({'; '.join(diffs)}); "
            "re-run `tuneshift concepts` for both with the same tuneshift version and options"
        )


@dataclass
class RotationNull:
    """The random-update null beside a rotation comparison: the base compared with base + R.

    Attributes:
        model: the null run's model (``random-update(BASE, like TUNED, seed S)``).
        seed: the random update's seed. path: the null run's directory.
        layers: one :class:`LayerRotation` per compared layer, base vs null.
    """

    model: str
    seed: int | None
    path: str
    layers: list[LayerRotation]


@dataclass
class RotationComparison(Result):
    """Per-layer rotation between two concepts runs (``to_dict``/``from_dict``/``save``/``load``; its
    Markdown: :func:`tuneshift.reports.concepts_report.rotation_markdown`).

    JSON (``concepts_rotation.json``): ``base``, ``tuned``, ``rotation`` (one :class:`LayerRotation`
    per layer, angles in radians), ``skipped_layers`` and, when both runs are annotated, the
    :class:`~tuneshift.stats.concepts_shares.SharesComparison` fields ``table5``, ``groups_base``
    and ``groups_tuned`` at the top level.

    Attributes:
        base, tuned: model specs. layers: one :class:`LayerRotation` per common layer.
        skipped_layers: layers present in only one run.
        shares: the annotator shares and t-tests when both runs are annotated, else None.
        null: the random-update null (:class:`RotationNull`, JSON ``null_update``), or None
            (comparisons saved before the null existed load with None).
    """

    FILE = "concepts_rotation.json"

    base: str
    tuned: str
    layers: list[LayerRotation]
    skipped_layers: list[int] = field(default_factory=list)
    shares: SharesComparison | None = None
    null: RotationNull | None = None

    def null_rows(self) -> list[tuple[LayerRotation, LayerRotation]]:
        """``(tuned row, null row)`` for the layers in both (empty without a null)."""
        if self.null is None:
            return []
        nl = {l.layer: l for l in self.null.layers}
        return [(l, nl[l.layer]) for l in self.layers if l.layer in nl]

    def null_summary(self) -> str:
        """One line: in how many layers the tuned model rotates more than the null (larger mean
        principal angle) and re-mixes more (lower matched share); "" without a null."""
        if self.null is None:
            return ""
        rows = self.null_rows()
        k = sum(t.angle_mean > z.angle_mean for t, z in rows)
        m = sum(t.share_matched < z.share_matched for t, z in rows)
        return (
            f"tuned changes more than a random update of the same size in {k} of {len(rows)} layers by mean "
            f"principal angle, and keeps fewer matched components in {m} of {len(rows)}"
        )

    @property
    def table5(self) -> list[ShareRow] | None:
        """Table 5 rows (None without annotations)."""
        return self.shares.table5 if self.shares is not None else None

    @property
    def groups_base(self) -> list[GroupShare] | None:
        """Per-group shares of the base model (None without annotations)."""
        return self.shares.groups_base if self.shares is not None else None

    @property
    def groups_tuned(self) -> list[GroupShare] | None:
        """Per-group shares of the tuned model (None without annotations)."""
        return self.shares.groups_tuned if self.shares is not None else None

    def to_dict(self) -> dict:
        """JSON-ready dict in the layout of the class docstring (NaN -> ``None``)."""
        d = super().to_dict()
        out = {"base": d["base"], "tuned": d["tuned"], "rotation": d["layers"], "skipped_layers": d["skipped_layers"]}
        if d["shares"] is not None:
            out.update({k: d["shares"][k] for k in ("table5", "groups_base", "groups_tuned")})
        if d["null"] is not None:
            out["null_update"] = {
                **{k: d["null"][k] for k in ("model", "seed", "path")},
                "rotation": d["null"]["layers"],
            }
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "RotationComparison":
        """Inverse of :meth:`to_dict`.

        Raises:
            InputFileError: ``d`` does not have the fields of this result.
        """
        d = dict(d)
        if "rotation" in d:
            d["layers"] = d.pop("rotation")
        if d.get("null_update") is not None:
            z = dict(d.pop("null_update"))
            z["layers"] = z.pop("rotation", [])
            d["null"] = z
        d.pop("null_update", None)
        if d.get("table5") is not None:
            d["shares"] = {
                "base": d.get("base"),
                "tuned": d.get("tuned"),
                "table5": d.pop("table5"),
                "groups_base": d.pop("groups_base", None) or [],
                "groups_tuned": d.pop("groups_tuned", None) or [],
            }
        return super().from_dict(d)

    def save(self, out_dir) -> dict[str, Path]:
        """Write ``concepts_rotation.json`` into ``out_dir`` (created), and with annotations also
        ``concepts_groups.png`` and ``.csv``
        (:meth:`~tuneshift.stats.concepts_shares.SharesComparison.save_figures`); the Markdown
        twin is written by :func:`tuneshift.reports.markdown.save_with_markdown`.

        Returns:
            ``{"json"[, "plot", "groups"]}`` paths.

        Raises:
            InputFileError: ``out_dir`` is a file.
        """
        paths = super().save(out_dir)
        if self.shares is not None:
            paths.update(self.shares.save_figures(out_dir))
        return paths


def compare_rotation(
    base,
    tuned,
    match_threshold: float = DEFAULT_MATCH_THRESHOLD,
    group_size: int = 4,
    null=None,
    min_n: int = DEFAULT_MIN_N,
) -> RotationComparison:
    """Rotation measures for every layer present in both concepts runs (plus, when both runs
    have ``annotations.parquet``, the annotator shares and t-tests as ``shares``).

    Args:
        base, tuned: concepts run directories or :class:`~tuneshift.storage.concepts.ConceptsResult`.
        match_threshold: ``|cos|`` threshold of a close match.
        group_size: layers per group for the per-group shares.
        null: optional concepts run of the base + a random update like the tuned model
            (``tuneshift concepts --random-update-like``), made with the base run's settings;
            adds :attr:`RotationComparison.null` (base vs null per compared layer).
        min_n: the sample rule for Table 5's t-tests (:func:`~tuneshift.stats.concepts_shares.compare_shares`).

    Raises:
        InputFileError: a directory is not a concepts run, or the same directory is given twice.
        RunMismatchError: the runs were made with another method version or ``final_norm``; a
            ``null`` that is not a random update of the base's model like the tuned one, or made
            with other settings.
        OptionError: ``match_threshold`` outside (0, 1], ``group_size`` < 1 (with annotations).
        TuneshiftError: different ``d_model``, or no layer in common.
    """
    from tuneshift.storage.concepts import ConceptsResult, load_concepts

    rb = base if isinstance(base, ConceptsResult) else load_concepts(base)
    rt = tuned if isinstance(tuned, ConceptsResult) else load_concepts(tuned)
    if Path(rb.path).resolve() == Path(rt.path).resolve():
        raise InputFileError(
            f"{rb.path} is given as both concepts runs; compare the base model's run with the tuned model's"
        )
    _check_same_method(rb, rt)
    rz = None
    if null is not None:
        from tuneshift.stats.null_runs import check_null_run

        rz = null if isinstance(null, ConceptsResult) else load_concepts(null)
        check_null_run(rb, rt, rz, "concepts")
    if rb.d_model is not None and rt.d_model is not None and rb.d_model != rt.d_model:
        raise TuneshiftError(
            f"the models have different d_model ({rb.d_model} vs {rt.d_model}); the rotation measure needs a base "
            "model and a tuned version of it"
        )
    common = sorted(set(rb.layers) & set(rt.layers))
    if not common:
        raise TuneshiftError(f"{rb.path} and {rt.path} have no finished layer in common")
    rows = [subspace_rotation(rb.components(l), rt.components(l), match_threshold, layer=l) for l in common]
    skipped = sorted(set(rb.layers) ^ set(rt.layers))
    c = RotationComparison(rb.model_name, rt.model_name, rows, skipped)
    if rz is not None:
        from tuneshift.stats.null_runs import null_seed

        zl = [l for l in common if l in set(rz.layers)]
        if not zl:
            raise TuneshiftError(f"the null run {rz.path} has none of the compared layers finished")
        c.null = RotationNull(
            rz.model_name,
            null_seed(rz),
            str(rz.path),
            [subspace_rotation(rb.components(l), rz.components(l), match_threshold, layer=l) for l in zl],
        )
    if (rb.path / "annotations.parquet").is_file() and (rt.path / "annotations.parquet").is_file():
        from tuneshift.stats.concepts_shares import compare_annotations

        c.shares = compare_annotations(rb.path, rt.path, group_size, rb.model_name, rt.model_name, min_n)
    return c
