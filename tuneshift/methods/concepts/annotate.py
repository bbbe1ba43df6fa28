"""Annotator building blocks (partial): prompts, robust answer parsing, an SQLite answer cache.

The paper (Wu et al. 2024, feed-forward explanation) names each principal component with an
LLM in three stages: (1) the concept shared by its top words, or "Cannot tell"; (2) the
linguistic level of an explainable concept; (3) the user tasks it serves. This module has the
pieces that do not depend on a model server:

* :func:`concept_prompt`, :func:`level_prompt`, :func:`tasks_prompt`: the three prompts with
  few-shot examples written for this project (not the paper's wording);
* :func:`parse_concept`, :func:`parse_level`, :func:`parse_tasks`: answers -> labels, tolerant
  of case, punctuation, quotes, prefixes such as ``Answer:`` and extra words; an answer that
  cannot be parsed (nothing recognisable, or an ambiguous mix) gives :data:`UNPARSED`, never a guess;
* :class:`AnswerCache`: every answer on disk in SQLite, keyed by backend, model, prompt,
  sampling parameters and run index;
* :func:`annotate_component`: the three stages for one component and one run through any
  ``complete(prompt, params, run) -> str`` callable, using the cache.

The backends (``local:SPEC``, ``openai:MODEL``) are in
:mod:`tuneshift.methods.concepts.annotators`, the run driver in
:mod:`tuneshift.methods.concepts.annotate_run`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["UNPARSED", "CANNOT_TELL", "LEVELS", "TASKS", "concept_prompt", "level_prompt", "tasks_prompt",
           "parse_concept", "parse_level", "parse_tasks", "cache_key", "AnswerCache", "ComponentLabels",
           "annotate_component"]

UNPARSED = "unparsed"
CANNOT_TELL = "Cannot tell"
LEVELS = ("phonology", "morphology", "syntax", "semantics")
TASKS = ("daily writing", "literary writing", "professional writing", "math", "coding", "translation", "none")

_CONCEPT_SHOTS = [
    ("january, march, october, july, december, april, spring, monthly, summer, week, calendar, autumn, june, may, season",
     "Months and seasons of the year"),
    ("function, return, variable, loop, array, string, class, compile, debug, syntax, integer, null, boolean, parse, script",
     "Programming and source code"),
    ("blue, ran, however, tiny, seven, oxygen, laugh, beneath, carpet, thus, gently, ocean, ninety, sharp, whom",
     CANNOT_TELL),
]
_LEVEL_SHOTS = [("Past-tense verb endings", "morphology"), ("Months and seasons of the year", "semantics"),
                ("Prepositions introducing a phrase", "syntax"), ("Words that rhyme with -ight", "phonology")]
_TASK_SHOTS = [("Programming and source code", "coding"), ("Arithmetic operations and numbers", "math"),
               ("Words of French and Spanish origin", "translation"),
               ("Formal business correspondence", "professional writing, daily writing"),
               ("Poetic imagery of the sea", "literary writing"), ("Chemical elements", "none")]


def concept_prompt(words: Sequence[str]) -> str:
    """Stage 1 prompt: the one concept shared by ``words`` (the paper uses the top 15), or "Cannot tell".

    Raises:
        ValueError: no words.
    """
    if not words:
        raise ValueError("concept_prompt needs at least one word")
    shots = "\n\n".join(f"Words: {w}\nConcept: {c}" for w, c in _CONCEPT_SHOTS)
    return ("Here is a list of words. If more than half of them share one concept, describe that concept in a few "
            f"words. Otherwise answer exactly \"{CANNOT_TELL}\". Answer with the concept only.\n\n{shots}\n\n"
            f"Words: {', '.join(words)}\nConcept:")


def level_prompt(concept: str) -> str:
    """Stage 2 prompt: the linguistic level of ``concept`` (one of :data:`LEVELS`)."""
    shots = "\n\n".join(f"Concept: {c}\nLevel: {l}" for c, l in _LEVEL_SHOTS)
    return ("Which linguistic level does this concept belong to: phonology, morphology, syntax or semantics? "
            f"Answer with one word.\n\n{shots}\n\nConcept: {concept}\nLevel:")


def tasks_prompt(concept: str) -> str:
    """Stage 3 prompt: the user tasks ``concept`` serves (several of :data:`TASKS`, or none)."""
    shots = "\n\n".join(f"Concept: {c}\nTasks: {t}" for c, t in _TASK_SHOTS)
    return ("Which user tasks of a chat assistant does this concept help with? Choose one or more of: daily writing, "
            "literary writing, professional writing, math, coding, translation; or none. Answer with the task "
            f"names separated by commas.\n\n{shots}\n\nConcept: {concept}\nTasks:")


_PREFIX = re.compile(r"^\s*(?:answer|concept|level|tasks?|linguistic level|a)\s*[:\-]\s*", re.I)
_CANNOT = re.compile(r"\b(?:can ?not|can't|cannot|unable to)\s+(?:tell|determine|say|identify)\b", re.I)


def _first_line(answer: str) -> str:
    for line in (answer or "").strip().splitlines():
        line = line.replace("**", "").replace("__", "").strip().lstrip("#>-* ").strip()
        line = _PREFIX.sub("", line).strip().strip("\"'`*").strip()
        if line:
            return line
    return ""


def parse_concept(answer: str) -> tuple[str, bool | None]:
    """Stage 1 answer -> ``(concept, explainable)``.

    Returns:
        ``(CANNOT_TELL, False)`` when the answer says it cannot tell; ``(text, True)`` with the
        first non-empty line (prefix such as ``Concept:``, quotes and the final full stop
        removed); ``(UNPARSED, None)`` for an empty answer.
    """
    if _CANNOT.search(answer or ""):
        return CANNOT_TELL, False
    line = _first_line(answer).rstrip(".").strip()
    return (line, True) if line else (UNPARSED, None)


_LEVEL_PATTERNS = {
    "phonology": r"phonolog\w*|phonetic\w*", "morphology": r"morpholog\w*",
    "syntax": r"syntax|syntactic\w*", "semantics": r"semantic\w*",
}


def parse_level(answer: str) -> str:
    """Stage 2 answer -> one of :data:`LEVELS` (adjectives such as "syntactic" accepted), or
    :data:`UNPARSED` if none or more than one level is named."""
    text = (answer or "").lower()
    found = [lvl for lvl, pat in _LEVEL_PATTERNS.items() if re.search(rf"\b(?:{pat})\b", text)]
    return found[0] if len(found) == 1 else UNPARSED


_TASK_PATTERNS = {
    "daily writing": r"daily(?:[\s-]+writing)?|everyday writing", "literary writing": r"literary(?:[\s-]+writing)?|creative writing",
    "professional writing": r"professional(?:[\s-]+writing)?", "math": r"math\w*|arithmetic",
    "coding": r"cod(?:e|ing)|programming", "translation": r"translat\w*", "none": r"none|no task\w*",
}


def parse_tasks(answer: str) -> list[str]:
    """Stage 3 answer -> sorted task labels (order of :data:`TASKS`).

    Returns:
        the tasks named; ``["none"]`` if only "none" is; ``[UNPARSED]`` if nothing
        recognisable is named or "none" is mixed with tasks (ambiguous). Negations ("not
        math") are not understood: keep the few-shot format strict.
    """
    text = (answer or "").lower()
    found = [t for t in TASKS if re.search(rf"\b(?:{_TASK_PATTERNS[t]})\b", text)]
    if not found or ("none" in found and len(found) > 1):
        return [UNPARSED]
    return found


def cache_key(backend: str, model: str, prompt: str, params: dict, run: int) -> str:
    """sha256 of the canonical JSON of everything that determines an answer."""
    blob = json.dumps({"backend": backend, "model": model, "prompt": prompt, "params": params, "run": int(run)},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class AnswerCache:
    """Answers on disk in SQLite (WAL journal, so several processes can share the file).

    Args:
        path: the database file (created with its folder).

    Thread-safe (one connection, a lock). Keys: :func:`cache_key`; the key's parts are stored
    too, for inspection. No API key or secret is ever stored.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, backend TEXT, model TEXT, "
                         "prompt TEXT, params TEXT, run INTEGER, answer TEXT, created REAL)")
        self._db.commit()

    def get(self, backend: str, model: str, prompt: str, params: dict, run: int) -> str | None:
        """The cached answer, or None."""
        key = cache_key(backend, model, prompt, params, run)
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, backend: str, model: str, prompt: str, params: dict, run: int, answer: str) -> None:
        """Store (or replace) an answer."""
        key = cache_key(backend, model, prompt, params, run)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (key, backend, model, prompt, json.dumps(params, sort_keys=True), int(run), answer, time.time()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


@dataclass
class ComponentLabels:
    """The labels of one component in one run.

    Attributes:
        run: run index. concept: description, :data:`CANNOT_TELL` or :data:`UNPARSED`.
        explainable: True/False, None if unparsed. level: a :data:`LEVELS` label, :data:`UNPARSED`
        or None (not explainable). tasks: task labels (``[UNPARSED]`` possible), empty if not
        explainable. requests, cache_hits: counts for this component.
    """

    run: int
    concept: str
    explainable: bool | None
    level: str | None = None
    tasks: list[str] = field(default_factory=list)
    requests: int = 0
    cache_hits: int = 0


def annotate_component(words: Sequence[str], complete: Callable[[str, dict, int], str], cache: AnswerCache | None,
                       backend: str, model: str, run: int, params: dict | None = None,
                       top_words: int = 15) -> ComponentLabels:
    """Run the three stages for one component and one run, through the cache.

    Args:
        words: the component's top words (ranked); the first ``top_words`` are shown.
        complete: ``complete(prompt, params, run) -> answer`` (the backend; it must seed its
            sampling with ``run``). Exceptions propagate (the caller counts failures).
        cache: an :class:`AnswerCache` or None. backend, model: parts of the cache key.
        run: run index (0-based). params: sampling parameters (default temperature 1.0).
        top_words: words shown in stage 1 (the paper: 15).

    Returns:
        :class:`ComponentLabels` (stages 2 and 3 only for explainable concepts).
    """
    params = dict(params or {"temperature": 1.0})
    labels = ComponentLabels(run, UNPARSED, None)

    def ask(prompt: str) -> str:
        if cache is not None:
            hit = cache.get(backend, model, prompt, params, run)
            if hit is not None:
                labels.cache_hits += 1
                return hit
        labels.requests += 1
        answer = complete(prompt, params, run)
        if cache is not None:
            cache.put(backend, model, prompt, params, run, answer)
        return answer

    labels.concept, labels.explainable = parse_concept(ask(concept_prompt(list(words)[:top_words])))
    if labels.explainable:
        labels.level = parse_level(ask(level_prompt(labels.concept)))
        labels.tasks = parse_tasks(ask(tasks_prompt(labels.concept)))
    return labels
