"""Matched-run checks: refuse two attribution runs that cannot be compared record by record.

Part of the one comparison path (:mod:`tuneshift.stats.compare` is the facade). Two runs must
share record ids, the prompt file and the attribution method (:func:`check_same_prompts`), and,
unless the mismatch is allowed, the protocol (:func:`run_protocol`, :func:`protocol_mismatches`:
response protocol, template policy, prompt form, join, generation limit, b/p/L, sign policy).
"""

from __future__ import annotations

from pathlib import Path

from tuneshift.errors import InputFileError
from tuneshift.stats.scoring import ScoreSettings
from tuneshift.storage.attribution import Run, load_run

__all__ = [
    "as_run",
    "checked_pair",
    "check_same_prompts",
    "MATCHED_OPTIONS",
    "run_protocol",
    "ProtocolMismatchError",
    "protocol_mismatches",
]


def as_run(x) -> Run:
    """A :class:`Run`, or the run directory ``x`` loaded (:func:`~tuneshift.storage.attribution.load_run`)."""
    return x if isinstance(x, Run) else load_run(x)


def checked_pair(
    base, tuned, allow_mismatch: bool = False, settings: ScoreSettings | None = None
) -> tuple[Run, Run, bool, list[str]]:
    """Load two runs and refuse a pair that cannot be compared record by record.

    ``settings`` (the re-scoring of :func:`compare_runs`): a post-processing value it sets for
    both runs (b, p, L, minimum length, sign policy) is not a difference between them.

    Returns:
        ``(base run, tuned run, same prompt file, notes)``; the notes name incomplete runs and,
        with ``allow_mismatch``, every protocol difference.

    Raises:
        InputFileError: the same run twice, runs that share no record id, other prompt files or
            methods (:func:`check_same_prompts`); ProtocolMismatchError: other protocols
            (:func:`protocol_mismatches`) without ``allow_mismatch``.
    """
    b, t = as_run(base), as_run(tuned)
    if Path(b.path).resolve() == Path(t.path).resolve():
        raise InputFileError(f"{b.path} is given as both runs; compare the base model's run with the tuned model's")
    same = check_same_prompts(b, t)
    notes = [
        f"run {r.path} is not complete (status {r.manifest.get('status', '?')}); statistics cover its finished records only"
        for r in (b, t)
        if r.manifest.get("status") != "complete"
    ]
    diffs = protocol_mismatches(b, t, settings)
    if diffs and not allow_mismatch:
        raise ProtocolMismatchError(
            f"runs {b.path} and {t.path} were not made under the same protocol ({'; '.join(diffs)}); their scores "
            "are not comparable record by record: make both runs with the same settings, or allow the mismatch "
            "(--allow-mismatch; allow_mismatch=True in Python) to compare them anyway (with a warning)"
            + _template_hint(b, t)
        )
    return b, t, same, notes + [f"the runs differ in {d}" for d in diffs]


def _template_hint(b: Run, t: Run) -> str:
    """A note when two runs' template files differ by hash: older runs hashed the raw file."""
    ct = [(r.manifest.get("identity", {}).get("options", {}) or {}).get("chat_template") for r in (b, t)]
    if all(isinstance(c, str) and c.startswith("file:sha256:") for c in ct) and ct[0] != ct[1]:
        return (
            "; note: template files are hashed after normalising line endings and trailing whitespace "
            "(docs/attribution.md); a run made by an earlier tuneshift from a file with a final newline "
            "(e.g. written by print(tokenizer.chat_template)) has another hash: re-run it with the file "
            "`tuneshift template MODEL` writes"
        )
    return ""


def _dataset_sha(run: Run) -> str | None:
    return run.manifest.get("identity", {}).get("dataset", {}).get("sha256")


def _method_label(m: dict) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in sorted((m.get("options") or {}).items()))
    return f"{m.get('name')}/{m.get('target')}" + (f" ({opts})" if opts else "")


