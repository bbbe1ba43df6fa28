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

Nothing is claimed beyond the sample: every CI and p-value here passes the sample rule of
:mod:`tuneshift.stats.sample_rule` first (``min_n`` pairs, or ``min_n`` values in each group,
default 10, and not constant); below it the CI and p are NaN (JSON ``null``) and the row says why
(``reason``: ``"too few pairs (5)"``, ``"too few (3)"``, ``"no variance"``). The overall paired
difference of the instruction score is the pre-declared primary outcome (``role: primary``);
every other paired row is a control.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
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
from tuneshift.storage.attribution import Run, load_run
from tuneshift.stats.controls import (
    DroppedRecords,
    PairedContrast,
    RecordControls,
    copy_share,
    paired_by_group,
    positional_baseline,
    random_span_baseline,
)
from tuneshift.stats.sample_rule import DEFAULT_MIN_N, check_min_n, paired_reason, two_sample_reason
from tuneshift.stats.tests import SampleStats, hedges_g, welch_t, wilcoxon_paired

__all__ = [
    "OVERALL", "N_POSITION_BINS", "MIDDLE_BINS", "ScoreSettings", "ScoredRecord", "ModelContrast", "FollowContrast",
    "PositionProfile", "RunComparison", "score_rule", "score_run", "position_means", "model_contrasts",
    "follow_contrasts", "position_profile", "compare_scored", "compare_runs", "as_run", "checked_pair",
    "sensitivity_grid", "grid_size",
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
        max_response_tokens: score only the first k response tokens (the matrix's first k
            columns: what a generation limit of k would have given for greedy answers).
        sign: the sign policy of negative attributions, ``clip`` (the paper's), ``abs`` or
            ``signed`` (:mod:`tuneshift.methods.attribution.importance`). Runs imported from the
            paper's release admit ``clip`` only (their matrices were clipped by the authors).

    Raises:
        OptionError: a bad value, by the rules of
            :class:`~tuneshift.methods.attribution.importance.ImportanceSettings` (each value on
            its own: b must be finite here, and below the run's L once combined with it), or
            ``max_response_tokens`` < 1.
    """

    threshold: float | None = None
    norm_p: float | None = None
    levels: int | None = None
    min_response_tokens: int | None = None
    max_response_tokens: int | None = None
    sign: str | None = None

    def __post_init__(self):
        # the rules of b, p, L, the minimum length and the sign are ImportanceSettings'; the
        # settings these make with a run's own are checked whole there (effective_settings)
        ImportanceSettings.check_overrides(threshold=self.threshold, norm_p=self.norm_p, levels=self.levels,
                                           min_response_tokens=self.min_response_tokens)
        if self.max_response_tokens is not None and self.max_response_tokens < 1:
            raise OptionError("max_response_tokens", f"must be >= 1, got {self.max_response_tokens}")
        ImportanceSettings.check_overrides(sign=self.sign)

    def sign_of(self, protocol: dict | None) -> str:
        """The sign policy scores are computed with: this setting, else the run's (``protocol``
        from :func:`run_protocol`; runs made before the policy existed were clipped)."""
        if self.sign is not None:
            return self.sign
        return str(((protocol or {}).get("importance") or {}).get("sign", "clip"))

    @property
    def as_stored(self) -> bool:
        """True when nothing is overridden (stored scores are used)."""
        return all(v is None for v in (self.threshold, self.norm_p, self.levels, self.min_response_tokens,
                                       self.max_response_tokens, self.sign))


@dataclass
class ScoredRecord:
    """One record of a run, scored.

    Attributes:
        id, group, rating: from the run (rating None when unrated).
        score: instruction score (NaN without instruction tokens).
        density: ``[n_prompt_tokens]`` importance density in [0, 1].
        short: the response is shorter than the minimum length.
        n_response: response tokens (after ``max_response_tokens``).
        source: the :class:`~tuneshift.methods.attribution.result.Attribution` it was scored from.
    """

    id: str
    group: str
    rating: int | None
    score: float
    density: np.ndarray
    short: bool
    n_response: int
    source: object = field(default=None, repr=False)


def _stored_settings(run: Run) -> tuple[ImportanceSettings, bool]:
    """The run's own post-processing settings and whether its raw matrices get rescaled."""
    imp = run.manifest.get("identity", {}).get("options", {}).get("importance", {}) or {}
    d = ImportanceSettings.PAPER
    s = ImportanceSettings(levels=int(imp.get("levels", d.levels)), threshold=float(imp.get("threshold", d.threshold)),
                           norm_p=float(imp.get("norm_p", d.norm_p)),
                           min_response_tokens=int(imp.get("min_response_tokens", d.min_response_tokens)),
                           sign=str(imp.get("sign", "clip")))  # runs made before the sign policy: clipped
    return s, bool(imp.get("rescale", True))


def score_rule(run: Run) -> str:
    """``"sparsify"`` (our runs: the whole post-processing) or ``"released"`` (threshold only:
    the paper's imported matrices are already discretised, manifest ``rescale: false``)."""
    return "sparsify" if _stored_settings(run)[1] else "released"


def effective_settings(run: Run, settings: ScoreSettings | None = None) -> tuple[ImportanceSettings, bool]:
    """The b, p, L, minimum length and sign policy a run is scored with (its own, overridden by
    ``settings``), and whether its matrices get the whole post-processing (False: the paper's
    released ones).

    Raises:
        OptionError: a sign policy other than ``clip`` for the paper's released matrices (their
            negative attributions were clipped away by the authors before release); settings that
            are bad together (:class:`ImportanceSettings`: b outside ``[0, L)``).
    """
    settings = settings or ScoreSettings()
    stored, rescale = _stored_settings(run)
    eff = ImportanceSettings(
        levels=stored.levels if settings.levels is None else int(settings.levels),
        threshold=stored.threshold if settings.threshold is None else float(settings.threshold),
        norm_p=stored.norm_p if settings.norm_p is None else float(settings.norm_p),
        min_response_tokens=stored.min_response_tokens if settings.min_response_tokens is None else int(settings.min_response_tokens),
        sign=stored.sign if settings.sign is None else settings.sign,
    )
    if not rescale and eff.sign != "clip":
        raise OptionError("sign", f"{eff.sign} does not apply to {run.path}: the paper's released matrices were clipped "
                                  "at 0 and discretised by the authors, no negative attribution is left (use clip)")
    return eff, rescale


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
                             bool(a.short_response), int(a.raw.shape[1]), a) for a in run.attributions]
    eff, rescale = effective_settings(run, settings)
    out = []
    k = settings.max_response_tokens
    for a in run.attributions:
        raw = a.raw if k is None else a.raw[:, :k]
        density, score = score_matrix(raw, a.instruction_mask, eff, rescale)
        n = int(raw.shape[1])
        recheck = settings.min_response_tokens is not None or k is not None
        short = n < eff.min_response_tokens if recheck else bool(a.short_response)
        out.append(ScoredRecord(a.record_id, a.group, a.rating, float(score), density, short, n, a))
    return out


