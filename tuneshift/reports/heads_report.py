"""A :class:`~tuneshift.stats.heads_compare.HeadsComparison` (Table 3, knowledge overlap, words) as Markdown."""

from __future__ import annotations

from tuneshift.reports.formatting import markdown_table, num, pval
from tuneshift.stats.heads_compare import HeadsComparison, Table3Row
from tuneshift.stats.tests import SampleStats

__all__ = ["heads_markdown"]


def _p_cell(r: Table3Row) -> str:
    """The p cell of a Table 3 row: the p-value, or why there is none (the sample rule)."""
    return r.reason if r.reason else pval(r.p)


def _stats_cell(s: SampleStats) -> str:
    return f"{num(s.mean)} ({num(s.std)}, {s.n})"


def heads_markdown(c: HeadsComparison) -> str:
    """The report of a heads comparison (``heads_comparison.md``): Table 3, the Jaccard overlap per
    layer, rising and falling words, the random-update null when there is one, and the notes."""
    changes = lambda rows: [[r.word, str(r.base), str(r.tuned), f"{r.change:+d}"] for r in rows]  # noqa: E731
    parts = [
        f"# Heads comparison: {c.base.model} -> {c.tuned.model}",
        f"Vectors: base {c.base.vectors}, tuned {c.tuned.vectors}. "
        f"rms_factor: base {c.base.rms_factor}, tuned {c.tuned.rms_factor}. Layers compared: {len(c.layers)}.",
        "## Table 3: fraction of changed heads where the word's knowledge count increased",
        markdown_table(
            ["layers", "instruction verbs mean (std, n)", "general verbs mean (std, n)", "Welch t", "p (two-sided)"],
            [[r.group, _stats_cell(r.instruction), _stats_cell(r.general), num(r.t, 2), _p_cell(r)] for r in c.table3],
        ),
        "## Knowledge overlap (Jaccard, mean over heads)",
        markdown_table(
            ["layer", "mean Jaccard", "heads"], [[str(r.layer), num(r.mean), str(r.n_heads)] for r in c.jaccard]
        ),
        "## Words whose total count rises most",
        markdown_table(["word", "base", "tuned", "change"], changes(c.rising)),
        "## Words whose total count falls most",
        markdown_table(["word", "base", "tuned", "change"], changes(c.falling)),
    ]
    if c.null is not None:
        z = c.null
        parts += [
            f"## Random-update null (seed {z.seed}): {z.info.model}",
            c.null_summary() + ".",
            markdown_table(
                ["layer", "mean Jaccard: tuned", "mean Jaccard: random update (null)"],
                [[str(l), num(t), num(n)] for l, t, n in c.null_rows()],
            ),
            "Table 3, base -> random update (null):",
            markdown_table(
                [
                    "layers",
                    "instruction verbs mean (std, n)",
                    "general verbs mean (std, n)",
                    "Welch t",
                    "p (two-sided)",
                ],
                [
                    [r.group, _stats_cell(r.instruction), _stats_cell(r.general), num(r.t, 2), _p_cell(r)]
                    for r in z.table3
                ],
            ),
        ]
    if c.notes:
        parts += ["## Notes", "\n".join(f"- {n}" for n in c.notes)]
    return "\n\n".join(parts) + "\n"
