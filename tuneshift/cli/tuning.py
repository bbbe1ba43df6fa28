"""Commands that make and check an instruction-tuned model: tune, eval-following."""

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from tuneshift.cli.app import EXIT_INTERRUPTED, app, check_report_dir, err, interrupted, set_threads
from tuneshift.cli.options import BatchSize, DeviceOpt, DtypeOpt, Limit, MaxNewTokens, Threads, default_of
from tuneshift.models.loading import load_model
from tuneshift.progress import progress_bar
from tuneshift.tuning.following import FollowingEvaluation, evaluate_following
from tuneshift.tuning.train import TuneOptions

_T = TuneOptions


@app.command()
def tune(
    base: Annotated[
        str, typer.Option("--base", help="Pre-trained model spec (packaged alias, .gguf, model directory or hub id).")
    ],
    data: Annotated[
        Path, typer.Option("--data", help='Instruction JSONL: {"instruction", "input"?, "response"} per line.')
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Output folder: adapter, chat template, log, loss curve, manifest.")
    ],
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the data.")] = default_of(_T, "epochs"),
    lr: Annotated[
        float, typer.Option("--lr", help="Peak learning rate (linear warm-up over 3% of steps, then linear decay).")
    ] = default_of(_T, "lr"),
    lora_rank: Annotated[
        int, typer.Option("--lora-rank", help="LoRA rank r (alpha = 2r) on every linear projection.")
    ] = default_of(_T, "lora_rank"),
    max_length: Annotated[
        int, typer.Option("--max-length", help="Longest example in tokens (longer responses are cut).")
    ] = default_of(_T, "max_length"),
    batch_size: BatchSize = default_of(_T, "batch_size"),
    bf16: Annotated[
        bool, typer.Option("--bf16", help="bfloat16 autocast for the forward pass (about 1.5x faster on CPU).")
    ] = default_of(_T, "bf16"),
    full: Annotated[
        bool, typer.Option("--full", help="Full fine-tuning instead of LoRA (writes OUT/model/).")
    ] = default_of(_T, "full"),
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the LoRA initialisation, data order and dropout.")
    ] = default_of(_T, "seed"),
    max_steps: Annotated[
        Optional[int], typer.Option("--max-steps", help="Stop after this many optimiser steps.")
    ] = default_of(_T, "max_steps"),
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Steps between checkpoints (resume point).")
    ] = default_of(_T, "checkpoint_every"),
    threads: Threads = None,
):
    """Instruction-tune a base model (LoRA by default) on your data; resumable, with a loss log and curve."""
    from tuneshift.files import check_out_dir
    from tuneshift.tuning.corpus import load_corpus
    from tuneshift.tuning.train import tune as run_tune

    set_threads(threads)
    opts = TuneOptions(
        epochs=epochs,
        lr=lr,
        lora_rank=lora_rank,
        max_length=max_length,
        batch_size=batch_size,
        bf16=bf16,
        full=full,
        seed=seed,
        max_steps=max_steps,
        checkpoint_every=checkpoint_every,
    )
    opts.validate()
    load_corpus(data)  # clear errors before the model loads (tune() checks again, for API users)
    check_out_dir(out_dir, "tune")
    loaded = load_model(base)
    # outside a terminal the bar prints rate-limited plain lines (tuneshift.progress)
    with progress_bar("tune", unit="steps", fields={"loss": "-"}) as bar:

        def on_start(total, start):
            bar.update(total=total, completed=start)
            if start:
                err.print(f"resuming from step {start} of {total}", highlight=False)

        def on_step(row):
            bar.update(completed=row["step"], loss=f"{row['loss']:.3f}")

        try:
            s = run_tune(base, data, out_dir, opts, loaded=loaded, on_start=on_start, on_step=on_step)
        except KeyboardInterrupt:
            err.print("interrupted; run the same command again to resume from the last checkpoint")
            raise typer.Exit(EXIT_INTERRUPTED) from None
    if s.steps_done == 0 and s.resumed_from == s.total_steps:
        err.print(f"already finished: {s.path} (final loss {s.final_loss:.3f}); nothing to do", highlight=False)
        return
    err.print(
        f"{s.steps_done} steps ({s.total_steps} in all) on {s.n_examples} examples ({s.n_truncated} cut to "
        f"--max-length), final loss {s.final_loss:.3f}, {s.seconds / 60:.1f} min -> {s.path}",
        highlight=False,
        markup=False,
    )


@app.command("eval-following")
def eval_following(
    models: Annotated[
        List[str],
        typer.Option(
            "--model", help="Model spec; repeat to compare (e.g. --model gemma-3-270m --model gemma-3-270m-instruct)."
        ),
    ],
    instructions: Annotated[
        Optional[Path], typer.Option("--set", help="Held-out instruction JSONL (default: the 40 bundled ones).")
    ] = None,
    max_new_tokens: MaxNewTokens = default_of(evaluate_following, "max_new_tokens"),
    batch_size: BatchSize = default_of(evaluate_following, "batch_size"),
    out_dir: Annotated[
        Optional[Path],
        typer.Option("--out", help="Write following.json (every answer with its checks) and following.md here."),
    ] = None,
    examples: Annotated[int, typer.Option("--examples", help="Side-by-side examples in following.md.")] = default_of(
        FollowingEvaluation, "examples"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="Print the pass rates as JSON instead of Markdown.")] = False,
    limit: Limit = None,
    threads: Threads = None,
    device: DeviceOpt = default_of(load_model, "device"),
    dtype: DtypeOpt = default_of(load_model, "dtype"),
):
    """Greedy answers to held-out instructions, checked without an LLM judge: pass rates per task type."""
    import json

    from tuneshift.errors import OptionError
    from tuneshift.models.devices import resolve_placement
    from tuneshift.reports.following_report import pass_rate_table
    from tuneshift.reports.markdown import save_with_markdown
    from tuneshift.results import nan_to_none, to_jsonable
    from tuneshift.tuning.following import load_following_set

    set_threads(threads)
    bad = {k: "must be >= 1" for k, v in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)) if v < 1}
    if examples < 0:
        bad["examples"] = "must be >= 0"
    if limit is not None and limit < 1:
        bad["limit"] = "must be >= 1"
    if bad:
        raise OptionError(bad)
    resolve_placement(device, dtype)  # before any load
    check_report_dir(out_dir)
    items = load_following_set(instructions)
    if limit is not None:
        items = items[:limit]
    evaluation = FollowingEvaluation(len(items), max_new_tokens, [], examples)
    for spec in models:
        loaded = load_model(spec, device=device, dtype=dtype)
        with progress_bar(f"answer ({spec})", total=len(items), unit="instructions") as bar:
            try:
                res = evaluate_following(
                    loaded, items, max_new_tokens=max_new_tokens, batch_size=batch_size, on_done=bar.advance
                )
            except KeyboardInterrupt:
                interrupted("interrupted; answers of finished models are saved")
        res.model = spec
        evaluation.results.append(res)
        if out_dir is not None:  # after every model: a later failure keeps the answers so far
            save_with_markdown(evaluation, out_dir)
        del loaded
    if json_out:
        print(json.dumps(nan_to_none(to_jsonable(evaluation.rates())), indent=2))
    else:
        print(pass_rate_table(evaluation.results))
    if out_dir is not None:
        err.print(f"answers and checks -> {out_dir}", highlight=False, markup=False)
