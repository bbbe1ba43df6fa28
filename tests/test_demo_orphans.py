"""A demo worker ends when the demo process that started it is killed (no orphaned workers)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.slow  # starts subprocesses: `make test-fast` leaves it out


def test_worker_exits_when_parent_is_killed(tmp_path):
    pid_file = tmp_path / "worker.pid"
    parent = textwrap.dedent(f"""
        import multiprocessing, os, time
        from concurrent.futures import ProcessPoolExecutor
        from tuneshift.pipelines.demo import exit_with_parent

        def work(path):
            open(path, "w").write(str(os.getpid()))
            time.sleep(120)

        if __name__ == "__main__":
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=exit_with_parent, initargs=(os.getpid(), 0.1)) as pool:
                pool.submit(work, {str(pid_file)!r}).result()
    """)
    script = tmp_path / "parent.py"
    script.write_text(parent)
    p = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "the worker never started"
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        # a zombie reaped by init also counts as gone
        stat = open(f"/proc/{worker}/stat").read() if os.path.exists(f"/proc/{worker}/stat") else ""
        if stat.split(")")[-1].split()[:1] == ["Z"]:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the worker outlived its killed parent by 10 s")
