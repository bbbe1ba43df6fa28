"""Benchmark: tuneshift's attribution vs a straightforward implementation of the paper's algorithm.

Run on demand (not a test):

    .venv/bin/python benchmarks/attribution.py [--models gemma-3-270m smollm2-135m-instruct]
        [--prompts 8] [--max-new-tokens 32] [--batch-size 4] [--write-docs]

For each packaged model, on the first N bundled demo prompts (chat template auto):
1. greedy responses are generated once and shared, so both implementations attribute the
   same token sequences;
2. each implementation runs in its own subprocess (clean peak-memory reading):
   * ``tuneshift``: ``gradient_x_input`` -- parameters frozen, one forward per batch with the
     graph kept, one backward per response position, only response positions through the
     LM head;
   * ``naive``: ``naive_gradient_x_input(freeze=False)`` -- batch 1, one full forward and one
     backward per response token, parameter gradients on (the published algorithm's form);
3. reported: seconds per prompt, peak resident memory (ru_maxrss) and its increase over the
   memory after loading, the speed and memory ratios, and the max |difference| of the
   matrices (target: <= 1e-5).
With ``--write-docs`` the table is written into ``docs/benchmarks.md`` between markers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _docs import write_block

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args) -> None:
    import torch

    from tuneshift.methods.attribution.gradient import SequencePair, gradient_x_input, naive_gradient_x_input
    from tuneshift.models.loading import load_model

    torch.manual_seed(0)
    spec = json.loads(Path(args.pairs).read_text())
    loaded = load_model(spec["model"], progress=False)
    pairs = [SequencePair(p["prompt_ids"], p["response_ids"]) for p in spec["pairs"]]
    after_load = _rss_mb()
    t0 = time.perf_counter()
    if args.worker == "tuneshift":
        mats = []
        for i in range(0, len(pairs), args.batch_size):
            mats += gradient_x_input(
                loaded.model, pairs[i : i + args.batch_size], pad_token_id=loaded.tokenizer.pad_token_id or 0
            )
    else:
        mats = [naive_gradient_x_input(loaded.model, p, freeze=False) for p in pairs]
    seconds = time.perf_counter() - t0
    np.savez(args.result, *mats)
    Path(args.result + ".json").write_text(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": _peak_mb(),
                "rss_after_load_mb": after_load,
                "n_prompts": len(pairs),
                "n_response_tokens": sum(len(p.response_ids) for p in pairs),
            }
        )
    )


def prepare(model: str, n_prompts: int, max_new_tokens: int, batch_size: int, path: Path) -> dict:
    from tuneshift.data.encoding import encode_prompt
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts
    from tuneshift.methods.attribution.generation import greedy_generate
    from tuneshift.models.loading import load_model

    loaded = load_model(model, progress=False)
    recs = read_prompts(bundled_prompts_path(), limit=n_prompts).records
    encs = [encode_prompt(loaded.tokenizer, r, "auto") for r in recs]
    pairs = []
    for i in range(0, len(encs), batch_size):
        chunk = encs[i : i + batch_size]
        gens = greedy_generate(
            loaded.model,
            [e.input_ids for e in chunk],
            max_new_tokens,
            loaded.eos_token_ids,
            loaded.tokenizer.pad_token_id or 0,
        )
        for e, g in zip(chunk, gens):
            ids = g.token_ids or [loaded.eos_token_ids[0]]
            pairs.append({"prompt_ids": list(e.input_ids), "response_ids": list(ids)})
    spec = {"model": model, "pairs": pairs}
    path.write_text(json.dumps(spec))
    return spec


def run_worker(kind: str, pairs_path: Path, result: Path, batch_size: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--pairs",
        str(pairs_path),
        "--result",
        str(result),
        "--batch-size",
        str(batch_size),
    ]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    info = json.loads(Path(str(result) + ".json").read_text())
    with np.load(str(result) + ".npz") as z:
        info["mats"] = [z[f"arr_{i}"] for i in range(len(z.files))]
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m-instruct"])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--worker", choices=["tuneshift", "naive"])
    ap.add_argument("--pairs")
    ap.add_argument("--result")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            pairs_path = Path(tmp) / f"{model}.json"
            spec = prepare(model, args.prompts, args.max_new_tokens, args.batch_size, pairs_path)
            fast = run_worker("tuneshift", pairs_path, Path(tmp) / f"{model}-fast", args.batch_size)
            naive = run_worker("naive", pairs_path, Path(tmp) / f"{model}-naive", args.batch_size)
            diff = max(float(np.abs(a - b).max()) for a, b in zip(fast["mats"], naive["mats"]))
            scale = max(float(np.abs(b).max()) for b in naive["mats"])
            n = len(spec["pairs"])
            row = {
                "model": model,
                "prompts": n,
                "response_tokens": fast["n_response_tokens"],
                "tuneshift_s_per_prompt": fast["seconds"] / n,
                "naive_s_per_prompt": naive["seconds"] / n,
                "speedup": naive["seconds"] / fast["seconds"],
                "tuneshift_peak_mb": fast["peak_rss_mb"],
                "naive_peak_mb": naive["peak_rss_mb"],
                "tuneshift_extra_mb": fast["peak_rss_mb"] - fast["rss_after_load_mb"],
                "naive_extra_mb": naive["peak_rss_mb"] - naive["rss_after_load_mb"],
                "max_abs_diff": diff,
                "max_abs_value": scale,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = render(rows, args)
    print(table)
    if args.write_docs:
        write_docs(table)


def render(rows: list[dict], args) -> str:
    head = (
        "| model | prompts | response tokens | tuneshift s/prompt | naive s/prompt | speed-up | "
        "tuneshift peak RSS (MB) | naive peak RSS (MB) | peak above loaded model, tuneshift / naive (MB) | max abs diff |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['prompts']} | {r['response_tokens']} | {r['tuneshift_s_per_prompt']:.2f} | "
            f"{r['naive_s_per_prompt']:.2f} | {r['speedup']:.1f}x | {r['tuneshift_peak_mb']:.0f} | {r['naive_peak_mb']:.0f} | "
            f"{r['tuneshift_extra_mb']:.0f} / {r['naive_extra_mb']:.0f} | {r['max_abs_diff']:.1e} (values up to {r['max_abs_value']:.1e}) |"
        )
    cmd = (
        f"`.venv/bin/python benchmarks/attribution.py --prompts {args.prompts} --max-new-tokens {args.max_new_tokens} "
        f"--batch-size {args.batch_size} --write-docs`"
    )
    return "\n".join(lines) + f"\n\nMeasured {time.strftime('%Y-%m-%d')} on this 2-core CPU machine with {cmd}.\n"


def write_docs(table: str) -> None:
    write_block(
        "attribution-benchmark", table.rstrip("\n").splitlines(), "Attribution (`benchmarks/attribution.py`)", ""
    )


if __name__ == "__main__":
    main()
