"""Attribution sharded over a local Ray cluster (``ray.init(num_cpus=2)``): two workers give
exactly the single-process run; a worker that dies mid-shard is restarted, its shard retried,
and every record is written once; resume and identity rules are those of a normal run."""

from __future__ import annotations

import json

import numpy as np
import pytest

import helpers_tiny as H
from tuneshift.data.prompts import read_prompts
from tuneshift.errors import RunMismatchError
from tuneshift.methods.attribution.api import AttributionOptions
from tuneshift.pipelines.attribute_run import run_attribution
from tuneshift.storage.attribution import load_run

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'tuneshift[ray]'); make test installs it")

pytestmark = pytest.mark.slow  # a local Ray cluster (and subprocesses): `make test-fast` leaves it out

PROMPTS = [*H.TINY_PROMPTS, *[dict(r, id=f"{r['id']}_b") for r in H.TINY_PROMPTS]]  # 12 records


@pytest.fixture(scope="module")
def local_ray():
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_llama_dir):
    d = tmp_path_factory.mktemp("ray")
    prompts = read_prompts(H.write_prompts_jsonl(d / "prompts.jsonl", PROMPTS))
    options = AttributionOptions(responses="given", batch_size=2, max_new_tokens=8)
    import tuneshift

    single = d / "single"
    run_attribution(tuneshift.load_model(str(tiny_llama_dir), progress=False), prompts, single, options, progress=False)
    return d, prompts, options, load_run(single)


def _ray_run(tiny_llama_dir, prompts, out, options, **kw):
    from tuneshift.pipelines.ray_run import RayOptions, run_attribution_ray

    return run_attribution_ray(str(tiny_llama_dir), prompts, out, options, RayOptions(threads=1, **kw), progress=False)


def _same_records(a, b):
    assert [x.record_id for x in a.attributions] == [x.record_id for x in b.attributions]  # prompt order, once each
    for x, y in zip(a.attributions, b.attributions):
        assert list(x.response_token_ids) == list(y.response_token_ids) and list(x.prompt_tokens) == list(
            y.prompt_tokens
        )
        np.testing.assert_array_equal(x.raw, y.raw)  # the same batches: bit-identical
        assert x.instruction_score == y.instruction_score or (
            np.isnan(x.instruction_score) and np.isnan(y.instruction_score)
        )


def test_two_workers_equal_the_single_process_run(local_ray, setup, tiny_llama_dir):
    d, prompts, options, single = setup
    s = _ray_run(tiny_llama_dir, prompts, d / "two", options, workers=2, shard_size=2)
    assert (s.n_records, s.n_attributed, s.n_done_before) == (12, 12, 0)
    run = load_run(d / "two")
    _same_records(single, run)
    m = json.loads((d / "two" / "manifest.json").read_text())
    assert m["identity"] == single.manifest["identity"] and m["status"] == "complete"
    assert m["counts"]["n_attributed"] == 12
    assert m["ray"]["workers"] == 2 and len(m["shards"]) == 6 and all(x["status"] == "done" for x in m["shards"])
    assert len({x["pid"] for x in m["shards"]}) == 2  # both workers did shards
    parts = sorted(p.name for p in (d / "two" / "results").glob("part-*.parquet"))
    assert len(parts) == 6 and all(p.endswith(f"-s{i:05d}-b00000.parquet") for i, p in enumerate(parts))
    # resume: nothing left to do, nothing rewritten
    again = _ray_run(tiny_llama_dir, prompts, d / "two", options, workers=2, shard_size=2)
    assert (again.n_done_before, again.n_attributed) == (12, 0)
    assert sorted(p.name for p in (d / "two" / "results").glob("part-*.parquet")) == parts