def score_matrix(raw: np.ndarray, mask: np.ndarray, settings: ImportanceSettings, rescale: bool = True):
    """Density ``[n_prompt_tokens]`` and instruction score of one raw matrix
    ``[n_prompt_tokens, n_response_tokens]``: the whole post-processing (``rescale``) or the
    threshold-only rule of the paper's released matrices."""
    if rescale:
        return density_and_score(raw, mask, settings)
    return released_density_and_score(raw, mask, settings.threshold, settings.norm_p)


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
        reason: why Welch's t and p are NaN (sample rule: ``"too few (3)"``, ``"no variance"``),
            None when computed. wilcoxon_reason: the same for the Wilcoxon test
            (``"too few pairs (5)"``).
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
    reason: str | None = None
    wilcoxon_reason: str | None = None


@dataclass
class FollowContrast:
    """Followed (rating >= 2) vs unfollowed (rating 1) scores of one model in one group.

    Attributes:
        model: ``base`` or ``tuned`` (which side of the pair).
        group: group name or ``overall``.
        followed, unfollowed: :class:`SampleStats`.
        t, p: Welch's t-test, one-sided, H1: unfollowed < followed.
        hedges_g: effect size of followed relative to unfollowed.
        reason: why t and p are NaN (sample rule), None when computed.
    """

    model: str
    group: str
    followed: SampleStats
    unfollowed: SampleStats
    t: float
    p: float
    hedges_g: float
    reason: str | None = None


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
            its 10 bins). Despite the field's name (kept for saved files) this is a **ratio of
            means, not a share**: 1 = the middle gets the prompt's average density per token,
            above 1 more (e.g. 1.095: 9.5% more than average), below 1 less; reports call it
            the "middle-to-average density ratio".
        wilcoxon, wilcoxon_p: paired signed-rank test of the per-prompt ratio, one-sided,
            H1: base < tuned (the pre-trained model loses the middle more).
        n_pairs: prompts with a finite ratio in both runs.
        reason: why the Wilcoxon test is NaN (sample rule), None when computed.
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
    reason: str | None = None


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
        warnings: notes on the inputs (incomplete runs, settings that differ under
            ``allow_mismatch``...).
        protocol: per side, the settings that must match (:func:`run_protocol`).
        paired: paired differences tuned - base, per control and group
            (:func:`tuneshift.stats.controls.paired_by_group`); the headline statistics.
        records: per record valid in both runs: scores and controls.
        dropped: records left out of the paired statistics, named, per side and reason.
        example_record: the record whose paired difference is the median (ties: the lower id),
            the rule for choosing the example a report shows.
        min_n: the sample rule's minimum (pairs, or values per group) the statistics were
            computed with (:mod:`tuneshift.stats.sample_rule`); saved, so a report re-renders
            the same rule.
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
    protocol: dict[str, dict] = field(default_factory=dict)
    paired: list[PairedContrast] = field(default_factory=list)
    records: list[RecordControls] = field(default_factory=list)
    dropped: DroppedRecords = field(default_factory=DroppedRecords)
    example_record: str | None = None
    min_n: int = DEFAULT_MIN_N

    @property
    def base_model(self) -> str:
        """Name of the pre-trained model (str)."""
        return self.pair.base

    @property
    def n_pairs(self) -> int:
        """Records valid in both runs, the pairs behind the paired statistics (int; 0: nothing
        was compared, e.g. every answer shorter than the minimum length)."""
        return len(self.records)

    def no_pairs_reason(self) -> str | None:
        """None when there are pairs; else one line on why none are left (the excluded counts
        per side and the way out), e.g. ``no record is valid in both runs, nothing was compared
        (base: 6 short responses; tuned: 6 short responses); --include-short keeps short
        responses``."""
        if self.records:
            return None
        words = {"short_response": "short responses", "no_instruction": "without instruction tokens"}
        sides = "; ".join(f"{side}: " + ", ".join(f"{n} {words.get(why, why)}" for why, n in ex.items() if n)
                          for side, ex in self.excluded.items() if any(ex.values()))
        short = any(n and why == "short_response" for ex in self.excluded.values() for why, n in ex.items())
        return ("no record is valid in both runs, nothing was compared" + (f" ({sides})" if sides else "")
                + ("; --include-short keeps short responses" if short else ""))

    @property
    def tuned_model(self) -> str:
        """Name of the instruction-tuned model (str)."""
        return self.pair.tuned

    def contrast(self, group: str = OVERALL) -> ModelContrast | None:
        """The contrast of one group (None if absent)."""
        return next((c for c in self.contrasts if c.group == group), None)


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
                    groups: Sequence[str] | None = None, min_n: int = DEFAULT_MIN_N) -> list[ModelContrast]:
    """Base vs tuned per group (default: every group present, then ``overall``).

    Args:
        bv, tv: valid scored records by id, base and tuned.
        groups: groups to report, in order (``overall`` = all records).
        min_n: the sample rule (:mod:`tuneshift.stats.sample_rule`): Welch's test needs
            ``min_n`` values on each side, the Wilcoxon test ``min_n`` pairs.

    Returns:
        One :class:`ModelContrast` per group.

    Raises:
        OptionError: a bad ``min_n``.
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
        why = two_sample_reason(xs, ys, min_n)
        t, p = welch_t(xs, ys, "less") if why is None else (float("nan"), float("nan"))
        pb, pt = [bv[i].score for i in common], [tv[i].score for i in common]
        wwhy = paired_reason(np.subtract(pt, pb), min_n)
        w, wp = wilcoxon_paired(pb, pt, "less") if wwhy is None else (float("nan"), float("nan"))
        out.append(ModelContrast(g, SampleStats.of(xs), SampleStats.of(ys), t, p, hedges_g(xs, ys), len(common), w, wp,
                                 why, wwhy))
    return out


def follow_contrasts(valid: dict[str, ScoredRecord], side: str, groups: Sequence[str] | None = None,
                     min_n: int = DEFAULT_MIN_N) -> list[FollowContrast]:
    """Followed (rating 2-4) vs unfollowed (rating 1) of one side; [] when it has no ratings.

    Records unrated (rating None or <= 0) are left out.

    Args:
        valid: valid scored records by id. side: ``base`` or ``tuned``.
        groups: groups to report (default: every group present, then ``overall``).
        min_n: the sample rule's minimum values per group (followed and unfollowed).

    Returns:
        One :class:`FollowContrast` per group (t and p NaN with a ``reason`` below the rule).
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
        why = two_sample_reason(unf, fol, min_n)
        t, p = welch_t(unf, fol, "less") if why is None else (float("nan"), float("nan"))
        out.append(FollowContrast(side, g, SampleStats.of(fol), SampleStats.of(unf), t, p, hedges_g(unf, fol), why))
    return out


