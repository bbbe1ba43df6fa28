"""GPT-NeoX / Pythia (``GPTNeoXForCausalLM``): ``gpt_neox.layers[i].input_layernorm``,
``attention.query_key_value``, ``mlp.dense_4h_to_h``.

Checked against transformers 5.24's ``GPTNeoXAttention``/``GPTNeoXMLP``:

* ``attention.query_key_value`` is an ``nn.Linear`` whose output is viewed as
  ``[n_heads, 3 * head_dim]`` and then chunked, i.e. q, k and v are *interleaved per head*:
  output index ``h * 3 * head_dim + c * head_dim + i`` (``c`` = 0 for q, 1 for k, 2 for v).
* ``mlp.dense_4h_to_h`` is an ``nn.Linear`` (weight ``[d_model, d_ffn]``).
* ``input_layernorm`` is a LayerNorm: its gain is folded; mean-centering and bias are ignored.

Not represented: q/k biases, partial rotary embeddings, the parallel residual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuneshift.models.anatomy.base import Anatomy, QKReference, TinyDims, effective_weight, norm_scale, unbiased
from tuneshift.models.anatomy.registry import register_anatomy

__all__ = ["GPTNeoXAnatomy"]


class GPTNeoXAnatomy(Anatomy):
    """GPT-NeoX / Pythia (``GPTNeoXForCausalLM``): LayerNorm (mean-centering and bias
    ignored); ``query_key_value`` output viewed as ``[n_heads, 3 * head_dim]`` then chunked,
    so q, k, v are interleaved per head; ``mlp.dense_4h_to_h`` is an ``nn.Linear``."""

    family = "gpt_neox"
    _layer_paths = ("gpt_neox.layers", "layers")
    _final_norm_paths = ("gpt_neox.final_layer_norm", "final_layer_norm")

    def _head_dim(self) -> int:
        attn = self._layers[0].attention
        hd = getattr(attn, "head_size", None)
        return int(hd) if hd else self.d_model // self.n_heads

    def _pre_attention_norm(self, layer: int) -> nn.Module:
        return self._layers[layer].input_layernorm

    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = effective_weight(self._layers[layer].attention.query_key_value)  # [3 * d_model, d_model]
        w = w.reshape(self.n_heads, 3, self.head_dim, w.shape[1])
        return w[:, 0].transpose(1, 2), w[:, 1].transpose(1, 2)

    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        return effective_weight(self._layers[layer].mlp.dense_4h_to_h).T

    # ---- test support ----------------------------------------------------------------

    @classmethod
    def tiny_config(cls, dims: TinyDims) -> tuple[Any, type]:
        """A tiny ``GPTNeoXConfig`` (standard names) and ``GPTNeoXForCausalLM``."""
        import transformers as T

        return T.GPTNeoXConfig(**dims.standard_kwargs()), T.GPTNeoXForCausalLM

    @classmethod
    def reference_qk(cls, model: nn.Module, layer: int, x: torch.Tensor) -> QKReference:
        """Test oracle as ``GPTNeoXAttention.forward``: ``query_key_value(input_layernorm(x))``
        viewed as ``[n, -1, 3 * head_size]`` and chunked in three (biases removed)."""
        block = cls.decoder_layers(model)[layer]
        attn, norm, n = block.attention, block.input_layernorm, x.shape[0]
        with torch.no_grad():
            qkv = unbiased(lambda t: attn.query_key_value(norm(t)), x).view(n, -1, 3 * attn.head_size)
            q, k, _ = qkv.chunk(3, dim=-1)
            scale = norm_scale(norm, x)[:, :, None]
        return QKReference.without_qk_norm(q, k, scale)

    @classmethod
    def reference_ffn_down(cls, model: nn.Module, layer: int) -> nn.Module:
        """The block's ``mlp.dense_4h_to_h`` (test oracle)."""
        return cls.decoder_layers(model)[layer].mlp.dense_4h_to_h


register_anatomy("gpt_neox", GPTNeoXAnatomy)
