"""Method A of Wu et al. 2024: input -> output attribution (gradient x input, and other registered methods)."""

from tuneshift.methods.attribution.api import AttributionOptions, SkippedRecord, attribute, attribute_batch
from tuneshift.methods.attribution.gradient import SequencePair, gradient_x_input, naive_gradient_x_input
from tuneshift.methods.attribution.importance import (
    ImportanceSettings,
    density_and_score,
    importance_density,
    instruction_score,
    sparsify,
)
from tuneshift.methods.attribution.methods import (
    AttributionMethod,
    get_method,
    method_names,
    register_method,
)
from tuneshift.methods.attribution.result import Attribution
from tuneshift.methods.attribution.targets import Target, get_target, register_target, target_names

__all__ = [
    "Attribution",
    "AttributionMethod",
    "AttributionOptions",
    "ImportanceSettings",
    "SequencePair",
    "SkippedRecord",
    "Target",
    "attribute",
    "attribute_batch",
    "density_and_score",
    "get_method",
    "get_target",
    "gradient_x_input",
    "importance_density",
    "instruction_score",
    "method_names",
    "naive_gradient_x_input",
    "register_method",
    "register_target",
    "sparsify",
    "target_names",
]
