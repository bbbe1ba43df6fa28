"""Compare the instruction scores of a pre-trained and an instruction-tuned run.

Source: Wu et al., NAACL 2024, Sec. 4.1 (Tables 1 and 2): instruction importance of the
tuned model vs the pre-trained one (Welch's one-sided t-test, H1: base < tuned), and of
followed vs unfollowed responses (H1: unfollowed < followed, rating 1 = unfollowed,
2-4 = followed). Beyond the paper: Hedges' g effect sizes, a paired Wilcoxon signed-rank
test (both models answer the same prompts), and a position profile of the density.

Excluded from every statistic by default: responses shorter than the minimum length
(``short_response``) and records without instruction tokens (score NaN). Counts of the
excluded records are reported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tuneshift.errors import InputFileError
from tuneshift.runs.store import Run, atomic_write_bytes, atomic_write_json, load_run
from tuneshift.stats.tests import SampleStats, hedges_g, welch_t, wilcoxon_paired

OVERALL = "overall"
N_POSITION_BINS = 10


@dataclass
class ModelContrast:
    """Base vs tuned instruction scores in one group.

    Attributes:
        group: group name or ``overall``.
        base, tuned: :class:`SampleStats` of the scores (std with ddof = 0).
        t, p: Welch's t-test, one-sided, H1: base < tuned.
        hedges_g: effect size of tuned relative to base (> 0: tuned higher).
        n_pairs: prompts valid in both runs.
        wilcoxon, wilcoxon_p: paired signed-rank test, H1: base < tuned.
    """

    group: str
    base: SampleStats
    tuned: SampleStats
    t: float
    p: float
    hedges_g: float
    n_pairs: int
    wilcoxon: float
    wilcoxon_p: float


@dataclass
class FollowContrast:
    """Followed (rating >= 2) vs unfollowed (rating 1) scores of one model in one group.

    ``t, p``: Welch's t-test, one-sided, H1: unfollowed < followed.
    """

    model: str
    group: str
    followed: SampleStats
    unfollowed: SampleStats
    t: float
    p: float
    hedges_g: float


@dataclass
class PositionProfile:
    """Mean importance density by relative position in the prompt.

    A prompt token at index n of N falls in bin ``floor(10 * (n + 0.5) / N)``; each
    record's bin means are averaged over records (every prompt weighs the same).

    Attributes:
        bin_edges: ``[11]`` relative positions 0.0 .. 1.0.
        base, tuned: ``[10]`` mean density per bin (NaN for an empty bin).
        n_records: records contributing, per model.
    """

    bin_edges: list[float]
    base: list[float]
    tuned: list[float]
    n_records: dict[str, int]


@dataclass
class RunComparison:
    """Everything ``tuneshift compare`` reports; JSON round-trip with :meth:`to_dict`/:meth:`from_dict`."""

    base_model: str
    tuned_model: str
    base_run: str
    tuned_run: str
    same_dataset: bool
    contrasts: list[ModelContrast]
    followed: list[FollowContrast]
    position: PositionProfile
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict; NaN (undefined statistics) becomes ``None`` (JSON ``null``)."""
        return _nan_to_none(json.loads(json.dumps(asdict(self), default=float)))

    @classmethod
    def from_dict(cls, d: dict) -> "RunComparison":
        return cls(
            base_model=d["base_model"], tuned_model=d["tuned_model"], base_run=d["base_run"], tuned_run=d["tuned_run"],
            same_dataset=d["same_dataset"],
            contrasts=[ModelContrast(**{**c, "base": SampleStats(**c["base"]), "tuned": SampleStats(**c["tuned"])}) for c in d["contrasts"]],
            followed=[FollowContrast(**{**c, "followed": SampleStats(**c["followed"]), "unfollowed": SampleStats(**c["unfollowed"])}) for c in d["followed"]],
            position=PositionProfile(**d["position"]),
            excluded=d.get("excluded", {}),
            warnings=d.get("warnings", []),
        )

    def save(self, out_dir) -> dict[str, Path]:
        """Write ``comparison.json`` and ``comparison.md`` into ``out_dir`` (atomically)."""
        from tuneshift.reports.compare_report import comparison_markdown

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputFileError(f"--out {out} is a file, not a directory")
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "comparison.json", "markdown": out / "comparison.md"}
        atomic_write_json(paths["json"], self.to_dict())
        atomic_write_bytes(paths["markdown"], comparison_markdown(self).encode())
        return paths


def _nan_to_none(x):
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def _valid(run: Run, include_short: bool) -> tuple[dict, dict[str, int]]:
    keep, excl = {}, {"short_response": 0, "no_instruction": 0}
    for a in run.attributions:
        if a.short_response and not include_short:
            excl["short_response"] += 1
        elif not np.isfinite(a.instruction_score):
            excl["no_instruction"] += 1
        else:
            keep[a.record_id] = a
    return keep, excl


