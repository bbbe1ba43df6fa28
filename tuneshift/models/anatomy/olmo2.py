"""OLMo 2 (``Olmo2ForCausalLM``): one llama-like data-table row -- no pre-attention norm, and
q/k RMSNorms over the whole projections.

Checked against transformers 5.24's ``Olmo2DecoderLayer`` and ``Olmo2Attention``:

* The block has *no* norm before attention: the residual ``x`` goes straight into
  ``self_attn.q_proj`` / ``k_proj`` (``nn.Linear``, Llama shapes). The block's norms come
  after the sublayers (``post_attention_layernorm``, ``post_feedforward_layernorm``) and do
  not touch the query/key path, so the folded pre-attention gain is 1.
* ``self_attn.q_norm`` / ``k_norm`` are ``Olmo2RMSNorm``\\ s over the *whole* projection
  output (``n_heads * head_dim`` / ``n_kv_heads * head_dim`` channels, all heads together),
  applied before the view into heads and before RoPE: ``q = g_q * (x Wq) / rms(x Wq)``. The
  gain ``g_q`` folds into ``Wq`` per output dimension (channel ``h * head_dim + i`` of head
  ``h``); the ``1 / rms`` is one positive scalar per token, shared by all heads, which the
  heads method ignores like every other norm's ``1 / rms``.
* ``mlp.down_proj`` is an ``nn.Linear`` (weight ``[d_model, d_ffn]``), as in Llama; the MLP
  output then goes through ``post_feedforward_layernorm`` (``Olmo2RMSNorm``, gain ``w``)
  before the residual add, so the FFN rows are ``W_down[i] * w_post`` (folded by
  :meth:`~tuneshift.models.anatomy.base.Anatomy.ffn_down`).

Not represented: rotary embeddings, q/k/v biases (``attention_bias``, off in OLMo 2).
"""

from __future__ import annotations

from tuneshift.models.anatomy.llama import LlamaLikeSpec, llama_like_class
from tuneshift.models.anatomy.registry import register_anatomy

__all__ = ["OLMO2", "Olmo2Anatomy"]

OLMO2 = LlamaLikeSpec(
    family="olmo2",
    class_name="Olmo2Anatomy",
    summary=(
        "OLMo 2 (``Olmo2ForCausalLM``): no pre-attention norm (gain 1; post-norm blocks), "
        "``q_norm``/``k_norm`` RMSNorms (gain ``w``) over the whole q/k projections, folded per "
        "output dimension; GQA in the larger models."
    ),
    config_class="Olmo2Config",
    model_class="Olmo2ForCausalLM",
    tiny=lambda d: dict(num_key_value_heads=2),
    pre_norm=None,
    q_norm="self_attn.q_norm",
    k_norm="self_attn.k_norm",
    qk_norm_scope="projection",
    post_ffn_norm="post_feedforward_layernorm",
)

Olmo2Anatomy = llama_like_class(OLMO2, module=__name__)

register_anatomy("olmo2", Olmo2Anatomy)
