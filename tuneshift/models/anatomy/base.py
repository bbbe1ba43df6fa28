"""The abstract :class:`Anatomy`, PEFT-aware weight readers, and what family files build on.

A family file (``tuneshift/models/anatomy/<family>.py``) subclasses :class:`Anatomy` (or the
llama-like data-table class of ``llama.py``), implements the few hooks below, and calls
:func:`tuneshift.models.anatomy.registry.register_anatomy`. Everything generic lives here:
layer validation, norm-gain folding into the query/key weights, grouped-query key-head
repetition, q/k-norm gain folding, float32 conversion, and reading the *effective* weight of
a module through PEFT wrappers (:func:`effective_weight`).

Conventions (every family file documents its own packing, checked against the installed
``transformers`` module code and a forward pass in ``tests/test_anatomy.py``):

* Residual vectors are rows ``x`` of length ``d_model``; every projection is written
  ``x @ W`` (``W`` is ``[d_model, out]``), i.e. the transpose of ``nn.Linear.weight``.
* A norm before attention computes ``g * x / rms(x)`` (LayerNorm: ``g * (x - mean) / std +
  b``); its effective gain ``g`` is the stored weight plus the family's ``_gain_offset``
  (``1`` for Gemma's ``(1 + w)`` convention). A family may have no such norm
  (``_pre_attention_norm`` returns ``None``: gain 1, e.g. OLMo 2's post-norm blocks).
* q/k norms applied after the query/key projection have gains either per head dimension,
  shared by all heads (``[head_dim]``, Gemma 3's per-head norms), or per output dimension of
  the whole projection (``[n_heads * head_dim]`` / ``[n_kv_heads * head_dim]``, row ``h *
  head_dim + i`` for head ``h``); both fold into the last axis of ``Wq``/``Wk``.
* A norm between the MLP output and the residual add (``_post_ffn_norm``: Gemma 2/3 and OLMo 2's
  ``post_feedforward_layernorm``) has its gain folded into the ``ffn_down`` rows, so they are
  residual-stream directions. The final norm's gain (``final_norm_gain``) is offered for
  folding into the LM head by the methods (it is not folded into ``output_embedding_matrix``).

What is deliberately *not* folded (document this in any report that uses these weights):
the per-token ``1 / rms(x)`` (or LayerNorm ``1 / std``) factor of every norm -- a positive
scalar per token (per token and head for per-head q/k norms; for a post-FFN norm, the ``1/rms``
of the whole MLP output); LayerNorm mean-centering and
LayerNorm bias; query/key projection biases; rotary position embeddings; the attention score
scale; logit soft-capping; learned absolute position embeddings.

PEFT: :func:`effective_weight` reads unmerged, active plain-LoRA adapters (``W + delta`` for
every active adapter, as the forward pass does, whatever the module packs -- fused
``qkv_proj`` included) and honours ``modules_to_save`` copies. Other adapter kinds (DoRA and
other LoRA variants, IA3, LoHa, ...) raise :class:`~tuneshift.errors.UnsupportedArchitectureError`
asking for ``merge_and_unload()``.

Test support: each family also provides :meth:`Anatomy.tiny_config` (a tiny random model of
the family, built offline), :meth:`Anatomy.reference_qk` and :meth:`Anatomy.reference_ffn_down`
(independent oracles that run the model's own modules); :meth:`Anatomy.reference_ffn_residual`
and :meth:`Anatomy.reference_final_normed` are generic oracles that run the whole real model
with hooks. The generic tests parametrized over
:data:`tuneshift.models.anatomy.SUPPORTED_FAMILIES` use them, so a newly registered family is
tested without editing any test (``docs/adding_an_architecture.md``).
"""

from __future__ import annotations

import abc
import operator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from tuneshift.errors import UnsupportedArchitectureError

__all__ = [
    "Anatomy",
    "QKReference",
    "TinyDims",
    "base_layer",
    "effective_weight",
    "get_path",
    "norm_scale",
    "unbiased",
]


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


