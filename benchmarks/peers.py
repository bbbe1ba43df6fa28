"""Benchmark: tuneshift's gradient x input against its peers, Captum 0.9 and inseq 0.7.1.

Run on demand (not a test), in the benchmark venv (``make bench-venv``; Captum and inseq are not
test dependencies):

    .venv-bench/bin/python benchmarks/peers.py [--model gemma-3-270m] [--lengths 32 128]
        [--prompts 8] [--tuneshift-paths auto batch] [--threads 1] [--reference batch]
        [--write-docs]
    .venv-bench/bin/python benchmarks/peers.py --smoke        # 1 prompt, T = 4: a quick check

What is compared, for each response length T of ``--lengths``:

1. the same token ids for every tool: the first N bundled demo prompts (``--prompts``, one value
   or one per length), encoded with the chat template ``auto``; each gets a *forced* response of
   exactly T tokens, the model's greedy continuation with EOS suppressed. The continuations are
   generated once (the longest T needed; a shorter T takes the first T tokens: greedy decoding is
   prefix-consistent) and cached in ``--cache-dir`` as JSON, with the prompt ids they belong to;
2. the same quantity: ``A[i, j] = (d p(y_j | x, y_<j) / d e_i) . e_i`` summed over the hidden
   dimension, for every prompt position i (BOS and template tokens included) and response token
   j, a ``[P, T]`` matrix; ``e_i`` is the output of the model's input-embedding module (Gemma's
   sqrt(d) scale included), the target the probability (Wu et al. 2024, Eq. 1):
   * ``tuneshift:PATH``: ``make_method("gradient_x_input", {"path": PATH}).attribute(model,
     [SequencePair(prompt_ids, response_ids)], get_target("probability"))``, one tool per value
     of ``--tuneshift-paths``. A tuneshift whose method has no ``path`` option runs only
     ``auto``, without options;
   * ``captum``: ``LLMGradientAttribution(LayerGradientXActivation(model, embedding layer),
     tokenizer)``, the form of Captum's LLM tutorial (``LLMGradientAttribution`` accepts only
     layer methods; gradient x activation of the embedding layer is input x gradient of the
     embeddings). The prompt goes in as a ``TextTokenInput`` built from our ids (no
     re-tokenisation), the response as a tensor of ids. Captum differentiates
     ``log p(y_j)`` (hard-coded in its ``GradientForwardFunc``); here its forward function is
     wrapped in ``exp``, so autograd differentiates ``p(y_j)`` itself (exact, no conversion);
   * ``inseq``: ``inseq.load_model(model, "input_x_gradient", tokenizer=tokenizer)`` and
     ``attributed_fn="probability"``. ``AttributionModel.attribute`` takes texts only, so the
     script runs what it runs after tokenising, on our ids: ``prepare_inputs_for_attribution``
     of a ``BatchEncoding`` of prompt + response ids, then ``FeatureAttribution.attribute(batch,
     attr_pos_start=P, attr_pos_end=P + T)``; the raw ``[P + T, T, hidden]`` attributions
     (before inseq's aggregation) summed over the hidden dimension, rows ``:P``;
3. each tool in its own persistent worker subprocess (fresh workers for each T), one untimed
   warm-up call each, then fed the pairs interleaved: pair 1 to
   every tool, then pair 2, ..., the order of the tools rotating by one per pair, so that drift in
   the machine's load hits all tools alike. Each worker times each pair itself
   (``time.perf_counter`` around the attribution call only), with ``--threads`` torch threads and
   batch size 1 for every tool;
4. a float64 reference per pair, in its own subprocess on the model cast to float64, cached:
   ``--reference batch`` (default) tuneshift's batch path (one forward, one backward per response
   token; tested equal to the naive algorithm to 1e-10 in float64), ``--reference forward``
   tuneshift's forward-mode path (tested equal to the batch path to 1e-10; the fast one at long
   T), ``--reference naive``
   ``naive_gradient_x_input`` (one full forward and backward per response token: exact, slow).
   Captum and inseq are independent of both;
5. reported per T and tool: s/prompt min / median / max, the ratio of medians to
   ``tuneshift:auto``, the worker's peak RSS after loading (VmHWM, reset once the model is loaded
   and every weight resident; not ``ru_maxrss``, which a child inherits from its parent) and that
   peak above the loaded model's RSS, and the max over pairs of
   ``max |tool - reference| / max |reference|``.

With ``--write-docs`` one table per T is written into ``docs/benchmarks.md`` between the
``peers-benchmark`` markers, each with its command line and date; the tables of lengths this run
did not measure are kept, so a long T (300) can be measured in a run of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from _docs import DOC, write_block

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path.home() / ".cache" / "tuneshift" / "peers-benchmark"
CHAT_TEMPLATE = "auto"
WARMUP_PROMPT_TOKENS = 8  # the untimed warm-up call: the first pair cut to 8 prompt + 2 response tokens
WARMUP_RESPONSE_TOKENS = 2


# --------------------------------------------------------------------------- memory


# Peak memory is the kernel's high-water mark of this process's own address space (VmHWM), reset
# once the model is loaded and resident. Not ru_maxrss: a child started by fork/vfork + exec
# inherits its parent's high-water mark there (a worker of a parent that had generated the
# responses reported the parent's 2 GB peak), and the peak of loading is not the tool's.


def _status_mb(key: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``, ``VmHWM``) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Reset this process's peak resident memory (VmHWM) to its current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


# --------------------------------------------------------------------------- the tools (worker side)


def _has_path_option() -> bool:
    from tuneshift.methods.attribution.methods import get_method

    return "path" in {f.name for f in get_method("gradient_x_input").option_fields()}


def tuneshift_options(path: str) -> dict | None:
    """The options of ``gradient_x_input`` that select ``path``: ``{"path": path}``, or None for
    ``auto`` with a tuneshift whose method has no ``path`` option.

    Raises:
        SystemExit: ``path`` is not ``auto`` and the method has no ``path`` option.
    """
    if _has_path_option():
        return {"path": path}
    if path == "auto":
        return None
    raise SystemExit(
        f"tuneshift:{path}: this tuneshift's gradient_x_input has no 'path' option; only --tuneshift-paths auto can run"
    )


def _make_tuneshift(loaded, options: dict | None):
    from tuneshift.methods.attribution.gradient import SequencePair
    from tuneshift.methods.attribution.methods import make_method
    from tuneshift.methods.attribution.targets import get_target

    method = make_method("gradient_x_input", options)
    target = get_target("probability")
    pad = loaded.tokenizer.pad_token_id or 0

    def attribute(prompt_ids, response_ids):
        return method.attribute(loaded.model, [SequencePair(prompt_ids, response_ids)], target, pad_token_id=pad)[0]

    return attribute


def _make_naive(loaded):
    from tuneshift.methods.attribution.gradient import SequencePair, naive_gradient_x_input

    def attribute(prompt_ids, response_ids):
        return naive_gradient_x_input(loaded.model, SequencePair(prompt_ids, response_ids), target="probability")

    return attribute


def _make_captum(loaded):
    import torch
    from captum.attr import LayerGradientXActivation, LLMGradientAttribution, TextTokenInput

    class TokenIdsInput(TextTokenInput):
        """A ``TextTokenInput`` made from token ids (every position interpretable, no skip tokens)."""

        def __init__(self, ids, tokenizer):  # noqa: D107 -- the attributes TextTokenInput.__init__ sets
            self.inp_tensor = torch.tensor([list(ids)], dtype=torch.long)
            self.itp_tensor = self.inp_tensor
            self.itp_mask = None
            self.skip_tokens = None
            self.values = tokenizer.convert_ids_to_tokens(list(ids))
            self.tokenizer = tokenizer
            self.n_itp_features = len(ids)
            self.baselines = 0

    class ProbabilityOf(torch.nn.Module):
        """Captum's forward function (``log p(y_j)``) under ``exp``: the target becomes ``p(y_j)``."""

        def __init__(self, log_prob_fn):
            super().__init__()
            self.log_prob_fn = log_prob_fn

        def forward(self, *args):
            return self.log_prob_fn(*args).exp()

    model, tokenizer = loaded.model, loaded.tokenizer
    llm_attr = LLMGradientAttribution(LayerGradientXActivation(model, model.get_input_embeddings()), tokenizer)
    llm_attr.attr_method.forward_func = ProbabilityOf(llm_attr.attr_method.forward_func)

    def attribute(prompt_ids, response_ids):
        result = llm_attr.attribute(TokenIdsInput(prompt_ids, tokenizer), target=torch.tensor(list(response_ids)))
        return result.token_attr.T.float().numpy()  # token_attr [T, P]

    return attribute


