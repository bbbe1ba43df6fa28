"""Render a :class:`~tuneshift.stats.compare.RunComparison` as a terminal table or Markdown."""

from __future__ import annotations

import math

from tuneshift.stats.compare import RunComparison

WEIGHT_NOTE = (
    "Weights of the packaged models are dequantised 4-6-bit GGUF values: attribution directions "
    "are meaningful, fine-grained weight statistics are not faithful to the original checkpoints."
)


def _f(x: float, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{nd}f}"


def _p(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.3f}"


def _contrast_rows(c: RunComparison) -> list[list[str]]:
    rows = []
    for k in c.contrasts:
        rows.append([
            k.group, f"{_f(k.base.mean)}±{_f(k.base.std)}", str(k.base.n), f"{_f(k.tuned.mean)}±{_f(k.tuned.std)}",
            str(k.tuned.n), _f(k.t, 2), _p(k.p), _f(k.hedges_g, 2), str(k.n_pairs), _p(k.wilcoxon_p),
        ])
    return rows


CONTRAST_HEADER = ["group", "base mean±std", "n", "tuned mean±std", "n", "Welch t", "p", "Hedges g", "pairs", "Wilcoxon p"]
FOLLOW_HEADER = ["model", "group", "followed mean±std", "n", "unfollowed mean±std", "n", "Welch t", "p", "Hedges g"]
CONTRAST_NOTE = ("Welch's t-test and Wilcoxon signed-rank (paired prompts) are one-sided, H1: base < tuned; "
                 "Hedges' g > 0 when the tuned model scores higher; std with ddof = 0.")


def _follow_rows(c: RunComparison) -> list[list[str]]:
    return [
        [f.model, f.group, f"{_f(f.followed.mean)}±{_f(f.followed.std)}", str(f.followed.n),
         f"{_f(f.unfollowed.mean)}±{_f(f.unfollowed.std)}", str(f.unfollowed.n), _f(f.t, 2), _p(f.p), _f(f.hedges_g, 2)]
        for f in c.followed
    ]


def print_comparison(c: RunComparison, console=None) -> None:
    """Print the comparison tables with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal and console.width < 120:  # logs and pipes: do not squeeze the tables
        console.width = 120
    t = Table(title=f"Instruction score: {c.base_model} (base) vs {c.tuned_model} (tuned)", title_justify="left",
              caption=CONTRAST_NOTE, caption_justify="left")
    for h in CONTRAST_HEADER:
        t.add_column(h, justify="left" if h == "group" else "right")
    for r in _contrast_rows(c):
        t.add_row(*r)
    console.print(t)
    if c.followed:
        f = Table(title="Followed (rating 2-4) vs unfollowed (rating 1); one-sided, H1: unfollowed < followed",
                  title_justify="left")
        for h in FOLLOW_HEADER:
            f.add_column(h)
        for r in _follow_rows(c):
            f.add_row(*r)
        console.print(f)
    p = Table(title="Mean importance density by relative prompt position (10 bins)", title_justify="left")
    p.add_column("model")
    for i in range(len(c.position.base)):
        p.add_column(f"{i * 10}-{(i + 1) * 10}%", justify="right")
    p.add_row("base", *[_f(x, 2) for x in c.position.base])
    p.add_row("tuned", *[_f(x, 2) for x in c.position.tuned])
    console.print(p)
    for w in c.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False, markup=True)
    ex = c.excluded
    console.print(
        f"[dim]excluded: base {ex.get('base', {})}, tuned {ex.get('tuned', {})}; std is ddof=0; "
        f"one-sided tests, H1: base < tuned{'' if c.same_dataset else '; WARNING: the runs used different prompt files'}[/dim]"
    )


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def comparison_markdown(c: RunComparison) -> str:
    """The comparison as a Markdown document."""
    parts = [
        f"# Instruction importance: {c.base_model} (base) vs {c.tuned_model} (tuned)",
        "",
        f"Runs: `{c.base_run}` and `{c.tuned_run}`. Score = sum of importance density over instruction "
        "tokens / log2(2 + n) (Wu et al. 2024). " + CONTRAST_NOTE,
        "",
        _md_table(CONTRAST_HEADER, _contrast_rows(c)),
    ]
    if c.followed:
        parts += ["", "## Followed (rating 2-4) vs unfollowed (rating 1)", "",
                  "Welch's t-test one-sided, H1: unfollowed < followed.", "", _md_table(FOLLOW_HEADER, _follow_rows(c))]
    head = ["model"] + [f"{i * 10}-{(i + 1) * 10}%" for i in range(len(c.position.base))]
    parts += ["", "## Position profile (mean density per relative-position bin)", "",
              _md_table(head, [["base"] + [_f(x, 2) for x in c.position.base], ["tuned"] + [_f(x, 2) for x in c.position.tuned]]),
              "", f"Excluded records: {c.excluded}.", ""]
    parts += [f"**Warning:** {w}" + "\n" for w in c.warnings]
    parts += [WEIGHT_NOTE, ""]
    return "\n".join(parts)