def test_a_killed_worker_is_restarted_and_its_shard_finished_once(local_ray, setup, tiny_llama_dir, monkeypatch):
    from tuneshift.pipelines import ray_run

    d, prompts, options, single = setup
    out = d / "crash"
    monkeypatch.setattr(ray_run, "_TEST_CRASH_ONCE_AFTER_PARTS", 1)  # the workers it starts die after one part
    s = _ray_run(tiny_llama_dir, prompts, out, options, workers=2, shard_size=4)
    crashed_pid = int((out / ".ray-test-crashed").read_text())
    run = load_run(out)
    ids = [a.record_id for a in run.attributions]
    assert len(ids) == len(set(ids)) == 12  # every record once
    _same_records(single, run)
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and all(x["status"] == "done" for x in m["shards"])
    # the shard whose worker died after its first batch: the retry found 2 records written, did the other 2
    retried = [x for x in m["shards"] if x["n_done_before"] > 0]
    assert len(retried) == 1 and retried[0]["n_done_before"] == 2 and retried[0]["pid"] != crashed_pid
    assert s.n_attributed == 12 and m["counts"]["n_attributed"] == 12  # the dead worker's 2 records included
    # a batch written twice under another name (a zombie writer) is still read once
    import shutil

    first = sorted((out / "results").glob("part-*.parquet"))[0]
    shutil.copy(first, first.with_name("part-zz-copy.parquet"))
    assert [a.record_id for a in load_run(out).attributions] == ids


def test_other_settings_are_refused_like_a_normal_run(local_ray, setup, tiny_llama_dir):
    from tuneshift.methods.attribution.importance import ImportanceSettings

    d, prompts, options, single = setup
    other = AttributionOptions(responses="given", batch_size=2, importance=ImportanceSettings(threshold=5))
    with pytest.raises(RunMismatchError):
        _ray_run(tiny_llama_dir, prompts, d / "single", other, workers=1)
    assert load_run(d / "single").manifest == single.manifest  # untouched


def test_cli_ray(local_ray, setup, tiny_llama_dir, cli):
    d, prompts, options, single = setup
    r = cli(
        "attribute",
        "--model",
        tiny_llama_dir,
        "--prompts",
        prompts.path,
        "--out",
        d / "cli",
        "--responses",
        "gold",
        "--batch-size",
        "2",
        "--ray",
        "local",
        "--workers",
        "2",
        "--threads",
        "1",
    )
    assert r.code == 0, r.err
    assert "12 attributed" in r.err
    _same_records(single, load_run(d / "cli"))
    r = cli("attribute", "--model", tiny_llama_dir, "--prompts", prompts.path, "--out", d / "x", "--workers", "2")
    assert r.code == 2 and "--workers is used with --ray only" in r.err and not (d / "x").exists()
    r = cli(
        "attribute",
        "--model",
        tiny_llama_dir,
        "--prompts",
        prompts.path,
        "--out",
        d / "x",
        "--ray",
        "local",
        "--shard-size",
        "0",
    )
    assert r.code == 2 and "--shard-size must be >= 1" in r.err


def test_unreachable_ray_is_one_line(tiny_llama_dir, tiny_prompts_file, tmp_path):
    """In a fresh process: a malformed address is a one-line error, exit 2. (``--ray auto`` without
    a cluster gives the same kind of error, "Could not find any running Ray instance"; it is not
    tested here because this module's own local cluster, or one the developer runs, would be found.)"""
    import subprocess
    import sys

    for address, needle in (("bogus", "Invalid address format"),):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tuneshift.cli",
                "attribute",
                "--model",
                str(tiny_llama_dir),
                "--prompts",
                str(tiny_prompts_file),
                "--out",
                str(tmp_path / "r"),
                "--responses",
                "gold",
                "--ray",
                address,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**__import__("os").environ, "RAY_ADDRESS": ""},
        )
        assert r.returncode == 2, r.stderr
        assert f"error: cannot start or reach Ray at '{address}'" in r.stderr and needle in r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "r").exists()


