"""Read the attributions released with Wu et al. (NAACL 2024) and rebuild their instruction masks.

Source: Wu et al., "From Language Modeling to Instruction Following: Understanding the Behavior
Shift in LLMs after Instruction Tuning" (NAACL 2024, arXiv 2310.00492). The authors released,
for each of the 632 prompts of FinalDataset.tsv, one pickle per model
(``results/attribution_interpret/ifa_llama_7b/<ID>.pkl`` and ``ifa_vicuna_7b/<ID>.pkl`` in their
repository; formats in docs/paper_reproduction.md) and their analysis scripts
(github.com/JacksonWuxs/Interpret_Instruction_Tuning_LLMs, ``src/utils.py``,
``src/analysis_following_hypothesis.py``, ``src/analysis_following_ability_after_IFT.py``).
This module reads the pickles safely and rebuilds the instruction mask of every prompt on the
stored SentencePiece pieces, without the LLaMA tokenizer.

Safety
------
Pickles can run arbitrary code when loaded. :class:`RestrictedUnpickler` resolves only the
globals that numpy array reconstruction needs (``numpy.core.multiarray._reconstruct`` /
``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``,
``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar``; for protocol-5 arrays
``numpy._core.numeric._frombuffer``; for protocol-2 arrays ``_codecs.encode`` restricted to
``(str, "latin1")``) and the builtin containers (``builtins.dict/list/tuple/set/frozenset/
bytearray``). The globals are mapped to the objects of the installed numpy; nothing is imported
by name. Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ``numpy.load``
...) raises :class:`UnsafePickleError` before it could be called.

Prompt text from pieces (:func:`rebuild_text`)
----------------------------------------------
The ``Input`` pieces are concatenated, keeping each piece's character range:

* R1. every ``▁`` (U+2581) in a piece is a space;
* R2. a run of consecutive byte pieces ``<0xNN>`` is decoded as UTF-8 (so ``<0x0A>`` is a
  newline and ``<0xE2><0x80><0x99>`` is ``’``); each byte piece gets the range of the
  character(s) its bytes belong to, so the three pieces of ``’`` share one character; an
  invalid sequence becomes U+FFFD;
* R3. anything else is literal text.

Instruction sentences (:func:`split_sentences`, :func:`instruction_sentences`)
------------------------------------------------------------------------------
As in the released ``utils.annotate``:

* S1. the (``/n``-decoded) prompt is split on ``\\n``; each line is split after ``.``, ``!``,
  ``?`` or ``:`` followed by whitespace (``re.split(r"(?<=[.!?:])\\s+", line)``; the whitespace
  is dropped). These are the *prompt sentences*, in order.
* S2. the annotation's instruction part (before ``&&&``) is split on ``|||`` and on newlines,
  and each piece into sentences by the same regular expression: the *annotated sentences*.
* S3. each annotated sentence stands for the **first** prompt sentence that contains it
  (substring test); a prompt sentence starting with ``Input:`` loses that prefix (and
  surrounding whitespace) through :func:`tuneshift.data.spans.instruction_content`, the one label
  rule shared with the attribution path (``tuneshift attribute``). The instruction is the set of those prompt sentences. (Since S1
  splits after ``:`` + whitespace, ``Input: text`` gives the sentences ``Input:`` -> empty, and
  ``text``; the prefix rule matters for ``Input:text``.)
* S4. an annotated sentence contained in no prompt sentence is reported in
  :attr:`InstructionMask.unmatched` (the released code raised an error there).
* S5. empty or whitespace-only annotated sentences (from a trailing ``|||``) are ignored. The
  released code let them match the first prompt sentence; on the 632 released prompts that
  sentence is always already in the instruction set, so this changes nothing there.

Mask on pieces (:func:`instruction_mask`)
-----------------------------------------
* M1. each instruction sentence (empty ones, e.g. a bare ``Input:``, are skipped) is located in
  the rebuilt text at its first occurrence (plain ``str.find``);
* M2. every piece whose character range overlaps the located range is marked;
* M3. pieces at either end of that run which are exactly ``▁``, ``<0x0A>`` or ``▁"`` are
  not marked (the released code stripped such tokens from the re-tokenized sentence before
  matching it in the token list);
* M4. a sentence that cannot be located is reported in :attr:`InstructionMask.unlocated`
  (expected: none on the released data).

The mask is the union over sentences. The released code matched re-tokenized sentences in the
token list (KMP); matching characters instead needs no tokenizer and gives the same tokens
except where a sentence starts inside a token.
"""

