"""GPT-2 (``GPT2LMHeadModel``): ``transformer.h[i].ln_1``, ``attn.c_attn``, ``mlp.c_proj``.

Checked against transformers 5.24's ``GPT2Attention``/``GPT2MLP``:

* ``c_attn`` is a ``Conv1D`` with weight ``[d_model, 3 * d_model]`` applied as ``x @ W + b``;
  the output is split into contiguous ``q | k | v`` blocks of ``d_model``
  (``split(split_size)``), each viewed as ``[n_heads, head_dim]``.
* ``mlp.c_proj`` is a ``Conv1D`` whose stored weight is already ``[d_ffn, d_model]``.
* ``ln_1`` is a LayerNorm: its gain is folded; mean-centering and bias are ignored.

Not represented: the learned position embeddings ``wpe`` (the input embedding is the token
embedding ``wte`` only), q/k biases, ``scale_attn_by_inverse_layer_idx``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuneshift.models.anatomy.base import Anatomy, QKReference, TinyDims, effective_weight, norm_scale, unbiased
from tuneshift.models.anatomy.registry import register_anatomy

__all__ = ["GPT2Anatomy"]


class GPT2Anatomy(Anatomy):
    """GPT-2 (``GPT2LMHeadModel``): LayerNorm (mean-centering and bias ignored), ``Conv1D``
    ``c_attn`` weight ``[d_model, 3 * d_model]`` split into contiguous q | k | v blocks;
    ``mlp.c_proj`` stored as ``[d_ffn, d_model]``. Token embedding ``wte`` only (``wpe`` not
    included)."""

    family = "gpt2"
    _layer_paths = ("transformer.h", "h")
    _final_norm_paths = ("transformer.ln_f", "ln_f")

    def _head_dim(self) -> int:
        return self.d_model // self.n_heads

    def _pre_attention_norm(self, layer: int) -> nn.Module:
        return self._layers[layer].ln_1

    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = effective_weight(self._layers[layer].attn.c_attn)  # [d_model, 3 * d_model], x @ w
        d = w.shape[0]
        split = self.n_heads * self.head_dim

        def heads(block: torch.Tensor) -> torch.Tensor:
            return block.reshape(d, self.n_heads, self.head_dim).permute(1, 0, 2)

        return heads(w[:, :split]), heads(w[:, split : 2 * split])

    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        return effective_weight(self._layers[layer].mlp.c_proj)  # Conv1D: already [d_ffn, d_model]

    # ---- test support ----------------------------------------------------------------

    @classmethod
    def tiny_config(cls, dims: TinyDims) -> tuple[Any, type]:
        """A tiny ``GPT2Config`` (GPT-2 names: ``n_embd``, ``n_layer``, ``n_head``, ``n_inner``,
        ``n_positions``) and ``GPT2LMHeadModel``."""
        import transformers as T

        config = T.GPT2Config(
            vocab_size=dims.vocab_size,
            n_embd=dims.hidden_size,
            n_layer=dims.num_layers,
            n_head=dims.num_heads,
            n_inner=dims.intermediate_size,
            n_positions=dims.max_positions,
            initializer_range=dims.initializer_range,
            **dims.token_ids(),
        )
        return config, T.GPT2LMHeadModel

    @classmethod
    def reference_qk(cls, model: nn.Module, layer: int, x: torch.Tensor) -> QKReference:
        """Test oracle as ``GPT2Attention.forward``: ``c_attn(ln_1(x)).split(split_size)``, each
        viewed as ``[n, -1, head_dim]`` (biases and the LayerNorm bias removed)."""
        block = cls.decoder_layers(model)[layer]
        attn, n = block.attn, x.shape[0]
        with torch.no_grad():
            qkv = unbiased(lambda t: attn.c_attn(block.ln_1(t)), x)
            q, k, _ = qkv.split(attn.split_size, dim=-1)
            q, k = q.view(n, -1, attn.head_dim), k.view(n, -1, attn.head_dim)
            scale = norm_scale(block.ln_1, x)[:, :, None]
        return QKReference.without_qk_norm(q, k, scale)

    @classmethod
    def reference_ffn_down(cls, model: nn.Module, layer: int) -> nn.Module:
        """The block's ``mlp.c_proj`` (test oracle)."""
        return cls.decoder_layers(model)[layer].mlp.c_proj


register_anatomy("gpt2", GPT2Anatomy)
