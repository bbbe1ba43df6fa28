"""Render a :class:`~tuneshift.stats.compare.RunComparison` as terminal tables or Markdown, and a
:class:`~tuneshift.stats.compare.Sensitivity` grid as Markdown."""

from __future__ import annotations

from tuneshift.reports.formatting import markdown_table, mean_std, num, print_table, pval
from tuneshift.stats.compare import RunComparison, Sensitivity

WEIGHT_NOTE = (
    "Weights of the packaged models are dequantised 4-6-bit GGUF values: attribution directions "
    "are meaningful, fine-grained weight statistics are not faithful to the original checkpoints."
)


PAIRED_HEADER = [
    "control",
    "group",
    "pairs",
    "base mean",
    "tuned mean",
    "tuned - base",
    "95% CI",
    "Wilcoxon p",
    "paired t p",
    "Holm p",
]


def _paired_rows(c: RunComparison, groups: bool = True) -> list[list[str]]:
    """Paired rows; below the sample rule the CI cell says why ("too few pairs (5)") and the p cells
    are empty ("–"); the pre-declared primary row is labelled "(primary)"."""
    rows = []
    for r in c.paired:
        if not (groups or r.group == "overall"):
            continue
        reason = getattr(r, "reason", None)
        name = r.control + (" (primary)" if getattr(r, "role", "control") == "primary" else "")
        rows.append(
            [
                name,
                r.group,
                str(r.n_pairs),
                num(r.base_mean),
                num(r.tuned_mean),
                num(r.mean_diff),
                reason if reason else f"[{num(r.ci_low)}, {num(r.ci_high)}]",
                "–" if reason else pval(r.wilcoxon_p),
                "–" if reason else pval(r.p),
                ("–" if reason else pval(r.p_holm)) if r.group != "overall" else "",
            ]
        )
    return rows


def _protocol_line(c: RunComparison) -> str:
    pb = c.protocol.get("base", {})
    if not pb:
        return ""
    keys = ("responses", "prompt_form", "chat_template", "join", "max_new_tokens")
    same = all(pb.get(k) == c.protocol.get("tuned", {}).get(k) for k in keys)
    desc = ", ".join(f"{k} {pb.get(k)}" for k in keys if pb.get(k) is not None)
    return f"protocol ({'both runs' if same else 'base run; THE RUNS DIFFER, see the warnings'}): {desc}"


def _dropped_line(c: RunComparison) -> str:
    parts = []
    for side, d in (("base", c.dropped.base), ("tuned", c.dropped.tuned)):
        for why, ids in d.items():
            shown = ", ".join(ids[:6]) + (f", ... ({len(ids)} in all)" if len(ids) > 6 else "")
            parts.append(f"{side} {why}: {shown}")
    return "dropped from the paired statistics: " + ("; ".join(parts) if parts else "none")


def _contrast_header(c: RunComparison) -> list[str]:
    return [
        "group",
        f"{c.pair.base_label} mean±std",
        "n",
        f"{c.pair.tuned_label} mean±std",
        "n",
        "Welch t",
        "p",
        "Hedges g",
        "pairs",
        "Wilcoxon p",
    ]


def _contrast_rows(c: RunComparison) -> list[list[str]]:
    return [
        [
            k.group,
            mean_std(k.base.mean, k.base.std),
            str(k.base.n),
            mean_std(k.tuned.mean, k.tuned.std),
            str(k.tuned.n),
            num(k.t, 2),
            getattr(k, "reason", None) or pval(k.p),
            num(k.hedges_g, 2),
            str(k.n_pairs),
            getattr(k, "wilcoxon_reason", None) or pval(k.wilcoxon_p),
        ]
        for k in c.contrasts
    ]


FOLLOW_HEADER = ["model", "group", "followed mean±std", "n", "unfollowed mean±std", "n", "Welch t", "p", "Hedges g"]


def _contrast_note(c: RunComparison) -> str:
    return (
        f"Welch's t-test and Wilcoxon signed-rank (paired prompts) are one-sided, H1: {c.pair.base_label} < "
        f"{c.pair.tuned_label}; Hedges' g > 0 when the tuned model scores higher; std with ddof = 0."
    )


