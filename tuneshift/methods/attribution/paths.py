"""Three exact ways to compute gradient x input, and the cost model that picks one.

All three compute the same matrices (Wu et al., NAACL 2024, Sec. 3.1, Eq. 1; equal to float
rounding, tests/test_attribution_paths.py), so the path is an execution setting, never part of
a run's identity:

``batch`` (:func:`~.gradient.gradient_x_input`)
    one forward per batch of prompts with the graph kept, one backward per response position.
``segmented`` (:func:`~.segmented.segmented_gradient_x_input`)
    the forward in segments with the key/value cache in the graph, so the backward of
    response token j visits only the segments up to its own.
``forward`` (:func:`~.forward_mode.forward_gradient_x_input`)
    one Jacobian-vector product per prompt position (vectorised over ``tangents_per_pass``
    positions), plus one backward through the LM head: P tangent passes instead of R backwards.

The cost model counts work in *position units*: one position through the backbone's matrix
products in one direction (forward, or the input-gradient half of a backward). Two measured
constants complete it (:data:`CPU_COST_MODEL`):

* ``weight_read`` (Q): the fixed cost of one pass of the backbone over a block of positions,
  whatever its size, in position units (reading every weight matrix once, kernel launches).
  On a CPU small blocks are bound by reading the weights, which is what makes short segments
  expensive;
* ``tangent`` (c): the cost of one tangent position of a Jacobian-vector product relative to a
  backward position.

Costs (P prompt, R response, T = P + R positions, L segment length, k tangents per pass):

* batch: ``R (Q + T)`` (+ one forward, common to all paths and left out);
* segmented: ``sum_j [(n_j) Q + end_j]``, n_j the segments the backward of token j visits and
  end_j the last position of its segment;
* forward: ``ceil(P / k) (2 Q + T) + c P T`` (a primal and a tangent pass per call).

:func:`choose_path` takes the cheapest; :func:`segment_length` the L minimising the segmented
cost. ``benchmarks/attribution_paths.py`` measures the paths side by side and prints the model's
predictions next to the times (docs/benchmarks.md, "Attribution paths").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from tuneshift.methods.attribution.forward_mode import forward_gradient_x_input
from tuneshift.methods.attribution.gradient import check_pairs, gradient_x_input
from tuneshift.methods.attribution.segmented import segment_bounds, segmented_gradient_x_input
from tuneshift.methods.attribution.targets import DEFAULT_TARGET

PATHS = ("auto", "batch", "segmented", "forward")


@dataclass(frozen=True)
class CostModel:
    """Measured constants of the cost model (module docstring), in position units.

    Attributes:
        weight_read: Q, the fixed cost of one backbone pass over a block of positions.
        tangent: c, one tangent position of a Jacobian-vector product relative to one
            backward position.
    """

    weight_read: float
    tangent: float

    def batch_cost(self, prompt_lengths: Sequence[int], response_lengths: Sequence[int]) -> float:
        """Cost of the batch path for one padded batch (rows share every backward)."""
        T = max(p + r for p, r in zip(prompt_lengths, response_lengths))
        rows = len(prompt_lengths)
        return max(response_lengths) * (self.weight_read + rows * T)

    def segmented_cost(self, prompt_lengths: Sequence[int], response_lengths: Sequence[int], L: int) -> float:
        """Cost of the segmented path with segment length ``L`` for one padded batch."""
        T = max(p + r for p, r in zip(prompt_lengths, response_lengths))
        rows = len(prompt_lengths)
        bounds = segment_bounds(prompt_lengths, T, L)
        ends = np.array([e for _, e in bounds])
        cost = 0.0
        for j in range(max(response_lengths)):
            last = max(p + j - 1 for p, r in zip(prompt_lengths, response_lengths) if j < r)
            k = int(np.searchsorted(ends, last, side="right"))  # segments 0..k visited
            cost += (k + 1) * self.weight_read + rows * ends[k]
        return cost

    def forward_cost(self, prompt_lengths: Sequence[int], response_lengths: Sequence[int], k: int) -> float:
        """Cost of the forward-mode path (each pair on its own, ``k`` tangents per pass)."""
        cost = 0.0
        for p, r in zip(prompt_lengths, response_lengths):
            T = p + r
            cost += math.ceil(p / k) * (2 * self.weight_read + T) + self.tangent * p * T
        return cost


#: Measured on this project's 2-core CPU machine (Gemma 3 270M, float32, one thread, P = 40 and
#: R = 16-128, 2026-12-07, ``benchmarks/attribution_paths.py``): one position of a backward
#: ~3.8 ms; a segment pass ~0.19 s whatever its size (Q ~ 51 positions); a tangent position
#: ~0.75 of a backward position.
CPU_COST_MODEL = CostModel(weight_read=51.0, tangent=0.75)


def segment_length(
    prompt_lengths: Sequence[int], response_lengths: Sequence[int], model: CostModel = CPU_COST_MODEL
) -> int:
    """The segment length minimising :meth:`CostModel.segmented_cost` (searched over powers of
    two and ``R_max``); returns an int >= 1."""
    r_max = max(response_lengths)
    cands = sorted({min(2**e, r_max) for e in range(0, 12)} | {r_max})
    return min(cands, key=lambda L: (model.segmented_cost(prompt_lengths, response_lengths, L), -L))


def choose_path(
    prompt_lengths: Sequence[int],
    response_lengths: Sequence[int],
    tangents_per_pass: int,
    model: CostModel = CPU_COST_MODEL,
) -> tuple[str, int]:
    """``(path, segment length)`` of the cheapest path by the cost model.

    Args:
        prompt_lengths, response_lengths: the batch's P_b and R_b (B >= 1 each, >= 1).
        tangents_per_pass: k of the forward-mode path.
        model: the :class:`CostModel` (default :data:`CPU_COST_MODEL`).

    Returns:
        ``("batch" | "segmented" | "forward", L)``; L is the segmented path's segment length
        (0 for the other paths).
    """
    L = segment_length(prompt_lengths, response_lengths, model)
    costs = {
        "batch": model.batch_cost(prompt_lengths, response_lengths),
        "segmented": model.segmented_cost(prompt_lengths, response_lengths, L),
        "forward": model.forward_cost(prompt_lengths, response_lengths, tangents_per_pass),
    }
    best = min(costs, key=lambda k: (costs[k], list(costs).index(k)))
    return best, (L if best == "segmented" else 0)


def gradient_x_input_by_path(
    model,
    pairs: Sequence,
    pad_token_id: int = 0,
    on_token: Callable[[int, int], None] | None = None,
    target=None,
    path: str = "auto",
    segment_length_: int = 0,
    tangents_per_pass: int = 16,
    positions_per_backward: int = 1,
) -> list[np.ndarray]:
    """Gradient x input of a batch by the chosen (or cheapest) path.

    Args:
        model, pairs, pad_token_id, on_token, target: as in
            :func:`~.gradient.gradient_x_input`.
        path: ``auto`` (:func:`choose_path`), ``batch``, ``segmented`` or ``forward``.
        segment_length_: L of the segmented path (0: :func:`segment_length`).
        tangents_per_pass: k of the forward-mode path.
        positions_per_backward: > 1 runs the batch path's vectorised backward (a GPU setting);
            ``auto`` then takes the batch path.

    Returns:
        B arrays ``[P_b, R_b]``, equal for every path to float rounding.

    Raises:
        ValueError: an unknown path, empty prompts or responses.
    """
    target = DEFAULT_TARGET if target is None else target
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    if not pairs:
        return []
    check_pairs(pairs)
    P = [len(p.prompt_ids) for p in pairs]
    R = [len(p.response_ids) for p in pairs]
    L = segment_length_
    if path == "auto":
        path, L = ("batch", 0) if positions_per_backward > 1 else choose_path(P, R, tangents_per_pass)
    if path == "segmented":
        L = L or segment_length(P, R)
        return segmented_gradient_x_input(model, pairs, pad_token_id, on_token, target, segment_length=L)
    if path == "forward":
        return forward_gradient_x_input(model, pairs, pad_token_id, on_token, target, tangents_per_pass)
    return gradient_x_input(model, pairs, pad_token_id, on_token, target, positions_per_backward)
