"""One small registry type for every "name -> thing" table of tuneshift, open to plugins.

The attribution methods (:mod:`tuneshift.methods.attribution.methods`), the attribution targets
(:mod:`tuneshift.methods.attribution.targets`), the architecture anatomies
(:mod:`tuneshift.models.anatomy.registry`), the ablation variants
(:mod:`tuneshift.methods.ablation.core`) and the sections of ``tuneshift report``
(:mod:`tuneshift.reports.html.sections`) are each one :class:`Registry`. Their modules keep
their own public functions (``register_method``, ``get_anatomy``, ...) as thin wrappers that add
the checks of their kind of thing.

Plugins. A registry may declare an entry-point group (:data:`ENTRY_POINT_GROUPS`); an installed
package adds to it by naming a module (or an object inside one) in its ``pyproject.toml``::

    [project.entry-points."tuneshift.anatomies"]
    my_family = "my_package.tuneshift_anatomy"

The group's entry points are loaded once, after the built-in entries, by the first lookup that
needs them: a name the built-ins do not have (:meth:`Registry.get`, :meth:`Registry.find`, ``in``)
or the list of names (:meth:`Registry.names`, iteration); looking up a built-in never loads them,
so the defaults computed at import time cannot fail on a broken plugin. Loading an entry point
imports its module, whose ``register_*`` calls register what it defines; an entry point that
names an object not yet registered is registered under the entry point's name where the
registry knows how (``adopt``: methods and anatomies are classes). A plugin that cannot be
loaded -- an import error, a name already registered to something else, an object of the wrong
kind -- raises :class:`~tuneshift.errors.PluginError`, one line naming the entry point, on that
lookup and every later one that needs the plugins, never a traceback (the CLI prints it as its
one-line error).

Patterns: inseq's ``utils/registry.py`` (a named-subclass registry) and TransformerLens-style
entry-point discovery; written for this project.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import threading
from typing import Any, Callable, Generic, Iterator, TypeVar

from tuneshift.errors import PluginError, TuneshiftError

__all__ = ["ENTRY_POINT_GROUPS", "Registry", "load_entry_points"]

T = TypeVar("T")

ENTRY_POINT_GROUPS = {
    "tuneshift.methods": "attribution methods (an AttributionMethod subclass, or a module calling register_method)",
    "tuneshift.targets": "attribution targets (a module calling register_target)",
    "tuneshift.anatomies": "architecture anatomies (an Anatomy subclass named by its config.model_type, "
    "or a module calling register_anatomy)",
    "tuneshift.ablations": "ablation variants (a module calling register_ablation)",
}
"""The entry-point groups tuneshift reads, and what an entry point of each may name."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_entry_points(group: str) -> list[tuple[importlib.metadata.EntryPoint, Any]]:
    """Load every installed entry point of ``group`` (``importlib.metadata.entry_points(group=...)``).

    Args:
        group: an entry-point group name, e.g. ``"tuneshift.methods"``.

    Returns:
        ``[(entry_point, loaded object), ...]`` in the order the metadata lists them (a module
        entry point loads as the module).

    Raises:
        PluginError: an entry point cannot be loaded (the one-line message names it, its value
            and the cause).
    """
    out = []
    for ep in importlib.metadata.entry_points(group=group):
        try:
            obj = ep.load()
        except Exception as e:  # an installed plugin's own error, of any kind: reported, not raised through
            raise PluginError(
                f"plugin '{ep.name}' ({ep.value}) of entry-point group {group} cannot be loaded: "
                f"{type(e).__name__}: {_one_line(e)}"
            ) from None
        out.append((ep, obj))
    return out


def _same_definition(old: Any, new: Any) -> bool:
    """The default duplicate rule: the same object, or the same module and qualified name (a
    re-executed module defines a new object with the same name)."""
    if old is new:
        return True
    key = lambda x: (getattr(x, "__module__", None), getattr(x, "__qualname__", None))  # noqa: E731
    return key(old) == key(new) and None not in key(old)  # instances have no __qualname__: never "the same"