def _make_inseq(loaded):
    import inseq
    import torch
    from inseq.data import BatchEncoding

    model = inseq.load_model(loaded.model, "input_x_gradient", tokenizer=loaded.tokenizer)
    probability = model.get_attributed_fn("probability")

    def attribute(prompt_ids, response_ids):
        P, T = len(prompt_ids), len(response_ids)
        ids = torch.tensor([list(prompt_ids) + list(response_ids)], dtype=torch.long)
        encoding = BatchEncoding(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            input_tokens=[model.convert_ids_to_tokens(ids[0], skip_special_tokens=False)],
            baseline_ids=torch.zeros_like(ids),
        )
        batch = model.formatter.prepare_inputs_for_attribution(model, encoding)
        out = model.attribution_method.attribute(
            batch, attributed_fn=probability, attr_pos_start=P, attr_pos_end=P + T, show_progress=False
        )
        raw = out.sequence_attributions[0].target_attributions  # [P + T, T, hidden], NaN after each step
        return raw[:P].sum(-1).float().numpy()

    return attribute


def make_tool(name: str, model: str):
    """Load ``model``; returns the torch model and ``attribute(prompt_ids, response_ids) -> array [P, T]``
    of tool ``name``.

    Names: ``tuneshift:PATH``, ``captum``, ``inseq``, ``reference:batch``, ``reference:naive``
    (the references load the model in float64).
    """
    from tuneshift.models.loading import load_model

    if name.startswith("reference:"):
        loaded = load_model(model, dtype="float64", progress=False)
        if name == "reference:naive":
            return loaded.model, _make_naive(loaded)
        if name == "reference:forward":  # the forward-mode path: the fast reference for long responses
            return loaded.model, _make_tuneshift(loaded, tuneshift_options("forward"))
        # the batch path: today's default where the method has no 'path' option
        return loaded.model, _make_tuneshift(loaded, tuneshift_options("batch") if _has_path_option() else None)
    loaded = load_model(model, progress=False)
    if name.startswith("tuneshift:"):
        return loaded.model, _make_tuneshift(loaded, tuneshift_options(name.split(":", 1)[1]))
    if name == "captum":
        return loaded.model, _make_captum(loaded)
    if name == "inseq":
        return loaded.model, _make_inseq(loaded)
    raise SystemExit(f"unknown tool {name!r}")


