"""Figures for docs/scale.md: attribution cost vs prompt and response length, memory, and the
bfloat16 error, measured on a packaged model; the cost model fitted to them.

Usage::

    .venv/bin/python benchmarks/scale.py                       # gemma-3-270m, 1 thread
    .venv/bin/python benchmarks/scale.py --write-docs          # also fill docs/scale.md's block

What it measures (``gradient_x_input``, the default probability target, float32 unless said):

* seconds for one prompt at prompt lengths P and response lengths R (forced responses, so
  generation is not timed), median of ``--repeats``; a least-squares fit of
  ``t = a * T + b * T * R + c * R`` (T = P + R tokens: ``a`` the forward per token, ``b`` one
  backward per token and response position, ``c`` the LM head row per response position);
* the batch of 4 vs 4 single prompts;
* peak extra resident memory of one attribution over the loaded model (a subprocess each,
  sampled from /proc/self/statm), per token of the sequence;
* ``--dtype bfloat16`` against float32 on ``--precision-records`` bundled records (R = 8):
  max abs and relative error of the matrix, instruction score and density differences.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "scale.md"


def _setup(model: str, dtype: str = "float32"):
    import tuneshift
    from tuneshift.data.encoding import encode_prompt
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts

    loaded = tuneshift.load_model(model, dtype=dtype, progress=False)
    recs = read_prompts(bundled_prompts_path()).records
    tok = loaded.tokenizer
    return loaded, recs, tok, encode_prompt


def _pair(loaded, rec, P: int, R: int):
    """A sequence pair with about P prompt tokens (the prompt repeated) and R response tokens."""
    from tuneshift.methods.attribution.gradient import SequencePair

    tok = loaded.tokenizer
    ids = tok(rec.prompt, add_special_tokens=True)["input_ids"]
    body = ids[1:] if len(ids) > 1 else ids
    while len(ids) < P:
        ids = ids + body
    resp = tok(rec.response or "The answer is", add_special_tokens=False)["input_ids"]
    while len(resp) < R:
        resp = resp + resp
    return SequencePair(ids[:P], resp[:R])


def _time(loaded, pairs, repeats: int) -> float:
    from tuneshift.methods.attribution.gradient import gradient_x_input

    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gradient_x_input(loaded.model, pairs, pad_token_id=loaded.tokenizer.pad_token_id or 0)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _memory_child(model: str, P: int, R: int, batch: int) -> None:
    """Run in a subprocess: the resident memory after loading, and its peak during one
    attribution (sampled every 2 ms from /proc/self/statm: the load's own peak, which
    ``ru_maxrss`` would report, is higher than the attribution's)."""
    import gc
    import threading

    import torch

    torch.set_num_threads(1)
    loaded, recs, _, _ = _setup(model)
    pairs = [_pair(loaded, recs[0], P, R) for _ in range(batch)]
    from tuneshift.methods.attribution.gradient import gradient_x_input

    # a tiny attribution first: every weight page (the memory-mapped 262k-row LM head too) is
    # resident before the baseline, so the difference is the attribution's own memory
    gradient_x_input(loaded.model, [_pair(loaded, recs[0], 4, 2)], pad_token_id=loaded.tokenizer.pad_token_id or 0)
    gc.collect()
    base = _rss_mib()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    gradient_x_input(loaded.model, pairs, pad_token_id=loaded.tokenizer.pad_token_id or 0)
    stop.set()
    th.join()
    print(json.dumps({"base_mib": base, "peak_mib": peak[0]}))


def _memory(model: str, P: int, R: int, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", model, str(P), str(R), str(batch)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _precision(model: str, n_records: int) -> list[dict]:
    import tuneshift
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts
    from tuneshift.methods.attribution.api import AttributionOptions, attribute_batch

    recs = read_prompts(bundled_prompts_path()).records[:n_records]
    opts = AttributionOptions(responses="given", max_new_tokens=8)
    ref_model = tuneshift.load_model(model, progress=False)
    ref = attribute_batch(ref_model, recs, opts)
    del ref_model
    t0 = time.perf_counter()
    half = attribute_batch(tuneshift.load_model(model, dtype="bfloat16", progress=False), recs, opts)
    seconds = time.perf_counter() - t0
    rows = []
    for a, b in zip(ref, half):
        R = min(8, a.raw.shape[1])
        ra, rb = np.asarray(a.raw)[:, :R], np.asarray(b.raw)[:, :R]
        err = np.abs(ra - rb).max()
        rows.append(
            {
                "record": a.record_id,
                "max_abs": float(err),
                "rel_max": float(err / np.abs(ra).max()),
                "score_f32": float(a.instruction_score),
                "score_bf16": float(b.instruction_score),
                "density_max_diff": float(np.abs(np.asarray(a.density) - np.asarray(b.density)).max()),
                "bf16_seconds_all": round(seconds, 1),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precision-records", type=int, default=2)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        m, P, R, B = args.memory_child
        _memory_child(m, int(P), int(R), int(B))
        return
    import torch

    torch.set_num_threads(args.threads)
    loaded, recs, _, _ = _setup(args.model)
    rec = recs[0]
    _time(loaded, [_pair(loaded, rec, 32, 4)], 1)  # warm-up
    grid = [(50, 8), (50, 16), (50, 32), (100, 16), (200, 16), (100, 32)]
    rows = []
    for P, R in grid:
        t = _time(loaded, [_pair(loaded, rec, P, R)], args.repeats)
        rows.append({"P": P, "R": R, "T": P + R, "seconds": round(t, 3), "tokens_per_s": round((P + R) / t, 1)})
        print(rows[-1], flush=True)
    X = np.array([[r["T"], r["T"] * r["R"], r["R"]] for r in rows], dtype=float)
    y = np.array([r["seconds"] for r in rows])
    (a, b, c), *_ = np.linalg.lstsq(X, y, rcond=None)
    fit_err = float(np.max(np.abs(X @ [a, b, c] - y) / y))
    t1 = _time(loaded, [_pair(loaded, rec, 50, 16)], args.repeats)
    t4 = _time(loaded, [_pair(loaded, r, 50, 16) for r in recs[:4]], args.repeats)
    mem = {f"P{P}_R{R}_B{B}": _memory(args.model, P, R, B) for P, R, B in ((50, 16, 1), (200, 16, 1), (50, 16, 4))}
    for v in mem.values():
        v["extra_mib"] = round(v["peak_mib"] - v["base_mib"], 1)
    an = loaded.anatomy
    n_params = sum(p.numel() for p in loaded.model.parameters())
    prec = _precision(args.model, args.precision_records) if args.precision_records else []
    result = {
        "model": args.model,
        "threads": args.threads,
        "n_params": n_params,
        "d_model": an.d_model,
        "n_layers": an.n_layers,
        "d_ffn": an.d_ffn,
        "vocab": an.vocab_size,
        "grid": rows,
        "fit": {"a_s_per_token": a, "b_s_per_token_per_position": b, "c_s_per_position": c, "max_rel_error": fit_err},
        "batch": {
            "one_prompt_s": round(t1, 3),
            "batch_of_4_s": round(t4, 3),
            "speedup_vs_4_single": round(4 * t1 / t4, 2),
        },
        "memory": mem,
        "bfloat16": prec,
    }
    print(json.dumps(result, indent=1))
    if args.write_docs:
        _write_docs(result)


def _write_docs(r: dict) -> None:
    import re

    lines = [
        f"Measured with `.venv/bin/python benchmarks/scale.py --write-docs` on {r['model']} "
        f"({r['n_params'] / 1e6:.0f}M parameters, d_model {r['d_model']}, {r['n_layers']} layers, vocabulary "
        f"{r['vocab']:,}), float32, {r['threads']} CPU thread(s) of this 2-core machine:",
        "",
        "| prompt P | response R | seconds | tokens / s |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {g['P']} | {g['R']} | {g['seconds']:.2f} | {g['tokens_per_s']:.0f} |" for g in r["grid"]]
    f = r["fit"]
    lines += [
        "",
        f"Fit `t = a T + b T R + c R` (T = P + R): a = {f['a_s_per_token'] * 1e3:.2f} ms per token (the "
        f"forward), b = {f['b_s_per_token_per_position'] * 1e3:.3f} ms per token per response position (one "
        f"backward through the body), c = {f['c_s_per_position'] * 1e3:.0f} ms per response position (the "
        f"{r['vocab']:,}-word LM head forward and backward for one row, and the per-backward overhead); "
        f"largest relative misfit {f['max_rel_error']:.0%}.",
        f"Batch of 4 prompts (P 50, R 16): {r['batch']['batch_of_4_s']:.2f} s vs {r['batch']['one_prompt_s']:.2f} s "
        f"for one ({r['batch']['speedup_vs_4_single']:.2f}x the throughput of 4 single runs).",
        "",
        "Peak resident memory of one attribution above the loaded model:",
        "",
        "| P, R, batch | extra MiB | MiB per sequence token |",
        "|---|---:|---:|",
    ]
    for k, v in r["memory"].items():
        P, R, B = (int(x[1:]) for x in k.split("_"))
        lines.append(f"| {P}, {R}, {B} | {v['extra_mib']:.0f} | {v['extra_mib'] / ((P + R) * B):.2f} |")
    if r["bfloat16"]:
        lines += [
            "",
            f"bfloat16 model vs float32 (R = 8, gradient x input sums in float32; "
            f"{r['bfloat16'][0]['bf16_seconds_all']:.0f} s for bfloat16 on this CPU, which has no fast bfloat16):",
            "",
            "| record | max abs error | relative to max abs value | score float32 | score bfloat16 | max density diff |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {p['record']} | {p['max_abs']:.2e} | {p['rel_max']:.1%} | {p['score_f32']:.4f} | "
            f"{p['score_bf16']:.4f} | {p['density_max_diff']:.3f} |"
            for p in r["bfloat16"]
        ]
    block = "\n".join(["<!-- scale:start -->", *lines, "<!-- scale:end -->"])
    text = DOC.read_text()
    text = re.sub(r"<!-- scale:start -->.*?<!-- scale:end -->", lambda _m: block, text, flags=re.S)
    DOC.write_text(text)
    (ROOT / "docs" / "scale_measured.json").write_text(json.dumps(r, indent=1) + "\n")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
