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
  ``complete(prompt, params, run) -> str`` callable, using the cache;
* :func:`annotate_components`: the same for many (component, run) items through a batching
  ``complete_batch(prompts, params, runs) -> answers`` callable, independent requests batched.

The backends (``local:SPEC``, ``openai:MODEL``) are in
:mod:`tuneshift.methods.concepts.annotators`, the run driver in
:mod:`tuneshift.pipelines.annotate_run`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

__all__ = [
    "UNPARSED",
    "CANNOT_TELL",
    "LEVELS",
    "TASKS",
    "concept_prompt",
    "level_prompt",
    "tasks_prompt",
    "parse_concept",
    "parse_level",
    "parse_tasks",
    "cache_key",
    "AnswerCache",
    "ComponentLabels",
    "annotate_component",
    "annotate_components",
]

UNPARSED = "unparsed"
CANNOT_TELL = "Cannot tell"
LEVELS = ("phonology", "morphology", "syntax", "semantics")
TASKS = ("daily writing", "literary writing", "professional writing", "math", "coding", "translation", "none")

_CONCEPT_SHOTS = [
    (
        "january, march, october, july, december, april, spring, monthly, summer, week, calendar, autumn, june, may, season",
        "Months and seasons of the year",
    ),
    (
        "function, return, variable, loop, array, string, class, compile, debug, syntax, integer, null, boolean, parse, script",
        "Programming and source code",
    ),
    (
        "blue, ran, however, tiny, seven, oxygen, laugh, beneath, carpet, thus, gently, ocean, ninety, sharp, whom",
        CANNOT_TELL,
    ),
]
_LEVEL_SHOTS = [
    ("Past-tense verb endings", "morphology"),
    ("Months and seasons of the year", "semantics"),
    ("Prepositions introducing a phrase", "syntax"),
    ("Words that rhyme with -ight", "phonology"),
]
_TASK_SHOTS = [
    ("Programming and source code", "coding"),
    ("Arithmetic operations and numbers", "math"),
    ("Words of French and Spanish origin", "translation"),
    ("Formal business correspondence", "professional writing, daily writing"),
    ("Poetic imagery of the sea", "literary writing"),
    ("Chemical elements", "none"),
]


def concept_prompt(words: Sequence[str]) -> str:
    """Stage 1 prompt: the one concept shared by ``words`` (the paper uses the top 15), or "Cannot tell".

    Raises:
        ValueError: no words.
    """
    if not words:
        raise ValueError("concept_prompt needs at least one word")
    shots = "\n\n".join(f"Words: {w}\nConcept: {c}" for w, c in _CONCEPT_SHOTS)
    return (
        "Here is a list of words. If more than half of them share one concept, describe that concept in a few "
        f'words. Otherwise answer exactly "{CANNOT_TELL}". Answer with the concept only.\n\n{shots}\n\n'
        f"Words: {', '.join(words)}\nConcept:"
    )


def level_prompt(concept: str) -> str:
    """Stage 2 prompt: the linguistic level of ``concept`` (one of :data:`LEVELS`)."""
    shots = "\n\n".join(f"Concept: {c}\nLevel: {l}" for c, l in _LEVEL_SHOTS)
    return (
        "Which linguistic level does this concept belong to: phonology, morphology, syntax or semantics? "
        f"Answer with one word.\n\n{shots}\n\nConcept: {concept}\nLevel:"
    )


def tasks_prompt(concept: str) -> str:
    """Stage 3 prompt: the user tasks ``concept`` serves (several of :data:`TASKS`, or none)."""
    shots = "\n\n".join(f"Concept: {c}\nTasks: {t}" for c, t in _TASK_SHOTS)
    return (
        "Which user tasks of a chat assistant does this concept help with? Choose one or more of: daily writing, "
        "literary writing, professional writing, math, coding, translation; or none. Answer with the task "
        f"names separated by commas.\n\n{shots}\n\nConcept: {concept}\nTasks:"
    )


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
    "phonology": r"phonolog\w*|phonetic\w*",
    "morphology": r"morpholog\w*",
    "syntax": r"syntax|syntactic\w*",
    "semantics": r"semantic\w*",
}


def parse_level(answer: str) -> str:
    """Stage 2 answer -> one of :data:`LEVELS` (adjectives such as "syntactic" accepted), or
    :data:`UNPARSED` if none or more than one level is named."""
    text = (answer or "").lower()
    found = [lvl for lvl, pat in _LEVEL_PATTERNS.items() if re.search(rf"\b(?:{pat})\b", text)]
    return found[0] if len(found) == 1 else UNPARSED