def _versions() -> dict:
    out = {}
    for pkg in ("tuneshift", "torch", "transformers", "captum", "inseq"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def serve(tool: str, model: str, threads: int) -> None:
    """Worker loop: load the tool, then answer JSON requests on stdin, one per line.

    Requests: ``{"prompt_ids", "response_ids", "out"}`` -> the ``[P, T]`` matrix saved to ``out``
    (.npy), reply ``{"seconds"}`` (the attribution call alone); ``{"quit": true}`` -> reply
    ``{"peak_rss_mb"}`` (the peak since loading) and exit. The first reply, after loading, is
    ``{"rss_after_load_mb", "load_seconds", "versions"}``: the RSS once every weight is resident
    (the cached safetensors are memory-mapped: loading alone leaves most of them on disk).
    Replies go to the original stdout; everything the libraries print goes to stderr (the
    worker's log).
    """
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def reply(obj: dict) -> None:
        replies.write(json.dumps(obj) + "\n")

    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    torch_model, attribute = make_tool(tool, model)
    load_seconds = time.perf_counter() - t0
    with torch.no_grad():
        for prm in torch_model.parameters():  # page every weight in
            prm.sum()
    _reset_peak()
    reply({"rss_after_load_mb": _status_mb("VmRSS"), "load_seconds": load_seconds, "versions": _versions()})
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            reply({"peak_rss_mb": _status_mb("VmHWM")})
            return
        t = time.perf_counter()
        matrix = attribute(request["prompt_ids"], request["response_ids"])
        seconds = time.perf_counter() - t
        np.save(request["out"], np.asarray(matrix))
        reply({"seconds": seconds})


# --------------------------------------------------------------------------- workers (main side)


class Worker:
    """A persistent worker subprocess running one tool (see :func:`serve`); its stderr goes to ``log``."""

    def __init__(self, tool: str, model: str, threads: int, log: Path):
        self.tool, self.log = tool, log
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
        }
        cmd = [sys.executable, __file__, "--worker", tool, "--model", model, "--threads", str(threads)]
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log, "w")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file, text=True, env=env
        )
        self.ready = self._receive()

    def _receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = "\n".join(self.log.read_text().splitlines()[-25:])
            raise RuntimeError(f"worker {self.tool} died (exit {self.proc.returncode}); {self.log}:\n{tail}")
        return json.loads(line)

    def _send(self, obj: dict) -> dict:
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        return self._receive()

    def attribute(self, prompt_ids, response_ids, out: Path) -> tuple[float, np.ndarray]:
        """Seconds of the attribution call and the ``[P, T]`` matrix (float64 copy)."""
        r = self._send({"prompt_ids": list(prompt_ids), "response_ids": list(response_ids), "out": str(out)})
        matrix = np.load(out).astype(np.float64)
        out.unlink()
        return r["seconds"], matrix

    def close(self) -> float:
        """Stop the worker; returns its peak RSS (MB)."""
        peak = self._send({"quit": True})["peak_rss_mb"]
        self.proc.stdin.close()
        self.proc.wait()
        self._log_file.close()
        return peak


