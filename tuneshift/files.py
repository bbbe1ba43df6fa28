"""Shared file helpers: atomic writes, output-directory checks, manifests, hashes, versions.

Every result tuneshift writes goes through :func:`atomic_write_bytes` (readers see the old or
the new file, never a partial one); every result directory has a ``manifest.json`` whose
``identity`` says what made it, so that a resume with other settings is refused
(:func:`existing_manifest`) and a reader can check what it opens (:func:`read_manifest`).
JSON only: tuneshift never writes pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from importlib import metadata
from pathlib import Path

from tuneshift._version import __version__
from tuneshift.errors import InputFileError, RunMismatchError

__all__ = [
    "MANIFEST",
    "package_versions",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_write_parquet",
    "atomic_copy",
    "now",
    "check_out_dir",
    "existing_manifest",
    "read_manifest",
    "cache_dir",
    "file_sha256",
    "open_manifest",
    "finish_manifest",
]

MANIFEST = "manifest.json"

_VERSIONED = ("torch", "transformers", "numpy", "scipy", "pandas", "pyarrow", "peft", "gguf")


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
    """:func:`atomic_write_bytes` of ``obj`` as indented JSON (non-JSON values through ``str``)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def atomic_write_parquet(path: Path, table) -> None:
    """:func:`atomic_write_bytes` of a ``pyarrow.Table`` as zstd-compressed Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(Path(path), sink.getvalue().to_pybytes())


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy a file's bytes to ``dst`` with :func:`atomic_write_bytes`."""
    atomic_write_bytes(Path(dst), Path(src).read_bytes())


def now() -> str:
    """Local time as ISO 8601 with offset (manifest timestamps)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def check_out_dir(path: Path, kind: str = "run") -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder that is not a tuneshift run."""
    if path.exists() and not path.is_dir():
        raise InputFileError(f"output directory {path} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST).exists():
        raise InputFileError(
            f"output directory {path} exists, is not empty and is not a tuneshift {kind} directory; choose another output directory"
        )


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
        raise InputFileError(
            f"{path} holds a tuneshift {old.get('kind', '?')} run, not a {kind} run; choose another output directory"
        )
    if legacy:
        old["identity"] = {**json.loads(json.dumps(legacy, default=str)), **old.get("identity", {})}
    diffs = _diff(old.get("identity", {}), identity)
    if diffs:
        label = f"a {kind} run" if kind else "a run"
        raise RunMismatchError(
            f"{path} holds {label} with other settings ({'; '.join(diffs[:4])}); use another output directory or the same settings"
        )
    return old


def open_manifest(path: Path, identity: dict, kind: str, legacy: dict | None = None) -> tuple[dict, dict | None]:
    """The first step of a resumable run's manifest lifecycle (open, plan what is left, finish):
    check the output directory and read the manifest a run there would resume.

    Used by the layered runs (:class:`tuneshift.storage.layered.LayeredRunWriter`: heads, concepts)
    and ``tuneshift tune`` (:func:`tuneshift.tuning.train.tune`); each plans what is left from
    its own files (finished layers, the newest checkpoint) and ends with :func:`finish_manifest`.

    Args:
        path: the result directory (need not exist). identity: the settings that must match to
            resume (normalised through JSON; values JSON cannot hold become strings).
        kind: the manifest ``kind`` (also the word used in the errors).
        legacy: as for :func:`existing_manifest`.

    Returns:
        ``(identity, old)``: the JSON-normalised identity and the existing manifest (None when
        there is none).

    Raises:
        InputFileError: ``path`` is a file, a non-empty folder that is not a tuneshift directory,
            holds another kind of run or an invalid manifest.
        RunMismatchError: the directory was made with other settings.
    """
    path = Path(path)
    check_out_dir(path, kind=kind)
    identity = json.loads(json.dumps(identity, default=str))
    return identity, existing_manifest(path, identity, kind, legacy=legacy)


def finish_manifest(manifest: dict, status: str, history: dict | None = None, **fields) -> dict:
    """The last step of the manifest lifecycle (see :func:`open_manifest`), in memory: the caller
    writes the manifest (atomically).

    Args:
        manifest: the run's manifest (changed in place).
        status: its final ``status`` (``complete``/``partial`` for layered runs, ``finished`` for
            ``tune``).
        history: when given, ``{"finished": now(), **history}`` is appended to the manifest's
            ``history`` list (one entry per invocation; created when missing).
        fields: other top-level entries set after ``status``, in this order.

    Returns:
        ``manifest``.
    """
    manifest.update(status=status, **fields)
    if history is not None:
        manifest["history"] = list(manifest.get("history", [])) + [{"finished": now(), **history}]
    return manifest


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: existing X, requested Y`` for every differing leaf; a key one side lacks is shown as
    ``not set (the default)`` (identities leave some defaults out, e.g. the ``clip`` sign policy)."""

    def shown(d: dict, k: str) -> str:
        return repr(d[k]) if k in d else "not set (the default)"

    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: existing {shown(old, k)}, requested {shown(new, k)}")
    return out


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
        raise InputFileError(
            f"{p} is a tuneshift {manifest.get('kind', '?')} result, not a {what}"
            + (f" of kind {kind}" if kind not in what else "")
        )
    return p, manifest


def cache_dir() -> Path:
    """Root of tuneshift's model cache: ``$TUNESHIFT_CACHE``, else ``$XDG_CACHE_HOME/tuneshift``,
    else ``~/.cache/tuneshift``. Created on demand."""
    root = os.environ.get("TUNESHIFT_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = os.path.join(xdg, "tuneshift")
    p = Path(root).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, memoised in the cache by (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    memo_path = cache_dir() / "hashes.json"
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo = {}
    if memo_path.exists():
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    memo[key] = h.hexdigest()
    atomic_write_text(memo_path, json.dumps(memo, indent=0))
    return memo[key]
