"""``python -m tuneshift.cli`` (the same as ``python -m tuneshift`` and the ``tuneshift`` command)."""

from tuneshift.cli.app import main

main()
