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

Statistics come from :mod:`tuneshift.stats.tests` (``SampleStats`` with ddof = 0, ``welch_t``
one-sided: H1 unfollowed < followed, LLaMA < Vicuna), the same functions ``compare_runs`` uses.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from tuneshift.errors import OptionError, TuneshiftError
from tuneshift.methods.attribution.importance import importance_density, instruction_score
from tuneshift.stats.compare import N_POSITION_BINS, position_means
from tuneshift.stats.tests import SampleStats, welch_t, wilcoxon_paired

__all__ = [
    "GROUPS",
    "MODELS",
    "PaperItem",
    "PaperData",
    "released_density_and_score",
    "load_release",
    "data_from_runs",
    "Table1Row",
    "Table2Row",
    "PositionResult",
    "PaperTables",
    "SweepPoint",
    "paper_tables",
    "sweep",
    "sweep_to_json",
    "position_profile",
    "print_paper_tables",
    "print_sweep",
    "tables_markdown",
    "sweep_markdown",
    "DEFAULT_THRESHOLD",
    "DEFAULT_NORM_P",
    "SWEEP_THRESHOLDS",
    "SWEEP_NORM_PS",
]

#: dataset groups in report order (ids ``user_oriented_task_*``, ``lima_*``, ``mtbench_*``).
GROUPS = ("self_instruct", "lima", "mt_bench")
#: model keys: pre-trained, instruction-tuned.
MODELS = ("llama_7b", "vicuna_7b")
DEFAULT_THRESHOLD = 7
DEFAULT_NORM_P = 4
MIN_RESPONSE_TOKENS = 5
SWEEP_THRESHOLDS = tuple(range(10))
SWEEP_NORM_PS = (2, 4, 8)
#: position bins forming the "middle" of a prompt (relative positions 20%-80%).
MIDDLE_BINS = tuple(range(2, 8))


# ----------------------------------------------------------------------------- data


@dataclass
class PaperItem:
    """One prompt seen by one model: what the tables need.

    Attributes:
        id: record id (str).
        group: ``self_instruct``, ``lima``, ``mt_bench`` (or another group name).
        rating: human rating 1-4 of the Vicuna response, None if unrated or not Vicuna.
        matrix: ``[n_prompt_tokens, n_response_tokens]`` released attribution (0..10).
        mask: ``[n_prompt_tokens]`` bool instruction mask.
    """

    id: str
    group: str
    rating: int | None
    matrix: np.ndarray
    mask: np.ndarray

    @property
    def n_response(self) -> int:
        """Number of response tokens (int)."""
        return int(self.matrix.shape[1])


@dataclass
class PaperData:
    """The released attributions of both models, joined with the dataset.

    Attributes:
        items: ``{"llama_7b": [...], "vicuna_7b": [...]}`` :class:`PaperItem` lists in dataset order.
        n_unlocated: instruction spans that could not be placed, summed over both models (int).
        problems: one line per record that could not be used (list of str).
        source: where the data came from (dict of str).
    """

    items: dict[str, list[PaperItem]]
    n_unlocated: int = 0
    problems: list[str] = field(default_factory=list)
    source: dict = field(default_factory=dict)


def released_density_and_score(matrix: np.ndarray, mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                               norm_p: float = DEFAULT_NORM_P) -> tuple[np.ndarray, float]:
    """Density and instruction score of a released (already discretised) attribution matrix.

    Args:
        matrix: ``[n_prompt_tokens, n_response_tokens]`` released values 0..10.
        mask: ``[n_prompt_tokens]`` bool instruction mask.
        threshold: b; values ``<= b`` become 0 (no rescaling: see the module docstring).
        norm_p: p of the L1/Lp density.

    Returns:
        ``(density [n_prompt_tokens] in [0, 1], score)``; score 0 for an empty response, NaN
        when the mask is empty.
    """
    m = np.asarray(matrix, dtype=np.float64)
    sparse = np.where(m <= threshold, 0.0, m)
    density = importance_density(sparse, norm_p)
    return density, instruction_score(density, mask)