def position_profile(bv: dict[str, ScoredRecord], tv: dict[str, ScoredRecord], signed: bool = False,
                     min_n: int = DEFAULT_MIN_N) -> PositionProfile:
    """The :class:`PositionProfile` of two sets of scored records (by id).

    With ``signed`` (densities of the ``signed`` sign policy, in [-1, 1]) the bin means are
    reported, but the middle-to-ends ratio, the middle-to-average ratio and its Wilcoxon test
    are NaN: a ratio of a mass that may be negative or near zero is not defined. The Wilcoxon
    test needs ``min_n`` prompts with a finite ratio on both sides (the sample rule).
    """
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
    ok = np.isfinite(a) & np.isfinite(b)
    why = paired_reason(b[ok] - a[ok], min_n)
    w, wp = wilcoxon_paired(a, b, "less") if why is None else (float("nan"), float("nan"))
    if signed:
        m2e = {k: float("nan") for k in m2e}
        mshare = {k: float("nan") for k in mshare}
        a, b, w, wp = a[:0], b[:0], float("nan"), float("nan")
    return PositionProfile(
        bin_edges=[i / N_POSITION_BINS for i in range(N_POSITION_BINS + 1)],
        base=[float(x) for x in prof["base"]], tuned=[float(x) for x in prof["tuned"]],
        n_records={"base": len(bv), "tuned": len(tv)}, middle_to_ends=m2e, middle_share=mshare,
        wilcoxon=w, wilcoxon_p=wp, n_pairs=int((np.isfinite(a) & np.isfinite(b)).sum()),
        reason=None if signed else why,
    )