def test_resume_of_an_interrupted_ray_run_keeps_earlier_parts(local_ray, setup, tiny_llama_dir):
    """A second invocation restarts shard numbers at 0: its parts must not replace the first's."""
    d, prompts, options, single = setup

    out = d / "resume"
    _ray_run(tiny_llama_dir, prompts, out, options, workers=2, shard_size=2)
    parts = sorted((out / "results").glob("part-*.parquet"))
    for p in parts[2:]:
        p.unlink()  # as if interrupted after two shards
    import time

    time.sleep(1.1)  # a later invocation tag
    s = _ray_run(tiny_llama_dir, prompts, out, options, workers=2, shard_size=2)
    assert s.n_done_before == 4 and s.n_attributed == 8
    _same_records(single, load_run(out))


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_probe_refuses_a_closed_port_in_seconds():
    import time

    from tuneshift.errors import TuneshiftError
    from tuneshift.pipelines.ray_run import RAY_PROBE_SECONDS, probe_ray_address

    port = _closed_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        t0 = time.time()
        with pytest.raises(TuneshiftError) as e:
            probe_ray_address(address)
        assert time.time() - t0 < RAY_PROBE_SECONDS + 1
        assert str(e.value) == (
            f"cannot reach Ray at '{address}': connection refused (TCP probe, "
            f"{RAY_PROBE_SECONDS:g} s timeout; --ray local starts one on this machine)"
        )
    for address in ("local", "auto", None, "bogus"):  # not probed: Ray's own rules (and errors) apply
        probe_ray_address(address)


def test_unreachable_address_fails_in_seconds_without_ray_logs(tiny_llama_dir, tiny_prompts_file, tmp_path):
    """Issue 21: ``--ray HOST:PORT`` with nothing listening hung for many minutes in Ray's GCS
    retries (C++ warning lines on the terminal) before its error. Now: the one-line error within a
    few seconds (bounded generously: this is a hang test, not a speed test), nothing created."""
    import os
    import subprocess
    import sys
    import time

    address = f"127.0.0.1:{_closed_port()}"
    t0 = time.time()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuneshift.cli",
            "attribute",
            "--model",
            str(tiny_llama_dir),
            "--prompts",
            str(tiny_prompts_file),
            "--out",
            str(tmp_path / "r"),
            "--responses",
            "gold",
            "--ray",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_ADDRESS": "", "OMP_NUM_THREADS": "1"},
    )
    elapsed = time.time() - t0
    assert r.returncode == 2, r.stderr
    assert elapsed < 30, elapsed
    flat = " ".join(ln.strip() for ln in r.stderr.splitlines() if ln.strip())  # a narrow console may wrap it
    assert flat == (
        f"error: cannot reach Ray at '{address}': connection refused (TCP probe, 5 s timeout; --ray local "
        "starts one on this machine)"
    ), r.stderr
    assert "Failed to connect to GCS" not in r.stderr and not (tmp_path / "r").exists()


def test_rerun_of_a_finished_ray_run_starts_no_ray_and_keeps_the_manifest(
    local_ray, setup, tiny_llama_dir, monkeypatch
):
    """Issue 21, item 11: the re-run of a finished run is detected (complete, same identity, every
    record written) before Ray starts; the manifest (its shards) is left as it was."""
    d, prompts, options, single = setup
    out = d / "finished"
    _ray_run(tiny_llama_dir, prompts, out, options, workers=1, shard_size=4)
    before = (out / "manifest.json").read_text()
    assert len(json.loads(before)["shards"]) == 3

    def no_ray(*a, **k):
        raise AssertionError("Ray was used")

    monkeypatch.setattr(ray, "init", no_ray)
    monkeypatch.setattr(ray, "remote", no_ray)
    s = _ray_run(tiny_llama_dir, prompts, out, options, workers=1, shard_size=4)
    assert (s.n_records, s.n_done_before, s.n_attributed, s.status) == (12, 12, 0, "complete")
    assert (out / "manifest.json").read_text() == before
    # a single-process run with the same identity is finished for --ray too
    s = _ray_run(tiny_llama_dir, prompts, d / "single", options, workers=1)
    assert s.n_done_before == 12 and load_run(d / "single").manifest == single.manifest