_TASK_PATTERNS = {
    "daily writing": r"daily(?:[\s-]+writing)?|everyday writing",
    "literary writing": r"literary(?:[\s-]+writing)?|creative writing",
    "professional writing": r"professional(?:[\s-]+writing)?",
    "math": r"math\w*|arithmetic",
    "coding": r"cod(?:e|ing)|programming",
    "translation": r"translat\w*",
    "none": r"none|no task\w*",
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


def cache_key(backend: str, model: str, prompt: str, params: dict, run: int, sampler: str | None = None) -> str:
    """sha256 of the canonical JSON of everything that determines an answer.

    Args:
        backend, model, prompt, params, run: the request.
        sampler: the backend's sampling rule (e.g. the local backend's ``gumbel-max-v1``), None
            when the backend has no version of its own (``openai:``: the server samples). It is
            part of the key only when set, so keys made before it existed stay valid for None.

    Returns:
        64 hex digits.
    """
    parts = {"backend": backend, "model": model, "prompt": prompt, "params": params, "run": int(run)}
    if sampler is not None:
        parts["sampler"] = sampler
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class AnswerCache:
    """Answers on disk in SQLite (WAL journal, so several processes can share the file).

    Args:
        path: the database file (created with its folder).

    Thread-safe (one connection, a lock). Keys: :func:`cache_key`; the key's parts are stored
    too, for inspection (a ``sampler`` column is added to caches made before it existed). No API
    key or secret is ever stored.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, backend TEXT, model TEXT, "
            "prompt TEXT, params TEXT, run INTEGER, answer TEXT, created REAL)"
        )
        if "sampler" not in {r[1] for r in self._db.execute("PRAGMA table_info(answers)")}:
            self._db.execute("ALTER TABLE answers ADD COLUMN sampler TEXT")
        self._db.commit()

    def get(
        self, backend: str, model: str, prompt: str, params: dict, run: int, sampler: str | None = None
    ) -> str | None:
        """The cached answer of this request (:func:`cache_key`), or None."""
        key = cache_key(backend, model, prompt, params, run, sampler)
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(
        self, backend: str, model: str, prompt: str, params: dict, run: int, answer: str, sampler: str | None = None
    ) -> None:
        """Store (or replace) an answer."""
        key = cache_key(backend, model, prompt, params, run, sampler)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (key, backend, model, prompt, params, run, answer, created, "
                "sampler) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model,
                    prompt,
                    json.dumps(params, sort_keys=True),
                    int(run),
                    answer,
                    time.time(),
                    sampler,
                ),
            )
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


def annotate_component(
    words: Sequence[str],
    complete: Callable[[str, dict, int], str],
    cache: AnswerCache | None,
    backend: str,
    model: str,
    run: int,
    params: dict | None = None,
    top_words: int = 15,
    sampler: str | None = None,
) -> ComponentLabels:
    """Run the three stages for one component and one run, through the cache.

    Args:
        words: the component's top words (ranked); the first ``top_words`` are shown.
        complete: ``complete(prompt, params, run) -> answer`` (the backend; it must seed its
            sampling with ``run``). Exceptions propagate (the caller counts failures).
        cache: an :class:`AnswerCache` or None. backend, model: parts of the cache key.
        run: run index (0-based). params: sampling parameters (default temperature 1.0).
        top_words: words shown in stage 1 (the paper: 15).
        sampler: the backend's sampling rule, part of the cache key (:func:`cache_key`).

    Returns:
        :class:`ComponentLabels` (stages 2 and 3 only for explainable concepts).
    """
    params = dict(params or {"temperature": 1.0})
    labels = ComponentLabels(run, UNPARSED, None)

    def ask(prompt: str) -> str:
        if cache is not None:
            hit = cache.get(backend, model, prompt, params, run, sampler)
            if hit is not None:
                labels.cache_hits += 1
                return hit
        labels.requests += 1
        answer = complete(prompt, params, run)
        if cache is not None:
            cache.put(backend, model, prompt, params, run, answer, sampler)
        return answer

    labels.concept, labels.explainable = parse_concept(ask(concept_prompt(list(words)[:top_words])))
    if labels.explainable:
        labels.level = parse_level(ask(level_prompt(labels.concept)))
        labels.tasks = parse_tasks(ask(tasks_prompt(labels.concept)))
    return labels


def annotate_components(
    items: Sequence[tuple[Sequence[str], int]],
    complete_batch: Callable[[list[str], dict, list[int]], list[str]],
    cache: AnswerCache | None,
    backend: str,
    model: str,
    params: dict | None = None,
    top_words: int = 15,
    batch_size: int = 8,
    sampler: str | None = None,
    on_done: Callable[[int], None] | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> list[ComponentLabels | Exception]:
    """The three stages for many (component, run) items, asking a batching backend.

    The requests that do not depend on each other are batched: every item's stage-1 prompt
    (its concept) can go at once; an explainable concept's level and tasks prompts (stages 2-3,
    independent of each other) become askable when its concept is answered. Each
    ``complete_batch`` call gets at most ``batch_size`` prompts of one stage: stage 2-3 prompts
    go as soon as a full batch of them is waiting (or no stage-1 prompt is left), so items finish
    (and ``on_done`` advances) during the pass, and one batch holds prompts of similar length.
    The labels are the same as :func:`annotate_component` would give item by item, provided the
    backend's answer to (prompt, run) does not depend on its batch (the local backend's does not).

    Cache semantics are those of :func:`annotate_component`: a cached answer is never asked
    again (a cache hit), each new answer is stored as soon as its batch returns, and an identical
    (prompt, run) asked for several items within the pass is asked once (one request for the
    first item, a cache hit for the others).

    Args:
        items: ``(words, run)`` per item (ranked top words; the first ``top_words`` are shown).
        complete_batch: ``complete_batch(prompts, params, runs) -> answers``, one per prompt.
        cache: an :class:`AnswerCache` or None. backend, model, sampler: parts of the cache key.
        params: sampling parameters (default temperature 1.0).
        top_words: words shown in stage 1. batch_size: prompts per ``complete_batch`` call (>= 1).
        on_done: called with 1 when an item is finished (labelled or failed).
        fatal: exception types that stop everything (re-raised; answers so far stay cached).

    Returns:
        per item, in order: its :class:`ComponentLabels`, or the exception of the batch in which
        one of its requests failed (every item waiting on that batch fails; the other items go on).

    Raises:
        ValueError: ``batch_size`` < 1, or a backend returning the wrong number of answers
            (counted as a failure of that batch, not raised). Any ``fatal`` exception.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    params = dict(params or {"temperature": 1.0})
    items = [(list(w)[:top_words], int(r)) for w, r in items]
    labels = [ComponentLabels(r, UNPARSED, None) for _w, r in items]
    results: list = [None] * len(items)
    outstanding = [0] * len(items)
    open_requests: dict[tuple[str, int], list[tuple[int, str]]] = {}  # (prompt, run) -> waiters (item, stage)
    queues = {1: deque(), 2: deque()}  # stage -> (prompt, run) keys waiting for a batch
    answered: dict[tuple[str, int], str] = {}  # this pass's answers (the dedup when there is no cache)

    def finish(i: int, result) -> None:
        if results[i] is None:
            results[i] = result
            if on_done is not None:
                on_done(1)

    def deliver(i: int, stage: str, answer: str) -> None:
        if results[i] is not None:  # already failed
            return
        lab = labels[i]
        if stage == "concept":
            lab.concept, lab.explainable = parse_concept(answer)
            if lab.explainable:
                outstanding[i] = 2
                ask(i, "level", level_prompt(lab.concept))
                ask(i, "tasks", tasks_prompt(lab.concept))
            else:
                finish(i, lab)
            return
        if stage == "level":
            lab.level = parse_level(answer)
        else:
            lab.tasks = parse_tasks(answer)
        outstanding[i] -= 1
        if outstanding[i] == 0:
            finish(i, lab)

    def ask(i: int, stage: str, prompt: str) -> None:
        run = labels[i].run
        key = (prompt, run)
        hit = answered.get(key)
        if hit is None and cache is not None:
            hit = cache.get(backend, model, prompt, params, run, sampler)
        if hit is not None:
            labels[i].cache_hits += 1
            deliver(i, stage, hit)
        elif key in open_requests:  # the same request is already waiting for a batch
            labels[i].cache_hits += 1
            open_requests[key].append((i, stage))
        else:
            labels[i].requests += 1
            open_requests[key] = [(i, stage)]
            queues[1 if stage == "concept" else 2].append(key)

    todo = iter(range(len(items)))
    exhausted = False
    while True:
        while not exhausted and len(queues[1]) < batch_size and len(queues[2]) < batch_size:
            i = next(todo, None)
            if i is None:
                exhausted = True
            else:
                ask(i, "concept", concept_prompt(items[i][0]))
        stage = 2 if len(queues[2]) >= batch_size or not queues[1] else 1
        if not queues[stage]:
            break
        keys = [queues[stage].popleft() for _ in range(min(batch_size, len(queues[stage])))]
        try:
            answers = list(complete_batch([k[0] for k in keys], params, [k[1] for k in keys]))
            if len(answers) != len(keys):
                raise ValueError(f"the backend returned {len(answers)} answers for {len(keys)} prompts")
        except fatal:
            raise
        except Exception as e:  # noqa: BLE001 - a failed batch fails its items only
            for k in keys:
                for i, _stage in open_requests.pop(k):
                    finish(i, e)
            continue
        for k, answer in zip(keys, answers):
            if cache is not None:
                cache.put(backend, model, k[0], params, k[1], answer, sampler)
            answered[k] = answer
            for i, st in open_requests.pop(k):
                deliver(i, st, answer)
    return results