def compare_scored(base: Sequence[ScoredRecord], tuned: Sequence[ScoredRecord], include_short: bool = False,
                   groups: Sequence[str] | None = None, min_n: int = DEFAULT_MIN_N
                   ) -> tuple[list[ModelContrast], list[FollowContrast], PositionProfile, dict[str, dict[str, int]]]:
    """The statistics of two scored runs.

    Args:
        base, tuned: scored records of each side.
        include_short: keep responses shorter than the minimum length.
        groups: groups to report (default: every group present, then ``overall``).
        min_n: the sample rule's minimum (:mod:`tuneshift.stats.sample_rule`).

    Returns:
        ``(contrasts, followed, position, excluded)``.

    Raises:
        OptionError: a bad ``min_n``.
    """
    bv, bex = _valid(base, include_short)
    tv, tex = _valid(tuned, include_short)
    return _statistics(bv, tv, groups, min_n=min_n) + ({"base": bex, "tuned": tex},)


def _statistics(bv: dict[str, ScoredRecord], tv: dict[str, ScoredRecord], groups: Sequence[str] | None = None,
                signed: bool = False, min_n: int = DEFAULT_MIN_N):
    """``(contrasts, followed, position)`` of the valid records of both sides (``signed``: see
    :func:`position_profile`; ``min_n``: the sample rule)."""
    min_n = check_min_n(min_n)
    followed = follow_contrasts(bv, "base", groups, min_n) + follow_contrasts(tv, "tuned", groups, min_n)
    return model_contrasts(bv, tv, groups, min_n), followed, position_profile(bv, tv, signed, min_n)


def as_run(x) -> Run:
    """A :class:`Run`, or the run directory ``x`` loaded (:func:`~tuneshift.storage.attribution.load_run`)."""
    return x if isinstance(x, Run) else load_run(x)


