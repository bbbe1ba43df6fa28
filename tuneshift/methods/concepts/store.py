"""Concepts run directories: a manifest and one Parquet file per finished layer, resumable.

Layout::

    OUT/
      manifest.json               kind "concepts": identity (model, vocabulary, options), info
                                  (sizes, dropped words), package versions, status
      words.parquet               word, frequency, n_tokens (vocabulary order, words with tokens)
      layers/layer-00000.parquet  one row per (layer, component) of a finished layer:
                                  layer, rank, explained_variance_ratio, singular_value,
                                  top_words, scores (|v.e|, descending), projections (signed v.e),
                                  vector (the component, float32, length d_model)

A layer file is written atomically when the layer is done, so an interrupted run resumes by
running the same command again (finished layers are skipped). A directory made with another
model, vocabulary or options is refused (:class:`~tuneshift.errors.RunMismatchError`); the
layer selection is not part of the identity, so layers can be added later.

Source: Wu et al. 2024, feed-forward explanation (see :mod:`tuneshift.methods.concepts.core`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tuneshift.errors import InputFileError, RunMismatchError
from tuneshift.methods.concepts.core import LayerConcepts
from tuneshift.runs.store import _diff, _now, atomic_write_bytes, atomic_write_json, check_out_dir, package_versions, read_manifest

if TYPE_CHECKING:
    import pandas

__all__ = ["ConceptsWriter", "ConceptsResult", "load_concepts", "layer_table", "SCHEMA", "KIND"]

KIND = "concepts"
MANIFEST = "manifest.json"
LAYERS = "layers"
WORDS = "words.parquet"

SCHEMA = pa.schema([
    ("layer", pa.int64()), ("rank", pa.int64()), ("explained_variance_ratio", pa.float64()),
    ("singular_value", pa.float64()),
    ("top_words", pa.list_(pa.string())), ("scores", pa.list_(pa.float32())), ("projections", pa.list_(pa.float32())),
    ("vector", pa.list_(pa.float32())),
])


def layer_table(lc: LayerConcepts, words: Sequence[str]) -> pa.Table:
    """The Parquet table of one layer: one row per kept component (see the module docstring).

    Args:
        lc: the layer's :class:`LayerConcepts`. words: the vocabulary ``word_index`` points into.
    """
    w = np.asarray(words, dtype=object)
    r = lc.pca.components.shape[0]
    return pa.Table.from_pydict({
        "layer": np.full(r, lc.layer, dtype=np.int64), "rank": np.arange(r, dtype=np.int64),
        "explained_variance_ratio": lc.pca.explained_variance_ratio.astype(np.float64),
        "singular_value": lc.pca.singular_values.astype(np.float64),
        "top_words": [w[row].tolist() for row in lc.word_index],
        "scores": [row.astype(np.float32) for row in lc.score],
        "projections": [row.astype(np.float32) for row in lc.projection],
        "vector": [row.astype(np.float32) for row in lc.pca.components],
    }, schema=SCHEMA)


def _layer_path(root: Path, layer: int) -> Path:
    return root / LAYERS / f"layer-{layer:05d}.parquet"


class ConceptsWriter:
    """Creates or resumes a concepts run directory.

    Args:
        path: the directory. identity: what must match to resume (JSON-serialisable).
        info: descriptive manifest content (not compared).

    Raises:
        InputFileError: ``path`` is a file, a non-empty non-run folder, or a run of another kind.
        RunMismatchError: the directory was made with other settings.
    """

    def __init__(self, path: Path, identity: dict, info: dict):
        self.path = Path(path)
        check_out_dir(self.path, kind="concepts")
        self.path.mkdir(parents=True, exist_ok=True)
        identity = json.loads(json.dumps(identity, default=str))
        mf = self.path / MANIFEST
        if mf.exists():
            try:
                old = json.loads(mf.read_text())
            except ValueError as e:
                raise InputFileError(f"{mf} is not valid JSON ({e}); move the directory away or repair it") from None
            if old.get("kind") != KIND:
                raise InputFileError(f"{self.path} holds a tuneshift {old.get('kind', '?')} run, not a concepts run; choose another --out")
            diffs = _diff(old.get("identity", {}), identity)
            if diffs:
                raise RunMismatchError(
                    f"{self.path} holds a concepts run with other settings ({'; '.join(diffs[:4])}); use another --out or the same settings"
                )
            self.manifest = old
            self.manifest["info"] = {**old.get("info", {}), **info}
            self.manifest["resumed"] = True
        else:
            self.manifest = {"tuneshift_run": 1, "kind": KIND, "identity": identity, "info": info,
                             "created": _now(), "package_versions": package_versions(), "status": "running",
                             "resumed": False}
        self.write_manifest()

    def done_layers(self) -> set[int]:
        """Layers whose Parquet file exists."""
        d = self.path / LAYERS
        return {int(p.stem.split("-")[1]) for p in d.glob("layer-*.parquet")} if d.is_dir() else set()

    def write_words(self, table: pa.Table) -> None:
        """Write ``words.parquet`` atomically."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        atomic_write_bytes(self.path / WORDS, sink.getvalue().to_pybytes())

    def write_layer(self, lc: LayerConcepts, words: Sequence[str]) -> None:
        """Write one finished layer atomically."""
        sink = pa.BufferOutputStream()
        pq.write_table(layer_table(lc, words), sink, compression="zstd")
        atomic_write_bytes(_layer_path(self.path, lc.layer), sink.getvalue().to_pybytes())

    def write_manifest(self, **updates) -> None:
        """Update and rewrite ``manifest.json`` atomically."""
        self.manifest.update(updates)
        self.manifest["updated"] = _now()
        atomic_write_json(self.path / MANIFEST, self.manifest)


