"""Encode a prompt into token ids with a role per token (instruction / context / template ...).

Method A of Wu et al., "From Language Modeling to Instruction Following" (NAACL 2024,
arXiv 2310.00492) attributes each response token to each prompt token and compares how much
the attribution falls on the instruction part of the prompt before and after instruction
tuning. That needs, for every token the model sees before its response, which part of the
prompt it comes from. The paper gave both LLaMA and Vicuna the raw prompt with no chat
template (paper README); tuneshift can also render the model's chat template, in which case
the template's own tokens (system prompt, role markers) get role ``template`` and are not
attributed.

Decisions (documented here and in the docstrings):

* Token roles come from the fast tokenizer's character offsets. A token belongs to the user
  prompt if its character range overlaps the prompt's range in the tokenized text; a user
  token is ``instruction`` if it overlaps a located instruction span on at least one
  non-whitespace character, else ``context`` if it so overlaps the located context, else
  ``prompt``. The non-whitespace rule makes SentencePiece tokens such as ``"▁Rewrite"``
  (whose offset may include the preceding space) and byte-level tokens such as ``"Ġword"``
  behave the same, and keeps a whitespace-only token next to a span out of it.
* A token that straddles the template and the prompt (e.g. byte-level ``"ĊĠ"`` when a prompt
  starts with a space right after a template newline) overlaps the prompt, so it is a user
  token (role ``prompt`` unless it overlaps a span); it is attributed like the others.
* A zero-width token (offset ``(a, a)``) that is not a special token and sits inside the
  prompt's range (e.g. a SentencePiece dummy-prefix ``"▁"``) counts as a ``prompt`` token.
* ``bos`` is given only to the token at position 0 when its id is ``tokenizer.bos_token_id``
  (SmolLM2's BOS is ``<|im_start|>``; its later occurrences in the chat template are
  ``template``). Every other non-user token is ``template``.
* Pre-formatted prompts are refused (:func:`check_preformatted`, raising
  :class:`~tuneshift.errors.PreformattedPromptError`; an attribution run skips the record, exit 3,
  the README's rule for bad records): a special token of the tokenizer written in the prompt
  (``<start_of_turn>``, ``<|im_start|>``, a leading BOS string), or the chat template's generation
  prompt. There is no option to allow them: give the bare prompt.
* BOS policy: the model expects one BOS first when its tokenizer puts it before plain text
  (:func:`adds_bos`: Gemma, LLaMA; not GPT-2 or SmolLM2). A prompt starting with the BOS string
  (it would be doubled) and an encoding starting with more than one BOS are refused; an encoding
  without the expected BOS (a template file without ``{{ bos_token }}``) is warned about and kept.
* Instruction spans go through :func:`tuneshift.data.spans.instruction_spans` first (a leading
  ``Input:`` label removed, the rule shared with the paper-release masks); a span with no
  content left is warned about and ignored.
* Where the template put the prompt is found by rendering the template a second time with a
  unique placeholder as the content and checking the two renderings agree up to it; failing
  that, the first verbatim occurrence of the prompt (or of the prompt stripped of surrounding
  whitespace, for templates that ``trim`` the content).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from tuneshift.data.prompts import PromptRecord
from tuneshift.data.spans import instruction_spans, locate_span, locate_spans
from tuneshift.errors import PreformattedPromptError, TuneshiftError

__all__ = [
    "ROLES",
    "EncodedPrompt",
    "adds_bos",
    "check_preformatted",
    "encode_prompt",
    "encode_response",
    "generation_prompt",
    "normalise_template",
    "model_chat_template",
]

ROLES = ("bos", "template", "instruction", "context", "prompt")
"""Token roles. ``prompt`` = a user-prompt token that is neither instruction nor context."""

USER_ROLES = frozenset({"instruction", "context", "prompt"})


def normalise_template(text: str) -> str:
    """A chat template's text as tuneshift renders and hashes it (``--chat-template FILE``).

    The normalisation, stated once: line endings become ``\\n`` (``\\r\\n`` and a lone ``\\r``),
    and whitespace at the very end of the file (newlines, spaces, tabs) is removed. So a file
    written by ``print(tokenizer.chat_template)`` (one newline more), by an editor that adds a
    final newline, or on Windows, has the same run identity as the demo's template. Jinja
    already drops one final newline of a template; literal whitespace that must end a
    rendering belongs inside an expression (``{{ '\\n' }}``), as every Hugging Face template does.

    Args:
        text: the template source.

    Returns:
        The normalised source (str).
    """
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def model_chat_template(tokenizer) -> str | None:
    """The tokenizer's chat template, normalised (:func:`normalise_template`), or None without one.

    This is the text the demo writes to ``prompt_template.jinja`` and ``tuneshift template MODEL``
    prints. A tokenizer with several named templates (a dict) gives its ``default`` one.
    """
    t = getattr(tokenizer, "chat_template", None)
    if isinstance(t, dict):
        t = t.get("default")
    if not t or not str(t).strip():
        return None
    return normalise_template(str(t))


_PLACEHOLDER = "\u2063TUNESHIFT_PROMPT_PLACEHOLDER_7f3a\u2063"


@dataclass
class EncodedPrompt:
    """A prompt encoded for the model, with one role per token.

    Attributes:
        record_id: id of the PromptRecord (str).
        text: the exact text that was tokenized (str): the prompt itself, or the chat-template
            rendering containing it.
        input_ids: token ids (list[int], length T): everything the model sees before the
            response (BOS, template tokens, user prompt, generation prompt).
        offsets: character range ``(a, b)`` of each token in ``text`` (list of T tuples);
            ``(0, 0)`` for special tokens the tokenizer added itself.
        roles: one of :data:`ROLES` per token (list[str], length T).
        user_positions: indices into ``input_ids`` of the user-prompt tokens (roles
            instruction/context/prompt), ascending (list[int]); these rows are attributed.
        chat_template_used: whether ``text`` is a chat-template rendering (bool).
        unlocated_spans: instruction/context spans not found in the prompt (list[str]).
        prompt_span: character range ``(a, b)`` of the user prompt inside ``text``.

    Source: Wu et al. 2024, Method A (instruction vs. rest of the prompt).
    """

    record_id: str
    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    roles: list[str]
    user_positions: list[int]
    chat_template_used: bool
    unlocated_spans: list[str] = field(default_factory=list)
    prompt_span: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return len(self.input_ids)

    def positions(self, role: str) -> list[int]:
        """Indices (list[int], ascending) of the tokens with ``role`` (one of ROLES).

        Raises:
            ValueError: ``role`` is not in ROLES.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
        return [i for i, r in enumerate(self.roles) if r == role]


