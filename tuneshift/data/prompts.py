"""Prompt datasets: reading JSONL prompt files and the paper's FinalDataset.tsv.

Wu et al., "From Language Modeling to Instruction Following: Understanding the Behavior Shift
in LLMs after Instruction Tuning" (NAACL 2024, arXiv 2310.00492) evaluate on 632 prompts
(Self-Instruct user-oriented, LIMA, MT-Bench first turns) whose instruction sentences were
annotated by hand, and on human ratings of Vicuna-7B's responses. This module reads those files
(formats: docs/paper_reproduction.md#getting-the-data, "FinalDataset.tsv" and "AnnotatedDataset.tsv") and the
project's own JSONL prompt format into :class:`PromptSet` objects.

Error policy (decided for the CLI): one bad record never aborts a run. It is skipped, and a
one-line problem naming the file and line is appended to ``PromptSet.problems`` and emitted with
``warnings.warn``. Whole-file problems (missing, a directory, unreadable, not UTF-8, unknown
extension, TSV without the required columns, zero valid records) raise
:class:`~tuneshift.errors.InputFileError` with a one-line message.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tuneshift.data.jsonl import jsonl_lines
from tuneshift.errors import InputFileError, OptionError

__all__ = [
    "PromptRecord",
    "PromptSet",
    "read_prompts",
    "bundled_prompts_path",
    "counterfactual_prompts_path",
    "resolve_prompt_path",
    "BUNDLED_PROMPT_SETS",
    "group_from_id",
]

# Paper ID prefixes -> dataset group (README: "The group is the ID prefix").
_GROUP_PREFIXES = (
    ("user_oriented_task_", "self_instruct"),
    ("lima_", "lima"),
    ("mtbench_", "mt_bench"),
)
_PAPER_TSV_COLUMNS = ("ID", "Prompt", "Response", "Instruct&Context")
_RATINGS_MODEL = "vicuna_7B"
_SPAN_SEP = "|||"
_CONTEXT_SEP = "&&&"


@dataclass
class PromptRecord:
    """One prompt of a prompt set.

    Attributes:
        id: unique record id (str), e.g. ``"rewrite_01"`` or the paper's ``"lima_author_12"``.
        prompt: the user prompt (str, non-empty), exactly as given to the model.
        response: reference/given response (str) or None.
        instruction: annotated instruction spans (list[str]); ideally substrings of ``prompt``,
            located with :func:`tuneshift.data.spans.locate_spans` (rules there).
        context: the input/context part of the prompt (str) if annotated separately, else None.
            For the paper TSV, several context pieces (``a|||b``) are joined with ``"\\n"``.
        rating: human rating 1-4 (int) or None for unrated. In the paper, 1 = the response did
            not follow the instruction, 2-4 = it did (Wu et al. 2024, human evaluation).
        group: dataset group (str): the paper IDs map ``user_oriented_task_*`` ->
            ``"self_instruct"``, ``lima_*`` -> ``"lima"``, ``mtbench_*`` -> ``"mt_bench"``;
            otherwise the file's ``group`` field or ``"default"``.
        source_line: 1-based line of the record in its input file (int), or None.
    """

    id: str
    prompt: str
    response: str | None = None
    instruction: list[str] = field(default_factory=list)
    context: str | None = None
    rating: int | None = None
    group: str = "default"
    source_line: int | None = None


@dataclass
class PromptSet:
    """The valid records of one prompt file, plus the problems met while reading it.

    Attributes:
        records: valid records (list[PromptRecord]) in file order, ids unique.
        path: the file that was read (str).
        format: ``"jsonl"`` or ``"paper-tsv"``.
        problems: one line per skipped record or ignored rating row (list[str]), e.g.
            ``"prompts.jsonl line 7: malformed JSON (Expecting ',' ...); line skipped"``.
        ratings_path: the ratings file joined in (str) or None.

    Built by :func:`read_prompts`.
    """

    records: list[PromptRecord]
    path: str
    format: str
    problems: list[str] = field(default_factory=list)
    ratings_path: str | None = None
    _sha256: str = field(default="", repr=False, compare=False)

    @property
    def n_skipped(self) -> int:
        """Number of skipped records/rows (int): the number of ``problems`` lines."""
        return len(self.problems)

    def sha256(self) -> str:
        """Hex SHA-256 (str, 64 chars) of the prompt file's bytes as read, for run manifests.

        Covers the prompt file only (not a ratings file). Computed when the file was read, so
        it describes the data actually used even if the file changes afterwards.

        Raises:
            InputFileError: only if the hash was not recorded and the file can no longer be read.
        """
        if not self._sha256:
            try:
                self._sha256 = hashlib.sha256(Path(self.path).read_bytes()).hexdigest()
            except OSError as exc:
                raise InputFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        return self._sha256

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)


def group_from_id(record_id: str) -> str | None:
    """Dataset group implied by a paper record id, or None.

    ``user_oriented_task_*`` -> ``"self_instruct"``, ``lima_*`` -> ``"lima"``,
    ``mtbench_*`` -> ``"mt_bench"`` (paper README: "The group is the ID prefix"); any other id
    -> None. Source: Wu et al. 2024, FinalDataset.tsv.
    """
    if not isinstance(record_id, str):
        return None
    for prefix, group in _GROUP_PREFIXES:
        if record_id.startswith(prefix):
            return group
    return None


def bundled_prompts_path() -> Path:
    """Path (pathlib.Path) of the demo prompt file shipped in the package.

    ``tuneshift/data/bundled/demo_prompts.jsonl``: short prompts written for this project
    (rewrite, summarise, classify, extract, write, answer, translate, list), each with its
    instruction spans annotated and about a third with a separate context. Not taken from any
    dataset.
    """
    return Path(str(resources.files("tuneshift.data").joinpath("bundled", "demo_prompts.jsonl")))


def counterfactual_prompts_path() -> Path:
    """Path (pathlib.Path) of the bundled counterfactual prompt set: the ablation's positive control.

    ``tuneshift/data/bundled/counterfactual_prompts.jsonl``: 12 short contexts, each under two
    of four instructions (group = the instruction: ``translate`` into French, ``uppercase``,
    ``question``, ``negate``), 24 records, each with the correct response for its instruction
    (written for this project). Swapping a record's instruction for one of another group
    (``tuneshift ablate --variants swap``) puts the response under an instruction it does not
    answer: a model that follows instructions must lose log-probability (issue 20).
    """
    return Path(str(resources.files("tuneshift.data").joinpath("bundled", "counterfactual_prompts.jsonl")))


BUNDLED_PROMPT_SETS = {"demo": "demo_prompts.jsonl", "counterfactual": "counterfactual_prompts.jsonl"}
"""Prompt sets shipped in the package, by the name ``--prompts bundled:NAME`` accepts."""


def resolve_prompt_path(value: str | os.PathLike) -> Path:
    """A prompt file argument as a path: ``bundled:NAME`` (:data:`BUNDLED_PROMPT_SETS`) is the
    bundled file, anything else a path as given.

    Raises:
        InputFileError: ``bundled:`` with an unknown name (the names are listed).
    """
    s = str(value)
    if not s.startswith("bundled:"):
        return Path(value)
    name = s.split(":", 1)[1]
    if name not in BUNDLED_PROMPT_SETS:
        raise InputFileError(
            f"no bundled prompt set '{name}'; bundled: {', '.join('bundled:' + n for n in BUNDLED_PROMPT_SETS)}"
        )
    return Path(str(resources.files("tuneshift.data").joinpath("bundled", BUNDLED_PROMPT_SETS[name])))


# ----------------------------------------------------------------------------- reading


def _read_text(path: Path, what: str = "prompt file") -> tuple[str, bytes]:
    if not path.exists():
        raise InputFileError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputFileError(f"{what} is a directory, not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{what} {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    return text, data


def _one_line(msg: str, limit: int = 120) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _json_error(exc: json.JSONDecodeError) -> str:
    """``Expecting value at column 28``; json's messages that end in "at" (``Unterminated string
    starting at``, ``Invalid control character '\\n' at``) get the column without a second "at"."""
    msg = _one_line(exc.msg)
    return f"{msg} column {exc.colno}" if msg.endswith(" at") else f"{msg} at column {exc.colno}"


class _Collector:
    """Builds records, checks ids, records problems."""

    def __init__(self, name: str, limit: int | None):
        self.name = name
        self.limit = limit
        self.records: list[PromptRecord] = []
        self.problems: list[str] = []
        self.seen: dict[str, str] = {}

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.records) >= self.limit

    def problem(self, where: str, msg: str, tail: str = "line skipped") -> None:
        line = f"{self.name} {where}: {msg}; {tail}"
        self.problems.append(line)
        warnings.warn(line, stacklevel=4)

    def add(self, rec: PromptRecord, where: str, tail: str = "line skipped") -> None:
        if rec.id in self.seen:
            self.problem(where, f"duplicate id {rec.id!r} (first at {self.seen[rec.id]})", tail)
            return
        self.seen[rec.id] = where
        self.records.append(rec)


def _record_from_obj(obj: Any, line: int | None) -> PromptRecord | str:
    """A PromptRecord from a JSON object, or a problem message (str)."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    rid = obj.get("id")
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        return "missing 'id'"
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return f"'id' must be a string, got {type(rid).__name__}"
    rid = str(rid).strip()
    prompt = obj.get("prompt")
    if prompt is None:
        return f"record {rid!r} has no 'prompt'"
    if not isinstance(prompt, str):
        return f"record {rid!r}: 'prompt' must be a string, got {type(prompt).__name__}"
    if not prompt.strip():
        return f"record {rid!r} has an empty 'prompt'"
    response = obj.get("response")
    if response is not None and not isinstance(response, str):
        return f"record {rid!r}: 'response' must be a string, got {type(response).__name__}"
    instr = obj.get("instruction", [])
    if instr is None:
        instr = []
    if isinstance(instr, str):
        instr = [instr]
    if not isinstance(instr, list) or not all(isinstance(s, str) for s in instr):
        return f"record {rid!r}: 'instruction' must be a list of strings"
    instr = [s for s in instr if s.strip()]
    context = obj.get("context")
    if context is not None and not isinstance(context, str):
        return f"record {rid!r}: 'context' must be a string, got {type(context).__name__}"
    if context is not None and not context.strip():
        context = None
    rating = obj.get("rating")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, int):
            return f"record {rid!r}: 'rating' must be an integer 1-4, got {rating!r}"
        if rating > 4:
            return f"record {rid!r}: 'rating' must be 1-4 (<= 0 for unrated), got {rating}"
        if rating <= 0:
            rating = None
    group = obj.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        return f"record {rid!r}: 'group' must be a non-empty string"
    if group is None:
        group = group_from_id(rid) or "default"
    return PromptRecord(
        id=rid,
        prompt=prompt,
        response=response,
        instruction=instr,
        context=context,
        rating=rating,
        group=group.strip(),
        source_line=line,
    )


