"""Llama-like families as a data table: Llama, Mistral, Qwen2 (and the machinery other
llama-like family files reuse: :class:`LlamaLikeSpec`, :class:`LlamaLikeAnatomy`,
:func:`llama_like_class`).

A llama-like decoder block (``transformers`` ``LlamaDecoderLayer`` and its many copies) is
``layers[i].input_layernorm`` (RMSNorm ``g * x / rms(x)``), ``self_attn.q_proj`` /
``k_proj`` (``nn.Linear``, weight ``[n_heads * head_dim, d_model]`` /
``[n_kv_heads * head_dim, d_model]``, output viewed as ``[..., heads, head_dim]``) and
``mlp.down_proj`` (``nn.Linear``, weight ``[d_model, d_ffn]``). Families that differ from it
only by attribute names or by the presence of a pre-attention norm / q/k norms are one row
(:class:`LlamaLikeSpec`) each; :func:`llama_like_class` turns a row into an
:class:`~tuneshift.models.anatomy.base.Anatomy` subclass, and the family file registers it.

Rows here (conventions checked against transformers 5.24's modules):

* ``llama`` (``LlamaForCausalLM``; also SmolLM2, Vicuna, ...): RMSNorm gain ``w``, GQA, no
  biases by default.

None of the three has a norm after the MLP (``LlamaDecoderLayer`` and its copies add
``mlp(post_attention_layernorm(h))`` to the residual as it is), so the FFN rows are the
down-projection rows; the final norm is ``model.norm``.
* ``mistral`` (``MistralForCausalLM``): the Llama layout, RMSNorm gain ``w``, GQA (sliding
  window attention is not represented).
* ``qwen2`` (``Qwen2ForCausalLM``): the Llama layout with q/k/v biases (ignored), RMSNorm
  gain ``w``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from tuneshift.errors import UnsupportedArchitectureError
from tuneshift.models.anatomy.base import (
    Anatomy,
    QKReference,
    TinyDims,
    effective_weight,
    get_path,
    norm_scale,
    unbiased,
)
from tuneshift.models.anatomy.registry import register_anatomy

__all__ = [
    "LLAMA_LIKE_TABLE",
    "LlamaAnatomy",
    "LlamaLikeAnatomy",
    "LlamaLikeSpec",
    "MistralAnatomy",
    "Qwen2Anatomy",
    "llama_like_class",
]

_QK_NORM_SCOPES = ("head", "projection")


@dataclass(frozen=True)
class LlamaLikeSpec:
    """One row of the llama-like data table: a family's names and conventions.

    Attributes:
        family: the family name (its ``config.model_type``).
        class_name: name of the generated anatomy class (e.g. ``"LlamaAnatomy"``).
        summary: the class docstring (one or two lines: model class, conventions).
        config_class, model_class: names of the ``transformers`` config and ``*ForCausalLM``
            classes, for :meth:`~tuneshift.models.anatomy.base.Anatomy.tiny_config`.
        tiny: ``TinyDims -> dict`` of family-specific config arguments for the tiny test
            model (e.g. ``num_key_value_heads=2`` so that grouped-query attention is tested).
        pre_norm: attribute path, inside a decoder block, of the norm before self-attention;
            ``None`` if the family has none (post-norm blocks, e.g. OLMo 2).
        attention: path of the attention module (read for ``head_dim``).
        q_proj, k_proj: paths of the query/key ``nn.Linear`` projections.
        down_proj: path of the FFN down-projection ``nn.Linear``.
        q_norm, k_norm: paths of norms applied to the projected queries/keys (``None``: none).
        qk_norm_scope: ``"head"`` (the norm acts on each ``head_dim`` slice with shared gains,
            Gemma 3) or ``"projection"`` (one norm over the whole projection output, OLMo 2).
        post_ffn_norm: path of the norm applied to the MLP output before the residual add
            (``post_feedforward_layernorm`` in Gemma 2/3 and OLMo 2); ``None`` if the MLP
            output is added as it is. Its gain is folded into the FFN rows.

    Raises:
        ValueError: ``qk_norm_scope`` is unknown, or only one of ``q_norm``/``k_norm`` is given.
    """

    family: str
    class_name: str
    summary: str
    config_class: str
    model_class: str
    tiny: Callable[[TinyDims], dict[str, Any]] | None = None
    pre_norm: str | None = "input_layernorm"
    attention: str = "self_attn"
    q_proj: str = "self_attn.q_proj"
    k_proj: str = "self_attn.k_proj"
    down_proj: str = "mlp.down_proj"
    q_norm: str | None = None
    k_norm: str | None = None
    qk_norm_scope: str = "head"
    post_ffn_norm: str | None = None

    def __post_init__(self) -> None:
        if self.qk_norm_scope not in _QK_NORM_SCOPES:
            raise ValueError(
                f"{self.family}: qk_norm_scope must be one of {_QK_NORM_SCOPES}, got {self.qk_norm_scope!r}"
            )
        if (self.q_norm is None) != (self.k_norm is None):
            raise ValueError(f"{self.family}: give both q_norm and k_norm, or neither")


class LlamaLikeAnatomy(Anatomy):
    """Anatomy of a llama-like decoder whose names and conventions are one :class:`LlamaLikeSpec`
    (class attribute ``spec``). Not registered itself: see :func:`llama_like_class`."""

    spec: ClassVar[LlamaLikeSpec]
    _layer_paths = ("model.layers", "layers", "model.language_model.layers", "language_model.layers")
    _final_norm_paths = ("model.norm", "norm", "model.language_model.norm", "language_model.norm")

    def _module(self, layer: int, path: str) -> nn.Module:
        module = get_path(self._layers[layer], path)
        if module is None:
            raise UnsupportedArchitectureError(f"{self.family}: decoder layer {layer} has no `{path}`")
        return module

    def _head_dim(self) -> int:
        attn = get_path(self._layers[0], self.spec.attention)
        hd = getattr(attn, "head_dim", None) or getattr(self.config, "head_dim", None)
        return int(hd) if hd else self.d_model // self.n_heads

    def _pre_attention_norm(self, layer: int) -> nn.Module | None:
        return None if self.spec.pre_norm is None else self._module(layer, self.spec.pre_norm)

    def _qk_raw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        q = effective_weight(self._module(layer, self.spec.q_proj))  # [n_heads * head_dim, d_model]
        k = effective_weight(self._module(layer, self.spec.k_proj))  # [n_kv_heads * head_dim, d_model]
        d = q.shape[1]
        return (
            q.reshape(-1, self.head_dim, d).transpose(1, 2),
            k.reshape(-1, self.head_dim, d).transpose(1, 2),
        )

    def _ffn_down_raw(self, layer: int) -> torch.Tensor:
        # nn.Linear weight [d_model, d_ffn] -> [d_ffn, d_model]
        return effective_weight(self._module(layer, self.spec.down_proj)).T

    def _post_ffn_norm(self, layer: int) -> nn.Module | None:
        return None if self.spec.post_ffn_norm is None else self._module(layer, self.spec.post_ffn_norm)

    def _qk_norms(self, layer: int) -> tuple[nn.Module, nn.Module] | None:
        if self.spec.q_norm is None:
            return None
        return self._module(layer, self.spec.q_norm), self._module(layer, self.spec.k_norm)

    # ---- test support ----------------------------------------------------------------

    @classmethod
    def tiny_config(cls, dims: TinyDims) -> tuple[Any, type]:
        """``transformers.<config_class>(**dims.standard_kwargs(), **spec.tiny(dims))`` and
        ``transformers.<model_class>`` (see :meth:`Anatomy.tiny_config`)."""
        import transformers

        extra = cls.spec.tiny(dims) if cls.spec.tiny is not None else {}
        config = getattr(transformers, cls.spec.config_class)(**{**dims.standard_kwargs(), **extra})
        return config, getattr(transformers, cls.spec.model_class)

    @classmethod
    def reference_qk(cls, model: nn.Module, layer: int, x: torch.Tensor) -> QKReference:
        """Test oracle (see :meth:`Anatomy.reference_qk`), as the llama-like attention forward
        computes it: ``q_norm(q_proj(pre_norm(x)))`` viewed as ``[n, heads, head_dim]`` (a
        ``"head"``-scope q/k norm acts on the view, a ``"projection"``-scope one before it)."""
        spec = cls.spec
        block = cls.decoder_layers(model)[layer]
        hd = int(get_path(block, spec.attention).head_dim)
        n = x.shape[0]
        norm = get_path(block, spec.pre_norm) if spec.pre_norm is not None else None
        ones = torch.ones(n, 1, 1, dtype=x.dtype, device=x.device)
        with torch.no_grad():

            def projected(path: str) -> torch.Tensor:
                proj = get_path(block, path)
                return unbiased(proj if norm is None else (lambda t: proj(norm(t))), x)

            q_pre, k_pre = projected(spec.q_proj), projected(spec.k_proj)  # [n, heads * head_dim]
            scale = ones if norm is None else norm_scale(norm, x)[:, :, None]

            def normed(pre: torch.Tensor, path: str | None) -> tuple[torch.Tensor, torch.Tensor]:
                heads = pre.view(n, -1, hd)
                if path is None:
                    return heads, ones
                qk_norm = get_path(block, path)
                if spec.qk_norm_scope == "head":
                    return qk_norm(heads), norm_scale(qk_norm, heads)
                return qk_norm(pre).view(n, -1, hd), norm_scale(qk_norm, pre)[:, :, None]

            q, q_scale = normed(q_pre, spec.q_norm)
            k, k_scale = normed(k_pre, spec.k_norm)
        return QKReference(
            q=q,
            k=k,
            q_pre=q_pre.view(n, -1, hd),
            k_pre=k_pre.view(n, -1, hd),
            norm_scale=scale,
            q_scale=q_scale,
            k_scale=k_scale,
        )

    @classmethod
    def reference_ffn_down(cls, model: nn.Module, layer: int) -> nn.Module:
        """The block's ``spec.down_proj`` module (test oracle, see :meth:`Anatomy.reference_ffn_down`)."""
        return get_path(cls.decoder_layers(model)[layer], cls.spec.down_proj)