from __future__ import annotations

import codecs
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from tuneshift.data.spans import instruction_content
from tuneshift.errors import InputFileError, TuneshiftError

__all__ = [
    "UnsafePickleError",
    "RestrictedUnpickler",
    "safe_load_pickle",
    "ReleasedAttribution",
    "read_released_file",
    "released_model_dirs",
    "RELEASED_MODELS",
    "rebuild_text",
    "split_sentences",
    "instruction_sentences",
    "InstructionMask",
    "instruction_mask",
    "mask_for_record",
    "ReleasedRecord",
    "iter_release",
    "STRIP_END_PIECES",
    "PAPER_DATA_ENV",
    "PAPER_DATA_SOURCE",
    "PaperData",
    "paper_data",
]

#: the environment variable naming the folder of the paper's released data (``--paper-data``).
PAPER_DATA_ENV = "TUNESHIFT_PAPER_DATA"

#: where a user gets that data: the authors' code release (GNU GPL v3; not shipped with tuneshift).
PAPER_DATA_SOURCE = (
    "the repository of the paper's authors, https://github.com/JacksonWuxs/Interpret_Instruction_Tuning_LLMs "
    "(Wu et al.'s code release for arXiv 2310.00492; clone it and give its folder)"
)

#: model key -> sub-folder of the released attributions (paper README).
RELEASED_MODELS = {"llama_7b": "ifa_llama_7b", "vicuna_7b": "ifa_vicuna_7b"}

#: pieces not marked at either end of a located sentence (rule M3).
STRIP_END_PIECES = frozenset({"\u2581", "<0x0A>", '\u2581"'})

_SPACE_PIECE = "\u2581"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+")
_SPAN_SEP = "|||"
_CONTEXT_SEP = "&&&"


class UnsafePickleError(TuneshiftError):
    """A pickle asked for a global outside the allow-list (numpy arrays, builtin containers)."""


# ----------------------------------------------------------------------------- unpickling


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The allow-list: (module, name) as written in a pickle -> the object to use."""
    try:  # numpy >= 2
        from numpy._core import multiarray as _ma
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as _ma  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _ma._reconstruct
        allowed[(mod, "scalar")] = _ma.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _frombuffer  # protocol-5 arrays (out-of-band buffers)
    # protocol-2 pickles written by Python 3 store the bytes of an array as
    # _codecs.encode(text, "latin1"): admitted only in that form
    allowed[("_codecs", "encode")] = _latin1_bytes
    for name, obj in (
        ("dict", dict),
        ("list", list),
        ("tuple", tuple),
        ("set", set),
        ("frozenset", frozenset),
        ("bytearray", bytearray),
    ):
        allowed[("builtins", name)] = obj
        allowed[("__builtin__", name)] = obj  # protocol 0-2 pickles written by Python 2
    return allowed


def _latin1_bytes(text, encoding="utf-8"):
    """``_codecs.encode`` restricted to what protocol-2 numpy pickles use: (str, "latin1") -> bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refused _codecs.encode with arguments of type {type(text).__name__}, {encoding!r}")
    return text.encode("latin-1")


