"""Commands of method A (input -> output attribution): attribute, compare, demo, show."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from tuneshift.cli.app import (
    EXIT_INPUT_SKIPPED,
    app,
    check_threads,
    err,
    interrupted,
    out,
    read_prompts_quietly,
    report_run_summary,
    set_threads,
)
from tuneshift.cli.options import (
    SIGN_HELP,
    Adapter,
    BatchSize,
    ChatTemplateOpt,
    DeviceOpt,
    DtypeOpt,
    IncludeShort,
    JoinOpt,
    Json,
    Levels,
    Limit,
    MaxNewTokens,
    MethodOptions,
    MinN,
    MinResponseTokens,
    Model,
    NormP,
    OutDir,
    ReportDir,
    ResponsesFrom,
    ResponsesOpt,
    Sign,
    SignOpt,
    Threads,
    Threshold,
    default_of,
)
from tuneshift.errors import InputFileError, TuneshiftError
from tuneshift.methods.attribution.api import PROTOCOL_OF, AttributionOptions
from tuneshift.methods.attribution.importance import ImportanceSettings
from tuneshift.models.loading import load_model as _load_model
from tuneshift.pipelines.demo_options import DemoOptions
from tuneshift.pipelines.ray_run import RAY_PROBE_SECONDS, RayOptions
from tuneshift.stats.sample_rule import DEFAULT_MIN_N, check_min_n


@app.command()
def attribute(
    model: Model,
    prompts: Annotated[
        Path,
        typer.Option(
            "--prompts",
            help="Prompt file: JSONL, the paper's FinalDataset.tsv, or a bundled set: bundled:demo, bundled:counterfactual (the ablation's positive control).",
        ),
    ],
    out_dir: OutDir,
    adapter: Adapter = None,
    ratings: Annotated[
        Optional[Path], typer.Option("--ratings", help="The paper's AnnotatedDataset.tsv (ratings of responses).")
    ] = None,
    responses: ResponsesOpt = PROTOCOL_OF[default_of(AttributionOptions, "responses")],
    responses_from: ResponsesFrom = None,
    join: JoinOpt = default_of(AttributionOptions, "join"),
    max_new_tokens: MaxNewTokens = default_of(AttributionOptions, "max_new_tokens"),
    chat_template: ChatTemplateOpt = default_of(AttributionOptions, "chat_template"),
    batch_size: BatchSize = default_of(AttributionOptions, "batch_size"),
    positions_per_backward: Annotated[
        int,
        typer.Option(
            "--positions-per-backward",
            help="Response positions per vectorised backward (1: one backward per position, best on CPUs; 4-16 on GPUs). Results equal to float rounding (docs/scale.md).",
        ),
    ] = default_of(AttributionOptions, "positions_per_backward"),
    limit: Limit = None,
    dtype: DtypeOpt = default_of(_load_model, "dtype"),
    device: DeviceOpt = default_of(_load_model, "device"),
    threshold: Threshold = default_of(ImportanceSettings, "threshold"),
    levels: Levels = default_of(ImportanceSettings, "levels"),
    norm_p: NormP = default_of(ImportanceSettings, "norm_p"),
    min_response_tokens: MinResponseTokens = default_of(ImportanceSettings, "min_response_tokens"),
    sign: SignOpt = default_of(ImportanceSettings, "sign"),
    method: Annotated[
        str,
        typer.Option(
            "--method", help="Attribution method, a registered name (an unknown name lists them; docs/attribution.md)."
        ),
    ] = default_of(AttributionOptions, "method"),
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="What is attributed per response token: a registered target, e.g. probability (the paper's), log_probability, logit.",
        ),
    ] = default_of(AttributionOptions, "target"),
    method_option: MethodOptions = [],  # noqa: B006  (typer needs a list default; never mutated)
    threads: Threads = None,
    address: Annotated[
        Optional[str],
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Shard the prompts over Ray workers, one model each: local (a Ray instance on this machine), auto (the cluster this machine is in), HOST:PORT or ray://HOST:PORT; an address that accepts no connection within "
            + f"{RAY_PROBE_SECONDS:g}"
            + r" s is refused. Needs tuneshift\[ray]; docs/scale.md.",
        ),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            help="With --ray: workers (default: the cluster's GPUs / --gpus-per-worker, or CPUs / --threads).",
        ),
    ] = None,
    gpus_per_worker: Annotated[
        Optional[float],
        typer.Option(
            "--gpus-per-worker",
            help="With --ray: GPUs per worker (default 1 with --device cuda/auto; more with --device auto for a model larger than one GPU).",
        ),
    ] = None,
    shard_size: Annotated[
        Optional[int], typer.Option("--shard-size", help="With --ray: records per shard (default 4 x --batch-size).")
    ] = None,
    ablation: Annotated[
        bool,
        typer.Option(
            "--ablation",
            help="Then run the causal check on this run with the loaded model (tuneshift ablate with its defaults, into OUT/ablation; forward passes only).",
        ),
    ] = False,
):
    """Generate (or force-decode) responses and attribute every response token to the prompt tokens.

    Each record gets an instruction score, the importance density summed over its instruction tokens / log2(2 + N):
    at least 0 and not bounded by 1 (docs/attribution.md).
    """
    from tuneshift.errors import OptionError
    from tuneshift.files import check_out_dir
    from tuneshift.methods.attribution.methods import parse_option_strings
    from tuneshift.models.devices import resolve_placement
    from tuneshift.pipelines.attribute_run import run_attribution

    ray = None
    if address is None:
        check_threads(threads)  # applied (torch imported) just before the load
        ray_only = {
            k: "is used with --ray only"
            for k, v in (("workers", workers), ("gpus_per_worker", gpus_per_worker), ("shard_size", shard_size))
            if v is not None
        }
        if ray_only:
            raise OptionError(ray_only)
    else:
        ray = RayOptions(
            address=address, workers=workers, threads=threads, gpus_per_worker=gpus_per_worker, shard_size=shard_size
        )
    # a GPU that is not there: one line, before any work (with --ray each worker checks its own)
    resolve_placement(device, dtype, check_hardware=ray is None or ray.address == "local")
    # the output folder and the prompt file are checked before the options (so their errors come
    # first; none of these checks imports torch)
    check_out_dir(out_dir)
    ps = read_prompts_quietly(prompts, ratings=ratings, limit=limit)
    options = AttributionOptions(
        responses=responses.value,
        responses_from=str(responses_from) if responses_from else None,
        join=join.value,
        max_new_tokens=max_new_tokens,
        chat_template=chat_template,
        batch_size=batch_size,
        positions_per_backward=positions_per_backward,
        importance=ImportanceSettings(
            levels=levels,
            threshold=threshold,
            norm_p=norm_p,
            min_response_tokens=min_response_tokens,
            sign=Sign(sign).value,
        ),
        method=method,
        target=target,
        method_options=parse_option_strings(method_option),
    )
    from tuneshift.cli.app import flag_spelling
    from tuneshift.pipelines.attribute_run import check_before_load, check_resume_before_load

    spell = flag_spelling()
    try:  # everything that can be refused before the model loads (docs/attribution.md)
        warns = check_before_load(ps, options)
    except OptionError:
        raise  # spelled by the CLI's error handler
    except TuneshiftError as e:
        raise type(e)(_spell_flags(str(e), spell)) from None
    for w in warns:
        err.print(f"warning: {_spell_flags(w, spell)}", markup=False, highlight=False)
    # a run directory made with other settings: refused now, not after the load (its message names
    # identity keys, e.g. options.max_new_tokens, as the writer's does: not respelled as flags)
    check_resume_before_load(out_dir, model, ps, options, adapter=str(adapter) if adapter else None, dtype=dtype)
    if ablation and ray is not None:
        raise OptionError("ablation", "is not run on Ray workers; run `tuneshift ablate OUT` after the --ray run")
    if ablation:
        from tuneshift.pipelines.ablate_run import AblationOptions, default_out

        check_out_dir(default_out(out_dir), kind="ablation")
        AblationOptions()  # the defaults are valid; the plan is checked once the run exists
    if ray is not None:
        from tuneshift.pipelines.ray_run import _import_ray, run_attribution_ray

        _import_ray()  # not installed: one line before anything starts (the address is probed next)
        try:
            summary = run_attribution_ray(
                model, ps, out_dir, options, ray, adapter=str(adapter) if adapter else None, dtype=dtype, device=device
            )
        except KeyboardInterrupt:
            interrupted()
        raise typer.Exit(report_run_summary(summary))
    set_threads(threads)
    loaded = _load_model(model, adapter=adapter, dtype=dtype, device=device)
    try:
        summary = run_attribution(loaded, ps, out_dir, options)
    except KeyboardInterrupt:
        interrupted()
    code = report_run_summary(summary)
    if ablation and summary.n_attributed + summary.n_done_before > 0:
        from tuneshift.pipelines.ablate_run import plan_ablation, run_ablation

        plan = plan_ablation(out_dir, prompts, chat_template if options.template_text else None)
        if plan.todo:
            try:
                s = run_ablation(loaded, plan)
            except KeyboardInterrupt:
                interrupted(
                    "interrupted; the attribution is complete and finished ablation batches are saved; "
                    "run `tuneshift ablate OUT` to resume"
                )
            err.print(
                f"ablation: {s.n_ablated} records, {s.n_rows} rows, {len(s.skipped)} skipped; {s.seconds:.0f} s -> {s.path}",
                markup=False,
                highlight=False,
            )
            code = code or (EXIT_INPUT_SKIPPED if s.skipped else 0)
    raise typer.Exit(code)


def _spell_flags(msg: str, spell) -> str:
    """A library message with this CLI's flag spellings for the option names it mentions."""
    import re

    return re.sub(r"\b(responses_from|max_new_tokens|min_response_tokens)\b", lambda m: spell(m.group(1)), msg)


