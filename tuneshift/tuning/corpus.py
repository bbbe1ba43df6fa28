"""Instruction-tuning data: JSONL records and n-gram overlap checks against evaluation prompts.

Record format (one JSON object per line)::

    {"id": "...", "task": "classification", "instruction": "...", "input": "...", "response": "..."}

``instruction`` and ``response`` are required non-empty strings; ``input`` (optional) is the
text the instruction works on; ``id`` and ``task`` are optional labels. The user turn is
``instruction`` alone, or ``instruction + "\\n\\n" + input``.

Overlap: two texts overlap when they share a word 8-gram (lower-cased words of letters and
digits, punctuation ignored), the usual contamination test of instruction-tuning corpora
(e.g. the GPT-3 and FLAN decontamination used 8-13-grams).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tuneshift.data.jsonl import read_jsonl_objects
from tuneshift.errors import InputFileError

__all__ = ["InstructionExample", "load_corpus", "user_text", "words", "word_ngrams", "overlapping_ngrams", "NGRAM"]

NGRAM = 8
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class InstructionExample:
    """One training example. ``user`` (property) is the user turn sent through the chat template."""

    instruction: str
    response: str
    input: str | None = None
    id: str | None = None
    task: str | None = None

    @property
    def user(self) -> str:
        return user_text(self.instruction, self.input)


def user_text(instruction: str, input: str | None = None) -> str:
    """The user turn: ``instruction``, plus a blank line and ``input`` when there is one."""
    return instruction if not input else f"{instruction}\n\n{input}"


def load_corpus(path: str | Path) -> list[InstructionExample]:
    """Read an instruction-tuning JSONL file.

    Raises:
        InputFileError: missing/unreadable file, a line that is not a JSON object, a record
        without a non-empty string ``instruction`` or ``response``, or no records. The message
        names the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"training data {p} does not exist or is not a file")
    out: list[InstructionExample] = []
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read training data {p}: {e}") from None
    for i, rec in read_jsonl_objects(text, str(p)):
        ins, resp, inp = rec.get("instruction"), rec.get("response"), rec.get("input")
        if not isinstance(ins, str) or not ins.strip() or not isinstance(resp, str) or not resp.strip():
            raise InputFileError(f"{p}:{i}: needs non-empty string fields 'instruction' and 'response'")
        if inp is not None and not isinstance(inp, str):
            raise InputFileError(f"{p}:{i}: 'input' must be a string")
        out.append(
            InstructionExample(
                ins,
                resp,
                inp or None,
                None if rec.get("id") is None else str(rec["id"]),
                None if rec.get("task") is None else str(rec["task"]),
            )
        )
    if not out:
        raise InputFileError(f"training data {p} has no records")
    return out


def words(text: str) -> list[str]:
    """Lower-cased words (runs of ASCII letters and digits; other characters separate)."""
    return _WORD.findall(text.lower())


def word_ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """Every word n-gram of ``text`` (empty if it has fewer than ``n`` words)."""
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def overlapping_ngrams(corpus_texts: Iterable[str], eval_texts: Sequence[str], n: int = NGRAM) -> dict[str, set]:
    """Evaluation texts that share an n-gram with any corpus text.

    Returns:
        ``{eval_text: {shared n-grams}}`` for the overlapping evaluation texts only (empty = clean).
    """
    grams: set[tuple[str, ...]] = set()
    for t in corpus_texts:
        grams |= word_ngrams(t, n)
    out = {}
    for e in eval_texts:
        shared = word_ngrams(e, n) & grams
        if shared:
            out[e] = shared
    return out