def _require_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise TuneshiftError(
            f"a fast tokenizer (HF 'tokenizers' backend) is needed to map tokens to prompt "
            f"characters; {type(tokenizer).__name__} is not fast"
        )


def _render(tokenizer, content: str, template: str | None = None) -> str:
    kw = {} if template is None else {"chat_template": template}
    out = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False, **kw
    )
    if not isinstance(out, str):  # some versions return a list for batched input
        if isinstance(out, list) and len(out) == 1 and isinstance(out[0], str):
            out = out[0]
        else:
            raise TuneshiftError("the chat template did not render to a string")
    return out


def check_template_renders(template: str, prompt: str, where: str = "the chat template") -> str:
    """Render a Jinja chat template on one user message, without a tokenizer (before a model
    loads), with transformers' own renderer (``render_jinja_template``; ``bos_token`` and
    ``eos_token`` are empty strings).

    Args:
        template: the template text. prompt: the user message. where: how errors name it.

    Returns:
        The rendering (str).

    Raises:
        TuneshiftError: the template raises (``raise_exception``, an undefined call...) or does
            not contain the prompt.
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        out = render_jinja_template(
            [[{"role": "user", "content": prompt}]],
            chat_template=template,
            add_generation_prompt=True,
            bos_token="",
            eos_token="",
        )
    except Exception as e:  # noqa: BLE001 - any failure of the user's template is one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TuneshiftError(f"{where} does not render a user message: {first[:300]}") from None
    text = out[0][0] if isinstance(out, tuple) else out
    text = text[0] if isinstance(text, list) else text
    if prompt.strip() and prompt.strip() not in str(text):
        raise TuneshiftError(f"{where} does not contain the prompt verbatim; use --chat-template none for this model")
    return str(text)


def _find_prompt(tokenizer, rendering: str, prompt: str, template: str | None = None) -> tuple[int, int, int]:
    """(start, end, lead) of the prompt in the rendering; ``lead`` = number of characters cut
    from the front of the prompt (templates that trim the content)."""
    try:
        probe = _render(tokenizer, _PLACEHOLDER, template)
    except Exception:  # noqa: BLE001 - any template failure just disables the probe
        probe = None
    if probe is not None:
        k = probe.find(_PLACEHOLDER)
        if k >= 0 and rendering.startswith(probe[:k]):
            if rendering.startswith(prompt, k):
                return k, k + len(prompt), 0
            core = prompt.strip()
            if core and rendering.startswith(core, k):
                lead = len(prompt) - len(prompt.lstrip())
                return k, k + len(core), lead
    i = rendering.find(prompt)
    if i >= 0:
        return i, i + len(prompt), 0
    core = prompt.strip()
    if core:
        i = rendering.find(core)
        if i >= 0:
            return i, i + len(core), len(prompt) - len(prompt.lstrip())
    raise TuneshiftError(
        "the chat template does not contain the prompt verbatim; use chat_template='none' for this model"
    )


def _special_strings(tokenizer) -> dict[int, str]:
    """{id: token string} of every token the tokenizer treats as special (BOS/EOS/PAD/UNK and the
    added special tokens, e.g. Gemma's ``<start_of_turn>``, ChatML's ``<|im_start|>``)."""
    out: dict[int, str] = {}
    for tid, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(tok, "special", False):
            out[int(tid)] = str(tok.content)
    for tid, t in zip(
        getattr(tokenizer, "all_special_ids", []) or [], getattr(tokenizer, "all_special_tokens", []) or []
    ):
        out.setdefault(int(tid), str(t))
    return out


def generation_prompt(tokenizer, template: str | None = None) -> str | None:
    """The text a chat template adds for ``add_generation_prompt=True`` (str, stripped of
    surrounding whitespace, e.g. ``"<start_of_turn>model"`` or ``"### Response:"``), or None when
    there is no template, it adds nothing, or it fails to render.

    Found by rendering one user message with and without the generation prompt: the suffix by
    which the two renderings differ.
    """
    if template is None and not getattr(tokenizer, "chat_template", None):
        return None
    kw = {} if template is None else {"chat_template": template}
    try:
        msgs = [{"role": "user", "content": _PLACEHOLDER}]
        with_gp = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False, **kw)
        without = tokenizer.apply_chat_template(msgs, add_generation_prompt=False, tokenize=False, **kw)
    except Exception:  # noqa: BLE001 - a template that fails to render is reported by encode_prompt
        return None
    if not (isinstance(with_gp, str) and isinstance(without, str)) or not with_gp.startswith(without):
        return None
    gp = with_gp[len(without) :].strip()
    return gp or None


def check_preformatted(tokenizer, record: PromptRecord, template: str | None = None) -> None:
    """Refuse a prompt that already holds chat-template text (the user applied a template).

    Such a prompt is scored silently wrong: without a template its template tokens become
    attributed user tokens; with one it is wrapped twice. Two signs are checked:

    * a special token of the tokenizer written in the prompt (``<start_of_turn>``,
      ``<|im_start|>``, the BOS string ``<bos>`` ...): the prompt is tokenized with
      ``add_special_tokens=False`` and a token counts when its id is special and its text in the
      prompt is the token's own string (so an ``<unk>`` produced by an unknown character does not);
    * the chat template's generation prompt (:func:`generation_prompt`: of ``template``, else of
      the tokenizer's own template) written in the prompt.

    Args:
        tokenizer: a fast Hugging Face tokenizer. record: the PromptRecord.
        template: the Jinja template in use instead of the tokenizer's (or None).

    Raises:
        PreformattedPromptError: one line naming the record and what was found (a
            :class:`~tuneshift.errors.TuneshiftError`: an attribution run skips the record).
    """
    prompt = record.prompt
    specials = _special_strings(tokenizer)
    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    bos = getattr(tokenizer, "bos_token", None)
    for tid, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
        s = specials.get(int(tid))
        if s is not None and a < b and prompt[a:b] == s:
            if s == bos and not prompt[:a].strip() and adds_bos(tokenizer):
                raise PreformattedPromptError(
                    f"record {record.id}: the prompt starts with the BOS string {s!r}; the tokenizer adds the BOS "
                    "itself (it would be there twice): remove it from the prompt"
                )
            raise PreformattedPromptError(
                f"record {record.id}: the prompt holds the special token {s!r} at character {a}: it looks "
                "already formatted with a chat template; give the bare user prompt"
            )
    gp = generation_prompt(tokenizer, template)
    if gp is not None:
        k = prompt.find(gp)
        if k >= 0:
            raise PreformattedPromptError(
                f"record {record.id}: the prompt holds the chat template's generation prompt {gp!r} at character "
                f"{k}: it looks already formatted with a chat template; give the bare user prompt"
            )


def adds_bos(tokenizer) -> bool:
    """Whether the model expects a BOS token first: the tokenizer has a ``bos_token_id`` and puts
    it first when it encodes plain text (``add_special_tokens=True``), as Gemma and LLaMA do (bool;
    False for GPT-2 and SmolLM2, whose tokenizers add none)."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    try:
        ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    except Exception:  # noqa: BLE001
        return False
    return bool(ids) and int(ids[0]) == int(bos_id)


