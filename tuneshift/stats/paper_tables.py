"""The paper's Tables 1 and 2, a parameter sweep and the position profile, from the released data.

Source: Wu et al., NAACL 2024 (arXiv 2310.00492), Sec. 4.1, and the authors' released analysis
scripts (github.com/JacksonWuxs/Interpret_Instruction_Tuning_LLMs, ``src/utils.py``
``compute_density``, ``src/analysis_following_hypothesis.py`` for Table 1,
``src/analysis_following_ability_after_IFT.py`` for Table 2).

Score (as the released ``compute_density`` + ``evaluate`` define it)
--------------------------------------------------------------------
The released matrices are already clipped, column-scaled and discretised to 0..10, so only
the sparsification threshold is applied: values ``<= b`` become 0 (b = 7). Then
``density = L1 / Lp`` over response tokens (p = 4), divided by its maximum over the prompt's
tokens (:func:`~tuneshift.methods.attribution.importance.importance_density`), and
``score = sum(density over instruction tokens) / log2(2 + n_instruction_tokens)``
(:func:`~tuneshift.methods.attribution.importance.instruction_score`).

The matrices are NOT passed through :func:`~tuneshift.methods.attribution.importance.sparsify`
again: the authors scaled each column by ``max + 1e-7``, so columns whose attributions were tiny
kept a maximum below 10 (6,993 of the 310,287 released columns). ``sparsify`` would
rescale them to 10 and change the score of 303 LLaMA and 444 Vicuna prompts; the released
``compute_density`` uses them as stored (it only renormalises a matrix whose overall max/min is
not 10/0, which never happens here), and so does this module. The released code adds 1e-9 to
two denominators; the library functions do not (relative differences ~1e-10).

Record selection
----------------
* **Table 1** (followed vs unfollowed, Vicuna only): rating 2-4 = followed, 1 = unfollowed;
  unrated (rating <= 0 / missing) and responses shorter than 5 tokens are left out, as in
  ``analysis_following_hypothesis.py``.
* **Table 2** (LLaMA vs Vicuna): **every** prompt of each model, short responses included,
  as in ``analysis_following_ability_after_IFT.py`` (it filters nothing; the one empty
  response scores 0). On the imported runs this is ``compare_runs(..., include_short=True)``.
* Both: a prompt without instruction tokens would score NaN and be left out (the released code
  would give it 0); on the released data every prompt has instruction tokens.

Everything is computed by :mod:`tuneshift.stats.compare` (:func:`~tuneshift.stats.compare.score_run`
and :func:`~tuneshift.stats.compare.compare_scored`), the code that compares our own runs: the
paper's two models are the pair :data:`~tuneshift.models.pair.PAPER_PAIR` (labels as data), Table 1
is the tuned side's followed-vs-unfollowed contrast, Table 2 the base-vs-tuned contrast, and the
sweep re-scores the same runs over a grid of b and p. Statistics come from
:mod:`tuneshift.stats.tests` (``SampleStats`` with ddof = 0, ``welch_t`` one-sided: H1 unfollowed <
followed, LLaMA < Vicuna).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar, Iterable

from tuneshift.errors import TuneshiftError
from tuneshift.methods.attribution.importance import ImportanceSettings
from tuneshift.models.pair import PAPER_PAIR, ModelPair
from tuneshift.results import Result, nan_to_none
from tuneshift.stats.compare import (
    FollowContrast,
    ModelContrast,
    PositionProfile,
    ScoredRecord,
    ScoreSettings,
    as_run,
    compare_scored,
    score_run,
)
from tuneshift.stats.tests import SampleStats

__all__ = [
    "GROUPS",
    "GROUP_LABELS",
    "PaperTables",
    "SweepPoint",
    "paper_tables",
    "sweep",
    "sweep_to_json",
    "paper_settings",
    "SWEEP_THRESHOLDS",
    "SWEEP_NORM_PS",
    "JSON_KEYS",
]

#: dataset groups in report order (ids ``user_oriented_task_*``, ``lima_*``, ``mtbench_*``).
GROUPS = ("self_instruct", "lima", "mt_bench")
GROUP_LABELS = {"self_instruct": "Self-Instruct", "lima": "LIMA", "mt_bench": "MT-Bench"}
#: keys of the base and tuned model in the ``--json`` document (the schema of ``paper-tables --json``).
JSON_KEYS = ("llama", "vicuna")
SWEEP_THRESHOLDS = tuple(range(10))
SWEEP_NORM_PS = (2, 4, 8)


@dataclass
class PaperTables(Result):
    """Tables 1 and 2 at one setting, the position profile and what was left out.

    Attributes:
        pair: the two models (default :data:`PAPER_PAIR`).
        threshold, norm_p: b and p used.
        table1: ``{group: FollowContrast}`` of the tuned model (followed vs unfollowed) for ``GROUPS``.
        table2: ``{group: ModelContrast}`` (base vs tuned, all prompts) for ``GROUPS``.
        position: :class:`PositionProfile` over the Table 2 records (None when not computed).
        excluded: counts of left-out records, ``{"table1": {...}, "table2": {...}}``.
        n_unlocated: instruction spans that could not be placed (int).
    """

    FILE: ClassVar[str] = "paper_tables.json"

    pair: ModelPair
    threshold: float
    norm_p: float
    table1: dict[str, FollowContrast]
    table2: dict[str, ModelContrast]
    position: PositionProfile | None = None
    excluded: dict = field(default_factory=dict)
    n_unlocated: int = 0

    def to_json(self) -> dict:
        """The documented JSON of ``tuneshift paper-tables --json``, exactly::

            {"table1": {GROUP: {"followed": {"mean", "std", "n"}, "unfollowed": {...}, "t", "p"}},
             "table2": {GROUP: {"llama": {...}, "vicuna": {...}, "t", "p"}}}

        with GROUP in ``self_instruct``, ``lima``, ``mt_bench`` (keys of the two models:
        :data:`JSON_KEYS`); NaN becomes null.
        """
        kb, kt = JSON_KEYS
        return nan_to_none(
            {
                "table1": {
                    g: {"followed": r.followed.to_dict(), "unfollowed": r.unfollowed.to_dict(), "t": r.t, "p": r.p}
                    for g, r in self.table1.items()
                },
                "table2": {
                    g: {kb: r.base.to_dict(), kt: r.tuned.to_dict(), "t": r.t, "p": r.p} for g, r in self.table2.items()
                },
            }
        )


def _table1_selection(recs: list[ScoredRecord]) -> tuple[list[ScoredRecord], dict[str, int]]:
    """Table 1's records: rated (rating >= 1), at least 5 response tokens, with instruction tokens."""
    ex = {"unrated": 0, "short_response": 0, "no_instruction": 0}
    keep = []
    for r in recs:
        if r.rating is None or r.rating <= 0:
            ex["unrated"] += 1
        elif r.short:
            ex["short_response"] += 1
        elif r.score != r.score:
            ex["no_instruction"] += 1
        else:
            keep.append(r)
    return keep, ex