@app.command()
def compare(
    base_run: Annotated[Path, typer.Argument(help="Run directory of the pre-trained model.")],
    tuned_run: Annotated[Path, typer.Argument(help="Run directory of the instruction-tuned model.")],
    out_dir: ReportDir = None,
    json_out: Json = False,
    include_short: IncludeShort = False,
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-mismatch",
            help="Compare runs made under different protocols (response protocol, prompt form, join, generation limit, b/p/L) with a warning instead of refusing.",
        ),
    ] = False,
    with_sensitivity: Annotated[
        bool,
        typer.Option(
            "--sensitivity",
            help="Also the paired difference over a grid of b, p, L, minimum and maximum response tokens (108 points; 54 for runs imported from the paper, whose L is fixed; sensitivity.json/.md with --out).",
        ),
    ] = False,
    sign: Annotated[
        Optional[Sign],
        typer.Option(
            "--sign",
            case_sensitive=False,
            help="Re-score both runs with this sign policy (default: the runs' own). " + SIGN_HELP,
        ),
    ] = None,
    min_n: MinN = DEFAULT_MIN_N,
):
    """Compare two runs: paired differences with CIs and controls first, then the paper's Welch tables and the position profile.

    When both runs hold an ablation (RUN/ablation, `tuneshift ablate` or `attribute --ablation`), its comparison follows
    (as `tuneshift compare-ablation`; ablation_comparison.json with --out).

    The instruction score is the importance density summed over the instruction tokens / log2(2 + N): at least 0
    and not bounded by 1 (a long, well-read instruction scores above 1; docs/attribution.md). Below --min-n pairs a
    row shows "too few pairs (n)" instead of a CI and p-values. Exits with code 3 when no record is valid in both
    runs (e.g. every answer short): the report is still written, and says so.
    """
    from tuneshift.cli.app import check_report_dir
    from tuneshift.progress import progress_bar
    from tuneshift.reports.compare_report import print_comparison
    from tuneshift.stats.compare import (
        ProtocolMismatchError,
        ScoreSettings,
        compare_runs,
        grid_size,
        sensitivity,
        sensitivity_grid,
    )

    check_report_dir(out_dir)
    settings = ScoreSettings(sign=None if sign is None else Sign(sign).value)
    try:
        c = compare_runs(
            base_run,
            tuned_run,
            include_short=include_short,
            allow_mismatch=allow_mismatch,
            settings=settings,
            min_n=check_min_n(min_n),
        )
    except ProtocolMismatchError as e:
        raise ProtocolMismatchError(f"{e} (--allow-mismatch)") from None
    sens = None
    if with_sensitivity:
        grid = sensitivity_grid(*c.protocol.values())  # its size: 54 points for the paper's imported runs
        if sign is not None:
            grid["sign"] = (Sign(sign).value,)
        with progress_bar("sensitivity", total=grid_size(grid), unit="settings") as bar:
            sens = sensitivity(
                base_run,
                tuned_run,
                grid=grid,
                pair=c.pair,
                include_short=include_short,
                allow_mismatch=allow_mismatch,
                progress=bar.advance,
            )
    abl = None
    from tuneshift.pipelines.ablate_run import default_out

    if (default_out(base_run) / "manifest.json").is_file() and (default_out(tuned_run) / "manifest.json").is_file():
        from tuneshift.stats.ablation_compare import compare_ablation  # both runs were ablated: their causal check too

        abl = compare_ablation(default_out(base_run), default_out(tuned_run), min_n=min_n)
    if json_out:  # one JSON document
        import json

        print(
            json.dumps(
                {
                    **c.to_dict(),
                    **({"sensitivity": sens.to_dict()} if sens else {}),
                    **({"ablation": abl.to_dict()} if abl else {}),
                },
                indent=2,
            )
        )
    else:
        print_comparison(c, out)
        if sens is not None:
            from tuneshift.reports.markdown import render_markdown

            out.print(render_markdown(sens), markup=False, highlight=False, soft_wrap=True)
        if abl is not None:
            from tuneshift.reports.ablation_report import print_ablation

            print_ablation(abl, out)
    if out_dir is not None:
        from tuneshift.reports.markdown import save_with_markdown

        paths = list(save_with_markdown(c, out_dir).values()) + (
            list(save_with_markdown(sens, out_dir).values()) if sens else []
        )
        if abl is not None:
            paths += list(save_with_markdown(abl, out_dir).values())
        err.print(f"wrote {', '.join(str(p) for p in paths)}", markup=False, highlight=False)
    raise typer.Exit(no_pairs_code(c))


