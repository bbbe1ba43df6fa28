"""Greedy response generation for attribution (``--responses generate``).

Greedy decoding as in Wu et al. 2024 (they attribute each model's own greedy response,
up to 300 tokens). Prompts of a batch are left-padded for ``generate``; the response
stops at the first EOS token, which is not part of the response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class GeneratedResponse:
    """A generated response.

    Attributes:
        token_ids: response token ids, EOS excluded, length <= max_new_tokens.
        ended_with_eos: True if the model emitted EOS within the limit.
    """

    token_ids: list[int]
    ended_with_eos: bool


def greedy_generate(
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: Sequence[int] | int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
) -> list[GeneratedResponse]:
    """Greedy-decode a batch of prompts (left padding, attention mask).

    Args:
        model: a Hugging Face causal LM.
        prompts: B token-id lists (everything before the response, BOS/template included).
        max_new_tokens: one limit for all, or one per prompt (a prompt near the end of the
            context window gets a smaller one).
        eos_token_ids: ids that end a response.
        pad_token_id: id used for padding.

    Returns:
        B :class:`GeneratedResponse`. Batched and unbatched greedy decoding agree except in
        rare near-ties of float32 logits, where padding changes the summation order.
    """
    if not prompts:
        return []
    limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(set(limits)) > 1:
        # never generate a row past its own limit (it may sit at the end of the context
        # window, and models with learned positions fail beyond it): one call per limit
        results: list[GeneratedResponse | None] = [None] * len(prompts)
        for lim in sorted(set(limits)):
            idx = [b for b, v in enumerate(limits) if v == lim]
            for b, r in zip(idx, greedy_generate(model, [prompts[b] for b in idx], lim, eos_token_ids, pad_token_id)):
                results[b] = r
        return results  # type: ignore[return-value]
    device = next(model.parameters()).device
    T = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), T), int(pad_token_id), dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, T - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        mask[b, T - len(p) :] = 1
    eos = list(eos_token_ids)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max(limits),
            do_sample=False,
            num_beams=1,
            eos_token_id=eos if eos else None,
            pad_token_id=int(pad_token_id),
            temperature=None,
            top_p=None,
            top_k=None,
        )
    results = []
    eos_set = set(eos)
    for b in range(len(prompts)):
        new = out[b, T:].tolist()
        toks: list[int] = []
        ended = False
        for t in new[: limits[b]]:
            if t in eos_set:
                ended = True
                break
            toks.append(int(t))
        results.append(GeneratedResponse(toks, ended))
    return results