def llama_like_class(
    spec: LlamaLikeSpec, base: type[LlamaLikeAnatomy] = LlamaLikeAnatomy, module: str | None = None
) -> type[LlamaLikeAnatomy]:
    """Make the anatomy class of one data-table row (register it with ``register_anatomy``).

    Args:
        spec: the family's row.
        base: :class:`LlamaLikeAnatomy` or a subclass adding conventions shared by several
            rows (e.g. Gemma's ``(1 + w)`` gains and scaled embeddings).
        module: the ``__module__`` of the new class (pass the family file's ``__name__``).

    Returns:
        A new subclass of ``base`` named ``spec.class_name`` with ``family = spec.family``,
        ``spec = spec`` and ``spec.summary`` as its docstring.

    Raises:
        TypeError: ``base`` is not a :class:`LlamaLikeAnatomy` subclass.
    """
    if not (isinstance(base, type) and issubclass(base, LlamaLikeAnatomy)):
        raise TypeError(f"base must be a LlamaLikeAnatomy subclass, got {base!r}")
    namespace = {
        "family": spec.family,
        "spec": spec,
        "__doc__": spec.summary,
        "__module__": module or base.__module__,
        "__qualname__": spec.class_name,
    }
    return type(spec.class_name, (base,), namespace)


# --------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------

