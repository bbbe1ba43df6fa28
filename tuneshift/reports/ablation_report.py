"""The ablation comparison (:class:`~tuneshift.stats.ablation_compare.AblationComparison`) as
Markdown and on the terminal. Nothing is coloured: an interval is shown only where the sample
rule allows it, and "too few (n)" / "no variance" where it does not. ``ablation_comparison.md`` is
written by :func:`tuneshift.reports.markdown.save_with_markdown`."""

from __future__ import annotations

import math

from tuneshift.reports.formatting import markdown_table, print_table, pval

__all__ = ["ablation_tables", "ablation_markdown", "print_ablation"]


def _n(x: float, nd: int = 3) -> str:
    return "–" if not math.isfinite(x) else f"{x:+.{nd}f}".replace("-", "−")


def _ci(lo: float, hi: float, reason: str | None, nd: int = 3) -> str:
    if reason:
        return reason
    return f"[{_n(lo, nd)}, {_n(hi, nd)}]" if math.isfinite(lo) and math.isfinite(hi) else "–"


def ablation_tables(c) -> list[tuple[str, list[str], list[list[str]]]]:
    """``[(title, headers, rows)]``: the paired contrasts, the faithfulness and the swap shares."""
    contrasts = [
        [
            f"{x.span} / {x.variant}" + (" (primary)" if x.role == "primary" else ""),
            str(x.n),
            _n(x.base_mean),
            _n(x.tuned_mean),
            _n(x.diff),
            _ci(x.ci_low, x.ci_high, x.reason),
            pval(x.wilcoxon_p) if x.reason is None else "–",
            pval(x.t_p) if x.reason is None else "–",
        ]
        for x in c.contrasts
    ]
    faith = [
        [
            f.side,
            f.model,
            f.variant,
            str(f.n),
            _n(f.rho, 2),
            _ci(f.ci_low, f.ci_high, f.reason, 2),
            pval(f.p) if f.reason is None else "–",
        ]
        for f in c.faithfulness
    ]
    shares = [
        [
            s.side,
            s.model,
            f"{s.n_positive}/{s.n}",
            "–" if not math.isfinite(s.share) else f"{s.share:.2f}",
            s.reason or (f"[{s.ci_low:.2f}, {s.ci_high:.2f}]" if math.isfinite(s.ci_low) else "–"),
        ]
        for s in c.swap_shares
    ]
    return [
        (
            f"Ablation effect, tuned − base (nats per response token; protocol {c.protocol})",
            ["span / variant", "n", "base", "tuned", "tuned − base", "95% CI", "Wilcoxon p", "paired t p"],
            contrasts,
        ),
        (
            "Faithfulness: Spearman ρ of instruction score vs instruction ablation effect",
            ["model", "spec", "variant", "n", "ρ", "95% CI", "p"],
            faith,
        ),
        (
            "Swap share: records whose response loses log-probability when the instruction is swapped",
            ["model", "spec", "positive", "share", "95% CI (Wilson)"],
            shares,
        ),
    ]


READING = (
    "effect = log p(response | prompt) − log p(response | prompt with the span ablated), per response token; "
    "positive: the span supported the response. Rows below the minimum sample (n < {min_n}) or without "
    "variance show no interval or p-value."
)


def ablation_markdown(c) -> str:
    """The comparison as a Markdown document."""
    parts = [f"# Ablation: {c.base_model} → {c.tuned_model}", READING.format(min_n=c.min_n)]
    for title, headers, rows in ablation_tables(c):
        parts += [f"## {title}", markdown_table(headers, rows) if rows else "(none)"]
    parts += [f"* {n}" for n in c.notes]
    return "\n\n".join(parts) + "\n"


def print_ablation(c, console) -> None:
    """The comparison on ``console`` (rich tables on a terminal, Markdown outside one)."""
    for title, headers, rows in ablation_tables(c):
        if rows:
            print_table(title, headers, rows, console, left=(0, 1) if "spec" in headers else (0,))
    console.print(READING.format(min_n=c.min_n), markup=False, highlight=False)
    for n in c.notes:
        console.print(f"* {n}", markup=False, highlight=False)