_ALLOWED: dict[tuple[str, str], object] | None = None


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that only resolves numpy-array and builtin-container globals.

    Use it like ``RestrictedUnpickler(file).load()``. The allow-list is in the module docstring
    ("Safety"); anything else raises :class:`UnsafePickleError` from :meth:`find_class`, i.e.
    before the object could be called.

    Args:
        file: a binary file object opened for reading.
        source: a name for the file (str), used in error messages (default ``"pickle"``).
    """

    def __init__(self, file, *, source: str = "pickle"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        """Return the allowed object for ``module.name``.

        Raises:
            UnsafePickleError: ``module.name`` is not on the allow-list.
        """
        global _ALLOWED
        if _ALLOWED is None:
            _ALLOWED = _numpy_globals()
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"refused to load {self.source}: it asks for the global {module}.{name}, "
                "but only numpy arrays and builtin containers are allowed"
            )
        return obj

    def persistent_load(self, pid):
        """Persistent ids are never allowed (they would need an external resolver)."""
        raise UnsafePickleError(f"refused to load {self.source}: it uses persistent ids")


def safe_load_pickle(path: str | os.PathLike):
    """Load one pickle file with :class:`RestrictedUnpickler`.

    Args:
        path: the pickle file.

    Returns:
        The unpickled object (only builtin containers, scalars, strings and numpy arrays can come
        out).

    Raises:
        InputFileError: missing file, a directory, unreadable, or not a valid pickle.
        UnsafePickleError: the pickle asks for any other global.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"released attribution file not found: {p}")
    if p.is_dir():
        raise InputFileError(f"released attribution path is a directory, not a file: {p}")
    try:
        with open(p, "rb") as f:
            return RestrictedUnpickler(f, source=str(p)).load()
    except UnsafePickleError:
        raise
    except OSError as exc:
        raise InputFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    except Exception as exc:  # truncated or garbage data: UnpicklingError, EOFError, ValueError...
        msg = " ".join(str(exc).split())[:120]
        raise InputFileError(f"{p} is not a valid pickle ({type(exc).__name__}: {msg})") from None


# ----------------------------------------------------------------------------- one released file