@pytest.mark.parametrize(
    "address, needle",
    [
        ("127.0.0.1:99999", "a port in 1-65535"),
        ("127.0.0.1:0", "a port in 1-65535"),
        (":1234", "a port in 1-65535"),
        ("ray://", "names no host"),
        ("http://127.0.0.1:8265", "http:// is not Ray's"),
    ],
)
def test_probe_refuses_malformed_addresses_at_once(address, needle):
    # Ray itself retried these for minutes without end (a port out of range, no host, another scheme)
    import time

    from tuneshift.errors import TuneshiftError
    from tuneshift.pipelines.ray_run import probe_ray_address

    t0 = time.time()
    with pytest.raises(TuneshiftError, match=needle) as e:
        probe_ray_address(address)
    assert time.time() - t0 < 1 and f"'{address}'" in str(e.value) and "\n" not in str(e.value)


def test_probe_refuses_a_server_that_is_not_ray_in_seconds():
    # a port that accepts TCP but speaks HTTP/1 (a web server, the dashboard): Ray hung on it
    import http.server
    import threading
    import time

    from tuneshift.errors import TuneshiftError
    from tuneshift.pipelines.ray_run import probe_ray_address

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        t0 = time.time()
        with pytest.raises(
            TuneshiftError, match="accepts connections but is not a Ray server: no gRPC handshake in 2 s"
        ):
            probe_ray_address(address, timeout=2)
        assert time.time() - t0 < 6
    finally:
        server.shutdown()


def test_probe_accepts_a_real_ray_gcs(local_ray):
    from tuneshift.pipelines.ray_run import probe_ray_address

    probe_ray_address(ray.get_runtime_context().gcs_address)  # a real GCS completes the gRPC handshake


def test_ray_options_check_themselves():
    """Issue 23 item 4: RayOptions holds what run_attribution_ray took as keywords, checked as the CLI did."""
    import inspect

    from tuneshift.errors import OptionError
    from tuneshift.pipelines.ray_run import RayOptions, run_attribution_ray

    assert RayOptions().address == "local" and RayOptions(" AUTO ").address == "auto"
    assert RayOptions("ray://h:1").address == "ray://h:1"
    with pytest.raises(OptionError) as e:
        RayOptions(workers=0, shard_size=0, gpus_per_worker=-1)
    assert str(e.value) == "workers must be >= 1; shard_size must be >= 1; gpus_per_worker must be >= 0"
    with pytest.raises(OptionError, match="max_restarts must be >= 0"):
        RayOptions(max_restarts=-1)
    with pytest.raises(OptionError) as e:
        RayOptions(" ")
    assert str(e.value) == "address needs an address: local, auto or ray://HOST:PORT"
    # the public signature: the model, the prompts, the run directory, the two options objects; no test hook
    params = inspect.signature(run_attribution_ray).parameters
    assert list(params)[:5] == ["spec", "prompts", "out_dir", "options", "ray_options"]
    assert not any("crash" in p for p in params) and len(params) <= 10


def test_cli_ray_flags_are_checked_before_anything(cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    base = ("attribute", "--model", tiny_llama_dir, "--prompts", tiny_prompts_file, "--out", tmp_path / "r")
    r = cli(*base, "--ray", " ")
    assert r.code == 2 and "--ray needs an address: local, auto or ray://HOST:PORT" in r.err
    r = cli(*base, "--ray", "local", "--workers", "0", "--gpus-per-worker", "-1")
    assert r.code == 2 and "--workers must be >= 1; --gpus-per-worker must be >= 0" in r.err
    r = cli(*base, "--workers", "2", "--gpus-per-worker", "1")
    assert r.code == 2 and "--workers is used with --ray only; --gpus-per-worker is used with --ray only" in r.err
    assert not (tmp_path / "r").exists()
