"""The typer app, its consoles, exit codes, the entry point and helpers every command group uses.

Every user error (:class:`~tuneshift.errors.TuneshiftError`) is printed as one line
``error: ...`` on stderr with exit code 2, never a traceback (set ``TUNESHIFT_DEBUG=1`` to see
one). Library errors name Python parameters (:class:`~tuneshift.errors.OptionError`); they are
shown with this CLI's flag spelling. A run that finished but had to skip input records exits
with code 3, and so does a comparison with no record pairs (its report is written, empty).
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
from tuneshift.errors import InputFileError, OptionError, TuneshiftError

app = typer.Typer(
    name="tuneshift",
    help="What instruction tuning changes inside a language model (methods of Wu et al., NAACL 2024).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)
# stdout: outside a terminal (a log, a pipe) no line is cut at 80 columns (tables print as
# Markdown there: tuneshift.reports.formatting.print_table)
out = Console(soft_wrap=not sys.stdout.isatty())

EXIT_USER_ERROR = 2
EXIT_INPUT_SKIPPED = 3
EXIT_INTERRUPTED = 130


def _version(value: bool):
    if value:
        print(f"tuneshift {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    """tuneshift: explain a pre-trained model and its instruction-tuned counterpart, and compare them."""


def check_threads(threads: Optional[int]) -> None:
    """Refuse a ``--threads`` below 1 (without importing torch: :func:`set_threads` applies it later).

    Raises:
        OptionError: ``threads`` < 1.
    """
    if threads is not None and threads < 1:
        raise OptionError("threads", f"must be >= 1, got {threads}")


def set_threads(threads: Optional[int]) -> None:
    """Set torch's CPU thread count. None: one per usable core that is not busy with other work
    (:func:`tuneshift.threads.default_threads`).

    Raises:
        OptionError: ``threads`` < 1.
    """
    check_threads(threads)
    import torch

    if threads is None:  # chosen silently: a note here would break the one-line errors that follow
        from tuneshift.threads import default_threads

        threads = default_threads()
    torch.set_num_threads(threads)


def read_prompts_quietly(path, **kw):
    """read_prompts without Python warning lines: its problems are reported by the run summary."""
    import warnings

    from tuneshift.data.prompts import read_prompts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_prompts(path, **kw)


def interrupted(message: str = "interrupted; finished records are saved, run the same command again to resume"):
    """Say what was kept and exit 130 (Ctrl-C)."""
    err.print(message)
    raise typer.Exit(EXIT_INTERRUPTED)


def check_report_dir(out_dir: Optional[Path]) -> None:
    """Refuse an output directory that is a file before any work."""
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise InputFileError(f"output directory {out_dir} is a file, not a directory")


def print_and_save(result, json_out: bool, out_dir: Optional[Path], printer=None) -> None:
    """Print a :class:`~tuneshift.results.Result` as JSON (``--json``) or in the terminal, and
    with ``out_dir`` save it there (JSON and its Markdown twin:
    :func:`~tuneshift.reports.markdown.save_with_markdown`).

    Args:
        result: the result.
        json_out: print ``to_dict()`` as JSON instead.
        out_dir: where to save, or None.
        printer: ``printer(result, console)`` for the terminal (default: its Markdown,
            :func:`~tuneshift.reports.markdown.render_markdown`, unwrapped).
    """
    import json

    from tuneshift.reports.markdown import render_markdown, save_with_markdown

    if json_out:
        print(json.dumps(result.to_dict(), indent=2))
    elif printer is not None:
        printer(result, out)
    else:
        out.print(render_markdown(result), markup=False, highlight=False, soft_wrap=True)  # Markdown lines unbroken
    if out_dir is not None:
        paths = save_with_markdown(result, out_dir)
        err.print(f"wrote {', '.join(str(p) for p in paths.values())}", markup=False, highlight=False)


def report_run_summary(s, label: str = "") -> int:
    """Print an attribution run summary; return the exit code it implies: 0, 3 (input lines or
    records skipped) or 2 (nothing attributed: the run is marked ``empty``)."""
    tag = f"{label}: " if label else ""
    err.print(
        f"{tag}{s.n_attributed} attributed, {s.n_done_before} already done, {s.n_skipped} skipped, "
        f"{s.n_truncated} truncated to the context window, {s.n_short} short responses, "
        f"{s.n_unlocated_spans} unlocated spans; {s.seconds:.0f} s -> {s.path}",
        markup=False,
        highlight=False,
    )
    from tuneshift.pipelines.attribute_run import skipped_line

    named = [skipped_line(rid, why) for rid, why in list(s.skipped.items())[:NAMED_IN_SUMMARY]]
    empty = getattr(s, "status", "complete") == "empty"
    code = report_skips(s.input_problems, named, s.n_skipped, str(Path(s.path) / "skipped.json"), count_line=not empty)
    if empty:  # nothing attributed: never a usable run (exit 2, not the 3 of a partial run)
        err.print(
            f"error: no record was attributed ({s.n_skipped} skipped, reasons in "
            f"{Path(s.path) / 'skipped.json'}); the run is marked empty, not complete",
            markup=False,
            highlight=False,
        )
        return EXIT_USER_ERROR
    return code


#: skipped input lines / records named in a summary before "... and N more".
NAMED_IN_SUMMARY = 5


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 record``, ``2 records`` (``nouns``: an irregular plural)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def report_skips(input_problems, skipped_lines, n_skipped: int, where: str, count_line: bool = True) -> int:
    """Name what a run skipped on stderr and return the exit code it implies (0 or 3).

    Up to :data:`NAMED_IN_SUMMARY` input lines (``skipped input: ...``) and as many skipped
    records (``skipped record ID: reason``) are named, then ``... and N more``; the last line
    counts both (``1 input line and 2 records were skipped (reasons in WHERE); exit code 3``).

    Args:
        input_problems: the prompt file's problem lines (list[str]).
        skipped_lines: lines naming skipped records (the first ones are printed).
        n_skipped: records skipped (int).
        where: where every reason is kept (shown as is, e.g. ``run/skipped.json``).
        count_line: False leaves out the last line (the caller reports another outcome, e.g. an
            empty run).
    """
    for p in input_problems[:NAMED_IN_SUMMARY]:
        err.print(f"[yellow]skipped input:[/yellow] {escape(p)}", highlight=False)
    if len(input_problems) > NAMED_IN_SUMMARY:
        err.print(f"... and {plural(len(input_problems) - NAMED_IN_SUMMARY, 'more input line')}", highlight=False)
    named = list(skipped_lines)[:NAMED_IN_SUMMARY]
    for line in named:
        err.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)
    if n_skipped > len(named):
        err.print(f"... and {plural(n_skipped - len(named), 'more skipped record')}", highlight=False)
    if not (input_problems or n_skipped):
        return 0
    if not count_line:
        return EXIT_INPUT_SKIPPED
    parts = [plural(n, noun) for n, noun in ((len(input_problems), "input line"), (n_skipped, "record")) if n]
    verb = "was" if len(input_problems) + n_skipped == 1 else "were"
    err.print(
        f"[yellow]{' and '.join(parts)} {verb} skipped (reasons in {escape(where)}); "
        f"exit code {EXIT_INPUT_SKIPPED}[/yellow]",
        highlight=False,
    )
    return EXIT_INPUT_SKIPPED


def report_dropped(s) -> None:
    """Name a few vocabulary words that had no token (heads and concepts runs)."""
    if s.n_dropped:
        err.print(f"dropped words (no token), e.g.: {escape(', '.join(s.dropped_examples))}", highlight=False)


def flag_spelling():
    """Python parameter name -> this CLI's flag (``max_new_tokens`` -> ``--max-new-tokens``), from
    every command's options (each option name has one spelling across commands)."""
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

    Usage errors (missing or bad options, reported by click) are printed as one ``error:`` line
    naming the command's ``--help``, exit code 2, as every other user error.
    """
    # The command groups are registered by the package (tuneshift/cli/__init__.py), which is what
    # the console script and ``python -m tuneshift.cli`` import; this module does not import it back.
    from tuneshift import interrupts

    debug = bool(os.environ.get("TUNESHIFT_DEBUG"))
    interrupts.install()  # a Ctrl-C swallowed in a __del__ is raised again at the next safe point
    try:
        # standalone_mode=False: usage errors come here (one line below), not as typer's rich box
        code = app(args=argv, prog_name="tuneshift", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.TyperException as e:  # typer's click errors: a missing or bad option, argument or command
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # `tuneshift GROUP` alone: its help
            print(ctx.get_help() if ctx is not None else e.format_message())
            sys.exit(0)
        if debug:
            raise
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        msg = " ".join(e.format_message().split()).replace("Value error, ", "")  # typer's validation prefix
        err.print(f"[red]error:[/red] {escape(msg)}{escape(where)}", highlight=False)
        sys.exit(getattr(e, "exit_code", EXIT_USER_ERROR) or EXIT_USER_ERROR)
    except typer.Abort:  # Ctrl-C outside a command's own handling
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except TuneshiftError as e:
        if debug:
            raise
        msg = e.render(flag_spelling()) if isinstance(e, OptionError) else str(e)
        err.print(f"[red]error:[/red] {escape(msg)}", highlight=False)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        err.print("interrupted; finished records are saved, run the same command again to resume")
        sys.exit(EXIT_INTERRUPTED)
    except MemoryError:
        err.print("[red]error:[/red] out of memory; try a smaller --batch-size or --max-new-tokens")
        sys.exit(1)
    except Exception as e:  # anything unexpected: one line, traceback on request
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        err.print(
            f"[red]internal error:[/red] {type(e).__name__}: {escape(msg[:300])} (set TUNESHIFT_DEBUG=1 for the traceback)",
            highlight=False,
        )
        sys.exit(1)


def load_model_or_null(
    model: str, adapter, random_update_like: Optional[str], null_seed: Optional[int], device: str, dtype: str
):
    """``--model`` (+ ``--adapter``) as usual, or with ``--random-update-like TUNED`` the base +
    a random update of TUNED's size (``--adapter`` then belongs to TUNED; seed ``--null-seed``).
    Every option is checked before a model loads.

    Raises:
        OptionError: ``--null-seed`` without ``--random-update-like``, or < 0.
        ModelSpecError: as :func:`~tuneshift.models.random_update.check_random_update_specs`.
    """
    if random_update_like is None:
        if null_seed is not None:
            raise OptionError(
                "null_seed", "needs --random-update-like (the tuned model whose update size the null copies)"
            )
        from tuneshift.models.loading import load_model

        return load_model(model, adapter=adapter, device=device, dtype=dtype)
    from tuneshift.models.random_update import load_random_update

    return load_random_update(
        model,
        random_update_like,
        like_adapter=adapter,
        seed=0 if null_seed is None else null_seed,
        dtype=dtype,
        device=device,
    )
