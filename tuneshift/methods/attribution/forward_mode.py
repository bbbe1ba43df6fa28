"""Gradient x input by forward-mode differentiation: one Jacobian-vector product per prompt token.

Same quantity as :func:`tuneshift.methods.attribution.gradient.gradient_x_input` (Wu et al.,
NAACL 2024, Sec. 3.1, Eq. 1), ``A[n, j] = (d f(y_j) / d e_n) . e_n``, computed column-free:

* write ``h_j`` for the final hidden state (after the final norm) at position ``P + j - 1``,
  which predicts response token ``y_j``; the target ``f_j`` depends on ``h_j`` only, through
  the LM head. So ``A[n, j] = g_j . (d h_j / d e_n) e_n`` with ``g_j = d f_j / d h_j``;
* every ``g_j`` comes from *one* backward pass through the LM head alone (the ``h_j`` are
  leaves, ``sum_j f_j`` has gradient ``g_j`` at ``h_j``);
* ``(d h / d e_n) e_n`` for every position at once is one Jacobian-vector product of the
  backbone with the tangent ``e_n`` at position n and zero elsewhere
  (:func:`torch.func.jvp`). It never reaches the vocabulary-sized logits.

So the cost is P tangent passes over the sequence instead of R backward passes, and no graph
is kept. ``tangents_per_pass`` tangents run in one call, vectorised by :func:`torch.func.vmap`:
the primal forward runs once per call, the tangent computations as one batch.

PyTorch's CPU SDPA kernel has no forward-mode derivative: a model using ``sdpa`` attention
is switched to the ``eager`` kernel for the products (the same function to float rounding)
and switched back afterwards.

Results equal the reverse-mode paths' to float rounding (tests/test_attribution_paths.py,
float64 to 1e-10 on every supported family).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from tuneshift import interrupts
from tuneshift.methods.attribution.gradient import SequencePair, check_pairs, freeze_parameters, pack_pairs
from tuneshift.methods.attribution.paths import DEFAULT_TANGENTS_PER_PASS
from tuneshift.methods.attribution.targets import (
    DEFAULT_TARGET,
    Target,
    backbone_hidden,
    get_target,
    logits_from_hidden,
    upcast,
)

#: attention kernels without a forward-mode derivative: replaced by ``eager`` during the products
NO_FORWARD_AD = ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


@contextlib.contextmanager
def forward_ad_attention(model):
    """Context manager: the model's attention set to ``eager`` if its kernel (:data:`NO_FORWARD_AD`)
    has no forward-mode derivative, and restored afterwards. Any other kernel (``eager``, a
    registered custom one) is kept."""
    config = getattr(model, "config", None)
    old = getattr(config, "_attn_implementation", None)
    switch = old in NO_FORWARD_AD and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(old)


#: response rows per backward through the LM head in :func:`head_gradients`: the logits of a
#: chunk are ``[rows, vocab]`` (16 x 262,144 float32 = 16 MB for Gemma 3), not ``[R, vocab]``
HEAD_ROWS_PER_PASS = 16


def head_gradients(
    model, hidden: torch.Tensor, token_ids: torch.Tensor, target: Target, rows_per_pass: int = HEAD_ROWS_PER_PASS
) -> torch.Tensor:
    """``g_j = d f(y_j) / d h_j`` for each row of ``hidden`` ``[R, d_model]`` (backward passes
    through the LM head only, ``rows_per_pass`` rows at a time, so the vocabulary-sized logits
    never exist for all R rows at once); returns ``[R, d_model]`` in the hidden states' dtype."""
    chunks = []
    for r0 in range(0, hidden.shape[0], rows_per_pass):
        h = hidden[r0 : r0 + rows_per_pass].detach().requires_grad_(True)
        with torch.enable_grad():
            logits = upcast(logits_from_hidden(model, h))
            score = target(logits, token_ids[r0 : r0 + rows_per_pass].to(logits.device)).sum()
            (g,) = torch.autograd.grad(score, h)
        chunks.append(g)
        del logits, score
    return torch.cat(chunks)


