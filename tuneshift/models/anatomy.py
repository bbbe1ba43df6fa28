"""Uniform weight-level view of each supported transformer family ("anatomy" adapters).

The two weight-based explanation methods of Wu et al. (NAACL 2024), "From Language Modeling
to Instruction Following: Understanding the Behavior Shift in LLMs after Instruction Tuning"
-- the self-attention explanation (Sec. on self-attention: each head is read as word pairs
through its query/key weights) and the feed-forward explanation (Sec. on feed-forward
networks: PCA of the FFN down-projection rows, projected onto the vocabulary) -- need the
same handful of matrices from every model: the input and output embeddings, the per-head
query/key projections with the pre-attention norm gain folded in, and the per-neuron
down-projection vectors.

Hugging Face ``transformers`` names and packs these differently per architecture, so, in
the style of TransformerLens' per-architecture adapters, this module has one small
:class:`Anatomy` subclass per family behind a single interface, and :func:`get_anatomy`
picks the right one from ``model.config.model_type``.

Conventions (all checked against the installed ``transformers`` module code and a
forward pass in ``tests/test_anatomy.py``):

* Residual vectors are rows ``x`` of length ``d_model``; every projection is written
  ``x @ W`` (``W`` is ``[d_model, out]``), i.e. the transpose of ``nn.Linear.weight``.
* Llama/Mistral/Qwen2 RMSNorm computes ``g * x / rms(x)``; the Gemma families
  (``GemmaRMSNorm``, ``Gemma2RMSNorm``, ``Gemma3RMSNorm``) compute
  ``(1 + w) * x / rms(x)`` in float32, so their effective gain is ``1 + w``.
* Gemma embeddings (``Gemma*TextScaledWordEmbedding``) multiply the looked-up rows by
  ``embed_scale = sqrt(d_model)`` cast to the *embedding weight dtype* (so in bfloat16 the
  scale itself is rounded, e.g. ``sqrt(640) = 25.298 -> 25.25``); the multiplication is
  done in that dtype too, exactly as here.
* GPT-2 ``c_attn`` is a ``Conv1D`` with weight ``[d_model, 3 * d_model]`` applied as
  ``x @ W + b``; the output is split into contiguous ``q | k | v`` blocks of ``d_model``,
  each viewed as ``[n_heads, head_dim]``. ``mlp.c_proj`` is a ``Conv1D`` whose stored
  weight is already ``[d_ffn, d_model]``.
* GPT-NeoX ``attention.query_key_value`` is an ``nn.Linear`` whose output is viewed as
  ``[n_heads, 3 * head_dim]`` and then chunked, i.e. q, k and v are *interleaved per
  head*: output index ``h * 3 * head_dim + c * head_dim + i`` (``c`` = 0 for q, 1 for k,
  2 for v).
* Gemma 3 applies per-head RMSNorms ``self_attn.q_norm`` / ``k_norm`` (gain ``1 + w`` over
  ``head_dim``) to q and k after the projection and before RoPE.

What is deliberately *not* folded (document this in any report that uses these weights):
the per-token ``1 / rms(x)`` (or LayerNorm ``1 / std``) factor, which is a positive scalar
per token; LayerNorm mean-centering and LayerNorm bias (GPT-2, GPT-NeoX); query/key
projection biases (Qwen2, GPT-2, GPT-NeoX); rotary position embeddings; the attention
score scale (``1/sqrt(head_dim)``, Gemma's ``query_pre_attn_scalar``, GPT-2's
``scale_attn_by_inverse_layer_idx``); Gemma 2's attention/final-logit soft-capping; and
GPT-2's learned position embeddings ``wpe`` (the input embedding is the token embedding
``wte`` only).

PEFT: :func:`get_anatomy` unwraps a ``peft.PeftModel``. Unmerged, active plain-LoRA
adapters on the modules read here are included (``W + delta`` for every active adapter,
as the forward pass does); ``modules_to_save`` copies are honoured. Other adapter kinds
(DoRA and other LoRA variants, IA3, LoHa, ...) raise
:class:`~tuneshift.errors.UnsupportedArchitectureError` asking for ``merge_and_unload()``.
"""