def load_release(released: str | os.PathLike, dataset: str | os.PathLike, ratings: str | os.PathLike | None = None,
                 on_record: Callable[[str], None] | None = None) -> PaperData:
    """Read the released attributions of both models and build their instruction masks.

    Args:
        released: the folder holding ``ifa_llama_7b/`` and ``ifa_vicuna_7b/``.
        dataset: the paper's FinalDataset.tsv (read with
            :func:`~tuneshift.data.prompts.read_prompts`).
        ratings: the paper's AnnotatedDataset.tsv (Vicuna ratings), or None (Table 1 then empty).
        on_record: called with the model key after each record (for progress bars).

    Returns:
        A :class:`PaperData`; records whose file is missing or malformed are left out and
        listed in ``problems``.

    Raises:
        InputFileError: missing folders/files, a dataset without records.
        UnsafePickleError: a released file asks for a global outside the allow-list.
    """
    from tuneshift.data.paper_release import iter_release, released_model_dirs
    from tuneshift.data.prompts import read_prompts

    dirs = released_model_dirs(released)
    ps = read_prompts(dataset, ratings=ratings)
    items: dict[str, list[PaperItem]] = {}
    problems = list(ps.problems)
    n_unlocated = 0
    for key in MODELS:
        items[key] = []
        for rr in iter_release(dirs[key], ps.records):
            if on_record is not None:
                on_record(key)
            if rr.problem is not None:
                problems.append(f"{key}: {rr.record.id}: {rr.problem}")
                continue
            n_unlocated += rr.mask.n_unlocated
            items[key].append(PaperItem(
                id=rr.record.id, group=rr.record.group,
                rating=rr.record.rating if key == "vicuna_7b" else None,
                matrix=rr.released.explain, mask=rr.mask.mask,
            ))
    return PaperData(items=items, n_unlocated=n_unlocated, problems=problems,
                     source={"released": str(released), "dataset": str(dataset), "ratings": str(ratings) if ratings else None})


def data_from_runs(llama_run, vicuna_run) -> PaperData:
    """The same :class:`PaperData` from the two runs written by ``tuneshift import-paper``.

    Args:
        llama_run, vicuna_run: run directories or :class:`~tuneshift.runs.store.Run` objects;
            their ``raw`` is the released matrix and ``instruction_mask`` the rebuilt mask.

    Returns:
        A :class:`PaperData` (ratings from the runs; the LLaMA run has none).

    Raises:
        InputFileError: unreadable runs.
    """
    from tuneshift.runs.store import Run, load_run

    out, n_unl, paths = {}, 0, []
    for key, run in zip(MODELS, (llama_run, vicuna_run)):
        r = run if isinstance(run, Run) else load_run(run)
        out[key] = [PaperItem(a.record_id, a.group, a.rating, a.raw, a.instruction_mask) for a in r.attributions]
        n_unl += sum(len(a.unlocated_spans) for a in r.attributions)
        paths.append(str(r.path))
    return PaperData(items=out, n_unlocated=n_unl, source={"runs": paths})


# ----------------------------------------------------------------------------- tables


@dataclass
class Table1Row:
    """Followed vs unfollowed instruction scores of Vicuna in one group.

    ``t, p``: Welch's t-test, one-sided, H1: unfollowed < followed (NaN if undefined).
    """

    group: str
    followed: SampleStats
    unfollowed: SampleStats
    t: float
    p: float


@dataclass
class Table2Row:
    """LLaMA vs Vicuna instruction scores in one group.

    ``t, p``: Welch's t-test, one-sided, H1: LLaMA < Vicuna (NaN if undefined).
    """

    group: str
    llama: SampleStats
    vicuna: SampleStats
    t: float
    p: float


