"""Benchmark: the three exact paths of gradient x input over prompt length S and response length T.

Run on demand (not a test), on an otherwise idle machine:

    .venv/bin/python benchmarks/attribution_paths.py [--model gemma-3-270m] [--prompt-lengths 16 64]
        [--response-lengths 16 64 128] [--paths batch segmented forward] [--threads 1] [--write-docs]

For each (S, T): one pair of random token ids (seeded; S prompt and T response tokens), each path
of :mod:`tuneshift.methods.attribution.paths` timed on it in this process (the same model, one after
the other, torch threads ``--threads``), the max |difference| to the batch path, the path the
cost model (``CPU_COST_MODEL``) picks and its predicted cost ratio, and the measured fastest. This is
the measurement behind the cost model's constants and the crossover of forward mode (few prompt
tokens, many response tokens) and the reverse paths.
With ``--write-docs`` the table goes into ``docs/benchmarks.md`` between the
``attribution-paths`` markers.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from _docs import write_block

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m", help="model spec (default gemma-3-270m)")
    ap.add_argument(
        "--prompt-lengths", type=int, nargs="+", default=[16, 64], help="prompt lengths S in tokens (default 16 64)"
    )
    ap.add_argument(
        "--response-lengths",
        type=int,
        nargs="+",
        default=[16, 64, 128],
        help="response lengths T in tokens (default 16 64 128)",
    )
    ap.add_argument(
        "--paths",
        nargs="+",
        default=["batch", "segmented", "forward"],
        choices=["batch", "segmented", "forward"],
        help="paths of gradient_x_input to time (default all three)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument(
        "--write-docs", action="store_true", help="write the table into docs/benchmarks.md (attribution-paths block)"
    )
    args = ap.parse_args(argv)

    import torch

    from tuneshift.methods.attribution.gradient import SequencePair
    from tuneshift.methods.attribution.methods.gradient_x_input import gradient_x_input_by_path
    from tuneshift.methods.attribution.paths import CPU_COST_MODEL, choose_path, segment_length
    from tuneshift.models.loading import load_model

    torch.set_num_threads(args.threads)
    loaded = load_model(args.model, progress=False)
    model = loaded.model
    warm = [SequencePair(list(range(100, 108)), list(range(200, 204)))]
    for path in args.paths:  # untimed warm-up of every path (first-call allocations, kernel choice)
        gradient_x_input_by_path(model, warm, path=path)
    rows = []
    for S in args.prompt_lengths:
        for T in args.response_lengths:
            g = torch.Generator().manual_seed(S * 1000 + T)
            ids = torch.randint(100, 20000, (S + T,), generator=g).tolist()
            pair = [SequencePair(ids[:S], ids[S:])]
            times, mats = {}, {}
            for path in args.paths:
                t0 = time.perf_counter()
                (mats[path],) = gradient_x_input_by_path(model, pair, path=path)
                times[path] = time.perf_counter() - t0
                print(f"S={S} T={T} {path}: {times[path]:.2f} s", file=sys.stderr, flush=True)
            ref = mats.get("batch", next(iter(mats.values())))
            scale = float(np.abs(ref).max())
            diff = max(float(np.abs(m - ref).max()) for m in mats.values())
            chosen, _ = choose_path([S], [T], 16)
            L = segment_length([S], [T])
            pred = {
                "batch": CPU_COST_MODEL.batch_cost([S], [T]),
                "segmented": CPU_COST_MODEL.segmented_cost([S], [T], L),
                "forward": CPU_COST_MODEL.forward_cost([S], [T], 16),
            }
            best = min(times, key=times.get)
            rows.append((S, T, times, L, chosen, best, pred, diff, scale))

    header = "| S | T | " + " | ".join(f"{p} s" for p in args.paths) + " | L | cost model picks | fastest | "
    header += "batch / fastest | batch / picked (predicted) | max abs diff |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for S, T, times, L, chosen, best, pred, diff, scale in rows:
        cells = [f"{times[p]:.1f}" for p in args.paths]
        b = times.get("batch", float("nan"))
        picked = times.get(chosen, float("nan"))
        lines.append(
            f"| {S} | {T} | " + " | ".join(cells) + f" | {L} | {chosen} | {best} | {b / times[best]:.1f}x | "
            f"{b / picked:.1f}x ({pred['batch'] / pred[chosen]:.1f}x) | {diff:.1e} (values up to {scale:.1e}) |"
        )
    cmd = shlex.join([".venv/bin/python", "benchmarks/attribution_paths.py", *(argv or sys.argv[1:])])
    lines += [
        "",
        f"Measured {datetime.date.today().isoformat()} on this 2-core CPU machine with `{cmd}` "
        f"(model {args.model}, torch threads {args.threads}, one pair per cell).",
    ]
    print("\n".join(lines))
    if args.write_docs:
        write_block(
            "attribution-paths",
            lines,
            "Attribution paths (`benchmarks/attribution_paths.py`)",
            "The three exact paths of `gradient_x_input` side by side (module "
            "`tuneshift/methods/attribution/paths.py`).",
        )


if __name__ == "__main__":
    main()
