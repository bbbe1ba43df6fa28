"""The anatomy registry: ``config.model_type`` -> :class:`~tuneshift.models.anatomy.base.Anatomy` subclass.

Each family file calls :func:`register_anatomy` at import time; the package ``__init__``
imports every family file it finds (``pkgutil``), so the built-in families are registered once
``tuneshift.models.anatomy`` is imported. Installed packages add families through the
entry-point group ``tuneshift.anatomies`` (:data:`ANATOMIES`; loaded on the first lookup,
``docs/adding_an_architecture.md`` "Plugins"). :func:`get_anatomy` dispatches on
``model.config.model_type``; :func:`supported_families` is derived from what is registered.
"""

from __future__ import annotations

import inspect
from typing import Any

from tuneshift.errors import UnsupportedArchitectureError
from tuneshift.models.anatomy.base import Anatomy
from tuneshift.registry import Registry

__all__ = [
    "ANATOMIES",
    "anatomy_class",
    "get_anatomy",
    "register_anatomy",
    "registered_model_types",
    "supported_families",
]


def _conflict(model_type: str, known: type[Anatomy], cls: type[Anatomy]) -> Exception | None:
    # a re-executed module defines a new class object with the same qualified name
    if known is not cls and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        return ValueError(f"model_type {model_type!r} is already registered to {known.__module__}.{known.__qualname__}")
    return None


def _adopt(model_type: str, cls: Any) -> None:
    register_anatomy(model_type, cls)


def _unknown(model_type: str, names: list[str]) -> Exception:
    return UnsupportedArchitectureError(
        f"unsupported architecture model_type={model_type!r}; supported families: {', '.join(supported_families())}"
    )


ANATOMIES: Registry[type[Anatomy]] = Registry(
    "anatomy", "tuneshift.anatomies", conflict=_conflict, adopt=_adopt, unknown=_unknown
)
"""``config.model_type`` -> anatomy class (:class:`~tuneshift.registry.Registry`): the family files
of this package (imported with it), then the plugins of the entry-point group
``tuneshift.anatomies`` (an entry point names a module calling :func:`register_anatomy`, or an
:class:`Anatomy` subclass, registered under the entry point's name as its model type)."""


def register_anatomy(model_type: str, cls: type[Anatomy]) -> type[Anatomy]:
    """Make ``cls`` the anatomy adapter of models whose ``config.model_type`` is ``model_type``.

    Call it once per model type at the bottom of the family file; several model types may map
    to one class (e.g. ``"gemma3"`` and ``"gemma3_text"``). Registering the same pair again
    (a module re-import) is a no-op.

    Args:
        model_type: a ``transformers`` ``config.model_type`` value.
        cls: a concrete :class:`Anatomy` subclass with a ``family`` name.

    Returns:
        ``cls`` (unchanged).

    Raises:
        TypeError: ``cls`` is not a concrete :class:`Anatomy` subclass with a string ``family``.
        ValueError: ``model_type`` is empty or already registered to another class.
    """
    if not isinstance(model_type, str) or not model_type:
        raise ValueError(f"model_type must be a non-empty string, got {model_type!r}")
    if not (isinstance(cls, type) and issubclass(cls, Anatomy)) or inspect.isabstract(cls):
        raise TypeError(f"register_anatomy({model_type!r}, ...) needs a concrete Anatomy subclass, got {cls!r}")
    if not isinstance(getattr(cls, "family", None), str) or not cls.family:
        raise TypeError(f"{cls.__name__} has no `family` name")
    return ANATOMIES.register(model_type, cls)


def anatomy_class(model_type: str, plugins: bool = True) -> type[Anatomy] | None:
    """The class registered for ``model_type`` (a family name or an alias such as
    ``"gemma3_text"``), or ``None``.

    Args:
        plugins: load the ``tuneshift.anatomies`` plugins first (default; raises
            :class:`~tuneshift.errors.PluginError` for a broken one).
    """
    return ANATOMIES.find(model_type, plugins=plugins)


def registered_model_types(plugins: bool = True) -> tuple[str, ...]:
    """Every registered ``config.model_type`` value (family names and aliases), sorted.

    Args:
        plugins: include the ``tuneshift.anatomies`` plugins (default; loads them, raising
            :class:`~tuneshift.errors.PluginError` for a broken one). False: what is registered so far.
    """
    return tuple(ANATOMIES.names(plugins))


def supported_families(plugins: bool = True) -> tuple[str, ...]:
    """The families with an anatomy adapter: the distinct ``family`` names of the registered
    classes, sorted alphabetically (aliases such as ``"gemma3_text"`` are not listed).

    Args:
        plugins: as in :func:`registered_model_types`.
    """
    return tuple(sorted({cls.family for cls in ANATOMIES.values(plugins)}))


def _unwrap_peft(model: Any) -> Any:
    """Return ``model.get_base_model()`` for a ``peft.PeftModel`` (or mixed model), else ``model``."""
    if hasattr(model, "peft_config") and callable(getattr(model, "get_base_model", None)):
        return model.get_base_model()
    return model


def get_anatomy(model: Any) -> Anatomy:
    """Build the anatomy adapter for a Hugging Face causal LM.

    Dispatches on ``model.config.model_type`` through the registry (aliases such as
    ``"gemma3_text"`` -> ``"gemma3"`` are registered model types); a ``peft.PeftModel`` is
    unwrapped with ``get_base_model()`` first (unmerged plain-LoRA deltas are then included
    in the weights read, see :func:`~tuneshift.models.anatomy.base.effective_weight`).

    Args:
        model: a ``transformers.PreTrainedModel`` (preferably a ``*ForCausalLM``) or a
            ``peft.PeftModel`` wrapping one.

    Returns:
        The :class:`Anatomy` subclass instance for the model's family.

    Raises:
        UnsupportedArchitectureError: the model has no ``config.model_type``, its model type
            is not registered (the one-line message names the model_type and lists the
            supported families), its layers cannot be located, or its weights are
            quantized / wrapped by a PEFT method other than plain LoRA.
        PluginError: a plugin of ``tuneshift.anatomies`` cannot be loaded.

    Source: TransformerLens-style per-architecture adapters, for the weight-based methods
    of Wu et al. 2024.
    """
    model = _unwrap_peft(model)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if not model_type:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} has no config.model_type; expected a transformers model "
            f"of one of the supported families: {', '.join(supported_families())}"
        )
    return ANATOMIES.get(model_type)(model)
