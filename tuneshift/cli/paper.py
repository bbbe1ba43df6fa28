"""Commands on the paper's released data (Wu et al., NAACL 2024): import-paper, paper-tables."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from tuneshift.cli.app import app, err, out, report_skips
from tuneshift.cli.options import NormP, Threshold, default_of
from tuneshift.data.paper_release import PAPER_DATA_ENV, PAPER_DATA_SOURCE
from tuneshift.stats.paper_tables import paper_tables

PaperDataDir = Annotated[
    Optional[Path],
    typer.Option(
        "--paper-data",
        envvar=PAPER_DATA_ENV,
        metavar="DIR",
        help=f"Folder of the paper's released data: a clone of {PAPER_DATA_SOURCE}. Gives the defaults of --released, "
        "--dataset and --ratings (docs/paper_reproduction.md).",
    ),
]
Released = Annotated[
    Optional[Path],
    typer.Option(
        "--released",
        help="Folder with ifa_llama_7b/ and ifa_vicuna_7b/ (<ID>.pkl); default DIR/results/attribution_interpret (or DIR/released_attributions) of --paper-data.",
    ),
]
Dataset = Annotated[
    Optional[Path],
    typer.Option(
        "--dataset", help="The paper's FinalDataset.tsv; default DIR/datasets/FinalDataset.tsv of --paper-data."
    ),
]
Ratings = Annotated[
    Optional[Path],
    typer.Option(
        "--ratings",
        help="The paper's AnnotatedDataset.tsv (Vicuna ratings); default DIR/datasets/AnnotatedDataset.tsv of --paper-data.",
    ),
]


def _paper_paths(paper_dir, released, dataset, ratings, need_ratings: bool):
    """Explicit paths win; the others come from the paper data folder (--paper-data or $TUNESHIFT_PAPER_DATA)."""
    from tuneshift.data.paper_release import paper_data
    from tuneshift.errors import InputFileError

    if released is not None and dataset is not None and (ratings is not None or not need_ratings):
        return released, dataset, ratings
    if paper_dir is None:  # typer has read $TUNESHIFT_PAPER_DATA already
        missing = [
            f
            for f, v in (("--released", released), ("--dataset", dataset), ("--ratings", ratings))
            if v is None and (f != "--ratings" or need_ratings)
        ]
        names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise InputFileError(
            f"{names} {'is' if len(missing) == 1 else 'are'} needed: give {'it' if len(missing) == 1 else 'them'}, "
            f"or --paper-data DIR (or set {PAPER_DATA_ENV}) for all; the data comes from {PAPER_DATA_SOURCE}"
        )
    pd = paper_data(paper_dir)
    if need_ratings and ratings is None and pd.ratings is None:
        raise InputFileError(f"paper data folder {pd.root} has no datasets/AnnotatedDataset.tsv; give --ratings")
    return released or pd.released, dataset or pd.dataset, ratings or pd.ratings


@app.command("import-paper")
def import_paper_cmd(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the two runs OUT/llama_7b and OUT/vicuna_7b (resumed if present).")
    ],
    paper_dir: PaperDataDir = None,
    released: Released = None,
    dataset: Dataset = None,
    ratings: Ratings = None,
):
    """Import the paper's released attributions (Wu et al. 2024) as two runs, for `tuneshift compare`."""
    from tuneshift.pipelines.import_paper import import_paper

    released, dataset, ratings = _paper_paths(paper_dir, released, dataset, ratings, need_ratings=False)

    s = import_paper(released, dataset, ratings, out_dir)
    for key, run in s.runs.items():
        err.print(
            f"{key}: {s.n_imported[key]} imported, {s.n_done_before[key]} already done, {s.n_skipped[key]} skipped, "
            f"{s.n_short[key]} short responses, {s.n_unlocated_spans[key]} unlocated spans -> {escape(run)}",
            highlight=False,
        )
    err.print(
        f"{s.seconds:.1f} s. The paper's Table 2 is `tuneshift compare {escape(s.runs['llama_7b'])} {escape(s.runs['vicuna_7b'])} "
        "--include-short` (all prompts); its Table 1 is the 'tuned' followed-vs-unfollowed rows of the same "
        "command without --include-short; `tuneshift paper-tables` prints both.",
        highlight=False,
    )
    from tuneshift.pipelines.attribute_run import skipped_line

    named = [f"{key}: {skipped_line(rid, why)}" for key, recs in s.skipped.items() for rid, why in recs.items()]
    code = report_skips(s.input_problems, named, sum(s.n_skipped.values()), "each run's skipped.json")
    if code:
        raise typer.Exit(code)


@app.command("paper-tables")
def paper_tables_cmd(
    paper_dir: PaperDataDir = None,
    released: Released = None,
    dataset: Dataset = None,
    ratings: Ratings = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON {table1, table2} instead of tables (plus 'sweep' with --sweep).")
    ] = False,
    threshold: Threshold = default_of(paper_tables, "threshold"),
    norm_p: NormP = default_of(paper_tables, "norm_p"),
    do_sweep: Annotated[
        bool, typer.Option("--sweep", help="Also recompute both tables for b in 0..9 and p in {2, 4, 8}.")
    ] = False,
):
    """The paper's Tables 1-2 (followed vs unfollowed; LLaMA vs Vicuna) and position profile from its released data."""
    import json

    from tuneshift.pipelines.import_paper import load_release
    from tuneshift.reports.paper_tables_report import print_paper_tables, print_sweep
    from tuneshift.stats.paper_tables import paper_settings, sweep, sweep_to_json

    paper_settings(threshold, norm_p)  # refuse bad b/p before reading the data
    released, dataset, ratings = _paper_paths(paper_dir, released, dataset, ratings, need_ratings=True)
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
