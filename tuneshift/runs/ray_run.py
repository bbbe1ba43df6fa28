"""An attribution run sharded over Ray workers (``tuneshift attribute --ray ADDRESS``).

The same run directory, identity and resume rules as :func:`~tuneshift.runs.attribute_run.run_attribution`;
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
:func:`~tuneshift.runs.attribute_run.planned_identity`) and has every record written returns at
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
from pathlib import Path
from typing import Sequence

from tuneshift.errors import TuneshiftError

__all__ = ["AttributionWorker", "probe_ray_address", "run_attribution_ray", "shard_records", "RAY_INSTALL_HINT",
           "RAY_PROBE_SECONDS"]

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
        raise TuneshiftError(f"'{address}' is not a Ray address ({scheme}:// is not Ray's; the dashboard's http "
                             f"address is not the cluster's): {form}")
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
    why = ("no answer" if not result or isinstance(result[0], (TimeoutError, socket.timeout)) else
           "unknown host" if isinstance(result[0], socket.gaierror) else
           "connection refused" if isinstance(result[0], ConnectionRefusedError) else
           (result[0].strerror or type(result[0]).__name__) if result[0] is not None else None)
    if why is not None:
        raise TuneshiftError(f"cannot reach Ray at '{address}': {why} (TCP probe, {timeout:g} s timeout; "
                             "--ray local starts one on this machine)")
    try:
        import grpc  # installed with ray (its GCS and Ray Client servers are gRPC)
    except ImportError:
        return
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise TuneshiftError(f"'{address}' accepts connections but is not a Ray server: no gRPC handshake in "
                             f"{timeout:g} s (a Ray cluster's GCS port, 6379 by default, or its Ray Client port, "
                             "10001 by default, is needed)") from None
    finally:
        channel.close()


def shard_records(records: Sequence, shard_size: int) -> list[list]:
    """Contiguous shards of ``shard_size`` records (the last may be shorter), in order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [list(records[i : i + shard_size]) for i in range(0, len(records), shard_size)]


class AttributionWorker:
    """The body of one Ray actor: one loaded model, attributing shards into a run directory.

    Args:
        spec, adapter, dtype, device: as :func:`~tuneshift.models.loading.load_model`
            (``device`` is checked here, on the worker's machine).
        options: :class:`~tuneshift.methods.attribution.api.AttributionOptions`.
        out_dir: the run directory (shared: a local path or a network file system).
        threads: torch CPU threads of this worker (None: torch's choice).
        crash_once_after_parts: for tests: after writing this many parts, the first worker to
            get there exits abruptly (``os._exit``), as a killed process would.
        invocation: the driver invocation's tag, first in every part name (shard numbers restart
            at 0 on a resume; the tag keeps an earlier invocation's parts).
    """

    def __init__(self, spec: str, options, out_dir: str, adapter: str | None = None, dtype: str = "float32",
                 device: str = "cpu", threads: int | None = None, crash_once_after_parts: int | None = None,
                 invocation: str = "r0"):
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        from tuneshift.models.loading import load_model

        self.loaded = load_model(spec, adapter=adapter, dtype=dtype, device=device, progress=False)
        self.options = options
        self.out_dir = Path(out_dir)
        self.invocation = invocation
        self.crash_once_after_parts = crash_once_after_parts
        self.parts_written = 0
        self._forced = None

    def _cross(self):
        from tuneshift.runs.attribute_run import cross_responses

        if self._forced is None and self.options.responses == "cross":
            self._forced = cross_responses(self.loaded, self.options.responses_from, self.options.join)
        return self._forced or (None, None)

    def identity(self, prompts) -> tuple[dict, dict]:
        """``(identity, info)`` of the run (:func:`~tuneshift.runs.attribute_run.run_identity`)."""
        from tuneshift.runs.attribute_run import run_identity

        return run_identity(self.loaded, prompts, self.options, self._cross()[1])

    def attribute_shard(self, index: int, records: list) -> dict:
        """Attribute the records of shard ``index`` not yet in the run directory.

        Returns:
            ``{"shard", "pid", "n_records", "n_done_before", "n_attributed", "n_truncated",
            "n_short", "n_unlocated_spans", "skipped": {id: reason}, "seconds"}``.
        """
        from tuneshift.runs.attribute_run import attribute_into
        from tuneshift.runs.store import done_ids, write_part

        t0 = time.time()
        done = done_ids(self.out_dir)  # a retried shard: what its previous attempt wrote stays
        todo = [r for r in records if r.id not in done]
        position = {r.id: i for i, r in enumerate(records)}

        def write(results) -> int:
            if not results:
                return 0
            rows = write_part(self.out_dir, results,
                              f"part-{self.invocation}-s{index:05d}-b{position[results[0].record_id]:05d}")
            self.parts_written += 1
            self._maybe_crash()
            return rows

        counts = attribute_into(self.loaded, todo, self.options, write, forced=self._cross()[0])
        return {"shard": index, "pid": os.getpid(), "n_records": len(records), "n_done_before": len(records) - len(todo),
                "seconds": round(time.time() - t0, 2), **counts}

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


