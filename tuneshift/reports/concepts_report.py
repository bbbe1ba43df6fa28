"""Concepts comparisons as Markdown: the rotation report (``concepts_rotation.md``,
:class:`~tuneshift.stats.concepts_rotation.RotationComparison`) and the annotator shares, the
paper's Table 5 (``concepts_shares.md``, :class:`~tuneshift.stats.concepts_shares.SharesComparison`)."""

from __future__ import annotations

import numpy as np

from tuneshift.reports.formatting import markdown_table, mean_std, num, pval
from tuneshift.stats.concepts_rotation import DEFAULT_MATCH_THRESHOLD, RotationComparison
from tuneshift.stats.concepts_shares import SharesComparison

__all__ = ["rotation_markdown", "shares_markdown", "shares_section"]


def rotation_markdown(c: RotationComparison) -> str:
    """One table row per layer (principal angles in degrees, overlap, close matches), the
    random-update null when there is one; then :func:`shares_section` when there are annotations."""
    thr = c.layers[0].threshold if c.layers else DEFAULT_MATCH_THRESHOLD
    rows = [
        [
            str(l.layer),
            str(l.rank_base),
            str(l.rank_tuned),
            num(l.angle_mean_degrees, 1),
            num(np.degrees(l.angle_max), 1),
            num(l.overlap),
            str(l.n_matched),
            num(l.share_matched),
            num(l.mean_best_cos),
        ]
        for l in c.layers
    ]
    parts = [
        f"# Concept rotation: {c.base} -> {c.tuned}",
        "Principal angles between the layers' top-R component subspaces (degrees), overlap "
        f"(mean cos^2), and base components with a close match (|cos| >= {thr:g}) in the tuned model.",
        markdown_table(
            [
                "layer",
                "R base",
                "R tuned",
                "mean angle",
                "max angle",
                "overlap",
                "matched",
                "share",
                "mean best abs(cos)",
            ],
            rows,
        ),
    ]
    if c.skipped_layers:
        parts.append(f"Layers in only one run (skipped): {', '.join(map(str, c.skipped_layers))}")
    if c.null is not None:
        zrows = [
            [
                str(t.layer),
                num(t.angle_mean_degrees, 2),
                num(z.angle_mean_degrees, 2),
                num(t.overlap, 4),
                num(z.overlap, 4),
                num(t.share_matched),
                num(z.share_matched),
            ]
            for t, z in c.null_rows()
        ]
        parts += [
            f"## Random-update null (seed {c.null.seed}): {c.null.model}",
            c.null_summary() + ".",
            markdown_table(
                [
                    "layer",
                    "mean angle: tuned",
                    "mean angle: random update (null)",
                    "overlap: tuned",
                    "overlap: null",
                    "matched share: tuned",
                    "matched share: null",
                ],
                zrows,
            ),
        ]
    text = "\n\n".join(parts) + "\n"
    return text + "\n" + shares_section(c.shares) if c.shares is not None else text


def shares_markdown(s: SharesComparison) -> str:
    """A title and :func:`shares_section`."""
    return f"# Concept shares: {s.base} -> {s.tuned}\n\n{shares_section(s)}"


def shares_section(s: SharesComparison) -> str:
    """The Table 5 section (``##`` heading and table), as included in the rotation report."""
    rows = [
        [r.category, mean_std(r.base_mean, r.base_std), mean_std(r.tuned_mean, r.tuned_std), num(r.t), pval(r.p)]
        for r in s.table5
    ]
    return (
        "## Shares of explainable concepts (annotator; mean ± std over runs, ddof 0; Welch's two-sided t-test)"
        "\n\n" + markdown_table(["category", "base", "tuned", "t", "p"], rows) + "\n"
    )
