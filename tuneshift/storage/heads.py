"""Heads run directories: a manifest and one Parquet file per finished layer, resumable.

Layout::

    OUT/
      manifest.json               kind "heads": identity (model, vocabulary, vectors, options),
                                  info (sizes, dropped words, missing vectors), versions, status
      words.parquet               word, frequency, n_tokens, has_vector, theta (vocabulary order)
      layers/layer-00000.parquet  one row per (layer, head, dimension) of a finished layer:
                                  layer, head, dim, rank, energy, query_word, key_word, cos
                                  (the kept pairs, sorted by cos descending; lists of equal length)

A layer file is written atomically when the whole layer is done, so an interrupted run is
resumed by running the same command again (finished layers are skipped). A directory made with
another model, vocabulary, vectors or options is refused (:class:`RunMismatchError`); the layer
selection is not part of the identity, so more layers can be added later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pyarrow as pa

from tuneshift.methods.heads.core import LayerPairs
from tuneshift.storage.layered import LayeredResult, LayeredRunWriter

if TYPE_CHECKING:
    import pandas

__all__ = ["HeadsWriter", "HeadsResult", "load_heads", "layer_table", "SCHEMA"]


SCHEMA = pa.schema(
    [
        ("layer", pa.int64()),
        ("head", pa.int64()),
        ("dim", pa.int64()),
        ("rank", pa.int64()),
        ("energy", pa.float64()),
        ("query_word", pa.list_(pa.string())),
        ("key_word", pa.list_(pa.string())),
        ("cos", pa.list_(pa.float32())),
    ]
)


def layer_table(lp: LayerPairs, words: Sequence[str]) -> pa.Table:
    """The Parquet table of one layer (see the module docstring)."""
    w = np.asarray(words, dtype=object)
    offsets = pa.array(lp.offsets.astype(np.int32), type=pa.int32())

    def col(values, typ):
        return pa.ListArray.from_arrays(offsets, pa.array(values, type=typ))

    return pa.Table.from_arrays(
        [
            pa.array(np.full(lp.head.shape[0], lp.layer, dtype=np.int64)),
            pa.array(lp.head),
            pa.array(lp.dim),
            pa.array(lp.rank),
            pa.array(lp.energy),
            col(w[lp.query_idx].tolist(), pa.string()),
            col(w[lp.key_idx].tolist(), pa.string()),
            col(lp.cos, pa.float32()),
        ],
        schema=SCHEMA,
    )


class HeadsWriter(LayeredRunWriter):
    """Creates or resumes a heads run directory (see :class:`~tuneshift.storage.layered.LayeredRunWriter`)."""

    KIND = "heads"

    def write_layer(self, lp: LayerPairs, words: Sequence[str]) -> None:
        """Write one finished layer atomically."""
        self.write_layer_table(lp.layer, layer_table(lp, words))


@dataclass
class HeadsResult(LayeredResult):
    """A heads run read back from disk: ``HeadsResult.load(dir)``, ``save(dir)`` (a complete
    copy: manifest, ``words.parquet``, one Parquet file per layer), ``to_dict()`` (manifest and
    :meth:`summary`); see :class:`~tuneshift.storage.layered.LayeredResult`.

    Attributes:
        path: the directory. manifest: parsed ``manifest.json``.
        table: pandas DataFrame, one row per (layer, head, dimension), sorted by layer, head, rank;
            list columns ``query_word``, ``key_word``, ``cos`` (Python lists of equal length).
    """

    KIND = "heads"
    SCHEMA = SCHEMA
    LIST_COLUMNS = ("query_word", "key_word", "cos")
    SORT = ("layer", "head", "rank")

    path: Path
    manifest: dict
    table: "pandas.DataFrame"

    def summary(self) -> dict:
        """``{"layers", "n_layers", "n_heads", "n_dimensions", "n_pairs"}``: finished layers, the
        model's layers and heads per layer, rows of :attr:`table`, and kept pairs."""
        return {
            "layers": self.layers,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_dimensions": len(self.table),
            "n_pairs": int(sum(len(q) for q in self.table["query_word"])),
        }

    @property
    def n_layers(self) -> int:
        return int(self.manifest.get("info", {}).get("n_layers", (max(self.layers) + 1) if self.layers else 0))

    @property
    def n_heads(self) -> int:
        return int(self.manifest.get("info", {}).get("n_heads", self.table["head"].max() + 1 if len(self.table) else 0))

    @property
    def vectors(self) -> str:
        return str(self.manifest.get("identity", {}).get("vectors", "?"))

    def pairs(self, layer: int, head: int, rank: int = 0) -> list[tuple[str, str, float]]:
        """Kept pairs of one dimension (by rank) of a head."""
        t = self.table
        r = t[(t["layer"] == layer) & (t["head"] == head) & (t["rank"] == rank)]
        if r.empty:
            raise KeyError((layer, head, rank))
        row = r.iloc[0]
        return list(zip(list(row.query_word), list(row.key_word), [float(c) for c in row.cos]))

    def knowledge(self) -> dict[tuple[int, int], set[frozenset]]:
        """Per (layer, head): the pairs (lower-cased, order-free, a word never paired with itself)
        found in more than one dimension of that head (Wu et al. 2024, Sec. 4: a head "encodes" a
        word pair when several of its query/key dimensions keep it). Every (layer, head) of
        :attr:`table` is a key, with an empty set when no pair repeats.

        Computed once per result (memoised), vectorised over all kept pairs (about 4x faster than
        a loop per dimension on the demo's runs); tested equal to that loop in
        ``tests/test_heads_compare.py``.

        Returns:
            ``{(layer, head): {frozenset({word_a, word_b}), ...}}``.
        """
        cached = self.__dict__.get("_knowledge")
        if cached is not None:
            return cached
        from itertools import chain

        import pandas as pd
        import pyarrow.compute as pc

        t = self.table
        out: dict[tuple[int, int], set[frozenset]] = {
            (int(la), int(h)): set() for la, h in t[["layer", "head"]].drop_duplicates().itertuples(index=False)
        }
        lengths = t["query_word"].map(len).to_numpy()
        if lengths.sum():
            row = np.repeat(np.arange(len(t)), lengths)
            lower = [
                pc.utf8_lower(pa.array(list(chain.from_iterable(t[c])), type=pa.string()))
                for c in ("query_word", "key_word")
            ]
            codes, uniques = pd.factorize(np.concatenate([x.to_numpy(zero_copy_only=False) for x in lower]))
            q, k = codes[: len(row)], codes[len(row) :]
            keep = q != k
            v = np.int64(len(uniques))
            a, b = np.minimum(q, k)[keep].astype(np.int64), np.maximum(q, k)[keep].astype(np.int64)
            # one pair counts once per dimension (row), then pairs kept in more than one row of a head
            per_row = _sorted_unique((row[keep].astype(np.int64) * v + a) * v + b)
            layer, head = t["layer"].to_numpy(dtype=np.int64), t["head"].to_numpy(dtype=np.int64)
            n_heads = int(head.max()) + 1
            keys = np.sort((layer * n_heads + head)[per_row // (v * v)] * v * v + per_row % (v * v))
            repeated = _sorted_unique(keys[1:][keys[1:] == keys[:-1]])
            for key in repeated.tolist():
                lh, ab = divmod(key, int(v) * int(v))
                out[divmod(lh, n_heads)].add(frozenset((uniques[ab // int(v)], uniques[ab % int(v)])))
        self.__dict__["_knowledge"] = out
        return out


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-d integer array (sort-based; numpy's hash path is slower here)."""
    x = np.sort(x)
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if len(x) else x


def load_heads(path) -> HeadsResult:
    """Read a heads run directory: the same as :meth:`HeadsResult.load`.

    Raises:
        InputFileError: not a directory, no/invalid manifest, not a heads run, unreadable layers.
    """
    return HeadsResult.load(path)