@dataclass
class PositionResult:
    """Mean importance density by relative position in the prompt, per model.

    A token at index n of N falls in bin ``floor(10 (n + 0.5) / N)``; each prompt's bin means
    are averaged over prompts (:func:`tuneshift.stats.compare.position_means`, as in
    ``compare_runs``), over the Table 2 records.

    Attributes:
        bin_edges: ``[11]`` relative positions 0.0..1.0.
        llama, vicuna: ``[10]`` mean density per bin.
        middle_to_ends: per model, mean of bins 2-7 (20-80%) / mean of bins 0 and 9 (< 1: the
            middle of the prompt gets less importance than its ends).
        middle_share: per model, mean over prompts of (mean of the prompt's bins 2-7 / mean of
            its 10 bins).
        wilcoxon, wilcoxon_p: paired signed-rank test of the per-prompt middle share,
            one-sided, H1: LLaMA < Vicuna (the pre-trained model loses the middle more).
        n_pairs: prompts with a finite middle share for both models.
        n_records: prompts per model.
    """

    bin_edges: list[float]
    llama: list[float]
    vicuna: list[float]
    middle_to_ends: dict[str, float]
    middle_share: dict[str, float]
    wilcoxon: float
    wilcoxon_p: float
    n_pairs: int
    n_records: dict[str, int]


@dataclass
class PaperTables:
    """Tables 1 and 2 at one setting, the position profile and what was left out.

    Attributes:
        threshold, norm_p: b and p used.
        table1: ``{group: Table1Row}`` for ``GROUPS``.
        table2: ``{group: Table2Row}`` for ``GROUPS``.
        position: :class:`PositionResult` (None when not computed).
        excluded: counts of left-out records, ``{"table1": {...}, "table2": {...}}``.
        n_unlocated: instruction spans that could not be placed (int).
    """

    threshold: float
    norm_p: float
    table1: dict[str, Table1Row]
    table2: dict[str, Table2Row]
    position: PositionResult | None = None
    excluded: dict = field(default_factory=dict)
    n_unlocated: int = 0

    def to_json(self) -> dict:
        """The issue's JSON schema, exactly::

            {"table1": {GROUP: {"followed": {"mean", "std", "n"}, "unfollowed": {...}, "t", "p"}},
             "table2": {GROUP: {"llama": {...}, "vicuna": {...}, "t", "p"}}}

        with GROUP in ``self_instruct``, ``lima``, ``mt_bench``; NaN becomes null.
        """
        def s(x: SampleStats) -> dict:
            return {"mean": _num(x.mean), "std": _num(x.std), "n": int(x.n)}

        return {
            "table1": {g: {"followed": s(r.followed), "unfollowed": s(r.unfollowed), "t": _num(r.t), "p": _num(r.p)}
                       for g, r in self.table1.items()},
            "table2": {g: {"llama": s(r.llama), "vicuna": s(r.vicuna), "t": _num(r.t), "p": _num(r.p)}
                       for g, r in self.table2.items()},
        }


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _scores(items: list[PaperItem], threshold: float, norm_p: float) -> tuple[np.ndarray, list[np.ndarray]]:
    scores = np.empty(len(items))
    dens = []
    for k, it in enumerate(items):
        d, s = released_density_and_score(it.matrix, it.mask, threshold, norm_p)
        scores[k] = s
        dens.append(d)
    return scores, dens


def _tables(data: PaperData, scores: dict[str, np.ndarray]) -> tuple[dict, dict, dict]:
    vic, lla = data.items["vicuna_7b"], data.items["llama_7b"]
    sv, sl = scores["vicuna_7b"], scores["llama_7b"]
    ex1 = {"unrated": 0, "short_response": 0, "no_instruction": 0}
    t1_sel = np.zeros(len(vic), dtype=bool)
    for k, it in enumerate(vic):
        if it.rating is None or it.rating <= 0:
            ex1["unrated"] += 1
        elif it.n_response < MIN_RESPONSE_TOKENS:
            ex1["short_response"] += 1
        elif not np.isfinite(sv[k]):
            ex1["no_instruction"] += 1
        else:
            t1_sel[k] = True
    ex2 = {m: {"no_instruction": int((~np.isfinite(scores[m])).sum()),
               "short_response_included": int(sum(it.n_response < MIN_RESPONSE_TOKENS for it in data.items[m]))}
           for m in MODELS}
    gv = np.array([it.group for it in vic])
    gl = np.array([it.group for it in lla])
    rv = np.array([it.rating if it.rating is not None else -1 for it in vic])
    table1, table2 = {}, {}
    for g in GROUPS:
        sel = t1_sel & (gv == g)
        fol, unf = sv[sel & (rv >= 2)], sv[sel & (rv == 1)]
        t, p = welch_t(unf, fol, "less")
        table1[g] = Table1Row(g, SampleStats.of(fol), SampleStats.of(unf), t, p)
        a, b = sl[gl == g], sv[gv == g]
        t, p = welch_t(a, b, "less")
        table2[g] = Table2Row(g, SampleStats.of(a), SampleStats.of(b), t, p)
    return table1, table2, {"table1": ex1, "table2": ex2}


