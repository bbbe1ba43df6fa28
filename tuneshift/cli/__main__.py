"""``python -m tuneshift.cli`` (the same as ``python -m tuneshift`` and the ``tuneshift`` command)."""

from tuneshift.cli import main  # the package registers every command group

main()