def base_layer(module: nn.Module) -> nn.Module:
    """The innermost original (non-PEFT) module, e.g. to read a Gemma ``embed_scale``.

    Args:
        module: a plain module, a PEFT tuner layer or a ``ModulesToSaveWrapper``.

    Returns:
        The module the forward pass would use, with any LoRA tuner layer peeled off.
    """
    module = _resolve_wrapper(module)
    if _is_tuner_layer(module):
        module = module.get_base_layer()
    return module


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The ``weight`` the module's forward pass effectively uses, in the stored layout.

    For a plain module this is ``module.weight``. For an unmerged, enabled PEFT LoRA layer it
    is ``base.weight + sum(get_delta_weight(a))`` over the active adapters present in the
    layer (``get_delta_weight`` already returns the base layer's layout, e.g. ``[in, out]``
    for GPT-2's ``Conv1D``, ``[(n_heads + 2 n_kv_heads) * head_dim, d_model]`` for a fused
    ``qkv_proj``).

    Args:
        module: an ``nn.Linear``/``Conv1D``/``nn.Embedding``/norm module, possibly wrapped by
            PEFT.

    Returns:
        The weight, detached, in the dtype of the stored weight and its stored shape.

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
    weight = effective_weight(base)
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


def get_path(obj: Any, path: str) -> Any:
    """``obj.a.b.c`` for ``path = "a.b.c"``, or ``None`` as soon as an attribute is missing/None."""
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


# --------------------------------------------------------------------------------------
# helpers for the test oracles of the family files
# --------------------------------------------------------------------------------------