def run_attribution_ray(spec: str, prompts, out_dir, options, address: str = "local", workers: int | None = None,
                        adapter: str | None = None, dtype: str = "float32", device: str = "cpu",
                        threads: int | None = None, gpus_per_worker: float | None = None, shard_size: int | None = None,
                        max_restarts: int = 3, progress: bool = True, label: str | None = None,
                        crash_once_after_parts: int | None = None):
    """Attribute every record of ``prompts`` into ``out_dir`` with Ray workers (see the module docstring).

    Args:
        spec, adapter, dtype, device: the model, as :func:`~tuneshift.models.loading.load_model`.
        prompts: a :class:`~tuneshift.data.prompts.PromptSet`. out_dir: the run directory.
        options: :class:`~tuneshift.methods.attribution.api.AttributionOptions`.
        address: ``local`` (start a Ray instance on this machine for this run), ``auto`` (the
            running cluster this machine belongs to) or ``ray://HOST:PORT``. When Ray is already
            initialised in this process, that instance is used.
        workers: Ray actors (one model each). Default: with a GPU device, the cluster's GPUs /
            ``gpus_per_worker``; on CPUs, the cluster's CPUs / ``threads`` (at least 1), never more
            than the shards.
        threads: torch threads per CPU worker (also its Ray CPU reservation; default 1).
        gpus_per_worker: GPUs reserved per worker (default 1 with ``cuda``/``auto``, 0 on CPU).
        shard_size: records per shard (default ``4 * batch_size``, less when there are fewer
            records than that per worker; rounded up to a multiple of ``batch_size``).
        max_restarts: restarts of a dead worker (and retries of its shard) before the run fails.
        progress: progress bar with ETA on stderr (per finished shard).
        crash_once_after_parts: for tests (see :class:`AttributionWorker`).

    Returns:
        A :class:`~tuneshift.runs.attribute_run.RunSummary`.

    Raises:
        TuneshiftError: ray is not installed; a worker cannot load the model or use the device
            (its message); a shard still fails after ``max_restarts``.
        InputFileError / RunMismatchError: as for a single-process run.
    """
    from tuneshift.files import check_out_dir
    from tuneshift.progress import progress_bar
    from tuneshift.runs.attribute_run import (SKIPPED_NAMED, RunSummary, finish_run, finished_run, open_run_dir,
                                              planned_identity, skipped_line)

    ray = _import_ray()
    out = Path(out_dir).resolve()
    check_out_dir(out)
    # a finished run (complete, same identity, every record written): no Ray, no workers, the
    # manifest (its shards) untouched
    done_already = finished_run(out, lambda: planned_identity(spec, prompts, options, adapter=adapter, dtype=dtype), prompts)
    if done_already is not None:
        return done_already
    bs = options.batch_size
    on_gpu = device.startswith("cuda") or device == "auto"
    started = False
    if not ray.is_initialized():
        probe_ray_address(address)  # an unreachable address: one line in seconds, not Ray's retries
        kw = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        import warnings

        try:
            with warnings.catch_warnings():  # Ray Client prints a timeout warning before raising
                warnings.simplefilter("ignore")
                ray.init(address=None if address in (None, "", "local") else address, **kw)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise TuneshiftError(f"cannot start or reach Ray at '{address}': {first[:300]} "
                                 "(--ray local starts one on this machine)") from None
        started = True
    try:
        resources = ray.cluster_resources()
        gpus = gpus_per_worker if gpus_per_worker is not None else (1 if on_gpu and resources.get("GPU", 0) else 0)
        if gpus and resources.get("GPU", 0) < gpus:
            raise TuneshiftError(f"each worker asks for {gpus} GPU(s) but the Ray cluster has {resources.get('GPU', 0):g}; "
                                 "use --device cpu without --gpus-per-worker, or a cluster with GPUs")
        worker_args = (spec, options, str(out), adapter, dtype, device, threads, crash_once_after_parts,
                       time.strftime("r%Y%m%d%H%M%S"))
        cpus = threads or 1
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=max_restarts,
                            max_task_retries=max_restarts)(AttributionWorker)
        if workers is None:
            workers = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1) // cpus)
        workers = max(1, int(workers))
        t0 = time.time()
        first = remote.remote(*worker_args)
        try:
            identity, info = ray.get(first.identity.remote(prompts))
        except ray.exceptions.RayError as e:
            raise TuneshiftError(f"a Ray worker could not start: {_cause(e)}") from None
        writer = open_run_dir(out, identity, info, prompts)
        done = writer.done_ids()
        todo = [r for r in prompts.records if r.id not in done]
        # default: 4 batches per shard, smaller when that would leave workers idle
        size = shard_size or min(4 * bs, max(bs, -(-len(todo) // workers)))
        size = -(-size // bs) * bs
        shards = shard_records(todo, size)
        workers = min(workers, max(1, len(shards)))
        actors = [first] + [remote.remote(*worker_args) for _ in range(workers - 1)]
        table = [{"index": i, "n_records": len(s), "first_id": s[0].id, "last_id": s[-1].id, "status": "pending"}
                 for i, s in enumerate(shards)]
        writer.update_manifest(ray={"address": address, "workers": workers, "ray_version": ray.__version__,
                                    "shard_size": size, "gpus_per_worker": gpus, "threads_per_worker": cpus},
                               shards=table)
        summary = RunSummary(path=str(out), n_records=len(prompts.records), n_done_before=len(prompts.records) - len(todo),
                             input_problems=list(prompts.problems))
        name = label or f"{spec} on {workers} Ray worker{'s' if workers > 1 else ''}"
        with progress_bar(name, total=len(prompts.records), unit="records", completed=summary.n_done_before,
                          enabled=progress) as bar:
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
                    raise TuneshiftError(f"shard {i} ({shards[i][0].id}..{shards[i][-1].id}) failed after "
                                         f"{max_restarts} restarts: {_cause(e)}; finished records are kept, run the "
                                         "same command again to resume") from None
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
                free.append(actor)
                submit()
        summary.seconds = time.time() - t0
        # records a dead worker wrote before it died are in the directory but in no shard's result
        summary.n_attributed = len(writer.done_ids()) - len(done)
        finish_run(writer, summary, len(prompts.problems))
        return summary
    finally:
        if started:
            ray.shutdown()


def _cause(e) -> str:
    """The first line of the root error inside a Ray exception."""
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    last = [ln for ln in text if ln.strip()]
    return (last[-1] if last else type(cause).__name__)[:300]