def _read_jsonl(text: str, col: _Collector) -> None:
    stripped = text.lstrip()
    if stripped.startswith("["):
        # A .json file holding one JSON array of records: accepted too.
        try:
            arr = json.loads(text)
        except json.JSONDecodeError:
            arr = None
        if isinstance(arr, list):
            for k, obj in enumerate(arr, start=1):
                if col.full:
                    return
                rec = _record_from_obj(obj, None)
                if isinstance(rec, str):
                    col.problem(f"record {k}", rec, "record skipped")
                else:
                    col.add(rec, f"record {k}", "record skipped")
            return
    for lineno, raw in jsonl_lines(text):
        if col.full:
            return
        where = f"line {lineno}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            col.problem(where, f"malformed JSON ({_json_error(exc)})")
            continue
        rec = _record_from_obj(obj, lineno)
        if isinstance(rec, str):
            col.problem(where, rec)
        else:
            col.add(rec, where)


def _decode_paper(s: str) -> str:
    """Paper TSV escapes: the two characters ``/n`` mean a newline and ``/t`` a tab.

    Decoded by plain replacement, as the authors' files are written (a URL containing
    ``/n`` would be altered too; none of the 632 prompts has one).
    """
    return s.replace("/n", "\n").replace("/t", "\t")


def _parse_annotation(ann: str) -> tuple[list[str], str | None]:
    """``span1|||span2|||...&&&context`` -> (instruction spans, context or None).

    Empty spans are dropped. The context part may itself hold several pieces separated by
    ``|||`` (e.g. list items of the input); they are joined with newlines.
    """
    instr_part, sep, ctx_part = ann.partition(_CONTEXT_SEP)
    spans = [s for s in instr_part.split(_SPAN_SEP) if s.strip()]
    context = None
    if sep:
        pieces = [c.strip() for c in ctx_part.split(_SPAN_SEP) if c.strip()]
        context = "\n".join(pieces) if pieces else None
    return spans, context