class Registry(Generic[T]):
    """A table of named entries of one kind, filled by ``register`` and, optionally, by plugins.

    Args:
        kind: what one entry is, in messages (``"ablation"``, ``"attribution method"``).
        group: the entry-point group, read by the first lookup that needs it (None: no plugins).
        discover: called once before the first lookup, before the plugins: imports the modules
            that hold the built-in entries (when they are not imported eagerly).
        unknown: ``unknown(name, names) -> exception`` for :meth:`get` of an unregistered name
            (default ``TuneshiftError("unknown KIND 'NAME'; registered: A, B")``).
        conflict: ``conflict(name, old, new) -> exception or None``: what registering ``new``
            under a name that holds ``old`` raises (None: ``new`` replaces ``old``). Default: the
            same definition (same object, or same module and qualified name) replaces the old
            one; anything else raises ``ValueError("KIND 'NAME' is already registered (...)")``.
        adopt: ``adopt(name, obj)``: registers an object an entry point names when loading it
            did not register it (None: the plugin's module must register its entries itself).
        sort: :meth:`names` sorted (default) or in registration order.
    """

    def __init__(
        self,
        kind: str,
        group: str | None = None,
        *,
        discover: Callable[[], None] | None = None,
        unknown: Callable[[str, list[str]], Exception] | None = None,
        conflict: Callable[[str, T, T], Exception | None] | None = None,
        adopt: Callable[[str, Any], Any] | None = None,
        sort: bool = True,
    ):
        self.kind = kind
        self.group = group
        self._discover = discover
        self._unknown = unknown
        self._conflict = conflict
        self._adopt = adopt
        self._sort = sort
        self._entries: dict[str, T] = {}
        self._discovered = False
        # None: not loaded yet; "loading"; True: loaded; a PluginError: loading failed (raised again on
        # every lookup)
        self._loaded: bool | str | PluginError | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, {len(self._entries)} entries)"

    # ------------------------------------------------------------------ registering

    def register(self, name: str, item: Any = None):
        """Register ``item`` as ``name``; without ``item``, a decorator doing the same.

        ``REG.register("x", obj)`` returns ``obj``; ``@REG.register("x")`` returns the decorated
        object unchanged. Registering never loads plugins.

        Raises:
            ValueError: ``name`` is empty or not a string, or it holds another entry and the
                registry's ``conflict`` rule refuses the new one.
        """
        if item is None:
            return lambda obj: self.register(name, obj)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        with self._lock:
            old = self._entries.get(name)
            if old is not None:
                problem = (
                    self._conflict(name, old, item)
                    if self._conflict is not None
                    else (
                        None
                        if _same_definition(old, item)
                        else ValueError(
                            f"{self.kind} '{name}' is already registered "
                            f"({getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', repr(old))})"
                        )
                    )
                )
                if problem is not None:
                    raise problem
            self._entries[name] = item
        return item

    def unregister(self, name: str) -> T | None:
        """Remove ``name`` (tests, notebooks); returns the removed entry, or None."""
        with self._lock:
            return self._entries.pop(name, None)

    # ------------------------------------------------------------------ plugins

    def _ensure_discovered(self) -> None:
        if self._discovered:
            return
        with self._lock:
            if self._discovered:  # done meanwhile, or a lookup from a module being discovered
                return
            self._discovered = True
            if self._discover is not None:
                try:
                    self._discover()
                except BaseException:
                    self._discovered = False
                    raise

    def load_entry_points(self) -> None:
        """Load the group's entry points now (again, if loaded before), after the built-ins.

        Lookups made while loading (by a plugin module being imported) see what is registered so far.

        Raises:
            PluginError: an entry point cannot be loaded or registered (see the module docstring).
        """
        self._ensure_discovered()
        with self._lock:
            previous, self._loaded = self._loaded, "loading"
            try:
                if self.group is not None:
                    for ep, obj in load_entry_points(self.group):
                        if (
                            inspect.ismodule(obj)
                            or self._adopt is None
                            or any(v is obj for v in self._entries.values())
                        ):
                            continue
                        try:
                            self._adopt(ep.name, obj)
                        except (TuneshiftError, TypeError, ValueError) as e:
                            raise PluginError(
                                f"plugin '{ep.name}' ({ep.value}) of entry-point group {self.group} "
                                f"cannot be registered: {_one_line(e)}"
                            ) from None
            except PluginError as e:
                self._loaded = e
                raise
            except BaseException:
                self._loaded = previous
                raise
            self._loaded = True

    def _ensure_loaded(self) -> None:
        if self._loaded is True:
            return
        with self._lock:  # another thread loading: wait for it
            state = self._loaded
            if state is True or state == "loading":  # loaded meanwhile, or a lookup from inside the loading
                return
            if isinstance(state, PluginError):
                raise PluginError(str(state))
            self.load_entry_points()

    def _has(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable name
            return False

    # ------------------------------------------------------------------ lookups

    def get(self, name: str) -> T:
        """The entry called ``name``: a built-in, else (plugins loaded first) a plugin's.

        Raises:
            TuneshiftError: unknown name (the registry's ``unknown`` error; the default lists the
                registered names). ``REG[name]`` is the same lookup.
            PluginError: ``name`` is not a built-in and a plugin of the group cannot be loaded.
        """
        if self.find(name) is None:
            names = self.names()
            if self._unknown is not None:
                raise self._unknown(name, names) from None
            raise TuneshiftError(f"unknown {self.kind} '{name}'; registered: {', '.join(names)}") from None
        return self._entries[name]

    __getitem__ = get

    def find(self, name: str, plugins: bool = True) -> T | None:
        """The entry called ``name``, or None. The plugins are loaded only when the built-ins do
        not have ``name`` (``plugins=False``: never)."""
        if plugins:
            self._ensure_discovered()
            if not self._has(name):
                self._ensure_loaded()
        return self._entries[name] if self._has(name) else None

    def names(self, plugins: bool = True) -> list[str]:
        """The registered names, sorted (or in registration order for ``sort=False``).

        Args:
            plugins: load the built-ins (``discover``) and plugins first (default). False: only
                what is registered so far, never raising a plugin's error (for text computed at
                import time, such as ``--help``).

        Raises:
            PluginError: (``plugins``) a plugin of the group cannot be loaded.
        """
        if plugins:
            self._ensure_loaded()
        names = list(self._entries)
        return sorted(names) if self._sort else names

    def items(self, plugins: bool = True) -> list[tuple[str, T]]:
        """``[(name, entry), ...]`` in the order of :meth:`names`."""
        names = self.names(plugins)
        return [(n, self._entries[n]) for n in names]

    def values(self, plugins: bool = True) -> list[T]:
        """The entries in the order of :meth:`names`."""
        return [v for _, v in self.items(plugins)]

    def __contains__(self, name: object) -> bool:
        return self.find(name) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
