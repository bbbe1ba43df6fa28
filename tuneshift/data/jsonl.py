"""JSON Lines: the line split shared by every JSONL reader, and a strict object reader.

Lines are split on ``"\\n"`` only (a trailing ``"\\r"`` removed): ``str.splitlines()`` would also
split inside JSON strings holding U+2028, U+0085 etc., which JSON allows unescaped.
"""

from __future__ import annotations

import json
from typing import Iterator

from tuneshift.errors import InputFileError

__all__ = ["jsonl_lines", "read_jsonl_objects"]


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number from 1, line)`` for every non-blank line of ``text``."""
    for lineno, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        if raw.strip():
            yield lineno, raw


def read_jsonl_objects(text: str, where: str) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line; for files that must be read whole.

    Raises:
        InputFileError: a line that is not valid JSON or not a JSON object (``where:line`` named).
    """
    for lineno, raw in jsonl_lines(text):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputFileError(f"{where}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise InputFileError(f"{where}:{lineno}: each line must be a JSON object")
        yield lineno, obj
