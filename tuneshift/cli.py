"""The ``tuneshift`` command line (typer).

Every user error (:class:`~tuneshift.errors.TuneshiftError`) is printed as one line
``error: ...`` on stderr with exit code 2, never a traceback (set ``TUNESHIFT_DEBUG=1`` to
see one). A run that finished but had to skip input records exits with code 3.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tuneshift._version import __version__
from tuneshift.errors import TuneshiftError

app = typer.Typer(
    name="tuneshift",
    help="What instruction tuning changes inside a language model (methods of Wu et al., NAACL 2024).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=False)

EXIT_USER_ERROR = 2
EXIT_INPUT_SKIPPED = 3

DEMO_MAX_NEW_TOKENS = 32
DEMO_BASE = "gemma-3-270m"
DEMO_TUNED = "smollm2-135m-instruct"


def _version(value: bool):
    if value:
        print(f"tuneshift {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """tuneshift: explain a pre-trained model and its instruction-tuned counterpart, and compare them."""


def _options(responses, max_new_tokens, chat_template, batch_size, threshold, levels, norm_p, min_response_tokens):
    from tuneshift.methods.attribution.api import AttributionOptions
    from tuneshift.methods.attribution.importance import ImportanceSettings

    return AttributionOptions(
        responses=responses, max_new_tokens=max_new_tokens, chat_template=chat_template, batch_size=batch_size,
        importance=ImportanceSettings(levels=levels, threshold=threshold, norm_p=norm_p, min_response_tokens=min_response_tokens),
    )


def _report_summary(s, label: str = "") -> int:
    """Print a run summary; return the exit code it implies."""
    tag = f"{label}: " if label else ""
    err.print(
        f"{tag}{s.n_attributed} attributed, {s.n_done_before} already done, {s.n_skipped} skipped, "
        f"{s.n_truncated} truncated to the context window, {s.n_short} short responses, "
        f"{s.n_unlocated_spans} unlocated spans; {s.seconds:.0f} s -> {s.path}"
    )
    for p in s.input_problems[:20]:
        err.print(f"[yellow]skipped input:[/yellow] {p}")
    if len(s.input_problems) > 20:
        err.print(f"... and {len(s.input_problems) - 20} more input problems")
    if s.input_problems or s.n_skipped:
        err.print(
            f"[yellow]{len(s.input_problems)} input lines and {s.n_skipped} records were skipped "
            f"(reasons in {Path(s.path) / 'skipped.json'}); exit code {EXIT_INPUT_SKIPPED}[/yellow]"
        )
        return EXIT_INPUT_SKIPPED
    return 0


@app.command()
def attribute(
    model: str = typer.Option(..., "--model", help="Packaged alias, .gguf path, model directory or hub id."),
    prompts: Path = typer.Option(..., "--prompts", help="Prompt file: JSONL, or the paper's FinalDataset.tsv."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory (created; an existing run is resumed)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="PEFT/LoRA adapter folder applied on top of --model."),
    ratings: Optional[Path] = typer.Option(None, "--ratings", help="The paper's AnnotatedDataset.tsv (ratings of responses)."),
    responses: str = typer.Option("generate", "--responses", help="generate (greedy) or given (force-decode the record's response)."),
    max_new_tokens: int = typer.Option(300, "--max-new-tokens", help="Generation limit (the paper used 300)."),
    chat_template: str = typer.Option("auto", "--chat-template", help="auto: wrap prompts in the model's chat template if it has one; none: raw prompt."),
    batch_size: int = typer.Option(4, "--batch-size", help="Prompts per forward/backward batch."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N records."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 (exact) or bfloat16."),
    threshold: float = typer.Option(7, "--threshold", "-b", help="Sparsification threshold b (values <= b are zeroed)."),
    levels: int = typer.Option(10, "--levels", "-L", help="Discretisation levels L."),
    norm_p: float = typer.Option(4, "--norm-p", "-p", help="p of the L1/Lp density."),
    min_response_tokens: int = typer.Option(5, "--min-response-tokens", help="Shorter responses are flagged and excluded from statistics."),
):
    """Generate (or force-decode) responses and attribute every response token to the prompt tokens."""
    from tuneshift.data.prompts import read_prompts
    from tuneshift.models.loading import load_model
    from tuneshift.runs.attribute_run import run_attribution
    from tuneshift.runs.store import check_out_dir

    options = _options(responses, max_new_tokens, chat_template, batch_size, threshold, levels, norm_p, min_response_tokens)
    check_out_dir(out_dir)
    ps = read_prompts(prompts, ratings=ratings, limit=limit)
    loaded = load_model(model, adapter=adapter, dtype=dtype)
    summary = run_attribution(loaded, ps, out_dir, options)
    raise typer.Exit(_report_summary(summary))


@app.command()
def compare(
    base_run: Path = typer.Argument(..., help="Run directory of the pre-trained model."),
    tuned_run: Path = typer.Argument(..., help="Run directory of the instruction-tuned model."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Also write comparison.json and comparison.md here."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of tables."),
    include_short: bool = typer.Option(False, "--include-short", help="Keep responses shorter than the minimum length."),
):
    """Compare the instruction scores of two runs (the paper's Tables 1-2, plus effect sizes and a position profile)."""
    import json

    from tuneshift.reports.compare_report import print_comparison
    from tuneshift.stats.compare import compare_runs

    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise TuneshiftError(f"--out {out_dir} is a file, not a directory")
    c = compare_runs(base_run, tuned_run, include_short=include_short)
    if json_out:
        print(json.dumps(c.to_dict(), indent=2))
    else:
        print_comparison(c, out)
    if out_dir is not None:
        paths = c.save(out_dir)
        err.print(f"wrote {paths['json']} and {paths['markdown']}")


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("tuneshift-demo"), "--out", help="Where the two runs and the comparison go."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N bundled prompts (default: all 28)."),
    max_new_tokens: int = typer.Option(DEMO_MAX_NEW_TOKENS, "--max-new-tokens", help="Generation limit per response."),
    base: str = typer.Option(DEMO_BASE, "--base", help="Pre-trained model spec."),
    tuned: str = typer.Option(DEMO_TUNED, "--tuned", help="Instruction-tuned model spec."),
    batch_size: int = typer.Option(4, "--batch-size", help="Prompts per batch."),
):
    """The main job: two real models answer the bundled instructions; attribute; compare.

    Defaults finish in under 15 minutes on a 2-core CPU (see README). Re-running resumes.
    """
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts
    from tuneshift.models.loading import load_model
    from tuneshift.models.specs import check_assemble_module, packaged_gguf_path, resolve_spec
    from tuneshift.reports.compare_report import print_comparison
    from tuneshift.runs.attribute_run import run_attribution
    from tuneshift.runs.store import check_out_dir
    from tuneshift.stats.compare import compare_runs

    if out_dir.exists() and not out_dir.is_dir():
        raise TuneshiftError(f"--out {out_dir} is a file, not a directory")
    for spec in (base, tuned):  # fail before the first long load if a model is missing
        r = resolve_spec(spec)
        if r.packaged is not None:
            packaged_gguf_path(r.packaged) if r.packaged.gguf_in_package else check_assemble_module(r.packaged)
    options = _options("generate", max_new_tokens, "auto", batch_size, 7, 10, 4, 5)
    ps = read_prompts(bundled_prompts_path(), limit=limit)
    err.print(f"[bold]tuneshift demo[/bold]: {len(ps.records)} bundled instructions, base {base} vs tuned {tuned}, "
              f"up to {max_new_tokens} new tokens each -> {out_dir}")
    code = 0
    for label, spec in (("base", base), ("tuned", tuned)):
        check_out_dir(out_dir / label)
        loaded = load_model(spec)
        summary = run_attribution(loaded, ps, out_dir / label, options, label=f"{label}: {spec}")
        code = max(code, _report_summary(summary, label))
        del loaded
    c = compare_runs(out_dir / "base", out_dir / "tuned")
    print_comparison(c, out)
    paths = c.save(out_dir)
    err.print(f"runs: {out_dir / 'base'}, {out_dir / 'tuned'}; comparison: {paths['markdown']} and {paths['json']}")
    raise typer.Exit(code)