@dataclass
class ConceptsResult:
    """A concepts run read back from disk.

    Attributes:
        path: the directory. manifest: parsed ``manifest.json``.
        table: pandas DataFrame, one row per (layer, component), sorted by layer, rank; list
            columns ``top_words``, ``scores``, ``projections`` (Python lists) and ``vector``
            (float32 numpy arrays).
    """

    path: Path
    manifest: dict
    table: "pandas.DataFrame"

    @property
    def layers(self) -> list[int]:
        """Finished layers, ascending."""
        return sorted(int(x) for x in self.table["layer"].unique())

    @property
    def model_name(self) -> str:
        """The model spec of the run."""
        return str(self.manifest.get("identity", {}).get("model", {}).get("spec", "?"))

    @property
    def d_model(self) -> int | None:
        """Residual width of the model (None if unknown)."""
        d = self.manifest.get("info", {}).get("d_model")
        return int(d) if d is not None else None

    def components(self, layer: int) -> np.ndarray:
        """``[R, d_model]`` float64 component vectors of ``layer`` (rank order).

        Raises:
            KeyError: the layer is not in the run.
        """
        g = self.table[self.table["layer"] == layer]
        if g.empty:
            raise KeyError(layer)
        return np.stack([np.asarray(v, dtype=np.float64) for v in g["vector"]])

    def words(self, layer: int, rank: int) -> list[tuple[str, float]]:
        """Top words of one component with their scores.

        Raises:
            KeyError: no such (layer, rank).
        """
        t = self.table
        r = t[(t["layer"] == layer) & (t["rank"] == rank)]
        if r.empty:
            raise KeyError((layer, rank))
        row = r.iloc[0]
        return list(zip(list(row.top_words), [float(s) for s in row.scores]))


def load_concepts(path) -> ConceptsResult:
    """Read a concepts run directory (finished layers only).

    Raises:
        InputFileError: not a directory, no/invalid manifest, not a concepts run, unreadable layers.
    """
    p, manifest = read_manifest(path, "concepts run")
    if manifest.get("kind") != KIND:
        raise InputFileError(f"{p} is a tuneshift {manifest.get('kind', '?')} run, not a concepts run (made by `tuneshift concepts`)")
    parts = sorted((p / LAYERS).glob("layer-*.parquet")) if (p / LAYERS).is_dir() else []
    try:
        tables = [pq.read_table(x, schema=SCHEMA) for x in parts]
    except (pa.ArrowException, OSError) as e:
        raise InputFileError(f"cannot read the layers of {p}: {str(e).splitlines()[0]}") from None
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    df = table.to_pandas()
    for c in ("top_words", "scores", "projections"):
        df[c] = [list(x) if x is not None else [] for x in df[c]]
    df["vector"] = [np.asarray(x, dtype=np.float32) if x is not None else np.zeros(0, np.float32) for x in df["vector"]]
    df = df.sort_values(["layer", "rank"], kind="stable").reset_index(drop=True)
    return ConceptsResult(p, manifest, df)
