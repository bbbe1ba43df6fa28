"""Feed-forward layers explained as concepts: PCA of the down-projection, read in words.

Method of Wu et al. (NAACL 2024), "From Language Modeling to Instruction Following:
Understanding the Behavior Shift in LLMs after Instruction Tuning", section on the
feed-forward explanation:

1. ``W = ffn_down(layer)``, ``[d_ffn, d_model]``, one row per FFN neuron (the vector the neuron
   writes into the residual stream: for Gemma 2/3 and OLMo 2 the down-projection row times the
   gain of ``post_feedforward_layernorm``, see
   :meth:`~tuneshift.models.anatomy.base.Anatomy.ffn_down`). The rows are centred (the mean row is subtracted) and
   ``W_c = U S V^T`` (thin SVD, float64). The principal components are the rows of ``V^T``
   (right singular vectors, unit length), in descending order of singular value; the
   explained-variance ratio of component ``c`` is ``s_c^2 / sum(s^2)`` (over all
   ``min(d_ffn, d_model)`` singular values).
2. Word vectors ``e_w``: mean of the **output** embedding (LM head) rows of the word's tokens
   (leading space, as in the heads method, :mod:`tuneshift.data.vocabulary`), times the final
   norm's gain by default (``final_norm="fold"``, :func:`~tuneshift.pipelines.concepts_run.prepare_words`),
   L2-normalised.
   The score of word ``w`` for component ``c`` is ``|v_c . e_w|`` (absolute value: both ends of
   a component count); the ``top_k`` (default 50) words per component are kept, ranked.
3. Only the top ``R`` components per layer are kept (default ``min(300, d_model)``).

Conventions (deterministic, tested):

* Order: component rank 0 has the largest singular value.
* Sign: an SVD determines each component only up to sign; here each component is flipped so
  that its entry with the largest absolute value is positive (the first such entry on exact
  ties). Scores are absolute, so the sign only matters for the stored vector and the stored
  signed projections.
* Word ranking: by score descending, ties broken by vocabulary order (stable sort).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneshift.errors import OptionError, TuneshiftError

__all__ = [
    "DEFAULT_RANK",
    "DEFAULT_TOP_WORDS",
    "PCA",
    "LayerConcepts",
    "default_rank",
    "principal_components",
    "normalise_rows",
    "word_scores",
    "explain_layer",
]

DEFAULT_RANK = 300
"""Default number of components kept per layer (the paper's 300), capped at ``d_model``."""
DEFAULT_TOP_WORDS = 50
"""Words kept per component."""


def default_rank(d_model: int, d_ffn: int | None = None) -> int:
    """``min(300, d_model)`` (and ``<= d_ffn`` when given): the default number of components."""
    r = min(DEFAULT_RANK, int(d_model))
    return min(r, int(d_ffn)) if d_ffn is not None else r


@dataclass
class PCA:
    """Principal components of one layer's down-projection rows.

    Attributes:
        components: ``[R, d_model]`` float64, orthonormal rows (sign convention in the module
            docstring), rank 0 first.
        singular_values: ``[R]`` float64, descending.
        explained_variance_ratio: ``[R]`` float64, ``s^2 / sum(s_all^2)``.
        total_variance: ``sum(s_all^2)`` (over all singular values of the centred matrix).
    """

    components: np.ndarray
    singular_values: np.ndarray
    explained_variance_ratio: np.ndarray
    total_variance: float


def _as_numpy64(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def principal_components(down, rank: int | None = None) -> PCA:
    """PCA of the rows of a down-projection (Wu et al. 2024, feed-forward explanation).

    Args:
        down: ``[d_ffn, d_model]`` (torch tensor or array; ``Anatomy.ffn_down(layer)``).
        rank: components to keep (``1 <= rank <= min(d_ffn, d_model)``); None ->
            :func:`default_rank`.

    Returns:
        :class:`PCA` with ``rank`` components.

    Raises:
        TuneshiftError: ``down`` is not 2-D, is empty or not finite; ``rank`` out of range.
    """
    w = _as_numpy64(down)
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
        raise TuneshiftError(f"down-projection must be a non-empty [d_ffn, d_model] matrix, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise TuneshiftError("the down-projection has NaN or infinite values")
    d_ffn, d_model = w.shape
    available = min(d_ffn, d_model)
    if rank is None:
        rank = default_rank(d_model, d_ffn)
    if isinstance(rank, bool) or int(rank) != rank or not 1 <= int(rank) <= available:
        raise OptionError(
            "rank", f"must be an integer in [1, {available}] (min(d_ffn={d_ffn}, d_model={d_model})), got {rank!r}"
        )
    rank = int(rank)
    wc = w - w.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(wc, full_matrices=False)
    total = float((s**2).sum())
    vt = vt[:rank].copy()
    idx = np.argmax(np.abs(vt), axis=1)
    signs = np.sign(vt[np.arange(rank), idx])
    signs[signs == 0] = 1.0
    vt *= signs[:, None]
    evr = (s[:rank] ** 2) / total if total > 0 else np.zeros(rank)
    return PCA(vt, s[:rank].copy(), evr, total)


def normalise_rows(x) -> np.ndarray:
    """L2-normalise rows (``[n, d]`` -> float64); an all-zero row stays zero."""
    x = _as_numpy64(x)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def word_scores(
    components: np.ndarray, word_vectors: np.ndarray, top_k: int = DEFAULT_TOP_WORDS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top words of each component by ``|v_c . e_w|``.

    Args:
        components: ``[R, d_model]``.
        word_vectors: ``[n_words, d_model]`` unit rows (:func:`normalise_rows` of the mean
            output embeddings).
        top_k: words kept per component (capped at ``n_words``).

    Returns:
        ``(index, score, projection)``, each ``[R, k]``: word indices (into ``word_vectors``),
        ``|v_c . e_w|`` (descending, ties by index) and the signed ``v_c . e_w``.

    Raises:
        TuneshiftError: ``top_k < 1``, no words, or mismatched ``d_model``.
    """
    v = _as_numpy64(components)
    e = _as_numpy64(word_vectors)
    if top_k < 1:
        raise TuneshiftError(f"top words must be >= 1, got {top_k}")
    if e.ndim != 2 or e.shape[0] == 0:
        raise TuneshiftError("no word vectors")
    if v.ndim != 2 or v.shape[1] != e.shape[1]:
        raise TuneshiftError(f"components {v.shape} and word vectors {e.shape} differ in d_model")
    k = min(int(top_k), e.shape[0])
    proj = v @ e.T
    score = np.abs(proj)
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(score, order, 1), np.take_along_axis(proj, order, 1)


@dataclass
class LayerConcepts:
    """The concepts of one layer (input of the Parquet writer).

    Attributes:
        layer: layer index. pca: its :class:`PCA`.
        word_index, score, projection: ``[R, k]`` from :func:`word_scores`.
    """

    layer: int
    pca: PCA
    word_index: np.ndarray
    score: np.ndarray
    projection: np.ndarray


def explain_layer(
    down, word_vectors: np.ndarray, layer: int = 0, rank: int | None = None, top_k: int = DEFAULT_TOP_WORDS
) -> LayerConcepts:
    """PCA of ``down`` (``[d_ffn, d_model]``) and the top words of each kept component.

    Raises:
        TuneshiftError: see :func:`principal_components` and :func:`word_scores`.
    """
    pca = principal_components(down, rank)
    idx, score, proj = word_scores(pca.components, word_vectors, top_k)
    return LayerConcepts(int(layer), pca, idx, score, proj)
