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
* mean and std (ddof 1) over runs, and Welch's t-test between the two models' per-run shares
  (``scipy.stats.ttest_ind(equal_var=False)``; NaN -> None when undefined, e.g. one run or
  constant shares);
* the same means per layer group (``group_size`` layers per group, default 4) for the plot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuneshift.errors import InputFileError, OptionError

__all__ = ["TASK_CATEGORIES", "LEVEL_CATEGORIES", "load_annotations", "run_shares", "compare_shares",
           "group_shares", "plot_groups"]

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
        raise InputFileError(f"{concepts_dir} has no annotations.parquet; run `tuneshift annotate {concepts_dir}` first")
    df = pd.read_parquet(p)
    df["tasks"] = [list(t) if t is not None else [] for t in df["tasks"]]
    return df


def _has(row_tasks, level, cat: str) -> bool:
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
            n = sum(_has(t, l, cat) for t, l in zip(e["tasks"], e["level"]))
            out[cat].append(n / len(e) if len(e) else np.nan)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _none_if_nan(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def compare_shares(base_df, tuned_df) -> list[dict]:
    """Table 5: per category, mean/std over runs for each model and Welch's t-test.

    Returns:
        rows ``{category, base_mean, base_std, tuned_mean, tuned_std, t, p, n_runs_base, n_runs_tuned}``.
    """
    from scipy import stats

    a, b = run_shares(base_df), run_shares(tuned_df)
    rows = []
    for cat in a:
        x, y = a[cat][np.isfinite(a[cat])], b[cat][np.isfinite(b[cat])]
        t = p = np.nan
        if len(x) >= 2 and len(y) >= 2 and (np.ptp(x) > 0 or np.ptp(y) > 0):
            t, p = stats.ttest_ind(x, y, equal_var=False)
        rows.append({"category": cat,
                     "base_mean": _none_if_nan(x.mean()) if len(x) else None,
                     "base_std": _none_if_nan(x.std(ddof=1)) if len(x) > 1 else None,
                     "tuned_mean": _none_if_nan(y.mean()) if len(y) else None,
                     "tuned_std": _none_if_nan(y.std(ddof=1)) if len(y) > 1 else None,
                     "t": _none_if_nan(t), "p": _none_if_nan(p), "n_runs_base": len(x), "n_runs_tuned": len(y)})
    return rows


def group_shares(df, group_size: int = 4) -> list[dict]:
    """Per layer group (``layer // group_size``): mean over runs of each category share.

    Returns:
        rows ``{group, layers, category, share}``.
    """
    if group_size < 1:
        raise OptionError("group_size", f"must be >= 1, got {group_size}")
    rows = []
    for grp, g in df.groupby(df["layer"] // group_size, sort=True):
        shares = run_shares(g)
        layers = sorted(int(x) for x in g["layer"].unique())
        for cat, v in shares.items():
            rows.append({"group": int(grp), "layers": f"{layers[0]}-{layers[-1]}", "category": cat,
                         "share": _none_if_nan(np.nanmean(v)) if np.isfinite(v).any() else None})
    return rows


def plot_groups(base_rows: list[dict], tuned_rows: list[dict], path, title: str = "") -> Path:
    """Figure 3: share per layer group, one colour per category, base dashed, tuned solid (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, cats, name in ((axes[0], TASK_CATEGORIES, "user tasks"), (axes[1], LEVEL_CATEGORIES, "linguistic levels")):
        for i, cat in enumerate(cats):
            color = f"C{i}"
            for rows, style, who in ((base_rows, "--", "base"), (tuned_rows, "-", "tuned")):
                pts = [(r["group"], r["share"]) for r in rows if r["category"] == cat and r["share"] is not None]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, style, color=color, marker="o", label=f"{cat} ({who})")
        ax.set_xlabel("layer group")
        ax.set_ylabel("share of explainable concepts")
        ax.set_title(name)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
