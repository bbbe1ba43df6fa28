"""``tuneshift ablate``: the causal check of an attribution run (forward passes only, resumable).

An ablation reads an attribution run (the record ids, the user-prompt tokens and their roles,
the response tokens it attributed) and, with the same model, the same prompts and the same chat
template, measures for every record how much log-probability the *same* response loses when the
instruction (or context) span is deleted, masked or swapped (:mod:`tuneshift.methods.ablation.core`).
So the ablation and the gradient score are about exactly the same tokens, and the protocol
(own, gold or cross) is the attribution run's.

Layout (default ``RUN/ablation/``; another folder with ``--out``)::

    manifest.json       kind "ablation"; identity = the attribution run's identity + the options
                        (variants, spans, filler, seed): what must match to resume
    ablation.parquet    one row per (record, span, variant): see ``tuneshift.methods.ablation.result.SCHEMA``

Records are done in batches; after each batch the rows are rewritten atomically, so an
interrupted run loses at most one batch and the same command resumes it. A run in which no
record was ablated is never marked complete.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tuneshift.errors import InputFileError, OptionError, RunMismatchError
from tuneshift.methods.ablation.core import (
    DEFAULT_FILLER,
    SPANS,
    ablate_tokens,
    ablation_names,
    get_ablation,
    swap_donor,
)
from tuneshift.methods.ablation.result import KIND, ROWS_FILE, SCHEMA

__all__ = ["AblationOptions", "AblationPlan", "AblationSummary", "plan_ablation", "run_ablation", "default_out"]


@dataclass
class AblationOptions:
    """What to ablate (part of the ablation's identity, except ``batch_size``).

    Attributes:
        variants: registered ablations (:func:`~tuneshift.methods.ablation.core.ablation_names`).
        spans: ``instruction`` and/or ``context``.
        filler: the ``mask`` filler word (one token with a leading space).
        seed: the seed of the ``swap`` donor rule (:func:`~tuneshift.methods.ablation.core.swap_donor`).
        batch_size: sequences per forward pass (speed only).

    Raises:
        OptionError: an unknown variant or span, an empty list, a batch size below 1.
    """

    variants: tuple[str, ...] = ("delete", "mask", "swap")
    spans: tuple[str, ...] = SPANS
    filler: str = DEFAULT_FILLER
    seed: int = 0
    batch_size: int = 8

    def __post_init__(self):
        self.variants = tuple(dict.fromkeys(v.strip().lower() for v in self.variants if v.strip()))
        self.spans = tuple(dict.fromkeys(s.strip().lower() for s in self.spans if s.strip()))
        if not self.variants or any(v not in ablation_names() for v in self.variants):
            raise OptionError(
                "variants", f"must be some of {', '.join(ablation_names())}, not {','.join(self.variants) or 'nothing'}"
            )
        if not self.spans or any(s not in SPANS for s in self.spans):
            raise OptionError("spans", f"must be some of {', '.join(SPANS)}, not {','.join(self.spans) or 'nothing'}")
        if not self.filler.strip() or any(c.isspace() for c in self.filler):
            raise OptionError("filler", f"must be one word, not {self.filler!r}")
        if self.batch_size < 1:
            raise OptionError("batch_size", "must be at least 1")

    def identity(self) -> dict:
        """The options that change results."""
        d = asdict(self)
        d.pop("batch_size")
        d["variants"], d["spans"] = list(self.variants), list(self.spans)
        if "mask" not in self.variants:
            d.pop("filler")
        if "swap" not in self.variants:
            d.pop("seed")
        return d


@dataclass
class AblationPlan:
    """Everything checked before the model loads (:func:`plan_ablation`).

    Attributes:
        run: the attribution :class:`~tuneshift.storage.attribution.Run`. prompts: its
            :class:`~tuneshift.data.prompts.PromptSet`. template_text: the normalised chat
            template file's text (None: ``auto``/``none``). chat_template: ``auto``/``none``/``file:...``.
        out: the ablation directory. identity: what must match to resume. done: record ids
            already ablated or skipped. rows: the rows already written (list of dicts).
            skipped: ``{record id: reason}`` already recorded in the manifest.
        options: :class:`AblationOptions`.
    """

    run: object
    prompts: object
    template_text: str | None
    chat_template: str
    out: Path
    identity: dict
    options: AblationOptions
    done: set[str] = field(default_factory=set)
    rows: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def todo(self) -> list:
        """Attributions of the run not ablated yet."""
        return [a for a in self.run.attributions if a.record_id not in self.done]


@dataclass
class AblationSummary:
    """What :func:`run_ablation` did: ``n_records`` (in the run), ``n_done_before``,
    ``n_ablated`` (this invocation), ``n_rows``, ``skipped`` (``{record id: reason}``),
    ``seconds``, ``path``."""

    path: str
    n_records: int
    n_done_before: int
    n_ablated: int = 0
    n_rows: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def default_out(run_dir) -> Path:
    """``RUN/ablation``: the ablation lives next to the attribution it checks."""
    return Path(run_dir) / "ablation"


def _template_identity(text: str) -> str:
    return "file:sha256:" + hashlib.sha256(text.encode()).hexdigest()


def plan_ablation(
    run_dir, prompts_path=None, chat_template=None, options: AblationOptions | None = None, out=None
) -> AblationPlan:
    """Check an ablation before any model loads.

    Args:
        run_dir: the attribution run to check.
        prompts_path: its prompt file (default: the path stored in the run; it must have the
            run's sha256).
        chat_template: the Jinja file the run was made with, when it used one (checked by hash).
        options: :class:`AblationOptions` (default: all variants, both spans).
        out: the ablation directory (default :func:`default_out`).

    Returns:
        An :class:`AblationPlan`.

    Raises:
        InputFileError: unreadable run or prompts, the prompts or template differ from the run's,
            a run with nothing attributed. RunMismatchError: ``out`` holds an ablation with other settings.
    """
    import pyarrow.parquet as pq

    from tuneshift.data.encoding import normalise_template
    from tuneshift.data.prompts import read_prompts
    from tuneshift.files import check_out_dir, existing_manifest
    from tuneshift.storage.attribution import load_run

    options = options or AblationOptions()
    run = load_run(run_dir)
    if not run.attributions:
        raise InputFileError(f"{run.path} has no attributed record; attribute first, then ablate")
    ident = run.manifest.get("identity", {})
    stored_sha = ident.get("dataset", {}).get("sha256")
    from tuneshift.data.prompts import resolve_prompt_path

    path = (
        resolve_prompt_path(prompts_path)
        if prompts_path
        else Path(run.manifest.get("info", {}).get("dataset_path", ""))
    )
    if not path.is_file():
        raise InputFileError(f"the prompt file of {run.path} ({path}) is not there; give it with --prompts FILE")
    prompts = read_prompts(path)
    if stored_sha and prompts.sha256() != stored_sha:
        raise InputFileError(
            f"{path} is not the prompt file {run.path} was attributed on (sha256 differs); "
            "give the same file with --prompts"
        )
    stored_template = str(ident.get("options", {}).get("chat_template", "auto"))
    text = None
    if stored_template.startswith("file:"):
        if chat_template is None:
            raise InputFileError(
                f"{run.path} was attributed with a chat template file; give the same file with --chat-template"
            )
        try:
            text = normalise_template(Path(chat_template).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise InputFileError(f"cannot read the chat template {chat_template}: {e}") from None
        if _template_identity(text) != stored_template:
            raise InputFileError(
                f"{chat_template} is not the chat template {run.path} was attributed with (sha256 differs)"
            )
    elif chat_template is not None:
        raise InputFileError(
            f"{run.path} was attributed with chat template '{stored_template}', not a file; drop --chat-template"
        )
    out = Path(out) if out is not None else default_out(run.path)
    check_out_dir(out, kind="ablation")
    import json

    identity = json.loads(json.dumps({"attribution": ident, "ablation": options.identity()}, default=str))
    old = existing_manifest(out, identity, kind=KIND)
    plan = AblationPlan(run, prompts, text, stored_template, out, identity, options)
    if old is not None and (out / ROWS_FILE).is_file():
        plan.rows = pq.read_table(out / ROWS_FILE, schema=SCHEMA).to_pylist()
        plan.skipped = dict(old.get("skipped", {}))
        plan.done = {r["record_id"] for r in plan.rows} | set(plan.skipped)
    return plan


def _check_model(loaded, plan: AblationPlan) -> None:
    from tuneshift.pipelines.attribute_run import model_identity

    want = plan.run.manifest.get("identity", {}).get("model", {})
    have = model_identity(loaded)
    keys = [k for k in ("weights_sha256", "adapter_sha256", "dtype") if want.get(k) != have.get(k)]
    if keys:
        raise RunMismatchError(
            f"the loaded model differs from the one {plan.run.path} was attributed with "
            f"({', '.join(f'{k}: {want.get(k)} vs {have.get(k)}' for k in keys)}); load the run's model"
        )


def _write(plan: AblationPlan, status: str, summary: AblationSummary, skipped: dict[str, str]) -> None:
    import pyarrow as pa

    from tuneshift.files import atomic_write_json, atomic_write_parquet, now, package_versions

    plan.out.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(plan.out / ROWS_FILE, pa.Table.from_pylist(plan.rows, schema=SCHEMA))
    atomic_write_json(
        plan.out / "manifest.json",
        {
            "tuneshift_run": 1,
            "kind": KIND,
            "identity": plan.identity,
            "attribution_run": str(plan.run.path),
            "status": status,
            "updated": now(),
            "package_versions": package_versions(),
            "skipped": skipped,
            "counts": {
                "n_records": summary.n_records,
                "n_rows": len(plan.rows),
                "n_ablated": len({r["record_id"] for r in plan.rows}),
                "n_skipped": len(skipped),
                "seconds_last_invocation": round(summary.seconds, 1),
            },
        },
    )


def run_ablation(loaded, plan: AblationPlan, progress: bool = True, label: str | None = None) -> AblationSummary:
    """Ablate every record of ``plan.run`` not done yet, with ``loaded`` (the run's model).

    For each record: its prompt is encoded again exactly as the attribution run did (the
    user-prompt tokens must equal the stored ones, else the record is skipped with a reason), then
    for each span with tokens and each variant the response's log-probability is computed with
    the span ablated (:func:`~tuneshift.methods.ablation.core.response_logprobs`), next to the
    unablated log-probability. A span the prompt lacks gives no row, and so does a variant that
    would leave no token before the response (``delete`` of a raw prompt that is all instruction)
    or not fit the context window.

    Returns:
        An :class:`AblationSummary`.

    Raises:
        RunMismatchError: ``loaded`` is not the run's model (weights, adapter or dtype differ).
        InputFileError: nothing could be ablated (every record skipped).
    """
    import numpy as np

    from tuneshift.data.encoding import encode_prompt
    from tuneshift.methods.ablation.core import filler_token_id, response_logprobs
    from tuneshift.progress import progress_bar

    _check_model(loaded, plan)
    tok, opts = loaded.tokenizer, plan.options
    filler = filler_token_id(tok, opts.filler) if "mask" in opts.variants else None
    records = {r.id: r for r in plan.prompts.records}
    atts = {a.record_id: a for a in plan.run.attributions}
    skipped: dict[str, str] = dict(plan.skipped)  # read with the manifest by plan_ablation
    todo = plan.todo
    summary = AblationSummary(str(plan.out), len(atts), len(atts) - len(todo))
    t0 = time.time()
    encoded = {}
    # every record's encoding (donors come from the whole run, not only from the records left to do)
    for rid in atts:
        rec = records.get(rid)
        if rec is None:
            continue
        mode = "auto" if plan.template_text else plan.chat_template
        try:
            encoded[rid] = encode_prompt(tok, rec, mode, template=plan.template_text)
        except Exception as e:  # noqa: BLE001 - the attribution run encoded it; a failure is a changed tokenizer
            skipped.setdefault(rid, f"cannot encode the prompt again: {e}")
    donors = {span: {rid: records[rid].group for rid, e in encoded.items() if span in e.roles} for span in opts.spans}
    ctx = loaded.context_length
    with progress_bar(
        label or f"ablate {loaded.name}",
        total=len(atts),
        unit="records",
        completed=summary.n_done_before,
        enabled=progress,
    ) as bar:
        for start in range(0, len(todo), opts.batch_size):
            batch = todo[start : start + opts.batch_size]
            seqs, meta = [], []
            for a in batch:
                enc = encoded.get(a.record_id)
                if enc is None:
                    skipped.setdefault(a.record_id, "the record is not in the prompt file")
                    continue
                user = [enc.input_ids[p] for p in enc.user_positions]
                if user != [int(x) for x in a.prompt_token_ids] or list(enc.user_positions) != [
                    int(x) for x in a.prompt_positions
                ]:
                    skipped[a.record_id] = (
                        "the prompt encodes differently from the attribution run (tokenizer or template changed)"
                    )
                    continue
                resp = [int(x) for x in a.response_token_ids]
                if not resp:
                    skipped[a.record_id] = "no response tokens"
                    continue
                seqs.append((enc.input_ids, resp))
                meta.append((a, None, None, None, 0, 0))
                for span in opts.spans:
                    if span not in enc.roles:
                        continue
                    n_span = enc.roles.count(span)
                    for v in opts.variants:
                        donor, donor_ids = None, None
                        if get_ablation(v).needs_donor:
                            donor = swap_donor(a.record_id, records[a.record_id].group, donors[span], opts.seed)
                            if donor is None:
                                continue
                            de = encoded[donor]
                            donor_ids = [t for t, r in zip(de.input_ids, de.roles) if r == span]
                        ids = ablate_tokens(enc.input_ids, enc.roles, span, v, filler, donor_ids)
                        if not ids or len(ids) + len(resp) > ctx:
                            continue  # nothing left to condition on (a raw prompt that is all span), or too long
                        inserted = len(ids) - (
                            len(enc.input_ids) - n_span
                        )  # 0 delete, n_span mask, donor's length swap
                        seqs.append((ids, resp))
                        meta.append((a, span, v, donor, n_span, inserted))
            lps = response_logprobs(loaded.model, seqs, pad_token_id=tok.pad_token_id or 0, batch_size=opts.batch_size)
            full = {}
            for (a, span, v, donor, n_span, inserted), lp in zip(meta, lps):
                total = float(np.sum(lp))
                if span is None:
                    full[a.record_id] = total
                    continue
                n = len(lp)
                eff = full[a.record_id] - total
                plan.rows.append(
                    {
                        "record_id": a.record_id,
                        "group": a.group,
                        "span": span,
                        "variant": v,
                        "donor_id": donor,
                        "n_span_tokens": n_span,
                        "n_inserted_tokens": inserted,
                        "n_response_tokens": n,
                        "short_response": bool(a.short_response),
                        "instruction_score": float(a.instruction_score),
                        "logp_full": full[a.record_id],
                        "logp_ablated": total,
                        "effect": eff,
                        "effect_per_token": eff / n,
                    }
                )
            summary.n_ablated += len(full)
            summary.seconds = time.time() - t0
            _write(plan, "partial", summary, skipped)
            bar.advance(len(batch))
    summary.skipped = skipped
    summary.n_rows = len(plan.rows)
    summary.seconds = time.time() - t0
    if not plan.rows:
        _write(plan, "partial", summary, skipped)
        raise InputFileError(
            f"nothing was ablated from {plan.run.path}: "
            + (
                "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3])
                or "no record has an instruction or context span"
            )
        )
    _write(plan, "complete", summary, skipped)
    return summary
