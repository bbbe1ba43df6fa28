"""An attribution run sharded over Ray workers (``tuneshift attribute --ray ADDRESS``).

The same run directory, identity and resume rules as :func:`~tuneshift.pipelines.attribute_run.run_attribution`;
only the work is spread:

1. the driver (this process) starts ``workers`` Ray actors; each loads the model once, on its
   own GPU (``--device cuda``: one GPU per worker; ``--device auto`` with ``gpus_per_worker``
   > 1: a model split over several GPUs) or on CPU threads;
2. the first worker reports the run identity (model hashes...), and the driver creates or
   resumes the run directory with it: a directory made with other settings is refused, and
   records already written are not attributed again;
3. the records left are cut into contiguous *shards* (``shard_size`` records, a multiple of
   ``batch_size``), recorded in the manifest (``shards``), and handed to the workers as they
   become free. A worker writes each finished batch as its own Parquet part,
   ``results/part-<invocation>-s<shard>-b<position of the batch's first record in the shard>.parquet``,
   atomically (temp file + rename): shards and invocations never share a name, and a batch written again (a
   worker presumed dead that still finishes, and its retry) replaces the identical part instead
   of adding a copy (readers also keep one row per record id);
4. a worker that dies (killed, out of memory, node lost) is restarted by Ray (``max_restarts``)
   and its shard retried (``max_task_retries``); the retry first reads which records of the
   shard are already written and does only the rest, so every record is written once and
   nothing finished is lost. Stopping the driver (Ctrl-C) stops the workers; running the same
   command again resumes, like a single-process run.

A run that is already complete with the same identity (computed without loading the model:
:func:`~tuneshift.pipelines.attribute_run.planned_identity`) and has every record written returns at
once: Ray is not started and the manifest is left as it is.

The driver marks the run complete with the same counts as a single-process run, plus
``manifest["ray"]`` (address, workers, Ray version) and per shard its records, status and the
process that finished it. Records and their matrices equal a single-process run's (tested: the
batches are the same when ``shard_size`` is a multiple of ``batch_size``).

Ray is an optional dependency: ``pip install 'tuneshift[ray]'``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tuneshift.errors import OptionError, TuneshiftError

__all__ = [
    "AttributionWorker",
    "RayOptions",
    "probe_ray_address",
    "run_attribution_ray",
    "shard_records",
    "RAY_INSTALL_HINT",
    "RAY_PROBE_SECONDS",
]

RAY_INSTALL_HINT = "--ray needs the ray package: pip install 'tuneshift[ray]'"

#: seconds a HOST:PORT or ray://HOST:PORT address has to accept a TCP connection before
#: ``ray.init`` is tried (Ray itself retries an unreachable address for many minutes)
RAY_PROBE_SECONDS = 5.0


def probe_ray_address(address: str | None, timeout: float = RAY_PROBE_SECONDS) -> None:
    """Refuse a malformed or unreachable Ray address in about ``timeout`` seconds, before ``ray.init``.

    ``local`` (or None / empty) and ``auto`` are not probed (``local`` starts Ray here; ``auto``
    reads the address of the cluster this machine belongs to, and Ray fails fast without one); nor
    is a bare host without a port (Ray's default port, or Ray's own fast one-line error).
    Otherwise the address must be ``HOST:PORT`` (a cluster's GCS) or ``ray://HOST:PORT`` (Ray
    Client) with a port in 1-65535, and the port must (1) accept a TCP connection and (2) complete
    a gRPC (HTTP/2) handshake, as both of Ray's servers do, within ``timeout`` seconds each (name
    resolution included). Ray itself retries any other address for many minutes: a closed port
    took 14 minutes, a port out of range or a web server (e.g. the dashboard, HTTP/1) never ended.

    Raises:
        TuneshiftError: a malformed address (another scheme, no host, a bad port), a host that
            cannot be resolved, nothing accepting a connection in time, or a server that is not
            gRPC (one line naming the address, the reason and the timeout).
    """
    import socket
    import threading

    if address in (None, "", "local", "auto"):
        return
    form = "use local, auto, HOST:PORT (a cluster's GCS, port 6379 by default) or ray://HOST:PORT (Ray Client)"
    scheme, has_scheme, rest = address.partition("://")
    if has_scheme and scheme != "ray":
        raise TuneshiftError(
            f"'{address}' is not a Ray address ({scheme}:// is not Ray's; the dashboard's http "
            f"address is not the cluster's): {form}"
        )
    hostport = rest if has_scheme else address
    host, sep, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not sep:
        if not hostport:
            raise TuneshiftError(f"'{address}' names no host: {form}")
        return  # a bare host: Ray's default port, or Ray's own fast "Invalid address format"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TuneshiftError(f"'{address}' is not a Ray address (a host and a port in 1-65535 are needed): {form}")
    result: list = []

    def connect():
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(e)

    t = threading.Thread(target=connect, daemon=True)  # name resolution has no timeout of its own
    t.start()
    t.join(timeout + 0.5)
    why = (
        "no answer"
        if not result or isinstance(result[0], (TimeoutError, socket.timeout))
        else "unknown host"
        if isinstance(result[0], socket.gaierror)
        else "connection refused"
        if isinstance(result[0], ConnectionRefusedError)
        else (result[0].strerror or type(result[0]).__name__)
        if result[0] is not None
        else None
    )
    if why is not None:
        raise TuneshiftError(
            f"cannot reach Ray at '{address}': {why} (TCP probe, {timeout:g} s timeout; "
            "--ray local starts one on this machine)"
        )
    try:
        import grpc  # installed with ray (its GCS and Ray Client servers are gRPC)
    except ImportError:
        return
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise TuneshiftError(
            f"'{address}' accepts connections but is not a Ray server: no gRPC handshake in "
            f"{timeout:g} s (a Ray cluster's GCS port, 6379 by default, or its Ray Client port, "
            "10001 by default, is needed)"
        ) from None
    finally:
        channel.close()


def shard_records(records: Sequence, shard_size: int) -> list[list]:
    """Contiguous shards of ``shard_size`` records (the last may be shorter), in order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [list(records[i : i + shard_size]) for i in range(0, len(records), shard_size)]


