"""Compare the instruction scores of a pre-trained and an instruction-tuned run: any model pair.

Source: Wu et al., NAACL 2024, Sec. 4.1 (Tables 1 and 2): instruction importance of the
tuned model vs the pre-trained one (Welch's one-sided t-test, H1: base < tuned), and of
followed vs unfollowed responses (H1: unfollowed < followed, rating 1 = unfollowed,
2-4 = followed). Beyond the paper: Hedges' g effect sizes, a paired Wilcoxon signed-rank
test (both models answer the same prompts), and a position profile of the density.

This is the one comparison path: our own runs (``tuneshift compare``, ``tuneshift demo``) and
the paper's released data (``tuneshift paper-tables``, :mod:`tuneshift.stats.paper_tables`)
both go through :func:`score_run` and :func:`compare_scored`. Which model is which, and how
reports name them, is data (:class:`~tuneshift.models.pair.ModelPair`).

Scores: by default each record's stored density and score (computed with the run's own b, p,
L). With :class:`ScoreSettings` the records are re-scored from the stored raw matrices: our
runs through the whole post-processing (clip, scale per response token, discretise to L
levels, threshold b, L1/Lp density), the paper's imported runs (already discretised by the
authors, manifest ``rescale: false``) through the threshold only.

Excluded from every statistic by default: responses shorter than the minimum length
(``short_response``) and records without instruction tokens (score NaN). Counts of the
excluded records are reported. Statistics come from :mod:`tuneshift.stats.tests`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np

from tuneshift.errors import InputFileError, OptionError
from tuneshift.methods.attribution.importance import (
    ImportanceSettings,
    density_and_score,
    released_density_and_score,
)
from tuneshift.models.pair import ModelPair
from tuneshift.results import Result
from tuneshift.runs.store import Run, load_run
from tuneshift.stats.tests import SampleStats, hedges_g, welch_t, wilcoxon_paired

__all__ = [
    "OVERALL", "N_POSITION_BINS", "MIDDLE_BINS", "ScoreSettings", "ScoredRecord", "ModelContrast", "FollowContrast",
    "PositionProfile", "RunComparison", "score_rule", "score_run", "position_means", "model_contrasts",
    "follow_contrasts", "position_profile", "compare_scored", "compare_runs",
]

OVERALL = "overall"
N_POSITION_BINS = 10
#: position bins forming the "middle" of a prompt (relative positions 20%-80%).
MIDDLE_BINS = tuple(range(2, 8))


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class ScoreSettings:
    """Post-processing parameters for re-scoring runs; ``None`` keeps the run's own value.

    Attributes:
        threshold: b (values ``<= b`` after discretisation are zeroed).
        norm_p: p of the L1/Lp density (> 1).
        levels: L, discretisation levels (our runs; the paper's matrices are already discretised).
        min_response_tokens: responses shorter than this are ``short``.
    """

    threshold: float | None = None
    norm_p: float | None = None
    levels: int | None = None
    min_response_tokens: int | None = None

    def __post_init__(self):
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise OptionError("threshold", f"(b) must be a finite number, got {self.threshold}")
        if self.norm_p is not None and not (1 < self.norm_p < math.inf):
            raise OptionError("norm_p", f"(p) must be a finite number > 1 (the density is L1 / Lp), got {self.norm_p}")
        if self.levels is not None and self.levels < 1:
            raise OptionError("levels", f"(L) must be at least 1, got {self.levels}")
        if self.min_response_tokens is not None and self.min_response_tokens < 0:
            raise OptionError("min_response_tokens", f"must be >= 0, got {self.min_response_tokens}")

    @property
    def as_stored(self) -> bool:
        """True when nothing is overridden (stored scores are used)."""
        return all(v is None for v in (self.threshold, self.norm_p, self.levels, self.min_response_tokens))


@dataclass
class ScoredRecord:
    """One record of a run, scored.

    Attributes:
        id, group, rating: from the run (rating None when unrated).
        score: instruction score (NaN without instruction tokens).
        density: ``[n_prompt_tokens]`` importance density in [0, 1].
        short: the response is shorter than the minimum length.
        n_response: response tokens.
    """

    id: str
    group: str
    rating: int | None
    score: float
    density: np.ndarray
    short: bool
    n_response: int


def _stored_settings(run: Run) -> tuple[ImportanceSettings, bool]:
    """The run's own post-processing settings and whether its raw matrices get rescaled."""
    imp = run.manifest.get("identity", {}).get("options", {}).get("importance", {}) or {}
    d = ImportanceSettings()
    s = ImportanceSettings(levels=int(imp.get("levels", d.levels)), threshold=float(imp.get("threshold", d.threshold)),
                           norm_p=float(imp.get("norm_p", d.norm_p)),
                           min_response_tokens=int(imp.get("min_response_tokens", d.min_response_tokens)))
    return s, bool(imp.get("rescale", True))


def score_rule(run: Run) -> str:
    """``"sparsify"`` (our runs: the whole post-processing) or ``"released"`` (threshold only:
    the paper's imported matrices are already discretised, manifest ``rescale: false``)."""
    return "sparsify" if _stored_settings(run)[1] else "released"


def score_run(run: Run, settings: ScoreSettings | None = None) -> list[ScoredRecord]:
    """Score every attributed record of ``run``.

    Args:
        run: an attribution run (ours or the paper's imported one).
        settings: overrides of b, p, L and the minimum response length; None or all-None uses
            the stored densities and scores.

    Returns:
        One :class:`ScoredRecord` per attribution, in run order.
    """
    settings = settings or ScoreSettings()
    if settings.as_stored:
        return [ScoredRecord(a.record_id, a.group, a.rating, float(a.instruction_score), np.asarray(a.density),
                             bool(a.short_response), int(a.raw.shape[1])) for a in run.attributions]
    stored, rescale = _stored_settings(run)
    eff = ImportanceSettings(
        levels=stored.levels if settings.levels is None else int(settings.levels),
        threshold=stored.threshold if settings.threshold is None else float(settings.threshold),
        norm_p=stored.norm_p if settings.norm_p is None else float(settings.norm_p),
        min_response_tokens=stored.min_response_tokens if settings.min_response_tokens is None else int(settings.min_response_tokens),
    )
    out = []
    for a in run.attributions:
        if rescale:
            density, score = density_and_score(a.raw, a.instruction_mask, eff)
        else:
            density, score = released_density_and_score(a.raw, a.instruction_mask, eff.threshold, eff.norm_p)
        n = int(a.raw.shape[1])
        short = bool(a.short_response) if settings.min_response_tokens is None else n < eff.min_response_tokens
        out.append(ScoredRecord(a.record_id, a.group, a.rating, float(score), density, short, n))
    return out


# ----------------------------------------------------------------------------- results


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

    Attributes:
        model: ``base`` or ``tuned`` (which side of the pair).
        group: group name or ``overall``.
        followed, unfollowed: :class:`SampleStats`.
        t, p: Welch's t-test, one-sided, H1: unfollowed < followed.
        hedges_g: effect size of followed relative to unfollowed.
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
    """Mean importance density by relative position in the prompt, per model.

    A prompt token at index n of N falls in bin ``floor(10 * (n + 0.5) / N)``; each record's bin
    means are averaged over records (every prompt weighs the same).

    Attributes:
        bin_edges: ``[11]`` relative positions 0.0 .. 1.0.
        base, tuned: ``[10]`` mean density per bin (NaN for an empty bin).
        n_records: records contributing, ``{"base": n, "tuned": n}``.
        middle_to_ends: per side, mean of bins 2-7 (20-80%) / mean of bins 0 and 9 (< 1: the
            middle of the prompt gets less importance than its ends).
        middle_share: per side, mean over prompts of (mean of the prompt's bins 2-7 / mean of
            its 10 bins).
        wilcoxon, wilcoxon_p: paired signed-rank test of the per-prompt middle share,
            one-sided, H1: base < tuned (the pre-trained model loses the middle more).
        n_pairs: prompts with a finite middle share in both runs.
    """

    bin_edges: list[float]
    base: list[float]
    tuned: list[float]
    n_records: dict[str, int]
    middle_to_ends: dict[str, float] = field(default_factory=dict)
    middle_share: dict[str, float] = field(default_factory=dict)
    wilcoxon: float = float("nan")
    wilcoxon_p: float = float("nan")
    n_pairs: int = 0


@dataclass
class RunComparison(Result):
    """Everything ``tuneshift compare`` reports (``save`` writes ``comparison.json`` and ``.md``).

    Attributes:
        pair: the two models (names and labels).
        base_run, tuned_run: run directories.
        settings: re-scoring settings (all None: stored scores).
        same_dataset: both runs were made from the same prompt file.
        contrasts: base vs tuned per group and overall.
        followed: followed vs unfollowed per model and group (runs with ratings only).
        position: the position profile.
        excluded: ``{"base": {reason: n}, "tuned": {...}}``.
        warnings: notes on the inputs (incomplete runs...).
    """

    FILE: ClassVar[str] = "comparison.json"

    pair: ModelPair
    base_run: str
    tuned_run: str
    same_dataset: bool
    contrasts: list[ModelContrast]
    followed: list[FollowContrast]
    position: PositionProfile
    settings: ScoreSettings = field(default_factory=ScoreSettings)
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def base_model(self) -> str:
        """Name of the pre-trained model (str)."""
        return self.pair.base

    @property
    def tuned_model(self) -> str:
        """Name of the instruction-tuned model (str)."""
        return self.pair.tuned

    def contrast(self, group: str = OVERALL) -> ModelContrast | None:
        """The contrast of one group (None if absent)."""
        return next((c for c in self.contrasts if c.group == group), None)

    def markdown(self) -> str:
        """The comparison as a Markdown document."""
        from tuneshift.reports.compare_report import comparison_markdown

        return comparison_markdown(self)


# ----------------------------------------------------------------------------- statistics


def position_means(density: np.ndarray, n_bins: int = N_POSITION_BINS) -> np.ndarray:
    """Mean density per relative-position bin for one prompt: ``[N] -> [n_bins]`` (NaN if empty)."""
    d = np.asarray(density, dtype=np.float64)
    if d.size == 0:
        return np.full(n_bins, np.nan)
    idx = np.minimum((n_bins * (np.arange(d.size) + 0.5) / d.size).astype(int), n_bins - 1)
    sums = np.bincount(idx, weights=d, minlength=n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    return np.divide(sums, counts, out=np.full(n_bins, np.nan), where=counts > 0)


def _nanmean_rows(rows: list[np.ndarray]) -> np.ndarray:
    if not rows:
        return np.full(N_POSITION_BINS, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.vstack(rows), axis=0)


def _valid(recs: Sequence[ScoredRecord], include_short: bool) -> tuple[dict[str, ScoredRecord], dict[str, int]]:
    keep, excl = {}, {"short_response": 0, "no_instruction": 0}
    for r in recs:
        if r.short and not include_short:
            excl["short_response"] += 1
        elif not np.isfinite(r.score):
            excl["no_instruction"] += 1
        else:
            keep[r.id] = r
    return keep, excl


def model_contrasts(bv: dict[str, ScoredRecord], tv: dict[str, ScoredRecord],
                    groups: Sequence[str] | None = None) -> list[ModelContrast]:
    """Base vs tuned per group (default: every group present, then ``overall``).

    Args:
        bv, tv: valid scored records by id, base and tuned.
        groups: groups to report, in order (``overall`` = all records).
    """
    if groups is None:
        groups = sorted({r.group for r in bv.values()} | {r.group for r in tv.values()}) + [OVERALL]
    out = []
    for g in groups:
        def in_g(r, g=g):
            return g == OVERALL or r.group == g
        xs = [r.score for r in bv.values() if in_g(r)]
        ys = [r.score for r in tv.values() if in_g(r)]
        common = sorted(i for i in set(bv) & set(tv) if in_g(bv[i]))
        t, p = welch_t(xs, ys, "less")
        w, wp = wilcoxon_paired([bv[i].score for i in common], [tv[i].score for i in common], "less")
        out.append(ModelContrast(g, SampleStats.of(xs), SampleStats.of(ys), t, p, hedges_g(xs, ys), len(common), w, wp))
    return out


def follow_contrasts(valid: dict[str, ScoredRecord], side: str, groups: Sequence[str] | None = None) -> list[FollowContrast]:
    """Followed (rating 2-4) vs unfollowed (rating 1) of one side; [] when it has no ratings.

    Records unrated (rating None or <= 0) are left out.
    """
    if not any(r.rating is not None for r in valid.values()):
        return []
    if groups is None:
        groups = sorted({r.group for r in valid.values()}) + [OVERALL]
    out = []
    for g in groups:
        sel = [r for r in valid.values() if r.rating is not None and r.rating >= 1 and (g == OVERALL or r.group == g)]
        fol = [r.score for r in sel if r.rating >= 2]
        unf = [r.score for r in sel if r.rating == 1]
        t, p = welch_t(unf, fol, "less")
        out.append(FollowContrast(side, g, SampleStats.of(fol), SampleStats.of(unf), t, p, hedges_g(unf, fol)))
    return out


def position_profile(bv: dict[str, ScoredRecord], tv: dict[str, ScoredRecord]) -> PositionProfile:
    """The :class:`PositionProfile` of two sets of scored records (by id)."""
    bins = {"base": {i: position_means(r.density) for i, r in bv.items()},
            "tuned": {i: position_means(r.density) for i, r in tv.items()}}
    prof = {k: _nanmean_rows(list(v.values())) for k, v in bins.items()}
    mid, ends = list(MIDDLE_BINS), [0, N_POSITION_BINS - 1]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        m2e = {k: float(np.mean(prof[k][mid]) / np.mean(prof[k][ends])) for k in prof}
        share: dict[str, dict[str, float]] = {}
        for k, per in bins.items():
            vals = {}
            for i, b in per.items():
                tot = np.nanmean(b) if np.isfinite(b).any() else np.nan
                vals[i] = float(np.mean(b[mid]) / tot) if np.isfinite(tot) and tot > 0 else float("nan")
            share[k] = vals
        mshare = {k: float(np.nanmean(list(v.values()))) if v else float("nan") for k, v in share.items()}
    common = sorted(set(share["base"]) & set(share["tuned"]))
    a = np.array([share["base"][i] for i in common], dtype=np.float64)
    b = np.array([share["tuned"][i] for i in common], dtype=np.float64)
    w, wp = wilcoxon_paired(a, b, "less")
    return PositionProfile(
        bin_edges=[i / N_POSITION_BINS for i in range(N_POSITION_BINS + 1)],
        base=[float(x) for x in prof["base"]], tuned=[float(x) for x in prof["tuned"]],
        n_records={"base": len(bv), "tuned": len(tv)}, middle_to_ends=m2e, middle_share=mshare,
        wilcoxon=w, wilcoxon_p=wp, n_pairs=int((np.isfinite(a) & np.isfinite(b)).sum()),
    )


def compare_scored(base: Sequence[ScoredRecord], tuned: Sequence[ScoredRecord], include_short: bool = False,
                   groups: Sequence[str] | None = None) -> tuple[list[ModelContrast], list[FollowContrast],
                                                                  PositionProfile, dict[str, dict[str, int]]]:
    """The statistics of two scored runs.

    Args:
        base, tuned: scored records of each side.
        include_short: keep responses shorter than the minimum length.
        groups: groups to report (default: every group present, then ``overall``).

    Returns:
        ``(contrasts, followed, position, excluded)``.
    """
    bv, bex = _valid(base, include_short)
    tv, tex = _valid(tuned, include_short)
    followed = follow_contrasts(bv, "base", groups) + follow_contrasts(tv, "tuned", groups)
    return model_contrasts(bv, tv, groups), followed, position_profile(bv, tv), {"base": bex, "tuned": tex}


def _as_run(x) -> Run:
    return x if isinstance(x, Run) else load_run(x)


def _dataset_sha(run: Run) -> str | None:
    return run.manifest.get("identity", {}).get("dataset", {}).get("sha256")


def _method_label(m: dict) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in sorted((m.get("options") or {}).items()))
    return f"{m.get('name')}/{m.get('target')}" + (f" ({opts})" if opts else "")


def check_same_prompts(b: Run, t: Run) -> bool:
    """Refuse two runs that cannot be compared record by record.

    Returns:
        True when both manifests name the same prompt file (sha256).

    Raises:
        InputFileError: the runs share no record id, were made from different prompt files, or
            with different attribution methods, targets or method options (runs that predate
            the method registry count as gradient_x_input/probability).
    """
    if not {a.record_id for a in b.attributions} & {a.record_id for a in t.attributions}:
        raise InputFileError(f"runs {b.path} and {t.path} share no record id; compare runs over the same prompts")
    ds_b, ds_t = _dataset_sha(b), _dataset_sha(t)
    if ds_b and ds_t and ds_b != ds_t:
        raise InputFileError(
            f"runs {b.path} and {t.path} were made from different prompt files (sha256 {ds_b[:12]} vs {ds_t[:12]}); "
            "records with the same id may be different prompts: compare runs over the same prompt file"
        )
    if b.method != t.method:
        raise InputFileError(
            f"runs {b.path} and {t.path} were made with different attribution methods "
            f"({_method_label(b.method)} vs {_method_label(t.method)}); their scores do not measure the same thing: "
            "attribute both models with the same method, target and method options"
        )
    return bool(ds_b and ds_b == ds_t)


def compare_runs(base, tuned, pair: ModelPair | None = None, settings: ScoreSettings | None = None,
                 include_short: bool = False) -> RunComparison:
    """Compare two runs (paths or :class:`Run`) over the same prompts.

    Args:
        base: the pre-trained model's run.
        tuned: the instruction-tuned model's run.
        pair: names and labels (default: the runs' model names).
        settings: re-score with other b, p, L or minimum response length (default: stored scores).
        include_short: keep responses shorter than the minimum length.

    Returns:
        A :class:`RunComparison` with per-group and overall contrasts, followed-vs-unfollowed
        contrasts when ratings exist, and the position profile.

    Raises:
        InputFileError: unreadable runs, runs that share no record id, or runs made from
            different prompt files.
    """
    b, t = _as_run(base), _as_run(tuned)
    same = check_same_prompts(b, t)
    notes = [f"run {r.path} is not complete (status {r.manifest.get('status', '?')}); statistics cover its finished records only"
             for r in (b, t) if r.manifest.get("status") != "complete"]
    settings = settings or ScoreSettings()
    contrasts, followed, position, excluded = compare_scored(score_run(b, settings), score_run(t, settings), include_short)
    return RunComparison(
        pair=pair or ModelPair(b.model_name, t.model_name), base_run=str(b.path), tuned_run=str(t.path),
        same_dataset=same, contrasts=contrasts, followed=followed, position=position, settings=settings,
        excluded=excluded, warnings=notes,
    )
