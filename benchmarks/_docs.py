"""Write a benchmark's result block into ``docs/benchmarks.md`` (shared by the benchmark scripts)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_block(name: str, lines: list[str], heading: str, intro: str) -> Path:
    """Replace the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` with ``lines``;
    if the markers are missing, append ``## heading``, ``intro`` and the block. Returns the doc path."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = "\n".join([start, *lines, end])
    text = DOC.read_text()
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n{intro.strip()}\n\n{block}\n"
    DOC.write_text(text)
    return DOC