@dataclass
class RayOptions:
    """How an attribution run is spread over Ray (``tuneshift attribute --ray ADDRESS``).

    Attributes:
        address: ``local`` (start a Ray instance on this machine for this run), ``auto`` (the
            running cluster this machine belongs to), ``HOST:PORT`` (a cluster's GCS) or
            ``ray://HOST:PORT`` (Ray Client); ``local``/``auto`` in any case. When Ray is already
            initialised in this process, that instance is used.
        workers: Ray actors (one model each). Default: with a GPU device, the cluster's GPUs /
            ``gpus_per_worker``; on CPUs, the cluster's CPUs / ``threads`` (at least 1), never
            more than the shards.
        threads: torch threads per CPU worker (also its Ray CPU reservation; default 1 CPU,
            torch's own thread count).
        gpus_per_worker: GPUs reserved per worker (default 1 with ``cuda``/``auto``, 0 on CPU).
        shard_size: records per shard (default ``4 * batch_size``, less when there are fewer
            records than that per worker; rounded up to a multiple of ``batch_size``).
        max_restarts: restarts of a dead worker (and retries of its shard) before the run fails.

    Raises:
        OptionError: ``workers`` or ``shard_size`` < 1, ``gpus_per_worker`` or ``max_restarts``
            < 0 (every bad value in one message), or an empty address.
    """

    address: str = "local"
    workers: int | None = None
    threads: int | None = None
    gpus_per_worker: float | None = None
    shard_size: int | None = None
    max_restarts: int = 3

    def __post_init__(self):
        if isinstance(self.address, str) and self.address.strip().lower() in ("local", "auto"):
            self.address = self.address.strip().lower()
        bad = {
            k: "must be >= 1"
            for k, v in (("workers", self.workers), ("shard_size", self.shard_size))
            if v is not None and v < 1
        }
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            bad["gpus_per_worker"] = "must be >= 0"
        if self.max_restarts < 0:
            bad["max_restarts"] = "must be >= 0"
        if bad:
            raise OptionError(bad)
        if not isinstance(self.address, str) or not self.address.strip():
            raise OptionError("address", "needs an address: local, auto or ray://HOST:PORT")


