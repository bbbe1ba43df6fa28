"""Method C of Wu et al. 2024: feed-forward layers explained as concepts (weights only).

PCA of each layer's down-projection rows, components read as words through the output
embedding (core); the LLM annotator's prompts, parsing and cache (annotate) and its ``local:``
and ``openai:`` backends (annotators). Runs on disk: :mod:`tuneshift.storage.concepts`; the drivers:
:mod:`tuneshift.pipelines.concepts_run`, :mod:`tuneshift.pipelines.annotate_run`. Comparing two
models (the annotator-free rotation measure, the annotator shares and t-tests) is statistics:
:mod:`tuneshift.stats.concepts_rotation` and :mod:`tuneshift.stats.concepts_shares`.
"""

from tuneshift.methods.concepts.core import (
    DEFAULT_RANK,
    DEFAULT_TOP_WORDS,
    PCA,
    LayerConcepts,
    default_rank,
    explain_layer,
    normalise_rows,
    principal_components,
    word_scores,
)

__all__ = [
    "DEFAULT_RANK",
    "DEFAULT_TOP_WORDS",
    "PCA",
    "LayerConcepts",
    "default_rank",
    "explain_layer",
    "normalise_rows",
    "principal_components",
    "word_scores",
]
