"""Gradient x input with backward passes that visit only what each response token depends on.

Same quantity as :func:`tuneshift.methods.attribution.gradient.gradient_x_input` (Wu et al.,
NAACL 2024, Sec. 3.1, Eq. 1: ``A[n, j] = (d f(y_j) / d e_n) . e_n``), computed differently:

* the forward pass runs in *segments* of positions: the prompt (up to the shortest prompt of
  the batch), then blocks of ``segment_length`` response positions; each segment attends to
  the earlier ones through a key/value cache (``transformers.DynamicCache``) that stays in the
  autograd graph (the keys and values are not detached);
* the model is causal, so the target of response token j depends only on the positions up to
  its own; autograd's backward from it reaches only the segments up to the one holding
  position ``P + j - 1``. The one-forward batch path instead traverses every position of the
  sequence in every backward pass, although the positions after ``P + j - 1`` get zero
  gradient.

Cost (per batch, R response tokens, P prompt tokens): the batch path's backward passes touch
``R (P + R)`` positions, this path's about ``R (P + R/2 + L/2)`` (L = segment length), plus a
per-segment overhead (more, smaller kernels and autograd nodes) that
:func:`tuneshift.methods.attribution.paths.segment_length` trades off with a measured cost model.
Results are equal to the batch path's to float rounding (tests/test_attribution_paths.py, float64
to 1e-10 on every supported family).
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import numpy as np
import torch

from tuneshift.methods.attribution.gradient import (
    SequencePair,
    check_pairs,
    freeze_parameters,
    interruptible_backward,
    pack_pairs,
)
from tuneshift.methods.attribution.paths import segment_bounds
from tuneshift.methods.attribution.targets import DEFAULT_TARGET, Target, get_target, logits_from_hidden, upcast


def _segmented_backbone(model, embeds: torch.Tensor, mask: torch.Tensor, bounds) -> list[torch.Tensor]:
    """Final hidden states of each segment (``[B, end - start, d_model]``), the key/value cache in the graph."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    backbone = model.base_model
    # transformers >= 5.25 names the argument ``cache`` (``past_key_values`` is deprecated)
    name = "cache" if "cache" in inspect.signature(backbone.forward).parameters else "past_key_values"
    out = []
    for s, e in bounds:
        o = backbone(inputs_embeds=embeds[:, s:e], attention_mask=mask[:, :e], use_cache=True, **{name: cache})
        out.append(o.last_hidden_state if hasattr(o, "last_hidden_state") else o[0])
    return out


def segmented_gradient_x_input(
    model,
    pairs: Sequence[SequencePair],
    pad_token_id: int = 0,
    on_token: Callable[[int, int], None] | None = None,
    target: str | Target = DEFAULT_TARGET,
    segment_length: int = 16,
) -> list[np.ndarray]:
    """Gradient x input of a batch, the backward of response token j over positions ``<= P + j - 1`` only.

    Args:
        model: a Hugging Face causal LM whose forward accepts a key/value cache (``cache`` or ``past_key_values``) (every
            supported family); parameters are frozen here.
        pairs: B prompt/response pairs (right padding to the longest).
        pad_token_id: a valid token id for padding (masked out).
        on_token: optional progress callback ``(j, R_max)`` after each response position.
        target: a target name or :class:`~.targets.Target` (default ``probability``).
        segment_length: response positions per forward segment (>= 1; see
            :func:`tuneshift.methods.attribution.paths.segment_length`).

    Returns:
        B arrays ``[P_b, R_b]`` (float64 for a float64 model, else float32), equal to
        :func:`~tuneshift.methods.attribution.gradient.gradient_x_input`'s to float rounding.

    Raises:
        ValueError: an empty prompt or response, ``segment_length`` < 1.
        TuneshiftError: unknown target name.
    """
    target = get_target(target)
    if not pairs:
        return []
    check_pairs(pairs)
    freeze_parameters(model)
    ids, mask = pack_pairs(model, pairs, pad_token_id)
    B, T = ids.shape
    bounds = segment_bounds([len(p.prompt_ids) for p in pairs], T, segment_length)
    seg_of = np.zeros(T, dtype=np.int64)
    for k, (s, e) in enumerate(bounds):
        seg_of[s:e] = k
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    embeds = embeds.detach().requires_grad_(True)
    acc = torch.float64 if embeds.dtype == torch.float64 else torch.float32
    np_dtype = np.float64 if embeds.dtype == torch.float64 else np.float32
    emb_acc = embeds.detach().to(acc)
    out = [np.zeros((len(p.prompt_ids), len(p.response_ids)), dtype=np_dtype) for p in pairs]
    R_max = max(len(p.response_ids) for p in pairs)
    with torch.enable_grad(), interruptible_backward(model):
        hidden = _segmented_backbone(model, embeds, mask, bounds)
        for j in range(R_max):
            rows = [b for b, p in enumerate(pairs) if j < len(p.response_ids)]
            pos = [len(pairs[b].prompt_ids) + j - 1 for b in rows]
            # each row's predicting hidden state, taken from its own segment (the segments stay a
            # list: the backward of a torch.cat of them would reach every segment)
            h = torch.stack([hidden[seg_of[q]][b, q - bounds[seg_of[q]][0]] for b, q in zip(rows, pos)])
            logits = upcast(logits_from_hidden(model, h))
            y = torch.tensor([pairs[b].response_ids[j] for b in rows], dtype=torch.long, device=logits.device)
            score = target(logits, y).sum()
            (grad,) = torch.autograd.grad(score, embeds, retain_graph=j < R_max - 1)
            contrib = (grad.to(acc) * emb_acc).sum(-1).cpu().numpy()  # [B, T]
            for b in rows:
                out[b][:, j] = contrib[b, : len(pairs[b].prompt_ids)]
            if on_token is not None:
                on_token(j, R_max)
        del hidden
    return out
