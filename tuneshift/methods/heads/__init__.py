"""Method B of Wu et al. 2024: self-attention heads explained as word pairs (weights only)."""

from tuneshift.methods.heads.core import DEFAULT_TOP_K, LayerPairs, explain_heads, explain_heads_reference
from tuneshift.methods.heads.run import HeadsInputs, HeadsOptions, HeadsSummary, parse_layers, prepare_inputs, run_heads
from tuneshift.methods.heads.store import HeadsResult, HeadsWriter, load_heads

__all__ = [
    "DEFAULT_TOP_K", "HeadsInputs", "HeadsOptions", "HeadsResult", "HeadsSummary", "HeadsWriter", "LayerPairs",
    "explain_heads", "explain_heads_reference", "load_heads", "parse_layers", "prepare_inputs", "run_heads",
]
