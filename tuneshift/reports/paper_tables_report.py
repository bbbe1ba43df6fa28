"""The paper's Tables 1-2, the position profile and the sweep
(:mod:`tuneshift.stats.paper_tables`) on the terminal and as Markdown (``paper_tables.md``)."""

from __future__ import annotations

from tuneshift.models.pair import PAPER_PAIR, ModelPair
from tuneshift.reports.formatting import markdown_table, mean_std, num, print_table, pval
from tuneshift.stats.paper_tables import GROUP_LABELS, GROUPS, PaperTables, SweepPoint

__all__ = ["print_paper_tables", "print_sweep", "tables_markdown", "sweep_markdown"]


def _head1() -> list[str]:
    return ["group", "followed (2-4) mean±std", "n", "unfollowed (1) mean±std", "n", "Welch t", "p (H1: unf < fol)"]


def _head2(pair: ModelPair) -> list[str]:
    b, t = pair.base_label, pair.tuned_label
    return ["group", f"{b} mean±std", "n", f"{t} mean±std", "n", "Welch t", f"p (H1: {b} < {t})"]


def _rows1(t: PaperTables) -> list[list[str]]:
    return [
        [
            GROUP_LABELS.get(g, g),
            mean_std(r.followed.mean, r.followed.std),
            str(r.followed.n),
            mean_std(r.unfollowed.mean, r.unfollowed.std),
            str(r.unfollowed.n),
            num(r.t, 2),
            pval(r.p),
        ]
        for g, r in t.table1.items()
    ]


def _rows2(t: PaperTables) -> list[list[str]]:
    return [
        [
            GROUP_LABELS.get(g, g),
            mean_std(r.base.mean, r.base.std),
            str(r.base.n),
            mean_std(r.tuned.mean, r.tuned.std),
            str(r.tuned.n),
            num(r.t, 2),
            pval(r.p),
        ]
        for g, r in t.table2.items()
    ]


def _position_rows(t: PaperTables) -> tuple[list[str], list[list[str]]]:
    pos = t.position
    head = ["model"] + [f"{i * 10}-{(i + 1) * 10}%" for i in range(len(pos.base))] + ["middle/ends"]
    rows = [
        [t.pair.base_label] + [num(x) for x in pos.base] + [num(pos.middle_to_ends.get("base"))],
        [t.pair.tuned_label] + [num(x) for x in pos.tuned] + [num(pos.middle_to_ends.get("tuned"))],
    ]
    return head, rows


def print_paper_tables(t: PaperTables, console=None) -> None:
    """Print both tables and the position profile with rich."""
    from rich.console import Console

    console = console or Console()
    b, tu = t.pair.base_label, t.pair.tuned_label
    print_table(
        f"Table 1: {tu} instruction score, followed vs unfollowed (b={t.threshold:g}, p={t.norm_p:g}; "
        "unrated and responses < 5 tokens left out)",
        _head1(),
        _rows1(t),
        console,
        min_width=130,
    )
    print_table(
        f"Table 2: instruction score, {b} vs {tu} (b={t.threshold:g}, p={t.norm_p:g}; all prompts)",
        _head2(t.pair),
        _rows2(t),
        console,
        min_width=130,
    )
    if t.position is not None:
        head, rows = _position_rows(t)
        print_table(
            "Mean importance density by relative prompt position (10 bins, all prompts)",
            head,
            rows,
            console,
            min_width=130,
        )
        pos = t.position
        console.print(
            f"middle share per prompt (bins 20-80% / all): {b} {num(pos.middle_share.get('base'))}, "
            f"{tu} {num(pos.middle_share.get('tuned'))}; paired Wilcoxon one-sided H1 {b} < {tu}: "
            f"p = {pval(pos.wilcoxon_p)} ({pos.n_pairs} prompts)",
            highlight=False,
            markup=False,
        )
    ex = t.excluded
    console.print(
        f"left out: Table 1 {ex.get('table1')}; Table 2 {ex.get('table2')}; "
        f"unlocated instruction spans: {t.n_unlocated}; std with ddof = 0",
        style="dim",
        highlight=False,
        markup=False,
    )


def _sweep_rows(points: list[SweepPoint]) -> tuple[list[str], list[list[str]]]:
    head = ["b", "p"] + [f"T1 {GROUP_LABELS[g]}" for g in GROUPS] + [f"T2 {GROUP_LABELS[g]}" for g in GROUPS]
    rows = [
        [f"{pt.threshold:g}", f"{pt.norm_p:g}"]
        + [pval(pt.table1[g].p) for g in GROUPS]
        + [pval(pt.table2[g].p) for g in GROUPS]
        for pt in points
    ]
    return head, rows


def print_sweep(points: list[SweepPoint], console=None, pair: ModelPair = PAPER_PAIR) -> None:
    """Print the sweep's one-sided p-values: one row per (b, p), Table 1 and Table 2 per group."""
    head, rows = _sweep_rows(points)
    print_table(
        f"Sweep: one-sided p-values of Table 1 (T1, H1: unfollowed < followed) and "
        f"Table 2 (T2, H1: {pair.base_label} < {pair.tuned_label})",
        head,
        rows,
        console,
        left=(),
        min_width=130,
    )


def tables_markdown(t: PaperTables) -> str:
    """Both tables and the position profile as Markdown (used for docs/paper_reproduction.md)."""
    parts = [markdown_table(_head1(), _rows1(t)), "", markdown_table(_head2(t.pair), _rows2(t))]
    if t.position is not None:
        parts += ["", markdown_table(*_position_rows(t))]
    return "\n".join(parts)


def sweep_markdown(points: list[SweepPoint]) -> str:
    """The sweep's p-values as one Markdown table (rows b, p; columns Table 1 and Table 2 per group)."""
    return markdown_table(*_sweep_rows(points))
