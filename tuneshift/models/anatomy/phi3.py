"""Phi-3 (``Phi3ForCausalLM``: Phi-3 / Phi-3.5 mini and medium, Phi-4-mini):
``model.layers[i].input_layernorm``, fused ``self_attn.qkv_proj``, ``mlp.down_proj``.

Checked against transformers 5.24's ``Phi3DecoderLayer``, ``Phi3Attention`` and ``Phi3MLP``:

* ``input_layernorm`` is a ``Phi3RMSNorm``: ``w * x / rms(x)`` (gain ``w``), applied to the
  residual before self-attention, as in Llama.
* ``self_attn.qkv_proj`` is one ``nn.Linear(d_model, (n_heads + 2 * n_kv_heads) * head_dim)``
  without bias; its output rows are stacked ``[q; k; v]``: ``q = out[..., :n_heads * head_dim]``,
  ``k = out[..., n_heads * head_dim : (n_heads + n_kv_heads) * head_dim]``, ``v`` the rest,
  each viewed as ``[..., heads, head_dim]`` (``head_dim = hidden_size // n_heads`` unless the
  config sets ``head_dim``). So ``Wq``/``Wk`` are row blocks of the fused weight; a LoRA
  adapter on ``qkv_proj`` is read through its fused delta (``effective_weight``).
* ``mlp.gate_up_proj`` is fused too (``gate | up`` halves, not needed here);
  ``mlp.down_proj`` is an ``nn.Linear`` (weight ``[d_model, d_ffn]``).

Not represented: rotary embeddings (partial rotary, ``longrope`` scaling), sliding-window
attention; residual dropout is the identity in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuneshift.errors import UnsupportedArchitectureError
from tuneshift.models.anatomy.base import Anatomy, QKReference, TinyDims, effective_weight, norm_scale, unbiased
from tuneshift.models.anatomy.registry import register_anatomy

__all__ = ["Phi3Anatomy"]


class Phi3Anatomy(Anatomy):
    """Phi-3 (``Phi3ForCausalLM``): RMSNorm gain ``w``, fused ``qkv_proj`` with rows
    ``[q; k; v]`` (GQA in the larger models), ``mlp.down_proj`` an ``nn.Linear``."""

    family = "phi3"
    _layer_paths = ("model.layers", "layers")
    _final_norm_paths = ("model.norm", "norm")

    def _head_dim(self) -> int:
        hd = getattr(self._layers[0].self_attn, "head_dim", None) or getattr(self.config, "head_dim", None)
        return int(hd) if hd else self.d_model // self.n_heads

    def _pre_attention_norm(self, layer: int) -> nn.Module:
        return self._layers[layer].input_layernorm

    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = effective_weight(self._layers[layer].self_attn.qkv_proj)  # [(H + 2 H_kv) * hd, d_model]
        n_q, n_k = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        if w.shape[0] != n_q + 2 * n_k:
            raise UnsupportedArchitectureError(
                f"phi3: qkv_proj has {w.shape[0]} output rows, expected (n_heads + 2 * n_kv_heads) * head_dim "
                f"= {n_q + 2 * n_k}"
            )
        d = w.shape[1]
        q = w[:n_q].reshape(self.n_heads, self.head_dim, d).transpose(1, 2)
        k = w[n_q : n_q + n_k].reshape(self.n_kv_heads, self.head_dim, d).transpose(1, 2)
        return q, k

    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        return effective_weight(self._layers[layer].mlp.down_proj).T  # Linear [d_model, d_ffn] -> [d_ffn, d_model]

    # ---- test support ----------------------------------------------------------------

    @classmethod
    def tiny_config(cls, dims: TinyDims) -> tuple[Any, type]:
        """A tiny ``Phi3Config`` with grouped-query attention (2 KV heads, so that the fused
        rows of q and k have different lengths) and ``Phi3ForCausalLM``. Special ids not given
        are unset (Phi-3's defaults, 32000, would not fit a tiny vocabulary)."""
        import transformers as T

        ids = {**dict(bos_token_id=None, eos_token_id=None, pad_token_id=None), **dims.token_ids()}
        config = T.Phi3Config(**{**dims.standard_kwargs(), **ids}, num_key_value_heads=2)
        return config, T.Phi3ForCausalLM

    @classmethod
    def reference_qk(cls, model: nn.Module, layer: int, x: torch.Tensor) -> QKReference:
        """Test oracle as ``Phi3Attention.forward``: ``qkv = qkv_proj(input_layernorm(x))``,
        ``q = qkv[..., :query_pos]``, ``k = qkv[..., query_pos : query_pos + n_kv * head_dim]``
        with ``query_pos = num_attention_heads * head_dim``, viewed ``[n, -1, head_dim]``."""
        block = cls.decoder_layers(model)[layer]
        attn, norm, n = block.self_attn, block.input_layernorm, x.shape[0]
        hd = attn.head_dim
        query_pos = attn.config.num_attention_heads * hd
        with torch.no_grad():
            qkv = unbiased(lambda t: attn.qkv_proj(norm(t)), x)
            q = qkv[..., :query_pos].view(n, -1, hd)
            k = qkv[..., query_pos : query_pos + attn.num_key_value_heads * hd].view(n, -1, hd)
            scale = norm_scale(norm, x)[:, :, None]
        return QKReference.without_qk_norm(q, k, scale)

    @classmethod
    def reference_ffn_down(cls, model: nn.Module, layer: int) -> nn.Module:
        """The block's ``mlp.down_proj`` (test oracle)."""
        return cls.decoder_layers(model)[layer].mlp.down_proj


register_anatomy("phi3", Phi3Anatomy)