def _nanmean_rows(rows: list[np.ndarray]) -> np.ndarray:
    import warnings

    if not rows:
        return np.full(N_POSITION_BINS, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.vstack(rows), axis=0)


def position_profile(data: PaperData, densities: dict[str, list[np.ndarray]] | None = None,
                     threshold: float = DEFAULT_THRESHOLD, norm_p: float = DEFAULT_NORM_P) -> PositionResult:
    """Position profile of both models over the Table 2 records (see :class:`PositionResult`).

    Args:
        data: the released data.
        densities: precomputed ``{model: [density per item]}`` (computed when None).
        threshold, norm_p: b and p, used when ``densities`` is None.

    Returns:
        A :class:`PositionResult`.
    """
    if densities is None:
        densities = {m: _scores(data.items[m], threshold, norm_p)[1] for m in MODELS}
    bins = {m: [position_means(d) for d in densities[m]] for m in MODELS}
    prof = {m: _nanmean_rows(bins[m]) for m in MODELS}
    mid = list(MIDDLE_BINS)
    m2e = {m: float(np.mean(prof[m][mid]) / np.mean(prof[m][[0, N_POSITION_BINS - 1]])) for m in MODELS}
    share = {}
    for m in MODELS:
        vals = {}
        for it, b in zip(data.items[m], bins[m]):
            tot = np.nanmean(b) if np.isfinite(b).any() else np.nan
            vals[it.id] = float(np.mean(b[mid]) / tot) if np.isfinite(tot) and tot > 0 else float("nan")
        share[m] = vals
    common = sorted(set(share["llama_7b"]) & set(share["vicuna_7b"]))
    a = np.array([share["llama_7b"][i] for i in common])
    b = np.array([share["vicuna_7b"][i] for i in common])
    w, wp = wilcoxon_paired(a, b, "less")
    keep = np.isfinite(a) & np.isfinite(b)
    return PositionResult(
        bin_edges=[i / N_POSITION_BINS for i in range(N_POSITION_BINS + 1)],
        llama=[float(x) for x in prof["llama_7b"]], vicuna=[float(x) for x in prof["vicuna_7b"]],
        middle_to_ends=m2e,
        middle_share={m: float(np.nanmean(list(share[m].values()))) for m in MODELS},
        wilcoxon=w, wilcoxon_p=wp, n_pairs=int(keep.sum()),
        n_records={m: len(data.items[m]) for m in MODELS},
    )


def paper_tables(data: PaperData, threshold: float = DEFAULT_THRESHOLD, norm_p: float = DEFAULT_NORM_P,
                 with_position: bool = True) -> PaperTables:
    """Tables 1 and 2 (and the position profile) at one setting of b and p.

    Args:
        data: from :func:`load_release` or :func:`data_from_runs`.
        threshold: b (values ``<= b`` zeroed), 0..9 sensible for 0..10 data.
        norm_p: p > 1 of the L1/Lp density.
        with_position: also compute the position profile.

    Returns:
        A :class:`PaperTables`.

    Raises:
        TuneshiftError: a model has no records, or ``norm_p <= 1``.
    """
    if not (1 < norm_p < math.inf):
        raise OptionError("norm_p", f"(p) must be a finite number > 1 (the density is L1 / Lp), got {norm_p}")
    if not math.isfinite(threshold):
        raise OptionError("threshold", f"(b) must be a finite number, got {threshold}")
    for m in MODELS:
        if not data.items.get(m):
            raise TuneshiftError(f"no usable released records for {m}")
    scores, dens = {}, {}
    for m in MODELS:
        scores[m], dens[m] = _scores(data.items[m], threshold, norm_p)
    t1, t2, ex = _tables(data, scores)
    pos = position_profile(data, dens) if with_position else None
    return PaperTables(threshold, norm_p, t1, t2, pos, ex, data.n_unlocated)


