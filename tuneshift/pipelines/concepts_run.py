"""Run the feed-forward concepts explanation over a whole model into a resumable run directory.

Source: Wu et al. 2024, feed-forward explanation (see :mod:`tuneshift.methods.concepts.core`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from tuneshift.data.vocabulary import Vocabulary, load_vocabulary, tokenize_vocabulary, word_embeddings
from tuneshift.errors import OptionError
from tuneshift.methods.concepts.core import DEFAULT_TOP_WORDS, default_rank, explain_layer, normalise_rows
from tuneshift.storage.concepts import ConceptsWriter, layer_table
from tuneshift.storage.layered import parse_layers

__all__ = [
    "ConceptWords",
    "ConceptsOptions",
    "ConceptsSummary",
    "FINAL_NORM_CHOICES",
    "prepare_words",
    "run_concepts",
    "METHOD_VERSION",
]

METHOD_VERSION = 2
"""2: the FFN rows are residual-stream directions (the post-FFN norm gain of Gemma 2/3 and OLMo 2
folded in) and the word vectors may fold the final-norm gain (``final_norm``); version-1 runs
read Gemma 2/3 and OLMo 2 in the wrong coordinates and are refused on resume."""

FINAL_NORM_CHOICES = ("fold", "none")
"""``final_norm``: ``"fold"`` (default) multiplies the LM-head rows by the final norm's gain
before the word means (the model's own readout of the residual stream, as the logit lens and
TransformerLens ``fold_ln``); ``"none"`` uses the raw LM-head rows (the paper's literal reading)."""


@dataclass
class ConceptWords:
    """The vocabulary side of the method for one model.

    Attributes:
        words: words with at least one token (vocabulary order). frequencies, n_tokens: per word.
        vectors: ``[n_words, d_model]`` float64, unit rows: mean **output**-embedding row of the
            word's tokens (leading space), times the final-norm gain when ``final_norm="fold"``,
            L2-normalised.
        dropped: words without tokens. vocabulary: the source :class:`Vocabulary`.
    """

    words: list[str]
    frequencies: np.ndarray
    n_tokens: np.ndarray
    vectors: np.ndarray
    dropped: list[str]
    vocabulary: Vocabulary

    def words_table(self) -> pa.Table:
        """Table for ``words.parquet``."""
        return pa.table({"word": self.words, "frequency": self.frequencies, "n_tokens": self.n_tokens.astype(np.int64)})


def _check_final_norm(final_norm: str) -> str:
    if final_norm not in FINAL_NORM_CHOICES:
        raise OptionError("final_norm", f"must be one of {', '.join(FINAL_NORM_CHOICES)}, got {final_norm!r}")
    return final_norm


def prepare_words(loaded, vocab: str | Path | Vocabulary | None = None, final_norm: str = "fold") -> ConceptWords:
    """Vocabulary -> tokens -> normalised mean output-embedding vectors for ``loaded``.

    Args:
        loaded: a :class:`~tuneshift.models.loading.LoadedModel`.
        vocab: None (wordfreq top 20,000), ``wordfreq:N``, a file path or a :class:`Vocabulary`.
        final_norm: ``"fold"``: the word vector is ``normalise(mean_t(W_U[t]) * g_final)`` with
            ``g_final`` the final norm's gain (:meth:`~tuneshift.models.anatomy.base.Anatomy.final_norm_gain`),
            so ``v . e_w`` is (up to the per-token ``1/rms`` and the word normalisation) the
            logit change of the word's tokens when ``v`` is written into the residual stream;
            ``"none"``: raw LM-head rows.

    Raises:
        OptionError: unknown ``final_norm``.
        InputFileError: empty vocabulary, unreadable file, no word with tokens.
        UnsupportedArchitectureError: no LM head.
    """
    _check_final_norm(final_norm)
    v = vocab if isinstance(vocab, Vocabulary) else load_vocabulary(vocab)
    tv = tokenize_vocabulary(v, loaded.tokenizer)
    emb = word_embeddings(loaded.anatomy.output_embedding_matrix(), tv.token_ids)
    if final_norm == "fold":
        emb = emb.double() * loaded.anatomy.final_norm_gain().to(emb.device).double()[None, :]
    return ConceptWords(
        tv.words, tv.frequencies, np.array([len(t) for t in tv.token_ids]), normalise_rows(emb), tv.dropped, v
    )


@dataclass
class ConceptsOptions:
    """Settings of a concepts run (:func:`run_concepts`; ``tuneshift concepts`` maps its flags onto them).

    Attributes:
        vocab: None (wordfreq top 20,000), ``wordfreq:N``, a file path or a :class:`Vocabulary`.
        rank: components kept per layer, ``1 <= rank <= min(d_ffn, d_model)`` (the upper bound
            is checked when the model is known); None -> ``min(300, d_model)``.
        top_k: words kept per component (default 50; ``--top-words``).
        layers: None (all) or a selection such as ``"0,3,5-7"`` (see
            :func:`~tuneshift.pipelines.heads_run.parse_layers`).
        final_norm: ``"fold"`` (default) or ``"none"``: whether the word vectors fold the final
            norm's gain into the LM head (see :func:`prepare_words`). Default ``"fold"``: the
            components are residual-stream directions (the FFN rows come from
            :meth:`~tuneshift.models.anatomy.base.Anatomy.ffn_down`, post-FFN norm gain folded),
            and the model reads the residual stream only through the final norm, whose gain is
            far from uniform (0.19-301 on Gemma 3), so the folded LM head is the model's own
            readout of a direction. ``"none"`` is the paper's literal reading (raw LM-head
            rows). Part of the run identity.

    Raises:
        OptionError: ``rank`` < 1, ``top_k`` < 1 (named ``top_words``), an unknown
            ``final_norm`` (checked in this order, before any model is needed).
    """

    vocab: str | Path | Vocabulary | None = None
    rank: int | None = None
    top_k: int = DEFAULT_TOP_WORDS
    layers: str | Sequence[int] | None = None
    final_norm: str = "fold"

    def __post_init__(self):
        if self.rank is not None and not isinstance(self.rank, bool) and self.rank < 1:
            raise OptionError("rank", f"must be >= 1, got {self.rank}")
        if self.top_k < 1:
            raise OptionError("top_words", f"must be >= 1, got {self.top_k}")
        _check_final_norm(self.final_norm)


@dataclass
class ConceptsSummary:
    """What :func:`run_concepts` did.

    Attributes:
        path: run directory. layers_done: computed now. layers_skipped: already on disk.
        n_words, n_dropped: vocabulary words used / without tokens. rank: components per layer.
        top_k: words per component. seconds: wall time. dropped_examples: a few dropped words.
    """

    path: Path
    layers_done: list[int]
    layers_skipped: list[int]
    n_words: int
    n_dropped: int
    rank: int
    top_k: int
    seconds: float
    dropped_examples: list[str] = field(default_factory=list)


def run_concepts(
    loaded,
    out_dir: str | Path,
    options: ConceptsOptions | None = None,
    *,
    on_start: Callable[[int], None] | None = None,
    on_layer_done: Callable[[int], None] | None = None,
    **settings,
) -> ConceptsSummary:
    """Explain the FFN of every selected layer of ``loaded`` as concepts into ``out_dir`` (resumable).

    The setup (rank, words, identity, the directory) is here; the loop over layers (resume,
    atomic layer files, status and history in the manifest) is
    :meth:`~tuneshift.storage.layered.LayeredRunWriter.run`'s, with :func:`explain_layer` per layer.

    Args:
        loaded: a :class:`~tuneshift.models.loading.LoadedModel`.
        out_dir: run directory (created; an existing concepts run with the same settings is resumed).
        options: :class:`ConceptsOptions` (default: all defaults).
        on_start: called once with the number of layers to compute.
        on_layer_done: called with the index of each finished layer.
        settings: :class:`ConceptsOptions` fields given as keywords (``run_concepts(loaded, out,
            rank=4)``); with ``options`` they replace its values.

    Returns:
        :class:`ConceptsSummary`.

    Raises:
        TuneshiftError subclasses: bad rank/top_k/layers/vocabulary, or a directory made with
        other settings (:class:`~tuneshift.errors.RunMismatchError`).

    Source: Wu et al. 2024, feed-forward explanation.
    """
    t0 = time.time()
    opts = _options(options, settings)
    anatomy = loaded.anatomy
    rank = _rank(opts.rank, int(anatomy.d_model), int(anatomy.d_ffn))
    selected = parse_layers(opts.layers, anatomy.n_layers)
    words = prepare_words(loaded, opts.vocab, final_norm=opts.final_norm)
    writer = ConceptsWriter(Path(out_dir), _identity(loaded, words, opts, rank), _info(anatomy, words))
    writer.ensure_words(words.words_table)

    def compute_layer(layer: int):
        lc = explain_layer(anatomy.ffn_down(layer), words.vectors, layer=layer, rank=rank, top_k=opts.top_k)
        return layer_table(lc, words.words)

    done = writer.run(
        selected, compute_layer, n_layers=anatomy.n_layers, on_start=on_start, on_layer_done=on_layer_done, started=t0
    )
    return ConceptsSummary(
        writer.path,
        done.layers_done,
        done.layers_skipped,
        len(words.words),
        len(words.dropped),
        rank,
        int(opts.top_k),
        done.seconds,
        words.dropped[:10],
    )


def _options(options: ConceptsOptions | None, settings: dict) -> ConceptsOptions:
    """``options`` with ``settings`` (ConceptsOptions fields) applied; checked."""
    if options is None:
        return ConceptsOptions(**settings)
    return dataclasses.replace(options, **settings) if settings else options


def _rank(rank: int | None, d_model: int, d_ffn: int) -> int:
    """The components kept per layer: ``rank``, or the default ``min(300, d_model)``.

    Raises:
        OptionError: ``rank`` outside ``[1, min(d_ffn, d_model)]`` (or a bool).
    """
    available = min(d_model, d_ffn)
    if rank is None:
        rank = default_rank(d_model, d_ffn)
    if isinstance(rank, bool) or not 1 <= int(rank) <= available:
        raise OptionError("rank", f"must be in [1, {available}] (min(d_ffn={d_ffn}, d_model={d_model})), got {rank}")
    return int(rank)


def _identity(loaded, words: ConceptWords, opts: ConceptsOptions, rank: int) -> dict:
    """What must match to resume a concepts run (the manifest ``identity``)."""
    return {
        "method": {"name": "concepts", "version": METHOD_VERSION},
        "model": loaded.describe(),
        "vocabulary": words.vocabulary.describe(),
        "options": {
            "rank": rank,
            "top_k": int(opts.top_k),
            "word_vectors": "output_embedding_mean_l2",
            "centred": True,
            "ffn_rows": "residual_stream",
            "final_norm": opts.final_norm,
        },
    }


def _info(anatomy, words: ConceptWords) -> dict:
    """The descriptive manifest ``info`` of a concepts run (sizes, dropped words, source)."""
    return {
        "n_layers": anatomy.n_layers,
        "d_model": int(anatomy.d_model),
        "d_ffn": int(anatomy.d_ffn),
        "family": anatomy.family,
        "n_words": len(words.words),
        "n_dropped_words": len(words.dropped),
        "dropped_words": words.dropped[:50],
        "source": "Wu et al. 2024, feed-forward explanation (PCA of down-projection rows, vocabulary projection)",
        "post_ffn_norm_folded": anatomy.post_ffn_gain(0) is not None,
    }