# --------------------------------------------------------------------------- responses and reference


def forced_responses(model: str, n_prompts: int, length: int, cache: Path) -> list[dict]:
    """The first ``n_prompts`` bundled prompts (chat template auto) with greedy responses of at least
    ``length`` tokens, EOS suppressed; cached in ``cache`` (JSON), regenerated where missing,
    shorter, or made for other prompt ids. Returns ``[{"id", "prompt_ids", "response_ids"}]``."""
    from tuneshift.data.encoding import encode_prompt
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts
    from tuneshift.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(model, progress=False)
    records = read_prompts(bundled_prompts_path(), limit=n_prompts).records
    if len(records) < n_prompts:
        raise SystemExit(f"only {len(records)} bundled prompts, {n_prompts} asked")
    stored = json.loads(cache.read_text())["prompts"] if cache.exists() else {}
    out, loaded = [], None
    for rec in records:
        prompt_ids = list(encode_prompt(tokenizer, rec, CHAT_TEMPLATE).input_ids)
        entry = stored.get(rec.id)
        if entry is None or entry["prompt_ids"] != prompt_ids or len(entry["response_ids"]) < length:
            if loaded is None:
                import torch

                loaded = load_model(model, progress=False)
                torch.manual_seed(0)
            print(f"generating a forced response of {length} tokens for {rec.id}", file=sys.stderr, flush=True)
            entry = {"prompt_ids": prompt_ids, "response_ids": _greedy_no_eos(loaded, prompt_ids, length)}
            stored[rec.id] = entry
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"model": model, "chat_template": CHAT_TEMPLATE, "prompts": stored}))
        out.append({"id": rec.id, **entry})
    return out


def _greedy_no_eos(loaded, prompt_ids: list[int], length: int) -> list[int]:
    """Exactly ``length`` greedy tokens after ``prompt_ids`` (batch 1), the EOS ids suppressed."""
    import torch

    ids = torch.tensor([prompt_ids], dtype=torch.long)
    with torch.no_grad():
        seq = loaded.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=length,
            suppress_tokens=list(loaded.eos_token_ids),
            do_sample=False,
            num_beams=1,
            pad_token_id=loaded.tokenizer.pad_token_id or 0,
            temperature=None,
            top_p=None,
            top_k=None,
        )
    response = seq[0, len(prompt_ids) :].tolist()
    if len(response) != length:
        raise RuntimeError(f"generation gave {len(response)} tokens, {length} asked")
    return response


def _reference_key(model: str, kind: str, prompt_ids, response_ids) -> str:
    blob = json.dumps([model, kind, list(prompt_ids), list(response_ids)]).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def references(model: str, kind: str, pairs: list[tuple[list, list]], args, tmp: Path) -> list[np.ndarray]:
    """Float64 reference matrices ``[P, T]`` of ``pairs`` (cached in ``--cache-dir``/reference), computed
    in one worker subprocess for those not cached."""
    folder = args.cache_dir / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{kind}-{_reference_key(model, kind, p, r)}.npy" for p, r in pairs]
    todo = [i for i, path in enumerate(paths) if not path.exists()]
    if todo:
        worker = Worker(f"reference:{kind}", model, args.threads, args.cache_dir / "logs" / f"reference-{kind}.log")
        for i in todo:
            seconds, matrix = worker.attribute(*pairs[i], tmp / "reference.npy")
            np.save(paths[i], matrix)
            print(f"reference:{kind} pair {i + 1}/{len(pairs)}: {seconds:.1f} s", file=sys.stderr, flush=True)
        worker.close()
    return [np.load(path) for path in paths]


# --------------------------------------------------------------------------- the measurement


