"""Method A of Wu et al. 2024: input -> output attribution (gradient x input, and other registered methods).

The names below are imported from their modules on first use (``__getattr__``), so importing a
torch-free module of this package (``api``, ``importance``, ``result``, ``methods``) or reading
:class:`AttributionOptions` defaults (the CLI's ``--help``) does not import torch.
"""

from typing import TYPE_CHECKING

#: public name -> the module of this package that defines it (imported lazily by ``__getattr__``).
_API = {
    "AttributionOptions": "api",
    "SkippedRecord": "api",
    "attribute": "api",
    "attribute_batch": "api",
    "SequencePair": "gradient",
    "gradient_x_input": "gradient",
    "naive_gradient_x_input": "gradient",
    "ImportanceSettings": "importance",
    "density_and_score": "importance",
    "importance_density": "importance",
    "instruction_score": "importance",
    "sparsify": "importance",
    "AttributionMethod": "methods",
    "get_method": "methods",
    "method_names": "methods",
    "register_method": "methods",
    "Attribution": "result",
    "Target": "targets",
    "get_target": "targets",
    "register_target": "targets",
    "target_names": "targets",
}

if TYPE_CHECKING:  # the same names for type checkers and the architecture test's import graph
    from tuneshift.methods.attribution.api import AttributionOptions, SkippedRecord, attribute, attribute_batch
    from tuneshift.methods.attribution.gradient import SequencePair, gradient_x_input, naive_gradient_x_input
    from tuneshift.methods.attribution.importance import (
        ImportanceSettings,
        density_and_score,
        importance_density,
        instruction_score,
        sparsify,
    )
    from tuneshift.methods.attribution.methods import (
        AttributionMethod,
        get_method,
        method_names,
        register_method,
    )
    from tuneshift.methods.attribution.result import Attribution
    from tuneshift.methods.attribution.targets import Target, get_target, register_target, target_names

__all__ = [
    "Attribution",
    "AttributionMethod",
    "AttributionOptions",
    "ImportanceSettings",
    "SequencePair",
    "SkippedRecord",
    "Target",
    "attribute",
    "attribute_batch",
    "density_and_score",
    "get_method",
    "get_target",
    "gradient_x_input",
    "importance_density",
    "instruction_score",
    "method_names",
    "naive_gradient_x_input",
    "register_method",
    "register_target",
    "sparsify",
    "target_names",
]


def __getattr__(name):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
