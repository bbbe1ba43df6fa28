"""One way to turn every result into JSON and back: ``to_dict/from_dict/save(dir)/load(dir)``.

Every result type of tuneshift (comparisons, heads and concepts comparisons, paper tables,
following evaluations, ...) is a dataclass that inherits :class:`Result`:

* ``to_dict()`` -- a JSON-ready dict: nested dataclasses become dicts, numpy arrays and scalars
  become lists and Python numbers, and every non-finite float (an undefined statistic) becomes
  ``None`` (JSON ``null``) through :func:`nan_to_none`, the one NaN -> null helper.
* ``from_dict(d)`` -- the inverse, driven by the dataclass's type hints: ``None`` in a ``float``
  field comes back as NaN (in a ``float | None`` field as None), nested dataclasses, ``list[...]``, ``dict[str, ...]``, tuples and
  ``X | None`` are rebuilt.
* ``save(dir)`` -- writes ``dir/<FILE>`` atomically; ``load(dir_or_file)`` reads it back.

JSON only: no pickle anywhere. Results do not render themselves: their Markdown twins
(``<FILE stem>.md``) are written by :func:`tuneshift.reports.markdown.save_with_markdown`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from tuneshift.errors import InputFileError

__all__ = ["Result", "nan_to_none", "to_jsonable"]

R = TypeVar("R", bound="Result")


def to_jsonable(x: Any) -> Any:
    """Dataclasses, numpy arrays/scalars, tuples, Paths -> plain JSON types (NaN kept as float)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, Path):
        return str(x)
    return x


def nan_to_none(x: Any) -> Any:
    """Replace every non-finite float (NaN, +-inf) in nested dicts/lists by ``None``.

    The one NaN -> null helper: an undefined statistic (a t-test on one value, a mean of
    nothing) is ``null`` in every JSON file tuneshift writes.
    """
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    return x


def _origin(tp):
    return typing.get_origin(tp)


def _from_json(tp: Any, v: Any) -> Any:
    """Rebuild a value of type ``tp`` from its JSON form."""
    if tp is Any or tp is None:
        return v
    origin = _origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if v is None:
            return None
        return _from_json(args[0], v) if len(args) == 1 else v
    if tp is float:
        return float("nan") if v is None else float(v)
    if tp is int:
        return v if v is None else int(v)
    if tp in (str, bool):
        return v
    if tp is np.ndarray:
        return np.asarray(
            [np.nan if e is None else e for e in v] if isinstance(v, list) and v and not isinstance(v[0], list) else v
        )
    if dataclasses.is_dataclass(tp):
        return _build(tp, v)
    if origin in (list, typing.List):
        (arg,) = typing.get_args(tp) or (Any,)
        return [_from_json(arg, e) for e in v]
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], e) for e in v)
        return tuple(_from_json(a, e) for a, e in zip(args, v)) if args else tuple(v)
    if origin in (dict, typing.Dict):
        args = typing.get_args(tp)
        val = args[1] if len(args) == 2 else Any
        return {k: _from_json(val, e) for k, e in v.items()}
    return v


def _build(cls: type, d: dict) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in d:
            kwargs[f.name] = _from_json(hints.get(f.name, Any), d[f.name])
    return cls(**kwargs)