@app.command()
def show(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    record_id: Optional[str] = typer.Option(None, "--id", help="Record id (default: the first record)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also write a heatmap PNG of the attribution matrix."),
):
    """Show one record of a run: prompt tokens shaded by importance density, the response, the score."""
    from tuneshift.reports.attribution_view import attribution_heatmap, print_attribution
    from tuneshift.runs.store import load_run

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
    print_attribution(a, out)
    if png is not None:
        if png.exists() and png.is_dir():
            raise TuneshiftError(f"--png {png} is a directory")
        err.print(f"wrote {attribution_heatmap(a, png)}")


@app.command("models")
def models_cmd():
    """List the packaged model aliases and whether their packages are installed."""
    from rich.table import Table

    from tuneshift.models.loading import list_packaged_models

    t = Table("alias", "instruction-tuned", "installed", "description", "install with")
    for r in list_packaged_models():
        t.add_row(r["alias"], "yes" if r["instruction_tuned"] else "no", "yes" if r["installed"] else "no",
                  escape(r["description"]), escape(r["install"]))
    out.print(t)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning user errors into one-line messages.

    Usage errors (missing or bad options) are reported by typer/click with exit code 2.
    """
    debug = bool(os.environ.get("TUNESHIFT_DEBUG"))
    try:
        app(args=argv, prog_name="tuneshift")
    except TuneshiftError as e:
        if debug:
            raise
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        err.print("interrupted; finished records are saved, run the same command again to resume")
        sys.exit(130)
    except MemoryError:
        err.print("[red]error:[/red] out of memory; try a smaller --batch-size or --max-new-tokens")
        sys.exit(1)
    except Exception as e:  # anything unexpected: one line, traceback on request
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        err.print(f"[red]internal error:[/red] {type(e).__name__}: {escape(msg[:300])} (set TUNESHIFT_DEBUG=1 for the traceback)", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
