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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pyarrow as pa

from tuneshift.methods.concepts.core import LayerConcepts
from tuneshift.storage.layered import LayeredResult, LayeredRunWriter

if TYPE_CHECKING:
    import pandas

__all__ = ["ConceptsWriter", "ConceptsResult", "load_concepts", "layer_table", "SCHEMA", "KIND"]

KIND = "concepts"
ANNOTATION_FILES = ("annotations.parquet", "annotations.json")
"""What ``tuneshift annotate`` adds to a concepts directory (besides its answer cache)."""

SCHEMA = pa.schema(
    [
        ("layer", pa.int64()),
        ("rank", pa.int64()),
        ("explained_variance_ratio", pa.float64()),
        ("singular_value", pa.float64()),
        ("top_words", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float32())),
        ("projections", pa.list_(pa.float32())),
        ("vector", pa.list_(pa.float32())),
    ]
)


def layer_table(lc: LayerConcepts, words: Sequence[str]) -> pa.Table:
    """The Parquet table of one layer: one row per kept component (see the module docstring).

    Args:
        lc: the layer's :class:`LayerConcepts`. words: the vocabulary ``word_index`` points into.
    """
    w = np.asarray(words, dtype=object)
    r = lc.pca.components.shape[0]
    return pa.Table.from_pydict(
        {
            "layer": np.full(r, lc.layer, dtype=np.int64),
            "rank": np.arange(r, dtype=np.int64),
            "explained_variance_ratio": lc.pca.explained_variance_ratio.astype(np.float64),
            "singular_value": lc.pca.singular_values.astype(np.float64),
            "top_words": [w[row].tolist() for row in lc.word_index],
            "scores": [row.astype(np.float32) for row in lc.score],
            "projections": [row.astype(np.float32) for row in lc.projection],
            "vector": [row.astype(np.float32) for row in lc.pca.components],
        },
        schema=SCHEMA,
    )


class ConceptsWriter(LayeredRunWriter):
    """Creates or resumes a concepts run directory (see :class:`~tuneshift.storage.layered.LayeredRunWriter`)."""

    KIND = "concepts"

    def write_layer(self, lc: LayerConcepts, words: Sequence[str]) -> None:
        """Write one finished layer atomically."""
        self.write_layer_table(lc.layer, layer_table(lc, words))


@dataclass
class ConceptsResult(LayeredResult):
    """A concepts run read back from disk: ``ConceptsResult.load(dir)``, ``save(dir)`` (a complete
    copy: manifest, ``words.parquet``, one Parquet file per layer, and the annotations
    ``annotations.parquet``/``annotations.json`` when present; not the annotator's answer cache),
    ``to_dict()`` (manifest and :meth:`summary`); see :class:`~tuneshift.storage.layered.LayeredResult`.

    Attributes:
        path: the directory. manifest: parsed ``manifest.json``.
        table: pandas DataFrame, one row per (layer, component), sorted by layer, rank; list
            columns ``top_words``, ``scores``, ``projections`` (Python lists) and ``vector``
            (float32 numpy arrays, ``[d_model]``).
    """

    KIND = KIND
    SCHEMA = SCHEMA
    LIST_COLUMNS = ("top_words", "scores", "projections")
    SORT = ("layer", "rank")
    EXTRA_FILES = ANNOTATION_FILES

    path: Path
    manifest: dict
    table: "pandas.DataFrame"

    @staticmethod
    def _prepare(df):
        df["vector"] = [
            np.asarray(x, dtype=np.float32) if x is not None else np.zeros(0, np.float32) for x in df["vector"]
        ]
        return df

    def summary(self) -> dict:
        """``{"layers", "n_components", "d_model", "annotated"}``: finished layers, rows of
        :attr:`table`, the residual width, and whether the directory has annotations."""
        return {
            "layers": self.layers,
            "n_components": len(self.table),
            "d_model": self.d_model,
            "annotated": (Path(self.path) / ANNOTATION_FILES[0]).is_file(),
        }

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
    """Read a concepts run directory: the same as :meth:`ConceptsResult.load`.

    Raises:
        InputFileError: not a directory, no/invalid manifest, not a concepts run, unreadable layers.
    """
    return ConceptsResult.load(path)
