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

Scoring lives in :mod:`tuneshift.stats.scoring`, the matched-run checks in
:mod:`tuneshift.stats.matching`, the sensitivity grid in :mod:`tuneshift.stats.sensitivity`;
:mod:`tuneshift.stats.compare` re-exports all of them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np

from tuneshift.models.pair import ModelPair
from tuneshift.results import Result
from tuneshift.stats.controls import (
    DroppedRecords,
    PairedContrast,
    RecordControls,
    copy_share,
    paired_by_group,
    positional_baseline,
    random_span_baseline,
)
from tuneshift.stats.matching import checked_pair, run_protocol
from tuneshift.stats.sample_rule import DEFAULT_MIN_N, check_min_n, paired_reason, two_sample_reason
from tuneshift.stats.scoring import ScoredRecord, ScoreSettings, effective_settings, score_matrix, score_run
from tuneshift.stats.tests import SampleStats, hedges_g, welch_t, wilcoxon_paired
from tuneshift.storage.attribution import Run

__all__ = [
    "OVERALL",
    "N_POSITION_BINS",
    "MIDDLE_BINS",
    "ModelContrast",
    "FollowContrast",
    "PositionProfile",
    "RunComparison",
    "position_means",
    "model_contrasts",
    "follow_contrasts",
    "position_profile",
    "compare_scored",
    "record_controls",
    "example_record",
    "compare_runs",
]

OVERALL = "overall"
N_POSITION_BINS = 10
#: position bins forming the "middle" of a prompt (relative positions 20%-80%).
MIDDLE_BINS = tuple(range(2, 8))


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
        sides = "; ".join(
            f"{side}: " + ", ".join(f"{n} {words.get(why, why)}" for why, n in ex.items() if n)
            for side, ex in self.excluded.items()
            if any(ex.values())
        )
        short = any(n and why == "short_response" for ex in self.excluded.values() for why, n in ex.items())
        return (
            "no record is valid in both runs, nothing was compared"
            + (f" ({sides})" if sides else "")
            + ("; --include-short keeps short responses" if short else "")
        )

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


def model_contrasts(
    bv: dict[str, ScoredRecord],
    tv: dict[str, ScoredRecord],
    groups: Sequence[str] | None = None,
    min_n: int = DEFAULT_MIN_N,
) -> list[ModelContrast]:
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
        out.append(
            ModelContrast(
                g, SampleStats.of(xs), SampleStats.of(ys), t, p, hedges_g(xs, ys), len(common), w, wp, why, wwhy
            )
        )
    return out


def follow_contrasts(
    valid: dict[str, ScoredRecord], side: str, groups: Sequence[str] | None = None, min_n: int = DEFAULT_MIN_N
) -> list[FollowContrast]:
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


def position_profile(
    bv: dict[str, ScoredRecord], tv: dict[str, ScoredRecord], signed: bool = False, min_n: int = DEFAULT_MIN_N
) -> PositionProfile:
    """The :class:`PositionProfile` of two sets of scored records (by id).

    With ``signed`` (densities of the ``signed`` sign policy, in [-1, 1]) the bin means are
    reported, but the middle-to-ends ratio, the middle-to-average ratio and its Wilcoxon test
    are NaN: a ratio of a mass that may be negative or near zero is not defined. The Wilcoxon
    test needs ``min_n`` prompts with a finite ratio on both sides (the sample rule).
    """
    bins = {
        "base": {i: position_means(r.density) for i, r in bv.items()},
        "tuned": {i: position_means(r.density) for i, r in tv.items()},
    }
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
        base=[float(x) for x in prof["base"]],
        tuned=[float(x) for x in prof["tuned"]],
        n_records={"base": len(bv), "tuned": len(tv)},
        middle_to_ends=m2e,
        middle_share=mshare,
        wilcoxon=w,
        wilcoxon_p=wp,
        n_pairs=int((np.isfinite(a) & np.isfinite(b)).sum()),
        reason=None if signed else why,
    )


