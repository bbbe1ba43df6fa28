"""Causal check of the attribution: how much log-probability of a fixed response a prompt span carries.

Forward passes only (no gradients). See :mod:`tuneshift.methods.ablation.core` for the
variants (``delete``, ``mask``, ``swap``) and the response log-probability, and
:mod:`tuneshift.pipelines.ablate_run` for the resumable run next to an attribution run.
"""

from tuneshift.methods.ablation.core import (
    ABLATIONS,
    SPANS,
    Ablation,
    ablate_tokens,
    ablation_names,
    get_ablation,
    register_ablation,
    response_logprobs,
    swap_donor,
)

__all__ = [
    "ABLATIONS",
    "SPANS",
    "Ablation",
    "ablate_tokens",
    "ablation_names",
    "get_ablation",
    "register_ablation",
    "response_logprobs",
    "swap_donor",
]
