"""Supervised instruction tuning with LoRA (peft) or full fine-tuning: ``tuneshift tune``.

What it does (decisions, see ``docs/tuning.md``):

* **Loss on response tokens only** (the prompt's labels are -100, :func:`encode_example`): mean
  token cross-entropy over every response token (and the final EOS) in a batch. Only those
  positions go through the LM head (:func:`response_loss`), which halves a step for a
  262k-token vocabulary; a test checks it equals the model's own ``labels=`` loss.
* **LoRA** (``peft``) on every linear projection of the decoder (``target_modules="all-linear"``:
  attention q/k/v/o and the MLP; not the LM head), rank ``r``, alpha ``2r``, dropout 0.05.
  ``full=True`` trains every parameter instead.
* **Optimiser**: AdamW (torch), linear warm-up over the first 3% of steps then linear decay to
  0, gradient norm clipped to 1.0.
* **Order**: each epoch a permutation drawn from ``seed + epoch``; within chunks of
  ``16 x batch_size`` examples sorted by length so that batches pad little, then the batches
  shuffled (the "length-grouped" order of common trainers). Deterministic: same seed, data and
  thread count -> the same weights.
* **Checkpoints** every ``checkpoint_every`` steps in ``OUT/checkpoints/step-NNNNNN`` (the last
  two kept), all in safetensors + JSON (no pickle): trainable weights, AdamW moments and step
  counts, the torch RNG state, and the loss log. A re-run with the same settings resumes from
  the newest one and reaches exactly the weights of an uninterrupted run (tested).
* **Outputs** in ``OUT``: ``adapter_model.safetensors`` + ``adapter_config.json`` (LoRA; or
  ``model/`` for full), ``chat_template.jinja``, ``tuneshift_adapter.json`` (base spec and
  weights hash, checked when the adapter is loaded), ``train_log.csv`` (loss per step),
  ``loss_curve.png``, and ``manifest.json`` (base, data hash, hyperparameters, steps, final
  loss, wall time, package versions).
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from tuneshift.errors import OptionError, TuneshiftError
from tuneshift.files import (
    MANIFEST,
    atomic_write_bytes,
    atomic_write_json,
    check_out_dir,
    file_sha256,
    finish_manifest,
    now,
    open_manifest,
    package_versions,
)
from tuneshift.tuning.corpus import load_corpus
from tuneshift.tuning.template import encode_example, ensure_chat_template

__all__ = ["TuneOptions", "TuneSummary", "tune", "response_loss", "make_batches", "CHECKPOINTS"]

CHECKPOINTS = "checkpoints"
KIND = "tune"


@dataclass
class TuneOptions:
    """Hyperparameters of :func:`tune` (all part of a run's identity except ``checkpoint_every``).

    Attributes:
        epochs: passes over the data (>= 1). lr: peak learning rate. lora_rank: LoRA rank r
        (alpha = 2r). lora_dropout: dropout on the LoRA input. max_length: longest example,
        tokens (longer responses are cut). batch_size: examples per step. warmup: fraction of
        steps of linear warm-up. weight_decay: AdamW. grad_clip: max gradient norm. seed: RNG
        seed. bf16: bfloat16 autocast for the forward pass (weights and optimiser stay float32).
        full: full fine-tuning instead of LoRA. max_steps: stop after this many steps (None =
        all epochs). checkpoint_every: steps between checkpoints.
    """

    epochs: int = 1
    lr: float = 3e-4
    lora_rank: int = 16
    lora_dropout: float = 0.05
    max_length: int = 256
    batch_size: int = 8
    warmup: float = 0.03
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    bf16: bool = False
    full: bool = False
    max_steps: int | None = None
    checkpoint_every: int = 25

    def validate(self) -> None:
        """Raises OptionError naming every value out of range."""
        bad: dict[str, str] = {}
        if self.epochs < 1:
            bad["epochs"] = "must be >= 1"
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad["lr"] = "must be > 0"
        if self.lora_rank < 1:
            bad["lora_rank"] = "must be >= 1"
        if not 0 <= self.lora_dropout < 1:
            bad["lora_dropout"] = "must be in [0, 1)"
        if self.max_length < 8:
            bad["max_length"] = "must be >= 8"
        if self.batch_size < 1:
            bad["batch_size"] = "must be >= 1"
        if not 0 <= self.warmup < 1:
            bad["warmup"] = "must be in [0, 1)"
        if self.max_steps is not None and self.max_steps < 1:
            bad["max_steps"] = "must be >= 1"
        if self.checkpoint_every < 1:
            bad["checkpoint_every"] = "must be >= 1"
        if bad:
            raise OptionError(bad)


@dataclass
class TuneSummary:
    """What :func:`tune` did: output folder, steps done now / in all, final loss (mean of the
    last 10 steps), examples, truncated examples, wall time of this call (s), resumed from step."""

    path: Path
    steps_done: int
    total_steps: int
    final_loss: float
    n_examples: int
    n_truncated: int
    seconds: float
    resumed_from: int = 0
    log: list[dict] = field(default_factory=list)


def make_batches(lengths: list[int], batch_size: int, epoch: int, seed: int) -> list[list[int]]:
    """The example indices of every batch of one epoch (see the module docstring: length-grouped).

    Args:
        lengths: token length of each example. batch_size: examples per batch.
        epoch, seed: the permutation is drawn from ``torch.Generator().manual_seed(seed * 1000 + epoch)``.

    Returns:
        ``[n_batches][<= batch_size]`` indices; every example exactly once.
    """
    import torch

    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    chunk = batch_size * 16
    batches = []
    for c in range(0, len(perm), chunk):
        part = sorted(perm[c : c + chunk], key=lambda i: (lengths[i], i))
        batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    order = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in order]


def response_loss(model, input_ids, attention_mask, labels):
    """Mean cross-entropy over the labelled (response) positions, computing logits only there.

    Args:
        model: a causal LM (possibly wrapped by peft) whose base has ``get_decoder()`` and
            ``get_output_embeddings()``; otherwise the model's own ``labels=`` loss is used.
        input_ids, attention_mask, labels: ``[batch, seq]`` (labels -100 where no loss).

    Returns:
        A scalar tensor, equal to ``model(input_ids, attention_mask=..., labels=labels).loss``
        (next-token shift, mean over labelled tokens, Gemma's final logit soft-capping applied;
        half-precision logits are cast to float32, float64 stays float64).
    """
    import torch
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        decoder, head = base.get_decoder(), base.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        decoder = head = None
    if decoder is None or head is None or decoder is base:
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    target = labels[:, 1:]
    sel = target != -100
    logits = head(hidden[:, :-1][sel])
    cap = getattr(base.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    if logits.dtype in (torch.bfloat16, torch.float16):
        logits = logits.float()  # the loss in float32 under autocast
    return F.cross_entropy(logits, target[sel])


def _lr_at(step: int, total: int, warmup_steps: int, peak: float) -> float:
    """Learning rate before optimiser step ``step`` (0-based): linear warm-up, then linear decay to 0."""
    if warmup_steps and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * max(0.0, (total - step) / max(1, total - warmup_steps))


def _pad(batch: list[tuple[list[int], list[int]]], pad_id: int):
    import torch

    n = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    lab = torch.full((len(batch), n), -100, dtype=torch.long)
    att = torch.zeros((len(batch), n), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        lab[i, : len(y)] = torch.tensor(y)
        att[i, : len(x)] = 1
    return ids, att, lab


# ---- checkpoints: safetensors + JSON only ----------------------------------------------------


def _trainable(model) -> dict:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(out: Path, step: int, model, opt, log: list[dict]) -> None:
    import torch
    from safetensors.torch import save_file

    root = out / CHECKPOINTS
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    params = _trainable(model)
    save_file({n: p.detach().contiguous() for n, p in params.items()}, str(tmp / "weights.safetensors"))
    names = list(params)
    state, steps = {}, {}
    for n, p in params.items():
        st = opt.state.get(p)
        if st:
            state[f"{n}::exp_avg"] = st["exp_avg"].contiguous()
            state[f"{n}::exp_avg_sq"] = st["exp_avg_sq"].contiguous()
            steps[n] = float(st["step"])
    save_file(state or {"_empty": torch.zeros(1)}, str(tmp / "optimizer.safetensors"))
    save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "params": names, "adam_steps": steps, "log": log}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-*") if p != final)[:-1]:  # keep the last two
        shutil.rmtree(old, ignore_errors=True)


def _latest_checkpoint(out: Path) -> Path | None:
    cps = sorted(p for p in (out / CHECKPOINTS).glob("step-*") if (p / "state.json").exists())
    return cps[-1] if cps else None


def _load_checkpoint(cp: Path, model, opt) -> tuple[int, list[dict]]:
    import torch
    from safetensors.torch import load_file

    meta = json.loads((cp / "state.json").read_text())
    params = _trainable(model)
    if sorted(params) != sorted(meta["params"]):
        raise TuneshiftError(f"checkpoint {cp} does not match the model being trained; remove {cp.parent} to restart")
    weights = load_file(str(cp / "weights.safetensors"))
    state = load_file(str(cp / "optimizer.safetensors"))
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
            if n in meta["adam_steps"]:
                opt.state[p] = {
                    "step": torch.tensor(meta["adam_steps"][n]),
                    "exp_avg": state[f"{n}::exp_avg"].clone(),
                    "exp_avg_sq": state[f"{n}::exp_avg_sq"].clone(),
                }
    torch.set_rng_state(load_file(str(cp / "rng.safetensors"))["torch_rng"])
    return int(meta["step"]), list(meta["log"])


# ---- outputs ---------------------------------------------------------------------------------


def write_log(out: Path, log: list[dict]) -> None:
    """``train_log.csv`` (step, epoch, loss, lr, tokens, seconds) and ``loss_curve.png`` (epoch
    boundaries dotted)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(log, columns=["step", "epoch", "loss", "lr", "tokens", "seconds"])
    atomic_write_bytes(out / "train_log.csv", df.to_csv(index=False).encode())
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(df):
        ax.plot(df["step"], df["loss"], lw=0.8, alpha=0.5, label="loss per step")
        ax.plot(df["step"], df["loss"].rolling(10, min_periods=1).mean(), lw=1.8, label="mean of 10 steps")
        for step in df.loc[df["epoch"].diff() > 0, "step"]:  # epoch boundaries
            ax.axvline(step - 0.5, color="grey", ls=":", lw=1)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("response cross-entropy (nats/token)")
    ax.set_title("tuneshift tune: training loss")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(out / "loss_curve.png", buf.getvalue())


def tune(
    base: str,
    data: str | Path,
    out_dir: str | Path,
    options: TuneOptions | None = None,
    loaded=None,
    on_start: Callable[[int, int], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> TuneSummary:
    """Instruction-tune ``base`` on ``data`` into ``out_dir`` (resumable; see the module docstring).

    The steps, each a private function below: open the run (:func:`_open_run`: options, output
    folder, data, base model, identity; a finished run returns at once), encode the corpus
    (:func:`_encode_corpus`), plan the step schedule (:func:`_plan_steps`), make the trainable
    model and optimiser (:func:`_trainable_model`), write the running manifest
    (:func:`_running_manifest`) and resume from the newest checkpoint (:func:`_resume_point`),
    train (:func:`_train_steps`), save the adapter or model (:func:`_save_outputs`), finish the
    manifest (:func:`_finish`). The manifest lifecycle (open, finish) is the one of every
    resumable run (:func:`tuneshift.files.open_manifest`, :func:`tuneshift.files.finish_manifest`).

    Args:
        base: a model spec for :func:`~tuneshift.models.loading.load_model` (recorded in the manifest).
        data: instruction JSONL (:func:`~tuneshift.tuning.corpus.load_corpus`).
        out_dir: output folder (created; a folder of the same settings resumes, a finished one
            returns at once).
        options: :class:`TuneOptions`. loaded: an already loaded base model (tests).
        on_start: called with (total steps, steps already done). on_step: called with each
            step's log row ``{"step", "epoch", "loss", "lr", "tokens", "seconds"}``.

    Returns:
        :class:`TuneSummary`.

    Raises:
        InputFileError: bad data file or ``--out``. RunMismatchError: ``out_dir`` holds a run
        with other settings. TuneshiftError: bad options, a prompt longer than ``max_length``.
        ModelSpecError: the base cannot be loaded.
    """
    t0 = time.time()
    opts = options or TuneOptions()
    out = Path(out_dir)
    examples, loaded, identity, old = _open_run(base, data, out, opts, loaded)
    if old and old.get("status") == "finished":
        return TuneSummary(
            out,
            0,
            old["total_steps"],
            old["final_loss"],
            old["n_examples"],
            old["n_truncated"],
            0.0,
            old["total_steps"],
            [],
        )
    tok = loaded.tokenizer
    template_status = ensure_chat_template(tok)
    enc = _encode_corpus(tok, examples, data, opts.max_length)
    plan = _plan_steps(enc, opts)
    model, params, optim = _trainable_model(loaded.model, opts)
    manifest = _running_manifest(identity, template_status, len(examples), plan, params, data)
    start, log = _resume_point(out, old, model, optim)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / MANIFEST, manifest)
    if on_start is not None:
        on_start(plan.total, start)
    _train_steps(out, model, optim, params, tok, enc, plan, opts, start, log, on_step)
    _save_outputs(out, model, tok, base, loaded.spec.weights_sha256, opts.full)
    final = _finish(out, manifest, log, plan.total)
    return TuneSummary(
        out, plan.total - start, plan.total, final, len(examples), plan.n_truncated, time.time() - t0, start, log
    )


@dataclass
class _StepPlan:
    """The optimiser steps of a tuning run (:func:`_plan_steps`).

    Attributes:
        schedule: ``(epoch, example indices)`` per step, every epoch's batches in order.
        total: steps to run (``max_steps`` caps the schedule). warmup_steps: linear warm-up steps.
        n_truncated: examples whose response was cut to ``max_length``.
    """

    schedule: list[tuple[int, list[int]]]
    total: int
    warmup_steps: int
    n_truncated: int


def _open_run(base: str, data: str | Path, out: Path, opts: TuneOptions, loaded):
    """Check the options and the output folder, read the corpus, load the base (unless given)
    and open the manifest (:func:`tuneshift.files.open_manifest`).

    Returns:
        ``(examples, loaded, identity, old)``: the corpus records, the base model, the
        JSON-normalised identity (base spec and weights hash, adapter hash, data hash, every
        option but ``checkpoint_every``) and the existing manifest (None for a new run).

    Raises:
        OptionError: an option out of range. InputFileError: bad data or output folder.
        RunMismatchError: the folder holds a run with other settings. ModelSpecError: the base
        cannot be loaded.
    """
    opts.validate()
    check_out_dir(out, KIND)  # before the data is read and the model loads
    examples = load_corpus(data)
    data_sha = file_sha256(data)
    if loaded is None:
        from tuneshift.models.loading import load_model

        loaded = load_model(base, progress=False)
    identity = {
        "base": base,
        "base_weights_sha256": loaded.spec.weights_sha256,
        "base_adapter_sha256": loaded.spec.adapter_sha256,
        "data_sha256": data_sha,
        "options": {k: v for k, v in asdict(opts).items() if k != "checkpoint_every"},
    }
    identity, old = open_manifest(out, identity, KIND)
    return examples, loaded, identity, old


def _encode_corpus(tok, examples, data, max_length: int) -> list[tuple[list[int], list[int], bool]]:
    """Every example as ``(input ids, labels, truncated)`` (:func:`encode_example`).

    Raises:
        TuneshiftError: an example that cannot be encoded (its prompt longer than
            ``max_length``), named by file, record number and id.
    """
    enc = []
    for i, ex in enumerate(examples):
        try:
            enc.append(encode_example(tok, ex.user, ex.response, max_length))
        except TuneshiftError as e:
            raise TuneshiftError(f"{data}: record {i + 1}{f' (id {ex.id})' if ex.id else ''}: {e}") from None
    return enc


def _plan_steps(enc: list, opts: TuneOptions) -> _StepPlan:
    """The step schedule of every epoch (:func:`make_batches`), capped at ``max_steps``, and the
    warm-up length (``ceil(warmup x total)``)."""
    lengths = [len(ids) for ids, _, _ in enc]
    epochs = [make_batches(lengths, opts.batch_size, e, opts.seed) for e in range(opts.epochs)]
    schedule = [(e, b) for e in range(opts.epochs) for b in epochs[e]]
    total = len(schedule) if opts.max_steps is None else min(opts.max_steps, len(schedule))
    return _StepPlan(schedule, total, math.ceil(opts.warmup * total), sum(t for _, _, t in enc))


def _trainable_model(model, opts: TuneOptions):
    """Seed torch, make the model trainable (every parameter with ``full``, else LoRA adapters
    on every linear projection, see the module docstring) and build AdamW.

    Returns:
        ``(model, params, optimiser)``: the (peft-wrapped) model in train mode, its trainable
        parameters, the AdamW optimiser over them.
    """
    import torch

    torch.manual_seed(opts.seed)
    if opts.full:
        model.requires_grad_(True)
    else:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(
            r=opts.lora_rank,
            lora_alpha=2 * opts.lora_rank,
            lora_dropout=opts.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calling a deprecated transformers name
            model = get_peft_model(model, cfg)
    model.train()
    params = list(_trainable(model).values())
    return model, params, torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)


def _running_manifest(
    identity: dict, template_status: str, n_examples: int, plan: _StepPlan, params: list, data
) -> dict:
    """The manifest written while training runs (``status`` ``running``)."""
    return {
        "kind": KIND,
        "identity": identity,
        "status": "running",
        "template": template_status,
        "n_examples": n_examples,
        "n_truncated": plan.n_truncated,
        "total_steps": plan.total,
        "trainable_parameters": int(sum(p.numel() for p in params)),
        "versions": package_versions(),
        "data": str(data),
    }


def _resume_point(out: Path, old: dict | None, model, optim) -> tuple[int, list[dict]]:
    """What is left (the lifecycle's plan step): ``(0, [])`` for a new run, else the newest
    checkpoint's step and loss log, with its weights, optimiser state and RNG state loaded.

    Raises:
        TuneshiftError: the checkpoint does not match the model being trained.
    """
    cp = _latest_checkpoint(out) if old else None
    return _load_checkpoint(cp, model, optim) if cp is not None else (0, [])


def _train_steps(
    out: Path,
    model,
    optim,
    params: list,
    tok,
    enc: list,
    plan: _StepPlan,
    opts: TuneOptions,
    start: int,
    log: list[dict],
    on_step: Callable[[dict], None] | None,
) -> None:
    """Run the optimiser steps ``start..total-1``: learning-rate schedule, response loss (under
    bfloat16 autocast with ``bf16``), gradient clipping, AdamW; a log row per step appended to
    ``log`` (``seconds`` cumulative over resumes) and given to ``on_step``; a checkpoint and the
    log files every ``checkpoint_every`` steps (not after the last one)."""
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if opts.bf16 else None
    t_run = time.time() - (log[-1]["seconds"] if log else 0.0)  # seconds stay cumulative over resumes
    for step in range(start, plan.total):
        epoch, idx = plan.schedule[step]
        ids, att, lab = _pad([(enc[i][0], enc[i][1]) for i in idx], pad)
        lr = _lr_at(step, plan.total, plan.warmup_steps, opts.lr)
        for g in optim.param_groups:
            g["lr"] = lr
        if autocast is not None:
            with autocast:
                loss = response_loss(model, ids, att, lab)
        else:
            loss = response_loss(model, ids, att, lab)
        loss.backward()
        if opts.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, opts.grad_clip)
        optim.step()
        optim.zero_grad(set_to_none=True)
        row = {
            "step": step + 1,
            "epoch": epoch,
            "loss": float(loss.detach()),
            "lr": lr,
            "tokens": int((lab[:, 1:] != -100).sum()),
            "seconds": round(time.time() - t_run, 3),
        }
        log.append(row)
        if on_step is not None:
            on_step(row)
        if (step + 1) % opts.checkpoint_every == 0 and step + 1 < plan.total:
            _save_checkpoint(out, step + 1, model, optim, log)
            write_log(out, log)


def _save_outputs(out: Path, model, tok, base: str, base_sha: str, full: bool) -> None:
    """``chat_template.jinja`` and the trained weights: ``model/`` (with the tokenizer) for full
    fine-tuning, else the LoRA adapter (``adapter_model.safetensors``, ``adapter_config.json``
    naming the base spec) and ``tuneshift_adapter.json`` (base spec and weights hash)."""
    model.eval()
    atomic_write_bytes(out / "chat_template.jinja", tok.chat_template.encode())
    if full:
        model.save_pretrained(str(out / "model"), safe_serialization=True)
        tok.save_pretrained(str(out / "model"))
        return
    for cfg in model.peft_config.values():  # the spec, not this machine's cache path
        cfg.base_model_name_or_path = base
    # no embedding layers are trained: peft need not look the base up (on the hub) to decide
    model.save_pretrained(str(out), safe_serialization=True, save_embedding_layers=False)
    (out / "README.md").unlink(missing_ok=True)  # peft's model-card template (holds local paths)
    atomic_write_json(
        out / "tuneshift_adapter.json",
        {"base_spec": base, "base_weights_sha256": base_sha, "tuned_with": "tuneshift tune"},
    )


def _finish(out: Path, manifest: dict, log: list[dict], total: int) -> float:
    """The loss log files, the finished manifest (:func:`tuneshift.files.finish_manifest`:
    final loss, steps, wall time, finish time) and the checkpoints removed.

    Returns:
        The final loss: the mean of the last 10 steps.
    """
    write_log(out, log)
    final = float(sum(r["loss"] for r in log[-10:]) / max(1, len(log[-10:])))
    finish_manifest(
        manifest,
        "finished",
        final_loss=final,
        steps=total,
        wall_seconds=round(log[-1]["seconds"] if log else 0.0, 1),
        finished=now(),
    )
    atomic_write_json(out / MANIFEST, manifest)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    return final
