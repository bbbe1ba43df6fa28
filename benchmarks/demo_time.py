"""Wall time of ``tuneshift demo`` with its defaults, idle and with a CPU burner on one core (issue 19).

Run on an otherwise idle machine, with the model cache warm (run the demo once first)::

    .venv/bin/python benchmarks/demo_time.py --write-docs            # idle, then with a burner
    .venv/bin/python benchmarks/demo_time.py --only idle --limit 8   # a quicker look

Each run starts from an empty output folder (``--out``, default a temporary folder; the
annotator's answer cache goes with it, so nothing is reused). The burner is one
``while :; do :; done`` shell process, started before the demo and killed after it. The step
times come from the demo's own "TASK: done (N s)" lines. ``--write-docs`` writes the table into
``docs/benchmarks.md`` (block ``demo-time``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_once(out: Path, burner: bool, extra: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    b = subprocess.Popen(["sh", "-c", "while :; do :; done"]) if burner else None
    try:
        t0 = time.time()
        p = subprocess.run(
            [sys.executable, "-m", "tuneshift", "demo", "--out", str(out), *extra], capture_output=True, text=True
        )
        seconds = time.time() - t0
    finally:
        if b is not None:
            b.kill()
            b.wait()
    steps = dict(re.findall(r"^(\w+ [\w/]+): done \((\d+) s\)$", p.stderr, flags=re.M))
    runs = dict(re.findall(r"^(\w+, \w+): (\d+) attributed", p.stderr, flags=re.M))
    if p.returncode not in (0, 3):
        sys.stderr.write(p.stderr[-3000:])
        raise SystemExit(f"demo failed with exit code {p.returncode}")
    return {"seconds": seconds, "steps": steps, "runs": runs, "rc": p.returncode, "stdout": p.stdout}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["idle", "burner"], help="Run one of the two settings.")
    ap.add_argument("--limit", type=int, help="Pass --limit N to the demo (a quicker, smaller look).")
    ap.add_argument("--out", type=Path, help="Demo output folder (emptied first; default a temporary folder).")
    ap.add_argument("--write-docs", action="store_true", help="Write the table into docs/benchmarks.md.")
    a = ap.parse_args()
    extra = ["--limit", str(a.limit)] if a.limit else []
    out = a.out or Path(tempfile.mkdtemp(prefix="demo_time_")) / "demo"
    settings = [s for s in ("idle", "burner") if a.only in (None, s)]
    res = {}
    for s in settings:
        res[s] = run_once(out, s == "burner", extra)
        print(f"{s}: {res[s]['seconds']:.0f} s (exit {res[s]['rc']})", flush=True)
    lines = ["| setting | wall time | ratio to idle |", "|---|---|---|"]
    for s in settings:
        ratio = f"{res[s]['seconds'] / res['idle']['seconds']:.2f}x" if "idle" in res else "–"
        lines.append(f"| {s} | {res[s]['seconds'] / 60:.1f} min ({res[s]['seconds']:.0f} s) | {ratio} |")
    steps = sorted({k for r in res.values() for k in r["steps"]})
    if steps:
        lines += ["", "| step | " + " | ".join(settings) + " |", "|---|" + "---|" * len(settings)]
        lines += [f"| {k} | " + " | ".join(f"{res[s]['steps'].get(k, '–')} s" for s in settings) + " |" for k in steps]
    table = "\n".join(lines)
    print(table)
    if a.write_docs:
        from _docs import write_block

        cmd = (
            "benchmarks/demo_time.py"
            + (f" --limit {a.limit}" if a.limit else "")
            + (f" --only {a.only}" if a.only else "")
        )
        doc = write_block(
            "demo-time",
            [
                f"Measured {time.strftime('%Y-%m-%d')} with `.venv/bin/python {cmd} --write-docs` "
                "(defaults of `tuneshift demo`, model cache warm, empty output folder):",
                "",
                *lines,
            ],
            "tuneshift demo: wall time, idle and with a busy core",
            "The demo's default layout (two single-thread workers) against one CPU burner "
            "(`while :; do :; done`) on this 2-core machine (issue 19: at most 15 minutes idle, "
            "at most 1.5x with the burner).",
        )
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