def no_pairs_code(c) -> int:
    """Say so on stderr when a comparison has no pairs; its exit code: 3 (a report that compares
    nothing is written, like a run that skipped records: a partial result), else 0."""
    why = c.no_pairs_reason()
    if why is None:
        return 0
    err.print(f"[yellow]{escape(why)}; exit code {EXIT_INPUT_SKIPPED}[/yellow]", highlight=False)
    return EXIT_INPUT_SKIPPED


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where the runs, the comparisons, the findings and the report go.")
    ] = Path("tuneshift-demo"),
    limit: Annotated[
        Optional[int], typer.Option("--limit", help="Only the first N bundled prompts (default: all 28).")
    ] = default_of(DemoOptions, "limit"),
    max_new_tokens: MaxNewTokens = default_of(DemoOptions, "max_new_tokens"),
    base: Annotated[str, typer.Option("--base", help="Pre-trained model spec.")] = default_of(DemoOptions, "pair").base,
    tuned: Annotated[str, typer.Option("--tuned", help="Instruction-tuned model spec.")] = default_of(
        DemoOptions, "pair"
    ).tuned,
    batch_size: BatchSize = default_of(DemoOptions, "batch_size"),
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads",
            help="torch threads per worker (default: the cores divided by the workers; 1 each on 2 cores: single threads do not spin-wait on a busy machine).",
        ),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            help="Worker processes running the two models' steps side by side (default 2 where 2 cores are usable, else 1).",
        ),
    ] = None,
    methods: Annotated[
        str, typer.Option("--methods", help="Comma-separated subset of attribution,heads,concepts.")
    ] = ",".join(default_of(DemoOptions, "methods")),
    annotate_components: Annotated[
        int,
        typer.Option(
            "--annotate-components",
            help="Principal components per layer named by the local annotator for Table 5 (rank order; 0: none).",
        ),
    ] = default_of(DemoOptions, "annotate_components"),
    annotate_runs: Annotated[
        int, typer.Option("--annotate-runs", help="Annotation runs per component (the paper: 5).")
    ] = default_of(DemoOptions, "annotate_runs"),
    null_seed: Annotated[
        int, typer.Option("--null-seed", help="Seed of the random update of the null model (heads, concepts).")
    ] = default_of(DemoOptions, "null_seed"),
    min_n: Annotated[
        int,
        typer.Option(
            "--min-n",
            help='Minimum sample (pairs, verbs, layers, components, runs) for a CI, a test or a colour (below it: "too few (n)").',
        ),
    ] = default_of(DemoOptions, "min_n"),
    device: DeviceOpt = default_of(DemoOptions, "device"),
    dtype: DtypeOpt = default_of(DemoOptions, "dtype"),
):
    """The main job: the paper's three methods on two real models, compared; one findings table and one report.

    Attribution (own and reference answers), heads and concepts on every layer of both models and
    of a random-update null, a sample of concepts named by the local annotator, then the findings
    table. Defaults finish in about 15 minutes on a 2-core CPU (see README). Re-running resumes; a
    finished demo re-run loads no model.
    """
    from tuneshift.models.devices import resolve_placement
    from tuneshift.models.pair import ModelPair
    from tuneshift.pipelines.demo import run_demo, worker_layout
    from tuneshift.reports.compare_report import print_comparison
    from tuneshift.reports.findings_report import print_findings

    resolve_placement(device, dtype)  # before anything loads
    chosen = tuple(m.strip().lower() for m in methods.split(",") if m.strip())
    opts = DemoOptions(
        pair=ModelPair(base, tuned),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        limit=limit,
        device=device,
        dtype=dtype,
        methods=chosen,
        workers=workers,
        threads=threads,
        annotate_components=annotate_components,
        annotate_runs=annotate_runs,
        null_seed=null_seed,
        min_n=min_n,
    )
    min_tokens = ImportanceSettings.DEFAULT_MIN_RESPONSE_TOKENS
    if "attribution" in chosen and max_new_tokens < min_tokens:  # the same warning as attribute's, before any load
        err.print(
            f"warning: --max-new-tokens {max_new_tokens} is below the minimum response length {min_tokens}: every "
            "own answer will be flagged short and left out of the own comparison",
            markup=False,
            highlight=False,
        )
    n_workers, n_threads = worker_layout(opts)
    err.print(
        f"[bold]tuneshift demo[/bold]: base {escape(base)} vs tuned {escape(tuned)}: {', '.join(chosen)}; "
        f"protocols {' and '.join(opts.protocols)}, up to {max_new_tokens} new tokens each; "
        f"{n_workers} worker{'s' if n_workers > 1 else ''} x {n_threads} thread{'s' if n_threads > 1 else ''} "
        f"-> {escape(str(out_dir))}",
        highlight=False,
    )
    codes = []

    def step_done(r: dict) -> None:
        if r.get("skipped"):
            err.print(f"{r['task']}: already done", markup=False, highlight=False)
        elif "summary" not in r:
            err.print(f"{r['task']}: done ({r['seconds']:.0f} s)", markup=False, highlight=False)

    try:
        res = run_demo(
            out_dir, opts, on_summary=lambda side, s: codes.append(report_run_summary(s, side)), on_step=step_done
        )
    except KeyboardInterrupt:
        interrupted()
    form = (
        f"the tuned model's chat template wraps every prompt for both models ({out_dir / 'prompt_template.jinja'})"
        if res.prompt_form == "template"
        else "both models get the raw prompt (the tuned model has no chat template)"
    )

    def heading(text: str) -> None:
        if out.is_terminal:
            out.rule(text)
        else:  # a log or a pipe: a heading line, never cut at the console's 80 columns
            out.print(f"\n## {text}\n", markup=False, highlight=False)

    for protocol, c in res.comparisons.items():
        what = (
            "each model's own greedy answer"
            if protocol == "own"
            else "both models forced to the record's reference response (identical response tokens)"
        )
        heading(f"attribution, protocol {protocol}: {what}")
        print_comparison(c, out)
        codes.append(no_pairs_code(c))
        if c.example_record:
            err.print(
                f"example record (median paired difference): tuneshift show {out_dir / protocol / 'tuned'} "
                f"--id {c.example_record}",
                markup=False,
                highlight=False,
            )
    heading("findings")
    print_findings(res.findings, out)
    saved = [str(out_dir / p / "comparison.md") for p in res.comparisons]
    saved += [
        str(out_dir / d)
        for d, x in (("heads/heads_comparison.md", res.heads), ("concepts/concepts_rotation.md", res.concepts))
        if x is not None
    ]
    err.print(
        f"prompt form: {form}. Comparisons: {', '.join(saved)}; findings: {out_dir / 'findings.md'}",
        markup=False,
        highlight=False,
    )
    err.file.flush()
    print(f"report (open in a browser, works offline): {res.report}", flush=True)
    raise typer.Exit(max(codes, default=0))


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    record_id: Annotated[Optional[str], typer.Option("--id", help="Record id (default: the first record).")] = None,
    png: Annotated[
        Optional[Path], typer.Option("--png", help="Also write a heatmap PNG of the attribution matrix.")
    ] = None,
):
    """Show one record of a run: prompt tokens shaded by importance density, the response, the score."""
    from tuneshift.reports.attribution_view import attribution_heatmap, print_attribution
    from tuneshift.storage.attribution import load_run

    run = load_run(run_dir)
    if not run.attributions:
        raise TuneshiftError(f"run {run_dir} has no attributed records yet")
    by_id = run.by_id()
    if record_id is None:
        a = run.attributions[0]
    elif record_id in by_id:
        a = by_id[record_id]
    else:
        raise TuneshiftError(f"run {run_dir} has no record '{record_id}' (it has e.g. {', '.join(list(by_id)[:5])})")
    if png is not None:
        from matplotlib.figure import Figure

        formats = Figure().canvas.get_supported_filetypes()
        if png.exists() and png.is_dir():
            raise InputFileError(f"--png {png} is a directory")
        if png.suffix.lstrip(".").lower() not in formats:
            raise InputFileError(
                f"--png {png}: unknown image format '{png.suffix}'; use one of .{', .'.join(sorted(formats))}"
            )
        if png.parent.exists() and not png.parent.is_dir():
            raise InputFileError(f"--png {png}: {png.parent} is a file, not a directory")
    from tuneshift.stats.compare import effective_settings

    eff, _rescale = effective_settings(run)  # the run's own b, L and sign policy
    print_attribution(a, out, sign=eff.sign)
    if png is not None:
        path = attribution_heatmap(a, png, levels=eff.levels, threshold=eff.threshold, sign=eff.sign)
        err.print(f"wrote {path}", markup=False)
