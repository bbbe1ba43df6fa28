"""Run attribution over a prompt set into a run directory, with progress and resume."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tuneshift.data.prompts import PromptSet
from tuneshift.data.spans import SPAN_RULES
from tuneshift.methods.attribution.api import AttributionOptions, SkippedRecord, attribute_batch
from tuneshift.storage.attribution import LEGACY_METHOD_IDENTITY, RunWriter


@dataclass
class RunSummary:
    """What an attribution run did.

    Attributes:
        path: the run directory.
        n_records: records in the (limited) prompt set.
        n_done_before: records already finished when the run started (resume).
        n_attributed: records attributed by this invocation.
        n_skipped: records that could not be attributed (reasons in ``skipped.json``).
        n_truncated: responses cut to fit the context window.
        n_short: responses shorter than the minimum length (kept, flagged).
        n_unlocated_spans: instruction/context spans not found in their prompt.
        input_problems: problems reading the prompt file (skipped lines).
        seconds: wall time of this invocation.
        status: the manifest status at the end: ``complete``, or ``empty`` when no record of the
            run (over every invocation) was attributed.
        skipped: ``{record id: reason}`` of the records skipped by this invocation (the
            ``n_skipped`` ones, in the order they were met; also in ``skipped.json``).
    """

    path: str
    n_records: int
    n_done_before: int = 0
    n_attributed: int = 0
    n_skipped: int = 0
    n_truncated: int = 0
    n_short: int = 0
    n_unlocated_spans: int = 0
    input_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "running"
    skipped: dict[str, str] = field(default_factory=dict)


#: how many skipped records are named on stderr while a run goes (then only in the summary's
#: count and ``skipped.json``): a 10k-record run with many bad records stays readable.
SKIPPED_NAMED = 5


def _ratings_sha(prompts: PromptSet) -> str | None:
    """sha256 of the ratings file joined into the prompts (part of a run's identity), or None."""
    path = getattr(prompts, "ratings_path", None)
    if not path:
        return None
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def model_identity(loaded) -> dict:
    """The part of a model's description that must match to resume a run."""
    return _model_identity(loaded.spec, loaded.dtype)


def _model_identity(s, dtype: str) -> dict:
    return {
        "spec": s.spec,
        "kind": s.kind,
        "weights_sha256": s.weights_sha256,
        "revision": s.revision,
        "adapter": s.adapter,
        "adapter_sha256": s.adapter_sha256,
        "dtype": dtype,
    }


def _source_identity(run) -> dict:
    """What the ``cross`` identity records of the run whose answers are forced (from its manifest)."""
    ident = run.manifest.get("identity", {})
    return {
        "model": ident.get("model"),
        "dataset": ident.get("dataset"),
        "options": ident.get("options"),
        "method": run.method,
    }


def planned_identity(
    spec: str, prompts: PromptSet, options: AttributionOptions, adapter: str | None = None, dtype: str = "float32"
) -> dict | None:
    """The :func:`run_identity` a run of ``spec`` would have, computed without loading the model
    (:func:`~tuneshift.models.loading.resolve_without_loading`), or None when that cannot be known
    before a load (a hub model). JSON-normalised, as stored in a manifest."""
    import json

    from tuneshift.models.loading import resolve_without_loading
    from tuneshift.storage.attribution import load_run

    resolved = resolve_without_loading(spec, adapter)
    if resolved is None:
        return None
    source = _source_identity(load_run(options.responses_from)) if options.responses == "cross" else None
    opts = _identity_options(options, source)
    identity = {
        "model": _model_identity(resolved, dtype),
        "dataset": {"sha256": prompts.sha256(), "format": prompts.format, "ratings_sha256": _ratings_sha(prompts)},
        "options": opts,
        "method": options.method_identity(),
    }
    return json.loads(json.dumps(identity, default=str))


def finished_run(out_dir, identity, prompts: PromptSet) -> RunSummary | None:
    """The summary of a run directory that needs no more work, or None.

    A run needs no more work when its manifest says ``complete``, every record of ``prompts`` is
    written (a run with skipped records is retried on a resume, which needs the model) and its
    identity equals ``identity`` (:func:`planned_identity`). Nothing is written.

    Args:
        out_dir: the run directory. prompts: the (limited) prompt set.
        identity: the planned identity (dict or None), or a callable returning it, called only
            when the directory holds a complete run (hashing a large model's weights is then
            the only cost). A callable that raises :class:`~tuneshift.errors.TuneshiftError`
            (e.g. a model path that exists only on a cluster's workers) counts as None.
    """
    import json
    from pathlib import Path

    from tuneshift.errors import TuneshiftError
    from tuneshift.files import MANIFEST
    from tuneshift.storage.attribution import done_ids

    mf = Path(out_dir) / MANIFEST
    if identity is None or not mf.is_file():
        return None
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("status") != "complete":
        return None
    done = done_ids(out_dir)
    if any(r.id not in done for r in prompts.records):
        return None
    if callable(identity):
        try:
            identity = identity()
        except TuneshiftError:
            return None
    if identity is None or manifest.get("identity") != identity:
        return None
    c = manifest.get("counts", {})
    return RunSummary(
        path=str(Path(out_dir)),
        n_records=len(prompts.records),
        n_done_before=len(prompts.records),
        n_truncated=int(c.get("n_truncated", 0)),
        n_short=int(c.get("n_short", 0)),
        n_unlocated_spans=int(c.get("n_unlocated_spans", 0)),
        input_problems=list(prompts.problems),
        status="complete",
    )


def cross_responses(loaded, source, join: str = "none") -> tuple[dict[str, list[int]], dict]:
    """The answers of another run, as response token ids of ``loaded`` (the ``cross`` protocol).

    Where the source run's token strings are what ``loaded``'s tokenizer gives for the same ids
    (the same vocabulary: a model and its tuned counterpart), the ids are reused exactly, so both
    models are scored on identical response tokens; otherwise the answer text is tokenized again
    (with ``join``).

    Args:
        loaded: the model to attribute. source: the run directory (or :class:`Run`) whose answers
            are forced. join: see :func:`~tuneshift.data.encoding.encode_response`.

    Returns:
        ``({record id: token ids}, identity of the source run)``.

    Raises:
        InputFileError: the source is not a readable run.
    """
    from tuneshift.data.encoding import encode_response
    from tuneshift.storage.attribution import Run, load_run

    run = source if isinstance(source, Run) else load_run(source)
    tok = loaded.tokenizer
    out = {}
    for a in run.attributions:
        ids = [int(x) for x in a.response_token_ids]
        same = (
            ids and min(ids) >= 0 and max(ids) < len(tok) and tok.convert_ids_to_tokens(ids) == list(a.response_tokens)
        )
        out[a.record_id] = ids if same else encode_response(tok, a.response_text, join)
    return out, _source_identity(run)


def check_resume_before_load(
    out_dir,
    spec: str,
    prompts: PromptSet,
    options: AttributionOptions,
    adapter: str | None = None,
    dtype: str = "float32",
) -> None:
    """Refuse, before the model loads, to resume a run directory made with other settings.

    The planned identity (:func:`planned_identity`, content hashes without a load) is compared
    with the directory's manifest as :class:`~tuneshift.storage.attribution.RunWriter` does after the
    load, except for the model entry, which the writer still checks after the load (a model the
    driver cannot resolve without loading, e.g. a hub id, is checked only then). Nothing is
    written. A directory without a manifest, or an identity that cannot be planned, passes.

    Args:
        out_dir: the run directory. spec, adapter, dtype: as :func:`~tuneshift.models.loading.load_model`.
        prompts: the (limited) prompt set. options: the run's :class:`AttributionOptions`.

    Raises:
        RunMismatchError: the directory holds a run with other settings (the keys are named).
        InputFileError: its manifest is not valid JSON.
    """
    import json
    from pathlib import Path

    from tuneshift.errors import TuneshiftError
    from tuneshift.files import MANIFEST, existing_manifest

    mf = Path(out_dir) / MANIFEST
    if not mf.is_file():
        return
    try:
        planned = planned_identity(spec, prompts, options, adapter, dtype)
        old = json.loads(mf.read_text()).get("identity", {})
    except (TuneshiftError, ValueError, OSError):
        return  # the writer reports it after the load, as before
    if planned is None:
        return
    existing_manifest(Path(out_dir), {**planned, "model": old.get("model")}, legacy={"method": LEGACY_METHOD_IDENTITY})


def check_before_load(prompts: PromptSet, options: AttributionOptions) -> list[str]:
    """What can be refused about a run before its model loads (seconds, not a minute's load).

    * ``cross``: ``options.responses_from`` must be a readable attribution run made on the same
      prompt file (the ``dataset.sha256`` of its manifest, as ``compare`` checks) and hold an
      answer for at least one record of ``prompts``;
    * ``given`` (gold): at least one record must have a non-empty ``response`` field (records
      without one are skipped, as before: a warning names how many);
    * a ``chat_template`` file must render on the first record (Jinja, with empty BOS/EOS
      strings: :func:`~tuneshift.data.encoding.check_template_renders`);
    * generation with ``max_new_tokens`` below ``min_response_tokens``: every answer would be
      flagged short and left out of the statistics; a warning (not an error: quick smoke runs
      with a few tokens are legitimate, and their attributions are still shown).

    Args:
        prompts: the (limited) prompt set. options: the run's :class:`AttributionOptions`.

    Returns:
        Warning messages (str, one line each) to show before the load.

    Raises:
        InputFileError: the ``responses_from`` folder is not a run, or a gold file has no response.
        RunMismatchError: the ``responses_from`` run was made on another prompt file, or has no
            answer for any of these records.
        TuneshiftError: the template file does not render.
    """
    from tuneshift.errors import InputFileError, RunMismatchError

    warns: list[str] = []
    records = prompts.records
    if options.responses == "cross":
        from tuneshift.files import read_manifest
        from tuneshift.storage.attribution import done_ids

        src, manifest = read_manifest(options.responses_from, "run")
        if manifest.get("kind", "attribution") != "attribution":
            raise InputFileError(f"responses_from {src} is a {manifest.get('kind')} run, not an attribution run")
        theirs = manifest.get("identity", {}).get("dataset", {}).get("sha256")
        ours = prompts.sha256()
        if theirs and theirs != ours:
            raise RunMismatchError(
                f"responses_from {src} was made from another prompt file (sha256 {theirs[:12]}, "
                f"{prompts.path} is {ours[:12]}): its answers are for other records"
            )
        answered = done_ids(src)
        if not any(r.id in answered for r in records):
            raise RunMismatchError(
                f"responses_from {src} has no answer for any of the {len(records)} records of "
                f"{prompts.path} ({len(answered)} records attributed there)"
            )
    if options.responses == "given":
        missing = [r.id for r in records if r.response is None or not str(r.response).strip()]
        if len(missing) == len(records):
            raise InputFileError(
                f"no record of {prompts.path} has a 'response' field: the gold protocol forces "
                "each record's response (the own protocol generates one)"
            )
        if missing:
            warns.append(
                f"{len(missing)} of {len(records)} records have no 'response' field and will be skipped "
                f"(e.g. {', '.join(missing[:3])})"
            )
    if options.template_text is not None and records:
        from tuneshift.data.encoding import check_template_renders

        check_template_renders(options.template_text, records[0].prompt, options.chat_template)
    min_tokens = options.importance.min_response_tokens
    if options.responses == "generate" and options.max_new_tokens < min_tokens:
        warns.append(
            f"max_new_tokens {options.max_new_tokens} is below min_response_tokens {min_tokens}: every "
            "generated answer will be flagged short and left out of compare's statistics"
        )
    return warns


def run_identity(
    loaded, prompts: PromptSet, options: AttributionOptions, source: dict | None = None
) -> tuple[dict, dict]:
    """What must match to resume a run, and the run's descriptive info.

    The identity is the model, the dataset, the options except the execution settings
    (``batch_size``, ``positions_per_backward``), the version of the instruction-span rules
    (``options["span_rules"]`` = :data:`tuneshift.data.spans.SPAN_RULES`; a run made before it
    existed lacks it and is not resumed with the new rules), and ``identity["method"] = {"name", "target",
    "options"}``. With ``cross``, ``source`` is the identity of the run whose answers are forced.

    Returns:
        ``(identity, info)``, both JSON-ready dicts.
    """
    opts = _identity_options(options, source)
    identity = {
        "model": model_identity(loaded),
        "dataset": {"sha256": prompts.sha256(), "format": prompts.format, "ratings_sha256": _ratings_sha(prompts)},
        "options": opts,
        "method": options.method_identity(),
    }
    info = {
        "model": loaded.describe(),
        "dataset_path": str(prompts.path),
        "batch_size": options.batch_size,
        "method_options": dict(options.method_options),
    }
    return identity, info


def _identity_options(options: AttributionOptions, source: dict | None) -> dict:
    opts = options.to_dict()
    for key in ("batch_size", "positions_per_backward"):  # do not change results; free to change on resume
        opts.pop(key, None)
    opts["span_rules"] = SPAN_RULES  # the instruction-span rules (data.spans): a change re-scores records
    if source is not None:
        opts["responses_from"] = source  # what made the forced answers (not where it lies)
    for key in ("method", "target", "method_options"):  # recorded under identity["method"]
        opts.pop(key, None)
    return opts


def open_run(loaded, prompts: PromptSet, out_dir, options: AttributionOptions, source: dict | None = None) -> RunWriter:
    """Create or resume the run directory of ``prompts`` (:func:`run_identity`), recording the
    prompt file's skipped lines.

    Raises:
        InputFileError / RunMismatchError: see :class:`~tuneshift.storage.attribution.RunWriter`.
    """
    return open_run_dir(out_dir, *run_identity(loaded, prompts, options, source), prompts)


def open_run_dir(out_dir, identity: dict, info: dict, prompts: PromptSet) -> RunWriter:
    """Create or resume a run directory with a known identity (a Ray driver gets it from a
    worker), recording the prompt file's skipped lines.

    Raises:
        InputFileError / RunMismatchError: see :class:`~tuneshift.storage.attribution.RunWriter`.
    """
    writer = RunWriter(out_dir, identity, info, legacy_identity={"method": LEGACY_METHOD_IDENTITY})
    for problem in prompts.problems:  # skipped input lines are recorded with the run
        where, _, why = problem.partition(": ")
        writer.skip(where, why or problem)
    return writer


def attribute_into(
    loaded,
    records,
    options: AttributionOptions,
    write,
    forced=None,
    on_token=None,
    on_batch=None,
    on_warning=None,
    skip=None,
) -> dict:
    """Attribute ``records`` in batches of ``options.batch_size``; each finished batch goes to
    ``write(results) -> rows written`` at once (a Parquet part), so at most one batch is lost.

    Args:
        loaded: the model. records: prompt records to attribute. write: see above.
        forced: ``{record id: response ids}`` for ``cross``. on_token: ``(j, R_max)`` per
            response position. on_batch: ``(n_records_done_in_this_call, batch_size)`` after
            each batch. on_warning: called with each warning message of a batch. skip:
            ``(record id, reason)`` for each record that cannot be attributed, at once.

    Returns:
        ``{"n_attributed", "n_truncated", "n_short", "n_unlocated_spans", "skipped": {id: reason}}``.
    """
    import warnings

    counts = {"n_attributed": 0, "n_truncated": 0, "n_short": 0, "n_unlocated_spans": 0, "skipped": {}}
    for start in range(0, len(records), options.batch_size):
        batch = records[start : start + options.batch_size]
        with warnings.catch_warnings(record=True) as caught:  # e.g. unlocated spans: one clean line each
            warnings.simplefilter("always")
            results = attribute_batch(loaded, batch, options, on_token=on_token, forced=forced)
        if on_warning is not None:
            for w in caught:
                on_warning(str(w.message))
        good = []
        for res in results:
            if isinstance(res, SkippedRecord):
                counts["skipped"][res.record_id] = res.reason
                if skip is not None:
                    skip(res.record_id, res.reason)
            else:
                good.append(res)
                counts["n_truncated"] += int(res.truncated)
                counts["n_short"] += int(res.short_response)
                counts["n_unlocated_spans"] += len(res.unlocated_spans)
        counts["n_attributed"] += write(good)
        if on_batch is not None:
            on_batch(start + len(batch), len(batch))
    return counts


def skipped_line(record_id: str, reason: str) -> str:
    """The one stderr line naming a skipped record: ``skipped record ID: reason`` (str)."""
    return f"skipped {reason}" if reason.startswith(f"record {record_id}:") else f"skipped record {record_id}: {reason}"


def finish_run(writer: RunWriter, summary: RunSummary, n_input_problems: int) -> None:
    """Mark the run finished with counts over every invocation (resume): status ``complete``,
    or ``empty`` when no record of the run was attributed (every record skipped; ``summary.status``
    says which)."""
    totals = writer.totals()  # over the whole run, not only this invocation (resume)
    summary.status = "complete" if totals["n_attributed"] else "empty"
    writer.finish(
        summary.status,
        n_records=summary.n_records,
        n_skipped=summary.n_skipped,  # skipped records are retried on every resume
        n_input_problems=n_input_problems,
        seconds_last_invocation=round(summary.seconds, 1),
        **totals,
    )


def run_attribution(
    loaded,
    prompts: PromptSet,
    out_dir,
    options: AttributionOptions,
    progress: bool = True,
    label: str | None = None,
) -> RunSummary:
    """Attribute every record of ``prompts`` with ``loaded`` into ``out_dir`` (resumable).

    Records are processed in batches of ``options.batch_size``; each finished batch is
    written at once as a Parquet part, so an interrupted run loses at most one batch.

    The run identity (what must match to resume) is :func:`run_identity`. A run directory
    written before methods and targets existed has no ``method`` entry and counts as
    ``gradient_x_input`` / ``probability``. :func:`tuneshift.pipelines.ray_run.run_attribution_ray`
    is the same run sharded over Ray workers.

    Returns:
        A :class:`RunSummary`.

    Raises:
        InputFileError / RunMismatchError: see :class:`~tuneshift.storage.attribution.RunWriter`.
    """
    forced, source = (None, None)
    if options.responses == "cross":
        forced, source = cross_responses(loaded, options.responses_from, options.join)
    writer = open_run(loaded, prompts, out_dir, options, source)
    done = writer.done_ids()
    todo = [r for r in prompts.records if r.id not in done]
    summary = RunSummary(
        path=str(writer.path),
        n_records=len(prompts.records),
        n_done_before=len(prompts.records) - len(todo),
        input_problems=list(prompts.problems),
    )
    t0 = time.time()
    from tuneshift.progress import progress_bar

    name = label or loaded.name
    with progress_bar(
        name,
        total=len(prompts.records),
        unit="records",
        fields={"detail": ""},
        completed=summary.n_done_before,
        enabled=progress,
    ) as bar:
        console = bar.console

        def on_batch(n_done, n_batch):
            bar.advance(n_batch, detail="")  # outside a terminal: rate-limited plain lines (tuneshift.progress)
            if n_done < len(todo):
                nxt = min(options.batch_size, len(todo) - n_done)
                bar.update(detail=f"generating ({nxt} prompts)" if options.responses == "generate" else "")

        def skip_and_say(rid, why):  # a skipped record is named on stderr, as the README promises
            writer.skip(rid, why)
            summary.skipped[rid] = why
            if progress and len(summary.skipped) <= SKIPPED_NAMED:
                console.print(skipped_line(rid, why), markup=False, highlight=False)

        if todo and options.responses == "generate":
            bar.update(detail=f"generating ({min(options.batch_size, len(todo))} prompts)")
        counts = attribute_into(
            loaded,
            todo,
            options,
            writer.add,
            forced=forced,
            on_token=lambda j, r_max: bar.update(detail=f"response token {j + 1}/{r_max}"),
            on_batch=on_batch,
            on_warning=(lambda m: console.print(f"warning: {m}", markup=False, highlight=False)) if progress else None,
            skip=skip_and_say,
        )
    summary.skipped = {**summary.skipped, **counts.pop("skipped")}
    summary.n_skipped = len(summary.skipped)
    for k, v in counts.items():
        setattr(summary, k, v)
    summary.seconds = time.time() - t0
    finish_run(writer, summary, len(prompts.problems))
    return summary