def position_means(density: np.ndarray, n_bins: int = N_POSITION_BINS) -> np.ndarray:
    """Mean density per relative-position bin for one prompt: ``[N] -> [n_bins]`` (NaN if empty)."""
    d = np.asarray(density, dtype=np.float64)
    if d.size == 0:
        return np.full(n_bins, np.nan)
    idx = np.minimum((n_bins * (np.arange(d.size) + 0.5) / d.size).astype(int), n_bins - 1)
    sums = np.bincount(idx, weights=d, minlength=n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    return np.divide(sums, counts, out=np.full(n_bins, np.nan), where=counts > 0)


def _profile(atts) -> list[float]:
    if not atts:
        return [float("nan")] * N_POSITION_BINS
    m = np.vstack([position_means(a.density) for a in atts])
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [float(x) for x in np.nanmean(m, axis=0)]


def _method_label(m: dict) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in sorted((m.get("options") or {}).items()))
    return f"{m.get('name')}/{m.get('target')}" + (f" ({opts})" if opts else "")


def compare_runs(base, tuned, include_short: bool = False) -> RunComparison:
    """Compare two runs (paths or :class:`Run`) over the same prompts.

    Args:
        base: the pre-trained model's run.
        tuned: the instruction-tuned model's run.
        include_short: keep responses shorter than the minimum length.

    Returns:
        A :class:`RunComparison` with per-group and overall contrasts, followed-vs-unfollowed
        contrasts when ratings exist, and the position profile.

    Raises:
        InputFileError: unreadable runs, runs that share no record id, runs made from different
            prompt files, or runs made with different attribution methods, targets or method
            options (runs that predate the method registry count as gradient_x_input/probability).
    """
    b = base if isinstance(base, Run) else load_run(base)
    t = tuned if isinstance(tuned, Run) else load_run(tuned)
    bv, bex = _valid(b, include_short)
    tv, tex = _valid(t, include_short)
    all_ids_b = {a.record_id for a in b.attributions}
    all_ids_t = {a.record_id for a in t.attributions}
    if not all_ids_b & all_ids_t:
        raise InputFileError(f"runs {b.path} and {t.path} share no record id; compare runs over the same prompts")
    ds_b = b.manifest.get("identity", {}).get("dataset", {}).get("sha256")
    ds_t = t.manifest.get("identity", {}).get("dataset", {}).get("sha256")
    if ds_b and ds_t and ds_b != ds_t:
        raise InputFileError(
            f"runs {b.path} and {t.path} were made from different prompt files (sha256 {ds_b[:12]} vs {ds_t[:12]}); "
            "records with the same id may be different prompts: compare runs over the same prompt file"
        )
    if b.method != t.method:
        mb, mt = b.method, t.method
        raise InputFileError(
            f"runs {b.path} and {t.path} were made with different attribution methods "
            f"({_method_label(mb)} vs {_method_label(mt)}); their scores do not measure the same thing: "
            "attribute both models with the same --method, --target and --method-option"
        )
    notes = [f"run {r.path} is not complete (status {r.manifest.get('status', '?')}); statistics cover its finished records only"
             for r in (b, t) if r.manifest.get("status") != "complete"]
    groups = sorted({a.group for a in bv.values()} | {a.group for a in tv.values()})
    contrasts = []
    for g in groups + [OVERALL]:
        in_g = (lambda a: True) if g == OVERALL else (lambda a, g=g: a.group == g)
        xs = [a.instruction_score for a in bv.values() if in_g(a)]
        ys = [a.instruction_score for a in tv.values() if in_g(a)]
        common = sorted(i for i in set(bv) & set(tv) if in_g(bv[i]))
        tt, pp = welch_t(xs, ys, "less")
        w, wp = wilcoxon_paired([bv[i].instruction_score for i in common], [tv[i].instruction_score for i in common], "less")
        contrasts.append(ModelContrast(g, SampleStats.of(xs), SampleStats.of(ys), tt, pp, hedges_g(xs, ys), len(common), w, wp))
    followed = []
    for label, valid in (("base", bv), ("tuned", tv)):
        if not any(a.rating is not None for a in valid.values()):
            continue
        for g in sorted({a.group for a in valid.values()}) + [OVERALL]:
            sel = [a for a in valid.values() if a.rating is not None and a.rating >= 1 and (g == OVERALL or a.group == g)]
            fol = [a.instruction_score for a in sel if a.rating >= 2]
            unf = [a.instruction_score for a in sel if a.rating == 1]
            tt, pp = welch_t(unf, fol, "less")
            followed.append(FollowContrast(label, g, SampleStats.of(fol), SampleStats.of(unf), tt, pp, hedges_g(unf, fol)))
    position = PositionProfile(
        bin_edges=[i / N_POSITION_BINS for i in range(N_POSITION_BINS + 1)],
        base=_profile(list(bv.values())), tuned=_profile(list(tv.values())),
        n_records={"base": len(bv), "tuned": len(tv)},
    )
    return RunComparison(
        base_model=b.model_name, tuned_model=t.model_name, base_run=str(b.path), tuned_run=str(t.path),
        same_dataset=bool(ds_b and ds_b == ds_t), contrasts=contrasts, followed=followed, position=position,
        excluded={"base": bex, "tuned": tex}, warnings=notes,
    )