@dataclass
class ReleasedAttribution:
    """One released pickle (one prompt, one model), checked.

    Attributes:
        id: the record id (str), e.g. ``"lima_author_1"``; equals the file name without ``.pkl``.
        input_pieces: ``[n_prompt_tokens]`` LLaMA SentencePiece pieces of the prompt (BOS
            excluded; ``▁`` marks a space, ``<0xNN>`` a byte).
        output_pieces: ``[n_response_tokens]`` pieces of the model's greedy response (<= 300).
        reference: the dataset's reference answer (str).
        explain: ``[n_prompt_tokens, n_response_tokens]`` float32 attribution matrix, as
            released: clipped at 0, scaled per response token by (max + 1e-7), discretised to
            integers 0..10 (columns whose maximum was tiny keep a maximum below 10).
        path: the file it came from (str).
    """

    id: str
    input_pieces: list[str]
    output_pieces: list[str]
    reference: str
    explain: np.ndarray
    path: str

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_prompt_tokens, n_response_tokens)``."""
        return (len(self.input_pieces), len(self.output_pieces))


def _str_list(value, key: str, path: Path) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        raise InputFileError(f"{path}: '{key}' must be a list of token strings, got {type(value).__name__}")
    return list(value)


def read_released_file(path: str | os.PathLike) -> ReleasedAttribution:
    """Read and check one released pickle.

    Args:
        path: ``.../ifa_<model>/<ID>.pkl``.

    Returns:
        A :class:`ReleasedAttribution`. ``explain`` is float32 with shape
        ``(len(Input), len(Output))``; the one released file with an empty response stores a
        0-size array, which becomes shape ``(len(Input), 0)``.

    Raises:
        InputFileError: missing/unreadable file, not a pickle, not a dict with ``ID``, ``Input``,
            ``Output``, ``Explain`` (``Reference`` optional), wrong types, an ``Explain`` of the
            wrong shape, non-finite or negative values, or an ``ID`` that differs from the file
            name.
        UnsafePickleError: the pickle asks for a global outside the allow-list.
    """
    p = Path(path)
    obj = safe_load_pickle(p)
    if not isinstance(obj, dict):
        raise InputFileError(f"{p}: expected a dict with ID, Input, Output, Explain; got {type(obj).__name__}")
    missing = [k for k in ("ID", "Input", "Output", "Explain") if k not in obj]
    if missing:
        raise InputFileError(
            f"{p}: missing key(s) {', '.join(missing)} (expected ID, Input, Reference, Output, Explain)"
        )
    rid = obj["ID"]
    if not isinstance(rid, str) or not rid:
        raise InputFileError(f"{p}: 'ID' must be a non-empty string, got {rid!r}")
    if p.suffix == ".pkl" and rid != p.stem:
        raise InputFileError(f"{p}: 'ID' is {rid!r} but the file name says {p.stem!r}")
    inp = _str_list(obj["Input"], "Input", p)
    out = _str_list(obj["Output"], "Output", p)
    ref = obj.get("Reference", "")
    if ref is None:
        ref = ""
    if not isinstance(ref, str):
        raise InputFileError(f"{p}: 'Reference' must be a string, got {type(ref).__name__}")
    ex = obj["Explain"]
    if not isinstance(ex, np.ndarray):
        raise InputFileError(f"{p}: 'Explain' must be a numpy array, got {type(ex).__name__}")
    if not np.issubdtype(ex.dtype, np.number) or np.issubdtype(ex.dtype, np.complexfloating):
        raise InputFileError(f"{p}: 'Explain' must hold real numbers, got dtype {ex.dtype}")
    expected = (len(inp), len(out))
    if ex.size == 0 and 0 in expected:
        ex = np.zeros(expected, dtype=np.float32)
    if ex.ndim != 2 or tuple(ex.shape) != expected:
        raise InputFileError(
            f"{p}: 'Explain' has shape {tuple(ex.shape)}, expected {expected} = (len(Input), len(Output))"
        )
    ex = np.asarray(ex, dtype=np.float32)
    if ex.size and (not np.all(np.isfinite(ex)) or ex.min() < 0):
        raise InputFileError(f"{p}: 'Explain' must be finite and >= 0 (the released matrices are discretised 0..10)")
    return ReleasedAttribution(id=rid, input_pieces=inp, output_pieces=out, reference=ref, explain=ex, path=str(p))


def released_model_dirs(released: str | os.PathLike) -> dict[str, Path]:
    """The per-model folders of a released-attributions directory.

    Args:
        released: the folder holding ``ifa_llama_7b/`` and ``ifa_vicuna_7b/`` (the authors'
            ``results/attribution_interpret``), or the paper folder that holds it (or
            ``released_attributions/``).

    Returns:
        ``{"llama_7b": Path, "vicuna_7b": Path}``.

    Raises:
        InputFileError: ``released`` is missing or not a directory, or a model folder is missing
            or holds no ``.pkl`` file.
    """
    root = Path(released)
    if not root.exists():
        raise InputFileError(f"released attributions directory not found: {root}")
    if not root.is_dir():
        raise InputFileError(
            f"released folder {root} is a file; give the folder holding ifa_llama_7b/ and ifa_vicuna_7b/"
        )
    if not (root / RELEASED_MODELS["llama_7b"]).is_dir():  # the paper folder itself was given
        for cand in (root / "results" / "attribution_interpret", root / "released_attributions"):
            if cand.is_dir():
                root = cand
                break
    out = {}
    for key, sub in RELEASED_MODELS.items():
        d = root / sub
        if not d.is_dir():
            raise InputFileError(
                f"{root} has no {sub}/ folder (expected ifa_llama_7b/ and ifa_vicuna_7b/ with <ID>.pkl files)"
            )
        if not any(d.glob("*.pkl")):
            raise InputFileError(f"{d} holds no .pkl file")
        out[key] = d
    return out


@dataclass(frozen=True)
class PaperData:
    """The files of the paper's released data inside one folder (:func:`paper_data`).

    Attributes:
        root: the folder.
        released: the folder holding ``ifa_llama_7b/`` and ``ifa_vicuna_7b/`` (``<ID>.pkl``).
        dataset: ``datasets/FinalDataset.tsv`` (the 632 prompts and their instruction annotations).
        ratings: ``datasets/AnnotatedDataset.tsv`` (human ratings of Vicuna's answers), or None.
        vocab: ``datasets/SingleShareGPT_Vocab.tsv`` (the heads/concepts vocabulary), or None.
    """

    root: Path
    released: Path
    dataset: Path
    ratings: Path | None
    vocab: Path | None


def paper_data(folder: str | os.PathLike | None = None) -> PaperData:
    """Locate the paper's released data in ``folder`` (default: ``$TUNESHIFT_PAPER_DATA``).

    Two layouts are accepted: a clone of the authors' repository (:data:`PAPER_DATA_SOURCE`:
    ``datasets/`` and ``results/attribution_interpret/ifa_*_7b/``) and a folder with ``datasets/``
    and ``released_attributions/ifa_*_7b/``. There is no other default: without ``folder`` and
    without the environment variable this is an error saying where to get the data.

    Args:
        folder: the data folder, or None for :data:`PAPER_DATA_ENV`.

    Returns:
        A :class:`PaperData`.

    Raises:
        InputFileError: no folder given and the variable unset; the folder is missing, or holds no
            ``datasets/FinalDataset.tsv`` or no released attributions.
    """
    if folder is None or not str(folder).strip():
        folder = os.environ.get(PAPER_DATA_ENV, "").strip() or None
        if folder is None:
            raise InputFileError(
                f"no folder of the paper's released data: give --paper-data DIR or set "
                f"{PAPER_DATA_ENV}=DIR; the data comes from {PAPER_DATA_SOURCE}"
            )
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputFileError(f"paper data folder {root} is not a directory; the data comes from {PAPER_DATA_SOURCE}")
    dataset = root / "datasets" / "FinalDataset.tsv"
    if not dataset.is_file():
        raise InputFileError(
            f"paper data folder {root} has no datasets/FinalDataset.tsv; give a clone of {PAPER_DATA_SOURCE}"
        )
    for cand in (root / "results" / "attribution_interpret", root / "released_attributions"):
        if (cand / RELEASED_MODELS["llama_7b"]).is_dir():
            released = cand
            break
    else:
        raise InputFileError(
            f"paper data folder {root} has no results/attribution_interpret/ (or released_attributions/) "
            "with ifa_llama_7b/ and ifa_vicuna_7b/"
        )
    ratings, vocab = root / "datasets" / "AnnotatedDataset.tsv", root / "datasets" / "SingleShareGPT_Vocab.tsv"
    return PaperData(
        root, released, dataset, ratings if ratings.is_file() else None, vocab if vocab.is_file() else None
    )


# ----------------------------------------------------------------------------- text from pieces


def rebuild_text(pieces: Iterable[str]) -> tuple[str, list[tuple[int, int]]]:
    """Rebuild the text of a list of SentencePiece pieces, with each piece's character range.

    Rules R1-R3 of the module docstring: ``▁`` -> space, runs of ``<0xNN>`` -> UTF-8 decoded
    bytes (invalid sequences -> U+FFFD), anything else literal.

    Args:
        pieces: the pieces (list of str), e.g. a released file's ``Input``.

    Returns:
        ``(text, ranges)``: the text (str) and ``ranges`` ``[n_pieces]`` of half-open
        ``(start, end)`` character offsets into ``text``. Byte pieces of one multi-byte
        character share that character's range; every other piece's range is its own text.

    Example:
        ``rebuild_text(["▁It", "<0xE2>", "<0x80>", "<0x99>", "s"])`` ->
        ``(" It’s", [(0, 3), (3, 4), (3, 4), (3, 4), (4, 5)])``.
    """
    pieces = list(pieces)
    parts: list[str] = []
    ranges: list[tuple[int, int]] = [(0, 0)] * len(pieces)
    pos = 0
    i = 0
    n = len(pieces)
    while i < n:
        m = _BYTE_PIECE.fullmatch(pieces[i])
        if m is None:
            s = pieces[i].replace(_SPACE_PIECE, " ")
            parts.append(s)
            ranges[i] = (pos, pos + len(s))
            pos += len(s)
            i += 1
            continue
        # a run of byte pieces: feed the bytes one by one to an incremental decoder; the
        # characters it emits belong to every byte piece since the last emission
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending: list[int] = []
        while i < n and (m := _BYTE_PIECE.fullmatch(pieces[i])) is not None:
            pending.append(i)
            chars = dec.decode(bytes([int(m.group(1), 16)]))
            if chars:
                parts.append(chars)
                for k in pending:
                    ranges[k] = (pos, pos + len(chars))
                pos += len(chars)
                pending = []
            i += 1
        chars = dec.decode(b"", final=True)
        if chars or pending:
            parts.append(chars)
            for k in pending:
                ranges[k] = (pos, pos + len(chars))
            pos += len(chars)
    return "".join(parts), ranges


# ----------------------------------------------------------------------------- sentences


def split_sentences(text: str) -> list[str]:
    """Split text into sentences: on newlines, then after ``.``/``!``/``?``/``:`` + whitespace.

    Rule S1 of the module docstring (the released ``utils.sent_tokenize`` applied to each line).
    Empty lines give empty strings, as in the released code.

    Args:
        text: a prompt or an annotation piece (str, newlines already decoded from ``/n``).

    Returns:
        The sentences (list of str) in order; the separating whitespace is dropped.
    """
    out: list[str] = []
    for line in text.split("\n"):
        out.extend(_SENTENCE_END.split(line))
    return out


def _annotation_pieces(instruction: str | Iterable[str]) -> list[str]:
    if isinstance(instruction, str):
        instruction = instruction.split(_CONTEXT_SEP, 1)[0].split(_SPAN_SEP)
    return [piece for span in instruction for piece in span.split("\n")]


def instruction_sentences(prompt: str, instruction: str | Iterable[str]) -> tuple[list[str], list[str]]:
    """The prompt sentences that make up the instruction (rules S1-S5).

    Args:
        prompt: the prompt (str, ``/n`` already decoded), e.g. ``PromptRecord.prompt``.
        instruction: the annotation, either the raw ``Instruct&Context`` string
            (``span|||span&&&context``; only the part before ``&&&`` is used) or its list of
            instruction spans (``PromptRecord.instruction``).

    Returns:
        ``(sentences, unmatched)``: the instruction's prompt sentences (list of str, unique, in
        the order first met; an ``Input:`` prefix removed, so an entry may be empty) and the
        annotated sentences contained in no prompt sentence (list of str; expected empty).
    """
    prompt_sentences = split_sentences(prompt)
    chosen: dict[str, None] = {}
    unmatched: list[str] = []
    for piece in _annotation_pieces(instruction):
        for ann in _SENTENCE_END.split(piece):
            if not ann.strip():
                continue  # rule S5
            for sent in prompt_sentences:
                if ann in sent:
                    sent = instruction_content(sent)  # rule S3: the one label rule (data.spans)
                    chosen.setdefault(sent, None)
                    break
            else:
                unmatched.append(ann)
    return list(chosen), unmatched


# ----------------------------------------------------------------------------- mask


@dataclass
class InstructionMask:
    """The instruction mask of one prompt on its released pieces.

    Attributes:
        mask: ``[n_prompt_tokens]`` bool, True for instruction pieces.
        sentences: the instruction's prompt sentences (list of str), see
            :func:`instruction_sentences`.
        unmatched: annotated sentences found in no prompt sentence (rule S4).
        unlocated: instruction sentences not found in the rebuilt text (rule M4).
        text: the text rebuilt from the pieces (str).
    """

    mask: np.ndarray
    sentences: list[str]
    unmatched: list[str] = field(default_factory=list)
    unlocated: list[str] = field(default_factory=list)
    text: str = ""

    @property
    def n_unlocated(self) -> int:
        """Spans that could not be placed: ``len(unmatched) + len(unlocated)`` (int)."""
        return len(self.unmatched) + len(self.unlocated)

    @property
    def problems(self) -> list[str]:
        """The spans of :attr:`n_unlocated`, annotated sentences first (list of str)."""
        return list(self.unmatched) + list(self.unlocated)


def instruction_mask(pieces: list[str], sentences: Iterable[str]) -> InstructionMask:
    """Mark the pieces of each instruction sentence (rules M1-M4).

    Args:
        pieces: ``[n_prompt_tokens]`` SentencePiece pieces (a released file's ``Input``).
        sentences: instruction sentences (str), e.g. from :func:`instruction_sentences`.

    Returns:
        An :class:`InstructionMask` (``unmatched`` empty; fill it from
        :func:`instruction_sentences`, or use :func:`mask_for_record`).
    """
    pieces = list(pieces)
    sentences = list(sentences)
    text, ranges = rebuild_text(pieces)
    starts = np.fromiter((a for a, _ in ranges), dtype=np.int64, count=len(ranges))
    ends = np.fromiter((b for _, b in ranges), dtype=np.int64, count=len(ranges))
    mask = np.zeros(len(pieces), dtype=bool)
    unlocated: list[str] = []
    for sent in sentences:
        if not sent:
            continue  # rule M1: e.g. a bare "Input:"
        a = text.find(sent)
        if a < 0:
            unlocated.append(sent)
            continue
        b = a + len(sent)
        hit = np.flatnonzero((starts < b) & (ends > a) & (ends > starts))
        if hit.size == 0:
            continue
        lo, hi = int(hit[0]), int(hit[-1])
        while lo <= hi and pieces[lo] in STRIP_END_PIECES:  # rule M3
            lo += 1
        while hi >= lo and pieces[hi] in STRIP_END_PIECES:
            hi -= 1
        if lo <= hi:
            mask[hit[(hit >= lo) & (hit <= hi)]] = True
    return InstructionMask(mask=mask, sentences=sentences, unlocated=unlocated, text=text)


def mask_for_record(pieces: list[str], prompt: str, instruction: str | Iterable[str]) -> InstructionMask:
    """Instruction mask of one prompt: :func:`instruction_sentences` then :func:`instruction_mask`.

    Args:
        pieces: ``[n_prompt_tokens]`` released ``Input`` pieces.
        prompt: the decoded prompt (``PromptRecord.prompt``).
        instruction: the raw annotation or its instruction spans (``PromptRecord.instruction``).

    Returns:
        An :class:`InstructionMask` with ``unmatched`` and ``unlocated`` filled.
    """
    sentences, unmatched = instruction_sentences(prompt, instruction)
    result = instruction_mask(pieces, sentences)
    result.unmatched = unmatched
    return result


# ----------------------------------------------------------------------------- a whole folder


@dataclass
class ReleasedRecord:
    """One prompt record joined with its released file and instruction mask.

    Attributes:
        record: the :class:`~tuneshift.data.prompts.PromptRecord` (id, prompt, group, rating...).
        released: the checked file (:class:`ReleasedAttribution`), or None when ``problem`` is set.
        mask: its :class:`InstructionMask`, or None when ``problem`` is set.
        problem: why the record could not be used (one line, str), else None.
    """

    record: object
    released: ReleasedAttribution | None
    mask: InstructionMask | None
    problem: str | None = None


def iter_release(model_dir: str | os.PathLike, records: Iterable) -> Iterable[ReleasedRecord]:
    """Join prompt records with the released files of one model folder, in record order.

    Args:
        model_dir: ``.../ifa_llama_7b`` or ``.../ifa_vicuna_7b``.
        records: prompt records (``PromptSet.records``) with ``id``, ``prompt`` and
            ``instruction``.

    Yields:
        One :class:`ReleasedRecord` per record. A missing file, or one that is malformed
        (:class:`~tuneshift.errors.InputFileError`), gives ``problem`` instead of raising, so the
        caller can skip the record and report it.

    Raises:
        UnsafePickleError: a file asks for a global outside the allow-list (never skipped: the
            folder cannot be trusted).
    """
    d = Path(model_dir)
    for rec in records:
        path = d / f"{rec.id}.pkl"
        if not path.exists():
            yield ReleasedRecord(rec, None, None, f"no released file {path.name} in {d}")
            continue
        try:
            ra = read_released_file(path)
        except InputFileError as exc:
            yield ReleasedRecord(rec, None, None, str(exc))
            continue
        yield ReleasedRecord(rec, ra, mask_for_record(ra.input_pieces, rec.prompt, rec.instruction))