#: the test seam of a worker that dies (see :class:`AttributionWorker`): tests set it (monkeypatch)
#: to a number of parts; the driver hands it to the workers it starts. Never set outside tests.
_TEST_CRASH_ONCE_AFTER_PARTS: int | None = None


class AttributionWorker:
    """The body of one Ray actor: one loaded model, attributing shards into a run directory.

    Args:
        spec, adapter, dtype, device: as :func:`~tuneshift.models.loading.load_model`
            (``device`` is checked here, on the worker's machine).
        options: :class:`~tuneshift.methods.attribution.api.AttributionOptions`.
        out_dir: the run directory (shared: a local path or a network file system).
        threads: torch CPU threads of this worker (None: torch's choice).
        invocation: the driver invocation's tag, first in every part name (shard numbers restart
            at 0 on a resume; the tag keeps an earlier invocation's parts).
        _crash_once_after_parts: for tests (:data:`_TEST_CRASH_ONCE_AFTER_PARTS`): after writing
            this many parts, the first worker to get there exits abruptly (``os._exit``), as a
            killed process would.
    """

    def __init__(
        self,
        spec: str,
        options,
        out_dir: str,
        adapter: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        threads: int | None = None,
        invocation: str = "r0",
        *,
        _crash_once_after_parts: int | None = None,
    ):
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        from tuneshift.models.loading import load_model

        self.loaded = load_model(spec, adapter=adapter, dtype=dtype, device=device, progress=False)
        self.options = options
        self.out_dir = Path(out_dir)
        self.invocation = invocation
        self.crash_once_after_parts = _crash_once_after_parts
        self.parts_written = 0
        self._forced = None

    def _cross(self):
        from tuneshift.pipelines.attribute_run import cross_responses

        if self._forced is None and self.options.responses == "cross":
            self._forced = cross_responses(self.loaded, self.options.responses_from, self.options.join)
        return self._forced or (None, None)

    def identity(self, prompts) -> tuple[dict, dict]:
        """``(identity, info)`` of the run (:func:`~tuneshift.pipelines.attribute_run.run_identity`)."""
        from tuneshift.pipelines.attribute_run import run_identity

        return run_identity(self.loaded, prompts, self.options, self._cross()[1])

    def attribute_shard(self, index: int, records: list) -> dict:
        """Attribute the records of shard ``index`` not yet in the run directory.

        Returns:
            ``{"shard", "pid", "n_records", "n_done_before", "n_attributed", "n_truncated",
            "n_short", "n_unlocated_spans", "skipped": {id: reason}, "seconds"}``.
        """
        from tuneshift.pipelines.attribute_run import attribute_into
        from tuneshift.storage.attribution import done_ids, write_part

        t0 = time.time()
        done = done_ids(self.out_dir)  # a retried shard: what its previous attempt wrote stays
        todo = [r for r in records if r.id not in done]
        position = {r.id: i for i, r in enumerate(records)}

        def write(results) -> int:
            if not results:
                return 0
            rows = write_part(
                self.out_dir, results, f"part-{self.invocation}-s{index:05d}-b{position[results[0].record_id]:05d}"
            )
            self.parts_written += 1
            self._maybe_crash()
            return rows

        counts = attribute_into(self.loaded, todo, self.options, write, forced=self._cross()[0])
        return {
            "shard": index,
            "pid": os.getpid(),
            "n_records": len(records),
            "n_done_before": len(records) - len(todo),
            "seconds": round(time.time() - t0, 2),
            **counts,
        }

    def _maybe_crash(self) -> None:
        if self.crash_once_after_parts is None or self.parts_written < self.crash_once_after_parts:
            return
        marker = self.out_dir / ".ray-test-crashed"
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)  # no cleanup, no exception: what SIGKILL or the OOM killer does