@dataclass
class SweepPoint:
    """Tables 1 and 2 at one (b, p): per group ``{"t", "p"}`` and the means.

    Attributes:
        threshold, norm_p: b and p.
        table1: ``{group: {"t", "p", "followed_mean", "unfollowed_mean"}}``.
        table2: ``{group: {"t", "p", "llama_mean", "vicuna_mean"}}``.
    """

    threshold: float
    norm_p: float
    table1: dict[str, dict[str, float]]
    table2: dict[str, dict[str, float]]


def sweep(data: PaperData, thresholds: Iterable[float] = SWEEP_THRESHOLDS, norm_ps: Iterable[float] = SWEEP_NORM_PS,
          progress: Callable[[], None] | None = None) -> list[SweepPoint]:
    """Tables 1 and 2 over a grid of b and p (default b in 0..9, p in {2, 4, 8}).

    Args:
        data: the released data.
        thresholds: values of b.
        norm_ps: values of p (each > 1).
        progress: called after each grid point.

    Returns:
        One :class:`SweepPoint` per (b, p), b-major order.
    """
    out = []
    norm_ps = list(norm_ps)
    for b in thresholds:
        sparse = {m: [np.where(np.asarray(it.matrix, dtype=np.float64) <= b, 0.0, it.matrix) for it in data.items[m]]
                  for m in MODELS}
        for p in norm_ps:
            scores = {m: np.array([instruction_score(importance_density(s, p), it.mask)
                                   for s, it in zip(sparse[m], data.items[m])]) for m in MODELS}
            t1, t2, _ = _tables(data, scores)
            out.append(SweepPoint(
                b, p,
                {g: {"t": r.t, "p": r.p, "followed_mean": r.followed.mean, "unfollowed_mean": r.unfollowed.mean}
                 for g, r in t1.items()},
                {g: {"t": r.t, "p": r.p, "llama_mean": r.llama.mean, "vicuna_mean": r.vicuna.mean}
                 for g, r in t2.items()},
            ))
            if progress is not None:
                progress()
    return out


def sweep_to_json(points: list[SweepPoint]) -> list[dict]:
    """The sweep as JSON-ready dicts (NaN -> null)."""
    def clean(d):
        return {g: {k: _num(v) for k, v in row.items()} for g, row in d.items()}

    return [{"b": pt.threshold, "p": pt.norm_p, "table1": clean(pt.table1), "table2": clean(pt.table2)} for pt in points]


# ----------------------------------------------------------------------------- printing

GROUP_LABELS = {"self_instruct": "Self-Instruct", "lima": "LIMA", "mt_bench": "MT-Bench"}


def _f(x: float, nd: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{nd}f}"


