"""The anatomy registry: ``config.model_type`` -> :class:`~tuneshift.models.anatomy.base.Anatomy` subclass.

Each family file calls :func:`register_anatomy` at import time; the package ``__init__``
imports every family file it finds (``pkgutil``), so the registry is complete once
``tuneshift.models.anatomy`` is imported. :func:`get_anatomy` dispatches on
``model.config.model_type``; :func:`supported_families` is derived from what is registered.
"""

from __future__ import annotations

import inspect
from typing import Any

from tuneshift.errors import UnsupportedArchitectureError
from tuneshift.models.anatomy.base import Anatomy

__all__ = ["anatomy_class", "get_anatomy", "register_anatomy", "registered_model_types", "supported_families"]

_REGISTRY: dict[str, type[Anatomy]] = {}


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
    known = _REGISTRY.get(model_type)
    if known is not None and known is not cls:
        # a re-executed module defines a new class object with the same qualified name
        same = (known.__module__, known.__qualname__) == (cls.__module__, cls.__qualname__)
        if not same:
            raise ValueError(
                f"model_type {model_type!r} is already registered to {known.__module__}.{known.__qualname__}"
            )
    _REGISTRY[model_type] = cls
    return cls


def anatomy_class(model_type: str) -> type[Anatomy] | None:
    """The class registered for ``model_type`` (a family name or an alias such as
    ``"gemma3_text"``), or ``None``."""
    return _REGISTRY.get(model_type)


def registered_model_types() -> tuple[str, ...]:
    """Every registered ``config.model_type`` value (family names and aliases), sorted."""
    return tuple(sorted(_REGISTRY))


def supported_families() -> tuple[str, ...]:
    """The families with an anatomy adapter: the distinct ``family`` names of the registered
    classes, sorted alphabetically (aliases such as ``"gemma3_text"`` are not listed)."""
    return tuple(sorted({cls.family for cls in _REGISTRY.values()}))


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
    cls = _REGISTRY.get(model_type)
    if cls is None:
        raise UnsupportedArchitectureError(
            f"unsupported architecture model_type={model_type!r}; supported families: "
            f"{', '.join(supported_families())}"
        )
    return cls(model)
