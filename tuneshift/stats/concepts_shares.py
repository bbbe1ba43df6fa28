"""Annotator-based comparison of two concepts runs: the paper's Table 5 and Figure 3.

Wu et al. 2024 (feed-forward explanation) report, for each model, the share of *explainable*
concepts serving each user task and belonging to each linguistic level, and how these shares
differ between the pre-trained and the tuned model. Here, from ``annotations.parquet`` (written
by ``tuneshift annotate``):

* per model and run ``r``: ``E_r`` = explainable components of run ``r``; the share of category
  ``k`` = ``|{c in E_r : c has k}| / |E_r|``; categories: tasks ``any writing`` (any of the three
  writing tasks), ``math``, ``coding``, ``translation``, ``none`` and the four levels (answers
  parsed as ``unparsed`` stay in the denominator and in no category); also the explainable
  share ``|E_r| / components``;
* mean and std over runs (:class:`~tuneshift.stats.tests.SampleStats`: population std, ddof = 0,
  the convention of every tuneshift statistic), and Welch's two-sided t-test between the two
  models' per-run shares (:func:`~tuneshift.stats.tests.welch_t`; NaN, JSON ``null``, when
  undefined: fewer than two runs, or constant shares in both models);
* the same means per layer group (``group_size`` layers per group, default 4) for the plot.

Shares are fractions in [0, 1].
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneshift.errors import InputFileError, OptionError
from tuneshift.files import atomic_write_bytes, atomic_write_text
from tuneshift.results import Result
from tuneshift.stats.sample_rule import DEFAULT_MIN_N, two_sample_reason
from tuneshift.stats.tests import SampleStats, welch_t

__all__ = [
    "TASK_CATEGORIES",
    "LEVEL_CATEGORIES",
    "ShareRow",
    "GroupShare",
    "SharesComparison",
    "load_annotations",
    "run_shares",
    "compare_shares",
    "group_shares",
    "compare_annotations",
    "plot_groups",
]

TASK_CATEGORIES = ("any writing", "math", "coding", "translation", "none")
LEVEL_CATEGORIES = ("phonology", "morphology", "syntax", "semantics")
_WRITING = {"daily writing", "literary writing", "professional writing"}


def load_annotations(concepts_dir):
    """``annotations.parquet`` of a concepts run as a DataFrame.

    Raises:
        InputFileError: the directory has no annotations (run ``tuneshift annotate`` first).
    """
    import pandas as pd

    p = Path(concepts_dir) / "annotations.parquet"
    if not p.is_file():
        raise InputFileError(
            f"{concepts_dir} has no annotations.parquet; run `tuneshift annotate {concepts_dir}` first"
        )
    df = pd.read_parquet(p)
    df["tasks"] = [list(t) if t is not None else [] for t in df["tasks"]]
    return df


def has_category(row_tasks, level, cat: str) -> bool:
    """Whether one annotation (its ``tasks`` list and linguistic ``level``) falls in ``cat``: a
    task category of :data:`TASK_CATEGORIES` (``any writing``: any of the three writing tasks)
    or a level of :data:`LEVEL_CATEGORIES`."""
    if cat == "any writing":
        return bool(_WRITING & set(row_tasks))
    if cat in LEVEL_CATEGORIES:
        return level == cat
    return cat in row_tasks


def run_shares(df) -> dict[str, np.ndarray]:
    """Per-run shares: ``{category: [n_runs] array}`` plus ``"explainable"`` (runs in sorted order).

    ``df``: rows (layer, rank, run, explainable, level, tasks). A run with no explainable
    component has NaN category shares.
    """
    out: dict[str, list[float]] = {k: [] for k in ("explainable", *TASK_CATEGORIES, *LEVEL_CATEGORIES)}
    for _, g in df.groupby("run", sort=True):
        e = g[g["explainable"] == True]  # noqa: E712 - None must not count
        out["explainable"].append(len(e) / len(g) if len(g) else np.nan)
        for cat in (*TASK_CATEGORIES, *LEVEL_CATEGORIES):
            n = sum(has_category(t, l, cat) for t, l in zip(e["tasks"], e["level"]))
            out[cat].append(n / len(e) if len(e) else np.nan)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


@dataclass
class ShareRow:
    """One row of Table 5: a category's per-run shares in both models and Welch's t-test.

    Attributes:
        category: ``explainable``, a task category or a linguistic level.
        base_mean, base_std, tuned_mean, tuned_std: mean and std (ddof = 0) over runs of the
            share (NaN when a model has no run with a defined share).
        t, p: Welch's two-sided t-test, base vs tuned (NaN when undefined).
        n_runs_base, n_runs_tuned: runs with a defined share.
        reason: why t and p are NaN under the sample rule (``"too few (5)"``), or None.
    """

    category: str
    base_mean: float
    base_std: float
    tuned_mean: float
    tuned_std: float
    t: float
    p: float
    n_runs_base: int
    n_runs_tuned: int
    reason: str | None = None


@dataclass
class GroupShare:
    """Mean over runs of one category's share in one layer group (NaN: undefined in every run).

    Attributes:
        group: ``layer // group_size``. layers: ``"first-last"`` layer of the group.
        category: as in :class:`ShareRow`. share: fraction in [0, 1].
    """

    group: int
    layers: str
    category: str
    share: float


def compare_shares(base_df, tuned_df, min_n: int = DEFAULT_MIN_N) -> list[ShareRow]:
    """Table 5: per category, mean/std over runs for each model and Welch's two-sided t-test.

    Args:
        base_df, tuned_df: annotation tables (see :func:`run_shares`).
        min_n: the sample rule (:mod:`tuneshift.stats.sample_rule`): the t-test needs ``min_n``
            runs with a share on each side and shares that vary; else t and p are NaN and the
            row's ``reason`` says why (the paper's 5 runs are below the default of 10).

    Returns:
        one :class:`ShareRow` per category (``explainable``, tasks, levels).
    """
    a, b = run_shares(base_df), run_shares(tuned_df)
    rows = []
    for cat in a:
        x, y = SampleStats.of(a[cat]), SampleStats.of(b[cat])
        why = two_sample_reason(a[cat], b[cat], min_n)
        t, p = (float("nan"), float("nan")) if why else welch_t(a[cat], b[cat], alternative="two-sided")
        rows.append(ShareRow(cat, x.mean, x.std, y.mean, y.std, t, p, x.n, y.n, why))
    return rows


def group_shares(df, group_size: int = 4) -> list[GroupShare]:
    """Per layer group (``layer // group_size``): mean over runs of each category share.

    Raises:
        OptionError: ``group_size`` < 1.
    """
    if group_size < 1:
        raise OptionError("group_size", f"must be >= 1, got {group_size}")
    rows = []
    for grp, g in df.groupby(df["layer"] // group_size, sort=True):
        shares = run_shares(g)
        layers = sorted(int(x) for x in g["layer"].unique())
        for cat, v in shares.items():
            rows.append(GroupShare(int(grp), f"{layers[0]}-{layers[-1]}", cat, SampleStats.of(v).mean))
    return rows


@dataclass
class SharesComparison(Result):
    """Table 5 and the Figure 3 data of two annotated concepts runs (:func:`compare_annotations`).

    Attributes:
        base, tuned: model specs. table5: :class:`ShareRow` per category.
        groups_base, groups_tuned: :class:`GroupShare` per layer group and category.
    """

    FILE = "concepts_shares.json"

    base: str
    tuned: str
    table5: list[ShareRow]
    groups_base: list[GroupShare] = field(default_factory=list)
    groups_tuned: list[GroupShare] = field(default_factory=list)

    def save(self, out_dir) -> dict[str, Path]:
        """``concepts_shares.json`` (:meth:`Result.save`) plus :meth:`save_figures`; the Markdown twin
        is written by :func:`tuneshift.reports.markdown.save_with_markdown`."""
        paths = super().save(out_dir)
        paths.update(self.save_figures(out_dir))
        return paths

    def save_figures(self, out_dir) -> dict[str, Path]:
        """Write Figure 3, ``concepts_groups.png``, and its data, ``concepts_groups.csv``
        (model, group, layers, category, share; an undefined share is empty), atomically.

        Returns:
            ``{"plot": path, "groups": path}``.
        """
        import csv

        d = Path(out_dir)
        paths = {
            "plot": plot_groups(
                self.groups_base,
                self.groups_tuned,
                d / "concepts_groups.png",
                f"{self.base} (dashed) vs {self.tuned} (solid)",
            )
        }
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["model", "group", "layers", "category", "share"])
        for who, rows in (("base", self.groups_base), ("tuned", self.groups_tuned)):
            for r in rows:
                w.writerow([who, r.group, r.layers, r.category, r.share if np.isfinite(r.share) else ""])
        paths["groups"] = d / "concepts_groups.csv"
        atomic_write_text(paths["groups"], buf.getvalue())
        return paths


def compare_annotations(
    base_dir, tuned_dir, group_size: int = 4, base: str = "base", tuned: str = "tuned", min_n: int = DEFAULT_MIN_N
) -> SharesComparison:
    """Table 5 and the per-group shares of two annotated concepts directories.

    Args:
        base_dir, tuned_dir: concepts directories with ``annotations.parquet``.
        group_size: layers per group. base, tuned: model names recorded in the result.

    Raises:
        InputFileError: a directory has no annotations. OptionError: ``group_size`` < 1.
    """
    ab, at = load_annotations(base_dir), load_annotations(tuned_dir)
    return SharesComparison(
        base, tuned, compare_shares(ab, at, min_n), group_shares(ab, group_size), group_shares(at, group_size)
    )


def groups_figure(base_rows: list[GroupShare], tuned_rows: list[GroupShare], title: str = ""):
    """Figure 3 as a matplotlib figure: share per layer group, one colour per category, base
    dashed, tuned solid; left user tasks, right linguistic levels. The caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, cats, name in ((axes[0], TASK_CATEGORIES, "user tasks"), (axes[1], LEVEL_CATEGORIES, "linguistic levels")):
        for i, cat in enumerate(cats):
            color = f"C{i}"
            for rows, style, who in ((base_rows, "--", "base"), (tuned_rows, "-", "tuned")):
                pts = [(r.group, r.share) for r in rows if r.category == cat and np.isfinite(r.share)]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, style, color=color, marker="o", label=f"{cat} ({who})")
        ax.set_xlabel("layer group")
        ax.set_ylabel("share of explainable concepts")
        ax.set_title(name)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_groups(base_rows: list[GroupShare], tuned_rows: list[GroupShare], path, title: str = "") -> Path:
    """Figure 3 (:func:`groups_figure`) as a PNG, written atomically.

    Returns:
        ``path`` (its folder is created).
    """
    import matplotlib.pyplot as plt

    fig = groups_figure(base_rows, tuned_rows, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
