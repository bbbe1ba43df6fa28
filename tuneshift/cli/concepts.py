"""Commands of method C (feed-forward layers as concepts): concepts, annotate, compare-concepts."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from tuneshift.cli.app import (
    EXIT_INPUT_SKIPPED,
    app,
    check_report_dir,
    err,
    interrupted,
    load_model_or_null,
    print_and_save,
    report_dropped,
    set_threads,
)
from tuneshift.cli.options import (
    Adapter,
    DeviceOpt,
    DtypeOpt,
    FinalNorm,
    Json,
    Layers,
    MaxNewTokens,
    MinN,
    Model,
    NullDir,
    NullSeed,
    OutDir,
    RandomUpdateLike,
    ReportDir,
    Threads,
    Vocab,
    default_of,
)
from tuneshift.methods.concepts.annotators import DEFAULT_LOCAL_ANNOTATOR, DEFAULT_PARAMS, make_backend
from tuneshift.models.loading import load_model
from tuneshift.pipelines.annotate_run import annotate_run
from tuneshift.pipelines.concepts_run import ConceptsOptions, run_concepts
from tuneshift.progress import progress_bar
from tuneshift.stats.concepts_rotation import compare_rotation


@app.command()
def concepts(
    model: Model,
    out_dir: OutDir,
    vocab: Vocab = None,
    rank: Annotated[
        Optional[int],
        typer.Option("--rank", help="R: principal components kept per layer (default min(300, d_model))."),
    ] = default_of(ConceptsOptions, "rank"),
    top_words: Annotated[int, typer.Option("--top-words", help="Words kept per component.")] = default_of(
        ConceptsOptions, "top_k"
    ),
    layers: Layers = None,
    final_norm: Annotated[
        FinalNorm,
        typer.Option(
            "--final-norm",
            case_sensitive=False,
            help="fold: read components through the LM head with the final norm's gain folded in (the model's own readout, the logit lens; default); none: the raw LM-head rows (the paper's literal reading).",
        ),
    ] = FinalNorm(default_of(ConceptsOptions, "final_norm")),
    adapter: Adapter = None,
    random_update_like: RandomUpdateLike = None,
    null_seed: NullSeed = None,
    threads: Threads = None,
    device: DeviceOpt = default_of(load_model, "device"),
    dtype: DtypeOpt = default_of(load_model, "dtype"),
):
    """Explain every feed-forward layer as concepts: PCA of the down-projection, read as words (the paper's method C)."""
    from tuneshift.files import check_out_dir
    from tuneshift.models.devices import resolve_placement

    resolve_placement(device, dtype)
    set_threads(threads)
    check_out_dir(out_dir, kind="concepts")
    options = ConceptsOptions(
        vocab=vocab, rank=rank, top_k=top_words, layers=layers, final_norm=final_norm.value
    )  # checked before the model loads
    loaded = load_model_or_null(model, adapter, random_update_like, null_seed, device, dtype)
    with progress_bar("concepts", unit="layers") as bar:
        try:
            s = run_concepts(
                loaded,
                out_dir,
                options,
                on_start=lambda n: bar.update(total=n),
                on_layer_done=lambda _l: bar.advance(1),
            )
        except KeyboardInterrupt:
            interrupted("interrupted; finished layers are saved, run the same command again to resume")
    err.print(
        f"{len(s.layers_done)} layers done, {len(s.layers_skipped)} already done; {s.rank} components per layer, "
        f"{s.top_k} words each; {s.n_words} words ({s.n_dropped} dropped: no token); {s.seconds:.0f} s -> {s.path}",
        markup=False,
        highlight=False,
    )
    report_dropped(s)


@app.command()
def annotate(
    concepts_dir: Annotated[Path, typer.Argument(help="Concepts directory made by `tuneshift concepts`.")],
    annotator: Annotated[
        str,
        typer.Option(
            "--annotator",
            help="Annotator backend: local:SPEC (a model load_model accepts) or openai:MODEL (an OpenAI-compatible server, see --base-url).",
        ),
    ] = DEFAULT_LOCAL_ANNOTATOR,
    runs: Annotated[int, typer.Option("--runs", help="Repetitions with different seeds (the paper: 5).")] = default_of(
        annotate_run, "runs"
    ),
    top_words: Annotated[int, typer.Option("--top-words", help="Top words shown to the annotator.")] = default_of(
        annotate_run, "top_words"
    ),
    components: Annotated[
        Optional[int],
        typer.Option("--components", help="Annotate only the first K components per layer (default all)."),
    ] = None,
    cache: Annotated[
        Optional[Path], typer.Option("--cache", help="SQLite answer cache (default DIR/annotation_cache.sqlite).")
    ] = None,
    max_new_tokens: MaxNewTokens = DEFAULT_PARAMS["max_new_tokens"],
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            help="local: prompts answered by one batched generate (independent requests of all components and runs; answers do not depend on it).",
        ),
    ] = default_of(annotate_run, "batch_size"),
    base_url: Annotated[
        Optional[str],
        typer.Option(
            "--base-url",
            help="openai: server URL, e.g. http://localhost:8000/v1 (default: the OpenAI API or $OPENAI_BASE_URL).",
        ),
    ] = None,
    api_key_env: Annotated[
        str,
        typer.Option(
            "--api-key-env",
            help="openai: name of the environment variable that holds the API key (never stored or printed).",
        ),
    ] = default_of(make_backend, "api_key_env"),
    concurrency: Annotated[int, typer.Option("--concurrency", help="openai: requests in flight at once.")] = default_of(
        make_backend, "concurrency"
    ),
    max_retries: Annotated[
        int,
        typer.Option(
            "--max-retries",
            help="openai: retries per request on 429, 5xx, timeouts and malformed answers (exponential backoff).",
        ),
    ] = default_of(make_backend, "max_retries"),
    timeout: Annotated[float, typer.Option("--timeout", help="openai: seconds per request attempt.")] = default_of(
        make_backend, "timeout"
    ),
    threads: Threads = None,
    device: DeviceOpt = default_of(make_backend, "device"),
    dtype: DtypeOpt = default_of(make_backend, "dtype"),
):
    """Name every concept with an LLM (concept, linguistic level, user tasks); answers are cached."""
    from tuneshift.errors import OptionError
    from tuneshift.models.devices import resolve_placement
    from tuneshift.storage.concepts import load_concepts

    resolve_placement(device, dtype)  # local: annotator only
    set_threads(threads)
    load_concepts(concepts_dir)  # a clear error before loading the annotator
    bad = {
        k: "must be >= 1"
        for k, v in (
            ("runs", runs),
            ("top_words", top_words),
            ("components", components),
            ("max_new_tokens", max_new_tokens),
            ("batch_size", batch_size),
        )
        if v is not None and v < 1
    }
    if bad:
        raise OptionError(bad)
    backend = make_backend(
        annotator,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        max_retries=max_retries,
        timeout=timeout,
        device=device,
        dtype=dtype,
    )
    with progress_bar("annotate", unit="labels") as bar:
        try:
            s = annotate_run(
                concepts_dir,
                backend,
                runs=runs,
                top_words=top_words,
                components=components,
                cache_path=cache,
                params={**DEFAULT_PARAMS, "max_new_tokens": max_new_tokens},
                on_start=lambda n: bar.update(total=n),
                on_done=bar.advance,
                batch_size=batch_size,
            )
        except KeyboardInterrupt:
            interrupted("interrupted; answers so far are cached, run the same command again to go on")
    target = s.path / "annotations.parquet"
    err.print(
        f"{s.answered} labels answered, {s.kept} kept from the earlier table, {s.rows} in the table; "
        f"{s.requests} requests and {s.cache_hits} cache hits for the answered labels, {s.failures} failures; {s.seconds:.0f} s -> "
        f"{target if s.rows else 'nothing written (no label)'}",
        markup=False,
        highlight=False,
    )
    if s.first_error:
        err.print(f"[yellow]first failure:[/yellow] {escape(s.first_error)}", highlight=False)
    if s.partial:
        err.print(
            f"[yellow]{s.failures} (component, run) labels failed (listed in "
            f"{escape(str(s.path / 'annotations.json'))}); run the same command again to ask only for them; "
            f"exit code {EXIT_INPUT_SKIPPED}[/yellow]",
            highlight=False,
        )
        raise typer.Exit(EXIT_INPUT_SKIPPED)


@app.command("compare-concepts")
def compare_concepts_cmd(
    base_dir: Annotated[Path, typer.Argument(help="Concepts directory of the pre-trained model.")],
    tuned_dir: Annotated[Path, typer.Argument(help="Concepts directory of the instruction-tuned model.")],
    json_out: Json = False,
    out_dir: ReportDir = None,
    match_threshold: Annotated[
        float, typer.Option("--match-threshold", help="|cos| at or above which a base component has a close match.")
    ] = default_of(compare_rotation, "match_threshold"),
    group_size: Annotated[
        int, typer.Option("--group-size", help="Layers per group for the annotator shares plot.")
    ] = default_of(compare_rotation, "group_size"),
    null: NullDir = None,
    min_n: MinN = default_of(compare_rotation, "min_n"),
):
    """Per layer, how far tuning rotated the concept directions (no annotator needed); with annotations, Table 5 shares and t-tests."""
    from tuneshift.stats.sample_rule import check_min_n

    check_report_dir(out_dir)
    check_min_n(min_n)
    print_and_save(
        compare_rotation(
            base_dir, tuned_dir, match_threshold=match_threshold, group_size=group_size, null=null, min_n=min_n
        ),
        json_out,
        out_dir,
    )
