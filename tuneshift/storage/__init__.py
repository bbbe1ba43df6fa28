"""Result directories on disk, below the pipelines that write them and the stats that read them.

attribution (attribution runs: a JSON manifest + Parquet parts; Run, RunWriter, load_run),
layered (per-layer directories and the loop that writes them; the --layers selection), heads and
concepts (their per-layer tables and results).
"""

from tuneshift.storage.attribution import Run, RunWriter, load_run

__all__ = ["Run", "RunWriter", "load_run"]