from __future__ import annotations

import abc
import math
import operator
from typing import Any, ClassVar

import torch
from torch import nn

from tuneshift.errors import UnsupportedArchitectureError

__all__ = [
    "SUPPORTED_FAMILIES",
    "Anatomy",
    "LlamaAnatomy",
    "MistralAnatomy",
    "Qwen2Anatomy",
    "GemmaAnatomy",
    "Gemma2Anatomy",
    "Gemma3Anatomy",
    "GPT2Anatomy",
    "GPTNeoXAnatomy",
    "get_anatomy",
]

SUPPORTED_FAMILIES: tuple[str, ...] = (
    "llama",
    "mistral",
    "qwen2",
    "gemma",
    "gemma2",
    "gemma3",
    "gpt2",
    "gpt_neox",
)
"""Architecture families with an anatomy adapter (values of ``config.model_type``;
``"gemma3_text"`` -- the text-only Gemma 3 checkpoints -- maps to ``"gemma3"``)."""

_MODEL_TYPE_ALIASES: dict[str, str] = {"gemma3_text": "gemma3"}


# --------------------------------------------------------------------------------------
# helpers: PEFT-aware weight reading
# --------------------------------------------------------------------------------------


def _merge_hint(module: nn.Module) -> str:
    return (
        f"cannot read effective weights through the PEFT layer {type(module).__name__}; "
        "merge the adapter first (model = model.merge_and_unload())"
    )


def _resolve_wrapper(module: nn.Module) -> nn.Module:
    """Follow a PEFT ``ModulesToSaveWrapper`` to the module its forward pass would use."""
    while hasattr(module, "original_module") and hasattr(module, "modules_to_save"):
        active = list(getattr(module, "active_adapters", []) or [])
        available = set(getattr(module, "_adapters", set())) | set(module.modules_to_save.keys())
        if getattr(module, "disable_adapters", False) or not active or any(a not in available for a in active):
            module = module.original_module
        else:
            module = module.modules_to_save[active[0]]
    return module


def _is_tuner_layer(module: nn.Module) -> bool:
    return hasattr(module, "get_base_layer") and hasattr(module, "merged") and hasattr(module, "active_adapters")


def _base_layer(module: nn.Module) -> nn.Module:
    """The innermost original (non-PEFT) module, e.g. to read a Gemma ``embed_scale``."""
    module = _resolve_wrapper(module)
    if _is_tuner_layer(module):
        module = module.get_base_layer()
    return module


def _effective_weight(module: nn.Module) -> torch.Tensor:
    """The ``weight`` the module's forward pass effectively uses, in the stored layout.

    For a plain module this is ``module.weight``. For an unmerged, enabled PEFT LoRA layer it
    is ``base.weight + sum(get_delta_weight(a))`` over the active adapters present in the
    layer (``get_delta_weight`` already returns the base layer's layout, e.g. ``[in, out]``
    for GPT-2's ``Conv1D``). Result is detached, dtype of the stored weight.

    Raises:
        UnsupportedArchitectureError: for quantized weights or PEFT layers other than plain
            LoRA (the user must ``merge_and_unload()`` first).
    """
    module = _resolve_wrapper(module)
    if not _is_tuner_layer(module):
        weight = module.weight
        if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
            raise UnsupportedArchitectureError(
                f"{type(module).__name__} has non-floating-point (quantized?) weights; "
                "load the model unquantized to read its anatomy"
            )
        return weight.detach()

    base = module.get_base_layer()
    weight = _effective_weight(base)
    if module.merged or module.disable_adapters:
        return weight
    if hasattr(module, "lora_A"):
        containers = (module.lora_A,)
    elif hasattr(module, "lora_embedding_A"):
        containers = (module.lora_embedding_A,)
    else:
        raise UnsupportedArchitectureError(_merge_hint(module))
    active = [a for a in module.active_adapters if any(a in c for c in containers)]
    if not active:
        return weight
    variants = getattr(module, "lora_variant", {}) or {}
    if not hasattr(module, "get_delta_weight") or any(variants.get(a) is not None for a in active):
        raise UnsupportedArchitectureError(_merge_hint(module))
    with torch.no_grad():
        total = weight.float()
        for adapter in active:
            delta = module.get_delta_weight(adapter).detach()
            if delta.shape != weight.shape:
                raise UnsupportedArchitectureError(_merge_hint(module))
            total = total + delta.float()
    return total.to(weight.dtype)


