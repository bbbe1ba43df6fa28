"""Gradient x input of a per-response-token target, batched and exact.

Source: Wu et al., NAACL 2024, Sec. 3.1, Eq. 1: the attribution of prompt token x_n to
response token y_j is ``(d p(y_j | x, y_<j) / d e_n) . e_n``, the gradient of the
*probability* (softmax, not log-probability) with respect to the input embedding of
token n, times that embedding, summed over the hidden dimension. ``p`` is the default
target; ``target=`` swaps it for any target of :mod:`.targets` (``log_probability``,
``logit``): ``(d f(y_j) / d e_n) . e_n``.

How it is computed here (the fast, exact path):

* every parameter is frozen (``requires_grad=False``): only the input embeddings need
  gradients, so autograd never builds or stores parameter gradients;
* one forward pass per *batch* of prompts (right padding, attention mask), with the graph
  kept, then one backward per response position j for the whole batch: rows are
  independent, so the gradient of ``sum_b p_b(y_j)`` with respect to row b's embeddings is
  row b's own gradient;
* only the hidden states of response positions go through the LM head, one position at a
  time (a 262k-vocabulary head over every position would dominate the cost).

``naive_gradient_x_input`` is the straightforward reference used by the tests and the
benchmark: one full forward and one backward per response token, batch size 1.

Both are registered as attribution methods (``gradient_x_input`` and
``gradient_x_input_reference``) in :mod:`tuneshift.methods.attribution.methods.gradient_x_input`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from tuneshift import interrupts
from tuneshift.methods.attribution.targets import (
    DEFAULT_TARGET,
    Target,
    backbone_hidden,
    get_target,
    logits_from_hidden,
    upcast,
)


@dataclass
class SequencePair:
    """One prompt and its response as token ids.

    Attributes:
        prompt_ids: every token the model sees before the response (BOS, chat template,
            user prompt, generation prompt), length P >= 1.
        response_ids: the response tokens y_1..y_R (R >= 1), without EOS.
    """

    prompt_ids: Sequence[int]
    response_ids: Sequence[int]


# kept importable from here (tests and older code import them from this module)
_upcast = upcast
_backbone_hidden = backbone_hidden


def check_pairs(pairs: Sequence[SequencePair]) -> None:
    """Raise ValueError unless every pair has at least one prompt and one response token."""
    for p in pairs:
        if len(p.prompt_ids) == 0 or len(p.response_ids) == 0:
            raise ValueError("every pair needs at least one prompt token and one response token")


def freeze_parameters(model) -> None:
    """``requires_grad=False`` on every parameter: only the input embeddings need gradients."""
    for prm in model.parameters():
        if prm.requires_grad:
            prm.requires_grad_(False)


def pack_pairs(model, pairs: Sequence[SequencePair], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask``, both ``[B, T]`` (T = longest prompt +
    response), on the device of the input embeddings (the first device of a split model)."""
    device = model.get_input_embeddings().weight.device
    T = max(len(p.prompt_ids) + len(p.response_ids) for p in pairs)
    ids = torch.full((len(pairs), T), int(pad_token_id), dtype=torch.long, device=device)
    mask = torch.zeros((len(pairs), T), dtype=torch.long, device=device)
    for b, p in enumerate(pairs):
        seq = list(p.prompt_ids) + list(p.response_ids)
        ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[b, : len(seq)] = 1
    return ids, mask


