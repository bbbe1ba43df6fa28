"""The :class:`AblationResult` object: an ablation directory read back (manifest + Parquet rows)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import pandas

__all__ = ["AblationResult", "load_ablation", "SCHEMA", "ROWS_FILE", "KIND"]

KIND = "ablation"
ROWS_FILE = "ablation.parquet"

SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("group", pa.string()),
        ("span", pa.string()),
        ("variant", pa.string()),
        ("donor_id", pa.string()),
        ("n_span_tokens", pa.int64()),
        ("n_inserted_tokens", pa.int64()),
        ("n_response_tokens", pa.int64()),
        ("short_response", pa.bool_()),
        ("instruction_score", pa.float64()),
        ("logp_full", pa.float64()),
        ("logp_ablated", pa.float64()),
        ("effect", pa.float64()),
        ("effect_per_token", pa.float64()),
    ]
)
"""One row per (record, span, variant). ``effect = logp_full - logp_ablated`` (nats, the response's
total log-probability lost when the span is ablated); ``effect_per_token = effect / n_response_tokens``;
``donor_id`` is the swap donor (null for delete/mask); ``n_inserted_tokens`` is 0 for delete, the
span's length for mask, the donor span's length for swap; ``instruction_score`` is the attribution
run's stored score of the record (NaN without an instruction)."""


@dataclass
class AblationResult:
    """An ablation directory (``tuneshift ablate``): ``AblationResult.load(dir)``.

    Attributes:
        path: the directory. manifest: parsed ``manifest.json`` (kind ``ablation``; identity =
            the attribution run's identity + the ablation options; ``attribution_run``: its path).
        table: pandas DataFrame with the columns of :data:`SCHEMA`, one row per (record, span, variant).
    """

    path: Path
    manifest: dict
    table: "pandas.DataFrame"

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AblationResult":
        """Read an ablation directory.

        Raises:
            InputFileError: not a directory, no/invalid manifest, not an ablation, unreadable rows.
        """
        import pyarrow.parquet as pq

        from tuneshift.errors import InputFileError
        from tuneshift.files import read_manifest

        p, manifest = read_manifest(path, "ablation", kind=KIND)
        f = p / ROWS_FILE
        if not f.is_file():
            table = SCHEMA.empty_table().to_pandas()
        else:
            try:
                table = pq.read_table(f, schema=SCHEMA).to_pandas()
            except (pa.ArrowException, OSError) as e:
                raise InputFileError(f"cannot read {f}: {str(e).splitlines()[0]}") from None
        return cls(p, manifest, table)

    @property
    def model(self) -> str:
        """The model spec the attribution run (and so the ablation) used."""
        return str(self.manifest.get("identity", {}).get("attribution", {}).get("model", {}).get("spec", "?"))

    @property
    def protocol(self) -> str:
        """The response protocol of the attribution run: ``generate`` (own), ``given`` (gold) or ``cross``."""
        return str(self.manifest.get("identity", {}).get("attribution", {}).get("options", {}).get("responses", "?"))

    def to_dict(self) -> dict:
        """``{"path", "manifest", "n_rows"}``."""
        return {"path": str(self.path), "manifest": self.manifest, "n_rows": int(len(self.table))}


def load_ablation(path) -> AblationResult:
    """Same as :meth:`AblationResult.load`."""
    return AblationResult.load(path)
