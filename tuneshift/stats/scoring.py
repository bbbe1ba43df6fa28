"""Score the records of an attribution run: stored scores, or re-scored with other settings.

Part of the one comparison path (:mod:`tuneshift.stats.compare` is the facade): this module
scores, :mod:`tuneshift.stats.matching` checks that two runs are comparable,
:mod:`tuneshift.stats.comparison` computes the statistics, :mod:`tuneshift.stats.sensitivity`
walks the grid of settings.

Scores: by default each record's stored density and score (computed with the run's own b, p,
L). With :class:`ScoreSettings` the records are re-scored from the stored raw matrices: our
runs through the whole post-processing (clip, scale per response token, discretise to L
levels, threshold b, L1/Lp density), the paper's imported runs (already discretised by the
authors, manifest ``rescale: false``) through the threshold only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuneshift.errors import OptionError
from tuneshift.methods.attribution.importance import (
    ImportanceSettings,
    density_and_score,
    released_density_and_score,
)
from tuneshift.storage.attribution import Run

__all__ = ["ScoreSettings", "ScoredRecord", "score_rule", "effective_settings", "score_run", "score_matrix"]


@dataclass(frozen=True)
class ScoreSettings:
    """Post-processing parameters for re-scoring runs; ``None`` keeps the run's own value.

    Attributes:
        threshold: b (values ``<= b`` after discretisation are zeroed).
        norm_p: p of the L1/Lp density (> 1).
        levels: L, discretisation levels (our runs; the paper's matrices are already discretised).
        min_response_tokens: responses shorter than this are ``short``.
        max_response_tokens: score only the first k response tokens (the matrix's first k
            columns: what a generation limit of k would have given for greedy answers).
        sign: the sign policy of negative attributions, ``clip`` (the paper's), ``abs`` or
            ``signed`` (:mod:`tuneshift.methods.attribution.importance`). Runs imported from the
            paper's release admit ``clip`` only (their matrices were clipped by the authors).

    Raises:
        OptionError: a bad value, by the rules of
            :class:`~tuneshift.methods.attribution.importance.ImportanceSettings` (each value on
            its own: b must be finite here, and below the run's L once combined with it), or
            ``max_response_tokens`` < 1.
    """

    threshold: float | None = None
    norm_p: float | None = None
    levels: int | None = None
    min_response_tokens: int | None = None
    max_response_tokens: int | None = None
    sign: str | None = None

    def __post_init__(self):
        # the rules of b, p, L, the minimum length and the sign are ImportanceSettings'; the
        # settings these make with a run's own are checked whole there (effective_settings)
        ImportanceSettings.check_overrides(
            threshold=self.threshold,
            norm_p=self.norm_p,
            levels=self.levels,
            min_response_tokens=self.min_response_tokens,
        )
        if self.max_response_tokens is not None and self.max_response_tokens < 1:
            raise OptionError("max_response_tokens", f"must be >= 1, got {self.max_response_tokens}")
        ImportanceSettings.check_overrides(sign=self.sign)

    def sign_of(self, protocol: dict | None) -> str:
        """The sign policy scores are computed with: this setting, else the run's (``protocol``
        from :func:`run_protocol`; runs made before the policy existed were clipped)."""
        if self.sign is not None:
            return self.sign
        return str(((protocol or {}).get("importance") or {}).get("sign", "clip"))

    @property
    def as_stored(self) -> bool:
        """True when nothing is overridden (stored scores are used)."""
        return all(
            v is None
            for v in (
                self.threshold,
                self.norm_p,
                self.levels,
                self.min_response_tokens,
                self.max_response_tokens,
                self.sign,
            )
        )


@dataclass
class ScoredRecord:
    """One record of a run, scored.

    Attributes:
        id, group, rating: from the run (rating None when unrated).
        score: instruction score (NaN without instruction tokens).
        density: ``[n_prompt_tokens]`` importance density in [0, 1].
        short: the response is shorter than the minimum length.
        n_response: response tokens (after ``max_response_tokens``).
        source: the :class:`~tuneshift.methods.attribution.result.Attribution` it was scored from.
    """

    id: str
    group: str
    rating: int | None
    score: float
    density: np.ndarray
    short: bool
    n_response: int
    source: object = field(default=None, repr=False)


def _stored_settings(run: Run) -> tuple[ImportanceSettings, bool]:
    """The run's own post-processing settings and whether its raw matrices get rescaled."""
    imp = run.manifest.get("identity", {}).get("options", {}).get("importance", {}) or {}
    d = ImportanceSettings.PAPER
    s = ImportanceSettings(
        levels=int(imp.get("levels", d.levels)),
        threshold=float(imp.get("threshold", d.threshold)),
        norm_p=float(imp.get("norm_p", d.norm_p)),
        min_response_tokens=int(imp.get("min_response_tokens", d.min_response_tokens)),
        sign=str(imp.get("sign", "clip")),
    )  # runs made before the sign policy: clipped
    return s, bool(imp.get("rescale", True))


def score_rule(run: Run) -> str:
    """``"sparsify"`` (our runs: the whole post-processing) or ``"released"`` (threshold only:
    the paper's imported matrices are already discretised, manifest ``rescale: false``)."""
    return "sparsify" if _stored_settings(run)[1] else "released"


def effective_settings(run: Run, settings: ScoreSettings | None = None) -> tuple[ImportanceSettings, bool]:
    """The b, p, L, minimum length and sign policy a run is scored with (its own, overridden by
    ``settings``), and whether its matrices get the whole post-processing (False: the paper's
    released ones).

    Raises:
        OptionError: a sign policy other than ``clip`` for the paper's released matrices (their
            negative attributions were clipped away by the authors before release); settings that
            are bad together (:class:`ImportanceSettings`: b outside ``[0, L)``).
    """
    settings = settings or ScoreSettings()
    stored, rescale = _stored_settings(run)
    eff = ImportanceSettings(
        levels=stored.levels if settings.levels is None else int(settings.levels),
        threshold=stored.threshold if settings.threshold is None else float(settings.threshold),
        norm_p=stored.norm_p if settings.norm_p is None else float(settings.norm_p),
        min_response_tokens=stored.min_response_tokens
        if settings.min_response_tokens is None
        else int(settings.min_response_tokens),
        sign=stored.sign if settings.sign is None else settings.sign,
    )
    if not rescale and eff.sign != "clip":
        raise OptionError(
            "sign",
            f"{eff.sign} does not apply to {run.path}: the paper's released matrices were clipped "
            "at 0 and discretised by the authors, no negative attribution is left (use clip)",
        )
    return eff, rescale


def score_run(run: Run, settings: ScoreSettings | None = None) -> list[ScoredRecord]:
    """Score every attributed record of ``run``.

    Args:
        run: an attribution run (ours or the paper's imported one).
        settings: overrides of b, p, L and the minimum response length; None or all-None uses
            the stored densities and scores.

    Returns:
        One :class:`ScoredRecord` per attribution, in run order.
    """
    settings = settings or ScoreSettings()
    if settings.as_stored:
        return [
            ScoredRecord(
                a.record_id,
                a.group,
                a.rating,
                float(a.instruction_score),
                np.asarray(a.density),
                bool(a.short_response),
                int(a.raw.shape[1]),
                a,
            )
            for a in run.attributions
        ]
    eff, rescale = effective_settings(run, settings)
    out = []
    k = settings.max_response_tokens
    for a in run.attributions:
        raw = a.raw if k is None else a.raw[:, :k]
        density, score = score_matrix(raw, a.instruction_mask, eff, rescale)
        n = int(raw.shape[1])
        recheck = settings.min_response_tokens is not None or k is not None
        short = n < eff.min_response_tokens if recheck else bool(a.short_response)
        out.append(ScoredRecord(a.record_id, a.group, a.rating, float(score), density, short, n, a))
    return out


def score_matrix(raw: np.ndarray, mask: np.ndarray, settings: ImportanceSettings, rescale: bool = True):
    """Density ``[n_prompt_tokens]`` and instruction score of one raw matrix
    ``[n_prompt_tokens, n_response_tokens]``: the whole post-processing (``rescale``) or the
    threshold-only rule of the paper's released matrices."""
    if rescale:
        return density_and_score(raw, mask, settings)
    return released_density_and_score(raw, mask, settings.threshold, settings.norm_p)