def check_same_prompts(b: Run, t: Run) -> bool:
    """Refuse two runs that cannot be compared record by record.

    Returns:
        True when both manifests name the same prompt file (sha256).

    Raises:
        InputFileError: the runs share no record id, were made from different prompt files, or
            with different attribution methods, targets or method options (runs that predate
            the method registry count as gradient_x_input/probability).
    """
    if not {a.record_id for a in b.attributions} & {a.record_id for a in t.attributions}:
        raise InputFileError(f"runs {b.path} and {t.path} share no record id; compare runs over the same prompts")
    ds_b, ds_t = _dataset_sha(b), _dataset_sha(t)
    if ds_b and ds_t and ds_b != ds_t:
        raise InputFileError(
            f"runs {b.path} and {t.path} were made from different prompt files (sha256 {ds_b[:12]} vs {ds_t[:12]}); "
            "records with the same id may be different prompts: compare runs over the same prompt file"
        )
    if b.method != t.method:
        raise InputFileError(
            f"runs {b.path} and {t.path} were made with different attribution methods "
            f"({_method_label(b.method)} vs {_method_label(t.method)}); their scores do not measure the same thing: "
            "attribute both models with the same method, target and method options"
        )
    return bool(ds_b and ds_b == ds_t)


#: identity options that must match for two runs to be compared (batch size may differ).
MATCHED_OPTIONS = ("responses", "chat_template", "join", "max_new_tokens", "importance", "span_rules")


#: ScoreSettings fields that override a run's stored importance setting of the same name.
_RESCORED = ("threshold", "norm_p", "levels", "min_response_tokens", "sign")


def run_protocol(run: Run, settings: ScoreSettings | None = None) -> dict:
    """What two compared runs must share: response protocol, template policy, join, generation
    limit, b/p/L and sign policy (``identity.options``), the attribution method, and the prompt
    form actually used (``template`` when any prompt was wrapped in a chat template, else
    ``raw``). The importance settings that ``settings`` re-scores both runs with are left out
    (they no longer differ); a run stored without a sign policy reads as ``clip`` (the default,
    and the only policy before the option existed)."""
    from tuneshift.methods.attribution.api import PROTOCOL_OF

    opts = run.manifest.get("identity", {}).get("options", {}) or {}
    out = {k: opts.get(k) for k in MATCHED_OPTIONS}
    if isinstance(out.get("importance"), dict):
        imp = {"sign": "clip", **out["importance"]}
        for k in _RESCORED:
            if settings is not None and getattr(settings, k) is not None:
                imp.pop(k, None)
        out["importance"] = imp
    used = any(a.n_input_tokens > len(a.prompt_positions) + 1 for a in run.attributions)
    out["prompt_form"] = "template" if used else "raw"
    if out["join"] is None and out["responses"] in ("given", "cross"):
        out["join"] = "none"  # runs made before the join was an option
    if out["responses"] == "generate" or used:
        out["join"] = "not used"  # no forced response, or the template's generation prompt joins
    if out["responses"] in ("given", "cross"):
        out["max_new_tokens"] = "not used"  # a forced response ignores the generation limit
    out["responses"] = PROTOCOL_OF.get(out["responses"], out["responses"])
    if out["responses"] == "cross":
        out["responses_from"] = (opts.get("responses_from") or {}).get("model")
    out["method"] = run.method
    return out


class ProtocolMismatchError(InputFileError):
    """Two runs compared were made under different protocols (``allow_mismatch`` compares them)."""


def protocol_mismatches(b: Run, t: Run, settings: ScoreSettings | None = None) -> list[str]:
    """Settings in which two runs differ (``key: base X, tuned Y``), from :func:`run_protocol`
    (``settings``: the re-scoring both runs get, whose values are not differences)."""
    pb, pt = run_protocol(b, settings), run_protocol(t, settings)
    # a cross run forced to the other run's own answers is its natural partner: same response tokens
    for x, y, other in ((pb, pt, t), (pt, pb, b)):
        if (
            x["responses"] == "cross"
            and y["responses"] == "own"
            and x.get("responses_from") == other.manifest.get("identity", {}).get("model")
        ):
            for k in ("responses", "responses_from", "max_new_tokens", "join"):
                x.pop(k, None)
                y.pop(k, None)
    keys = [k for k in pb if k in pt] + [k for k in pt if k not in pb]
    return [f"{k}: base {pb.get(k)!r}, tuned {pt.get(k)!r}" for k in keys if pb.get(k) != pt.get(k)]
