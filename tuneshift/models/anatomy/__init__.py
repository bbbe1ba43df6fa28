"""Uniform weight-level view of each supported transformer family ("anatomy" adapters).

The two weight-based explanation methods of Wu et al. (NAACL 2024), "From Language Modeling
to Instruction Following: Understanding the Behavior Shift in LLMs after Instruction Tuning"
-- the self-attention explanation (Sec. on self-attention: each head is read as word pairs
through its query/key weights) and the feed-forward explanation (Sec. on feed-forward
networks: PCA of the FFN down-projection rows, projected onto the vocabulary) -- need the
same handful of matrices from every model: the input and output embeddings, the per-head
query/key projections with the norm gains folded in, and the per-neuron down-projection
vectors.

Hugging Face ``transformers`` names and packs these differently per architecture, so, in
the style of TransformerLens' per-architecture adapters, this package has one small
:class:`Anatomy` subclass per family behind a single interface:

* ``base.py`` -- the abstract :class:`Anatomy` (folding, GQA, layer checks), PEFT-aware
  weight reading (:func:`~tuneshift.models.anatomy.base.effective_weight`), and the
  test-support types (:class:`TinyDims`, :class:`QKReference`);
* ``registry.py`` -- :func:`register_anatomy`, :func:`get_anatomy` (dispatch on
  ``model.config.model_type``), :func:`supported_families`, and the plugins of the entry-point
  group ``tuneshift.anatomies``;
* one file per family (every other module of this package), each ending with its
  ``register_anatomy(model_type, cls)`` calls. ``llama.py`` also holds the data table for
  llama-like families that differ only by attribute names (``LlamaLikeSpec``).

Importing this package imports every family module found in it (``pkgutil``), so adding a
family is adding one file (``docs/adding_an_architecture.md``). :data:`SUPPORTED_FAMILIES`
is derived from the registry. The conventions and what is deliberately not folded (per-token
``1/rms``, biases, LayerNorm centring, RoPE, ...) are in ``base.py``'s docstring; each family
file documents its own packing.
"""

from __future__ import annotations

import importlib
import pkgutil

from tuneshift.models.anatomy.base import Anatomy, QKReference, TinyDims, effective_weight
from tuneshift.models.anatomy.registry import (
    ANATOMIES,
    anatomy_class,
    get_anatomy,
    register_anatomy,
    registered_model_types,
    supported_families,
)

_INFRASTRUCTURE = frozenset({"base", "registry"})


def _import_family_modules() -> None:
    """Import every family module of this package (each registers itself on import)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _INFRASTRUCTURE:
            continue
        importlib.import_module(f"{__name__}.{info.name}")


_import_family_modules()

SUPPORTED_FAMILIES: tuple[str, ...] = supported_families(plugins=False)
"""Architecture families with a built-in anatomy adapter (values of ``config.model_type``), sorted;
derived from the registry after every family module was imported. Aliases (``"gemma3_text"``
-- the text-only Gemma 3 checkpoints -- maps to ``"gemma3"``) are in
:func:`registered_model_types`; :func:`supported_families` adds the families of installed
plugins (entry-point group ``tuneshift.anatomies``)."""


def __getattr__(name: str):
    """Registered anatomy classes by class name (``tuneshift.models.anatomy.LlamaAnatomy``; the
    plugins' classes once they are loaded)."""
    for model_type in registered_model_types(plugins=False):
        cls = anatomy_class(model_type, plugins=False)
        if cls is not None and cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ANATOMIES",
    "SUPPORTED_FAMILIES",
    "Anatomy",
    "QKReference",
    "TinyDims",
    "anatomy_class",
    "effective_weight",
    "get_anatomy",
    "register_anatomy",
    "registered_model_types",
    "supported_families",
]
