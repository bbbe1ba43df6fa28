"""Method B of Wu et al. 2024: self-attention heads explained as word pairs (weights only).

The computation (core). Its runs on disk are :mod:`tuneshift.storage.heads`; the whole-model
driver (inputs from a loaded model, resumable per-layer run) is :mod:`tuneshift.pipelines.heads_run`.
"""

from tuneshift.methods.heads.core import DEFAULT_TOP_K, LayerPairs, explain_heads, explain_heads_reference

__all__ = ["DEFAULT_TOP_K", "LayerPairs", "explain_heads", "explain_heads_reference"]
