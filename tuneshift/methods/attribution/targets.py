"""Attribution targets: the scalar per response token that an attribution method explains.

A *target* maps the model's next-token logits at the response positions to one number per
response token: ``fn(logits [N, vocab], token_ids [N]) -> scores [N]``, where row i holds the
logits at the position that predicts response token ``token_ids[i]`` (position ``P + j - 1``
for response token j of a P-token prompt). Every method (see
:mod:`tuneshift.methods.attribution.methods`) differentiates or integrates these scores.

What the target sees (stated once, here):

* the logits are the model's *final* logits, exactly what ``model(...).logits`` returns:
  the LM head applied to the final-norm hidden state, then the Gemma-2 style final-logit
  soft-cap ``tanh(logits / cap) * cap`` when the config has ``final_logit_softcapping``
  (see :func:`logits_from_hidden`). The soft-cap is therefore part of every target,
  including ``logit``;
* half-precision logits (bfloat16/float16) are upcast to float32 before the target is
  computed; float32 and float64 are kept.

Registered targets (name: value, units):

``probability`` (default; Wu et al., NAACL 2024, Sec. 3.1, Eq. 1)
    ``p(y_j | x, y_<j)``, the softmax probability of the response token, in [0, 1].
    Computed as ``exp(log_softmax(logits)[y_j])``.
``log_probability``
    ``log p(y_j | x, y_<j)`` in nats, <= 0. Its gradient is the probability gradient divided
    by ``p``: attributions of unlikely tokens are not shrunk towards zero.
``logit``
    the (soft-capped) logit of ``y_j``, before normalisation; ignores how the other tokens'
    logits move.

Add a target with :func:`register_target` (a name, its units and a one-line description);
methods, the CLI (``--target``) and the run identity read this registry (:data:`TARGETS`). An
installed package adds one through the entry-point group ``tuneshift.targets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from tuneshift.errors import TuneshiftError
from tuneshift.registry import Registry

if TYPE_CHECKING:  # torch is imported where a target is computed: the registry is read without it
    import torch

DEFAULT_TARGET = "probability"

TargetFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class Target:
    """A registered attribution target.

    Attributes:
        name: registry name (``--target NAME``).
        fn: ``fn(logits [N, vocab], token_ids [N] long) -> [N]`` scores (differentiable).
        units: what one score is (e.g. "probability"); attributions have the same units.
        description: one line for docs and error messages.
    """

    name: str
    fn: TargetFn
    units: str
    description: str

    def __call__(self, logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, token_ids)


def _conflict(name: str, old: Target, new: Target) -> Exception | None:
    if old.fn.__qualname__ != new.fn.__qualname__:
        return ValueError(f"attribution target '{name}' is already registered")
    return None


TARGETS: Registry[Target] = Registry(
    "attribution target",
    "tuneshift.targets",
    conflict=_conflict,
    unknown=lambda name, names: TuneshiftError(
        f"unknown attribution target '{name}'; registered targets: {', '.join(names)}"
    ),
)
"""The target registry (:class:`~tuneshift.registry.Registry`): the targets of this module, then
the plugins of the entry-point group ``tuneshift.targets`` (an entry point names a module
calling :func:`register_target`)."""


def register_target(name: str, units: str, description: str) -> Callable[[TargetFn], TargetFn]:
    """Decorator registering ``fn(logits, token_ids) -> scores`` as target ``name``.

    Raises:
        ValueError: ``name`` is already registered to another function.
    """

    def deco(fn: TargetFn) -> TargetFn:
        TARGETS.register(name, Target(name, fn, units, description))
        return fn

    return deco


def target_names() -> list[str]:
    """Names of the registered targets (this module's and the plugins'), sorted.

    Raises:
        PluginError: a plugin of ``tuneshift.targets`` cannot be loaded.
    """
    return TARGETS.names()


def get_target(target: str | Target) -> Target:
    """The registered :class:`Target` called ``target`` (a :class:`Target` is returned as is).

    Raises:
        TuneshiftError: unknown name (the message lists the registered names).
        PluginError: a plugin of ``tuneshift.targets`` cannot be loaded.
    """
    if isinstance(target, Target):
        return target
    return TARGETS.get(target)


def _gather(values: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    return values.gather(-1, token_ids.to(values.device)[..., None]).squeeze(-1)


@register_target(
    "probability", "probability", "softmax probability p(y_j | x, y_<j) of the response token (Wu et al. 2024; default)"
)
def probability(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """``p(y_j)``: ``exp(log_softmax(logits)[y])`` (the operations of the original fast path)."""
    import torch

    return _gather(torch.log_softmax(logits, dim=-1), token_ids).exp()


@register_target("log_probability", "nats", "log-probability log p(y_j | x, y_<j) of the response token, in nats")
def log_probability(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """``log p(y_j)``: ``log_softmax(logits)[y]``."""
    import torch

    return _gather(torch.log_softmax(logits, dim=-1), token_ids)


@register_target("logit", "logit", "final (soft-capped) logit of the response token, before the softmax")
def logit(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """``logits[y]`` (after the final-logit soft-cap, if the model has one)."""
    return _gather(logits, token_ids)


# ----------------------------------------------------------------------------- logits


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are upcast to float32 before any target; float32/64 kept."""
    import torch

    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def _softcap(model) -> float | None:
    cap = getattr(model.config, "final_logit_softcapping", None)
    return float(cap) if cap else None


def logits_from_hidden(model, hidden: torch.Tensor) -> torch.Tensor:
    """Apply the model's LM head (and Gemma-2 style final logit soft-capping) to hidden states.

    Args:
        model: a Hugging Face causal LM.
        hidden: final-norm hidden states ``[..., d_model]``.

    Returns:
        Logits ``[..., vocab_size]``, equal to what the model's own forward returns.
    """
    logits = model.get_output_embeddings()(hidden)
    cap = _softcap(model)
    if cap:
        import torch

        logits = torch.tanh(logits / cap) * cap
    return logits


def backbone_hidden(model, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Final hidden states (after the final norm) ``[B, T, d_model]`` from input embeddings ``[B, T, d_model]``.

    Runs the model without its LM head, so callers put only the positions they need through
    :func:`logits_from_hidden` (a 262k-vocabulary head over every position would dominate).
    """
    out = model.base_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def target_scores(model, hidden: torch.Tensor, token_ids: torch.Tensor, target: str | Target) -> torch.Tensor:
    """Scores ``[N]`` of ``target`` from final hidden states ``[N, d_model]`` (one predicting position per row)."""
    return get_target(target)(upcast(logits_from_hidden(model, hidden)), token_ids)


__all__ = [
    "DEFAULT_TARGET",
    "TARGETS",
    "Target",
    "backbone_hidden",
    "get_target",
    "log_probability",
    "logit",
    "logits_from_hidden",
    "probability",
    "register_target",
    "target_names",
    "target_scores",
    "upcast",
]
