"""The ``deskpilot mcp`` command (click); the server itself is :mod:`deskpilot.mcp.server`.

This module imports only click at load time, so ``deskpilot --help`` stays fast and works
without the ``mcp`` extra; the SDK is imported when the command runs. Options read the
environment like every deskpilot command (``DESKPILOT_WIDTH``/``HEIGHT``/``APPS``, and click's
automatic ``DESKPILOT_MCP_<OPTION>``: ``DESKPILOT_MCP_TRANSPORT``, ``DESKPILOT_MCP_TOKEN``,
...; https://click.palletsprojects.com/en/stable/options/#values-from-environment-variables).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from ..click_options import screen_size_options
from ..errors import MissingDependencyError
from ..remote.option import computer_option

__all__ = ["mcp"]

_APPS = ("terminal", "editor", "browser")


def _parse_apps(value: str) -> tuple[str, ...]:
    """The app names of ``--apps`` (comma-separated), each checked by ``app_spec``.

    Raises:
        ConfigError: an unknown app name.
    """
    from ..desktop.apps import app_spec

    apps = tuple(a.strip() for a in value.split(",") if a.strip())
    for name in apps:
        app_spec(name)
    return apps


@click.command(short_help="Serve the desktop to MCP clients (Claude Desktop, Claude Code).")
@click.option(
    "--transport",
    type=click.Choice(("stdio", "http")),
    default="stdio",
    show_default=True,
    show_envvar=True,
    help="stdio (the client starts this command) or streamable HTTP (clients connect to "
    "http://HOST:PORT/mcp).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    show_envvar=True,
    help="HTTP only: the address to bind. Anything but a loopback address needs --token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    show_envvar=True,
    help="HTTP only: the port (0: a free one; the URL is printed on stderr).",
)
@click.option(
    "--token",
    default=None,
    show_envvar=True,
    help="HTTP only: a bearer token every request must carry (Authorization: Bearer ...); "
    "required when --host is not loopback. Prefer the environment variable: a command line "
    "is visible to other users.",
)
@screen_size_options()
@click.option(
    "--apps",
    default="terminal",
    show_default=True,
    envvar="DESKPILOT_APPS",
    show_envvar=True,
    help=f"Apps to open at start, comma-separated: {', '.join(_APPS)} (empty for none).",
)
@click.option(
    "--read-only",
    is_flag=True,
    show_envvar=True,
    help="Offer only screenshot and the computer tool's screenshot, cursor_position and zoom: "
    "no input, no shell, no editor.",
)
@computer_option
@click.pass_context
def mcp(
    ctx: click.Context,
    transport: str,
    host: str,
    port: int,
    token: str | None,
    width: int,
    height: int,
    apps: str,
    read_only: bool,
    computer_url: str | None,
) -> None:
    """Serve a fresh local desktop to MCP clients: screenshot, computer, bash and
    str_replace_based_edit_tool, with the arguments and errors of Anthropic's tools.

    \b
    Claude Code:    claude mcp add deskpilot -- deskpilot mcp
    Claude Desktop: {"mcpServers": {"deskpilot": {"command": "deskpilot", "args": ["mcp"]}}}
    HTTP:           deskpilot mcp --transport http --port 8765   (http://127.0.0.1:8765/mcp)

    Messages go to stderr (stdout is the stdio transport). The desktop closes when the
    client disconnects (stdio) or on Ctrl-C / SIGTERM. See docs/mcp.md.
    """
    if transport == "stdio":
        given = [
            f"--{name}"
            for name in ("host", "port", "token")
            if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(f"{', '.join(given)} only go(es) with --transport http.")
    app_list = _parse_apps(apps)
    try:
        from .server import check_http_options, serve
    except ImportError as exc:
        raise MissingDependencyError(
            f"deskpilot mcp needs the MCP SDK ({exc.name or exc}); run "
            "`pip install 'deskpilot[mcp]'`."
        ) from exc
    if transport == "http":
        check_http_options(host, token)  # a refused bind starts no desktop

    def echo(line: str) -> Any:
        click.echo(line, err=True)

    code = asyncio.run(
        serve(
            transport="http" if transport == "http" else "stdio",
            width=width,
            height=height,
            apps=app_list,
            read_only=read_only,
            host=host,
            port=port,
            token=token,
            echo=echo,
            computer_url=computer_url,
        )
    )
    sys.exit(code)