def _tables(base: list[ScoredRecord], tuned: list[ScoredRecord], with_position: bool):
    t1_recs, ex1 = _table1_selection(tuned)
    _, followed, _, _ = compare_scored([], t1_recs, include_short=False, groups=list(GROUPS))
    table1 = {f.group: f for f in followed if f.model == "tuned"}
    for g in GROUPS:  # no rated record at all: empty rows
        table1.setdefault(
            g,
            FollowContrast(
                "tuned", g, SampleStats.of([]), SampleStats.of([]), float("nan"), float("nan"), float("nan")
            ),
        )
    contrasts, _, position, _ = compare_scored(base, tuned, include_short=True, groups=list(GROUPS))
    table2 = {c.group: c for c in contrasts}
    ex2 = {
        side: {
            "no_instruction": sum(r.score != r.score for r in recs),
            "short_response_included": sum(r.short for r in recs),
        }
        for side, recs in (("base", base), ("tuned", tuned))
    }
    return table1, table2, (position if with_position else None), {"table1": ex1, "table2": ex2}


def paper_settings(
    threshold: float = ImportanceSettings.DEFAULT_THRESHOLD, norm_p: float = ImportanceSettings.DEFAULT_NORM_P
) -> ScoreSettings:
    """The re-scoring of the released runs at b and p, with the paper's minimum response length.

    Checked at once, before any data is read: b and p as overrides (:class:`ScoreSettings`),
    then together with the paper's other settings (``ImportanceSettings.PAPER``: the released
    matrices are discretised to its L = 10 levels, so b must be in ``[0, 10)``).

    Returns:
        A :class:`~tuneshift.stats.compare.ScoreSettings`.

    Raises:
        OptionError: a non-finite b or b outside ``[0, L)``, ``norm_p <= 1`` or not finite.
    """
    paper = ImportanceSettings.PAPER
    settings = ScoreSettings(threshold=threshold, norm_p=norm_p, min_response_tokens=paper.min_response_tokens)
    replace(paper, threshold=threshold, norm_p=norm_p)
    return settings