def _import_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reporting from a research tool
    # Ray's C++ core logs (e.g. "Failed to connect to GCS" warnings) stay off the user's terminal;
    # errors still show, and RAY_BACKEND_LOG_LEVEL set by the user wins
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    try:
        import ray
    except ImportError:
        raise TuneshiftError(RAY_INSTALL_HINT) from None
    return ray


def run_attribution_ray(
    spec: str,
    prompts,
    out_dir,
    options,
    ray_options: RayOptions | None = None,
    *,
    adapter: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    progress: bool = True,
    label: str | None = None,
):
    """Attribute every record of ``prompts`` into ``out_dir`` with Ray workers (see the module docstring).

    The steps: a finished run returns at once (:func:`~tuneshift.pipelines.attribute_run.finished_run`);
    otherwise Ray is started or joined (:func:`_start_ray`), the workers sized to the cluster
    (:func:`_worker_resources`), the run directory opened with the first worker's identity
    (:func:`_open_run`), the records left cut into shards (:func:`_plan_shards`) and the plan
    recorded (:func:`_record_plan`), the other workers launched, the shards handed to the workers
    and their results collected (:func:`_collect_shards`, :func:`_record_shard`), and the run
    finished (:func:`_finish`).

    Args:
        spec, adapter, dtype, device: the model, as :func:`~tuneshift.models.loading.load_model`.
        prompts: a :class:`~tuneshift.data.prompts.PromptSet`. out_dir: the run directory.
        options: :class:`~tuneshift.methods.attribution.api.AttributionOptions`.
        ray_options: :class:`RayOptions` (address, workers, threads and GPUs per worker, shard
            size, restarts); default a local Ray instance.
        progress: progress bar with ETA on stderr (per finished shard).
        label: the progress bar's name (default: the spec and the number of workers).

    Returns:
        A :class:`~tuneshift.pipelines.attribute_run.RunSummary`.

    Raises:
        TuneshiftError: ray is not installed; a worker cannot load the model or use the device
            (its message); a shard still fails after ``max_restarts``.
        InputFileError / RunMismatchError: as for a single-process run.
    """
    from tuneshift.files import check_out_dir
    from tuneshift.pipelines.attribute_run import RunSummary, finished_run, planned_identity
    from tuneshift.progress import progress_bar

    ro = ray_options or RayOptions()
    ray = _import_ray()
    out = Path(out_dir).resolve()
    check_out_dir(out)
    # a finished run (complete, same identity, every record written): no Ray, no workers, the
    # manifest (its shards) untouched
    done_already = finished_run(
        out, lambda: planned_identity(spec, prompts, options, adapter=adapter, dtype=dtype), prompts
    )
    if done_already is not None:
        return done_already
    started = _start_ray(ray, ro.address)
    try:
        gpus, cpus, workers = _worker_resources(ray, ro, device)
        remote = ray.remote(
            num_cpus=cpus, num_gpus=gpus, max_restarts=ro.max_restarts, max_task_retries=ro.max_restarts
        )(AttributionWorker)
        worker_args = (spec, options, str(out), adapter, dtype, device, ro.threads, time.strftime("r%Y%m%d%H%M%S"))

        def launch():
            return remote.remote(*worker_args, _crash_once_after_parts=_TEST_CRASH_ONCE_AFTER_PARTS)

        t0 = time.time()
        first = launch()
        writer, done, todo = _open_run(ray, first, out, prompts)
        size, shards = _plan_shards(todo, options.batch_size, ro.shard_size, workers)
        workers = min(workers, max(1, len(shards)))
        actors = [first] + [launch() for _ in range(workers - 1)]
        table = _record_plan(
            writer,
            shards,
            {
                "address": ro.address,
                "workers": workers,
                "ray_version": ray.__version__,
                "shard_size": size,
                "gpus_per_worker": gpus,
                "threads_per_worker": cpus,
            },
        )
        summary = RunSummary(
            path=str(out),
            n_records=len(prompts.records),
            n_done_before=len(prompts.records) - len(todo),
            input_problems=list(prompts.problems),
        )
        name = label or f"{spec} on {workers} Ray worker{'s' if workers > 1 else ''}"
        with progress_bar(
            name, total=len(prompts.records), unit="records", completed=summary.n_done_before, enabled=progress
        ) as bar:
            _collect_shards(ray, actors, shards, table, writer, summary, bar, progress, ro.max_restarts)
        _finish(writer, summary, done, t0, prompts)
        return summary
    finally:
        if started:
            ray.shutdown()


