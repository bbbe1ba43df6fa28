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

Neither has options that change results. ``gradient_x_input`` has execution options, none of
them part of the run identity (the results are equal to float rounding,
tests/test_attribution_paths.py):

* ``path``: ``auto`` (default; the cheapest by the measured cost model of
  :mod:`tuneshift.methods.attribution.paths`), ``batch`` (one forward, one backward per response
  position), ``segmented`` (forward in segments with the key/value cache in the graph, backward
  over ancestors only) or ``forward`` (one Jacobian-vector product per prompt position);
* ``segment_length``: L of the segmented path (0: chosen by the cost model);
* ``tangents_per_pass``: prompt positions per vectorised Jacobian-vector product;
* ``positions_per_backward`` (``AttributionOptions``/``--positions-per-backward``): k > 1 runs the
  batch path's backward passes of k response positions as one vectorised backward
  (``is_grads_batched``), which pays on GPUs; ``auto`` then takes the batch path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from tuneshift.errors import TuneshiftError
from tuneshift.methods.attribution.methods import AttributionMethod, register_method
from tuneshift.methods.attribution.paths import DEFAULT_TANGENTS_PER_PASS, PATHS, choose_path, segment_length


def gradient_x_input_by_path(
    model,
    pairs: Sequence,
    pad_token_id: int = 0,
    on_token: Callable[[int, int], None] | None = None,
    target=None,
    path: str = "auto",
    segment_length_: int = 0,
    tangents_per_pass: int = DEFAULT_TANGENTS_PER_PASS,
    positions_per_backward: int = 1,
) -> list[np.ndarray]:
    """Gradient x input of a batch by the chosen (or cheapest) path.

    Args:
        model, pairs, pad_token_id, on_token, target: as in
            :func:`tuneshift.methods.attribution.gradient.gradient_x_input`.
        path: ``auto`` (:func:`~tuneshift.methods.attribution.paths.choose_path`), ``batch``, ``segmented`` or ``forward``.
        segment_length_: L of the segmented path (0: :func:`~tuneshift.methods.attribution.paths.segment_length`).
        tangents_per_pass: k of the forward-mode path.
        positions_per_backward: > 1 runs the batch path's vectorised backward (a GPU setting);
            ``auto`` then takes the batch path.

    Returns:
        B arrays ``[P_b, R_b]``, equal for every path to float rounding.

    Raises:
        ValueError: an unknown path, empty prompts or responses.
    """
    # the implementations import torch: imported when a batch is attributed, not with the registry
    from tuneshift.methods.attribution import forward_mode, gradient, segmented
    from tuneshift.methods.attribution.targets import DEFAULT_TARGET

    target = DEFAULT_TARGET if target is None else target
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    if not pairs:
        return []
    gradient.check_pairs(pairs)
    P = [len(p.prompt_ids) for p in pairs]
    R = [len(p.response_ids) for p in pairs]
    L = segment_length_
    if path == "auto":
        path, L = (
            ("batch", 0) if positions_per_backward > 1 else choose_path(P, R, tangents_per_pass, fixed_segment_length=L)
        )
    if path == "segmented":
        L = L or segment_length(P, R)
        return segmented.segmented_gradient_x_input(model, pairs, pad_token_id, on_token, target, segment_length=L)
    if path == "forward":
        return forward_mode.forward_gradient_x_input(model, pairs, pad_token_id, on_token, target, tangents_per_pass)
    return gradient.gradient_x_input(model, pairs, pad_token_id, on_token, target, positions_per_backward)


@register_method("gradient_x_input")
class GradientXInput(AttributionMethod):
    """Gradient x input of the target w.r.t. the input embeddings (Wu et al. 2024); fast exact paths."""

    supports_batched_backward = True

    @dataclass(frozen=True)
    class Options:
        """Execution options of gradient x input (none is part of the run identity).

        Attributes:
            path: ``auto``, ``batch``, ``segmented`` or ``forward`` (module docstring).
            segment_length: response positions per forward segment of the segmented path
                (0: chosen by the cost model).
            tangents_per_pass: prompt positions per vectorised Jacobian-vector product of the
                forward path (memory grows with it).
        """

        path: str = field(default="auto", metadata={"identity": False})
        segment_length: int = field(default=0, metadata={"identity": False})
        tangents_per_pass: int = field(default=DEFAULT_TANGENTS_PER_PASS, metadata={"identity": False})

        def __post_init__(self):
            if self.path not in PATHS:
                raise TuneshiftError(f"gradient_x_input: path must be one of {', '.join(PATHS)}, not '{self.path}'")
            if not isinstance(self.segment_length, int) or self.segment_length < 0:
                raise TuneshiftError(
                    f"gradient_x_input: segment_length must be an integer >= 0 (0: chosen), not {self.segment_length!r}"
                )
            if not isinstance(self.tangents_per_pass, int) or self.tangents_per_pass < 1:
                raise TuneshiftError(
                    f"gradient_x_input: tangents_per_pass must be an integer >= 1, not {self.tangents_per_pass!r}"
                )

    def attribute(self, model, pairs, target, pad_token_id=0, on_token=None, positions_per_backward=1):
        o = self.options
        return gradient_x_input_by_path(
            model,
            pairs,
            pad_token_id=pad_token_id,
            on_token=on_token,
            target=target,
            path=o.path,
            segment_length_=o.segment_length,
            tangents_per_pass=o.tangents_per_pass,
            positions_per_backward=positions_per_backward,
        )


@register_method("gradient_x_input_reference")
class GradientXInputReference(AttributionMethod):
    """Gradient x input by the naive algorithm: one full forward + backward per response token (slow; for checks)."""

    def attribute(self, model, pairs, target, pad_token_id=0, on_token=None):
        from tuneshift.methods.attribution.gradient import check_pairs, naive_gradient_x_input

        check_pairs(pairs)
        out = [naive_gradient_x_input(model, p, target=target) for p in pairs]
        if on_token is not None:
            r_max = max((len(p.response_ids) for p in pairs), default=0)
            for j in range(r_max):
                on_token(j, r_max)
        return out