def paper_tables(
    base,
    tuned,
    threshold: float = ImportanceSettings.DEFAULT_THRESHOLD,
    norm_p: float = ImportanceSettings.DEFAULT_NORM_P,
    with_position: bool = True,
    pair: ModelPair = PAPER_PAIR,
) -> PaperTables:
    """Tables 1 and 2 (and the position profile) at one setting of b and p.

    Args:
        base, tuned: the two runs (paths or :class:`Run`), e.g. from
            :func:`tuneshift.pipelines.import_paper.load_release` or ``tuneshift import-paper``.
        threshold: b (values ``<= b`` zeroed), in ``[0, 10)`` for the 0..10 data.
        norm_p: p > 1 of the L1/Lp density.
        with_position: also report the position profile.
        pair: names and labels of the two models.

    Returns:
        A :class:`PaperTables`.

    Raises:
        OptionError: ``norm_p <= 1`` or not finite, b not finite or outside ``[0, 10)``
            (:func:`paper_settings`).
        TuneshiftError: a run has no records.
    """
    settings = paper_settings(threshold, norm_p)
    runs = {"base": as_run(base), "tuned": as_run(tuned)}
    for side, r in runs.items():
        if not r.attributions:
            raise TuneshiftError(f"no usable records for the {side} model ({r.path})")
    b, t = score_run(runs["base"], settings), score_run(runs["tuned"], settings)
    t1, t2, pos, ex = _tables(b, t, with_position)
    n_unl = sum(len(a.unlocated_spans) for r in runs.values() for a in r.attributions)
    return PaperTables(pair, threshold, norm_p, t1, t2, pos, ex, n_unl)


@dataclass
class SweepPoint(Result):
    """Tables 1 and 2 at one (b, p).

    Attributes:
        threshold, norm_p: b and p.
        table1: ``{group: FollowContrast}``; table2: ``{group: ModelContrast}``.
    """

    FILE: ClassVar[str] = "sweep_point.json"

    threshold: float
    norm_p: float
    table1: dict[str, FollowContrast]
    table2: dict[str, ModelContrast]


def sweep(
    base,
    tuned,
    thresholds: Iterable[float] = SWEEP_THRESHOLDS,
    norm_ps: Iterable[float] = SWEEP_NORM_PS,
    progress: Callable[[], None] | None = None,
) -> list[SweepPoint]:
    """Tables 1 and 2 over a grid of b and p (default b in 0..9, p in {2, 4, 8}).

    Args:
        base, tuned: the two runs (paths or :class:`Run`).
        thresholds: values of b.
        norm_ps: values of p (each > 1).
        progress: called after each grid point.

    Returns:
        One :class:`SweepPoint` per (b, p), b-major order.
    """
    runs = (as_run(base), as_run(tuned))
    out = []
    norm_ps = list(norm_ps)
    for b in thresholds:
        for p in norm_ps:
            s = paper_settings(b, p)
            t1, t2, _, _ = _tables(score_run(runs[0], s), score_run(runs[1], s), with_position=False)
            out.append(SweepPoint(b, p, t1, t2))
            if progress is not None:
                progress()
    return out


def sweep_to_json(points: list[SweepPoint]) -> list[dict]:
    """The sweep as the documented JSON (``{"b", "p", "table1": {g: {"t", "p", "followed_mean",
    "unfollowed_mean"}}, "table2": {g: {"t", "p", "llama_mean", "vicuna_mean"}}}``; NaN -> null)."""
    kb, kt = JSON_KEYS
    return nan_to_none(
        [
            {
                "b": pt.threshold,
                "p": pt.norm_p,
                "table1": {
                    g: {"t": r.t, "p": r.p, "followed_mean": r.followed.mean, "unfollowed_mean": r.unfollowed.mean}
                    for g, r in pt.table1.items()
                },
                "table2": {
                    g: {"t": r.t, "p": r.p, f"{kb}_mean": r.base.mean, f"{kt}_mean": r.tuned.mean}
                    for g, r in pt.table2.items()
                },
            }
            for pt in points
        ]
    )
