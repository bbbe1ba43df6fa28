"""The report command: one self-contained HTML page of comparisons (``tuneshift report``)."""

from pathlib import Path
from typing import Annotated

import typer

from tuneshift.cli.app import app, err
from tuneshift.cli.options import default_of
from tuneshift.reports.html import render_report, write_report


@app.command()
def report(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Saved comparisons (compare / compare-heads / compare-concepts output folders), pairs of run "
            "directories (pre-trained first) compared on the spot, or folders of comparisons (a demo's --out).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (atomically).")] = Path("report.html"),
    title: Annotated[str, typer.Option("--title", help="Page title.")] = default_of(render_report, "title"),
    max_records: Annotated[
        int,
        typer.Option(
            "--max-records",
            help="Per attribution comparison, records given the side-by-side view (the example record "
            "and the largest |tuned - base|); every record is in the sortable list.",
        ),
    ] = default_of(render_report, "max_records"),
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-mismatch", help="Compare a pair of attribution runs made under different protocols (warned)."
        ),
    ] = False,
):
    """One self-contained HTML page (opens offline) of attribution, heads and concepts comparisons."""
    path = write_report(paths, out, title=title, max_records=max_records, allow_mismatch=allow_mismatch)
    size = path.stat().st_size
    err.print(
        f"report: {size / 1e6:.1f} MB" if size >= 1e6 else f"report: {size / 1e3:.0f} kB",
        "(opens offline)",
        markup=False,
        highlight=False,
    )
    print(path)
