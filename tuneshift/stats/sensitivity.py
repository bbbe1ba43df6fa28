"""The paired comparison over a grid of post-processing settings (as the paper's sweep does).

Part of the one comparison path (:mod:`tuneshift.stats.compare` is the facade): each grid point
re-scores both runs (:mod:`tuneshift.stats.scoring`) and takes the overall paired difference of
the score (:func:`tuneshift.stats.controls.paired_contrast`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tuneshift.errors import OptionError
from tuneshift.models.pair import ModelPair
from tuneshift.results import Result
from tuneshift.stats.comparison import OVERALL, _valid
from tuneshift.stats.controls import PairedContrast
from tuneshift.stats.matching import as_run, checked_pair
from tuneshift.stats.scoring import ScoreSettings, score_rule, score_run

__all__ = ["SensitivityRow", "Sensitivity", "SENSITIVITY_GRID", "sensitivity_grid", "grid_size", "sensitivity"]


@dataclass
class SensitivityRow:
    """The paired score difference (tuned - base, overall) at one grid point.

    Attributes:
        threshold, norm_p, levels, min_response_tokens, max_response_tokens: the setting (None:
            the runs' own / no cut).
        paired: the :class:`~tuneshift.stats.controls.PairedContrast` of the score there.
        sign: the sign policy (None: the runs' own); a grid key, not in the default grid.
    """

    threshold: float | None
    norm_p: float | None
    levels: int | None
    min_response_tokens: int | None
    max_response_tokens: int | None
    paired: PairedContrast
    sign: str | None = None


@dataclass
class Sensitivity(Result):
    """The comparison over a grid of b, p, L, minimum and maximum response tokens.

    Attributes:
        pair: the two models. rows: one :class:`SensitivityRow` per grid point.
    """

    FILE: ClassVar[str] = "sensitivity.json"

    pair: ModelPair
    rows: list[SensitivityRow]

    def share_positive(self) -> float:
        """Share of grid points whose CI lies above 0 (tuned higher), NaN without rows."""
        ok = [r.paired for r in self.rows if np.isfinite(r.paired.ci_low)]
        return float(np.mean([c.ci_low > 0 for c in ok])) if ok else float("nan")

    def share_negative(self) -> float:
        """Share of grid points whose CI lies below 0 (base higher), NaN without rows."""
        ok = [r.paired for r in self.rows if np.isfinite(r.paired.ci_high)]
        return float(np.mean([c.ci_high < 0 for c in ok])) if ok else float("nan")


SENSITIVITY_GRID = {
    "threshold": (5, 7, 9),
    "norm_p": (2, 4, 8),
    "levels": (10, 20),
    "min_response_tokens": (1, 5),
    "max_response_tokens": (8, 16, None),
}


def _released(run_or_protocol) -> bool:
    """Whether a :class:`Run` or its protocol (:func:`run_protocol`, e.g. a comparison's
    ``protocol["base"]``) holds the paper's released matrices (manifest ``rescale: false``)."""
    if isinstance(run_or_protocol, dict):
        imp = run_or_protocol.get("importance")
        return isinstance(imp, dict) and not imp.get("rescale", True)
    return score_rule(as_run(run_or_protocol)) == "released"


def sensitivity_grid(*runs, grid: dict | None = None) -> dict[str, tuple]:
    """The grid :func:`sensitivity` walks for these runs: ``grid`` (default
    :data:`SENSITIVITY_GRID`), with ``levels`` left at the runs' own when any of them holds the
    paper's released matrices (already discretised).

    Args:
        runs: the compared runs, each a :class:`Run`, a run directory, or its protocol
            (:func:`run_protocol`; a :class:`RunComparison` holds both in ``protocol``).
        grid: ``{setting: values}`` over the :class:`ScoreSettings` fields.

    Returns:
        ``{setting: values}``; settings it does not name keep the runs' own (one point).

    Raises:
        OptionError: the grid names a setting :class:`ScoreSettings` does not have.
    """
    grid = dict(SENSITIVITY_GRID if grid is None else grid)
    if any(_released(r) for r in runs):
        grid["levels"] = (None,)
    keys = list(ScoreSettings.__dataclass_fields__)
    unknown = set(grid) - set(keys)
    if unknown:
        raise OptionError("grid", f"has unknown settings {sorted(unknown)}; known: {keys}")
    return grid


def grid_size(grid: dict) -> int:
    """The number of points of a sensitivity grid (:func:`sensitivity_grid`): 108 for the default
    grid, 54 with the paper's released runs (one ``levels``)."""
    return math.prod(len(v) for v in grid.values())


def sensitivity(
    base,
    tuned,
    grid: dict | None = None,
    pair: ModelPair | None = None,
    include_short: bool = False,
    n_resamples: int = 2000,
    allow_mismatch: bool = False,
    progress=None,
) -> Sensitivity:
    """The paired comparison over a grid of settings (as the paper's sweep does for its data).

    Args:
        base, tuned: the two runs (paths or :class:`Run`).
        grid: ``{setting: values}`` over the :class:`ScoreSettings` fields (default
            :data:`SENSITIVITY_GRID`: b 5/7/9, p 2/4/8, L 10/20, minimum 1/5 and maximum
            8/16/all response tokens: 108 points). ``levels`` is left out for the paper's
            released runs (already discretised: 54 points); :func:`sensitivity_grid` and
            :func:`grid_size` give the grid walked and its size. ``sign`` (clip/abs/signed) may be added as a
            key; it is not in the default grid (the paper's sweep clips).
        pair: names and labels. include_short: keep short responses.
        n_resamples: bootstrap resamples per point. allow_mismatch: as in :func:`compare_runs`.
        progress: called after each point.

    Returns:
        A :class:`Sensitivity`.

    Raises:
        InputFileError: as :func:`compare_runs`. OptionError: a bad grid value.
    """
    import itertools

    from tuneshift.stats.controls import paired_contrast

    b, t, _, _ = checked_pair(base, tuned, allow_mismatch)
    grid = sensitivity_grid(b, t, grid=grid)
    keys = list(ScoreSettings.__dataclass_fields__)
    rows = []
    for values in itertools.product(*[grid.get(k, (None,)) for k in keys]):
        s = ScoreSettings(**dict(zip(keys, values)))
        bv, _ = _valid(score_run(b, s), include_short)
        tv, _ = _valid(score_run(t, s), include_short)
        ids = sorted(set(bv) & set(tv))
        c = paired_contrast("score", OVERALL, [bv[i].score for i in ids], [tv[i].score for i in ids], n_resamples)
        rows.append(SensitivityRow(**dict(zip(keys, values)), paired=c))
        if progress is not None:
            progress()
    return Sensitivity(pair or ModelPair(b.model_name, t.model_name), rows)
