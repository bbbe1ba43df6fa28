"""Attribution of records: encode -> respond (generate or given) -> attribution method -> density.

This is the orchestration of method A of Wu et al. 2024 (Sec. 3.1) for one model; the
numerical core is a registered attribution method (:mod:`.methods`; default
``gradient_x_input`` of :mod:`.gradient`) explaining a registered target (:mod:`.targets`;
default ``probability``), the post-processing :mod:`.importance`.

Context-window policy (stated once, here): a prompt that does not leave room for at
least one response token inside the model's context window is *skipped* (reported as a
problem, counted, never silently dropped). A response that would run past the window is
*truncated* to fit -- generation gets a smaller ``max_new_tokens``, a given response is
cut -- and the record is flagged ``truncated=True``; the run summary counts them.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tuneshift.data.encoding import JOINS, EncodedPrompt, encode_prompt, encode_response, normalise_template
from tuneshift.data.prompts import PromptRecord
from tuneshift.data.token_text import is_byte_level, token_pieces
from tuneshift.errors import OptionError, TuneshiftError
from tuneshift.methods.attribution.importance import ImportanceSettings, density_and_score
from tuneshift.methods.attribution.methods import DEFAULT_METHOD, make_method
from tuneshift.methods.attribution.result import Attribution
from tuneshift.methods.attribution.targets import DEFAULT_TARGET, get_target

RESPONSE_MODES = ("generate", "given", "cross")
#: response protocols by their comparison names (docs/attribution.md, "Response protocols"):
#: own = each model's greedy answer (the paper's), gold = the record's response field,
#: cross = the other model's answers, read from its run.
PROTOCOLS = {"own": "generate", "gold": "given", "cross": "cross"}
PROTOCOL_OF = {v: k for k, v in PROTOCOLS.items()}


@dataclass
class AttributionOptions:
    """Options of an attribution run (stored in the run manifest).

    Attributes:
        responses: the response protocol: ``generate`` / ``own`` (greedy answer of the model),
            ``given`` / ``gold`` (forced decoding of the record's ``response``) or ``cross``
            (forced decoding of another run's answers: ``responses_from``). Stored as
            ``generate``/``given``/``cross``.
        max_new_tokens: generation limit (paper: 300).
        chat_template: ``auto`` (wrap in the model's chat template if it has one), ``none``
            (raw prompt), or the path of a Jinja chat template file applied to every model (one
            prompt form for a pair whose templates differ; its sha256 is part of the identity).
        join: how a forced response follows a raw prompt: ``none`` (appended as tokenized on its
            own) or ``space`` (the paper's code: prompt + " " + response). With a chat template
            the template's generation prompt is the join.
        responses_from: with ``cross``, the run whose answers are forced.
        batch_size: prompts per forward/backward batch.
        positions_per_backward: response positions per vectorised backward (1: the loop, best
            on CPUs; 4-16 on GPUs). Methods with ``supports_batched_backward`` only. Like
            ``batch_size`` it does not change results and is not part of the run identity.
        importance: the post-processing parameters (checked by :class:`ImportanceSettings` itself).
        method: a registered attribution method (:func:`~.methods.method_names`; default
            ``gradient_x_input``, the paper's).
        target: a registered target (:func:`~.targets.target_names`; default ``probability``,
            the paper's).
        method_options: the method's options (a mapping; strings are converted). After
            construction it holds every option of the method, defaults included.

    Raises:
        TuneshiftError: an invalid value, an unknown method or target (the registered names
            are listed), or an unknown/invalid method option.
    """

    responses: str = "generate"
    max_new_tokens: int = 300
    chat_template: str = "auto"
    batch_size: int = 4
    positions_per_backward: int = 1
    join: str = "none"
    responses_from: str | None = None
    importance: ImportanceSettings = field(default_factory=ImportanceSettings)
    method: str = DEFAULT_METHOD
    target: str = DEFAULT_TARGET
    method_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        get_target(self.target)
        self.method_options = make_method(self.method, dict(self.method_options or {})).options_dict()
        self.responses = PROTOCOLS.get(self.responses, self.responses)
        if self.responses not in RESPONSE_MODES:
            raise OptionError(
                "responses", f"must be one of {', '.join(PROTOCOLS)} (or generate, given), not '{self.responses}'"
            )
        if self.responses == "cross" and self.responses_from is None:
            raise OptionError("responses_from", "is needed with responses cross: the run whose answers are forced")
        if self.responses != "cross" and self.responses_from is not None:
            raise OptionError("responses_from", "is used with responses cross only")
        if self.join not in JOINS:
            raise OptionError("join", f"must be one of {', '.join(JOINS)}, not '{self.join}'")
        self._template_text = None
        if self.chat_template not in ("auto", "none"):
            path = Path(self.chat_template)
            if not path.is_file():
                raise OptionError("chat_template", f"must be auto, none or a Jinja template file; {path} is not a file")
            try:  # normalised: line endings and trailing whitespace do not change the identity
                self._template_text = normalise_template(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as e:
                raise OptionError("chat_template", f": cannot read {path}: {e}") from None
            import jinja2

            try:
                jinja2.Environment().parse(self._template_text)
            except jinja2.TemplateSyntaxError as e:
                raise OptionError(
                    "chat_template", f": {path} is not a valid Jinja template (line {e.lineno}: {e.message})"
                ) from None
        if self.max_new_tokens < 1:
            raise OptionError("max_new_tokens", "must be at least 1")
        if self.batch_size < 1:
            raise OptionError("batch_size", "must be at least 1")
        if self.positions_per_backward < 1:
            raise OptionError("positions_per_backward", "must be at least 1")
        if self.positions_per_backward > 1 and not getattr(
            make_method(self.method, dict(self.method_options)), "supports_batched_backward", False
        ):
            raise OptionError(
                "positions_per_backward", f"> 1 needs a method with a batched backward; {self.method} has none"
            )

    @property
    def template_text(self) -> str | None:
        """The Jinja template read from a ``chat_template`` file, normalised by
        :func:`~tuneshift.data.encoding.normalise_template` (None for auto/none)."""
        return self._template_text

    @property
    def protocol(self) -> str:
        """``own``, ``gold`` or ``cross``."""
        return PROTOCOL_OF[self.responses]

    def to_dict(self) -> dict:
        """JSON form (the run identity): a template file is recorded by the sha256 of its
        normalised text (:func:`~tuneshift.data.encoding.normalise_template`), not its path."""
        import hashlib

        d = asdict(self)
        d["importance"] = self.importance.to_dict()
        d["method_options"] = dict(self.method_options)
        if self._template_text is not None:
            d["chat_template"] = "file:sha256:" + hashlib.sha256(self._template_text.encode()).hexdigest()
        if self.responses == "generate":
            del d["join"]  # no forced response: the join plays no part (and old runs lack it)
        else:
            del d["max_new_tokens"]  # forced responses: the generation limit plays no part
        d.pop("responses_from")  # the cross source is recorded by its identity (attribute_run)
        return d

    def method_identity(self) -> dict:
        """``{"name", "target", "options"}``: what a run's identity records of the method
        (options that change only speed or memory are left out)."""
        inst = make_method(self.method, dict(self.method_options))
        return {"name": self.method, "target": self.target, "options": inst.options_dict(identity_only=True)}


@dataclass
class SkippedRecord:
    """A record that could not be attributed, with a one-line reason."""

    record_id: str
    reason: str


def _finish(
    loaded,
    record: PromptRecord,
    enc: EncodedPrompt,
    resp_ids: list[int],
    raw_full: np.ndarray | None,
    settings: ImportanceSettings,
    truncated: bool,
    ended: bool | None,
) -> Attribution:
    tok = loaded.tokenizer
    pos = np.asarray(enc.user_positions, dtype=np.int64)
    n_resp = len(resp_ids)
    raw = raw_full[pos] if raw_full is not None else np.zeros((len(pos), n_resp), dtype=np.float32)
    roles = [enc.roles[i] for i in pos]
    mask = np.array([r == "instruction" for r in roles], dtype=bool)
    density, score = density_and_score(raw, mask, settings)
    if not mask.any() and any(isinstance(x, str) and x.strip() for x in record.instruction):
        warnings.warn(
            f"record {record.id}: no instruction token is left in the prompt (spans unlocated or without "
            "content); its instruction score is NaN",
            stacklevel=2,
        )
    prompt_ids = np.asarray([enc.input_ids[i] for i in pos], dtype=np.int64)
    prompt_tokens = list(tok.convert_ids_to_tokens(prompt_ids.tolist()))
    response_tokens = list(tok.convert_ids_to_tokens(list(resp_ids))) if resp_ids else []
    byte_level = is_byte_level(tok)
    return Attribution(
        record_id=record.id,
        group=record.group,
        rating=record.rating,
        prompt_token_ids=prompt_ids,
        prompt_tokens=prompt_tokens,
        prompt_pieces=token_pieces(prompt_tokens, byte_level),
        prompt_roles=roles,
        prompt_positions=pos,
        response_token_ids=np.asarray(resp_ids, dtype=np.int64),
        response_tokens=response_tokens,
        response_pieces=token_pieces(response_tokens, byte_level),
        response_text=tok.decode(resp_ids, skip_special_tokens=False) if resp_ids else "",
        raw=np.asarray(raw, dtype=np.float32),
        instruction_mask=mask,
        density=density,
        instruction_score=score,
        short_response=n_resp < settings.min_response_tokens,
        truncated=truncated,
        ended_with_eos=ended,
        n_input_tokens=len(enc.input_ids),
        unlocated_spans=list(enc.unlocated_spans),
    )


def attribute_batch(
    loaded,
    records: Sequence[PromptRecord],
    options: AttributionOptions | None = None,
    on_token: Callable[[int, int], None] | None = None,
    forced: Mapping[str, Sequence[int]] | None = None,
) -> list[Attribution | SkippedRecord]:
    """Attribute one batch of records with one model.

    Args:
        loaded: a :class:`~tuneshift.models.loading.LoadedModel`.
        records: the batch (any size; ``options.batch_size`` is applied by the caller).
        options: :class:`AttributionOptions` (method, target and method options included;
            None: the defaults, ``AttributionOptions()``).
        on_token: progress callback ``(j, R_max)`` during the backward passes.
        forced: with ``cross``: ``{record id: response token ids}`` to force (ids in this
            model's vocabulary; see :func:`tuneshift.pipelines.attribute_run.cross_responses`).

    Returns:
        One :class:`Attribution` or :class:`SkippedRecord` per record, in order.
    """
    # torch-using modules, imported here: the options above are read without torch (``--help``)
    from tuneshift.methods.attribution.generation import greedy_generate
    from tuneshift.methods.attribution.gradient import SequencePair

    if options is None:  # not a default instance at import: building one imports the method registry (torch)
        options = AttributionOptions()
    tok, model = loaded.tokenizer, loaded.model
    ctx = loaded.context_length
    method = make_method(options.method, dict(options.method_options))
    target = get_target(options.target)
    out: list[Attribution | SkippedRecord | None] = [None] * len(records)
    encoded: dict[int, EncodedPrompt] = {}
    for i, rec in enumerate(records):
        try:
            enc = encode_prompt(
                tok, rec, "auto" if options.template_text else options.chat_template, template=options.template_text
            )
        except TuneshiftError as e:
            out[i] = SkippedRecord(rec.id, str(e))
            continue
        if not enc.user_positions:
            out[i] = SkippedRecord(rec.id, "the prompt has no tokens")
        elif len(enc.input_ids) >= ctx:
            out[i] = SkippedRecord(
                rec.id,
                f"prompt is {len(enc.input_ids)} tokens; the model's context is {ctx} tokens, no room for a response",
            )
        else:
            encoded[i] = enc
    responses: dict[int, tuple[list[int], bool, bool | None]] = {}
    if options.responses == "generate":
        idx = list(encoded)
        if idx:
            limits = [min(options.max_new_tokens, ctx - len(encoded[i].input_ids)) for i in idx]
            gen = greedy_generate(
                model,
                [encoded[i].input_ids for i in idx],
                limits,
                loaded.eos_token_ids,
                tok.pad_token_id if tok.pad_token_id is not None else 0,
            )
            for i, lim, g in zip(idx, limits, gen):
                truncated = lim < options.max_new_tokens and not g.ended_with_eos and len(g.token_ids) >= lim
                responses[i] = (g.token_ids, truncated, g.ended_with_eos)
    else:
        for i in list(encoded):
            rec = records[i]
            if options.responses == "cross":
                if forced is None or rec.id not in forced or not len(forced[rec.id]):
                    out[i] = SkippedRecord(rec.id, "the run whose answers are forced has no answer for this record")
                    del encoded[i]
                    continue
                ids = [int(x) for x in forced[rec.id]]
            elif rec.response is None or not str(rec.response).strip():
                out[i] = SkippedRecord(rec.id, "no response given (the gold protocol needs a 'response' field)")
                del encoded[i]
                continue
            else:
                join = options.join if not encoded[i].chat_template_used else "none"
                ids = encode_response(tok, rec.response, join)
            room = ctx - len(encoded[i].input_ids)
            responses[i] = (ids[:room], len(ids) > room, None)
    todo = [i for i in encoded if len(responses[i][0]) > 0]
    raws: dict[int, np.ndarray] = {}
    if todo:
        pairs = [SequencePair(encoded[i].input_ids, responses[i][0]) for i in todo]
        extra = {"positions_per_backward": options.positions_per_backward} if options.positions_per_backward > 1 else {}
        mats = method.attribute(model, pairs, target, pad_token_id=tok.pad_token_id or 0, on_token=on_token, **extra)
        raws = dict(zip(todo, mats))
    for i, enc in encoded.items():
        ids, truncated, ended = responses[i]
        raw = raws.get(i)
        if raw is not None and not np.isfinite(raw).all():
            # e.g. float16 activations overflowing (Gemma reaches inf by layer 8): never store NaN scores
            out[i] = SkippedRecord(
                records[i].id,
                f"non-finite attributions with a {loaded.dtype} model (overflow?); use --dtype bfloat16 or float32",
            )
            continue
        out[i] = _finish(loaded, records[i], enc, ids, raw, options.importance, truncated, ended)
    return out  # type: ignore[return-value]


def attribute(
    loaded,
    prompt: str | PromptRecord,
    response: str | None = None,
    *,
    instruction: Sequence[str] | None = None,
    context: str | None = None,
    chat_template: str = "auto",
    max_new_tokens: int = 300,
    join: str = "none",
    importance: ImportanceSettings | None = None,
    method: str = DEFAULT_METHOD,
    target: str = DEFAULT_TARGET,
    method_options: Mapping[str, Any] | None = None,
) -> Attribution:
    """Attribute one prompt's response to its tokens (Python API).

    Args:
        loaded: a :class:`~tuneshift.models.loading.LoadedModel` from :func:`tuneshift.load_model`.
        prompt: the user prompt (str) or a :class:`PromptRecord`.
        response: a response to force-decode; None generates one greedily.
        instruction: instruction spans (substrings of the prompt) for the instruction mask
            and score; without them ``instruction_score`` is NaN.
        context: the context/input part of the prompt, if any.
        chat_template: ``auto``, ``none`` or a Jinja template file.
        max_new_tokens: generation limit when ``response`` is None.
        join: ``none`` or ``space``: how a given response follows a raw prompt.
        importance: post-processing parameters (defaults: the paper's).
        method: attribution method (default ``gradient_x_input``; see ``docs/attribution.md``).
        target: what is attributed per response token (default ``probability``).
        method_options: options of the method, e.g. ``{"n_steps": 32}``.

    Returns:
        An :class:`Attribution`; ``raw`` has shape ``[n_prompt_tokens, n_response_tokens]``.

    Raises:
        TuneshiftError: empty prompt, a prompt that does not fit the context window, or an
            unknown method, target or method option.
    """
    if isinstance(prompt, PromptRecord):
        record = prompt
        if response is not None:
            record = PromptRecord(**{**record.__dict__, "response": response})
    else:
        if not prompt or not str(prompt).strip():
            raise TuneshiftError("empty prompt")
        record = PromptRecord(
            id="prompt", prompt=str(prompt), response=response, instruction=list(instruction or []), context=context
        )
    options = AttributionOptions(
        responses="given" if response is not None else "generate",
        max_new_tokens=max_new_tokens,
        chat_template=chat_template,
        join=join,
        batch_size=1,
        importance=importance or ImportanceSettings.PAPER,
        method=method,
        target=target,
        method_options=dict(method_options or {}),
    )
    (res,) = attribute_batch(loaded, [record], options)
    if isinstance(res, SkippedRecord):
        raise TuneshiftError(f"cannot attribute {res.record_id}: {res.reason}")
    return res
