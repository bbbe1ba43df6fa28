"""Compare the instruction scores of a pre-trained and an instruction-tuned run: any model pair.

Source: Wu et al., NAACL 2024, Sec. 4.1 (Tables 1 and 2); see :mod:`tuneshift.stats.comparison`.

This module is a facade: ``from tuneshift.stats.compare import X`` keeps working for every name
below. The one comparison path lives in four modules (low to high, no cycle):

- :mod:`tuneshift.stats.scoring`: :class:`ScoreSettings`, :class:`ScoredRecord`,
  :func:`score_run`, :func:`score_matrix`, :func:`effective_settings`, :func:`score_rule`
  (stored scores, or re-scored from the raw matrices).
- :mod:`tuneshift.stats.matching`: the matched-run checks, :func:`as_run`, :func:`checked_pair`,
  :func:`check_same_prompts`, :func:`run_protocol`, :func:`protocol_mismatches`,
  :class:`ProtocolMismatchError`.
- :mod:`tuneshift.stats.comparison`: the statistics, :func:`compare_runs`, :func:`compare_scored`,
  :class:`RunComparison`, Welch and followed-vs-unfollowed contrasts, the position profile, the
  per-record controls, :func:`example_record`.
- :mod:`tuneshift.stats.sensitivity`: the sensitivity grid, :func:`sensitivity`,
  :func:`sensitivity_grid`, :func:`grid_size`, :class:`Sensitivity`, :data:`SENSITIVITY_GRID`.
"""

# ruff: noqa: F401  (a facade: every import is a re-export)

from __future__ import annotations

from tuneshift.stats.comparison import (
    MIDDLE_BINS,
    N_POSITION_BINS,
    OVERALL,
    FollowContrast,
    ModelContrast,
    PositionProfile,
    RunComparison,
    _dropped,
    _nanmean_rows,
    _statistics,
    _valid,
    compare_runs,
    compare_scored,
    example_record,
    follow_contrasts,
    model_contrasts,
    position_means,
    position_profile,
    record_controls,
)
from tuneshift.stats.matching import (
    _RESCORED,
    MATCHED_OPTIONS,
    ProtocolMismatchError,
    _dataset_sha,
    _method_label,
    _template_hint,
    as_run,
    check_same_prompts,
    checked_pair,
    protocol_mismatches,
    run_protocol,
)
from tuneshift.stats.scoring import (
    ScoredRecord,
    ScoreSettings,
    _stored_settings,
    effective_settings,
    score_matrix,
    score_rule,
    score_run,
)
from tuneshift.stats.sensitivity import (
    SENSITIVITY_GRID,
    Sensitivity,
    SensitivityRow,
    _released,
    grid_size,
    sensitivity,
    sensitivity_grid,
)

__all__ = [
    "OVERALL",
    "N_POSITION_BINS",
    "MIDDLE_BINS",
    "ScoreSettings",
    "ScoredRecord",
    "ModelContrast",
    "FollowContrast",
    "PositionProfile",
    "RunComparison",
    "score_rule",
    "score_run",
    "position_means",
    "model_contrasts",
    "follow_contrasts",
    "position_profile",
    "compare_scored",
    "compare_runs",
    "as_run",
    "checked_pair",
    "sensitivity_grid",
    "grid_size",
]
