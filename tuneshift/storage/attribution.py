"""Run storage: a manifest and Parquet results, written as records finish, resumable.

Layout of a run directory::

    RUN_DIR/
      manifest.json              what was run: model (spec, content hash), dataset (path,
                                 sha256), options, package versions, times, counts
      results/part-00000.parquet one row per attributed record (see Attribution.to_row)
      results/part-00001.parquet ... one part per finished batch, written atomically
      skipped.json               records that could not be attributed, with reasons

Resume: the same command on the same directory reads the finished ids from the parts and
does only the rest. A directory made with another model, dataset or parameters (attribution
method, target and method options included: ``identity["method"]``) is refused
(:class:`~tuneshift.errors.RunMismatchError`) with the differing keys named. No pickle:
JSON and Parquet only. Run directories written before ``identity["method"]`` existed (and
runs imported from the paper's release) read as :data:`LEGACY_METHOD_IDENTITY`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tuneshift.errors import InputFileError
from tuneshift.files import (
    MANIFEST,
    atomic_write_json,
    atomic_write_parquet,
    check_out_dir,
    existing_manifest,
    now,
    package_versions,
    read_manifest,
)
from tuneshift.methods.attribution.result import Attribution
from tuneshift.results import ResultDirectory

RESULTS = "results"
SKIPPED = "skipped.json"

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("group", pa.string()),
        ("rating", pa.int64()),
        ("prompt_token_ids", pa.list_(pa.int64())),
        ("prompt_tokens", pa.list_(pa.string())),
        ("prompt_roles", pa.list_(pa.string())),
        ("prompt_positions", pa.list_(pa.int64())),
        ("response_token_ids", pa.list_(pa.int64())),
        ("response_tokens", pa.list_(pa.string())),
        ("response_text", pa.string()),
        ("n_prompt_tokens", pa.int64()),
        ("n_response_tokens", pa.int64()),
        ("raw", pa.list_(pa.float32())),
        ("instruction_mask", pa.list_(pa.bool_())),
        ("density", pa.list_(pa.float64())),
        ("instruction_score", pa.float64()),
        ("short_response", pa.bool_()),
        ("truncated", pa.bool_()),
        ("ended_with_eos", pa.bool_()),
        ("n_input_tokens", pa.int64()),
        ("unlocated_spans", pa.list_(pa.string())),
        # readable text of each token (null in parts written before they were stored)
        ("prompt_pieces", pa.list_(pa.string())),
        ("response_pieces", pa.list_(pa.string())),
    ]
)

# What a run without identity["method"] was made with: the paper's gradient x input of the
# response-token probability (the only method before the registry; also the paper's release).
LEGACY_METHOD_IDENTITY = {"name": "gradient_x_input", "target": "probability", "options": {}}


@dataclass
class RunWriter:
    """Writes a run directory incrementally, resuming an existing one.

    Args:
        path: the run directory (created if missing).
        identity: what must match to resume: ``{"model": ..., "dataset": ..., "options": ...}``
            (JSON-serialisable). Any difference raises :class:`RunMismatchError`.
        info: extra manifest content (descriptions, not compared).
        legacy_identity: identity entries that older run directories lack, with the value they
            stand for (see :func:`~tuneshift.files.existing_manifest`).

    Raises:
        InputFileError: ``path`` is a file, or a non-empty folder that is not a run.
        RunMismatchError: the existing run was made with something else.
    """

    path: Path
    identity: dict
    info: dict = field(default_factory=dict)
    legacy_identity: dict | None = None

    def __post_init__(self):
        self.path = Path(self.path)
        check_out_dir(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        mf = self.path / MANIFEST
        old = existing_manifest(
            self.path, json.loads(json.dumps(self.identity, default=str)), legacy=self.legacy_identity
        )
        if old is not None:
            self.manifest = old
            self.manifest["info"] = {**old.get("info", {}), **self.info}
        else:
            self.manifest = {
                "tuneshift_run": 1,
                "kind": "attribution",
                "identity": json.loads(json.dumps(self.identity, default=str)),
                "info": self.info,
                "created": now(),
                "package_versions": package_versions(),
                "status": "running",
            }
        self.manifest["resumed"] = mf.exists()
        self._skipped = self._read_skipped()
        self._write_manifest()

    def _read_skipped(self) -> dict[str, str]:
        p = self.path / SKIPPED
        if p.exists():
            try:
                return dict(json.loads(p.read_text()))
            except ValueError:
                return {}
        return {}

    def done_ids(self) -> set[str]:
        """Ids already written (attributed) in this run."""
        return done_ids(self.path)

    def add(self, results: Iterable[Attribution]) -> int:
        """Write finished records as a new Parquet part (atomically); returns rows written."""
        n = len(_parts(self.path))
        while (self.path / RESULTS / f"part-{n:05d}.parquet").exists():
            n += 1
        return write_part(self.path, results, f"part-{n:05d}")

    def update_manifest(self, **entries) -> None:
        """Set top-level manifest entries (e.g. ``shards``) and write the manifest atomically."""
        self.manifest.update(entries)
        self._write_manifest()

    def skip(self, record_id: str, reason: str) -> None:
        self._skipped[record_id] = reason
        atomic_write_json(self.path / SKIPPED, self._skipped)

    def totals(self) -> dict[str, int]:
        """Counts over every record written so far (all invocations of a resumed run)."""
        if not _parts(self.path):
            return {"n_attributed": 0, "n_short": 0, "n_truncated": 0, "n_unlocated_spans": 0}
        t = _read_table(self.path, columns=["id", "short_response", "truncated", "unlocated_spans"])
        first = {}
        for i, rid in enumerate(t.column("id").to_pylist()):  # a record written twice counts once
            first.setdefault(rid, i)
        rows = sorted(first.values())
        col = lambda name: [t.column(name)[i].as_py() for i in rows]  # noqa: E731
        return {
            "n_attributed": len(rows),
            "n_short": int(sum(bool(x) for x in col("short_response"))),
            "n_truncated": int(sum(bool(x) for x in col("truncated"))),
            "n_unlocated_spans": int(sum(len(x or []) for x in col("unlocated_spans"))),
        }

    def finish(self, status: str = "complete", **counts) -> None:
        """Mark the run finished and record counts (records, skipped, truncated, seconds...).

        Args:
            status: ``complete``, or ``empty`` when no record was attributed (every record
                skipped): an empty run is never marked complete (a resume retries it).
        """
        self.manifest["status"] = status
        self.manifest["updated"] = now()
        self.manifest["counts"] = counts
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_json(self.path / MANIFEST, self.manifest)


def done_ids(path) -> set[str]:
    """Ids of the records written in the run directory ``path`` (every part, any writer)."""
    return set(_read_table(Path(path), columns=["id"]).column("id").to_pylist()) if _parts(Path(path)) else set()


def write_part(path, results: Iterable[Attribution], stem: str) -> int:
    """Write finished records as ``path/results/<stem>.parquet``, atomically (temp file + rename).

    Several writers (Ray workers) can add parts to one run directory at once when their stems
    differ; a reader sees a part whole or not at all. ``stem`` must start with ``part-``.

    Returns:
        Rows written (0: nothing written for an empty ``results``).
    """
    rows = [r.to_row() for r in results]
    if not rows:
        return 0
    if not stem.startswith("part-"):
        raise ValueError(f"a part's name starts with 'part-', got {stem!r}")
    atomic_write_parquet(Path(path) / RESULTS / f"{stem}.parquet", pa.Table.from_pylist(rows, schema=SCHEMA))
    return len(rows)


def _parts(path: Path) -> list[Path]:
    d = Path(path) / RESULTS
    return sorted(d.glob("part-*.parquet")) if d.is_dir() else []


def _read_table(path: Path, columns=None) -> pa.Table:
    parts = _parts(path)
    if not parts:
        return SCHEMA.empty_table() if columns is None else SCHEMA.empty_table().select(columns)
    tables = [pq.read_table(p, columns=columns, schema=SCHEMA if columns is None else None) for p in parts]
    return pa.concat_tables(tables)


@dataclass
class Run(ResultDirectory):
    """A finished (or partial) attribution run read back from disk: ``Run.load(dir)``,
    ``save(dir)`` (a complete copy: manifest, the attributions as one Parquet part,
    ``skipped.json``), ``to_dict()`` (manifest and :meth:`summary`); see
    :class:`~tuneshift.results.ResultDirectory`.

    Attributes:
        path: the run directory.
        manifest: the parsed ``manifest.json``.
        attributions: one :class:`Attribution` per record, in write order (a record id written
            twice is read once).
        skipped: ``{record_id: reason}`` for records that could not be attributed.
    """

    path: Path
    manifest: dict
    attributions: list[Attribution]
    skipped: dict[str, str]

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Run":
        """Read a run directory written by ``tuneshift attribute`` (or ``import-paper``).

        Raises:
            InputFileError: not a directory, no/invalid manifest, unreadable Parquet.
        """
        p, manifest = read_manifest(path, "run", kind="attribution")  # not a heads or concepts run
        try:
            table = _read_table(p)
        except (pa.ArrowException, OSError) as e:
            raise InputFileError(f"cannot read the results of {p}: {str(e).splitlines()[0]}") from None
        atts, seen = [], set()
        for r in table.to_pylist():
            # a record written twice (a Ray worker presumed dead finishing a batch its retry also
            # wrote) is the same record: keep the first copy
            if r["id"] not in seen:
                seen.add(r["id"])
                atts.append(Attribution.from_row(r))
        skipped = {}
        if (p / SKIPPED).exists():
            try:
                skipped = dict(json.loads((p / SKIPPED).read_text()))
            except ValueError:
                skipped = {}
        return cls(p, manifest, atts, skipped)

    def summary(self) -> dict:
        """``{"model", "n_attributed", "n_skipped"}``."""
        return {"model": self.model_name, "n_attributed": len(self.attributions), "n_skipped": len(self.skipped)}

    def _json_files(self) -> dict[str, dict]:
        return {SKIPPED: self.skipped} if self.skipped else {}

    def _tables(self) -> dict[str, pa.Table]:
        if not self.attributions:
            return {}
        return {
            f"{RESULTS}/part-00000.parquet": pa.Table.from_pylist(
                [a.to_row() for a in self.attributions], schema=SCHEMA
            )
        }

    @property
    def model_name(self) -> str:
        m = self.manifest.get("identity", {}).get("model", {})
        return str(m.get("spec") or m.get("name") or "?")

    @property
    def method(self) -> dict:
        """``{"name", "target", "options"}`` of the attribution method that made the run
        (:data:`LEGACY_METHOD_IDENTITY` for runs that predate the method registry)."""
        return method_identity_of(self.manifest)

    def by_id(self) -> dict[str, Attribution]:
        return {a.record_id: a for a in self.attributions}

    def to_pandas(self):
        """One row per record: id, group, rating, score, flags and sizes (no matrices)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "id": a.record_id,
                    "group": a.group,
                    "rating": a.rating,
                    "instruction_score": a.instruction_score,
                    "n_prompt_tokens": a.shape[0],
                    "n_response_tokens": a.shape[1],
                    "n_instruction_tokens": int(a.instruction_mask.sum()),
                    "short_response": a.short_response,
                    "truncated": a.truncated,
                    "ended_with_eos": a.ended_with_eos,
                    "response_text": a.response_text,
                }
                for a in self.attributions
            ]
        )

    @property
    def df(self):
        """Alias of :meth:`to_pandas`."""
        return self.to_pandas()


def method_identity_of(manifest: dict) -> dict:
    """The attribution method of a run manifest: ``{"name", "target", "options"}``; runs written
    before methods were recorded (and imported paper runs) give :data:`LEGACY_METHOD_IDENTITY`."""
    m = manifest.get("identity", {}).get("method")
    return json.loads(json.dumps(m if isinstance(m, dict) else LEGACY_METHOD_IDENTITY))


def load_run(path: str | os.PathLike) -> Run:
    """Read a run directory: the same as :meth:`Run.load`.

    Raises:
        InputFileError: not a directory, no/invalid manifest, unreadable Parquet.
    """
    return Run.load(path)


__all__ = [
    "LEGACY_METHOD_IDENTITY",
    "Run",
    "RunWriter",
    "load_run",
    "method_identity_of",
    "SCHEMA",
    "RESULTS",
    "SKIPPED",
]
_ = np  # numpy is used through Attribution
