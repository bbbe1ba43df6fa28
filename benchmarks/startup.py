"""Benchmark: the start-up of the ``tuneshift`` command (issue 22, item 4).

Run on demand (not a test):

    .venv/bin/python benchmarks/startup.py [--model gemma-3-270m] [--prompts bundled:demo]
        [--limit 2] [--max-new-tokens 4] [--repeats 5] [--runs 3] [--write-docs]

Measures, each in fresh subprocesses (the interpreter's own start-up included):
1. ``tuneshift --help`` and ``tuneshift attribute --help``: wall time (median and min of
   ``--repeats``) and which heavy libraries (torch, transformers, scipy, ...) they import;
2. ``import tuneshift.cli``: its import time inside the interpreter (median and min);
3. a small real ``tuneshift attribute`` run (``--runs`` times, each into a new output folder):
   the wall time before the first record is attributed, split into phases -- Python's start-up,
   ``import tuneshift.cli``, the command line and every check before the load, the model load
   (``import transformers``, resolving the spec and its content hash, the tokenizer, the
   weights), the run directory -- then the first batch itself and its Parquet part, for scale.
   The run executes ``tuneshift.cli.main`` in a child process with wrappers that time-stamp
   these functions (patched at run time, the library is unchanged), under ``python -X
   importtime``: the "of which imports" column sums the outermost imports that finished in each
   phase. Per-phase numbers are medians over the runs (they need not add up to the median total).
With ``--write-docs`` the tables are written into ``docs/benchmarks.md`` between the
``startup-benchmark`` markers (the other sections are left alone).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "scipy", "pandas", "pyarrow", "jinja2", "matplotlib", "ray", "peft", "captum")
MARK = "@@startup-mark "

# ----------------------------------------------------------------------------- the run's phases

#: module -> [(attribute, label, first call only)]: functions timed inside the real run, wrapped
#: when their module is imported (an import hook: nothing is imported earlier than the command
#: itself imports it). ``Class.method`` names a method.
TIMED = {
    "tuneshift.cli.attribution": [("set_threads", "--threads (torch threads)", False)],
    "tuneshift.models.devices": [("resolve_placement", "--device/--dtype check", False)],
    "tuneshift.methods.attribution.api": [
        ("AttributionOptions.__post_init__", "options (method and target registries)", False)
    ],
    "tuneshift.data.prompts": [("read_prompts", "read the prompt file", False)],
    "tuneshift.pipelines.attribute_run": [
        ("check_before_load", "checks before the load", False),
        ("check_resume_before_load", "resume check before the load", False),
        ("open_run", "run directory (identity, manifest)", False),
        ("attribute_batch", "first batch attributed", True),
    ],
    "tuneshift.models.loading": [("_resolve_and_materialise", "resolve the spec, content hash, cache", False)],
    "tuneshift.storage.attribution": [("RunWriter.add", "first Parquet part written", True)],
}

#: the rows of the phase table, in this order (a gap directly inside a phase is its "other").
ORDER = [
    "python start-up",
    "import tuneshift.cli",
    "command line (typer)",
    "--threads (torch threads)",
    "--device/--dtype check",
    "options (method and target registries)",
    "read the prompt file",
    "checks before the load",
    "resume check before the load",
    "model load: import transformers",
    "resolve the spec, content hash, cache",
    "tokenizer",
    "weights",
    "model load: other",
    "run directory (identity, manifest)",
    "other before the first record",
    "total before the first record",
    "first batch attributed",
    "first Parquet part written",
    "total to the first part written",
]


def _wrap(fn, label: str, mark, first_only: bool = False):
    state = {"n": 0}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        state["n"] += 1
        if first_only and state["n"] > 1:
            return fn(*args, **kwargs)
        mark(f"start {label}")
        try:
            return fn(*args, **kwargs)
        finally:
            mark(f"end {label}")

    return wrapper


def _install_patches(patch) -> None:
    """Call ``patch(module)`` right after each module of :data:`TIMED` (and
    ``tuneshift.models.loading``) is executed, whenever the program imports it."""
    import importlib.abc

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname not in TIMED:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                patch(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Finder())


def worker(argv: list[str], result: str, spawned: float) -> None:
    """Run ``tuneshift.cli.main(argv)`` with time stamps; write the events to ``result`` (JSON)."""
    events: list[tuple[float, str]] = [(spawned, "spawned"), (time.time(), "python started")]

    def mark(label: str) -> None:
        events.append((time.time(), label))
        print(MARK + label, file=sys.stderr, flush=True)

    def timed_load(original):
        @functools.wraps(original)
        def load_model(*args, **kwargs):
            mark("start model load")
            mark("start model load: import transformers")
            from transformers import AutoModelForCausalLM, AutoTokenizer

            mark("end model load: import transformers")
            for cls, label in ((AutoTokenizer, "tokenizer"), (AutoModelForCausalLM, "weights")):
                if not getattr(cls.from_pretrained, "_startup_timed", False):
                    cls.from_pretrained = staticmethod(_wrap(cls.from_pretrained, label, mark))
                    cls.from_pretrained._startup_timed = True
            try:
                return original(*args, **kwargs)
            finally:
                mark("end model load")

        return load_model

    def patch(module) -> None:
        for name, label, first_only in TIMED[module.__name__]:
            owner, _, attr = name.rpartition(".")
            obj = getattr(module, owner) if owner else module
            if hasattr(obj, attr):
                setattr(obj, attr, _wrap(getattr(obj, attr), label, mark, first_only))
        if module.__name__ == "tuneshift.models.loading":
            module.load_model = timed_load(module.load_model)  # before the CLI binds the name

    TIMED.setdefault("tuneshift.models.loading", [])
    _install_patches(patch)
    mark("start import tuneshift.cli")
    import tuneshift.cli

    mark("end import tuneshift.cli")
    mark("start command line (typer)")
    code = 0
    try:
        tuneshift.cli.main(argv)
    except SystemExit as e:
        code = e.code or 0
    mark("end command line (typer)")
    Path(result).write_text(json.dumps({"events": events, "exit_code": code}))


def phases(events: list[tuple[float, str]], stderr: str) -> dict[str, dict[str, float]]:
    """``{label: {"seconds", "imports"}}`` from the time stamps and the ``-X importtime`` lines.

    A gap between two stamps belongs to the innermost phase open at that time (a gap directly
    inside the command is "command line (typer)" before the load, "other before the first
    record" after it); the imports that finished between two stamps (outermost lines only) to
    the same phase. Adds the totals up to the first batch and up to the first part written.
    """
    gap_imports: list[float] = [0.0]  # imports finished in each gap between stderr markers
    for line in stderr.splitlines():
        if line.startswith(MARK):
            gap_imports.append(0.0)
            continue
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)\S", line)
        if m and not m.group(2):  # an outermost import (no indentation)
            gap_imports[-1] += int(m.group(1)) / 1e6
    out: dict[str, dict[str, float]] = {}
    totals = {"seconds": 0.0, "imports": 0.0}

    def add(label: str, seconds: float, imports: float) -> None:
        row = out.setdefault(label, {"seconds": 0.0, "imports": 0.0})
        row["seconds"] += seconds
        row["imports"] += imports

    # interpreter start-up: spawn -> the worker's first statement (imports of site and this script)
    spawned, (t_prev, _) = events[0][0], events[1]
    add("python start-up", t_prev - spawned, 0.0)
    stack: list[str] = []
    loaded = first = False
    for i, (t, label) in enumerate(events[2:]):
        imports = gap_imports[i] if i < len(gap_imports) else 0.0
        # stack empty: before the import (start-up) or between the import and the command (nothing)
        inner = stack[-1] if stack else ("python start-up" if i == 0 else "command line (typer)")
        if inner == "command line (typer)":
            inner = "other before the first record" if loaded else inner
        elif inner == "model load":
            inner = "model load: other"
        if not first or inner in ("first batch attributed", "first Parquet part written"):
            add(inner, t - t_prev, imports)
        if label == "start first batch attributed":
            first = True
            totals = {"seconds": t - spawned, "imports": sum(v["imports"] for v in out.values())}
        if label == "end first Parquet part written":
            out["total to the first part written"] = {"seconds": t - spawned, "imports": float("nan")}
        if label == "end model load":
            loaded = True
        if label.startswith("start "):
            stack.append(label[6:])
        elif label.startswith("end ") and stack and stack[-1] == label[4:]:
            stack.pop()
        t_prev = t
    out["total before the first record"] = totals
    return out


def run_attribute(args, tmp: Path, i: int) -> dict:
    """One real ``tuneshift attribute`` run in a child process: its phases (:func:`phases`)."""
    out = tmp / f"run-{i}"
    argv = ["attribute", "--model", args.model, "--prompts", args.prompts, "--limit", str(args.limit)]
    argv += ["--max-new-tokens", str(args.max_new_tokens), "--threads", "1", "--out", str(out)]
    result = tmp / f"events-{i}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-X", "importtime", __file__, "--worker", str(result), "--spawned", repr(time.time())]
    r = subprocess.run([*cmd, "--", *argv], env=env, capture_output=True, text=True)
    if r.returncode != 0 or not result.exists():
        sys.stderr.write(r.stderr[-3000:])
        raise SystemExit(f"the attribute run failed (exit {r.returncode})")
    data = json.loads(result.read_text())
    return {
        "argv": argv,
        "exit_code": data["exit_code"],
        "phases": phases([tuple(e) for e in data["events"]], r.stderr),
    }


# ----------------------------------------------------------------------------- help and import


def _child_modules(code: str) -> tuple[float, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"child failed: {r.stderr[-2000:]}")
    return wall, json.loads(r.stdout.strip().splitlines()[-1])


def help_code(argv: list[str]) -> str:
    return (
        "import io, json, sys, contextlib\n"
        "from tuneshift.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )


IMPORT_CODE = (
    "import json, sys, time\n"
    "t = time.perf_counter()\n"
    "import tuneshift.cli\n"
    "dt = time.perf_counter() - t\n"
    f"print(json.dumps([dt, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
)


def measure_help(argv: list[str], repeats: int) -> dict:
    walls, mods = [], []
    for _ in range(repeats):
        wall, mods = _child_modules(help_code(argv))
        walls.append(wall)
    return {"median": statistics.median(walls), "min": min(walls), "modules": mods}


def measure_import(repeats: int) -> dict:
    times, mods = [], []
    for _ in range(repeats):
        _wall, (dt, mods) = _child_modules(IMPORT_CODE)
        times.append(dt)
    return {"median": statistics.median(times), "min": min(times), "modules": mods}


# ----------------------------------------------------------------------------- report


def render(res: dict, args) -> list[str]:
    def mods(m):
        return ", ".join(m) if m else "none of them"

    lines = [
        f"| what | median s | min s | heavy libraries imported ({', '.join(HEAVY)}) |",
        "|---|---|---|---|",
    ]
    for label, key in (
        ("`tuneshift --help` (whole process)", "help"),
        ("`tuneshift attribute --help` (whole process)", "attribute_help"),
        ("`import tuneshift.cli` (inside the interpreter)", "import"),
    ):
        r = res[key]
        lines.append(f"| {label} | {r['median']:.2f} | {r['min']:.2f} | {mods(r['modules'])} |")
    runs = res["runs"]
    argv = " ".join(runs[0]["argv"]).replace(str(Path(tempfile.gettempdir())), "TMP")
    argv = re.sub(r"--out \S+", "--out TMP/run", argv)
    lines += [
        "",
        f"`tuneshift {argv}` (median of {len(runs)} run{'s' if len(runs) > 1 else ''}, each into a new folder, "
        "model cache warm):",
        "",
        "| phase | s | of which imports (s) |",
        "|---|---|---|",
    ]
    labels = [k for k in ORDER if any(k in r["phases"] for r in runs)]
    labels += sorted({k for r in runs for k in r["phases"]} - set(labels))
    for k in labels:
        secs = [r["phases"][k]["seconds"] for r in runs if k in r["phases"]]
        imps = [r["phases"][k]["imports"] for r in runs if k in r["phases"]]
        imp = statistics.median(imps)
        bold = "**" if k.startswith("total") else ""
        imp_text = "" if imp != imp else f"{imp:.2f}"  # NaN: not summed
        lines.append(f"| {bold}{k}{bold} | {bold}{statistics.median(secs):.2f}{bold} | {imp_text} |")
    cmd = (
        f"`.venv/bin/python benchmarks/startup.py --model {args.model} --prompts {args.prompts} --limit {args.limit} "
        f"--max-new-tokens {args.max_new_tokens} --repeats {args.repeats} --runs {args.runs} --write-docs`"
    )
    lines += ["", f"Measured {time.strftime('%Y-%m-%d')} on this 2-core CPU machine with {cmd}."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m", help="model of the real attribute run (default gemma-3-270m)")
    ap.add_argument("--prompts", default="bundled:demo", help="its --prompts (default bundled:demo)")
    ap.add_argument("--limit", type=int, default=2, help="its --limit (default 2)")
    ap.add_argument("--max-new-tokens", type=int, default=4, help="its --max-new-tokens (default 4)")
    ap.add_argument("--repeats", type=int, default=5, help="processes per help/import measurement (default 5)")
    ap.add_argument("--runs", type=int, default=3, help="real attribute runs (default 3)")
    ap.add_argument(
        "--write-docs", action="store_true", help="write the tables into docs/benchmarks.md (startup-benchmark block)"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.rest, args.worker, args.spawned)
    res = {
        "help": measure_help(["--help"], args.repeats),
        "attribute_help": measure_help(["attribute", "--help"], args.repeats),
        "import": measure_import(args.repeats),
    }
    print(json.dumps(res), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        res["runs"] = []
        for i in range(args.runs):
            run = run_attribute(args, Path(tmp), i)
            print(json.dumps(run["phases"]), flush=True)
            res["runs"].append(run)
    lines = render(res, args)
    print("\n".join(lines))
    if args.write_docs:
        from _docs import write_block

        write_block(
            "startup-benchmark",
            lines,
            "CLI start-up (`benchmarks/startup.py`)",
            "Where the time of `tuneshift` goes before its first record: the help, the import of the command "
            "line, and a small real `attribute` run split into phases (time stamps around the functions named, "
            "under `python -X importtime`: the imports column sums the outermost imports finished in each "
            "phase). `--help`, `COMMAND --help` and the errors found before the load import neither torch, "
            "transformers nor scipy (tests/test_startup.py); torch is first imported when "
            "`--threads` is applied, just before the model load. The tokenizer is read from the model cache, whose "
            "`tokenizer_config.json` lists the added tokens (written once, at the first load of an older "
            "cache folder), so transformers parses the 33 MB `tokenizer.json` of Gemma 3 once less.",
        )


if __name__ == "__main__":
    main()