def jvp_hidden(model, embeds: torch.Tensor, mask: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """Jacobian-vector products of the final hidden states w.r.t. the input embeddings.

    Args:
        model: a Hugging Face causal LM with an attention kernel that has a forward-mode
            derivative (see :func:`forward_ad_attention`).
        embeds: input embeddings ``[B, T, d_model]`` (the primal point).
        mask: attention mask ``[B, T]``.
        tangents: k tangents ``[k, B, T, d_model]``.

    Returns:
        ``[k, B, T, d_model]``: tangent c is ``(d h / d e) tangents[c]``. The tangents are
        vectorised (:func:`torch.func.vmap` over :func:`torch.func.jvp`): the primal forward runs
        once per call, only the tangent computations are batched.
    """
    from torch.func import jvp, vmap

    def hidden(e):
        return backbone_hidden(model, e, mask)

    with torch.no_grad(), warnings.catch_warnings():
        # torch loads its forward-mode decompositions on the first jvp through torch.jit.script,
        # which warns 18 times that torch.jit.script is deprecated: torch's own internals, nothing
        # a user can act on (torch 2.13); only that message is silenced
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)
        return vmap(lambda t: jvp(hidden, (embeds,), (t,))[1])(tangents)


def forward_gradient_x_input(
    model,
    pairs: Sequence[SequencePair],
    pad_token_id: int = 0,
    on_token: Callable[[int, int], None] | None = None,
    target: str | Target = DEFAULT_TARGET,
    tangents_per_pass: int = DEFAULT_TANGENTS_PER_PASS,
) -> list[np.ndarray]:
    """Gradient x input of a batch by forward mode: P Jacobian-vector products per pair.

    Args:
        model: a Hugging Face causal LM (parameters are frozen here).
        pairs: B prompt/response pairs; each pair is computed on its own (no padding), so
            ``pad_token_id`` plays no part.
        pad_token_id: accepted for the common signature; unused.
        on_token: optional progress callback ``(j, R_max)``; here it reports the fraction of
            the products done, scaled onto ``R_max`` (the progress bar's unit).
        target: a target name or :class:`~.targets.Target` (default ``probability``).
        tangents_per_pass: prompt positions whose products run in one vectorised call
            (memory grows with it: ``k x T x d_model`` per activation).

    Returns:
        B arrays ``[P_b, R_b]`` (float64 for a float64 model, else float32), equal to the
        reverse-mode paths' to float rounding.

    Raises:
        ValueError: an empty prompt or response, ``tangents_per_pass`` < 1.
        TuneshiftError: unknown target name.
    """
    target = get_target(target)
    if tangents_per_pass < 1:
        raise ValueError(f"tangents_per_pass must be >= 1, got {tangents_per_pass}")
    if not pairs:
        return []
    check_pairs(pairs)
    freeze_parameters(model)
    R_max = max(len(p.response_ids) for p in pairs)
    total = sum(len(p.prompt_ids) for p in pairs)
    done, reported = 0, -1
    out = []
    with forward_ad_attention(model):
        for pair in pairs:
            ids, mask = pack_pairs(model, [pair], pad_token_id)
            P, R = len(pair.prompt_ids), len(pair.response_ids)
            with torch.no_grad():
                embeds = model.get_input_embeddings()(ids)  # [1, T, d]
                hidden = backbone_hidden(model, embeds, mask)  # [1, T, d]
            y = torch.tensor(list(pair.response_ids), dtype=torch.long)
            g = head_gradients(model, hidden[0, P - 1 : P + R - 1], y, target)  # [R, d]
            acc = torch.float64 if embeds.dtype == torch.float64 else torch.float32
            g_acc = g.to(acc)
            res = np.zeros((P, R), dtype=np.float64 if embeds.dtype == torch.float64 else np.float32)
            for i0 in range(0, P, tangents_per_pass):
                rows = list(range(i0, min(i0 + tangents_per_pass, P)))
                k = len(rows)
                tangents = torch.zeros((k, *embeds.shape), dtype=embeds.dtype, device=embeds.device)
                for c, i in enumerate(rows):
                    tangents[c, 0, i] = embeds[0, i]
                dh = jvp_hidden(model, embeds, mask, tangents)[:, 0]  # [k, T, d]
                vals = (dh[:, P - 1 : P + R - 1].to(g_acc.device, acc) * g_acc[None]).sum(-1)  # [k, R]
                res[rows] = vals.cpu().numpy()
                done += k
                interrupts.check()
                if on_token is not None:
                    step = min(R_max - 1, done * R_max // max(total, 1) - 1)
                    if step > reported:
                        for j in range(reported + 1, step + 1):
                            on_token(j, R_max)
                        reported = step
            out.append(res)
    if on_token is not None:
        for j in range(reported + 1, R_max):
            on_token(j, R_max)
    return out
