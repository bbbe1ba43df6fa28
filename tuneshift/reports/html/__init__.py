"""``tuneshift report``: one self-contained HTML page per comparison set.

Pipeline: :mod:`.inputs` resolves the command-line paths into comparisons (and their runs),
:mod:`.sections` turns each into view models through its registry of sections (a view function
and a partial ``templates/sections/<name>.html.j2`` each), :mod:`.plots` draws the static plots
as inline SVG (matplotlib), and :func:`render_report` fills the Jinja2 page template
(autoescaped), which includes each section's partial, with the inlined CSS and JavaScript of
``templates/``. The page needs no network: no CDN, no fonts, no
external images.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Sequence

from tuneshift.reports.html.inputs import AttributionInput, ConceptsInput, HeadsInput, ReportInput, collect_inputs
from tuneshift.reports.html.sections import DEFAULT_MAX_RECORDS, page_sections

__all__ = [
    "render_report",
    "write_report",
    "collect_inputs",
    "DEFAULT_MAX_RECORDS",
    "AttributionInput",
    "HeadsInput",
    "ConceptsInput",
]


def _asset(name: str) -> str:
    """The text of ``templates/<name>`` (``name`` may hold ``/``: ``sections/heads.html.j2``)."""
    return resources.files(__package__).joinpath("templates", *name.split("/")).read_text(encoding="utf-8")


def _template_source(name: str) -> str | None:
    """The Jinja loader: a template's text, or None (Jinja's TemplateNotFound) when it is missing."""
    try:
        return _asset(name)
    except (FileNotFoundError, NotADirectoryError):
        return None


def render_report(
    inputs: Sequence[ReportInput], title: str = "tuneshift report", max_records: int = DEFAULT_MAX_RECORDS
) -> str:
    """The report page as one HTML string.

    Args:
        inputs: comparisons (:func:`collect_inputs`, or built directly).
        title: page title (escaped).
        max_records: per attribution comparison, records given the side-by-side view (>= 0).

    Returns:
        A complete HTML5 document with inlined CSS, JavaScript, SVG plots and JSON data.

    Raises:
        OptionError: ``max_records`` < 0.
        TypeError: an input no registered section shows (:func:`~.sections.page_sections`).
    """
    import jinja2

    from tuneshift import __version__
    from tuneshift.errors import OptionError

    if max_records < 0:
        raise OptionError("max_records", f"must be >= 0, got {max_records}")
    title = title.strip() or "tuneshift report"
    sections = page_sections(inputs, max_records)  # the findings table opens the page (its order 0)
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    template = env.get_template("report.html.j2")
    return template.render(
        title=title, version=__version__, sections=sections, css=_asset("report.css"), js=_asset("report.js")
    )


def write_report(
    paths: Sequence[str | Path],
    out: str | Path,
    title: str = "tuneshift report",
    max_records: int = DEFAULT_MAX_RECORDS,
    allow_mismatch: bool = False,
) -> Path:
    """Build the report of ``paths`` (see :func:`collect_inputs`) and write it atomically to ``out``.

    ``out`` must not be one of the inputs or lie inside one (a report never replaces the results
    it shows), its folder must exist, and an existing file there is replaced only if it is a
    tuneshift report.

    Returns:
        The path written.

    Raises:
        InputFileError: bad inputs (:func:`collect_inputs`); ``out`` cannot be written.
        OptionError: ``out`` is a directory, an input or inside one, a file that is not a
            tuneshift report, or in a missing folder; ``max_records`` < 0.
    """
    from tuneshift.errors import InputFileError
    from tuneshift.files import atomic_write_text

    out = Path(out)
    check_out_file(out, paths)
    html = render_report(collect_inputs(paths, allow_mismatch=allow_mismatch), title=title, max_records=max_records)
    try:
        atomic_write_text(out, html)
    except OSError as e:
        raise InputFileError(f"cannot write {out}: {e.strerror or type(e).__name__}") from None
    return out


def check_out_file(out: Path, inputs: Sequence[str | Path]) -> None:
    """Refuse an ``--out`` that would destroy something (see :func:`write_report`).

    Raises:
        OptionError: as described in :func:`write_report`.
    """
    from tuneshift.errors import OptionError

    out = Path(out)
    if str(out).strip() == "" or out.is_dir():
        raise OptionError("out", f"{out} is a directory; give the HTML file to write (e.g. {out / 'report.html'})")
    target = out.resolve()
    for p in inputs:
        src = Path(p).resolve()
        if target == src or src in target.parents:
            raise OptionError(
                "out",
                f"{out} is {'an input' if target == src else f'inside the input {p}'}; "
                "write the report elsewhere (it would replace the results it shows)",
            )
    if not target.parent.is_dir():
        raise OptionError("out", f"{out}: the folder {out.parent} does not exist")
    if target.exists():
        try:
            head = target.read_bytes()[:2000].decode("utf-8", "replace")
        except OSError:
            head = ""
        if '<meta name="generator" content="tuneshift' not in head:
            raise OptionError("out", f"{out} exists and is not a tuneshift report; choose another file or remove it")
