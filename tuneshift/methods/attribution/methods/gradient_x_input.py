"""Gradient x input (Wu et al., NAACL 2024, Sec. 3.1, Eq. 1) and its naive reference, as methods.

``gradient_x_input`` (the default method)
    ``A[n, j] = (d f(y_j | x, y_<j) / d e_n) . e_n`` summed over the embedding dimension,
    f the target (the paper's: ``probability``). The fast batched path of
    :func:`tuneshift.methods.attribution.gradient.gradient_x_input`: one forward per batch of
    prompts, one backward per response position, LM head on one position per row. Cost:
    about 1 forward + R backwards per batch (R = longest response).
``gradient_x_input_reference``
    the same quantity by the straightforward algorithm
    (:func:`~tuneshift.methods.attribution.gradient.naive_gradient_x_input`): one full
    forward and one backward per response token and prompt (about R times slower). For
    checking the fast path on a new model family; results agree to float rounding.

Neither has options that change results. ``gradient_x_input`` takes the execution setting
``positions_per_backward`` (``AttributionOptions``/``--positions-per-backward``; not part of the
run identity): k > 1 runs the backward passes of k response positions as one vectorised
backward (``is_grads_batched``), which pays on GPUs.
"""

from __future__ import annotations

from tuneshift.methods.attribution.gradient import gradient_x_input, naive_gradient_x_input
from tuneshift.methods.attribution.methods import AttributionMethod, register_method


@register_method("gradient_x_input")
class GradientXInput(AttributionMethod):
    """Gradient x input of the target w.r.t. the input embeddings (Wu et al. 2024); fast batched path."""

    supports_batched_backward = True

    def attribute(self, model, pairs, target, pad_token_id=0, on_token=None, positions_per_backward=1):
        return gradient_x_input(
            model,
            pairs,
            pad_token_id=pad_token_id,
            on_token=on_token,
            target=target,
            positions_per_backward=positions_per_backward,
        )


@register_method("gradient_x_input_reference")
class GradientXInputReference(AttributionMethod):
    """Gradient x input by the naive algorithm: one full forward + backward per response token (slow; for checks)."""

    def attribute(self, model, pairs, target, pad_token_id=0, on_token=None):
        if any(len(p.prompt_ids) == 0 or len(p.response_ids) == 0 for p in pairs):
            raise ValueError("every pair needs at least one prompt token and one response token")
        out = [naive_gradient_x_input(model, p, target=target) for p in pairs]
        if on_token is not None:
            r_max = max((len(p.response_ids) for p in pairs), default=0)
            for j in range(r_max):
                on_token(j, r_max)
        return out