@dataclass
class ToolResult:
    """What one tool measured at one response length."""

    tool: str
    seconds: list[float] = field(default_factory=list)
    rel_diffs: list[float] = field(default_factory=list)
    rss_after_load_mb: float = float("nan")
    peak_rss_mb: float = float("nan")


def measure(length: int, pairs: list[tuple[list, list]], refs: list[np.ndarray], args, tmp: Path) -> list[ToolResult]:
    """Run every tool on ``pairs`` (interleaved, rotating order) in fresh workers; compare with ``refs``."""
    results = {tool: ToolResult(tool) for tool in args.tools}
    workers = {}
    try:
        for tool in args.tools:  # one after another: each load alone on the machine
            workers[tool] = Worker(
                tool, args.model, args.threads, args.cache_dir / "logs" / f"{tool.replace(':', '-')}-T{length}.log"
            )
            results[tool].rss_after_load_mb = workers[tool].ready["rss_after_load_mb"]
            args.versions.update(workers[tool].ready["versions"])
        warm = (pairs[0][0][:WARMUP_PROMPT_TOKENS], pairs[0][1][:WARMUP_RESPONSE_TOKENS])
        for tool in args.tools:
            workers[tool].attribute(*warm, tmp / f"{tool}.npy")
        for k, ((prompt_ids, response_ids), ref) in enumerate(zip(pairs, refs)):
            order = args.tools[k % len(args.tools) :] + args.tools[: k % len(args.tools)]
            for tool in order:
                seconds, matrix = workers[tool].attribute(prompt_ids, response_ids, tmp / f"{tool}.npy")
                if matrix.shape != ref.shape:
                    raise RuntimeError(f"{tool}: matrix {matrix.shape}, reference {ref.shape}")
                rel = float(np.abs(matrix - ref).max() / np.abs(ref).max())
                results[tool].seconds.append(seconds)
                results[tool].rel_diffs.append(rel)
                print(
                    json.dumps(
                        {"T": length, "pair": k + 1, "tool": tool, "seconds": round(seconds, 3), "rel_diff": rel}
                    ),
                    flush=True,
                )
        for tool in args.tools:
            results[tool].peak_rss_mb = workers.pop(tool).close()
    finally:
        for w in workers.values():  # after a failure: stop the others
            w.proc.kill()
    return list(results.values())


