"""The registry of attribution methods: one file per method, found automatically.

An attribution method turns a batch of prompt/response token-id pairs into one raw matrix
per pair::

    method.attribute(model, pairs, target, pad_token_id, on_token) -> [array [P_b, R_b], ...]

entry ``[n, j]`` = how much input position n (every position before the response: BOS,
chat template and user prompt; the caller keeps the user-prompt rows) contributes to the
target (:mod:`tuneshift.methods.attribution.targets`) of response token j, in the target's
units. Arrays are float64 for a float64 model, float32 otherwise. The post-processing of
Wu et al. 2024 (:mod:`tuneshift.methods.attribution.importance`) is the same for every method.

Adding a method is adding one file to this package (nothing else changes: the CLI's
``--method``/``--method-option``, option validation and the run identity read this registry)::

    # tuneshift/methods/attribution/methods/my_method.py
    from dataclasses import dataclass
    from tuneshift.methods.attribution.methods import AttributionMethod, register_method

    @register_method("my_method")
    class MyMethod(AttributionMethod):
        \"\"\"One line shown in docs and errors.\"\"\"

        @dataclass(frozen=True)
        class Options:            # optional; fields are the method's options
            n_samples: int = 8    # int, float, bool or str; `--method-option n_samples=16`

        def attribute(self, model, pairs, target, pad_token_id=0, on_token=None):
            ...                   # -> list of [P_b, R_b] arrays

Modules of this package whose names start with ``_`` are not scanned. Discovery is lazy
(:func:`method_names` / :func:`get_method` import the modules on first use), so a method
module may import anything from ``tuneshift`` without import cycles. An installed package adds a
method through the entry-point group ``tuneshift.methods`` (:data:`METHODS`,
``docs/adding_an_architecture.md`` "Plugins").

Method options: an ``Options`` dataclass registered with the class (default: no options).
Values given as strings (the CLI) are converted to the field's type (int, float, bool, str);
its ``__post_init__`` may validate them and raise :class:`~tuneshift.errors.TuneshiftError`.
Every option is part of the run identity, except fields declared with
``field(default=..., metadata={"identity": False})`` (options that change only speed or
memory, like an internal batch size).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from tuneshift.errors import TuneshiftError
from tuneshift.registry import Registry

DEFAULT_METHOD = "gradient_x_input"


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a method that has none."""


class AttributionMethod:
    """Base class of attribution methods (register subclasses with :func:`register_method`).

    Class attributes:
        name: the registry name (set by :func:`register_method`).
        Options: a frozen dataclass of the method's options (default :class:`NoOptions`).

    Args:
        options: an ``Options`` instance, a mapping (strings are converted), or None (defaults).

    Raises:
        TuneshiftError: unknown option names or invalid values.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None):
        self.options = self.make_options(options)

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if (cls.__doc__ or "").strip() else ""

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls.Options))

    @classmethod
    def make_options(cls, options: Any = None):
        """Build (and validate) the method's ``Options`` from None, a mapping or an instance."""
        if options is None:
            options = {}
        if isinstance(options, cls.Options):
            return options
        if not isinstance(options, Mapping):
            raise TuneshiftError(f"options of method '{cls.name}' must be a mapping of names to values")
        fields = {f.name: f for f in cls.option_fields()}
        unknown = [k for k in options if k not in fields]
        if unknown:
            valid = ", ".join(sorted(fields)) if fields else "none"
            raise TuneshiftError(f"method '{cls.name}' has no option '{unknown[0]}' (its options: {valid})")
        values = {k: _convert(cls.name, fields[k], v) for k, v in options.items()}
        try:
            return cls.Options(**values)
        except TypeError as e:  # a dataclass rejecting a value of the wrong kind
            raise TuneshiftError(f"invalid options for method '{cls.name}': {e}") from None

    def options_dict(self, identity_only: bool = False) -> dict:
        """The options as a JSON-ready dict (``identity_only``: without speed/memory-only fields)."""
        d = dataclasses.asdict(self.options)
        if identity_only:
            for f in self.option_fields():
                if not f.metadata.get("identity", True):
                    d.pop(f.name, None)
        return d

    def attribute(
        self,
        model,
        pairs: Sequence,
        target,
        pad_token_id: int = 0,
        on_token: Callable[[int, int], None] | None = None,
    ) -> list[np.ndarray]:
        """Raw attributions of a batch.

        Args:
            model: a Hugging Face causal LM (its parameters are frozen by the method).
            pairs: B :class:`~tuneshift.methods.attribution.gradient.SequencePair` (P_b >= 1, R_b >= 1).
            target: a :class:`~tuneshift.methods.attribution.targets.Target`.
            pad_token_id: a valid token id for padding (masked out).
            on_token: optional progress callback ``(j, R_max)``.

        Returns:
            B arrays ``[P_b, R_b]`` (float64 for a float64 model, else float32).
        """
        raise NotImplementedError