def compare_scored(
    base: Sequence[ScoredRecord],
    tuned: Sequence[ScoredRecord],
    include_short: bool = False,
    groups: Sequence[str] | None = None,
    min_n: int = DEFAULT_MIN_N,
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


def _statistics(
    bv: dict[str, ScoredRecord],
    tv: dict[str, ScoredRecord],
    groups: Sequence[str] | None = None,
    signed: bool = False,
    min_n: int = DEFAULT_MIN_N,
):
    """``(contrasts, followed, position)`` of the valid records of both sides (``signed``: see
    :func:`position_profile`; ``min_n``: the sample rule)."""
    min_n = check_min_n(min_n)
    followed = follow_contrasts(bv, "base", groups, min_n) + follow_contrasts(tv, "tuned", groups, min_n)
    return model_contrasts(bv, tv, groups, min_n), followed, position_profile(bv, tv, signed, min_n)


def record_controls(
    bv: dict[str, ScoredRecord], tv: dict[str, ScoredRecord], b: Run, t: Run, settings: ScoreSettings
) -> list[RecordControls]:
    """Scores and controls (:mod:`tuneshift.stats.controls`) of every record valid in both runs."""
    eb, rb = effective_settings(b, settings)
    et, rt = effective_settings(t, settings)
    prof = {
        "base": _nanmean_rows([position_means(r.density) for r in bv.values()]),
        "tuned": _nanmean_rows([position_means(r.density) for r in tv.values()]),
    }
    out = []
    for i in sorted(set(bv) & set(tv)):
        x, y = bv[i], tv[i]
        ax, ay = x.source, y.source
        k = min(x.n_response, y.n_response)
        cx = score_matrix(ax.raw[:, :k], ax.instruction_mask, eb, rb)[1]
        cy = score_matrix(ay.raw[:, :k], ay.instruction_mask, et, rt)[1]
        m_x, m_y = int(np.asarray(ax.instruction_mask).sum()), int(np.asarray(ay.instruction_mask).sum())
        cut = settings.max_response_tokens  # the copy share of the scored response tokens
        out.append(
            RecordControls(
                id=i,
                group=x.group,
                base_score=x.score,
                tuned_score=y.score,
                base_n_response=x.n_response,
                tuned_n_response=y.n_response,
                common_length=k,
                base_common=float(cx),
                tuned_common=float(cy),
                base_copy_share=copy_share(ax.prompt_tokens, list(ax.response_tokens)[:cut]),
                tuned_copy_share=copy_share(ay.prompt_tokens, list(ay.response_tokens)[:cut]),
                base_random_span=random_span_baseline(x.density, m_x),
                tuned_random_span=random_span_baseline(y.density, m_y),
                base_positional=positional_baseline(ax.instruction_mask, prof["base"]),
                tuned_positional=positional_baseline(ay.instruction_mask, prof["tuned"]),
            )
        )
    return out


def _dropped(
    recs: Sequence[ScoredRecord],
    valid: dict[str, ScoredRecord],
    other: dict[str, ScoredRecord],
    skipped: dict[str, str],
) -> dict[str, list[str]]:
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


def compare_runs(
    base,
    tuned,
    pair: ModelPair | None = None,
    settings: ScoreSettings | None = None,
    include_short: bool = False,
    allow_mismatch: bool = False,
    n_resamples: int = 9999,
    min_n: int = DEFAULT_MIN_N,
) -> RunComparison:
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
        notes = list(notes) + [
            "sign policy signed: scores may be negative; the position profile's middle share and "
            "middle-to-ends ratio are not defined for signed densities (NaN)"
        ]
    excluded = {"base": bex, "tuned": tex}
    recs = record_controls(bv, tv, b, t, settings)
    dropped = DroppedRecords(_dropped(sb, bv, tv, b.skipped), _dropped(st, tv, bv, t.skipped))
    return RunComparison(
        pair=pair or ModelPair(b.model_name, t.model_name),
        base_run=str(b.path),
        tuned_run=str(t.path),
        same_dataset=same,
        contrasts=contrasts,
        followed=followed,
        position=position,
        settings=settings,
        excluded=excluded,
        warnings=notes,
        protocol={"base": run_protocol(b), "tuned": run_protocol(t)},
        paired=paired_by_group(recs, n_resamples=n_resamples, min_n=min_n),
        records=recs,
        dropped=dropped,
        example_record=example_record(recs),
        min_n=min_n,
    )
