"""Word vocabularies for the weight-based explanations, and their model-side word vectors.

The self-attention explanation of Wu et al. (NAACL 2024) reads every head through a fixed
list of *words*. This module provides that list and turns it into model input vectors.

Default vocabulary: the :data:`DEFAULT_SIZE` = 20,000 most frequent English words of
``wordfreq`` (``top_n_list("en")``, its frequencies in the wheel, no download), keeping only
purely alphabetic words (``str.isalpha()``: numbers, punctuation, contractions such as
``don't`` and fragments such as ``'s`` are dropped). Why 20,000: the paper's own vocabulary
(ShareGPT words, ``SingleShareGPT_Vocab.tsv``) has 26,497 words, so 20k is the same order;
the 20k words carry ~91% of wordfreq's English token frequency mass (the next 20k add only ~2%;
measured with wordfreq 3.1), while the cost of the method grows linearly with the vocabulary
(``Hq``/``Hk`` are ``[|V|, d_head]`` per head and the top-K search scans them) -- with 20k words
the whole 18-layer Gemma 3 270M takes about 20 s on 2 CPU cores. Pass ``size`` (or a user file) for another trade-off.

User file (:func:`read_vocabulary`): UTF-8, one word per line, or ``word<TAB>frequency`` (the
paper's format, e.g. ``SingleShareGPT_Vocab.tsv``); blank lines and lines starting with ``#``
are skipped; a first line ``word<TAB>frequency``-like header whose second field is not a
number is skipped too. Order = the file's order unless frequencies are given, in which case
words are sorted by frequency (descending, stable).

Case variants are merged (the paper merged ``Write``/``write``): the key is the lower-cased
word; the surface form kept is the variant with the highest frequency (the first one in the
file when frequencies are absent or equal); the merged frequency is the *sum* of the
variants' frequencies (they are occurrences of the same word). The merged list is re-sorted
by merged frequency (stable), so "most frequent" keeps its meaning.

Model side (:func:`tokenize_vocabulary`, :func:`word_embeddings`): each word is tokenized
with a leading space (``" " + word``, no special tokens) -- the form a word takes inside a
sentence; a token that is only a space/word-boundary marker (``"▁"``, ``"Ġ"``, ``" "``) is
dropped; the word vector is the mean of the input-embedding rows of the remaining tokens.
Words left with no token are dropped and counted (:attr:`TokenizedVocabulary.dropped`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from tuneshift.errors import InputFileError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_SIZE",
    "Vocabulary",
    "TokenizedVocabulary",
    "default_vocabulary",
    "read_vocabulary",
    "merge_case_variants",
    "load_vocabulary",
    "tokenize_vocabulary",
    "word_embeddings",
]

DEFAULT_SIZE = 20_000
_MARKERS = {"▁", "Ġ", " ", "Ċ", ""}


@dataclass
class Vocabulary:
    """An ordered word list, most frequent first, case variants merged.

    Attributes:
        words: surface forms (unique after lower-casing).
        frequencies: ``[len(words)]`` float64; NaN when the source gave none.
        source: human-readable origin (``"wordfreq:en:20000"`` or the file path).
        sha256: content hash of the word list (words and frequencies), for manifests.
    """

    words: list[str]
    frequencies: np.ndarray
    source: str

    def __post_init__(self):
        self.frequencies = np.asarray(self.frequencies, dtype=np.float64)
        if len(self.words) != self.frequencies.shape[0]:
            raise ValueError("words and frequencies differ in length")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for w, f in zip(self.words, self.frequencies.tolist()):
            h.update(f"{w}\t{f!r}\n".encode())
        return h.hexdigest()

    def describe(self) -> dict:
        return {"source": self.source, "size": len(self), "sha256": self.sha256}


def merge_case_variants(
    words: Sequence[str], frequencies: Sequence[float] | None = None
) -> tuple[list[str], np.ndarray]:
    """Merge words equal after lower-casing (see the module docstring for the rule).

    Args:
        words: words in source order.
        frequencies: one per word, or None (then the result's frequencies are NaN and the
            first occurrence of each key wins and fixes the order).

    Returns:
        ``(words, frequencies)`` sorted by merged frequency, descending (stable).
    """
    if frequencies is None:
        seen: dict[str, str] = {}
        for w in words:
            seen.setdefault(w.lower(), w)
        return list(seen.values()), np.full(len(seen), np.nan)
    best: dict[str, tuple[str, float]] = {}
    total: dict[str, float] = {}
    for w, f in zip(words, frequencies):
        f = float(f)
        key = w.lower()
        total[key] = total.get(key, 0.0) + f
        if key not in best or f > best[key][1]:
            best[key] = (w, f)
    keys = list(best)
    freq = np.array([total[k] for k in keys], dtype=np.float64)
    order = np.argsort(-freq, kind="stable")
    return [best[keys[i]][0] for i in order], freq[order]


def default_vocabulary(size: int = DEFAULT_SIZE) -> Vocabulary:
    """The ``size`` most frequent alphabetic English words of ``wordfreq`` (lower-case).

    Raises:
        InputFileError: ``size`` < 1.
    """
    if size < 1:
        raise InputFileError(f"vocabulary size must be >= 1, got {size}")
    import wordfreq

    n = size * 2
    while True:
        top = [w for w in wordfreq.top_n_list("en", n) if w.isalpha()]
        if len(top) >= size or n > 2_000_000:
            break
        n *= 2
    top = top[:size]
    freqs = [wordfreq.word_frequency(w, "en") for w in top]
    words, f = merge_case_variants(top, freqs)
    return Vocabulary(words, f, f"wordfreq:en:{size}")


def read_vocabulary(path: str | Path) -> Vocabulary:
    """Read a user vocabulary file (one word per line, or ``word<TAB>frequency``).

    Raises:
        InputFileError: missing/unreadable file, a bad frequency, a mix of lines with and
            without frequencies, or no words at all.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"vocabulary file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read vocabulary file {p}: {e}") from None
    words: list[str] = []
    freqs: list[float] = []
    with_freq = None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        word = parts[0].strip()
        if not word:
            continue
        if len(parts) >= 2 and parts[1].strip():
            try:
                f = float(parts[1])
            except ValueError:
                if not words:  # a header line such as "word<TAB>frequency"
                    continue
                raise InputFileError(f"{p}:{lineno}: frequency {parts[1]!r} is not a number") from None
            if not math.isfinite(f) or f < 0:
                raise InputFileError(f"{p}:{lineno}: frequency {parts[1]!r} must be finite and >= 0")
            has = True
        else:
            f, has = float("nan"), False
        if with_freq is None:
            with_freq = has
        elif with_freq != has:
            raise InputFileError(f"{p}:{lineno}: some lines have a frequency and others not; use one format")
        if " " in word:
            raise InputFileError(f"{p}:{lineno}: {word!r} is not a single word")
        words.append(word)
        freqs.append(f)
    if not words:
        raise InputFileError(f"vocabulary file {p} has no words")
    w, f = merge_case_variants(words, freqs if with_freq else None)
    return Vocabulary(w, f, str(p))


