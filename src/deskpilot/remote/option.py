"""The command-line names of remote desktops, importable with click alone (fast ``--help``).

``--computer URL`` (``deskpilot run``, ``deskpilot mcp``): drive the desktop of a computer
server instead of a fresh local one. :data:`TOKEN_ENV` and :data:`DEFAULT_PORT` are the
server's and the client's shared defaults (re-exported by :mod:`deskpilot.remote.protocol`).
"""

from __future__ import annotations

import click

__all__ = ["DEFAULT_PORT", "TOKEN_ENV", "computer_option"]

TOKEN_ENV = "DESKPILOT_SERVER_TOKEN"
"""The environment variable holding the bearer token (server and client)."""

DEFAULT_PORT = 8766
"""The port ``deskpilot serve`` listens on by default."""

computer_option = click.option(
    "--computer",
    "computer_url",
    default=None,
    envvar="DESKPILOT_COMPUTER",
    show_envvar=True,
    help="Use the desktop of a computer server (`deskpilot serve`) at this URL, e.g. "
    f"ws://host:{DEFAULT_PORT}, instead of a fresh local one; its token comes from "
    f"{TOKEN_ENV}. Every tool (bash and the editor too) then runs on that host.",
)
"""The ``--computer URL`` option (passes ``computer_url``)."""
