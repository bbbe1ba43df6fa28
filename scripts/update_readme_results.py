"""Write the findings table that ``tuneshift demo`` printed into the README's result section.

    .venv/bin/python scripts/update_readme_results.py tuneshift-demo

Replaces the text between ``<!-- demo-findings:start -->`` and ``<!-- demo-findings:end -->`` in
README.md with ``OUT/findings.md`` as the demo wrote it (the same cells as the terminal table
and the report's first section), so the README's numbers are the demo's and nothing else.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- demo-findings:start -->", "<!-- demo-findings:end -->"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    md = Path(argv[0]) / "findings.md"
    if not md.is_file():
        print(f"error: {md} does not exist: run `tuneshift demo --out {argv[0]}` first", file=sys.stderr)
        return 2
    body = md.read_text(encoding="utf-8").strip()
    body = re.sub(r"^## Findings: .*\n+", "", body)  # the README has its own heading
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"error: {README} has no {START} ... {END} block", file=sys.stderr)
        return 2
    text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: f"{START}\n{body}\n{END}", text, flags=re.S)
    README.write_text(text, encoding="utf-8")
    print(f"wrote the findings of {md} into {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