def _start_ray(ray, address: str) -> bool:
    """Join or start Ray at ``address`` unless this process already has it; True when started
    here (the caller shuts it down at the end).

    Raises:
        TuneshiftError: an unreachable or malformed address (:func:`probe_ray_address`, in
            seconds), or Ray's own refusal (its first line).
    """
    if ray.is_initialized():
        return False
    probe_ray_address(address)  # an unreachable address: one line in seconds, not Ray's retries
    kw = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    import warnings

    try:
        with warnings.catch_warnings():  # Ray Client prints a timeout warning before raising
            warnings.simplefilter("ignore")
            ray.init(address=None if address in (None, "", "local") else address, **kw)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TuneshiftError(
            f"cannot start or reach Ray at '{address}': {first[:300]} (--ray local starts one on this machine)"
        ) from None
    return True


def _worker_resources(ray, ro: RayOptions, device: str) -> tuple[float, int, int]:
    """``(GPUs per worker, CPUs per worker, workers)`` on this Ray cluster (the defaults of
    :class:`RayOptions`; the number of workers is cut to the shards later).

    Raises:
        TuneshiftError: each worker asks for more GPUs than the cluster has.
    """
    resources = ray.cluster_resources()
    on_gpu = device.startswith("cuda") or device == "auto"
    gpus = ro.gpus_per_worker if ro.gpus_per_worker is not None else (1 if on_gpu and resources.get("GPU", 0) else 0)
    if gpus and resources.get("GPU", 0) < gpus:
        raise TuneshiftError(
            f"each worker asks for {gpus} GPU(s) but the Ray cluster has {resources.get('GPU', 0):g}; "
            "use --device cpu without --gpus-per-worker, or a cluster with GPUs"
        )
    cpus = ro.threads or 1
    workers = ro.workers
    if workers is None:
        workers = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1) // cpus)
    return gpus, cpus, max(1, int(workers))


def _open_run(ray, first, out: Path, prompts):
    """Create or resume the run directory with the identity the first worker reports (a directory
    made with other settings is refused); returns ``(writer, ids already written, records left)``.

    Raises:
        TuneshiftError: the first worker could not start (e.g. cannot load the model).
        InputFileError / RunMismatchError: as :func:`~tuneshift.pipelines.attribute_run.open_run_dir`.
    """
    from tuneshift.pipelines.attribute_run import open_run_dir

    try:
        identity, info = ray.get(first.identity.remote(prompts))
    except ray.exceptions.RayError as e:
        raise TuneshiftError(f"a Ray worker could not start: {_cause(e)}") from None
    writer = open_run_dir(out, identity, info, prompts)
    done = writer.done_ids()
    return writer, done, [r for r in prompts.records if r.id not in done]