def norm_scale(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The positive per-row factor a norm divides by: ``sqrt(mean(x^2) + eps)`` for RMSNorm,
    ``sqrt(var(x) + eps)`` (biased variance, as ``nn.LayerNorm``) for LayerNorm.

    Used by the :meth:`Anatomy.reference_qk` oracles (test support).

    Args:
        norm: an RMSNorm-like module (``variance_epsilon`` or ``eps``) or ``nn.LayerNorm``.
        x: ``[..., n]`` the norm's input (normalised over the last axis).

    Returns:
        ``[..., 1]`` in ``x``'s dtype.

    Raises:
        AttributeError: the module has neither ``variance_epsilon`` nor ``eps``.
    """
    eps = getattr(norm, "variance_epsilon", None)
    if eps is None:
        eps = norm.eps
    if isinstance(norm, nn.LayerNorm):
        x = x - x.mean(-1, keepdim=True)
    return torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def unbiased(fn: Any, x: torch.Tensor) -> torch.Tensor:
    """``fn(x) - fn(0)``: an affine map (e.g. norm then projection) without its constant term
    (projection biases, and the projection of a LayerNorm bias). Test-oracle helper."""
    return fn(x) - fn(torch.zeros_like(x))


@dataclass
class QKReference:
    """What a layer's own modules compute from residual rows ``x`` (the test oracle of
    :meth:`Anatomy.reference_qk`).

    Attributes:
        q: ``[n, n_heads, head_dim]`` the queries the attention kernel receives (before RoPE,
            i.e. at position 0), projection biases (and LayerNorm biases) removed.
        k: ``[n, n_kv_heads, head_dim]`` the keys, likewise (not repeated under GQA).
        q_pre, k_pre: the same before any q/k norm (``q``/``k`` when there is none).
        norm_scale: ``[n, 1, 1]`` the factor the pre-attention norm divides by (ones if none).
        q_scale, k_scale: ``[n, n_heads or 1, 1]`` / ``[n, n_kv_heads or 1, 1]``: what the
            q/k norms divide by (ones if none; a single column for whole-projection norms).

    With ``Wq``, ``Wk`` from :meth:`Anatomy.query_key_weights` and zero-mean ``x`` for
    LayerNorm families: ``x @ Wq[h] == q[:, h] * norm_scale * q_scale`` and
    ``x @ Wq_unfolded[h] == q_pre[:, h] * norm_scale`` (``fold_qk_norm=False``).
    """

    q: torch.Tensor
    k: torch.Tensor
    q_pre: torch.Tensor
    k_pre: torch.Tensor
    norm_scale: torch.Tensor
    q_scale: torch.Tensor
    k_scale: torch.Tensor

    @classmethod
    def without_qk_norm(cls, q: torch.Tensor, k: torch.Tensor, norm_scale: torch.Tensor) -> "QKReference":
        """A reference for a family with no q/k norms (``q_pre = q``, unit q/k scales)."""
        ones = torch.ones(q.shape[0], 1, 1, dtype=q.dtype, device=q.device)
        return cls(q=q, k=k, q_pre=q, k_pre=k, norm_scale=norm_scale, q_scale=ones, k_scale=ones)


@dataclass(frozen=True)
class TinyDims:
    """Dimensions of a tiny random test model (see :meth:`Anatomy.tiny_config`).

    Attributes:
        vocab_size: vocabulary (embedding rows).
        hidden_size: ``d_model``.
        intermediate_size: ``d_ffn``.
        num_layers, num_heads: decoder blocks and query heads.
        max_positions: position limit of the config.
        initializer_range: std of the random initialisation.
        bos_token_id, eos_token_id, pad_token_id: special ids (``None``: leave unset).
    """

    vocab_size: int
    hidden_size: int = 32
    intermediate_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 128
    initializer_range: float = 0.02
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def standard_kwargs(self) -> dict[str, Any]:
        """Keyword arguments under the usual ``transformers`` config names (``hidden_size``,
        ``num_hidden_layers``, ``max_position_embeddings``, ...)."""
        return dict(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            max_position_embeddings=self.max_positions,
            initializer_range=self.initializer_range,
            **self.token_ids(),
        )

    def token_ids(self) -> dict[str, int]:
        """The special token ids that are set, as config keyword arguments."""
        ids = dict(bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id)
        return {k: v for k, v in ids.items() if v is not None}


# --------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------


class Anatomy(abc.ABC):
    """Uniform read-only view of one architecture family's weights (TransformerLens-style adapter).

    Built by :func:`tuneshift.models.anatomy.get_anatomy`; one registered subclass per family
    of :data:`tuneshift.models.anatomy.SUPPORTED_FAMILIES`. It exposes exactly the matrices
    needed by the self-attention and feed-forward explanations of Wu et al. (NAACL 2024,
    Sec. on self-attention and on feed-forward networks).

    A subclass sets ``family`` and ``_layer_paths`` and implements ``_head_dim``,
    ``_pre_attention_norm``, ``_qk_raw`` and ``_ffn_down_raw`` (optionally ``_qk_norms``,
    ``_embedding_scale``, ``_gain_offset``), plus the test-support classmethods
    :meth:`tiny_config`, :meth:`reference_qk` and :meth:`reference_ffn_down`.

    Attributes:
        family: the family name (a value of ``config.model_type``).
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

    Raises (constructor):
        UnsupportedArchitectureError: the decoder layers cannot be found, the head counts are
            inconsistent, the query/key weights or q/k-norm gains do not have the shapes the
            config implies, or the weights are quantized / behind a non-LoRA PEFT layer.
    """

    family: ClassVar[str]
    _layer_paths: ClassVar[tuple[str, ...]] = ()
    _gain_offset: ClassVar[float] = 0.0  # 1.0 for Gemma's (1 + w) RMSNorm convention
    _final_norm_paths: ClassVar[tuple[str, ...]] = ()

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
        emb = effective_weight(self.model.get_input_embeddings())
        self.vocab_size, self.d_model = int(emb.shape[0]), int(emb.shape[1])
        self._device = emb.device
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
        gains = self.qk_norm_gains(0)
        if gains is not None:
            for name, g, heads in (("q_norm", gains[0], self.n_heads), ("k_norm", gains[1], self.n_kv_heads)):
                if g.numel() not in (self.head_dim, heads * self.head_dim):
                    raise UnsupportedArchitectureError(
                        f"{self.family}: {name} has {g.numel()} gains, expected head_dim={self.head_dim} "
                        f"(per head) or {heads * self.head_dim} (whole projection)"
                    )

    # ---- family hooks -----------------------------------------------------------------

    def _find_layers(self) -> nn.ModuleList:
        layers = self.decoder_layers(self.model)
        if layers is None:
            raise UnsupportedArchitectureError(
                f"{self.family}: cannot find the decoder layers of {type(self.model).__name__} "
                f"(looked for {', '.join(self._layer_paths)})"
            )
        return layers

    @classmethod
    def decoder_layers(cls, model: nn.Module) -> nn.ModuleList | None:
        """The first non-empty ``nn.ModuleList`` found at one of ``_layer_paths`` (or ``None``).

        Args:
            model: a (PEFT-unwrapped) model of this family.

        Returns:
            The decoder blocks, or ``None`` if no path matches.
        """
        for path in cls._layer_paths:
            layers = get_path(model, path)
            if isinstance(layers, nn.ModuleList) and len(layers) > 0:
                return layers
        return None

    @abc.abstractmethod
    def _head_dim(self) -> int:
        """Per-head dimension."""

    @abc.abstractmethod
    def _pre_attention_norm(self, layer: int) -> nn.Module | None:
        """The norm module applied to the residual stream before self-attention (``None``: no
        norm before attention, gain 1)."""

    @abc.abstractmethod
    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Unfolded ``Wq [n_heads, d_model, head_dim]`` and ``Wk [n_kv_heads, d_model, head_dim]``."""

    @abc.abstractmethod
    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        """Down-projection as ``[d_ffn, d_model]`` (stored dtype)."""

    def _qk_norms(self, layer: int) -> tuple[nn.Module, nn.Module] | None:
        """The q/k norm modules applied after the projections (``None``: the family has none)."""
        return None

    def _post_ffn_norm(self, layer: int) -> nn.Module | None:
        """The norm applied to the MLP output before the residual add (Gemma 2/3, OLMo 2:
        ``post_feedforward_layernorm``); ``None``: the MLP output is added as it is."""
        return None

    def _final_norm(self) -> nn.Module | None:
        """The norm applied to the residual stream before the LM head: the first module found
        at one of ``_final_norm_paths`` (``None``: none found)."""
        for path in self._final_norm_paths:
            norm = get_path(self.model, path)
            if isinstance(norm, nn.Module):
                return norm
        return None

    def _embedding_scale(self, weight: torch.Tensor) -> torch.Tensor | None:
        """Factor the embedding module multiplies looked-up rows by (``None``: no scaling)."""
        return None

    # ---- test support (tiny models and independent oracles) -----------------------------

    @classmethod
    def tiny_config(cls, dims: TinyDims) -> tuple[Any, type]:
        """A tiny configuration of this family for offline tests.

        Args:
            dims: the common dimensions; family-specific settings (e.g. ``num_key_value_heads``
                for grouped-query attention, ``head_dim``) are the family's choice.

        Returns:
            ``(config, model_class)``: a ``transformers`` config and the ``*ForCausalLM`` class
            to build from it (``model_class(config)``).

        Raises:
            NotImplementedError: the family file does not provide one.
        """
        raise NotImplementedError(
            f"anatomy family {getattr(cls, 'family', cls.__name__)!r} has no tiny_config; "
            "define it next to the anatomy class (docs/adding_an_architecture.md)"
        )

    @classmethod
    def reference_qk(cls, model: nn.Module, layer: int, x: torch.Tensor) -> QKReference:
        """Test oracle: queries/keys of residual rows ``x`` computed by ``layer``'s own modules.

        Written from the ``transformers`` forward code of the family, independently of the
        weight reshaping in ``_qk_raw`` (the tests compare the two).

        Args:
            model: a plain (non-PEFT) model of this family.
            layer: decoder block index.
            x: ``[n, d_model]`` residual rows (the block's input).

        Returns:
            A :class:`QKReference`.

        Raises:
            NotImplementedError: the family file does not provide one.
        """
        raise NotImplementedError(
            f"anatomy family {getattr(cls, 'family', cls.__name__)!r} has no reference_qk; "
            "define it next to the anatomy class (docs/adding_an_architecture.md)"
        )

    @classmethod
    def reference_ffn_down(cls, model: nn.Module, layer: int) -> nn.Module:
        """Test oracle: the module mapping ``layer``'s FFN activations ``[..., d_ffn]`` to its
        output ``[..., d_model]`` (bias allowed), found by the family's own attribute names.

        Raises:
            NotImplementedError: the family file does not provide one.
        """
        raise NotImplementedError(
            f"anatomy family {getattr(cls, 'family', cls.__name__)!r} has no reference_ffn_down; "
            "define it next to the anatomy class (docs/adding_an_architecture.md)"
        )

    @classmethod
    def reference_ffn_residual(cls, model: nn.Module, layer: int, a: torch.Tensor, chunk: int = 8) -> torch.Tensor:
        """Test oracle: what ``layer``'s FFN adds to the residual stream for hidden activations ``a``.

        Runs the *whole real model* (its own decoder blocks, norms and residual adds, whatever
        the family does after the MLP) on dummy tokens, with a forward pre-hook on the
        down-projection module (:meth:`reference_ffn_down`) replacing its input -- the FFN
        hidden activation -- by row ``p`` of ``a`` at position ``p``, and a forward hook on
        the decoder block capturing its output. The result is the block output with ``a``
        minus the block output with zero activations: the residual stream, the attention
        output and any bias of a post-FFN norm input cancel; the FFN is position-wise, so
        position ``p`` depends on ``a[p]`` only. Independent of the anatomy's weight reading.

        For a family that normalises the MLP output (Gemma 2/3, OLMo 2) row ``p`` is
        ``g * (a[p] @ W_down) / rms(a[p] @ W_down + b)``: the anatomy's rows up to one positive
        scalar per row (the per-token ``1/rms``); compare directions.

        Args:
            model: a plain (non-PEFT) model of this family, in eval mode (dropout off).
            layer: decoder block index.
            a: ``[n, d_ffn]`` activations (e.g. one-hot rows: one neuron each).
            chunk: positions per forward pass (at most the model's position limit).

        Returns:
            ``[n, d_model]`` in the model's dtype.
        """
        block = cls.decoder_layers(model)[layer]
        down = cls.reference_ffn_down(model, layer)
        param = next(model.parameters())
        current: dict[str, torch.Tensor] = {}

        def replace_input(_module, args):
            x = args[0]
            return (current["a"].to(dtype=x.dtype, device=x.device).reshape(x.shape),) + tuple(args[1:])

        def capture(_module, _args, output):
            current["out"] = (output[0] if isinstance(output, tuple) else output).detach()

        hooks = [down.register_forward_pre_hook(replace_input), block.register_forward_hook(capture)]
        outs = []
        try:
            with torch.no_grad():
                for start in range(0, a.shape[0], chunk):
                    rows = a[start : start + chunk]
                    ids = torch.zeros(1, rows.shape[0], dtype=torch.long, device=param.device)
                    res = []
                    for act in (rows, torch.zeros_like(rows)):
                        current["a"] = act
                        model(input_ids=ids)
                        res.append(current["out"][0])
                    outs.append(res[0] - res[1])
        finally:
            for h in hooks:
                h.remove()
        return torch.cat(outs)

    @classmethod
    def reference_final_normed(cls, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Test oracle: what the LM head receives when the residual stream after the last block is ``x``.

        Runs the real model on dummy tokens with a forward hook on the last decoder block
        replacing its output by ``x`` and a forward pre-hook on the LM head capturing its
        input (the final norm's output). For RMSNorm families row ``p`` is
        ``g * x[p] / rms(x[p])``; for LayerNorm ``g * (x[p] - mean) / std + b``.

        Args:
            model: a plain model of this family, in eval mode.
            x: ``[n, d_model]`` residual rows (``n`` at most the position limit).

        Returns:
            ``[n, d_model]``.
        """
        block = cls.decoder_layers(model)[-1]
        head = model.get_output_embeddings()
        param = next(model.parameters())
        got: dict[str, torch.Tensor] = {}

        def replace_output(_module, _args, output):
            new = x.to(dtype=param.dtype, device=param.device)[None]
            return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new

        def capture(_module, args):
            got["h"] = args[0].detach()

        hooks = [block.register_forward_hook(replace_output), head.register_forward_pre_hook(capture)]
        try:
            with torch.no_grad():
                model(input_ids=torch.zeros(1, x.shape[0], dtype=torch.long, device=param.device))
        finally:
            for h in hooks:
                h.remove()
        return got["h"][0]

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
            ``[vocab_size, d_model]`` float32. Where the family scales embeddings (the Gemma
            families: ``embed_scale = sqrt(d_model)`` cast to the embedding dtype), the stored
            rows are multiplied by the scale in the stored dtype (as the embedding module's
            forward does), then cast to float32. Learned position embeddings (GPT-2) are not
            included.

        Source: Wu et al. 2024 (vocabulary projections of head/neuron weights);
        TransformerLens ``W_E``.
        """
        with torch.no_grad():
            weight = effective_weight(self.model.get_input_embeddings())
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
        return _f32(effective_weight(head))

    def _pre_attention_gain(self, layer: int) -> torch.Tensor:
        """Effective per-channel gain ``g`` of the pre-attention norm of ``layer``.

        Returns:
            ``[d_model]`` float32; ``w`` for Llama-style RMSNorm and LayerNorm, ``1 + w`` for
            the Gemma families, ones for a family without a norm before attention.

        Raises:
            ValueError: ``layer`` out of range.
        """
        layer = self._check_layer(layer)
        norm = self._pre_attention_norm(layer)
        if norm is None:
            return torch.ones(self.d_model, dtype=torch.float32, device=self._device)
        w = effective_weight(norm).float()
        return w + self._gain_offset if self._gain_offset else w

    def pre_attention_norm_scale(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """What ``layer``'s pre-attention norm divides each residual row by (its per-token factor).

        The folded weights of :meth:`query_key_weights` leave this factor out; the norm's real
        output projected on the folded weights is ``(x / pre_attention_norm_scale(layer, x)) @ Wq``
        (bias-free; LayerNorm families also without the centring).

        Args:
            layer: decoder block index in ``[0, n_layers)``.
            x: ``[n, d_model]`` residual rows (e.g. word vectors as the block's input).

        Returns:
            ``[n]`` float64, positive: ``sqrt(mean(x^2) + eps)`` for RMSNorm,
            ``sqrt(var(x) + eps)`` (biased variance) for LayerNorm, with the norm module's own
            ``eps``; ones for a family without a norm before attention (OLMo 2).

        Raises:
            ValueError: ``layer`` out of range or ``x`` not ``[n, d_model]``.
        """
        layer = self._check_layer(layer)
        if x.dim() != 2 or x.shape[1] != self.d_model:
            raise ValueError(f"x must be [n, {self.d_model}], got {tuple(x.shape)}")
        norm = self._pre_attention_norm(layer)
        with torch.no_grad():
            if norm is None:
                return torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
            return norm_scale(base_layer(norm), x.detach().double())[:, 0]

    def qk_norm_scales(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """What ``layer``'s q/k norms divide each residual row's query/key projections by.

        The query of row ``x`` before RoPE (bias-free) is
        ``(x / pre_attention_norm_scale(x)) @ Wq[h] / q_scale[:, h]`` with ``Wq`` from
        :meth:`query_key_weights` (gains folded); likewise the key with ``k_scale``.

        Args:
            layer: decoder block index in ``[0, n_layers)``.
            x: ``[n, d_model]`` residual rows (the block's input; the pre-attention norm's
                factor is applied here).

        Returns:
            ``(q_scale, k_scale)``, each ``[n, n_heads]`` float64, positive: the RMS (with the
            norm's ``eps``) of each head's projection for per-head norms (Gemma 3), of the
            whole projection (one value repeated over the heads) for whole-projection norms
            (OLMo 2); key columns follow the query heads (repeated under grouped-query
            attention). ``None`` for families without q/k norms.

        Raises:
            ValueError: ``layer`` out of range or ``x`` not ``[n, d_model]``.
        """
        layer = self._check_layer(layer)
        norms = self._qk_norms(layer)
        scale = self.pre_attention_norm_scale(layer, x)
        if norms is None:
            return None
        with torch.no_grad():
            rows = x.detach().double() / scale[:, None]
            wq, wk = self._qk_raw(layer)  # [heads, d_model, head_dim], no gain folded
            gain = self._pre_attention_gain(layer).double()
            out = []
            for w, norm in ((wq, norms[0]), (wk, norms[1])):
                pre = torch.einsum("nd,hde->nhe", rows, w.double() * gain[None, :, None])  # [n, heads, head_dim]
                if effective_weight(norm).numel() == self.head_dim:  # per-head norm
                    s = norm_scale(base_layer(norm), pre)[..., 0]  # [n, heads]
                else:  # one norm over the whole projection
                    s = norm_scale(base_layer(norm), pre.reshape(pre.shape[0], -1)).expand(-1, pre.shape[1])
                out.append(s)
            q_scale, k_scale = out
            group = self.n_heads // self.n_kv_heads
            if group > 1:
                k_scale = k_scale.repeat_interleave(group, dim=1)
            return q_scale.contiguous(), k_scale.contiguous()

    def _fold_head_gain(self, w: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """``w [heads, d_model, head_dim]`` times q/k-norm gains ``[head_dim]`` (shared by the
        heads) or ``[heads * head_dim]`` (one per output dimension of the projection)."""
        if gain.numel() == self.head_dim:
            return w * gain.reshape(1, 1, self.head_dim)
        return w * gain.reshape(w.shape[0], 1, self.head_dim)

    def query_key_weights(self, layer: int, fold_qk_norm: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head query and key weights with the pre-attention norm gain folded in.

        For a residual row ``x`` (``[d_model]``) and head ``h``, the bias-free query is
        ``q_h = (x / rms(x)) @ Wq[h]`` with ``Wq[h] = diag(g) @ Wq_raw[h]``, ``g`` the
        pre-attention norm gain (``1 + w`` for Gemma, 1 without such a norm); likewise for
        keys. Under grouped-query attention key heads are repeated: head ``h`` uses kv head
        ``h // (n_heads // n_kv_heads)``, so ``Wk`` also has ``n_heads`` heads. If
        ``fold_qk_norm`` and the family has q/k norms after the projections (Gemma 3 per
        head, OLMo 2 over the whole projection), the last axis is also multiplied by their
        gains (see :meth:`qk_norm_gains`); their own per-vector ``1/rms`` factor is, like the
        residual one, not representable and left out.

        Ignored (documented): query/key biases, LayerNorm mean-centering and bias, the
        per-token ``1/rms`` (``1/std``) factor, rotary embeddings and the attention score
        scale.

        Args:
            layer: decoder block index in ``[0, n_layers)``.
            fold_qk_norm: fold the q/k-norm gains (if any) into the head axis.

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
                    wq = self._fold_head_gain(wq, gains[0])
                    wk = self._fold_head_gain(wk, gains[1])
            group = self.n_heads // self.n_kv_heads
            if group > 1:
                wk = wk.repeat_interleave(group, dim=0)
            return wq.contiguous(), wk.contiguous()

    def qk_norm_gains(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Effective gains of the query/key norms applied after the projections, if any.

        Returns:
            ``(g_q, g_k)`` float32 with the family's convention applied (Gemma 3: ``1 + w``):
            each ``[head_dim]`` for per-head norms shared by all heads (Gemma 3), or
            ``[n_heads * head_dim]`` / ``[n_kv_heads * head_dim]`` for norms over the whole
            projection (OLMo 2; entry ``h * head_dim + i`` belongs to head ``h``). ``None``
            for families without q/k norms.

        Raises:
            ValueError: ``layer`` out of range.
        """
        layer = self._check_layer(layer)
        norms = self._qk_norms(layer)
        if norms is None:
            return None
        return self._norm_gain(norms[0]), self._norm_gain(norms[1])

    def _norm_gain(self, norm: nn.Module) -> torch.Tensor:
        w = effective_weight(norm).float()
        return w + self._gain_offset if self._gain_offset else w

    def post_ffn_gain(self, layer: int) -> torch.Tensor | None:
        """Effective per-channel gain of the norm between the MLP output and the residual add.

        Gemma 2 and Gemma 3 (``post_feedforward_layernorm``, gain ``1 + w``) and OLMo 2
        (``post_feedforward_layernorm``, gain ``w``) normalise the MLP output before adding
        it to the residual stream: ``h += g * m / rms(m)`` with ``m = a @ W_down``. The
        ``1 / rms(m)`` is one positive scalar per token; ``g`` is per dimension.

        Returns:
            ``[d_model]`` float32, or ``None`` for families that add the MLP output unnormed
            (Gemma 1, Llama, Mistral, Qwen2, Phi-3, GPT-2, GPT-NeoX).

        Raises:
            ValueError: ``layer`` out of range.

        Source: transformers 5.25 ``Gemma2DecoderLayer``, ``Gemma3DecoderLayer``,
        ``Olmo2DecoderLayer`` forward code.
        """
        layer = self._check_layer(layer)
        norm = self._post_ffn_norm(layer)
        return None if norm is None else self._norm_gain(norm)

    def final_norm_gain(self) -> torch.Tensor:
        """Effective per-channel gain of the final norm (before the LM head).

        For a residual row ``x`` the logits are ``(g * x / rms(x)) @ W_U^T`` (RMSNorm; LayerNorm:
        ``g * (x - mean) / std + b``), so ``W_U * g`` (each row times ``g``) is the
        unembedding the model itself reads the residual stream with (the logit lens;
        TransformerLens ``fold_ln``), up to the per-token ``1 / rms`` factor, mean-centering
        and the bias, which are not folded.

        Returns:
            ``[d_model]`` float32 (``1 + w`` for the Gemma families, ``w`` otherwise; ones
            if the family has no final norm).
        """
        norm = self._final_norm()
        if norm is None:
            return torch.ones(self.d_model, dtype=torch.float32, device=self._device)
        return self._norm_gain(norm)

    def ffn_down(self, layer: int, fold_post_norm: bool = True) -> torch.Tensor:
        """FFN down-projection as residual-stream directions, one row per neuron.

        Row ``i`` is the vector neuron ``i`` writes into the residual stream per unit of
        activation. For most families (no norm after the MLP) that is the down-projection row
        ``W_down[i]``: for an activation vector ``a`` (``[d_ffn]``) the MLP adds
        ``a @ ffn_down(layer)`` (+ bias, if any, which is not included). Gemma 2/3 and OLMo 2
        pass the MLP output through ``post_feedforward_layernorm`` before the residual add,
        so the row is ``W_down[i] * g_post`` (:meth:`post_ffn_gain`, per dimension) and the
        layer adds ``(a @ ffn_down(layer)) / rms(a @ W_down)``: the rows up to one positive
        scalar per token, which is not representable and left out (like every norm's
        ``1 / rms``).

        Args:
            layer: decoder block index in ``[0, n_layers)``.
            fold_post_norm: multiply the rows by the post-FFN norm gain (if the family has
                one). ``False`` gives the raw ``W_down`` rows, which for those families are
                *not* residual-stream directions.

        Returns:
            ``[d_ffn, d_model]`` float32 (a view when the model is float32 and nothing is folded).

        Raises:
            ValueError: ``layer`` out of range.

        Source: Wu et al. 2024, Sec. on feed-forward networks (PCA over down-projection
        rows); TransformerLens ``W_out`` (which also folds norms into weights).
        """
        layer = self._check_layer(layer)
        with torch.no_grad():
            down = _f32(self._ffn_down_raw(layer))
            gain = self.post_ffn_gain(layer) if fold_post_norm else None
            return down if gain is None else down * gain.to(down.device)[None, :]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(family={self.family!r}, n_layers={self.n_layers}, n_heads={self.n_heads}, "
            f"n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim}, d_model={self.d_model}, "
            f"d_ffn={self.d_ffn}, vocab_size={self.vocab_size})"
        )
