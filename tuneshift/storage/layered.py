"""Result directories written one model layer at a time (heads, concepts).

Layout::

    DIR/manifest.json            kind, identity (what must match to resume), info, times
    DIR/words.parquet            the vocabulary the layers refer to
    DIR/layers/layer-00000.parquet  one file per finished layer, written atomically

A rerun skips finished layers; a directory made with other settings, or holding another
kind of result, is refused with the differing keys named. :meth:`LayeredRunWriter.run` owns
the loop of such a run (plan, compute and write each layer, finish the manifest); the heads and
concepts drivers give it their per-layer computation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from tuneshift import files, interrupts
from tuneshift.errors import InputFileError, OptionError
from tuneshift.results import ResultDirectory

LAYERS = "layers"
WORDS = "words.parquet"


def layer_path(root: Path, layer: int) -> Path:
    """Path of one layer's Parquet file inside a layered result directory."""
    return Path(root) / LAYERS / f"layer-{layer:05d}.parquet"


@dataclass
class LayerPlan:
    """What a layered run still computes (:meth:`LayeredRunWriter.plan`).

    Attributes:
        todo: the selected layers without a finished file, in selection order.
        skipped: the selected layers already on disk, in selection order.
    """

    todo: list[int]
    skipped: list[int]


@dataclass
class LayeredRunOutcome:
    """What :meth:`LayeredRunWriter.run` did.

    Attributes:
        path: the directory. layers_done: layers computed now. layers_skipped: selected layers
        already on disk. status: ``complete`` (every layer of the model is on disk) or
        ``partial``. counts: the manifest's ``counts`` of this invocation
        (``layers_this_run``, the tallies, ``seconds`` rounded to 0.1). seconds: wall time since
        ``started``.
    """

    path: Path
    layers_done: list[int]
    layers_skipped: list[int]
    status: str
    counts: dict
    seconds: float


#: what a per-layer function of :meth:`LayeredRunWriter.run` returns: the layer's table, or the
#: table and this layer's numbers of the run's tallies (``{"pairs_this_run": 120}``).
LayerOutput = pa.Table | tuple[pa.Table, Mapping[str, float]]


