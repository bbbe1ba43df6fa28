"""The causal check of method A: ablate (forward passes only) and compare-ablation."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from tuneshift.cli.app import app, check_report_dir, err, interrupted, out, set_threads
from tuneshift.cli.options import DeviceOpt, Json, MinN, ReportDir, Threads, default_of
from tuneshift.methods.ablation.core import DEFAULT_FILLER, SPANS, ablation_names
from tuneshift.pipelines.ablate_run import AblationOptions
from tuneshift.stats.ablation_compare import compare_ablation


@app.command()
def ablate(
    run_dir: Annotated[
        Path,
        typer.Argument(help="An attribution run (tuneshift attribute): its model, prompts and responses are ablated."),
    ],
    prompts: Annotated[
        Optional[Path],
        typer.Option(
            "--prompts", help="The run's prompt file (default: the path stored in the run; checked by sha256)."
        ),
    ] = None,
    chat_template: Annotated[
        Optional[str],
        typer.Option(
            "--chat-template",
            metavar="FILE",
            help="The Jinja template file the run was attributed with, if it used one (checked by sha256).",
        ),
    ] = None,
    variants: Annotated[
        str,
        typer.Option(
            "--variants",
            help=f"Comma-separated ablations: {', '.join(ablation_names(plugins=False))} (docs/attribution.md).",
        ),
    ] = ",".join(AblationOptions.variants),
    spans: Annotated[
        str, typer.Option("--spans", help=f"Comma-separated spans to ablate: {', '.join(SPANS)}.")
    ] = ",".join(SPANS),
    filler: Annotated[
        str, typer.Option("--filler", help="mask: the filler word (one token with a leading space).")
    ] = DEFAULT_FILLER,
    seed: Annotated[
        int, typer.Option("--seed", help="swap: the seed of the donor rule (each record's donor is stored).")
    ] = 0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Sequences per forward pass (speed only).")
    ] = AblationOptions.batch_size,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Ablation directory (default RUN/ablation).")] = None,
    model: Annotated[
        Optional[str],
        typer.Option("--model", help="Model spec to load (default: the run's; its weights must be the run's)."),
    ] = None,
    threads: Threads = None,
    device: DeviceOpt = "cpu",
):
    """Causal check of an attribution run: log-probability the response loses when the instruction or context is deleted, masked or swapped."""
    from tuneshift.models.devices import resolve_placement
    from tuneshift.models.loading import load_model
    from tuneshift.pipelines.ablate_run import plan_ablation, run_ablation

    opts = AblationOptions(
        variants=tuple(variants.split(",")),
        spans=tuple(spans.split(",")),
        filler=filler,
        seed=seed,
        batch_size=batch_size,
    )
    plan = plan_ablation(run_dir, prompts, chat_template, opts, out_dir)  # every check before the model loads
    m = plan.run.manifest.get("identity", {}).get("model", {})
    dtype = str(m.get("dtype", "float32"))
    resolve_placement(device, dtype)
    set_threads(threads)
    if not plan.todo:
        err.print(
            f"all {len(plan.run.attributions)} records already ablated -> {plan.out}", markup=False, highlight=False
        )
        return
    spec = model or str(m.get("spec"))
    adapter = m.get("adapter") if m.get("kind") != "alias" and model is None else None
    loaded = load_model(spec, adapter=adapter, dtype=dtype, device=device)
    try:
        s = run_ablation(loaded, plan)
    except KeyboardInterrupt:
        interrupted("interrupted; finished batches are saved, run the same command again to resume")
    err.print(
        f"{s.n_ablated} records ablated ({s.n_done_before} before), {s.n_rows} rows, {len(s.skipped)} skipped; "
        f"{s.seconds:.0f} s -> {s.path}",
        markup=False,
        highlight=False,
    )
    for rid, why in list(s.skipped.items())[:5]:
        err.print(f"skipped {rid}: {why}", markup=False, highlight=False)
    if s.skipped:
        raise typer.Exit(3)


@app.command("compare-ablation")
def compare_ablation_cmd(
    base_dir: Annotated[Path, typer.Argument(help="Ablation directory of the pre-trained model's run.")],
    tuned_dir: Annotated[Path, typer.Argument(help="Ablation directory of the instruction-tuned model's run.")],
    json_out: Json = False,
    out_dir: ReportDir = None,
    min_n: MinN = default_of(compare_ablation, "min_n"),
):
    """Paired ablation effects (tuned - base), the score's faithfulness (Spearman) and the swap shares."""
    import json

    from tuneshift.reports.ablation_report import print_ablation
    from tuneshift.reports.markdown import save_with_markdown
    from tuneshift.stats.sample_rule import check_min_n

    check_report_dir(out_dir)
    check_min_n(min_n)
    c = compare_ablation(base_dir, tuned_dir, min_n=min_n)
    if json_out:
        print(json.dumps(c.to_dict(), indent=2))
    else:
        print_ablation(c, out)
    if out_dir is not None:
        paths = save_with_markdown(c, out_dir)
        err.print(f"wrote {', '.join(str(p) for p in paths.values())}", markup=False, highlight=False)