def checked_pair(base, tuned, allow_mismatch: bool = False,
                 settings: ScoreSettings | None = None) -> tuple[Run, Run, bool, list[str]]:
    """Load two runs and refuse a pair that cannot be compared record by record.

    ``settings`` (the re-scoring of :func:`compare_runs`): a post-processing value it sets for
    both runs (b, p, L, minimum length, sign policy) is not a difference between them.

    Returns:
        ``(base run, tuned run, same prompt file, notes)``; the notes name incomplete runs and,
        with ``allow_mismatch``, every protocol difference.

    Raises:
        InputFileError: the same run twice, runs that share no record id, other prompt files or
            methods (:func:`check_same_prompts`); ProtocolMismatchError: other protocols
            (:func:`protocol_mismatches`) without ``allow_mismatch``.
    """
    b, t = as_run(base), as_run(tuned)
    if Path(b.path).resolve() == Path(t.path).resolve():
        raise InputFileError(f"{b.path} is given as both runs; compare the base model's run with the tuned model's")
    same = check_same_prompts(b, t)
    notes = [f"run {r.path} is not complete (status {r.manifest.get('status', '?')}); statistics cover its finished records only"
             for r in (b, t) if r.manifest.get("status") != "complete"]
    diffs = protocol_mismatches(b, t, settings)
    if diffs and not allow_mismatch:
        raise ProtocolMismatchError(
            f"runs {b.path} and {t.path} were not made under the same protocol ({'; '.join(diffs)}); their scores "
            "are not comparable record by record: make both runs with the same settings, or allow the mismatch "
            "(--allow-mismatch; allow_mismatch=True in Python) to compare them anyway (with a warning)"
            + _template_hint(b, t))
    return b, t, same, notes + [f"the runs differ in {d}" for d in diffs]


def _template_hint(b: Run, t: Run) -> str:
    """A note when two runs' template files differ by hash: older runs hashed the raw file."""
    ct = [(r.manifest.get("identity", {}).get("options", {}) or {}).get("chat_template") for r in (b, t)]
    if all(isinstance(c, str) and c.startswith("file:sha256:") for c in ct) and ct[0] != ct[1]:
        return ("; note: template files are hashed after normalising line endings and trailing whitespace "
                "(docs/attribution.md); a run made by an earlier tuneshift from a file with a final newline "
                "(e.g. written by print(tokenizer.chat_template)) has another hash: re-run it with the file "
                "`tuneshift template MODEL` writes")
    return ""


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


#: identity options that must match for two runs to be compared (batch size may differ).
MATCHED_OPTIONS = ("responses", "chat_template", "join", "max_new_tokens", "importance", "span_rules")


#: ScoreSettings fields that override a run's stored importance setting of the same name.
_RESCORED = ("threshold", "norm_p", "levels", "min_response_tokens", "sign")


def run_protocol(run: Run, settings: ScoreSettings | None = None) -> dict:
    """What two compared runs must share: response protocol, template policy, join, generation
    limit, b/p/L and sign policy (``identity.options``), the attribution method, and the prompt
    form actually used (``template`` when any prompt was wrapped in a chat template, else
    ``raw``). The importance settings that ``settings`` re-scores both runs with are left out
    (they no longer differ); a run stored without a sign policy reads as ``clip`` (the default,
    and the only policy before the option existed)."""
    from tuneshift.methods.attribution.api import PROTOCOL_OF

    opts = run.manifest.get("identity", {}).get("options", {}) or {}
    out = {k: opts.get(k) for k in MATCHED_OPTIONS}
    if isinstance(out.get("importance"), dict):
        imp = {"sign": "clip", **out["importance"]}
        for k in _RESCORED:
            if settings is not None and getattr(settings, k) is not None:
                imp.pop(k, None)
        out["importance"] = imp
    used = any(a.n_input_tokens > len(a.prompt_positions) + 1 for a in run.attributions)
    out["prompt_form"] = "template" if used else "raw"
    if out["join"] is None and out["responses"] in ("given", "cross"):
        out["join"] = "none"  # runs made before the join was an option
    if out["responses"] == "generate" or used:
        out["join"] = "not used"  # no forced response, or the template's generation prompt joins
    if out["responses"] in ("given", "cross"):
        out["max_new_tokens"] = "not used"  # a forced response ignores the generation limit
    out["responses"] = PROTOCOL_OF.get(out["responses"], out["responses"])
    if out["responses"] == "cross":
        out["responses_from"] = (opts.get("responses_from") or {}).get("model")
    out["method"] = run.method
    return out