def _follow_rows(c: RunComparison) -> list[list[str]]:
    label = {"base": c.pair.base_label, "tuned": c.pair.tuned_label}
    return [
        [
            label.get(f.model, f.model),
            f.group,
            mean_std(f.followed.mean, f.followed.std),
            str(f.followed.n),
            mean_std(f.unfollowed.mean, f.unfollowed.std),
            str(f.unfollowed.n),
            num(f.t, 2),
            getattr(f, "reason", None) or pval(f.p),
            num(f.hedges_g, 2),
        ]
        for f in c.followed
    ]


def _position_table(c: RunComparison) -> tuple[list[str], list[list[str]]]:
    head = ["model"] + [f"{i * 10}-{(i + 1) * 10}%" for i in range(len(c.position.base))]
    rows = [
        [c.pair.base_label] + [num(x, 2) for x in c.position.base],
        [c.pair.tuned_label] + [num(x, 2) for x in c.position.tuned],
    ]
    return head, rows


def sign_note(c: RunComparison) -> str:
    """What the scores did with negative attributions, e.g. "negative attributions clipped at 0
    (the paper's rule, sign policy clip)"."""
    signs = {c.settings.sign_of(c.protocol.get(side)) for side in ("base", "tuned")}
    text = {
        "clip": "negative attributions clipped at 0 (the paper's rule, sign policy clip)",
        "abs": "negative attributions counted by magnitude (sign policy abs; the paper clips them at 0)",
        "signed": "negative attributions kept (sign policy signed: net densities, scores may be negative; "
        "the paper clips them at 0)",
    }
    return "; ".join(f"{text[sg]}" for sg in sorted(signs))


def _settings_note(c: RunComparison) -> str:
    s = c.settings
    if s.as_stored:
        return f"scores as stored in the runs; {sign_note(c)}"
    parts = [
        f"{k}={v:g}"
        for k, v in (
            ("b", s.threshold),
            ("p", s.norm_p),
            ("L", s.levels),
            ("min response tokens", s.min_response_tokens),
        )
        if v is not None
    ]
    if s.sign is not None:
        parts.append(f"sign={s.sign}")
    return "re-scored with " + ", ".join(parts) + f"; {sign_note(c)}"


def print_comparison(c: RunComparison, console=None) -> None:
    """Print the comparison tables with rich."""
    from rich.console import Console

    console = console or Console()
    if c.paired:
        print_table(
            f"Paired difference of the instruction score, {c.pair.tuned_label} - {c.pair.base_label}, over "
            "records both scored (bootstrap 95% CI; two-sided tests; Holm over groups)",
            PAIRED_HEADER,
            _paired_rows(c, groups=False),
            console,
            left=(0, 1),
            min_width=120,
        )
        print_table(
            "Paired difference of the score by group",
            PAIRED_HEADER,
            [r for r in _paired_rows(c) if r[0] == "score" and r[1] != "overall"],
            console,
            left=(0, 1),
            min_width=120,
        )
        console.print(_protocol_line(c), style="dim", highlight=False, markup=False)
        console.print(_dropped_line(c), style="dim", highlight=False, markup=False)
        if c.example_record:
            console.print(
                f"example (median paired difference): {c.example_record}", style="dim", highlight=False, markup=False
            )
    print_table(
        f"Instruction score: {c.pair.base_label} (base) vs {c.pair.tuned_label} (tuned), all valid records "
        "(the paper's unpaired view)",
        _contrast_header(c),
        _contrast_rows(c),
        console,
        min_width=120,
    )
    console.print(_contrast_note(c), style="dim", highlight=False, markup=False)
    if c.followed:
        print_table(
            "Followed (rating 2-4) vs unfollowed (rating 1); one-sided, H1: unfollowed < followed",
            FOLLOW_HEADER,
            _follow_rows(c),
            console,
            left=(0, 1),
            min_width=120,
        )
    print_table(
        "Mean importance density by relative prompt position (10 bins)", *_position_table(c), console, min_width=120
    )
    for w in c.warnings:
        console.print(f"warning: {w}", style="yellow", highlight=False, markup=False)
    ex = c.excluded
    console.print(
        f"excluded: base {ex.get('base', {})}, tuned {ex.get('tuned', {})}; {_settings_note(c)}; std is ddof=0; "
        f"one-sided tests, H1: base < tuned{'' if c.same_dataset else '; WARNING: the runs used different prompt files'}",
        style="dim",
        highlight=False,
        markup=False,
    )


