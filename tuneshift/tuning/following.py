"""Does a model follow instructions? Greedy answers to held-out instructions, checked without an LLM judge.

``tuneshift eval-following`` (issue: evidence that the tuned counterpart follows instructions).
Each instruction of the held-out set (default: the 40 bundled in
``tuneshift/data/bundled/following_eval.jsonl``, none of them in the tuning corpus; a test
asserts that no word 8-gram is shared) is answered greedily, up to ``max_new_tokens`` tokens,
with the same prompt encoding as attribution (:func:`~tuneshift.data.encoding.encode_prompt`:
the model's chat template if it has one, else the raw instruction). An answer **passes** when
every check holds:

* ``non_empty``: it has a letter or digit;
* ``not_copy``: ROUGE-L F1 (``rouge-score``, stemmed) between the answer and the user prompt is
  below 0.5, i.e. it is not a (partial) copy or continuation of the prompt;
* ``eos``: the model ended it with EOS within the limit (it stopped by itself);
* ``task_check``: the item's own check, if any (``check.kind``):
  ``list`` (at least ``min_items`` items: lines starting with ``1.``/``1)``/``-``/``*``/``•``, or
  comma/semicolon-separated items on one line), ``label`` (exactly one of ``labels`` occurs as a
  whole word, case-insensitive), ``number`` (the last number in the answer equals ``answer``),
  ``contains_any`` (one of ``words`` occurs, case-insensitive), ``code`` (every string of
  ``must_contain`` occurs), ``none`` (no task check).

Target for the shipped pair (see ``docs/tuning.md``): the tuned model passes at least 70%, the
base at most 30%.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from tuneshift.data.jsonl import read_jsonl_objects
from tuneshift.errors import InputFileError
from tuneshift.results import Result, nan_to_none, to_jsonable
from tuneshift.tuning.corpus import user_text

__all__ = [
    "FollowingItem",
    "FollowingRow",
    "PassRates",
    "FollowingResult",
    "FollowingEvaluation",
    "load_following_set",
    "check_answer",
    "evaluate_following",
    "rouge_l",
    "CHECKS",
    "ROUGE_COPY_THRESHOLD",
    "BUNDLED_FOLLOWING",
]

BUNDLED_FOLLOWING = "following_eval.jsonl"
ROUGE_COPY_THRESHOLD = 0.5
CHECKS = ("non_empty", "not_copy", "eos", "task_check")
_KINDS = {"list", "label", "number", "contains_any", "code", "none"}


@dataclass(frozen=True)
class FollowingItem:
    """One held-out instruction: id, task type, instruction, optional input, check (dict with ``kind``)."""

    id: str
    task: str
    instruction: str
    input: str | None
    check: dict

    @property
    def user(self) -> str:
        return user_text(self.instruction, self.input)


def load_following_set(path: str | Path | None = None) -> list[FollowingItem]:
    """Read a held-out set (JSONL: id, task, instruction, input?, check); None = the bundled 40.

    Raises:
        InputFileError: missing file, bad JSON, missing fields, an unknown check kind or bad
        check parameters, or duplicate ids (the message names the line).
    """
    if path is None:
        text = resources.files("tuneshift.data").joinpath("bundled", BUNDLED_FOLLOWING).read_text(encoding="utf-8")
        where = BUNDLED_FOLLOWING
    else:
        p = Path(path)
        if not p.is_file():
            raise InputFileError(f"instruction set {p} does not exist or is not a file")
        text, where = p.read_text(encoding="utf-8"), str(p)
    items, seen = [], set()
    for i, r in read_jsonl_objects(text, where):
        if not all(isinstance(r.get(k), str) and r[k].strip() for k in ("id", "instruction")):
            raise InputFileError(f"{where}:{i}: needs string fields 'id' and 'instruction'")
        check = r.get("check") or {"kind": "none"}
        if not isinstance(check, dict) or check.get("kind") not in _KINDS:
            raise InputFileError(f"{where}:{i}: 'check.kind' must be one of {sorted(_KINDS)}")
        problem = _check_problem(check)
        if problem:
            raise InputFileError(f"{where}:{i}: check of kind {check['kind']!r} {problem}")
        if r["id"] in seen:
            raise InputFileError(f"{where}:{i}: duplicate id {r['id']!r}")
        seen.add(r["id"])
        items.append(
            FollowingItem(r["id"], str(r.get("task") or "default"), r["instruction"], r.get("input") or None, check)
        )
    if not items:
        raise InputFileError(f"instruction set {where} is empty")
    return items


def _is_str_list(x) -> bool:
    return isinstance(x, list) and bool(x) and all(isinstance(w, str) and w for w in x)


def _check_problem(check: dict) -> str | None:
    """What is wrong with a check's parameters (see the module docstring), or None."""
    kind = check["kind"]
    if kind == "list":
        n = check.get("min_items", 3)
        return None if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else "needs 'min_items' >= 1"
    if kind == "label":
        return None if _is_str_list(check.get("labels")) else "needs 'labels': a list of strings"
    if kind == "number":
        a = check.get("answer")
        return None if isinstance(a, (int, float)) and not isinstance(a, bool) else "needs a numeric 'answer'"
    if kind == "contains_any":
        return None if _is_str_list(check.get("words")) else "needs 'words': a list of strings"
    if kind == "code":
        return None if _is_str_list(check.get("must_contain")) else "needs 'must_contain': a list of strings"
    return None


