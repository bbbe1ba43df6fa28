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
cost. This module imports no torch (a CLI's checks can use it before a model loads); the dispatch
is :func:`tuneshift.methods.attribution.methods.gradient_x_input.gradient_x_input_by_path`. ``benchmarks/attribution_paths.py`` measures the paths side by side and prints the model's
predictions next to the times (docs/benchmarks.md, "Attribution paths").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

PATHS = ("auto", "batch", "segmented", "forward")
#: prompt positions per vectorised Jacobian-vector product of the forward path (the default of
#: the method's ``tangents_per_pass`` option and of the functions that take it)
DEFAULT_TANGENTS_PER_PASS = 16


def segment_bounds(prompt_lengths: Sequence[int], total: int, segment_length: int) -> list[tuple[int, int]]:
    """Segments ``[(start, end), ...]`` covering positions ``0..total-1``.

    The first segment is ``[0, min(prompt_lengths))``: its last position predicts the first
    response token of the shortest prompt; then blocks of ``segment_length`` positions.

    Raises:
        ValueError: ``segment_length`` < 1 or an empty prompt.
    """
    if segment_length < 1:
        raise ValueError(f"segment_length must be >= 1, got {segment_length}")
    first = min(prompt_lengths)
    if first < 1:
        raise ValueError("every prompt needs at least one token")
    bounds = [(0, min(first, total))]
    s = bounds[0][1]
    while s < total:
        bounds.append((s, min(s + segment_length, total)))
        s += segment_length
    return bounds


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


#: Measured on this project's 2-core CPU machine (Gemma 3 270M, float32, one thread). Q: P = 40,
#: R = 16-128, 2026-12-07: a segment pass ~0.19 s whatever its size (Q ~ 51 positions). c: fitted
#: to the idle run of ``benchmarks/attribution_paths.py --prompt-lengths 16 64 --response-lengths
#: 32 128`` (2026-12-07, docs/benchmarks.md): a backward position ~3.05 ms in all four cells, a
#: tangent position 1.07-1.55 of it (median 1.17; an earlier run under load gave 0.75).
CPU_COST_MODEL = CostModel(weight_read=51.0, tangent=1.2)


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
    fixed_segment_length: int = 0,
) -> tuple[str, int]:
    """``(path, segment length)`` of the cheapest path by the cost model.

    Args:
        prompt_lengths, response_lengths: the batch's P_b and R_b (B >= 1 each, >= 1).
        tangents_per_pass: k of the forward-mode path.
        model: the :class:`CostModel` (default :data:`CPU_COST_MODEL`).
        fixed_segment_length: the segmented path's L when the user set one (0: the best L,
            :func:`segment_length`); the segmented path is costed with it.

    Returns:
        ``("batch" | "segmented" | "forward", L)``; L is the segmented path's segment length
        (0 for the other paths).
    """
    L = fixed_segment_length or segment_length(prompt_lengths, response_lengths, model)
    costs = {
        "batch": model.batch_cost(prompt_lengths, response_lengths),
        "segmented": model.segmented_cost(prompt_lengths, response_lengths, L),
        "forward": model.forward_cost(prompt_lengths, response_lengths, tangents_per_pass),
    }
    best = min(costs, key=lambda k: (costs[k], list(costs).index(k)))
    return best, (L if best == "segmented" else 0)