def _convert(method: str, f: dataclasses.Field, value: Any) -> Any:
    """Convert a string option value to the field's type (int, float, bool, str); others kept."""
    if not isinstance(value, str):
        return value
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
    except ValueError:
        raise TuneshiftError(f"option '{f.name}' of method '{method}' must be {kind}, not '{value}'") from None
    return value


def _discover() -> None:
    """Import every module of this package (not starting with ``_``), so they register."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def _conflict(name: str, old: type, new: type) -> Exception | None:
    if old.__qualname__ != new.__qualname__:
        return ValueError(f"attribution method '{name}' is already registered ({old.__module__}.{old.__qualname__})")
    return None


def _adopt(name: str, cls: Any) -> None:
    register_method(name)(cls)


METHODS: Registry[type[AttributionMethod]] = Registry(
    "attribution method",
    "tuneshift.methods",
    discover=_discover,
    conflict=_conflict,
    adopt=_adopt,
    unknown=lambda name, names: TuneshiftError(
        f"unknown attribution method '{name}'; registered methods: {', '.join(names)}"
    ),
)
"""The method registry (:class:`~tuneshift.registry.Registry`): this package's modules, found on
first use, then the plugins of the entry-point group ``tuneshift.methods`` (an entry point names a
module calling :func:`register_method`, or an :class:`AttributionMethod` subclass, registered
under the entry point's name)."""


def register_method(name: str) -> Callable[[type[AttributionMethod]], type[AttributionMethod]]:
    """Class decorator registering an :class:`AttributionMethod` subclass as ``name``.

    Raises:
        ValueError: ``name`` is already registered to another class, or the class is not a subclass.
    """

    def deco(cls: type[AttributionMethod]) -> type[AttributionMethod]:
        if not (isinstance(cls, type) and issubclass(cls, AttributionMethod)):
            raise ValueError(f"@register_method('{name}') needs an AttributionMethod subclass")
        old = METHODS.find(name, plugins=False)
        if old is not None and (problem := _conflict(name, old, cls)) is not None:
            raise problem
        if not dataclasses.is_dataclass(cls.Options):
            raise ValueError(f"{cls.__qualname__}.Options must be a dataclass")
        cls.name = name
        return METHODS.register(name, cls)

    return deco


def method_names() -> list[str]:
    """Names of the registered methods (this package's and the plugins'), sorted.

    Raises:
        PluginError: a plugin of ``tuneshift.methods`` cannot be loaded.
    """
    return METHODS.names()


def get_method(name: str) -> type[AttributionMethod]:
    """The registered method class called ``name``.

    Raises:
        TuneshiftError: unknown name (the message lists the registered names).
        PluginError: a plugin of ``tuneshift.methods`` cannot be loaded.
    """
    return METHODS.get(name)


def make_method(name: str, options: Any = None) -> AttributionMethod:
    """An instance of method ``name`` with validated ``options`` (see :meth:`AttributionMethod.make_options`)."""
    return get_method(name)(options)


def parse_option_strings(items: Sequence[str]) -> dict[str, str]:
    """``["n_steps=32", "rule=riemann_middle"]`` -> ``{"n_steps": "32", "rule": "riemann_middle"}``.

    Raises:
        TuneshiftError: an item without ``=`` or with an empty name, or a name given twice.
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise TuneshiftError(f"--method-option takes NAME=VALUE, not '{item}'")
        if key in out:
            raise TuneshiftError(f"--method-option {key} is given twice")
        out[key] = value.strip()
    return out


__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "AttributionMethod",
    "NoOptions",
    "get_method",
    "make_method",
    "method_names",
    "parse_option_strings",
    "register_method",
]