def _plan_shards(todo: Sequence, batch_size: int, shard_size: int | None, workers: int) -> tuple[int, list[list]]:
    """``(shard size, shards)`` of the records left: ``shard_size`` or by default 4 batches per
    shard, fewer when that would leave workers idle; always a multiple of ``batch_size``, so the
    batches are those of a single-process run."""
    size = shard_size or min(4 * batch_size, max(batch_size, -(-len(todo) // workers)))
    size = -(-size // batch_size) * batch_size
    return size, shard_records(todo, size)


def _record_plan(writer, shards: list[list], ray_info: dict) -> list[dict]:
    """Write the plan into the manifest (``ray``: address, workers, Ray version, shard size, GPUs
    and threads per worker; ``shards``: one row per shard, ``pending``); returns the shard table,
    which the collection updates in place."""
    table = [
        {"index": i, "n_records": len(s), "first_id": s[0].id, "last_id": s[-1].id, "status": "pending"}
        for i, s in enumerate(shards)
    ]
    writer.update_manifest(ray=ray_info, shards=table)
    return table


def _collect_shards(
    ray, actors: list, shards: list[list], table: list[dict], writer, summary, bar, progress: bool, max_restarts: int
) -> None:
    """Hand the shards to the workers as they become free and fold each result into the summary,
    the skipped records and the manifest's shard table (Ray restarts a dead worker and retries its
    shard itself, up to ``max_restarts`` times).

    Raises:
        TuneshiftError: a shard still failed after the restarts (marked ``failed`` in the manifest;
            finished records are kept).
    """
    pending = {}
    queue = list(range(len(shards)))
    free = list(actors)

    def submit():
        while free and queue:
            actor, i = free.pop(0), queue.pop(0)
            pending[actor.attribute_shard.remote(i, shards[i])] = (actor, i)
            table[i]["status"] = "running"

    submit()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        actor, i = pending.pop(ready[0])
        try:
            res = ray.get(ready[0])
        except ray.exceptions.RayError as e:
            table[i]["status"] = "failed"
            writer.update_manifest(shards=table)
            raise TuneshiftError(
                f"shard {i} ({shards[i][0].id}..{shards[i][-1].id}) failed after "
                f"{max_restarts} restarts: {_cause(e)}; finished records are kept, run the "
                "same command again to resume"
            ) from None
        _record_shard(res, i, table, writer, summary, bar, progress)
        free.append(actor)
        submit()


def _record_shard(res: dict, i: int, table: list[dict], writer, summary, bar, progress: bool) -> None:
    """Shard ``i`` finished (``res``: :meth:`AttributionWorker.attribute_shard`'s result): its row
    of the shard table, its skipped records (the first few named on the console), the summary's
    counts, the manifest and the progress bar."""
    from tuneshift.pipelines.attribute_run import SKIPPED_NAMED, skipped_line

    table[i].update(status="done", pid=res["pid"], n_done_before=res["n_done_before"], seconds=res["seconds"])
    for rid, why in res.pop("skipped").items():
        writer.skip(rid, why)
        summary.n_skipped += 1
        summary.skipped[rid] = why
        if progress and summary.n_skipped <= SKIPPED_NAMED:
            bar.console.print(skipped_line(rid, why), markup=False, highlight=False)
    for k in ("n_attributed", "n_truncated", "n_short", "n_unlocated_spans"):
        setattr(summary, k, getattr(summary, k) + res[k])
    writer.update_manifest(shards=table)
    bar.advance(res["n_records"])


def _finish(writer, summary, done: set, t0: float, prompts) -> None:
    """Mark the run complete with the same counts as a single-process run. Records a dead worker
    wrote before it died are in the directory but in no shard's result: the attributed count is
    what the directory holds now minus what it held before."""
    from tuneshift.pipelines.attribute_run import finish_run

    summary.seconds = time.time() - t0
    summary.n_attributed = len(writer.done_ids()) - len(done)
    finish_run(writer, summary, len(prompts.problems))


def _cause(e) -> str:
    """The first line of the root error inside a Ray exception."""
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    last = [ln for ln in text if ln.strip()]
    return (last[-1] if last else type(cause).__name__)[:300]