class LayeredRunWriter:
    """Creates or resumes a layered result directory of kind :attr:`KIND`, and runs its loop.

    The manifest lifecycle is that of every resumable run (:func:`tuneshift.files.open_manifest`,
    :func:`tuneshift.files.finish_manifest`): opened here (created, or resumed with the ``info``
    updated and ``resumed`` true), then :meth:`run` plans the layers left, computes and writes
    each one, and finishes the manifest with its status, counts and one ``history`` entry. A
    driver (``run_heads``, ``run_concepts``) keeps only its setup and its per-layer function,
    as inseq's ``FeatureAttribution.attribute`` drives ``attribute_step``.

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
        identity, old = files.open_manifest(self.path, identity, kind, legacy=legacy)
        self.path.mkdir(parents=True, exist_ok=True)
        if old is not None:
            self.manifest = old
            self.manifest["info"] = {**old.get("info", {}), **info}
            self.manifest["resumed"] = True
        else:
            self.manifest = {
                "tuneshift_run": 1,
                "kind": kind,
                "identity": identity,
                "info": info,
                "created": files.now(),
                "package_versions": files.package_versions(),
                "status": "running",
                "resumed": False,
            }
        self.write_manifest()

    def done_layers(self) -> set[int]:
        """Layers whose Parquet file exists."""
        d = self.path / LAYERS
        return {int(p.stem.split("-")[1]) for p in d.glob("layer-*.parquet")} if d.is_dir() else set()

    def plan(self, layers: Sequence[int]) -> LayerPlan:
        """Split the selected ``layers`` into those left to compute and those already on disk."""
        done = self.done_layers()
        return LayerPlan([l for l in layers if l not in done], [l for l in layers if l in done])

    def write_words(self, table: pa.Table) -> None:
        """Write ``words.parquet`` atomically."""
        files.atomic_write_parquet(self.path / WORDS, table)

    def ensure_words(self, table: pa.Table | Callable[[], pa.Table]) -> None:
        """Write ``words.parquet`` unless it exists (a resumed run keeps its file).

        Args:
            table: the table, or a function that makes it (called only when it is written).
        """
        if not (self.path / WORDS).exists():
            self.write_words(table() if callable(table) else table)

    def write_layer_table(self, layer: int, table: pa.Table) -> None:
        """Write one finished layer's table atomically."""
        files.atomic_write_parquet(layer_path(self.path, layer), table)

    def write_manifest(self, **updates) -> None:
        """Update and rewrite ``manifest.json`` atomically."""
        self.manifest.update(updates)
        self.manifest["updated"] = files.now()
        files.atomic_write_json(self.path / files.MANIFEST, self.manifest)

    def run(
        self,
        layers: Sequence[int],
        compute_layer: Callable[[int], LayerOutput],
        *,
        n_layers: int,
        tallies: Sequence[str] = (),
        units_per_layer: int = 1,
        on_start: Callable[[int], None] | None = None,
        on_layer_done: Callable[[int], None] | None = None,
        started: float | None = None,
    ) -> LayeredRunOutcome:
        """Compute and write every selected layer not yet on disk, then finish the manifest.

        Plans what is left (:meth:`plan`), calls ``compute_layer(layer)`` for each layer left in
        order, writes its table atomically (:meth:`write_layer_table`) and then counts the layer
        done. Each finished layer is a safe point for Ctrl-C (:func:`tuneshift.interrupts.check`).
        An interruption (``KeyboardInterrupt``, or any error of ``compute_layer``) propagates:
        finished layers stay on disk and the manifest is not finished, so the same call resumes.
        At the end the manifest gets ``status`` (``complete`` when every layer of the model is on
        disk, else ``partial``), ``layers_done``, ``counts`` and a ``history`` entry
        (:func:`tuneshift.files.finish_manifest`).

        Args:
            layers: the selected layers (ascending, distinct).
            compute_layer: ``layer -> table`` (the layer file's Arrow table), or ``layer ->
                (table, {tally: number})``.
            n_layers: the model's number of layers (for the status).
            tallies: names of the numbers summed over this invocation's layers into ``counts``
                (each 0 when no layer is computed), between ``layers_this_run`` and ``seconds``.
            units_per_layer: progress units per layer (``on_start`` gets layers left x this).
            on_start: called once with the number of units to compute.
            on_layer_done: called with each layer index once its file is written.
            started: ``time.time()`` at the start of the driver (``seconds`` count from there;
                default: now).

        Returns:
            :class:`LayeredRunOutcome`.

        Raises:
            KeyboardInterrupt: a pending Ctrl-C; whatever ``compute_layer`` raises.
        """
        t0 = time.time() if started is None else started
        plan = self.plan(layers)
        if on_start is not None:
            on_start(len(plan.todo) * units_per_layer)
        totals = {name: 0 for name in tallies}
        for layer in plan.todo:
            out = compute_layer(layer)
            table, numbers = out if isinstance(out, tuple) else (out, {})
            self.write_layer_table(layer, table)
            for name, value in numbers.items():
                totals[name] += value
            if on_layer_done is not None:
                on_layer_done(layer)
            interrupts.check()
        return self._finish(plan, n_layers, totals, t0)

    def _finish(self, plan: LayerPlan, n_layers: int, totals: dict, started: float) -> LayeredRunOutcome:
        """Status, layers done, counts and a history entry into the manifest (written)."""
        all_done = self.done_layers()
        status = "complete" if all_done >= set(range(n_layers)) else "partial"
        seconds = time.time() - started
        counts = {"layers_this_run": plan.todo, **totals, "seconds": round(seconds, 1)}
        files.finish_manifest(self.manifest, status, history=counts, layers_done=sorted(all_done), counts=counts)
        self.write_manifest()
        return LayeredRunOutcome(self.path, plan.todo, plan.skipped, status, counts, seconds)


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
    return {
        str(layer_path(Path(), int(layer))): pa.Table.from_pandas(g[schema.names], schema=schema, preserve_index=False)
        for layer, g in df.groupby("layer", sort=True)
    }


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
        raise InputFileError(
            f"{p} is a tuneshift {manifest.get('kind', '?')} run, not a {kind} run (made by `tuneshift {kind}`)"
        )
    parts = sorted((p / LAYERS).glob("layer-*.parquet")) if (p / LAYERS).is_dir() else []
    try:
        tables = [pq.read_table(x, schema=schema) for x in parts]
    except (pa.ArrowException, OSError) as e:
        raise InputFileError(f"cannot read the layers of {p}: {str(e).splitlines()[0]}") from None
    return p, manifest, (pa.concat_tables(tables) if tables else schema.empty_table())


def parse_layers(spec: str | Sequence[int] | None, n_layers: int) -> list[int]:
    """``None`` -> all; ``"0,3,5-7"`` -> those (negative indices count from the end).

    Raises:
        TuneshiftError: a malformed or out-of-range layer.
    """
    if spec is None:
        return list(range(n_layers))
    items: list[int] = []
    parts = spec if not isinstance(spec, str) else [p for p in spec.replace(" ", "").split(",") if p]
    for p in parts:
        try:
            if isinstance(p, str) and "-" in p[1:]:
                a, b = p[0] + p[1:].split("-", 1)[0], p[1:].split("-", 1)[1]
                lo, hi = int(a), int(b)
                items += list(range(lo, hi + 1))
            else:
                items.append(int(p))
        except ValueError:
            raise OptionError("layers", f": {p!r} is not a layer number or range such as 2-5") from None
    out = []
    for i in items:
        j = i + n_layers if i < 0 else i
        if not 0 <= j < n_layers:
            raise OptionError(
                "layers", f": layer {i} is out of range (the model has {n_layers} layers, 0-{n_layers - 1})"
            )
        if j not in out:
            out.append(j)
    if not out:
        raise OptionError("layers", "selects no layer")
    return sorted(out)