def _p(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def _rows1(t: PaperTables) -> list[list[str]]:
    return [[GROUP_LABELS.get(g, g), f"{_f(r.followed.mean)}±{_f(r.followed.std)}", str(r.followed.n),
             f"{_f(r.unfollowed.mean)}±{_f(r.unfollowed.std)}", str(r.unfollowed.n), _f(r.t, 2), _p(r.p)]
            for g, r in t.table1.items()]


def _rows2(t: PaperTables) -> list[list[str]]:
    return [[GROUP_LABELS.get(g, g), f"{_f(r.llama.mean)}±{_f(r.llama.std)}", str(r.llama.n),
             f"{_f(r.vicuna.mean)}±{_f(r.vicuna.std)}", str(r.vicuna.n), _f(r.t, 2), _p(r.p)]
            for g, r in t.table2.items()]


HEAD1 = ["group", "followed (2-4) mean±std", "n", "unfollowed (1) mean±std", "n", "Welch t", "p (H1: unf < fol)"]
HEAD2 = ["group", "LLaMA-7B mean±std", "n", "Vicuna-7B mean±std", "n", "Welch t", "p (H1: LLaMA < Vicuna)"]


def print_paper_tables(t: PaperTables, console=None) -> None:
    """Print both tables and the position profile with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal and console.width < 130:
        console.width = 130
    for title, head, rows in (
        (f"Table 1: Vicuna-7B instruction score, followed vs unfollowed (b={t.threshold:g}, p={t.norm_p:g}; "
         "unrated and responses < 5 tokens left out)", HEAD1, _rows1(t)),
        (f"Table 2: instruction score, LLaMA-7B vs Vicuna-7B (b={t.threshold:g}, p={t.norm_p:g}; all prompts)", HEAD2, _rows2(t)),
    ):
        tab = Table(title=title, title_justify="left")
        for h in head:
            tab.add_column(h, justify="left" if h == "group" else "right")
        for r in rows:
            tab.add_row(*r)
        console.print(tab)
    if t.position is not None:
        pos = t.position
        tab = Table(title="Mean importance density by relative prompt position (10 bins, all prompts)", title_justify="left")
        tab.add_column("model")
        for i in range(len(pos.llama)):
            tab.add_column(f"{i * 10}-{(i + 1) * 10}%", justify="right")
        tab.add_column("middle/ends", justify="right")
        tab.add_row("LLaMA-7B", *[_f(x, 3) for x in pos.llama], _f(pos.middle_to_ends["llama_7b"], 3))
        tab.add_row("Vicuna-7B", *[_f(x, 3) for x in pos.vicuna], _f(pos.middle_to_ends["vicuna_7b"], 3))
        console.print(tab)
        console.print(
            f"middle share per prompt (bins 20-80% / all): LLaMA {_f(pos.middle_share['llama_7b'])}, "
            f"Vicuna {_f(pos.middle_share['vicuna_7b'])}; paired Wilcoxon one-sided H1 LLaMA < Vicuna: "
            f"p = {_p(pos.wilcoxon_p)} ({pos.n_pairs} prompts)", highlight=False)
    ex = t.excluded
    console.print(f"[dim]left out: Table 1 {ex.get('table1')}; Table 2 {ex.get('table2')}; "
                  f"unlocated instruction spans: {t.n_unlocated}; std with ddof = 0[/dim]")


def print_sweep(points: list[SweepPoint], console=None) -> None:
    """Print the sweep's one-sided p-values: one row per (b, p), Table 1 and Table 2 per group."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal and console.width < 130:
        console.width = 130
    tab = Table(title="Sweep: one-sided p-values of Table 1 (T1, H1: unfollowed < followed) and "
                      "Table 2 (T2, H1: LLaMA < Vicuna)", title_justify="left")
    tab.add_column("b")
    tab.add_column("p")
    for key in ("T1", "T2"):
        for g in GROUPS:
            tab.add_column(f"{key} {GROUP_LABELS[g]}", justify="right")
    for pt in points:
        tab.add_row(f"{pt.threshold:g}", f"{pt.norm_p:g}", *[_p(pt.table1[g]["p"]) for g in GROUPS],
                    *[_p(pt.table2[g]["p"]) for g in GROUPS])
    console.print(tab)


def _md(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def tables_markdown(t: PaperTables) -> str:
    """Both tables and the position profile as Markdown (used for docs/paper_reproduction.md)."""
    parts = [_md(HEAD1, _rows1(t)), "", _md(HEAD2, _rows2(t))]
    if t.position is not None:
        pos = t.position
        head = ["model"] + [f"{i * 10}-{(i + 1) * 10}%" for i in range(len(pos.llama))] + ["middle/ends"]
        parts += ["", _md(head, [["LLaMA-7B"] + [_f(x) for x in pos.llama] + [_f(pos.middle_to_ends["llama_7b"])],
                                 ["Vicuna-7B"] + [_f(x) for x in pos.vicuna] + [_f(pos.middle_to_ends["vicuna_7b"])]])]
    return "\n".join(parts)


def sweep_markdown(points: list[SweepPoint]) -> str:
    """The sweep's p-values as one Markdown table (rows b, p; columns Table 1 and Table 2 per group)."""
    head = ["b", "p"] + [f"T1 {GROUP_LABELS[g]}" for g in GROUPS] + [f"T2 {GROUP_LABELS[g]}" for g in GROUPS]
    rows = [[f"{pt.threshold:g}", f"{pt.norm_p:g}"] + [_p(pt.table1[g]["p"]) for g in GROUPS]
            + [_p(pt.table2[g]["p"]) for g in GROUPS] for pt in points]
    return _md(head, rows)

