"""Result directories written one model layer at a time (heads, concepts).

Layout::

    DIR/manifest.json            kind, identity (what must match to resume), info, times
    DIR/words.parquet            the vocabulary the layers refer to
    DIR/layers/layer-00000.parquet  one file per finished layer, written atomically

A rerun skips finished layers; a directory made with other settings, or holding another
kind of result, is refused with the differing keys named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from tuneshift.errors import InputFileError
from tuneshift.results import ResultDirectory
from tuneshift import files

LAYERS = "layers"
WORDS = "words.parquet"


def layer_path(root: Path, layer: int) -> Path:
    """Path of one layer's Parquet file inside a layered result directory."""
    return Path(root) / LAYERS / f"layer-{layer:05d}.parquet"


class LayeredRunWriter:
    """Creates or resumes a layered result directory of kind :attr:`KIND`.

    Args:
        path: the directory. identity: what must match to resume (JSON-serialisable).
        info: descriptive manifest content (not compared).
        legacy: top-level identity entries that older directories lack, with the value they
            stand for (see :func:`tuneshift.files.existing_manifest`).

    Raises:
        InputFileError: ``path`` is a file, a non-empty non-run folder, or a run of another kind.
        RunMismatchError: the directory was made with other settings.
    """

    KIND = ""

    def __init__(self, path: Path, identity: dict, info: dict, legacy: dict | None = None):
        kind = self.KIND
        self.path = Path(path)
        files.check_out_dir(self.path, kind=kind)
        self.path.mkdir(parents=True, exist_ok=True)
        identity = json.loads(json.dumps(identity, default=str))
        old = files.existing_manifest(self.path, identity, kind, legacy=legacy)
        if old is not None:
            self.manifest = old
            self.manifest["info"] = {**old.get("info", {}), **info}
            self.manifest["resumed"] = True
        else:
            self.manifest = {"tuneshift_run": 1, "kind": kind, "identity": identity, "info": info,
                             "created": files.now(), "package_versions": files.package_versions(), "status": "running",
                             "resumed": False}
        self.write_manifest()

    def done_layers(self) -> set[int]:
        """Layers whose Parquet file exists."""
        d = self.path / LAYERS
        return {int(p.stem.split("-")[1]) for p in d.glob("layer-*.parquet")} if d.is_dir() else set()

    def write_words(self, table: pa.Table) -> None:
        """Write ``words.parquet`` atomically."""
        files.atomic_write_parquet(self.path / WORDS, table)

    def write_layer_table(self, layer: int, table: pa.Table) -> None:
        """Write one finished layer's table atomically."""
        files.atomic_write_parquet(layer_path(self.path, layer), table)

    def write_manifest(self, **updates) -> None:
        """Update and rewrite ``manifest.json`` atomically."""
        self.manifest.update(updates)
        self.manifest["updated"] = files.now()
        files.atomic_write_json(self.path / files.MANIFEST, self.manifest)


class LayeredResult(ResultDirectory):
    """A layered result directory read back from disk (heads, concepts): ``load(dir)``,
    ``save(dir)`` (a complete copy: the layer files from :attr:`table`, ``words.parquet`` and
    :attr:`EXTRA_FILES` copied, the manifest last), ``to_dict()`` (manifest and ``summary()``).

    Subclasses are dataclasses with the fields ``path`` (the directory), ``manifest`` (its
    parsed manifest) and ``table`` (pandas DataFrame, one row per layer-file row, sorted by
    :attr:`SORT`), and set the class attributes below.

    Class attributes:
        KIND: the manifest ``kind``. SCHEMA: the layer files' Arrow schema.
        LIST_COLUMNS: list columns read as Python lists. SORT: the table's sort order.
        EXTRA_FILES: other files of the directory copied by ``save`` when present.
    """

    KIND: ClassVar[str] = ""
    SCHEMA: ClassVar[pa.Schema]
    LIST_COLUMNS: ClassVar[tuple[str, ...]] = ()
    SORT: ClassVar[tuple[str, ...]] = ("layer",)
    EXTRA_FILES: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def load(cls, path):
        """Read the directory (finished layers only).

        Raises:
            InputFileError: not a directory, no/invalid manifest, another kind, unreadable layers.
        """
        p, manifest, table = read_layered_run(path, cls.KIND, cls.SCHEMA)
        df = table.to_pandas()
        for c in cls.LIST_COLUMNS:
            df[c] = [list(x) if x is not None else [] for x in df[c]]
        df = cls._prepare(df).sort_values(list(cls.SORT), kind="stable").reset_index(drop=True)
        return cls(p, manifest, df)

    @staticmethod
    def _prepare(df):
        """Column conversions after reading (default: none)."""
        return df

    @property
    def layers(self) -> list[int]:
        """Finished layers, ascending."""
        return sorted(int(x) for x in self.table["layer"].unique())

    @property
    def model_name(self) -> str:
        """The model spec of the run."""
        return str(self.manifest.get("identity", {}).get("model", {}).get("spec", "?"))

    def _tables(self) -> dict[str, pa.Table]:
        return layer_tables(self.table, self.SCHEMA)

    def _extra_files(self) -> list[str]:
        return [WORDS, *self.EXTRA_FILES]


def layer_tables(df, schema: pa.Schema) -> dict[str, pa.Table]:
    """The per-layer Parquet tables of a layered result held as one DataFrame.

    Args:
        df: pandas DataFrame with the columns of ``schema`` (and a ``layer`` column).
        schema: the layer files' Arrow schema.

    Returns:
        ``{"layers/layer-00000.parquet": table, ...}`` (relative paths), rows in ``df`` order.
    """
    return {str(layer_path(Path(), int(layer))): pa.Table.from_pandas(g[schema.names], schema=schema, preserve_index=False)
            for layer, g in df.groupby("layer", sort=True)}


def read_layered_run(path, kind: str, schema: pa.Schema) -> tuple[Path, dict, pa.Table]:
    """Read a layered result directory: its manifest and every finished layer, concatenated.

    Args:
        path: the directory. kind: the manifest ``kind`` it must hold (``heads``, ``concepts``;
            also the command that makes it). schema: the layer files' Arrow schema.

    Returns:
        ``(path, manifest, table)``; the table is empty (with ``schema``) when no layer is done.

    Raises:
        InputFileError: not a directory, no/invalid manifest, another kind, unreadable layers.
    """
    p, manifest = files.read_manifest(path, f"{kind} run")
    if manifest.get("kind") != kind:
        raise InputFileError(f"{p} is a tuneshift {manifest.get('kind', '?')} run, not a {kind} run "
                             f"(made by `tuneshift {kind}`)")
    parts = sorted((p / LAYERS).glob("layer-*.parquet")) if (p / LAYERS).is_dir() else []
    try:
        tables = [pq.read_table(x, schema=schema) for x in parts]
    except (pa.ArrowException, OSError) as e:
        raise InputFileError(f"cannot read the layers of {p}: {str(e).splitlines()[0]}") from None
    return p, manifest, (pa.concat_tables(tables) if tables else schema.empty_table())