def comparison_markdown(c: RunComparison) -> str:
    """The comparison as a Markdown document."""
    parts = [
        f"# Instruction importance: {c.pair.base_label} (base) vs {c.pair.tuned_label} (tuned)",
        "",
        f"Runs: `{c.base_run}` and `{c.tuned_run}` ({_settings_note(c)}). Score = sum of importance density over "
        "instruction tokens / log2(2 + n) (Wu et al. 2024). " + _contrast_note(c),
        "",
    ]
    if c.no_pairs_reason():  # a report of nothing must say so at the top
        parts += [f"**{c.no_pairs_reason()}.**", ""]
    if c.paired:
        parts += [
            "## Paired differences (records both models scored)",
            "",
            f"tuned - base; bootstrap 95% CI (BCa); Wilcoxon signed-rank and paired t two-sided; Holm over "
            f"groups. {_protocol_line(c)}. {_dropped_line(c)}."
            + (f" Example record (median paired difference): `{c.example_record}`." if c.example_record else ""),
            "",
            markdown_table(PAIRED_HEADER, _paired_rows(c)),
            "",
            "## Unpaired (the paper's Welch test over all valid records)",
            "",
        ]
    parts += [markdown_table(_contrast_header(c), _contrast_rows(c))]
    if c.followed:
        parts += [
            "",
            "## Followed (rating 2-4) vs unfollowed (rating 1)",
            "",
            "Welch's t-test one-sided, H1: unfollowed < followed.",
            "",
            markdown_table(FOLLOW_HEADER, _follow_rows(c)),
        ]
    parts += [
        "",
        "## Position profile (mean density per relative-position bin)",
        "",
        markdown_table(*_position_table(c)),
        "",
        f"Excluded records: {c.excluded}.",
        "",
    ]
    parts += [f"**Warning:** {w}" + "\n" for w in c.warnings]
    parts += [WEIGHT_NOTE, ""]
    return "\n".join(parts)


def sensitivity_markdown(s: Sensitivity) -> str:
    """The sensitivity grid as one line (shares of grid points whose CI lies above / below 0)
    and a Markdown table, one row per grid point (``sensitivity.md``)."""

    def v(x):
        return "own" if x is None else f"{x:g}"

    with_sign = any(r.sign is not None for r in s.rows)
    head = (
        ["b", "p", "L", "min tokens", "max tokens"]
        + (["sign"] if with_sign else [])
        + ["pairs", "base", "tuned", "tuned - base", "95% CI", "Wilcoxon p"]
    )
    rows = [
        [
            v(r.threshold),
            v(r.norm_p),
            v(r.levels),
            v(r.min_response_tokens),
            "all" if r.max_response_tokens is None else str(r.max_response_tokens),
        ]
        + ([r.sign or "own"] if with_sign else [])
        + [
            str(r.paired.n_pairs),
            num(r.paired.base_mean),
            num(r.paired.tuned_mean),
            num(r.paired.mean_diff),
            f"[{num(r.paired.ci_low)}, {num(r.paired.ci_high)}]",
            pval(r.paired.wilcoxon_p),
        ]
        for r in s.rows
    ]
    return (
        f"Sensitivity of the paired difference {s.pair.tuned_label} - {s.pair.base_label}: CI above 0 at "
        f"{100 * s.share_positive():.0f}% of the grid points, below 0 at {100 * s.share_negative():.0f}%.\n\n"
        + markdown_table(head, rows)
        + "\n"
    )
