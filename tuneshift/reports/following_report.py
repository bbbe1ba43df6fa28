"""Reports of ``tuneshift eval-following``: pass-rate tables and side-by-side answers (Markdown),
and the Markdown twins of :class:`~tuneshift.tuning.following.FollowingEvaluation`
(``following.md``) and :class:`~tuneshift.tuning.following.FollowingResult` (``following_answers.md``).

Numbers and tables through :mod:`tuneshift.reports.formatting` (shares as percentages, ``–``
when undefined).
"""

from __future__ import annotations

from tuneshift.reports.formatting import markdown_table, pct
from tuneshift.tuning.following import CHECKS, FollowingEvaluation, FollowingResult

__all__ = ["pass_rate_table", "side_by_side", "evaluation_markdown", "following_result_markdown"]

_CHECK_LABELS = {
    "non_empty": "non-empty",
    "not_copy": "not a copy of the prompt (ROUGE-L < 0.5)",
    "eos": "ends with EOS within the limit",
    "task_check": "task-specific check (items that have one)",
}


def pass_rate_table(results: list[FollowingResult]) -> str:
    """Markdown: one row per task type (and "all"), one column per model: the share of items
    passing every check; then, for "all", each check's pass rate per model.

    Args:
        results: one or more models' results on the same set (task types from the first).
    """
    rates = [r.rates() for r in results]
    groups = ["all"] + [g for g in sorted(rates[0]) if g != "all"]
    rows = []
    for g in groups:
        n = rates[0][g].n if g in rates[0] else 0
        rows.append(
            ["**all**" if g == "all" else g, str(n)] + [pct(rt[g].passed) if g in rt else pct(None) for rt in rates]
        )
    checks = [[_CHECK_LABELS[c]] + [pct(getattr(rt["all"], c)) for rt in rates] for c in CHECKS]
    return (
        markdown_table(["task", "n"] + [f"{r.model}: passed" for r in results], rows)
        + "\n\n"
        + markdown_table(["check (all items)"] + [r.model for r in results], checks)
    )


def _cell(text: str, limit: int = 300) -> str:
    """``text`` cut at ``limit`` characters, line breaks as ``<br>`` (pipes are escaped by the table)."""
    t = text if len(text) <= limit else text[:limit] + " …"
    return t.replace("\n", "<br>") or "*(empty)*"


def side_by_side(results: list[FollowingResult], ids: list[str] | None = None, n: int = 5) -> str:
    """Markdown: for ``ids`` (default: the first item of the first ``n`` task types), the
    instruction and each model's answer with its verdict (pass, or the failed checks).

    Raises:
        KeyError: an id that is not in every result.
    """
    by = [{r.id: r for r in res.rows} for res in results]
    if ids is None:
        seen, ids = set(), []
        for r in results[0].rows:
            if r.task not in seen:
                seen.add(r.task)
                ids.append(r.id)
        ids = ids[:n]
    rows = []
    for i in ids:
        first = by[0][i]
        prompt = first.instruction + (f"\n\n{first.input}" if first.input else "")
        cells = []
        for b in by:
            r = b[i]
            failed = [c for c in CHECKS if getattr(r, c) is False]
            verdict = "**pass**" if r.passed else "fail: " + ", ".join(failed)
            cells.append(f"{_cell(r.answer)}<br>({verdict})")
        rows.append([f"`{i}`: {_cell(prompt, 400)}"] + cells)
    return markdown_table(["instruction"] + [r.model for r in results], rows)


def evaluation_markdown(ev: FollowingEvaluation) -> str:
    """The report of ``tuneshift eval-following`` (``following.md``): title, :func:`pass_rate_table`
    and, when ``ev.examples`` > 0, :func:`side_by_side` of that many task types."""
    md = (
        f"# eval-following\n\n{ev.n_items} held-out instructions, greedy, at most {ev.max_new_tokens} "
        f"new tokens.\n\n{pass_rate_table(ev.results)}\n"
    )
    if ev.examples:
        md += f"\n## Side by side\n\n{side_by_side(ev.results, n=ev.examples)}\n"
    return md


def following_result_markdown(r: FollowingResult) -> str:
    """One model's report: :func:`evaluation_markdown` of an evaluation holding only ``r``."""
    return evaluation_markdown(FollowingEvaluation(len(r.rows), r.max_new_tokens, [r]))