def _f32(t: torch.Tensor) -> torch.Tensor:
    """Detached float32 tensor (a view when already float32, else a copy)."""
    return t.detach().to(torch.float32)


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


# --------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------


class Anatomy(abc.ABC):
    """Uniform read-only view of one architecture family's weights (TransformerLens-style adapter).

    Built by :func:`get_anatomy`; one subclass per entry of :data:`SUPPORTED_FAMILIES`. It
    exposes exactly the matrices needed by the self-attention and feed-forward explanations
    of Wu et al. (NAACL 2024, Sec. on self-attention and on feed-forward networks).

    Attributes:
        family: one of :data:`SUPPORTED_FAMILIES`.
        model: the (PEFT-unwrapped) ``transformers.PreTrainedModel``.
        n_layers: number of decoder blocks.
        n_heads: number of query heads per layer.
        n_kv_heads: number of key/value heads (``< n_heads`` under grouped-query attention).
        head_dim: dimension of one query/key head.
        d_model: residual stream width.
        d_ffn: number of FFN neurons (inner width of the MLP) per layer.
        vocab_size: rows of the input embedding matrix.

    Every returned tensor is detached float32 (a view of a float32 parameter, or a new
    tensor); never modify it in place. Weights stay on the model's device. A layer index
    outside ``[0, n_layers)`` raises :class:`ValueError`.
    """

    family: ClassVar[str]
    _layer_paths: ClassVar[tuple[str, ...]] = ()
    _gain_offset: ClassVar[float] = 0.0  # 1.0 for Gemma's (1 + w) RMSNorm convention

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        config = model.config
        if hasattr(config, "get_text_config"):
            config = config.get_text_config()
        self.config = config
        self._layers = self._find_layers()
        self.n_layers = len(self._layers)
        self.n_heads = int(config.num_attention_heads)
        n_kv = getattr(config, "num_key_value_heads", None)
        self.n_kv_heads = int(n_kv) if n_kv else self.n_heads
        emb = _effective_weight(self.model.get_input_embeddings())
        self.vocab_size, self.d_model = int(emb.shape[0]), int(emb.shape[1])
        self.head_dim = self._head_dim()
        if self.n_heads % self.n_kv_heads:
            raise UnsupportedArchitectureError(
                f"{self.family}: n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}"
            )
        self.d_ffn = int(self._ffn_down_raw(0).shape[0])
        wq, wk = self._qk_raw(0)
        expected_q = (self.n_heads, self.d_model, self.head_dim)
        expected_k = (self.n_kv_heads, self.d_model, self.head_dim)
        if tuple(wq.shape) != expected_q or tuple(wk.shape) != expected_k:
            raise UnsupportedArchitectureError(
                f"{self.family}: query/key weights have shapes {tuple(wq.shape)}/{tuple(wk.shape)}, "
                f"expected {expected_q}/{expected_k} from the config"
            )

    # ---- family hooks -----------------------------------------------------------------

    def _find_layers(self) -> nn.ModuleList:
        for path in self._layer_paths:
            layers = _get_path(self.model, path)
            if isinstance(layers, nn.ModuleList) and len(layers) > 0:
                return layers
        raise UnsupportedArchitectureError(
            f"{self.family}: cannot find the decoder layers of {type(self.model).__name__} "
            f"(looked for {', '.join(self._layer_paths)})"
        )

    @abc.abstractmethod
    def _head_dim(self) -> int:
        """Per-head dimension."""

    @abc.abstractmethod
    def _pre_attention_norm(self, layer: int) -> nn.Module:
        """The norm module applied to the residual stream before self-attention."""

    @abc.abstractmethod
    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Unfolded ``Wq [n_heads, d_model, head_dim]`` and ``Wk [n_kv_heads, d_model, head_dim]``."""

    @abc.abstractmethod
    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        """Down-projection as ``[d_ffn, d_model]`` (stored dtype)."""

    def _qk_norms(self, layer: int) -> tuple[nn.Module, nn.Module] | None:
        return None

    def _embedding_scale(self, weight: torch.Tensor) -> torch.Tensor | None:
        return None

    # ---- public API -------------------------------------------------------------------

    def _check_layer(self, layer: int) -> int:
        try:
            idx = operator.index(layer)
        except TypeError:
            raise ValueError(f"layer must be an integer in [0, {self.n_layers}), got {layer!r}") from None
        if isinstance(layer, bool) or not 0 <= idx < self.n_layers:
            raise ValueError(
                f"layer {layer!r} is out of range: {self.family} model has {self.n_layers} layers "
                f"(valid indices 0..{self.n_layers - 1})"
            )
        return idx

    def input_embedding_matrix(self) -> torch.Tensor:
        """Token embedding rows exactly as they enter the residual stream.

        Returns:
            ``[vocab_size, d_model]`` float32. For the Gemma families the stored rows are
            multiplied by ``embed_scale = sqrt(d_model)`` cast to the embedding dtype, the
            product computed in that dtype (as ``Gemma*TextScaledWordEmbedding.forward``),
            then cast to float32. GPT-2's learned position embeddings are not included.

        Source: Wu et al. 2024 (vocabulary projections of head/neuron weights);
        TransformerLens ``W_E``.
        """
        with torch.no_grad():
            weight = _effective_weight(self.model.get_input_embeddings())
            scale = self._embedding_scale(weight)
            if scale is not None:
                weight = weight * scale
            return _f32(weight)

    def output_embedding_matrix(self) -> torch.Tensor:
        """LM head (unembedding) rows, tied or not.

        Returns:
            ``[vocab_size, d_model]`` float32: row ``t`` dotted with the final-normed residual
            gives token ``t``'s logit (before any soft-capping, e.g. Gemma 2's).

        Raises:
            UnsupportedArchitectureError: the model has no LM head and untied embeddings
                (load it with ``AutoModelForCausalLM``).

        Source: Wu et al. 2024 (word-pair / concept projections use the LM head);
        TransformerLens ``W_U`` (transposed).
        """
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if head is None:
            if getattr(self.config, "tie_word_embeddings", False):
                head = self.model.get_input_embeddings()
            else:
                raise UnsupportedArchitectureError(
                    f"{type(self.model).__name__} has no LM head; load the model with AutoModelForCausalLM"
                )
        return _f32(_effective_weight(head))

    def _pre_attention_gain(self, layer: int) -> torch.Tensor:
        """Effective per-channel gain ``g`` of the pre-attention norm of ``layer``.

        Returns:
            ``[d_model]`` float32; ``w`` for Llama-style RMSNorm and LayerNorm, ``1 + w`` for
            the Gemma families.

        Raises:
            ValueError: ``layer`` out of range.
        """
        layer = self._check_layer(layer)
        w = _effective_weight(self._pre_attention_norm(layer)).float()
        return w + self._gain_offset if self._gain_offset else w

    def query_key_weights(self, layer: int, fold_qk_norm: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head query and key weights with the pre-attention norm gain folded in.

        For a residual row ``x`` (``[d_model]``) and head ``h``, the bias-free query is
        ``q_h = (x / rms(x)) @ Wq[h]`` with ``Wq[h] = diag(g) @ Wq_raw[h]``, ``g`` the
        pre-attention norm gain (``1 + w`` for Gemma); likewise for keys. Under grouped-query
        attention key heads are repeated: head ``h`` uses kv head
        ``h // (n_heads // n_kv_heads)``, so ``Wk`` also has ``n_heads`` heads. If
        ``fold_qk_norm`` and the family has per-head q/k norms (Gemma 3), the last axis is
        also multiplied by their gains (see :meth:`qk_norm_gains`); their own per-vector
        ``1/rms`` factor is, like the residual one, not representable and left out.

        Ignored (documented): query/key biases (Qwen2, GPT-2, GPT-NeoX), LayerNorm
        mean-centering and bias (GPT-2, GPT-NeoX), the per-token ``1/rms`` (``1/std``)
        factor, rotary embeddings and the attention score scale.

        Args:
            layer: decoder block index in ``[0, n_layers)``.
            fold_qk_norm: fold Gemma 3's ``q_norm``/``k_norm`` gains into the head axis.

        Returns:
            ``(Wq, Wk)``, each ``[n_heads, d_model, head_dim]`` float32 (new tensors).

        Raises:
            ValueError: ``layer`` out of range.

        Source: Wu et al. 2024, Sec. on self-attention (heads read as word pairs through
        ``W_Q W_K^T`` projected on the embeddings); TransformerLens-style ``W_Q``/``W_K``
        with LayerNorm folding.
        """
        layer = self._check_layer(layer)
        with torch.no_grad():
            gain = self._pre_attention_gain(layer)
            wq, wk = self._qk_raw(layer)
            wq = wq.float() * gain[None, :, None]
            wk = wk.float() * gain[None, :, None]
            if fold_qk_norm:
                gains = self.qk_norm_gains(layer)
                if gains is not None:
                    wq = wq * gains[0][None, None, :]
                    wk = wk * gains[1][None, None, :]
            group = self.n_heads // self.n_kv_heads
            if group > 1:
                wk = wk.repeat_interleave(group, dim=0)
            return wq.contiguous(), wk.contiguous()

    def qk_norm_gains(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Effective gains of the per-head query/key norms, if the family has them.

        Returns:
            ``(g_q, g_k)``, each ``[head_dim]`` float32 with the family's convention applied
            (Gemma 3: ``1 + w``), or ``None`` for families without q/k norms.

        Raises:
            ValueError: ``layer`` out of range.
        """
        layer = self._check_layer(layer)
        norms = self._qk_norms(layer)
        if norms is None:
            return None
        out = []
        for norm in norms:
            w = _effective_weight(norm).float()
            out.append(w + self._gain_offset if self._gain_offset else w)
        return out[0], out[1]

    def ffn_down(self, layer: int) -> torch.Tensor:
        """FFN down-projection, one row per neuron.

        Row ``i`` is the vector neuron ``i`` writes into the residual stream per unit of
        activation: for an activation vector ``a`` (``[d_ffn]``) the MLP output is
        ``a @ ffn_down(layer)`` (+ bias, if any, which is not included).

        Returns:
            ``[d_ffn, d_model]`` float32 (a view when the model is float32).

        Raises:
            ValueError: ``layer`` out of range.

        Source: Wu et al. 2024, Sec. on feed-forward networks (PCA over down-projection
        rows); TransformerLens ``W_out``.
        """
        layer = self._check_layer(layer)
        return _f32(self._ffn_down_raw(layer))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(family={self.family!r}, n_layers={self.n_layers}, n_heads={self.n_heads}, "
            f"n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim}, d_model={self.d_model}, "
            f"d_ffn={self.d_ffn}, vocab_size={self.vocab_size})"
        )


# --------------------------------------------------------------------------------------
# Llama-like families: layers[i].input_layernorm, self_attn.{q,k}_proj, mlp.down_proj
# --------------------------------------------------------------------------------------


class _LlamaLikeAnatomy(Anatomy):
    """Shared adapter for decoder blocks named like Llama (``nn.Linear`` projections)."""

    _layer_paths = ("model.layers", "layers", "model.language_model.layers", "language_model.layers")

    def _head_dim(self) -> int:
        attn = self._layers[0].self_attn
        hd = getattr(attn, "head_dim", None) or getattr(self.config, "head_dim", None)
        return int(hd) if hd else self.d_model // self.n_heads

    def _pre_attention_norm(self, layer: int) -> nn.Module:
        return self._layers[layer].input_layernorm

    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        attn = self._layers[layer].self_attn
        q = _effective_weight(attn.q_proj)  # [n_heads * head_dim, d_model]
        k = _effective_weight(attn.k_proj)  # [n_kv_heads * head_dim, d_model]
        d = q.shape[1]
        return (
            q.reshape(-1, self.head_dim, d).transpose(1, 2),
            k.reshape(-1, self.head_dim, d).transpose(1, 2),
        )

    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        return _effective_weight(self._layers[layer].mlp.down_proj).T  # Linear [d_model, d_ffn] -> [d_ffn, d_model]


class LlamaAnatomy(_LlamaLikeAnatomy):
    """Llama (``LlamaForCausalLM``; also SmolLM2 etc.): RMSNorm gain ``w``, GQA, no biases by default."""

    family = "llama"


class MistralAnatomy(_LlamaLikeAnatomy):
    """Mistral (``MistralForCausalLM``): Llama layout, RMSNorm gain ``w``, GQA."""

    family = "mistral"


class Qwen2Anatomy(_LlamaLikeAnatomy):
    """Qwen2 (``Qwen2ForCausalLM``): Llama layout with q/k/v biases (ignored), RMSNorm gain ``w``."""

    family = "qwen2"


class _GemmaLikeAnatomy(_LlamaLikeAnatomy):
    """Gemma conventions: RMSNorm gain ``1 + w`` (float32) and ``sqrt(d_model)`` embedding scale."""

    _gain_offset = 1.0

    def _embedding_scale(self, weight: torch.Tensor) -> torch.Tensor:
        base = _base_layer(self.model.get_input_embeddings())
        scale = getattr(base, "embed_scale", None)
        if not isinstance(scale, torch.Tensor) or scale.is_meta:
            scale = torch.tensor(getattr(base, "scalar_embed_scale", None) or math.sqrt(self.d_model))
        return scale.to(device=weight.device, dtype=weight.dtype)


class GemmaAnatomy(_GemmaLikeAnatomy):
    """Gemma 1 (``GemmaForCausalLM``): ``(1 + w)`` RMSNorm, scaled embeddings, MQA/GQA."""

    family = "gemma"


class Gemma2Anatomy(_GemmaLikeAnatomy):
    """Gemma 2 (``Gemma2ForCausalLM``): as Gemma, plus logit soft-capping (not represented)."""

    family = "gemma2"


class Gemma3Anatomy(_GemmaLikeAnatomy):
    """Gemma 3 (``Gemma3ForCausalLM`` / ``gemma3_text``, or the text tower of
    ``Gemma3ForConditionalGeneration``): as Gemma, plus per-head ``q_norm``/``k_norm``
    (``(1 + w)`` over ``head_dim``) applied before RoPE."""

    family = "gemma3"

    def _qk_norms(self, layer: int) -> tuple[nn.Module, nn.Module]:
        attn = self._layers[layer].self_attn
        return attn.q_norm, attn.k_norm


# --------------------------------------------------------------------------------------
# GPT-2: transformer.h[i].ln_1, attn.c_attn (Conv1D, packed q|k|v), mlp.c_proj (Conv1D)
# --------------------------------------------------------------------------------------


class GPT2Anatomy(Anatomy):
    """GPT-2 (``GPT2LMHeadModel``): LayerNorm (mean-centering and bias ignored), ``Conv1D``
    ``c_attn`` weight ``[d_model, 3 * d_model]`` split into contiguous q | k | v blocks;
    ``mlp.c_proj`` stored as ``[d_ffn, d_model]``. Token embedding ``wte`` only (``wpe`` not
    included)."""

    family = "gpt2"
    _layer_paths = ("transformer.h", "h")

    def _head_dim(self) -> int:
        return self.d_model // self.n_heads

    def _pre_attention_norm(self, layer: int) -> nn.Module:
        return self._layers[layer].ln_1

    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = _effective_weight(self._layers[layer].attn.c_attn)  # [d_model, 3 * d_model], x @ w
        d = w.shape[0]
        split = self.n_heads * self.head_dim

        def heads(block: torch.Tensor) -> torch.Tensor:
            return block.reshape(d, self.n_heads, self.head_dim).permute(1, 0, 2)

        return heads(w[:, :split]), heads(w[:, split : 2 * split])

    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        return _effective_weight(self._layers[layer].mlp.c_proj)  # Conv1D: already [d_ffn, d_model]


# --------------------------------------------------------------------------------------
# GPT-NeoX: gpt_neox.layers[i].input_layernorm, attention.query_key_value (per-head
# interleaved q,k,v), mlp.dense_4h_to_h
# --------------------------------------------------------------------------------------


class GPTNeoXAnatomy(Anatomy):
    """GPT-NeoX / Pythia (``GPTNeoXForCausalLM``): LayerNorm (mean-centering and bias
    ignored); ``query_key_value`` output viewed as ``[n_heads, 3 * head_dim]`` then chunked,
    so q, k, v are interleaved per head; ``mlp.dense_4h_to_h`` is an ``nn.Linear``."""

    family = "gpt_neox"
    _layer_paths = ("gpt_neox.layers", "layers")

    def _head_dim(self) -> int:
        attn = self._layers[0].attention
        hd = getattr(attn, "head_size", None)
        return int(hd) if hd else self.d_model // self.n_heads

    def _pre_attention_norm(self, layer: int) -> nn.Module:
        return self._layers[layer].input_layernorm

    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = _effective_weight(self._layers[layer].attention.query_key_value)  # [3 * d_model, d_model]
        w = w.reshape(self.n_heads, 3, self.head_dim, w.shape[1])
        return w[:, 0].transpose(1, 2), w[:, 1].transpose(1, 2)

    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        return _effective_weight(self._layers[layer].mlp.dense_4h_to_h).T


# --------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Anatomy]] = {
    cls.family: cls
    for cls in (
        LlamaAnatomy,
        MistralAnatomy,
        Qwen2Anatomy,
        GemmaAnatomy,
        Gemma2Anatomy,
        Gemma3Anatomy,
        GPT2Anatomy,
        GPTNeoXAnatomy,
    )
}
assert set(_REGISTRY) == set(SUPPORTED_FAMILIES)


def _unwrap_peft(model: Any) -> Any:
    """Return ``model.get_base_model()`` for a ``peft.PeftModel`` (or mixed model), else ``model``."""
    if hasattr(model, "peft_config") and callable(getattr(model, "get_base_model", None)):
        return model.get_base_model()
    return model


def get_anatomy(model: Any) -> Anatomy:
    """Build the anatomy adapter for a Hugging Face causal LM.

    Dispatches on ``model.config.model_type`` (``"gemma3_text"`` -> ``"gemma3"``); a
    ``peft.PeftModel`` is unwrapped with ``get_base_model()`` first (unmerged plain-LoRA
    deltas are then included in the weights read, see the module docstring).

    Args:
        model: a ``transformers.PreTrainedModel`` (preferably a ``*ForCausalLM``) or a
            ``peft.PeftModel`` wrapping one.

    Returns:
        The :class:`Anatomy` subclass instance for the model's family.

    Raises:
        UnsupportedArchitectureError: the model has no ``config.model_type``, its family is
            not in :data:`SUPPORTED_FAMILIES` (the one-line message names the model_type and
            lists the supported families), its layers cannot be located, or its weights are
            quantized / wrapped by a PEFT method other than plain LoRA.

    Source: TransformerLens-style per-architecture adapters, for the weight-based methods
    of Wu et al. 2024.
    """
    model = _unwrap_peft(model)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if not model_type:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} has no config.model_type; expected a transformers model "
            f"of one of the supported families: {', '.join(SUPPORTED_FAMILIES)}"
        )
    family = _MODEL_TYPE_ALIASES.get(model_type, model_type)
    cls = _REGISTRY.get(family)
    if cls is None:
        raise UnsupportedArchitectureError(
            f"unsupported architecture model_type={model_type!r}; supported families: "
            f"{', '.join(SUPPORTED_FAMILIES)}"
        )
    return cls(model)
