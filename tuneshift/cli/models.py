"""``tuneshift models`` (the packaged model aliases) and ``tuneshift template`` (a model's chat template)."""

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from tuneshift.cli.app import app, err, out
from tuneshift.cli.options import Adapter, DeviceOpt, DtypeOpt, Threads, default_of
from tuneshift.models.loading import load_model as _load_model


@app.command("models")
def models_cmd(
    long: Annotated[
        bool, typer.Option("--long", help="Also each model's description and install command (a wide table).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print every field as JSON instead of a table.")] = False,
):
    """List the packaged model aliases and whether their packages are installed (one line each; --long for more)."""
    from rich.table import Table

    from tuneshift.models.loading import list_packaged_models
    from tuneshift.models.specs import PACKAGED_MODELS

    rows = list_packaged_models()
    if json_out:
        import json

        print(json.dumps([{**r, "package": PACKAGED_MODELS[r["alias"]].package} for r in rows], indent=2))
        return
    if not long:  # fits in 80 columns: alias, tuned, installed, package
        t = Table("alias", "tuned", "installed", "package", box=None, pad_edge=False)
        for r in rows:
            t.add_row(
                r["alias"],
                "yes" if r["instruction_tuned"] else "no",
                "yes" if r["installed"] else "no",
                PACKAGED_MODELS[r["alias"]].package,
            )
        out.print(t)
        out.file.flush()
        missing = [r["alias"] for r in rows if not r["installed"]]
        err.print(
            ("not installed: " + ", ".join(missing) + "; " if missing else "")
            + "tuneshift models --long: descriptions and install commands",
            markup=False,
            highlight=False,
        )
        return
    t = Table("alias", "instruction-tuned", "installed", "description", "install with")
    t.columns[0].no_wrap = True
    t.columns[0].min_width = max(len(a) for a in PACKAGED_MODELS)
    t.columns[3].overflow = "fold"
    t.columns[4].overflow = "fold"
    for r in rows:
        t.add_row(
            r["alias"],
            "yes" if r["instruction_tuned"] else "no",
            "yes" if r["installed"] else "no",
            escape(r["description"]),
            escape(r["install"]),
        )
    out.print(t)


@app.command("template")
def template_cmd(
    model: Annotated[
        str, typer.Argument(help="Packaged alias, .gguf path, model directory, tune output folder or hub id.")
    ],
    adapter: Adapter = None,
    out_file: Annotated[
        Optional[Path], typer.Option("--out", help="Write the template to this file instead of stdout.")
    ] = None,
    threads: Threads = None,
    device: DeviceOpt = default_of(_load_model, "device"),
    dtype: DtypeOpt = default_of(_load_model, "dtype"),
):
    """Print MODEL's chat template exactly as the demo uses it (for --chat-template FILE: one prompt form for a pair).

    The text is normalised (line endings, no trailing whitespace; docs/attribution.md) and ends
    with one newline; ``tuneshift template M > form.jinja`` gives the demo's template identity.
    Only the tokenizer is loaded, not the weights (it may come from an adapter; a packaged GGUF
    is converted to the cache the first time). A model without a chat template is an error (exit 2).
    --threads, --device and --dtype are accepted for the same flags everywhere and change nothing.
    """
    from tuneshift.cli.app import set_threads
    from tuneshift.data.encoding import model_chat_template
    from tuneshift.errors import InputFileError, ModelSpecError
    from tuneshift.files import atomic_write_text
    from tuneshift.models.devices import resolve_placement

    resolve_placement(device, dtype)
    set_threads(threads)
    if out_file is not None and out_file.is_dir():
        raise InputFileError(f"--out {out_file} is a directory, not a file")
    from tuneshift.models.loading import load_tokenizer

    text = model_chat_template(load_tokenizer(model, adapter=adapter))
    if text is None:
        raise ModelSpecError(
            f"model '{model}' has no chat template: give it raw prompts (--chat-template none) "
            "or another model's template (tuneshift template OTHER_MODEL)"
        )
    if out_file is None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        atomic_write_text(out_file, text + "\n")
        err.print(f"wrote {out_file}", markup=False, highlight=False)
