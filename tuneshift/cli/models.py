"""``tuneshift models``: the packaged model aliases."""

from rich.markup import escape

from tuneshift.cli.app import app, out


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