_SCORER = None


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F1 (``rouge_score``, Porter stemming) of ``answer`` against ``reference``, in [0, 1]."""
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_SCORER.score(reference, answer)["rougeL"].fmeasure)


_ITEM_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def _list_items(answer: str) -> int:
    lines = [ln for ln in answer.splitlines() if ln.strip()]
    bullets = sum(1 for ln in lines if _ITEM_LINE.match(ln))
    inline = max((len([x for x in re.split(r"[,;]| and ", ln) if x.strip()]) for ln in lines), default=0)
    return max(bullets, inline)


def _task_check(check: dict, answer: str) -> bool | None:
    kind = check.get("kind", "none")
    low = answer.lower()
    if kind == "none":
        return None
    if kind == "list":
        return _list_items(answer) >= int(check.get("min_items", 3))
    if kind == "label":
        found = {
            lab.lower() for lab in check["labels"] if re.search(rf"(?<![\w-]){re.escape(lab.lower())}(?![\w-])", low)
        }
        return len(found) == 1
    if kind == "number":
        nums = _NUMBER.findall(answer.replace(",", "")) if answer else []
        return bool(nums) and float(nums[-1]) == float(check["answer"])
    if kind == "contains_any":
        return any(w.lower() in low for w in check["words"])
    if kind == "code":
        return all(s in answer for s in check["must_contain"])
    raise ValueError(f"unknown check kind {kind!r}")


def check_answer(item: FollowingItem, answer: str, ended_with_eos: bool) -> dict:
    """The checks of one answer (see the module docstring).

    Returns:
        ``{"non_empty", "not_copy", "eos", "task_check", "rouge_l", "passed"}``; ``task_check`` is None when
        the item has no task check; ``passed`` = every check that applies is True.
    """
    r = rouge_l(answer, item.user) if answer.strip() else 0.0
    out = {
        "non_empty": bool(re.search(r"[A-Za-z0-9]", answer)),
        "not_copy": r < ROUGE_COPY_THRESHOLD,
        "eos": bool(ended_with_eos),
        "task_check": _task_check(item.check, answer),
        "rouge_l": round(r, 4),
    }
    out["passed"] = all(out[c] for c in ("non_empty", "not_copy", "eos")) and out["task_check"] is not False
    return out


@dataclass
class FollowingRow:
    """One answered item with its checks (:func:`check_answer`).

    Attributes:
        id, task, instruction, input: from the :class:`FollowingItem`.
        answer: the decoded answer (special tokens skipped, stripped).
        n_tokens: generated tokens (EOS excluded). ended_with_eos: the model stopped by itself.
        non_empty, not_copy, eos: the generic checks. task_check: the item's own check (None
            when it has none). rouge_l: ROUGE-L F1 of the answer against the user prompt, in [0, 1].
        passed: every check that applies holds.
    """

    id: str
    task: str
    instruction: str
    input: str | None
    answer: str
    n_tokens: int
    ended_with_eos: bool
    non_empty: bool
    not_copy: bool
    eos: bool
    task_check: bool | None
    rouge_l: float
    passed: bool


@dataclass
class PassRates:
    """Shares (0..1) of the items of one task type (or ``all``) that pass each check.

    Attributes:
        n: items. passed: pass every check. non_empty, not_copy, eos: pass that check.
        task_check: pass their task check, among the items that have one (NaN if none has).
    """

    n: int
    passed: float
    non_empty: float
    not_copy: float
    eos: float
    task_check: float


@dataclass
class FollowingResult(Result):
    """Answers and checks of one model (``to_dict``/``from_dict``/``save``/``load``; its Markdown:
    :func:`tuneshift.reports.following_report.following_result_markdown`).

    JSON (``following_answers.json``): ``kind`` = ``"following"``, the attributes below, and the
    derived ``rates`` (:meth:`rates`).

    Attributes:
        model: the model's name. max_new_tokens: generation limit (tokens).
        rows: one :class:`FollowingRow` per item, in the order of the set.
        seconds: generation wall time.
        dtype: the weights dtype the answers were generated in (``float32`` unless ``--dtype``;
            it can change greedy answers, so it is recorded).
    """

    FILE = "following_answers.json"
    KIND = "following"

    model: str
    max_new_tokens: int
    rows: list[FollowingRow] = field(default_factory=list)
    seconds: float = 0.0
    dtype: str = "float32"

    @property
    def pass_rate(self) -> float:
        """Share of items that pass every check (0..1)."""
        return sum(r.passed for r in self.rows) / max(1, len(self.rows))

    def rates(self) -> dict[str, PassRates]:
        """``{"all" | task: PassRates}`` (``all`` first, then the task types in order of appearance;
        without rows, ``all`` has ``n`` = 0 and NaN shares)."""
        groups: dict[str, list[FollowingRow]] = {"all": self.rows}
        for r in self.rows:
            groups.setdefault(r.task, []).append(r)
        out = {}
        for g, rows in groups.items():
            share = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
            out[g] = PassRates(
                len(rows),
                share([r.passed for r in rows]),
                share([r.non_empty for r in rows]),
                share([r.not_copy for r in rows]),
                share([r.eos for r in rows]),
                share([r.task_check for r in rows if r.task_check is not None]),
            )
        return out

    def to_dict(self) -> dict:
        """JSON-ready dict: ``kind``, the attributes, and ``rates`` (NaN -> ``None``)."""
        return {"kind": self.KIND, **super().to_dict(), "rates": nan_to_none(to_jsonable(self.rates()))}

    @classmethod
    def from_dict(cls, d: dict) -> "FollowingResult":
        """Inverse of :meth:`to_dict` (``rates`` is recomputed).

        Raises:
            InputFileError: not an eval-following result.
        """
        if d.get("kind") != cls.KIND:
            raise InputFileError(f"not an eval-following result (kind {d.get('kind')!r}, expected {cls.KIND!r})")
        return super().from_dict(d)


@dataclass
class FollowingEvaluation(Result):
    """What ``tuneshift eval-following`` reports: the results of one or more models on one set.

    Saved as ``following.json``; its Markdown twin ``following.md`` (pass rates per task type,
    each check's rate, and ``examples`` answers side by side) is written by
    :func:`tuneshift.reports.markdown.save_with_markdown`.

    Attributes:
        n_items: instructions in the set. max_new_tokens: generation limit (tokens).
        results: one :class:`FollowingResult` per model, in the order evaluated.
        examples: side-by-side examples in the Markdown (0: none).
    """

    FILE = "following.json"

    n_items: int
    max_new_tokens: int
    results: list[FollowingResult] = field(default_factory=list)
    examples: int = 5

    def rates(self) -> dict[str, dict[str, PassRates]]:
        """``{model: FollowingResult.rates()}``."""
        return {r.model: r.rates() for r in self.results}


def evaluate_following(
    loaded,
    items: list[FollowingItem],
    max_new_tokens: int = 128,
    batch_size: int = 8,
    chat_template: str = "auto",
    on_done: Callable[[int], None] | None = None,
) -> FollowingResult:
    """Answer every item greedily and check the answers.

    Args:
        loaded: a :class:`~tuneshift.models.loading.LoadedModel`. items: the held-out set.
        max_new_tokens: generation limit per answer (tokens). batch_size: prompts per
            ``generate`` call (left padding; greedy answers do not depend on it up to float
            rounding). chat_template: ``"auto"`` or ``"none"`` (see ``encode_prompt``).
        on_done: called with the number of items finished after each batch.

    Returns:
        :class:`FollowingResult` (rows in the order of ``items``).
    """
    from tuneshift.data.encoding import encode_prompt
    from tuneshift.data.prompts import PromptRecord
    from tuneshift.methods.attribution.generation import greedy_generate

    tok = loaded.tokenizer
    t0 = time.time()
    res = FollowingResult(loaded.name, max_new_tokens, dtype=str(getattr(loaded, "dtype", "float32")))
    encoded = [encode_prompt(tok, PromptRecord(it.id, it.user), chat_template=chat_template) for it in items]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for b in range(0, len(items), batch_size):
        chunk = list(range(b, min(b + batch_size, len(items))))
        gens = greedy_generate(
            loaded.model, [encoded[i].input_ids for i in chunk], max_new_tokens, loaded.eos_token_ids, pad
        )
        for i, g in zip(chunk, gens):
            it = items[i]
            answer = tok.decode(g.token_ids, skip_special_tokens=True).strip()
            res.rows.append(
                FollowingRow(
                    id=it.id,
                    task=it.task,
                    instruction=it.instruction,
                    input=it.input,
                    answer=answer,
                    n_tokens=len(g.token_ids),
                    ended_with_eos=g.ended_with_eos,
                    **check_answer(it, answer, g.ended_with_eos),
                )
            )
        if on_done is not None:
            on_done(len(chunk))
    res.seconds = round(time.time() - t0, 1)
    return res
