"""Method C of Wu et al. 2024: feed-forward layers explained as concepts (weights only).

PCA of each layer's down-projection rows, components read as words through the output
embedding (core, store, run); the LLM annotator's prompts, parsing and cache (annotate), its
``local:`` and ``openai:`` backends (annotators) and driver (annotate_run). Comparing two
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
from tuneshift.methods.concepts.run import FINAL_NORM_CHOICES, ConceptsOptions, ConceptsSummary, ConceptWords, prepare_words, run_concepts
from tuneshift.methods.concepts.store import ConceptsResult, ConceptsWriter, load_concepts

__all__ = [
    "DEFAULT_RANK", "DEFAULT_TOP_WORDS", "FINAL_NORM_CHOICES", "PCA", "LayerConcepts", "ConceptWords", "ConceptsOptions", "ConceptsResult", "ConceptsSummary",
    "ConceptsWriter", "default_rank", "explain_layer", "load_concepts", "normalise_rows", "prepare_words",
    "principal_components", "run_concepts", "word_scores",
]
