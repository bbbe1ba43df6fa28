"""The Gemma families (Gemma 1, 2, 3): llama-like data-table rows with Gemma's conventions.

Checked against transformers 5.24's modules:

* ``GemmaRMSNorm``, ``Gemma2RMSNorm`` and ``Gemma3RMSNorm`` compute ``(1 + w) * x / rms(x)``
  in float32, so their effective gain is ``1 + w`` (``_gain_offset = 1``).
* The embeddings (``Gemma*TextScaledWordEmbedding``) multiply the looked-up rows by
  ``embed_scale = sqrt(d_model)`` cast to the *embedding weight dtype* (so in bfloat16 the
  scale itself is rounded, e.g. ``sqrt(640) = 25.298 -> 25.25``); the multiplication is done
  in that dtype too, exactly as :meth:`GemmaLikeAnatomy._embedding_scale` is used.
* Gemma 3 applies per-head RMSNorms ``self_attn.q_norm`` / ``k_norm`` (gain ``1 + w`` over
  ``head_dim``, shared by all heads) to q and k after the projection and before RoPE.
  ``"gemma3_text"`` (the text-only checkpoints) is registered as an alias; the text tower of
  ``Gemma3ForConditionalGeneration`` is found at ``model.language_model.layers``.
* Gemma 2 and Gemma 3 (not Gemma 1) normalise the MLP output before the residual add:
  ``h = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))``, gain ``1 + w``.
  Neuron ``i`` therefore writes ``W_down[i] * (1 + w_post)`` (times the per-token ``1/rms``)
  into the residual stream; :meth:`~tuneshift.models.anatomy.base.Anatomy.ffn_down` folds
  the gain (on gemma-3-270m it spans 0.01-153 in layer 0 and -0.12-1649 in layer 17, so
  the raw rows are far from the residual directions).

Not represented: Gemma 2's attention/final-logit soft-capping, ``query_pre_attn_scalar``,
sliding-window attention.
"""

from __future__ import annotations

import math

import torch

from tuneshift.models.anatomy.base import base_layer
from tuneshift.models.anatomy.llama import LlamaLikeAnatomy, LlamaLikeSpec, llama_like_class
from tuneshift.models.anatomy.registry import register_anatomy

__all__ = ["GEMMA_TABLE", "Gemma2Anatomy", "Gemma3Anatomy", "GemmaAnatomy", "GemmaLikeAnatomy"]


class GemmaLikeAnatomy(LlamaLikeAnatomy):
    """Gemma conventions on top of a llama-like row: RMSNorm gain ``1 + w`` (float32) and
    ``sqrt(d_model)`` embedding scale."""

    _gain_offset = 1.0

    def _embedding_scale(self, weight: torch.Tensor) -> torch.Tensor:
        base = base_layer(self.model.get_input_embeddings())
        scale = getattr(base, "embed_scale", None)
        if not isinstance(scale, torch.Tensor) or scale.is_meta:
            scale = torch.tensor(getattr(base, "scalar_embed_scale", None) or math.sqrt(self.d_model))
        return scale.to(device=weight.device, dtype=weight.dtype)


def _gemma3_tiny(d):
    layer_types = (["sliding_attention", "full_attention"] * d.num_layers)[: d.num_layers]
    return dict(num_key_value_heads=2, head_dim=8, sliding_window=8, layer_types=layer_types)


GEMMA_TABLE: tuple[LlamaLikeSpec, ...] = (
    LlamaLikeSpec(
        family="gemma",
        class_name="GemmaAnatomy",
        summary="Gemma 1 (``GemmaForCausalLM``): ``(1 + w)`` RMSNorm, scaled embeddings, MQA/GQA.",
        config_class="GemmaConfig",
        model_class="GemmaForCausalLM",
        tiny=lambda d: dict(num_key_value_heads=1, head_dim=8),  # MQA
    ),
    LlamaLikeSpec(
        family="gemma2",
        class_name="Gemma2Anatomy",
        summary="Gemma 2 (``Gemma2ForCausalLM``): as Gemma, plus logit soft-capping (not represented).",
        config_class="Gemma2Config",
        model_class="Gemma2ForCausalLM",
        tiny=lambda d: dict(num_key_value_heads=2, head_dim=8, sliding_window=8),
        post_ffn_norm="post_feedforward_layernorm",
    ),
    LlamaLikeSpec(
        family="gemma3",
        class_name="Gemma3Anatomy",
        summary=(
            "Gemma 3 (``Gemma3ForCausalLM`` / ``gemma3_text``, or the text tower of "
            "``Gemma3ForConditionalGeneration``): as Gemma, plus per-head ``q_norm``/``k_norm`` "
            "(``(1 + w)`` over ``head_dim``) applied before RoPE."
        ),
        config_class="Gemma3TextConfig",
        model_class="Gemma3ForCausalLM",
        tiny=_gemma3_tiny,
        q_norm="self_attn.q_norm",
        k_norm="self_attn.k_norm",
        qk_norm_scope="head",
        post_ffn_norm="post_feedforward_layernorm",
    ),
)
"""Rows of the Gemma families (built on :class:`GemmaLikeAnatomy`)."""

GemmaAnatomy, Gemma2Anatomy, Gemma3Anatomy = (
    llama_like_class(s, base=GemmaLikeAnatomy, module=__name__) for s in GEMMA_TABLE
)

register_anatomy("gemma", GemmaAnatomy)
register_anatomy("gemma2", Gemma2Anatomy)
register_anatomy("gemma3", Gemma3Anatomy)
register_anatomy("gemma3_text", Gemma3Anatomy)
