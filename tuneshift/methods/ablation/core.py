"""Span ablations and the log-probability of a fixed response (forward passes only).

The question (issue 20): does a model condition its response on the instruction? The gradient
score of method A (Wu et al., NAACL 2024, Sec. 3.1) answers it locally; an *ablation* answers it
causally, in the spirit of ERASER's comprehensiveness (DeYoung et al., ACL 2020, Sec. 4): change
the span, keep everything else (template, other spans, the response tokens), and measure how
much log-probability the response loses.

    effect = log p(response | prompt) - log p(response | prompt with the span ablated)   [nats]

A positive effect means the span supported this response. ``effect / n_response_tokens`` is the
per-token effect (nats per token), comparable across responses of different lengths.

Decisions (stated once, here):

* Ablations act on **token ids** of the encoded model input (:class:`~tuneshift.data.encoding.EncodedPrompt`),
  not on text: the span's tokens are exactly the ones the attribution calls ``instruction``
  (or ``context``), and no re-tokenisation moves a boundary. Template, BOS and the other
  roles' tokens are never touched.
* ``delete``: the span's tokens are removed. Every later token moves left by the span's length
  (positions change: a position-sensitive model may lose log-probability from the shift alone).
* ``mask``: each of the span's tokens is replaced by one neutral filler token (default the word
  ``the`` with a leading space: the most frequent English word, one token in every vocabulary
  tuneshift supports, without content of its own). Positions and length are kept.
* ``swap``: the span's tokens are replaced by the same span's tokens of another record (the
  *donor*, chosen by :func:`swap_donor`, stored with each row). The text stays a well-formed
  instruction of the same kind, so an effect is about *which* instruction, not about missing or
  odd tokens; lengths differ by the two spans' lengths. A span of several pieces is replaced
  as one block at the position of its first token.
* Log-probabilities are computed from the model's final logits (soft-cap included, as
  :func:`~tuneshift.methods.attribution.targets.logits_from_hidden`), log-softmax in float64.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from tuneshift.registry import Registry

__all__ = [
    "ABLATIONS",
    "SPANS",
    "Ablation",
    "ablate_tokens",
    "ablation_names",
    "get_ablation",
    "register_ablation",
    "response_logprobs",
    "swap_donor",
    "filler_token_id",
    "DEFAULT_FILLER",
]

SPANS = ("instruction", "context")
"""Prompt spans an ablation can change (roles of :data:`tuneshift.data.encoding.ROLES`)."""

DEFAULT_FILLER = "the"
"""The ``mask`` filler word (encoded with a leading space; must be one token)."""

AblationFn = Callable[[Sequence[int], Sequence[str], str, int | None, Sequence[int] | None], list[int]]


@dataclass(frozen=True)
class Ablation:
    """A registered ablation variant.

    Attributes:
        name: registry key (``delete``, ``mask``, ``swap``).
        description: one line for ``--help`` and the docs.
        needs_donor: the variant takes another record's span tokens (``swap``).
        fn: ``fn(input_ids [T], roles [T], span, filler_id, donor_ids [S']) -> ablated ids [T']``.
    """

    name: str
    description: str
    needs_donor: bool
    fn: AblationFn


ABLATIONS: Registry[Ablation] = Registry(
    "ablation", "tuneshift.ablations", sort=False, conflict=lambda name, old, new: None
)
"""The variant registry (:class:`~tuneshift.registry.Registry`, in registration order; a later
registration of a name replaces the earlier one): this module's variants, then the plugins of
the entry-point group ``tuneshift.ablations`` (an entry point names a module calling
:func:`register_ablation`)."""


def register_ablation(name: str, description: str, needs_donor: bool = False) -> Callable[[AblationFn], AblationFn]:
    """Decorator: register an ablation variant under ``name`` (see :class:`Ablation`)."""

    def deco(fn: AblationFn) -> AblationFn:
        ABLATIONS.register(name, Ablation(name, description, needs_donor, fn))
        return fn

    return deco


def ablation_names(plugins: bool = True) -> list[str]:
    """Registered variant names, in registration order.

    Args:
        plugins: include the ``tuneshift.ablations`` plugins (default; loads them, raising
            :class:`~tuneshift.errors.PluginError` for a broken one). False: what is registered
            so far (text made at import time, such as the CLI's help).
    """
    return ABLATIONS.names(plugins)


def get_ablation(name: str) -> Ablation:
    """The registered variant ``name``.

    Raises:
        TuneshiftError: unknown name (the registered names are listed).
        PluginError: a plugin of ``tuneshift.ablations`` cannot be loaded.
    """
    return ABLATIONS.get(name)


@register_ablation("delete", "the span's tokens removed (later tokens move left)")
def _delete(ids, roles, span, filler_id=None, donor_ids=None) -> list[int]:
    return [int(t) for t, r in zip(ids, roles) if r != span]


@register_ablation("mask", "each span token replaced by one neutral filler token (length kept)")
def _mask(ids, roles, span, filler_id=None, donor_ids=None) -> list[int]:
    if filler_id is None:
        raise ValueError("mask needs a filler token id")
    return [int(filler_id) if r == span else int(t) for t, r in zip(ids, roles)]


@register_ablation("swap", "the span replaced by the same span of another record (the donor)", needs_donor=True)
def _swap(ids, roles, span, filler_id=None, donor_ids=None) -> list[int]:
    if not donor_ids:
        raise ValueError("swap needs the donor's span tokens")
    first = next(i for i, r in enumerate(roles) if r == span)
    kept = [(i, int(t)) for i, (t, r) in enumerate(zip(ids, roles)) if r != span]
    return [t for i, t in kept if i < first] + [int(x) for x in donor_ids] + [t for i, t in kept if i > first]


def ablate_tokens(
    input_ids: Sequence[int],
    roles: Sequence[str],
    span: str,
    variant: str,
    filler_id: int | None = None,
    donor_ids: Sequence[int] | None = None,
) -> list[int]:
    """The model input with one span ablated.

    Args:
        input_ids: ``[T]`` the encoded prompt (everything before the response).
        roles: ``[T]`` role per token (:data:`tuneshift.data.encoding.ROLES`).
        span: ``instruction`` or ``context``.
        variant: a registered ablation (:func:`ablation_names`).
        filler_id: the ``mask`` filler token (:func:`filler_token_id`).
        donor_ids: ``[S']`` the donor's span tokens (``swap``).

    Returns:
        ``[T']`` token ids (``T' = T - S`` for delete, ``T`` for mask, ``T - S + S'`` for swap).

    Raises:
        ValueError: lengths differ, the span has no token, or the variant lacks its filler/donor.
        TuneshiftError: unknown variant.
    """
    if len(input_ids) != len(roles):
        raise ValueError(f"{len(input_ids)} token ids but {len(roles)} roles")
    if span not in SPANS:
        raise ValueError(f"span must be one of {SPANS}, not {span!r}")
    if span not in roles:
        raise ValueError(f"the prompt has no {span} token")
    return get_ablation(variant).fn(input_ids, roles, span, filler_id, donor_ids)


def filler_token_id(tokenizer, word: str = DEFAULT_FILLER) -> int:
    """The one token id of ``" " + word`` (the ``mask`` filler).

    Raises:
        TuneshiftError: the word is not exactly one token for this tokenizer.
    """
    from tuneshift.errors import TuneshiftError

    ids = tokenizer.encode(" " + word, add_special_tokens=False)
    if len(ids) != 1:
        # SentencePiece tokenizers may split the space off as its own token: take the word's token then
        alone = tokenizer.encode(word, add_special_tokens=False)
        ids = ids[1:] if len(ids) == 2 and len(alone) == 1 and ids[1:] == alone else ids
    if len(ids) != 1:
        raise TuneshiftError(
            f"the mask filler ' {word}' is {len(ids)} tokens for this tokenizer; give a word that is one token"
        )
    return int(ids[0])


def swap_donor(record_id: str, group: str, candidates: Mapping[str, str], seed: int = 0) -> str | None:
    """The donor of ``record_id``'s span for ``swap``: a seeded, reproducible choice.

    Rule: among the candidates (records whose span has tokens) of a *different* group, sorted by
    id, the one at index ``rng.integers(n)`` with ``rng = numpy.random.default_rng([seed,
    crc32(record_id)])``; so each record's donor does not depend on which other records are run
    or in what order. When every candidate is in the record's own group (a prompt set with one
    group), any other record is a candidate.

    Args:
        record_id, group: the record. candidates: ``{record id: group}``. seed: the run's seed.

    Returns:
        The donor's id, or None when there is no other candidate.
    """
    pool = sorted(r for r, g in candidates.items() if g != group and r != record_id)
    if not pool:
        pool = sorted(r for r in candidates if r != record_id)
    if not pool:
        return None
    rng = np.random.default_rng([int(seed), zlib.crc32(record_id.encode("utf-8"))])
    return pool[int(rng.integers(len(pool)))]


def response_logprobs(
    model, sequences: Sequence[tuple[Sequence[int], Sequence[int]]], pad_token_id: int = 0, batch_size: int = 8
) -> list[np.ndarray]:
    """Log-probability of each response token given its prompt, by forward passes only.

    Sequences are right-padded into batches of ``batch_size`` (with an attention mask; a causal
    model's real positions do not see the padding); only the response positions go through the
    LM head.

    Args:
        model: a Hugging Face causal LM (eval mode).
        sequences: ``(prompt_ids [P], response_ids [R])`` pairs, ``P >= 1``, ``R >= 1``.
        pad_token_id: id used for padding (never scored).
        batch_size: sequences per forward pass (results do not depend on it beyond float rounding).

    Returns:
        Per sequence a float64 array ``[R]``: ``log p(y_j | prompt, y_<j)`` in nats (<= 0).

    Raises:
        ValueError: an empty prompt or response.
    """
    import torch

    from tuneshift.methods.attribution.targets import logits_from_hidden

    out: list[np.ndarray] = []
    device = next(model.parameters()).device
    for start in range(0, len(sequences), max(1, int(batch_size))):
        chunk = sequences[start : start + max(1, int(batch_size))]
        for p, r in chunk:
            if len(p) < 1 or len(r) < 1:
                raise ValueError("response_logprobs needs a non-empty prompt and response")
        rows = [list(map(int, p)) + list(map(int, r)) for p, r in chunk]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), int(pad_token_id), dtype=torch.long, device=device)
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        with torch.inference_mode():
            hs = model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
            hidden = hs.last_hidden_state if hasattr(hs, "last_hidden_state") else hs[0]
            for i, (p, r) in enumerate(chunk):
                pos = torch.arange(len(p) - 1, len(p) + len(r) - 1, device=device)
                logits = logits_from_hidden(model, hidden[i, pos]).double()
                lp = torch.log_softmax(logits, dim=-1)
                y = torch.tensor(list(map(int, r)), dtype=torch.long, device=device)
                out.append(lp.gather(1, y[:, None])[:, 0].cpu().numpy())
    return out
