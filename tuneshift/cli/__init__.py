# isort: skip_file  (the command groups register in this order, which is the help order)
"""The ``tuneshift`` command line (typer), one module per command group.

``app.py`` holds the app, the entry point :func:`main` and the helpers every group shares;
``options.py`` the options shared by several commands (one spelling, help and choices each;
defaults come from the library's option dataclasses). The command groups follow the pipeline:
``attribution`` (attribute, compare, demo, show), ``ablation`` (ablate, compare-ablation), ``models`` (models, template), ``paper`` (import-paper,
paper-tables), ``heads`` (heads, compare-heads), ``concepts`` (concepts, annotate,
compare-concepts), ``tuning`` (tune, eval-following), ``report`` (the HTML page). Importing this package registers them.
"""

from tuneshift.cli import ablation, attribution, concepts, heads, models, paper, report, tuning  # noqa: E402,F401  (registration order = help order)
from tuneshift.cli.app import app, main

_COMMAND_GROUPS = (attribution, ablation, models, paper, heads, concepts, tuning, report)

__all__ = ["app", "main"]
