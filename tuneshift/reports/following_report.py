"""Reports of ``tuneshift eval-following``: pass-rate tables and side-by-side answers (Markdown)."""

from __future__ import annotations

from tuneshift.tuning.following import FollowingResult

__all__ = ["pass_rate_table", "side_by_side"]


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def pass_rate_table(results: list[FollowingResult]) -> str:
    """Markdown: one row per task type (and "all"), one column per model: the share of items
    passing every check; then, for "all", each check's pass rate per model."""
    rates = [r.rates() for r in results]
    groups = ["all"] + sorted(g for g in rates[0] if g != "all")
    head = "| task | n | " + " | ".join(f"{r.model}: passed" for r in results) + " |"
    lines = [head, "|" + "---|" * (2 + len(results))]
    for g in groups:
        n = rates[0].get(g, {}).get("n", 0)
        cells = " | ".join(_pct(rt.get(g, {}).get("passed")) for rt in rates)
        lines.append(f"| {'**all**' if g == 'all' else g} | {n} | {cells} |")
    lines += ["", "| check (all items) | " + " | ".join(r.model for r in results) + " |",
              "|---|" + "---|" * len(results)]
    for c, label in (("non_empty", "non-empty"), ("not_copy", "not a copy of the prompt (ROUGE-L < 0.5)"),
                     ("eos", "ends with EOS within the limit"), ("task_check", "task-specific check (items that have one)")):
        lines.append(f"| {label} | " + " | ".join(_pct(rt["all"][c]) for rt in rates) + " |")
    return "\n".join(lines)


def _cell(text: str, limit: int = 300) -> str:
    t = text if len(text) <= limit else text[:limit] + " …"
    return t.replace("|", "\\|").replace("\n", "<br>") or "*(empty)*"


def side_by_side(results: list[FollowingResult], ids: list[str] | None = None, n: int = 5) -> str:
    """Markdown: for ``ids`` (default: the first item of the first ``n`` task types), the
    instruction and each model's answer with its verdict (pass, or the failed checks)."""
    by = [{r["id"]: r for r in res.rows} for res in results]
    if ids is None:
        seen, ids = set(), []
        for r in results[0].rows:
            if r["task"] not in seen:
                seen.add(r["task"])
                ids.append(r["id"])
        ids = ids[:n]
    lines = ["| instruction | " + " | ".join(r.model for r in results) + " |", "|---|" + "---|" * len(results)]
    for i in ids:
        first = by[0][i]
        prompt = first["instruction"] + (f"\n\n{first['input']}" if first.get("input") else "")
        cells = []
        for b in by:
            r = b[i]
            failed = [c for c in ("non_empty", "not_copy", "eos", "task_check") if r[c] is False]
            verdict = "**pass**" if r["passed"] else "fail: " + ", ".join(failed)
            cells.append(f"{_cell(r['answer'])}<br>({verdict})")
        lines.append(f"| `{i}`: {_cell(prompt, 400)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
