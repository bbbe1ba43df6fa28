"""From a raw attribution matrix to importance density and the instruction score.

Source: Wu et al., NAACL 2024, "From Language Modeling to Instruction Following",
Sec. 3.1 (input-output attribution): the attribution of every prompt token to every
response token is normalised per response token, discretised and sparsified, and each
prompt token gets an *importance density* = L1 / Lp norm of its sparse attributions over
the response. The instruction score is the density mass on the instruction tokens,
discounted by log2(2 + number of instruction tokens) (their released analysis code).

All functions are pure numpy and work on one record at a time.

Sign policy (``ImportanceSettings.sign``, part of the run identity; decided here, see
docs/attribution.md "Negative attributions"). Gradient x input is signed, and 39-47% of the
entries of a matrix are negative on the packaged models; the paper keeps only the positive part.

* ``clip`` (default, the paper's): ``max(A, 0)``; negative evidence counts as none.
* ``abs``: ``|A|``; a token that pushes a response token *down* counts as much as one that
  pushes it up. The rest of the post-processing is unchanged, so the density and score keep
  their ranges ([0, 1] and >= 0).
* ``signed``: the sign is kept through the post-processing: each response column is scaled by
  its largest *magnitude* (values in [-1, 1]), discretised symmetrically
  (``sign(x) * ceil(L |x|)``) and sparsified by magnitude (``|v| <= b`` -> 0: the paper's
  per-token max-normalised threshold cannot be applied to signed values as it is, since every
  negative value is ``<= b``); the density is the *net* density ``sum_j S_nj / ||S_n||_p``
  divided by its largest magnitude over the prompt (in [-1, 1]); the score is the same sum over
  instruction tokens / log2(2 + n), and may be negative. Statistics that need a non-negative
  density mass are undefined for it: the position profile's middle share and middle-to-ends
  ratio are NaN for signed scores (:mod:`tuneshift.stats.compare`), and the paper's released
  matrices (already clipped and discretised by the authors) admit ``clip`` only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from tuneshift.errors import OptionError

#: the sign policies (see the module docstring); ``clip`` is the paper's and the default.
SIGN_POLICIES = ("clip", "abs", "signed")


@dataclass(frozen=True)
class ImportanceSettings:
    """Parameters of the paper's post-processing; it checks itself and holds the paper's defaults.

    The defaults are Wu et al. 2024's (b = 7, p = 4, L = 10, responses of at least 5 tokens,
    negative attributions clipped): the class constants :attr:`DEFAULT_LEVELS`,
    :attr:`DEFAULT_THRESHOLD`, :attr:`DEFAULT_NORM_P`, :attr:`DEFAULT_MIN_RESPONSE_TOKENS`, and
    :attr:`PAPER`, the settings object made of them. Every default of b, p and L in tuneshift
    is read from here.

    Attributes:
        levels: L, the number of discretisation levels: values become ``ceil(L * x)``; >= 1.
        threshold: b, values ``<= b`` after discretisation are set to 0 (sparsification); in
            ``[0, L)`` (at ``b >= L`` every value is zeroed).
        norm_p: p of the Lp norm in the density ``||S_n||_1 / ||S_n||_p``; finite and > 1.
        min_response_tokens: responses shorter than this are flagged ``short_response``
            and excluded from statistics by default; >= 0.
        sign: what happens to negative attributions: ``clip`` (the paper's), ``abs`` or
            ``signed`` (see the module docstring).

    Raises:
        OptionError: a value outside the ranges above or an unknown ``sign`` (checked in this
            order: sign, levels, threshold, norm_p, min_response_tokens; the first bad one).
    """

    DEFAULT_LEVELS: ClassVar[int] = 10
    DEFAULT_THRESHOLD: ClassVar[float] = 7
    DEFAULT_NORM_P: ClassVar[float] = 4
    DEFAULT_MIN_RESPONSE_TOKENS: ClassVar[int] = 5
    #: the paper's settings (all defaults); assigned below the class.
    PAPER: ClassVar["ImportanceSettings"]

    levels: int = DEFAULT_LEVELS
    threshold: float = DEFAULT_THRESHOLD
    norm_p: float = DEFAULT_NORM_P
    min_response_tokens: int = DEFAULT_MIN_RESPONSE_TOKENS
    sign: str = "clip"

    def __post_init__(self):
        for name in ("sign", "levels", "threshold", "norm_p", "min_response_tokens"):
            check_setting(name, getattr(self, name), levels=self.levels)

    @staticmethod
    def check_overrides(**values) -> None:
        """Check settings given one by one, each on its own (``None``: not given): the overrides
        of :class:`~tuneshift.stats.compare.ScoreSettings`, before they meet a run's own settings.
        The threshold is only checked to be finite here (the L it must stay below is the run's);
        the settings object the overrides make with the run's own is checked whole.

        Args:
            values: ``threshold``, ``norm_p``, ``levels``, ``min_response_tokens``, ``sign``
                (checked in the order given).

        Raises:
            OptionError: the first bad value (messages end ``, got X``).
        """
        for name, value in values.items():
            check_setting(name, value, override=True)

    def to_dict(self) -> dict:
        """JSON form (part of the run identity). ``sign`` is left out when it is ``clip``: runs
        made before the sign policy existed lack the key and were clipped, so they stay the
        same identity."""
        d = asdict(self)
        if d["sign"] == "clip":
            del d["sign"]
        return d


def check_setting(name: str, value, levels: int | None = None, override: bool = False) -> None:
    """The one rule of each post-processing setting (used by :class:`ImportanceSettings` and, for
    overrides, by :meth:`ImportanceSettings.check_overrides`).

    Args:
        name: ``sign``, ``levels``, ``threshold``, ``norm_p`` or ``min_response_tokens``.
        value: its value; None is not checked (an override not given).
        levels: with a whole settings object, its L: the threshold must be in ``[0, L)``.
        override: a value checked on its own (a re-scoring override): the threshold need only be
            finite, and messages end ``, got X`` (a whole object's: ``, not X``).

    Raises:
        OptionError: the value breaks the rule (one line naming the setting, its symbol and value).
    """
    if value is None:
        return
    tail = f", got {value}" if override else f", not {value}"
    if name == "sign":
        if value not in SIGN_POLICIES:
            raise OptionError("sign", f"must be one of {', '.join(SIGN_POLICIES)}, not {value!r}")
    elif name == "levels":
        if not value >= 1:
            raise OptionError("levels", "(L) must be at least 1" + tail)
    elif name == "threshold":
        if override and not math.isfinite(value):
            raise OptionError("threshold", "(b) must be a finite number" + tail)
        if not override and not 0 <= value < levels:
            raise OptionError(
                "threshold", f"(b) must be a number in [0, L = {levels}) (at b >= L every value is zeroed)" + tail
            )
    elif name == "norm_p":
        if not 1 < value < math.inf:  # NaN fails too
            raise OptionError(
                "norm_p", "(p) must be a finite number > 1" + (" (the density is L1 / Lp)" if override else "") + tail
            )
    elif name == "min_response_tokens":
        if value < 0:
            raise OptionError("min_response_tokens", "must be >= 0" + (tail if override else ""))
    else:
        raise ValueError(f"no post-processing setting {name!r}")


ImportanceSettings.PAPER = ImportanceSettings()


def sparsify(
    raw: np.ndarray,
    levels: int = ImportanceSettings.DEFAULT_LEVELS,
    threshold: float = ImportanceSettings.DEFAULT_THRESHOLD,
    sign: str = "clip",
) -> np.ndarray:
    """Clip (or take magnitudes), scale per response token, discretise and threshold a matrix.

    Args:
        raw: signed gradient x input matrix ``[n_prompt_tokens, n_response_tokens]``.
        levels: L; scaled values in [0, 1] become integers ``ceil(L * x)`` in 0..L.
        threshold: b; integers ``<= b`` (``|v| <= b`` for ``signed``) become 0.
        sign: ``clip`` (the paper's: ``max(A, 0)``), ``abs`` (``|A|``) or ``signed`` (scaled by
            the column's largest magnitude, ``sign(x) * ceil(L |x|)``; see the module docstring).

    Returns:
        ``[n_prompt_tokens, n_response_tokens]`` float array with values in {0} U (b, L]
        (``signed``: {0} U (b, L] U [-L, -b)). With ``clip`` a response column whose
        attributions are all <= 0 stays all zero.

    Raises:
        ValueError: if ``raw`` is not 2-D, or an unknown ``sign``.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2:
        raise ValueError(f"attribution matrix must be 2-D [n_prompt, n_response], got shape {raw.shape}")
    if sign not in SIGN_POLICIES:
        raise ValueError(f"sign must be one of {', '.join(SIGN_POLICIES)}, not {sign!r}")
    mag = np.clip(raw, 0.0, None) if sign == "clip" else np.abs(raw)
    col_max = mag.max(axis=0, initial=0.0) if mag.shape[0] else np.zeros(mag.shape[1])
    scale = np.where(col_max > 0, col_max, 1.0)
    scaled = mag / scale
    # round away float noise before the ceiling: 10 * (7 / 10) is 7.000000000000001 in
    # binary floating point and must discretise to 7, not 8 (this also makes the
    # post-processing idempotent on matrices that are already discretised, like the paper's)
    discrete = np.ceil(np.round(levels * scaled, 9))
    discrete[discrete <= threshold] = 0.0
    if sign == "signed":
        discrete = discrete * np.sign(raw)
    return discrete


def importance_density(
    sparse: np.ndarray, norm_p: float = ImportanceSettings.DEFAULT_NORM_P, signed: bool = False
) -> np.ndarray:
    """Importance density of each prompt token, normalised by its maximum over the prompt.

    ``d_n = ||S_n||_1 / ||S_n||_p`` over response tokens (0 for an all-zero row), then
    ``d / max_n d`` (all zeros if every row is zero). For k equal non-zero entries the
    ratio is ``k ** (1 - 1/p)``: tokens that matter to many response tokens score higher.
    With ``signed``, the net density ``sum_j S_nj / ||S_n||_p`` divided by ``max_n |d_n|``.

    Args:
        sparse: output of :func:`sparsify`, ``[n_prompt_tokens, n_response_tokens]``, >= 0
            (any sign with ``signed``).
        norm_p: p > 1.
        signed: keep the sign (the ``signed`` policy).

    Returns:
        ``[n_prompt_tokens]`` float array in [0, 1] ([-1, 1] with ``signed``).
    """
    sparse = np.asarray(sparse, dtype=np.float64)
    if sparse.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {sparse.shape}")
    l1 = sparse.sum(axis=1) if signed else np.abs(sparse).sum(axis=1)
    lp = np.power(np.power(np.abs(sparse), norm_p).sum(axis=1), 1.0 / norm_p)
    density = np.divide(l1, lp, out=np.zeros_like(l1), where=lp > 0)
    peak = np.abs(density).max(initial=0.0)
    return density / peak if peak > 0 else density


def instruction_score(density: np.ndarray, instruction_mask: np.ndarray) -> float:
    """Instruction score = sum of density over instruction tokens / log2(2 + n_instruction).

    Args:
        density: ``[n_prompt_tokens]`` from :func:`importance_density`.
        instruction_mask: ``[n_prompt_tokens]`` booleans.

    Returns:
        The score (float, >= 0; any sign for a signed density), or NaN when the prompt has no
        instruction token.
    """
    density = np.asarray(density, dtype=np.float64)
    mask = np.asarray(instruction_mask, dtype=bool)
    if mask.shape != density.shape:
        raise ValueError(f"mask shape {mask.shape} does not match density shape {density.shape}")
    n = int(mask.sum())
    if n == 0:
        return float("nan")
    return float(density[mask].sum() / np.log2(2.0 + n))


def density_and_score(
    raw: np.ndarray, instruction_mask: np.ndarray, settings: ImportanceSettings = ImportanceSettings.PAPER
) -> tuple[np.ndarray, float]:
    """Run the whole post-processing: raw ``[n_prompt, n_response]`` -> (density ``[n_prompt]``, score),
    with the settings' sign policy."""
    sparse = sparsify(raw, settings.levels, settings.threshold, settings.sign)
    density = importance_density(sparse, settings.norm_p, signed=settings.sign == "signed")
    return density, instruction_score(density, instruction_mask)


def released_density_and_score(
    matrix: np.ndarray,
    mask: np.ndarray,
    threshold: float = ImportanceSettings.DEFAULT_THRESHOLD,
    norm_p: float = ImportanceSettings.DEFAULT_NORM_P,
) -> tuple[np.ndarray, float]:
    """Density and instruction score of an already discretised matrix (the paper's released data).

    The released matrices are clipped, column-scaled and discretised to 0..10 by the authors, so
    only the threshold is applied: values ``<= b`` become 0, with no rescaling (as the released
    ``compute_density`` does; see :mod:`tuneshift.stats.paper_tables`).

    Args:
        matrix: ``[n_prompt_tokens, n_response_tokens]`` values 0..10.
        mask: ``[n_prompt_tokens]`` bool instruction mask.
        threshold: b; values ``<= b`` become 0.
        norm_p: p of the L1/Lp density.

    Returns:
        ``(density [n_prompt_tokens] in [0, 1], score)``; score 0 for an empty response, NaN
        when the mask is empty.
    """
    m = np.asarray(matrix, dtype=np.float64)
    sparse = np.where(m <= threshold, 0.0, m)
    density = importance_density(sparse, norm_p)
    return density, instruction_score(density, mask)
