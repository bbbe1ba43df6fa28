"""Commands on the paper's released data (Wu et al., NAACL 2024): import-paper, paper-tables."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from tuneshift.cli.app import app, err, out, report_skips
from tuneshift.cli.options import NormP, Threshold, default_of
from tuneshift.stats.paper_tables import paper_tables

Released = Annotated[Path, typer.Option("--released", help="Folder with ifa_llama_7b/ and ifa_vicuna_7b/ (<ID>.pkl).")]
Dataset = Annotated[Path, typer.Option("--dataset", help="The paper's FinalDataset.tsv.")]


@app.command("import-paper")
def import_paper_cmd(
    released: Released,
    dataset: Dataset,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the two runs OUT/llama_7b and OUT/vicuna_7b (resumed if present).")],
    ratings: Annotated[Optional[Path], typer.Option("--ratings", help="The paper's AnnotatedDataset.tsv (Vicuna ratings).")] = None,
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
    from tuneshift.runs.attribute_run import skipped_line

    named = [f"{key}: {skipped_line(rid, why)}" for key, recs in s.skipped.items() for rid, why in recs.items()]
    code = report_skips(s.input_problems, named, sum(s.n_skipped.values()), "each run's skipped.json")
    if code:
        raise typer.Exit(code)


@app.command("paper-tables")
def paper_tables_cmd(
    released: Released,
    dataset: Dataset,
    ratings: Annotated[Path, typer.Option("--ratings", help="The paper's AnnotatedDataset.tsv (Vicuna ratings).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON {table1, table2} instead of tables (plus 'sweep' with --sweep).")] = False,
    threshold: Threshold = default_of(paper_tables, "threshold"),
    norm_p: NormP = default_of(paper_tables, "norm_p"),
    do_sweep: Annotated[bool, typer.Option("--sweep", help="Also recompute both tables for b in 0..9 and p in {2, 4, 8}.")] = False,
):
    """The paper's Tables 1-2 (followed vs unfollowed; LLaMA vs Vicuna) and position profile from its released data."""
    import json

    from tuneshift.runs.import_paper import load_release
    from tuneshift.stats.compare import ScoreSettings
    from tuneshift.stats.paper_tables import print_paper_tables, print_sweep, sweep, sweep_to_json

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