LLAMA_LIKE_TABLE: tuple[LlamaLikeSpec, ...] = (
    LlamaLikeSpec(
        family="llama",
        class_name="LlamaAnatomy",
        summary="Llama (``LlamaForCausalLM``; also SmolLM2 etc.): RMSNorm gain ``w``, GQA, no biases by default.",
        config_class="LlamaConfig",
        model_class="LlamaForCausalLM",
        tiny=lambda d: dict(num_key_value_heads=2),
    ),
    LlamaLikeSpec(
        family="mistral",
        class_name="MistralAnatomy",
        summary="Mistral (``MistralForCausalLM``): Llama layout, RMSNorm gain ``w``, GQA.",
        config_class="MistralConfig",
        model_class="MistralForCausalLM",
        tiny=lambda d: dict(num_key_value_heads=2, sliding_window=None),
    ),
    LlamaLikeSpec(
        family="qwen2",
        class_name="Qwen2Anatomy",
        summary="Qwen2 (``Qwen2ForCausalLM``): Llama layout with q/k/v biases (ignored), RMSNorm gain ``w``.",
        config_class="Qwen2Config",
        model_class="Qwen2ForCausalLM",
        tiny=lambda d: dict(num_key_value_heads=2),
    ),
)
"""Rows for the families of this file (other llama-like families have their own file)."""

LlamaAnatomy, MistralAnatomy, Qwen2Anatomy = (llama_like_class(s, module=__name__) for s in LLAMA_LIKE_TABLE)

for _cls in (LlamaAnatomy, MistralAnatomy, Qwen2Anatomy):
    register_anatomy(_cls.family, _cls)
