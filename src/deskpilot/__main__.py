"""``python -m deskpilot``: the same as the ``deskpilot`` command (see :mod:`deskpilot.cli`)."""

from .cli import main

main(prog_name="deskpilot")