class ProtocolMismatchError(InputFileError):
    """Two runs compared were made under different protocols (``allow_mismatch`` compares them)."""


def protocol_mismatches(b: Run, t: Run, settings: ScoreSettings | None = None) -> list[str]:
    """Settings in which two runs differ (``key: base X, tuned Y``), from :func:`run_protocol`
    (``settings``: the re-scoring both runs get, whose values are not differences)."""
    pb, pt = run_protocol(b, settings), run_protocol(t, settings)
    # a cross run forced to the other run's own answers is its natural partner: same response tokens
    for x, y, other in ((pb, pt, t), (pt, pb, b)):
        if x["responses"] == "cross" and y["responses"] == "own" and x.get("responses_from") == \
                other.manifest.get("identity", {}).get("model"):
            for k in ("responses", "responses_from", "max_new_tokens", "join"):
                x.pop(k, None)
                y.pop(k, None)
    keys = [k for k in pb if k in pt] + [k for k in pt if k not in pb]
    return [f"{k}: base {pb.get(k)!r}, tuned {pt.get(k)!r}" for k in keys if pb.get(k) != pt.get(k)]


def record_controls(bv: dict[str, ScoredRecord], tv: dict[str, ScoredRecord], b: Run, t: Run,
                    settings: ScoreSettings) -> list[RecordControls]:
    """Scores and controls (:mod:`tuneshift.stats.controls`) of every record valid in both runs."""
    eb, rb = effective_settings(b, settings)
    et, rt = effective_settings(t, settings)
    prof = {"base": _nanmean_rows([position_means(r.density) for r in bv.values()]),
            "tuned": _nanmean_rows([position_means(r.density) for r in tv.values()])}
    out = []
    for i in sorted(set(bv) & set(tv)):
        x, y = bv[i], tv[i]
        ax, ay = x.source, y.source
        k = min(x.n_response, y.n_response)
        cx = score_matrix(ax.raw[:, :k], ax.instruction_mask, eb, rb)[1]
        cy = score_matrix(ay.raw[:, :k], ay.instruction_mask, et, rt)[1]
        m_x, m_y = int(np.asarray(ax.instruction_mask).sum()), int(np.asarray(ay.instruction_mask).sum())
        cut = settings.max_response_tokens  # the copy share of the scored response tokens
        out.append(RecordControls(
            id=i, group=x.group, base_score=x.score, tuned_score=y.score,
            base_n_response=x.n_response, tuned_n_response=y.n_response, common_length=k,
            base_common=float(cx), tuned_common=float(cy),
            base_copy_share=copy_share(ax.prompt_tokens, list(ax.response_tokens)[:cut]),
            tuned_copy_share=copy_share(ay.prompt_tokens, list(ay.response_tokens)[:cut]),
            base_random_span=random_span_baseline(x.density, m_x), tuned_random_span=random_span_baseline(y.density, m_y),
            base_positional=positional_baseline(ax.instruction_mask, prof["base"]),
            tuned_positional=positional_baseline(ay.instruction_mask, prof["tuned"]),
        ))
    return out


