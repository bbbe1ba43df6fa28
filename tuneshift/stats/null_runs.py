"""Checks that a run is the random-update null of a (base, tuned) pair of weight-based runs.

A null run is a ``tuneshift heads`` / ``tuneshift concepts`` run of the base model plus a random
update of the tuned model's per-tensor Frobenius norm
(:mod:`tuneshift.models.random_update`, ``--random-update-like``). Its manifest's
``identity.model.random_update`` names the base (``of``) and the tuned model (``like``); every
other identity entry (method, vocabulary, vectors, options...) must equal the base run's.
"""

from __future__ import annotations

from pathlib import Path

from tuneshift.errors import InputFileError, RunMismatchError

__all__ = ["check_null_run", "null_seed"]


def check_null_run(base, tuned, null, kind: str, legacy: dict | None = None) -> None:
    """Refuse ``null`` unless it is a random update of ``base``'s model, like ``tuned``'s, made
    with the same method settings as ``base``.

    Args:
        base, tuned, null: loaded run directories (``.path``, ``.manifest``).
        kind: ``heads`` or ``concepts`` (for the messages).
        legacy: identity entries older runs lack, with their value (e.g. ``{"rms_factor": "none"}``).

    Raises:
        InputFileError: ``null`` is the base or tuned directory.
        RunMismatchError: not a random-update run; a random update of another model, or like
            another tuned model; other method settings (the first difference is named).
    """
    for other in (base, tuned):
        if Path(null.path).resolve() == Path(other.path).resolve():
            raise InputFileError(
                f"{null.path} is given as the null and as a compared run; the null is a run of the "
                f"base + a random update (`tuneshift {kind} --random-update-like TUNED`)"
            )
    ident = lambda r: {**(legacy or {}), **r.manifest.get("identity", {})}  # noqa: E731
    ib, it, iz = ident(base), ident(tuned), ident(null)
    ru = iz.get("model", {}).get("random_update")
    if not isinstance(ru, dict):
        raise RunMismatchError(
            f"{null.path} is not a random-update run; make one with `tuneshift {kind} --model BASE "
            f"--random-update-like TUNED --out DIR` and the settings of {base.path}"
        )
    if ru.get("of") != ib.get("model"):
        raise RunMismatchError(
            f"{null.path} is a random update of {ru.get('of', {}).get('spec', '?')}, not of the model "
            f"of {base.path} ({ib.get('model', {}).get('spec', '?')}, or other weights)"
        )
    if ru.get("like") != it.get("model"):
        raise RunMismatchError(
            f"{null.path} copies the update size of {ru.get('like', {}).get('spec', '?')}, not of the "
            f"model of {tuned.path} ({it.get('model', {}).get('spec', '?')}, or other weights)"
        )
    for key in sorted((set(ib) | set(iz)) - {"model"}):
        if ib.get(key) != iz.get(key):
            raise RunMismatchError(
                f"{null.path} was made with other {kind} settings than {base.path} ({key}: "
                f"{iz.get(key)} vs {ib.get(key)}); run the null with the same options"
            )


def null_seed(run) -> int | None:
    """The seed of a null run's random update (None when it records none)."""
    ru = run.manifest.get("identity", {}).get("model", {}).get("random_update", {})
    seed = ru.get("seed") if isinstance(ru, dict) else None
    return int(seed) if seed is not None else None