class Result:
    """Mixin for result dataclasses: ``to_dict/from_dict/save/load`` (see the module docstring).

    Class attributes:
        FILE: the JSON file name used by :meth:`save`/:meth:`load` (e.g. ``comparison.json``).
    """

    FILE: ClassVar[str] = "result.json"

    def to_dict(self) -> dict:
        """JSON-ready dict; NaN/inf become ``None``."""
        return nan_to_none(to_jsonable(self))

    @classmethod
    def from_dict(cls: type[R], d: dict) -> R:
        """Inverse of :meth:`to_dict` (``None`` in float fields -> NaN).

        Raises:
            InputFileError: ``d`` does not have the fields of this result.
        """
        try:
            return _build(cls, d)
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise InputFileError(f"not a {cls.__name__} ({type(e).__name__}: {e})") from None

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``out_dir/FILE`` (JSON only), atomically.

        The Markdown twin is written by :func:`tuneshift.reports.markdown.save_with_markdown`.

        Returns:
            ``{"json": path}`` (subclasses that write more files add their paths).

        Raises:
            InputFileError: ``out_dir`` is a file.
        """
        from tuneshift.files import atomic_write_json

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputFileError(f"output directory {out} is a file, not a directory")
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / self.FILE}
        atomic_write_json(paths["json"], self.to_dict())
        return paths

    @classmethod
    def load(cls: type[R], path: str | os.PathLike) -> R:
        """Read a result written by :meth:`save` (the directory, or the JSON file itself).

        Raises:
            InputFileError: missing, unreadable or malformed file.
        """
        p = Path(path)
        f = p / cls.FILE if p.is_dir() else p
        if not f.is_file():
            raise InputFileError(f"{f} does not exist (expected a {cls.__name__} written by tuneshift)")
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise InputFileError(f"cannot read {f}: {e}") from None
        if not isinstance(d, dict):
            raise InputFileError(f"{f} does not hold a {cls.__name__}")
        try:
            return cls.from_dict(d)
        except InputFileError:
            raise InputFileError(
                f"{f} is not a {cls.__name__} written by tuneshift (missing or malformed fields)"
            ) from None


class ResultDirectory:
    """Mixin for results stored as a directory: a ``manifest.json`` and Parquet tables
    (attribution runs, heads runs, concepts runs).

    The same interface as :class:`Result`, on a directory instead of one JSON file:

    * ``load(dir)`` (classmethod) reads the directory;
    * ``save(dir)`` writes a complete copy of the result into a new or empty directory: the
      tables from memory (:meth:`_tables`, :meth:`_json_files`), the directory's other result
      files copied (:meth:`_extra_files`), every file atomically, the manifest last (a copy interrupted
      half-way has no manifest, so it is not mistaken for a result);
    * ``to_dict()`` is the manifest plus a small summary of counts (:meth:`summary`), not the
      tables.

    Subclasses have ``path`` (the directory read) and ``manifest`` (its parsed manifest) attributes
    and implement ``load``, :meth:`_tables` and :meth:`summary`.
    """

    path: Path
    manifest: dict

    @classmethod
    def load(cls, path: str | os.PathLike):  # pragma: no cover - implemented by subclasses
        """Read a result directory."""
        raise NotImplementedError

    def summary(self) -> dict:  # pragma: no cover - implemented by subclasses
        """Counts describing the tables (layers, rows, records...)."""
        raise NotImplementedError

    def _tables(self) -> dict[str, Any]:  # pragma: no cover - implemented by subclasses
        """``{relative path: pyarrow.Table}`` to write; the tables that make up the result."""
        raise NotImplementedError

    def _json_files(self) -> dict[str, Any]:
        """``{relative path: JSON-ready object}`` to write besides the manifest (e.g. ``skipped.json``)."""
        return {}

    def _extra_files(self) -> list[str]:
        """Relative paths of other result files, copied from :attr:`path` when they exist."""
        return []

    def to_dict(self) -> dict:
        """``{"kind", "path", "manifest", "summary"}``, JSON-ready (NaN -> ``None``)."""
        return nan_to_none(
            to_jsonable(
                {
                    "kind": self.manifest.get("kind", "attribution"),
                    "path": str(self.path),
                    "manifest": self.manifest,
                    "summary": self.summary(),
                }
            )
        )

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write a complete copy of this result into ``out_dir`` (see the class docstring).

        Returns:
            ``{relative path: written path}``, the manifest last.

        Raises:
            InputFileError: ``out_dir`` is a file, or a directory that is not empty (this
                includes the result's own directory).
        """
        from tuneshift.files import MANIFEST, atomic_copy, atomic_write_json, atomic_write_parquet

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputFileError(f"output directory {out} is a file, not a directory")
        if out.is_dir() and any(out.iterdir()):
            raise InputFileError(f"output directory {out} is not empty; save a result into a new or empty directory")
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for rel, table in self._tables().items():
            atomic_write_parquet(out / rel, table)
            written[rel] = out / rel
        for rel, obj in self._json_files().items():
            atomic_write_json(out / rel, obj)
            written[rel] = out / rel
        for rel in self._extra_files():
            if (Path(self.path) / rel).is_file():
                atomic_copy(Path(self.path) / rel, out / rel)
                written[rel] = out / rel
        atomic_write_json(out / MANIFEST, self.manifest)
        written[MANIFEST] = out / MANIFEST
        return written
