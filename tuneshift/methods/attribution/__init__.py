"""Method A of Wu et al. 2024: input -> output attribution (gradient x input)."""

from tuneshift.methods.attribution.api import AttributionOptions, SkippedRecord, attribute, attribute_batch
from tuneshift.methods.attribution.gradient import SequencePair, gradient_x_input, naive_gradient_x_input
from tuneshift.methods.attribution.importance import (
    ImportanceSettings,
    density_and_score,
    importance_density,
    instruction_score,
    sparsify,
)
from tuneshift.methods.attribution.result import Attribution

__all__ = [
    "Attribution", "AttributionOptions", "ImportanceSettings", "SequencePair", "SkippedRecord",
    "attribute", "attribute_batch", "density_and_score", "gradient_x_input", "importance_density",
    "instruction_score", "naive_gradient_x_input", "sparsify",
]
