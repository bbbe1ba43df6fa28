"""Run directories: one model x one dataset, stored as a JSON manifest + Parquet parts."""

from tuneshift.runs.store import Run, RunWriter, load_run

__all__ = ["Run", "RunWriter", "load_run"]