def _check_bos(tokenizer, record: PromptRecord, input_ids: list[int], text_has_template: bool) -> None:
    """The BOS policy (module docstring): more than one leading BOS raises PreformattedPromptError,
    a missing expected BOS (:func:`adds_bos`) is warned about."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return
    n = 0
    while n < len(input_ids) and input_ids[n] == bos_id:
        n += 1
    if n > 1:
        raise PreformattedPromptError(
            f"record {record.id}: the encoded input starts with {n} BOS tokens "
            f"({tokenizer.bos_token!r}); the model expects one"
        )
    if n == 0 and adds_bos(tokenizer):
        where = (
            "the chat template does not write it (add {{ bos_token }} to the template)"
            if text_has_template
            else "the tokenizer did not add it"
        )
        warnings.warn(
            f"record {record.id}: the encoded input has no BOS token ({tokenizer.bos_token!r}), which this model's "
            f"tokenizer puts first; {where}; scores differ from an input with it",
            stacklevel=3,
        )


def _overlaps_nonspace(text: str, a: int, b: int, ranges: list[tuple[int, int]]) -> bool:
    for s, e in ranges:
        lo, hi = max(a, s), min(b, e)
        if lo < hi and any(not c.isspace() for c in text[lo:hi]):
            return True
    return False


def encode_prompt(
    tokenizer, record: PromptRecord, chat_template: str = "auto", template: str | None = None
) -> EncodedPrompt:
    """Tokenize ``record.prompt`` (optionally inside the chat template) with a role per token.

    Args:
        tokenizer: a Hugging Face fast tokenizer (``PreTrainedTokenizerFast`` /
            ``TokenizersBackend``; needs ``return_offsets_mapping``).
        record: the PromptRecord; its ``instruction`` spans and ``context`` are located in
            ``record.prompt`` with :func:`tuneshift.data.spans.locate_spans`.
        chat_template: ``"auto"`` (default): use the tokenizer's chat template if
            ``tokenizer.chat_template`` is set, else the raw prompt. ``"none"``: always the raw
            prompt (what the paper did for LLaMA and Vicuna).
        template: a Jinja chat template to use instead of the tokenizer's (with ``auto``): the
            same prompt form for two models whose own templates differ or are missing.

    With a template, the text is ``apply_chat_template([{"role": "user", "content": prompt}],
    add_generation_prompt=True, tokenize=False)``, tokenized with ``add_special_tokens=False``
    (as HF's ``apply_chat_template`` does): tokens overlapping the prompt's character range are
    user-prompt tokens, every other token is ``template`` (position-0 BOS -> ``bos``).
    Without, the text is the prompt, tokenized with ``add_special_tokens=True``: a leading BOS
    (id == ``tokenizer.bos_token_id``) -> ``bos``, other added special tokens -> ``template``.

    User-prompt tokens: ``instruction`` if the token's character range overlaps a located
    instruction span on at least one non-whitespace character, else ``context`` if it so
    overlaps the located context, else ``prompt``. A context that is not found whole is tried
    line by line (the paper's multi-piece contexts are joined by newlines).

    Returns:
        EncodedPrompt (T tokens). Spans that cannot be located are listed in
        ``unlocated_spans`` and reported with ``warnings.warn``
        (``record <id>: instruction span '...' not found in the prompt; continuing without it``).

    Warnings (``warnings.warn``, one line naming the record): an instruction span with no
    content (a bare ``Input:``; ignored); an encoding without the BOS the tokenizer puts first.

    Raises:
        ValueError: ``chat_template`` is not "auto" or "none".
        PreformattedPromptError: the prompt already holds chat-template text (a special token,
            the BOS string, the template's generation prompt) or the encoding starts with more
            than one BOS (:func:`check_preformatted`).
        TuneshiftError: the tokenizer is not fast; the chat template fails to render or does
            not contain the prompt verbatim.

    Source: Wu et al. 2024, Method A (instruction spans of the prompt; raw prompts, no template).
    """
    if chat_template not in ("auto", "none"):
        raise ValueError(f"chat_template must be 'auto' or 'none', got {chat_template!r}")
    _require_fast(tokenizer)
    use_template = chat_template == "auto" and (template is not None or bool(getattr(tokenizer, "chat_template", None)))
    check_preformatted(tokenizer, record, template)
    text, p0, p1, lead = _text_with_prompt(tokenizer, record, use_template, template)
    input_ids, offsets, special_mask = _tokenize_with_offsets(tokenizer, text, add_special_tokens=not use_template)
    _check_bos(tokenizer, record, input_ids, use_template)
    instr_ranges, ctx_ranges, unlocated = _locate_record_spans(record)
    shift = p0 - lead
    instr_t = _ranges_in_text(instr_ranges, shift, p0, p1)
    ctx_t = _ranges_in_text(ctx_ranges, shift, p0, p1)
    roles = _assign_roles(tokenizer, text, input_ids, offsets, special_mask, (p0, p1), instr_t, ctx_t)
    return EncodedPrompt(
        record_id=record.id,
        text=text,
        input_ids=input_ids,
        offsets=offsets,
        roles=roles,
        user_positions=[i for i, r in enumerate(roles) if r in USER_ROLES],
        chat_template_used=use_template,
        unlocated_spans=unlocated,
        prompt_span=(p0, p1),
    )


# ------------------------------------------------------------------ the steps of encode_prompt


def _text_with_prompt(
    tokenizer, record: PromptRecord, use_template: bool, template: str | None
) -> tuple[str, int, int, int]:
    """Step 1 of :func:`encode_prompt`: the text the model sees and where the prompt sits in it.

    With a template, the chat-template rendering of the prompt as one user message and the
    prompt's place in it (:func:`_find_prompt`); without, the prompt itself.

    Returns:
        ``(text, p0, p1, lead)``: ``text[p0:p1]`` is the prompt (stripped of surrounding
        whitespace when the template trims its content); ``lead`` = characters cut from its front.

    Raises:
        TuneshiftError: the template fails to render (``record <id>: the chat template failed to
            render: ...``) or does not contain the prompt verbatim.
    """
    prompt = record.prompt
    if not use_template:
        return prompt, 0, len(prompt), 0
    try:
        text = _render(tokenizer, prompt, template)
    except TuneshiftError:
        raise
    except Exception as exc:  # jinja errors, template exceptions
        raise TuneshiftError(f"record {record.id}: the chat template failed to render: {exc}") from None
    p0, p1, lead = _find_prompt(tokenizer, text, prompt, template)
    return text, p0, p1, lead


def _tokenize_with_offsets(
    tokenizer, text: str, add_special_tokens: bool
) -> tuple[list[int], list[tuple[int, int]], list]:
    """Step 2 of :func:`encode_prompt`: tokenize ``text`` with character offsets.

    ``add_special_tokens`` is False for a chat-template rendering (the template writes its own
    special tokens, as HF's ``apply_chat_template`` tokenizes) and True for a raw prompt.

    Returns:
        ``(input_ids, offsets, special_mask)``: ``[T]`` ids, ``[T]`` ``(a, b)`` character ranges
        in ``text``, and the tokenizer's special-tokens mask (all 0 when it gives none).
    """
    enc = tokenizer(
        text,
        add_special_tokens=add_special_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    input_ids = [int(i) for i in enc["input_ids"]]
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    special_mask = list(enc.get("special_tokens_mask") or [0] * len(input_ids))
    return input_ids, offsets, special_mask


def _locate_record_spans(record: PromptRecord) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[str]]:
    """Step 3 of :func:`encode_prompt`: the record's instruction spans and context as character
    ranges of ``record.prompt``.

    Instruction spans go through :func:`~tuneshift.data.spans.instruction_spans` first (a span
    with no content left is warned about and ignored); a context not found whole is tried line by
    line. Every span not found is warned about (``record <id>: instruction span '...' not found
    in the prompt; continuing without it``; the warnings name the caller of encode_prompt).

    Returns:
        ``(instruction_ranges, context_ranges, unlocated)``: ranges in the prompt, and the spans
        not found (instruction spans first, then context pieces).
    """
    prompt = record.prompt
    kept_instr, empty_instr = instruction_spans(list(record.instruction))
    for span in empty_instr:
        warnings.warn(
            f"record {record.id}: instruction span {span!r} has no content (a bare 'Input:' label, "
            "whitespace or quotes); ignored",
            stacklevel=3,
        )
    instr_ranges, missing_instr = locate_spans(prompt, kept_instr)
    ctx_ranges: list[tuple[int, int]] = []
    missing_ctx: list[str] = []
    if record.context and record.context.strip():
        r = locate_span(prompt, record.context)
        if r is not None:
            ctx_ranges.append(r)
        else:
            pieces = [ln for ln in record.context.split("\n") if ln.strip()]
            if len(pieces) > 1:
                ctx_ranges, missing_ctx = locate_spans(prompt, pieces)
            else:
                missing_ctx = [record.context]
    for span in missing_instr:
        warnings.warn(
            f"record {record.id}: instruction span {span!r} not found in the prompt; continuing without it",
            stacklevel=3,
        )
    for span in missing_ctx:
        warnings.warn(
            f"record {record.id}: context span {span!r} not found in the prompt; continuing without it",
            stacklevel=3,
        )
    return instr_ranges, ctx_ranges, list(missing_instr) + list(missing_ctx)


def _ranges_in_text(ranges: list[tuple[int, int]], shift: int, p0: int, p1: int) -> list[tuple[int, int]]:
    """Step 4 of :func:`encode_prompt`: prompt character ranges moved into the tokenized text
    (``+ shift``, the prompt's start there minus the characters a trimming template cut) and
    clipped to the prompt's range ``[p0, p1)``; ranges left empty are dropped."""
    out = []
    for a, b in ranges:
        a, b = max(a + shift, p0), min(b + shift, p1)
        if a < b:
            out.append((a, b))
    return out


def _assign_roles(
    tokenizer,
    text: str,
    input_ids: list[int],
    offsets: list[tuple[int, int]],
    special_mask: list,
    prompt_span: tuple[int, int],
    instr_t: list[tuple[int, int]],
    ctx_t: list[tuple[int, int]],
) -> list[str]:
    """Step 5 of :func:`encode_prompt`: one of :data:`ROLES` per token (the module docstring's rules).

    A token is a user token when its character range overlaps ``prompt_span`` (a zero-width token
    when it is not special and sits inside it); a user token is ``instruction`` if it overlaps
    ``instr_t`` on a non-whitespace character, else ``context`` if it so overlaps ``ctx_t``, else
    ``prompt``. Other tokens are ``template``, except a position-0 BOS (``bos``).

    Returns:
        ``[T]`` role strings.
    """
    p0, p1 = prompt_span
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    bos_id = getattr(tokenizer, "bos_token_id", None)
    roles: list[str] = []
    for i, (tid, (a, b)) in enumerate(zip(input_ids, offsets)):
        is_special = bool(special_mask[i]) if i < len(special_mask) else tid in special_ids
        if a < b:
            user = a < p1 and b > p0
        else:
            # zero-width: a special token the tokenizer added, or e.g. a dummy-prefix piece
            user = (not is_special) and tid not in special_ids and p0 <= a <= p1 and p0 < p1
        if not user:
            roles.append("bos" if i == 0 and bos_id is not None and tid == bos_id else "template")
        elif _overlaps_nonspace(text, a, b, instr_t):
            roles.append("instruction")
        elif _overlaps_nonspace(text, a, b, ctx_t):
            roles.append("context")
        else:
            roles.append("prompt")
    return roles


JOINS = ("none", "space")


def encode_response(tokenizer, response: str, join: str = "none") -> list[int]:
    """Token ids (list[int]) of a given response, for forced decoding; no special tokens added.

    The ids are ``tokenizer(response, add_special_tokens=False)["input_ids"]``: the response
    tokenized on its own, to be appended after :attr:`EncodedPrompt.input_ids`. A
    SentencePiece tokenizer that prepends a dummy-prefix space gives the first word a leading
    ``"▁"``; the ids can differ from tokenizing prompt and response as one string, which is
    accepted (the model is scored on these ids). An empty response gives ``[]``.

    ``join="space"`` tokenizes ``" " + response`` instead (leading whitespace of the response
    dropped first): the paper's code joins prompt and response with one space, so the first
    response word carries a word-start marker (``'▁Could'``) as it does inside a sentence;
    ``"none"`` appends the response as it is (``'Could'``). Both models of a comparison must use
    the same join (``tuneshift compare`` checks it).

    Raises:
        TypeError: ``response`` is not a str. ValueError: unknown ``join``.

    Source: Wu et al. 2024 attribute the model's response tokens given the prompt.
    """
    if not isinstance(response, str):
        raise TypeError(f"response must be a str, got {type(response).__name__}")
    if join not in JOINS:
        raise ValueError(f"join must be one of {JOINS}, got {join!r}")
    if not response:
        return []
    text = " " + response.lstrip() if join == "space" else response
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