def _tsv_rows(text: str) -> list[tuple[int, list[str]]]:
    """Rows of a tab-separated file with the csv module (quoted fields, ``""`` escapes).

    Returns (1-based starting line, fields) per non-blank row.
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar='"', doublequote=True, strict=False)
    out = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputFileError(f"malformed TSV near line {reader.line_num}: {exc}") from None
        if row and any(f.strip() for f in row):
            out.append((start, row))
        start = reader.line_num + 1
    return out


def _read_paper_tsv(text: str, path: Path, col: _Collector) -> None:
    rows = _tsv_rows(text)
    if not rows:
        raise InputFileError(f"{path} is empty: expected a header {'/'.join(_PAPER_TSV_COLUMNS)}")
    header = [h.strip() for h in rows[0][1]]
    required = ("ID", "Prompt")
    missing = [c for c in required if c not in header]
    if missing:
        raise InputFileError(
            f"{path} is missing TSV column(s) {', '.join(missing)} (expected header: {' '.join(_PAPER_TSV_COLUMNS)})"
        )
    idx = {name: header.index(name) for name in header}
    for lineno, row in rows[1:]:
        if col.full:
            return
        where = f"line {lineno}"
        if len(row) != len(header):
            col.problem(where, f"expected {len(header)} tab-separated fields, got {len(row)}")
            continue

        def get(name: str) -> str | None:
            return row[idx[name]] if name in idx else None  # noqa: B023  (called within this iteration only)

        obj: dict[str, Any] = {"id": get("ID"), "prompt": _decode_paper(get("Prompt") or "")}
        resp = get("Response")
        if resp is not None and resp.strip():
            obj["response"] = _decode_paper(resp)
        ann = get("Instruct&Context")
        if ann is not None:
            spans, ctx = _parse_annotation(_decode_paper(ann))
            obj["instruction"] = spans
            obj["context"] = ctx
        rec = _record_from_obj(obj, lineno)
        if isinstance(rec, str):
            col.problem(where, rec)
        else:
            col.add(rec, where)


def _read_ratings(path: Path, model: str, problems: list[str]) -> dict[str, int | None]:
    """Ratings from the paper's AnnotatedDataset.tsv: {record id: rating or None}.

    Uses rows whose ``Model`` equals ``model`` (if the file has a Model column); the id is
    ``File`` without ``.pkl`` (or an ``ID`` column); ``Rating`` -1 or <= 0 -> None.
    A bad Rating value is reported in ``problems`` and the row ignored.
    """
    text, _ = _read_text(path, "ratings file")
    if path.suffix.lower() != ".tsv":
        raise InputFileError(f"ratings file {path} must be a .tsv like the paper's AnnotatedDataset.tsv")
    rows = _tsv_rows(text)
    if not rows:
        raise InputFileError(f"ratings file {path} is empty")
    header = [h.strip() for h in rows[0][1]]
    id_col = "File" if "File" in header else ("ID" if "ID" in header else None)
    if id_col is None or "Rating" not in header:
        raise InputFileError(
            f"ratings file {path} needs columns File (or ID) and Rating "
            f"(like the paper's AnnotatedDataset.tsv); found: {' '.join(header)}"
        )
    i_id, i_rating = header.index(id_col), header.index("Rating")
    i_model = header.index("Model") if "Model" in header else None
    out: dict[str, int | None] = {}
    for lineno, row in rows[1:]:
        if len(row) != len(header):
            msg = f"{path.name} line {lineno}: expected {len(header)} fields, got {len(row)}; row ignored"
            problems.append(msg)
            warnings.warn(msg, stacklevel=3)
            continue
        if i_model is not None and row[i_model].strip() != model:
            continue
        rid = row[i_id].strip()
        if rid.endswith(".pkl"):
            rid = rid[: -len(".pkl")]
        try:
            value = int(row[i_rating].strip())
        except ValueError:
            msg = f"{path.name} line {lineno}: rating {row[i_rating]!r} is not an integer; row ignored"
            problems.append(msg)
            warnings.warn(msg, stacklevel=3)
            continue
        out[rid] = value if 1 <= value <= 4 else None
    return out


def read_prompts(
    path: str | os.PathLike,
    ratings: str | os.PathLike | None = None,
    limit: int | None = None,
    *,
    ratings_model: str = _RATINGS_MODEL,
) -> PromptSet:
    """Read a prompt file into a :class:`PromptSet`.

    Formats, chosen by extension:

    * ``.jsonl`` / ``.json``: one JSON object per line,
      ``{"id", "prompt", "response"?, "instruction": [spans]?, "context"?, "rating"?, "group"?}``.
      Unknown keys are ignored. A ``.json`` file holding one JSON array of such objects is
      accepted too. ``instruction`` may be a single string. ``rating`` must be an int 1-4
      (<= 0 means unrated -> None). ``group`` defaults to :func:`group_from_id` or "default".
      An int ``id`` is converted to str.
    * ``.tsv``: the paper's FinalDataset.tsv (header ``ID Prompt Response Instruct&Context``;
      ``/n`` -> newline and ``/t`` -> tab in Prompt/Response/annotation; quoted fields with
      ``""``; annotation ``span1|||span2|||...&&&context``; empty spans dropped; several
      ``|||``-separated context pieces are joined by newlines). ``ID`` and ``Prompt`` are
      required columns; Response and Instruct&Context are optional.

    Args:
        path: prompt file (str or PathLike), or ``bundled:NAME`` (:func:`resolve_prompt_path`).
        ratings: optional path to the paper's AnnotatedDataset.tsv. Rows with
            ``Model == ratings_model`` (default ``"vicuna_7B"``) give ``<ID>.pkl`` -> Rating;
            -1 or <= 0 -> None. These ratings replace any rating from the prompt file for the
            ids they cover; ids not in the prompt file are ignored.
        limit: keep only the first ``limit`` valid records (int >= 1) and stop reading there
            (problems after that point are not reported). None = all.
        ratings_model: Model value whose ratings are used (keyword only).

    Returns:
        PromptSet with ``records`` in file order and one ``problems`` line per skipped record
        (malformed JSON, missing id, missing/empty prompt, duplicate id, a field of the wrong
        type), each naming the file and line and also emitted with ``warnings.warn``. Blank
        lines are ignored silently.

    Raises:
        InputFileError: missing file, a directory, unreadable, not UTF-8, unknown extension,
            a TSV missing required columns, malformed TSV quoting, or zero valid records.
        TuneshiftError: ``limit`` is not a positive integer.

    Sources: Wu et al. 2024 (arXiv 2310.00492); file formats in the paper README.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise OptionError("limit", f"must be a positive integer, got {limit!r}")
    p = resolve_prompt_path(path)
    ext = p.suffix.lower()
    if ext not in (".jsonl", ".json", ".tsv"):
        if not p.exists():
            raise InputFileError(f"prompt file not found: {p}")
        if p.is_dir():
            raise InputFileError(f"prompt file is a directory, not a file: {p}")
        raise InputFileError(
            f"unknown prompt file extension {ext or '(none)'!s} for {p}: "
            "use .jsonl/.json (JSON records) or .tsv (the paper's FinalDataset.tsv)"
        )
    text, data = _read_text(p)
    col = _Collector(p.name, limit)
    if ext == ".tsv":
        fmt = "paper-tsv"
        _read_paper_tsv(text, p, col)
    else:
        fmt = "jsonl"
        _read_jsonl(text, col)
    if not col.records:
        first = f" (first problem: {col.problems[0]})" if col.problems else ""
        raise InputFileError(f"no valid prompt records in {p}{first}")
    ratings_str = None
    if ratings is not None:
        rp = Path(ratings)
        table = _read_ratings(rp, ratings_model, col.problems)
        for rec in col.records:
            if rec.id in table:
                rec.rating = table[rec.id]
        ratings_str = str(rp)
    return PromptSet(
        records=col.records,
        path=str(p),
        format=fmt,
        problems=col.problems,
        ratings_path=ratings_str,
        _sha256=hashlib.sha256(data).hexdigest(),
    )