def load_vocabulary(spec: str | Path | None = None) -> Vocabulary:
    """``None`` -> :func:`default_vocabulary`; ``"wordfreq:N"`` -> the top N; else a file path."""
    if spec is None:
        return default_vocabulary()
    s = str(spec)
    if s.startswith("wordfreq:"):
        try:
            n = int(s.split(":", 1)[1])
        except ValueError:
            raise InputFileError(f"vocab {s!r}: expected wordfreq:N with an integer N") from None
        return default_vocabulary(n)
    return read_vocabulary(s)


@dataclass
class TokenizedVocabulary:
    """Words with their token ids under one tokenizer.

    Attributes:
        words: the words that have at least one token, in vocabulary order.
        frequencies: their frequencies.
        token_ids: one list of token ids per word (leading space, markers dropped).
        dropped: words left with no token (reported, not used).
    """

    words: list[str]
    frequencies: np.ndarray
    token_ids: list[list[int]]
    dropped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.words)


def _marker_ids(tokenizer, ids: Iterable[int]) -> set[int]:
    ids = sorted(set(ids))
    toks = tokenizer.convert_ids_to_tokens(ids)
    out = set()
    for i, t in zip(ids, toks):
        if t is None:
            continue
        if t in _MARKERS or tokenizer.decode([i]).strip() == "" and t.strip("▁Ġ ") == "":
            out.add(i)
    return out


def tokenize_vocabulary(vocab: Vocabulary, tokenizer) -> TokenizedVocabulary:
    """Tokenize every word with a leading space; drop lone marker tokens and empty words.

    Raises:
        InputFileError: the vocabulary is empty, or no word has a token.
    """
    if len(vocab) == 0:
        raise InputFileError("the vocabulary is empty")
    enc = tokenizer([" " + w for w in vocab.words], add_special_tokens=False)["input_ids"]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    markers = _marker_ids(tokenizer, (i for ids in enc for i in ids))
    drop = markers | special
    words, freqs, ids_out, dropped = [], [], [], []
    for w, f, ids in zip(vocab.words, vocab.frequencies.tolist(), enc):
        kept = [int(i) for i in ids if i not in drop]
        if kept:
            words.append(w)
            freqs.append(f)
            ids_out.append(kept)
        else:
            dropped.append(w)
    if not words:
        raise InputFileError(f"none of the {len(vocab)} vocabulary words has a token in this tokenizer")
    return TokenizedVocabulary(words, np.asarray(freqs, dtype=np.float64), ids_out, dropped)


def word_embeddings(embedding: "torch.Tensor", token_ids: Sequence[Sequence[int]]) -> "torch.Tensor":
    """Mean input-embedding row of each word's tokens.

    Args:
        embedding: ``[vocab_size, d_model]`` (e.g. ``Anatomy.input_embedding_matrix()``).
        token_ids: one non-empty id list per word.

    Returns:
        ``[n_words, d_model]`` float32 (``torch.nn.functional.embedding_bag(mode="mean")``).
    """
    import torch

    flat = torch.tensor([i for ids in token_ids for i in ids], dtype=torch.long)
    lengths = torch.tensor([len(ids) for ids in token_ids], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
    if flat.numel() and (int(flat.max()) >= embedding.shape[0] or int(flat.min()) < 0):
        raise InputFileError("a token id is outside the model's embedding matrix (tokenizer/model mismatch)")
    with torch.no_grad():
        return torch.nn.functional.embedding_bag(flat, embedding.float(), offsets, mode="mean")
