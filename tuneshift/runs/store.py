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
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tuneshift._version import __version__
from tuneshift.errors import InputFileError, RunMismatchError
from tuneshift.methods.attribution.result import Attribution

MANIFEST = "manifest.json"
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
    ]
)

# What a run without identity["method"] was made with: the paper's gradient x input of the
# response-token probability (the only method before the registry; also the paper's release).
LEGACY_METHOD_IDENTITY = {"name": "gradient_x_input", "target": "probability", "options": {}}

_VERSIONED = ("torch", "transformers", "numpy", "scipy", "pandas", "pyarrow", "peft", "gguf", "captum")


def package_versions() -> dict[str, str]:
    """Versions of tuneshift and the libraries whose numbers can change results."""
    out = {"tuneshift": __version__}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary shareable files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def check_out_dir(path: Path, kind: str = "run") -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder that is not a tuneshift run."""
    if path.exists() and not path.is_dir():
        raise InputFileError(f"--out {path} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST).exists():
        raise InputFileError(f"--out {path} exists, is not empty and is not a tuneshift {kind} directory; choose another")


def existing_manifest(path: Path, identity: dict, kind: str | None = None, legacy: dict | None = None) -> dict | None:
    """The manifest of an existing result directory that may be resumed, or None if there is none.

    Args:
        path: the result directory.
        identity: the JSON-normalised settings that must match to resume.
        kind: if given, the existing manifest's ``kind`` must equal it.
        legacy: top-level identity entries that older directories lack, with the value they
            stand for (e.g. ``{"method": LEGACY_METHOD_IDENTITY}``); filled in before comparing
            and in the returned manifest.

    Raises:
        InputFileError: the manifest is not valid JSON, or (with ``kind``) holds another kind.
        RunMismatchError: the directory was made with other settings (the differing keys are named).
    """
    mf = Path(path) / MANIFEST
    if not mf.exists():
        return None
    try:
        old = json.loads(mf.read_text())
    except ValueError as e:
        raise InputFileError(f"{mf} is not valid JSON ({e}); move the directory away or repair it") from None
    if kind is not None and old.get("kind") != kind:
        raise InputFileError(f"{path} holds a tuneshift {old.get('kind', '?')} run, not a {kind} run; choose another --out")
    if legacy:
        old["identity"] = {**json.loads(json.dumps(legacy, default=str)), **old.get("identity", {})}
    diffs = _diff(old.get("identity", {}), identity)
    if diffs:
        label = f"a {kind} run" if kind else "a run"
        raise RunMismatchError(
            f"{path} holds {label} with other settings ({'; '.join(diffs[:4])}); use another --out or the same settings"
        )
    return old


@dataclass
class RunWriter:
    """Writes a run directory incrementally, resuming an existing one.

    Args:
        path: the run directory (created if missing).
        identity: what must match to resume: ``{"model": ..., "dataset": ..., "options": ...}``
            (JSON-serialisable). Any difference raises :class:`RunMismatchError`.
        info: extra manifest content (descriptions, not compared).
        legacy_identity: identity entries that older run directories lack, with the value they
            stand for (see :func:`existing_manifest`).

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
        old = existing_manifest(self.path, json.loads(json.dumps(self.identity, default=str)), legacy=self.legacy_identity)
        if old is not None:
            self.manifest = old
            self.manifest["info"] = {**old.get("info", {}), **self.info}
        else:
            self.manifest = {
                "tuneshift_run": 1,
                "kind": "attribution",
                "identity": json.loads(json.dumps(self.identity, default=str)),
                "info": self.info,
                "created": _now(),
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
        return set(_read_table(self.path, columns=["id"]).column("id").to_pylist()) if _parts(self.path) else set()

    def add(self, results: Iterable[Attribution]) -> int:
        """Write finished records as a new Parquet part (atomically); returns rows written."""
        rows = [r.to_row() for r in results]
        if not rows:
            return 0
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        n = len(_parts(self.path))
        part = self.path / RESULTS / f"part-{n:05d}.parquet"
        while part.exists():
            n += 1
            part = self.path / RESULTS / f"part-{n:05d}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        atomic_write_bytes(part, sink.getvalue().to_pybytes())
        return len(rows)

    def skip(self, record_id: str, reason: str) -> None:
        self._skipped[record_id] = reason
        atomic_write_json(self.path / SKIPPED, self._skipped)

    def totals(self) -> dict[str, int]:
        """Counts over every record written so far (all invocations of a resumed run)."""
        if not _parts(self.path):
            return {"n_attributed": 0, "n_short": 0, "n_truncated": 0, "n_unlocated_spans": 0}
        t = _read_table(self.path, columns=["short_response", "truncated", "unlocated_spans"])
        return {
            "n_attributed": t.num_rows,
            "n_short": int(sum(bool(x) for x in t.column("short_response").to_pylist())),
            "n_truncated": int(sum(bool(x) for x in t.column("truncated").to_pylist())),
            "n_unlocated_spans": int(sum(len(x or []) for x in t.column("unlocated_spans").to_pylist())),
        }

    def finish(self, **counts) -> None:
        """Mark the run complete and record counts (records, skipped, truncated, seconds...)."""
        self.manifest["status"] = "complete"
        self.manifest["updated"] = _now()
        self.manifest["counts"] = counts
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_json(self.path / MANIFEST, self.manifest)


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: existing {a!r}, requested {b!r}")
    return out


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
class Run:
    """A finished (or partial) run read back from disk.

    Attributes:
        path: the run directory.
        manifest: the parsed ``manifest.json``.
        attributions: one :class:`Attribution` per record, in write order.
        skipped: ``{record_id: reason}`` for records that could not be attributed.
    """

    path: Path
    manifest: dict
    attributions: list[Attribution]
    skipped: dict[str, str]

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
                    "id": a.record_id, "group": a.group, "rating": a.rating,
                    "instruction_score": a.instruction_score,
                    "n_prompt_tokens": a.shape[0], "n_response_tokens": a.shape[1],
                    "n_instruction_tokens": int(a.instruction_mask.sum()),
                    "short_response": a.short_response, "truncated": a.truncated,
                    "ended_with_eos": a.ended_with_eos, "response_text": a.response_text,
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


def read_manifest(path: str | os.PathLike, what: str = "run", kind: str | None = None) -> tuple[Path, dict]:
    """Open a tuneshift result directory and parse its ``manifest.json``.

    Args:
        path: the directory.
        what: how to name it in errors ("run", "heads run", ...).
        kind: if given, the manifest's ``kind`` must equal it.

    Returns:
        ``(directory, manifest)``.

    Raises:
        InputFileError: not a directory, no or invalid manifest, or another kind of result.
    """
    p = Path(path)
    if not p.is_dir():
        raise InputFileError(f"{what} directory {p} does not exist")
    mf = p / MANIFEST
    if not mf.exists():
        raise InputFileError(f"{p} is not a tuneshift {what} (no {MANIFEST})")
    try:
        manifest = json.loads(mf.read_text())
    except ValueError as e:
        raise InputFileError(f"{mf} is not valid JSON: {e}") from None
    if kind is not None and manifest.get("kind", "attribution") != kind:
        raise InputFileError(f"{p} is a tuneshift {manifest.get('kind', '?')} result, not a {what}")
    return p, manifest


def load_run(path: str | os.PathLike) -> Run:
    """Read a run directory written by ``tuneshift attribute`` (or ``import-paper``).

    Raises:
        InputFileError: not a directory, no/invalid manifest, unreadable Parquet.
    """
    p, manifest = read_manifest(path, "run")
    try:
        table = _read_table(p)
    except (pa.ArrowException, OSError) as e:
        raise InputFileError(f"cannot read the results of {p}: {str(e).splitlines()[0]}") from None
    atts = [Attribution.from_row(r) for r in table.to_pylist()]
    skipped = {}
    if (p / SKIPPED).exists():
        try:
            skipped = dict(json.loads((p / SKIPPED).read_text()))
        except ValueError:
            skipped = {}
    return Run(p, manifest, atts, skipped)


__all__ = ["LEGACY_METHOD_IDENTITY", "Run", "RunWriter", "load_run", "method_identity_of", "read_manifest", "package_versions", "atomic_write_json", "atomic_write_bytes", "check_out_dir"]
_ = np  # numpy is used through Attribution