def _dropped(recs: Sequence[ScoredRecord], valid: dict[str, ScoredRecord], other: dict[str, ScoredRecord],
             skipped: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in recs:
        if r.id in valid:
            if r.id not in other:
                out.setdefault("not valid in the other run", []).append(r.id)
            continue
        why = "no instruction tokens" if not np.isfinite(r.score) else "short response"
        out.setdefault(why, []).append(r.id)
    if skipped:
        out["not attributed (skipped)"] = sorted(skipped)
    return out


def example_record(records: Sequence[RecordControls]) -> str | None:
    """The record whose paired difference is the median (ties and even counts: the lower one,
    then the lower id) -- the rule for the example a report shows."""
    rows = sorted((r.difference, r.id) for r in records if np.isfinite(r.difference))
    return rows[(len(rows) - 1) // 2][1] if rows else None


def compare_runs(base, tuned, pair: ModelPair | None = None, settings: ScoreSettings | None = None,
                 include_short: bool = False, allow_mismatch: bool = False, n_resamples: int = 9999,
                 min_n: int = DEFAULT_MIN_N) -> RunComparison:
    """Compare two runs (paths or :class:`Run`) over the same prompts.

    Args:
        base: the pre-trained model's run.
        tuned: the instruction-tuned model's run.
        pair: names and labels (default: the runs' model names).
        settings: re-score with other b, p, L or minimum response length (default: stored scores).
        include_short: keep responses shorter than the minimum length.
        allow_mismatch: compare runs that differ in response protocol, template policy or prompt
            form, join, generation limit, b/p/L (a warning names the differences) instead of
            refusing them.
        n_resamples: bootstrap resamples of the paired CIs.
        min_n: the sample rule (:mod:`tuneshift.stats.sample_rule`, default 10, at least 2): a
            paired row needs ``min_n`` pairs, a Welch test ``min_n`` values on each side, for a
            CI or a p-value; below it they are NaN and the row has a ``reason``.

    Returns:
        A :class:`RunComparison`: paired differences with CIs per control and group (the
        headline; the overall score row is the primary outcome), Welch's per-group contrasts
        (the paper's), followed-vs-unfollowed contrasts when ratings exist, the position
        profile, per-record controls and dropped records.

    Raises:
        OptionError: ``min_n`` below 2.
        InputFileError: unreadable runs, runs that share no record id, runs made from
            different prompt files or with different methods, or (without ``allow_mismatch``)
            runs made under different protocols.
    """
    settings = settings or ScoreSettings()
    min_n = check_min_n(min_n)
    b, t, same, notes = checked_pair(base, tuned, allow_mismatch, settings)
    sb, st = score_run(b, settings), score_run(t, settings)
    bv, bex = _valid(sb, include_short)
    tv, tex = _valid(st, include_short)
    signs = {effective_settings(r, settings)[0].sign for r in (b, t)}
    contrasts, followed, position = _statistics(bv, tv, signed="signed" in signs, min_n=min_n)
    if "signed" in signs:
        notes = list(notes) + ["sign policy signed: scores may be negative; the position profile's middle share and "
                               "middle-to-ends ratio are not defined for signed densities (NaN)"]
    excluded = {"base": bex, "tuned": tex}
    recs = record_controls(bv, tv, b, t, settings)
    dropped = DroppedRecords(_dropped(sb, bv, tv, b.skipped), _dropped(st, tv, bv, t.skipped))
    return RunComparison(
        pair=pair or ModelPair(b.model_name, t.model_name), base_run=str(b.path), tuned_run=str(t.path),
        same_dataset=same, contrasts=contrasts, followed=followed, position=position, settings=settings,
        excluded=excluded, warnings=notes, protocol={"base": run_protocol(b), "tuned": run_protocol(t)},
        paired=paired_by_group(recs, n_resamples=n_resamples, min_n=min_n), records=recs, dropped=dropped,
        example_record=example_record(recs), min_n=min_n,
    )


# ----------------------------------------------------------------------------- sensitivity


@dataclass
class SensitivityRow:
    """The paired score difference (tuned - base, overall) at one grid point.

    Attributes:
        threshold, norm_p, levels, min_response_tokens, max_response_tokens: the setting (None:
            the runs' own / no cut).
        paired: the :class:`~tuneshift.stats.controls.PairedContrast` of the score there.
        sign: the sign policy (None: the runs' own); a grid key, not in the default grid.
    """

    threshold: float | None
    norm_p: float | None
    levels: int | None
    min_response_tokens: int | None
    max_response_tokens: int | None
    paired: PairedContrast
    sign: str | None = None


@dataclass
class Sensitivity(Result):
    """The comparison over a grid of b, p, L, minimum and maximum response tokens.

    Attributes:
        pair: the two models. rows: one :class:`SensitivityRow` per grid point.
    """

    FILE: ClassVar[str] = "sensitivity.json"

    pair: ModelPair
    rows: list[SensitivityRow]

    def share_positive(self) -> float:
        """Share of grid points whose CI lies above 0 (tuned higher), NaN without rows."""
        ok = [r.paired for r in self.rows if np.isfinite(r.paired.ci_low)]
        return float(np.mean([c.ci_low > 0 for c in ok])) if ok else float("nan")

    def share_negative(self) -> float:
        """Share of grid points whose CI lies below 0 (base higher), NaN without rows."""
        ok = [r.paired for r in self.rows if np.isfinite(r.paired.ci_high)]
        return float(np.mean([c.ci_high < 0 for c in ok])) if ok else float("nan")


SENSITIVITY_GRID = {"threshold": (5, 7, 9), "norm_p": (2, 4, 8), "levels": (10, 20), "min_response_tokens": (1, 5),
                    "max_response_tokens": (8, 16, None)}


def _released(run_or_protocol) -> bool:
    """Whether a :class:`Run` or its protocol (:func:`run_protocol`, e.g. a comparison's
    ``protocol["base"]``) holds the paper's released matrices (manifest ``rescale: false``)."""
    if isinstance(run_or_protocol, dict):
        imp = run_or_protocol.get("importance")
        return isinstance(imp, dict) and not imp.get("rescale", True)
    return score_rule(as_run(run_or_protocol)) == "released"


def sensitivity_grid(*runs, grid: dict | None = None) -> dict[str, tuple]:
    """The grid :func:`sensitivity` walks for these runs: ``grid`` (default
    :data:`SENSITIVITY_GRID`), with ``levels`` left at the runs' own when any of them holds the
    paper's released matrices (already discretised).

    Args:
        runs: the compared runs, each a :class:`Run`, a run directory, or its protocol
            (:func:`run_protocol`; a :class:`RunComparison` holds both in ``protocol``).
        grid: ``{setting: values}`` over the :class:`ScoreSettings` fields.

    Returns:
        ``{setting: values}``; settings it does not name keep the runs' own (one point).

    Raises:
        OptionError: the grid names a setting :class:`ScoreSettings` does not have.
    """
    grid = dict(SENSITIVITY_GRID if grid is None else grid)
    if any(_released(r) for r in runs):
        grid["levels"] = (None,)
    keys = list(ScoreSettings.__dataclass_fields__)
    unknown = set(grid) - set(keys)
    if unknown:
        raise OptionError("grid", f"has unknown settings {sorted(unknown)}; known: {keys}")
    return grid


def grid_size(grid: dict) -> int:
    """The number of points of a sensitivity grid (:func:`sensitivity_grid`): 108 for the default
    grid, 54 with the paper's released runs (one ``levels``)."""
    return math.prod(len(v) for v in grid.values())


def sensitivity(base, tuned, grid: dict | None = None, pair: ModelPair | None = None, include_short: bool = False,
                n_resamples: int = 2000, allow_mismatch: bool = False, progress=None) -> Sensitivity:
    """The paired comparison over a grid of settings (as the paper's sweep does for its data).

    Args:
        base, tuned: the two runs (paths or :class:`Run`).
        grid: ``{setting: values}`` over the :class:`ScoreSettings` fields (default
            :data:`SENSITIVITY_GRID`: b 5/7/9, p 2/4/8, L 10/20, minimum 1/5 and maximum
            8/16/all response tokens: 108 points). ``levels`` is left out for the paper's
            released runs (already discretised: 54 points); :func:`sensitivity_grid` and
            :func:`grid_size` give the grid walked and its size. ``sign`` (clip/abs/signed) may be added as a
            key; it is not in the default grid (the paper's sweep clips).
        pair: names and labels. include_short: keep short responses.
        n_resamples: bootstrap resamples per point. allow_mismatch: as in :func:`compare_runs`.
        progress: called after each point.

    Returns:
        A :class:`Sensitivity`.

    Raises:
        InputFileError: as :func:`compare_runs`. OptionError: a bad grid value.
    """
    import itertools

    from tuneshift.stats.controls import paired_contrast

    b, t, _, _ = checked_pair(base, tuned, allow_mismatch)
    grid = sensitivity_grid(b, t, grid=grid)
    keys = list(ScoreSettings.__dataclass_fields__)
    rows = []
    for values in itertools.product(*[grid.get(k, (None,)) for k in keys]):
        s = ScoreSettings(**dict(zip(keys, values)))
        bv, _ = _valid(score_run(b, s), include_short)
        tv, _ = _valid(score_run(t, s), include_short)
        ids = sorted(set(bv) & set(tv))
        c = paired_contrast("score", OVERALL, [bv[i].score for i in ids], [tv[i].score for i in ids], n_resamples)
        rows.append(SensitivityRow(**dict(zip(keys, values)), paired=c))
        if progress is not None:
            progress()
    return Sensitivity(pair or ModelPair(b.model_name, t.model_name), rows)