def render(rows: dict[int, list[ToolResult]], args) -> dict[int, str]:
    """One Markdown chunk per response length T: a ``<!-- peers T=.. -->`` tag, a heading, the table and
    the line saying when and how it was measured."""
    python = sys.executable
    if Path(python).is_relative_to(ROOT):
        python = str(Path(python).relative_to(ROOT))
    cmd = shlex.join([python, "benchmarks/peers.py", *args.argv])
    versions = ", ".join(f"{k} {v}" for k, v in sorted(args.versions.items()))
    ref = {
        "batch": "tuneshift's batch path",
        "forward": "tuneshift's forward-mode path",
        "naive": "naive_gradient_x_input",
    }[args.reference]
    chunks = {}
    for length, results in rows.items():
        base = next((r for r in results if r.tool == "tuneshift:auto"), results[0])
        base_median = statistics.median(base.seconds)
        lines = [
            f"<!-- peers T={length} -->",
            f"**T = {length} response tokens**",
            "",
            f"| tool | prompts | s/prompt min / median / max | median vs {base.tool} | peak RSS (MB) | "
            "peak above loaded model (MB) | max rel. diff to float64 |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results:
            med = statistics.median(r.seconds)
            lines.append(
                f"| {r.tool} | {len(r.seconds)} | {min(r.seconds):.2f} / {med:.2f} / {max(r.seconds):.2f} | "
                f"{med / base_median:.2f}x | {r.peak_rss_mb:.0f} | {r.peak_rss_mb - r.rss_after_load_mb:.0f} | "
                f"{max(r.rel_diffs):.1e} |"
            )
        lines += [
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on this 2-core CPU machine with `{cmd}` (model {args.model}, "
            f"torch threads {args.threads}, batch size 1; reference: {ref} on the float64 model; {versions}).",
        ]
        chunks[length] = "\n".join(lines)
    return chunks


def write_docs(chunks: dict[int, str]) -> None:
    """Write the chunks into docs/benchmarks.md between the peers-benchmark markers, replacing the chunks
    of the same T and keeping the others (so that T = 300 can be measured in a run of its own)."""
    text = DOC.read_text()
    block = re.search(r"<!-- peers-benchmark:start -->\n(.*?)<!-- peers-benchmark:end -->", text, flags=re.S)
    kept = {}
    if block:
        for m in re.finditer(r"<!-- peers T=(\d+) -->.*?(?=<!-- peers T=|\Z)", block.group(1), flags=re.S):
            kept[int(m.group(1))] = m.group(0).strip()
    kept.update(chunks)
    lines = "\n\n".join(kept[t] for t in sorted(kept)).splitlines()
    write_block(
        "peers-benchmark",
        lines,
        "Peers: Captum and inseq (`benchmarks/peers.py`)",
        "tuneshift, Captum 0.9 and inseq 0.7.1 on the same token ids; see the script's docstring.",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m", help="model spec (default gemma-3-270m)")
    ap.add_argument(
        "--lengths", type=int, nargs="+", default=[32, 128], help="response lengths T in tokens (default 32 128)"
    )
    ap.add_argument(
        "--prompts",
        type=int,
        nargs="+",
        default=[8],
        help="prompts per length: one value, or one per --lengths (default 8)",
    )
    ap.add_argument(
        "--tuneshift-paths",
        nargs="+",
        help="values of gradient_x_input's 'path' option, one tool tuneshift:PATH each (default: auto batch; "
        "auto alone with a tuneshift whose method has no 'path' option)",
    )
    ap.add_argument("--no-captum", action="store_true", help="leave Captum out")
    ap.add_argument("--no-inseq", action="store_true", help="leave inseq out")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of every worker (default 1)")
    ap.add_argument(
        "--reference",
        choices=["batch", "forward", "naive"],
        default="batch",
        help="float64 reference: tuneshift's batch path (default), its forward-mode path (fast at long T) "
        "or naive_gradient_x_input (slow)",
    )
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"forced responses, references, worker logs (default {DEFAULT_CACHE})",
    )
    ap.add_argument("--smoke", action="store_true", help="a quick check: 1 prompt, T = 4, naive reference")
    ap.add_argument(
        "--write-docs",
        action="store_true",
        help="write one table per T into docs/benchmarks.md (peers-benchmark block)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return serve(args.worker, args.model, args.threads)

    args.argv = sys.argv[1:]
    if args.smoke:
        if args.write_docs:
            ap.error("--smoke does not write docs")
        args.lengths, args.prompts, args.reference = [4], [1], "naive"
    if len(args.prompts) not in (1, len(args.lengths)):
        ap.error("--prompts takes one value or one per --lengths")
    n_prompts = dict(zip(args.lengths, args.prompts * len(args.lengths) if len(args.prompts) == 1 else args.prompts))
    if args.tuneshift_paths is None:
        args.tuneshift_paths = ["auto", "batch"] if _has_path_option() else ["auto"]
        if not _has_path_option():
            print("gradient_x_input has no 'path' option here: tuneshift:auto only", file=sys.stderr)
    for path in args.tuneshift_paths:
        tuneshift_options(path)  # fail now, not after loading
    args.tools = [f"tuneshift:{p}" for p in args.tuneshift_paths]
    for peer, left_out in (("captum", args.no_captum), ("inseq", args.no_inseq)):
        if left_out:
            continue
        if importlib.util.find_spec(peer) is None:
            raise SystemExit(f"{peer} is not installed here: `make bench-venv`, then run with .venv-bench/bin/python")
        args.tools.append(peer)
    args.versions = {}

    cache = args.cache_dir / f"responses-{args.model.replace('/', '_')}.json"
    prompts = forced_responses(args.model, max(n_prompts.values()), max(args.lengths), cache)
    # one reference per prompt, at the longest T it is used at; a shorter T takes its first columns
    # (column j depends on y_<=j only: exact for the naive reference, float64 rounding for the batch path)
    longest = [max(t for t, n in n_prompts.items() if i < n) for i in range(len(prompts))]
    with tempfile.TemporaryDirectory() as tmp:
        ref_pairs = [(p["prompt_ids"], p["response_ids"][:t]) for p, t in zip(prompts, longest)]
        refs = references(args.model, args.reference, ref_pairs, args, Path(tmp))
        rows = {}
        for length in args.lengths:
            n = n_prompts[length]
            pairs = [(p["prompt_ids"], p["response_ids"][:length]) for p in prompts[:n]]
            rows[length] = measure(length, pairs, [r[:, :length] for r in refs[:n]], args, Path(tmp))
    chunks = render(rows, args)
    print("\n\n".join(chunks.values()))
    if args.write_docs:
        write_docs(chunks)


if __name__ == "__main__":
    main()