def _layer_stack(model) -> torch.nn.ModuleList | None:
    """The model's decoder blocks: its longest ``ModuleList`` (``model.layers``, ``transformer.h``...)."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return max(lists, key=len) if lists else None


def _interrupt_point(grad):
    """A tensor hook that changes nothing: running it runs Python bytecode, where a pending SIGINT
    (Ctrl-C) raises KeyboardInterrupt, so the backward pass stops there; an interrupt swallowed
    earlier (:mod:`tuneshift.interrupts`) is raised here too."""
    interrupts.check()
    return None


class interruptible_backward:
    """Context manager: every decoder block's output gets :func:`_interrupt_point` as a
    gradient hook, so Ctrl-C is acted on inside a backward pass, after the block being
    differentiated, not only when ``torch.autograd.grad`` returns.

    Why: Python runs its SIGINT handler only between bytecodes of the main thread, and a backward
    pass is one C++ call (on a CPU it runs on the calling thread). On a 3000-token prompt one
    backward of Gemma 3 270M takes 35-50 s on a CPU, so Ctrl-C waited that long. With a hook per
    block the wait is one block's backward (measured on a 24-block tiny llama, 3000 tokens:
    2.5 s -> 0.02 s). Results are unchanged (the hook returns None: the gradient is not
    modified). On a GPU the engine runs hooks on its device threads, where Python does not act
    on signals: there Ctrl-C still waits for the (short) backward pass to end.
    """

    def __init__(self, model):
        self._model, self._handles = model, []

    def __enter__(self):
        layers = _layer_stack(self._model)

        def on_output(module, args, output):
            t = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(t, torch.Tensor) and t.requires_grad:
                t.register_hook(_interrupt_point)

        for layer in layers if layers is not None else []:
            self._handles.append(layer.register_forward_hook(on_output))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()
        return False


def gradient_x_input(
    model,
    pairs: Sequence[SequencePair],
    pad_token_id: int = 0,
    on_token: Callable[[int, int], None] | None = None,
    target: str | Target = DEFAULT_TARGET,
    positions_per_backward: int = 1,
) -> list[np.ndarray]:
    """Gradient x input from every prompt position to every response token, for a batch.

    Args:
        model: a Hugging Face causal LM whose parameters do not require gradients
            (they are frozen here if they do). Its dtype is used (float32 for exact results).
        pairs: B prompt/response pairs; sequences are right-padded to the longest.
        pad_token_id: any valid token id, used for padding (masked out).
        on_token: optional callback ``(j, R_max)`` after each response position (progress).
        target: a target name or :class:`~.targets.Target` (default ``probability``, the paper's).
        positions_per_backward: response positions j whose backward passes run at once, as
            one vectorised backward (``torch.autograd.grad(..., is_grads_batched=True)``, i.e.
            ``vmap`` over the backward graph). 1 (default) is the loop: one backward per j, the
            fastest on a CPU. On a GPU, 4-16 fills the device better; memory grows with it
            (``k x B x T x d_model`` gradients). The results equal the loop's up to float
            rounding (tested).

    With a 16-bit model (bfloat16/float16) the target is computed from float32 logits and the
    dot product ``grad . e_n`` over the hidden dimension is accumulated in float32.

    Returns:
        B arrays (float64 for a float64 model, else float32), item b of shape ``[P_b, R_b]``: entry [n, j] is
        ``grad_{e_n} f(y_j | prefix) . e_n`` for prompt position n (all P_b positions,
        including BOS and template tokens; the caller keeps the user-prompt rows), f the
        target (units: the target's, e.g. probability).

    Ctrl-C (KeyboardInterrupt) is acted on inside a backward pass, after the decoder block being
    differentiated (:class:`interruptible_backward`), not only between backward passes.

    Raises:
        ValueError: on an empty prompt or empty response; ``positions_per_backward`` < 1.
        TuneshiftError: unknown target name.
    """
    target = get_target(target)
    if positions_per_backward < 1:
        raise ValueError(f"positions_per_backward must be >= 1, got {positions_per_backward}")
    if not pairs:
        return []
    check_pairs(pairs)
    freeze_parameters(model)
    ids, mask = pack_pairs(model, pairs, pad_token_id)

    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    embeds = embeds.detach().requires_grad_(True)

    with torch.enable_grad(), interruptible_backward(model):  # Ctrl-C acts inside a backward pass
        hidden = _backbone_hidden(model, embeds, mask)
        R_max = max(len(p.response_ids) for p in pairs)
        np_dtype = np.float64 if embeds.dtype == torch.float64 else np.float32
        acc = torch.float64 if embeds.dtype == torch.float64 else torch.float32
        emb_acc = embeds.detach().to(acc)
        out = [np.zeros((len(p.prompt_ids), len(p.response_ids)), dtype=np_dtype) for p in pairs]
        k = positions_per_backward
        for j0 in range(0, R_max, k):
            js = list(range(j0, min(j0 + k, R_max)))
            scores = []  # per j: [B] target values, 0 for rows whose response is shorter
            for j in js:
                rows = [b for b, p in enumerate(pairs) if j < len(p.response_ids)]
                # index tensors on the *hidden state's* device: under device_map="auto" the
                # backbone's last block and final norm sit on the last device, not the first
                hdev = hidden.device
                row_idx = torch.tensor(rows, dtype=torch.long, device=hdev)
                pos = torch.tensor([len(pairs[b].prompt_ids) + j - 1 for b in rows], dtype=torch.long, device=hdev)
                logits = _upcast(logits_from_hidden(model, hidden[row_idx, pos]))
                # the token ids on the logits' device (the LM head may sit on yet another device)
                y = torch.tensor([pairs[b].response_ids[j] for b in rows], dtype=torch.long, device=logits.device)
                scores.append(target(logits, y).sum())
            last = js[-1] == R_max - 1
            if len(js) == 1:
                (grad,) = torch.autograd.grad(scores[0], embeds, retain_graph=not last)
                grads = grad[None]
            else:
                # one vectorised backward for the k positions: row i of the identity picks score i
                stacked = torch.stack(scores)
                eye = torch.eye(len(js), dtype=stacked.dtype, device=stacked.device)  # the scores' device
                (grads,) = torch.autograd.grad(
                    stacked, embeds, grad_outputs=eye, is_grads_batched=True, retain_graph=not last
                )
            contrib = (grads.to(acc) * emb_acc[None]).sum(-1).cpu().numpy()  # [k, B, T], float32 sums
            for i, j in enumerate(js):
                for b, p in enumerate(pairs):
                    if j < len(p.response_ids):
                        out[b][:, j] = contrib[i, b, : len(p.prompt_ids)]
                if on_token is not None:
                    on_token(j, R_max)
    return out


_REFERENCE_FORMULAS = {
    "probability": lambda z, y: torch.softmax(z, dim=-1)[y],
    "log_probability": lambda z, y: torch.log_softmax(z, dim=-1)[y],
    "logit": lambda z, y: z[y],
}


def _reference_score(target: Target, logits: torch.Tensor, y: int) -> torch.Tensor:
    """The target of one position's logits ``[vocab]`` by its own formula (registry fn for others)."""
    formula = _REFERENCE_FORMULAS.get(target.name)
    if formula is not None:
        return formula(logits, y)
    return target(logits[None], torch.tensor([y], device=logits.device))[0]


def naive_gradient_x_input(
    model, pair: SequencePair, freeze: bool = True, target: str | Target = DEFAULT_TARGET
) -> np.ndarray:
    """Reference implementation: one forward and one backward per response token, batch 1.

    This is the straightforward form of the paper's published algorithm; it runs the
    model's full forward (all positions through the LM head) for every response token.
    With ``freeze=False`` parameter gradients are computed too, as in the original code.

    Args:
        model: a Hugging Face causal LM.
        pair: one prompt/response pair.
        freeze: freeze the parameters (False: compute parameter gradients too, then clean up).
        target: a target name or :class:`~.targets.Target`, applied to the model's own
            ``.logits`` (which include any final-logit soft-cap). The three built-in
            targets are computed here by their textbook formulas (``softmax(z)[y]``,
            ``log_softmax(z)[y]``, ``z[y]``), independently of :mod:`.targets`.

    Returns:
        ``[P, R]`` array (float64 for a float64 model, else float32), the same quantity as :func:`gradient_x_input`.
    """
    target = get_target(target)
    device = model.get_input_embeddings().weight.device  # the first device of a split model
    if freeze:
        for prm in model.parameters():
            prm.requires_grad_(False)
    else:
        for prm in model.parameters():
            prm.requires_grad_(True)
    prompt = list(pair.prompt_ids)
    resp = list(pair.response_ids)
    P = len(prompt)
    out = None
    try:
        for j, y in enumerate(resp):
            ids = torch.tensor([prompt + resp[:j]], dtype=torch.long, device=device)
            with torch.no_grad():
                embeds = model.get_input_embeddings()(ids)
            embeds = embeds.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = _upcast(model(inputs_embeds=embeds, use_cache=False).logits[0, -1])
                score = _reference_score(target, logits, y)
                model.zero_grad(set_to_none=True)
                score.backward()
            col = (embeds.grad[0] * embeds.detach()[0]).sum(-1)[:P].cpu().numpy()
            if out is None:
                out = np.zeros((P, len(resp)), dtype=np.float64 if col.dtype == np.float64 else np.float32)
            out[:, j] = col
    finally:
        if not freeze:
            model.zero_grad(set_to_none=True)
            for prm in model.parameters():
                prm.requires_grad_(False)
    return out
