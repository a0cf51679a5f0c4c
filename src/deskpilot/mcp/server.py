"""The MCP server of ``deskpilot mcp``: the SDK server, its two transports, the token, signals.

The server is the official SDK's low-level ``mcp.server.Server`` (PyPI ``mcp``,
https://github.com/modelcontextprotocol/python-sdk) with two handlers, ``tools/list`` and
``tools/call``, both answered by :class:`~deskpilot.mcp.tools.DesktopTools`. Transports
(MCP specification, "Transports",
https://modelcontextprotocol.io/specification/2025-11-25/basic/transports):

* **stdio**: JSON-RPC messages on stdin/stdout (the SDK's ``stdio_server``); stdout carries
  nothing else, every message of deskpilot's goes to stderr. The server ends when the client
  closes stdin (the specification's shutdown sequence).
* **streamable HTTP**: the SDK's Starlette app (endpoint ``/mcp``) served by uvicorn. It binds
  ``127.0.0.1`` by default, and on any loopback address the SDK checks ``Host``/``Origin``
  against DNS rebinding (the specification's security warning: servers "SHOULD bind only to
  localhost" and validate ``Origin``).
  Binding any other address requires a bearer token (:func:`check_http_options`); with a
  token, every request needs ``Authorization: Bearer <token>`` and is answered 401 without
  it (the SDK's bearer middleware with :class:`StaticTokenVerifier`, a constant-time compare).

Signals (POSIX ``signal(7)``): SIGINT, SIGTERM or SIGHUP stops serving, closes the shell and
the desktop, and ends the process with status 128 + the signal number. Over HTTP, uvicorn
shuts down gracefully (at most :data:`GRACEFUL_SHUTDOWN_S` for open streams). Over stdio,
the SDK reads stdin in a worker thread that a cancellation cannot interrupt (anyio's
``to_thread``, shielded), so once the desktop is closed the process ends with
``os._exit``; the normal end, the client closing stdin, returns normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import uvicorn
from mcp.server import Server
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams
from pydantic import AnyHttpUrl
from starlette.applications import Starlette

from .. import __version__
from ..errors import ConfigError
from .tools import DesktopTools, desktop_tools

__all__ = [
    "DEFAULT_HOST",
    "GRACEFUL_SHUTDOWN_S",
    "STOP_SIGNALS",
    "StaticTokenVerifier",
    "build_server",
    "check_http_options",
    "http_app",
    "is_loopback",
    "serve",
]

Transport = Literal["stdio", "http"]

DEFAULT_HOST = "127.0.0.1"
GRACEFUL_SHUTDOWN_S = 2
"""Seconds uvicorn waits for open HTTP streams on shutdown before closing them."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop the server."""
ENDPOINT = "/mcp"

INSTRUCTIONS = (
    "A private virtual desktop (Xvfb + openbox) driven by deskpilot. Take a screenshot first; "
    "coordinates are in screenshot pixels. The computer tool takes the actions and arguments "
    "of Anthropic's computer tool."
)


def is_loopback(host: str) -> bool:
    """True when ``host`` is ``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_http_options(host: str, token: str | None) -> str | None:
    """The token to require, after checking that a non-loopback bind has one.

    Args:
        host: the address to bind.
        token: the bearer token (``--token`` / ``DESKPILOT_MCP_TOKEN``), or None/empty.

    Returns:
        The token (None: no token required, which only a loopback bind allows).

    Raises:
        ConfigError: ``host`` is not loopback and there is no token, or the token is
            too short (under 16 characters) or holds spaces or control characters.
    """
    token = token or None
    if token is None:
        if not is_loopback(host):
            raise ConfigError(
                f"Binding {host} would let anyone who can reach it drive this desktop and run "
                "commands as your user; pass a bearer token with --token or "
                "DESKPILOT_MCP_TOKEN (e.g. export DESKPILOT_MCP_TOKEN=$(openssl rand -hex 32)), "
                f"or bind {DEFAULT_HOST}."
            )
        return None
    if len(token) < 16 or any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError(
            "The MCP bearer token must be at least 16 printable characters without spaces "
            "(e.g. openssl rand -hex 32)."
        )
    return token


class StaticTokenVerifier:
    """The SDK's ``TokenVerifier`` for one fixed bearer token (compared in constant time)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        """An access token for the client when ``token`` matches, else None (401)."""
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="accepted", client_id="deskpilot-mcp-client", scopes=[])
        return None


def build_server(tools: DesktopTools) -> Server[Any]:
    """The SDK's low-level server answering ``tools/list`` and ``tools/call`` from ``tools``."""

    async def list_tools(ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=tools.list_tools())

    async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        return await tools.call(params.name, params.arguments)

    return Server(
        "deskpilot",
        version=__version__,
        title="deskpilot desktop",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def http_app(server: Server[Any], *, host: str, url: str, token: str | None) -> Starlette:
    """The streamable HTTP app of ``server`` (endpoint :data:`ENDPOINT`).

    Args:
        server: from :func:`build_server`.
        host: the bound address (a loopback one turns on the SDK's DNS-rebinding checks).
        url: the server's base URL (``http://host:port``), named as the token's issuer.
        token: the bearer token every request must carry, or None.
    """
    security = _rebinding_checks(host)
    if token is None:
        return server.streamable_http_app(
            streamable_http_path=ENDPOINT, host=host, transport_security=security
        )
    auth = AuthSettings(issuer_url=AnyHttpUrl(url), resource_server_url=None)
    return server.streamable_http_app(
        streamable_http_path=ENDPOINT,
        host=host,
        transport_security=security,
        auth=auth,
        token_verifier=StaticTokenVerifier(token),
    )


def _rebinding_checks(host: str) -> TransportSecuritySettings | None:
    """The SDK's ``Host``/``Origin`` checks for a loopback bind (any loopback address, not
    only the three the SDK turns them on for: a page that rebinds its name to
    ``127.0.0.2`` would otherwise reach an unchecked server), None for other binds (their
    clients use any name for the host; the token guards them)."""
    if not is_loopback(host):
        return None
    names = {"127.0.0.1", "localhost", "[::1]"}
    names.add(f"[{host.strip('[]')}]" if ":" in host else host)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=sorted(f"{n}:*" for n in names),
        allowed_origins=sorted(f"http://{n}:*" for n in names),
    )


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: :func:`serve` owns the signals and closes the
    desktop after the server stopped (uvicorn would re-raise the signal once stopped, which
    ends the process before that)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc


async def serve(
    *,
    transport: Transport,
    width: int,
    height: int,
    apps: Sequence[str] = (),
    read_only: bool = False,
    host: str = DEFAULT_HOST,
    port: int = 8765,
    token: str | None = None,
    echo: Callable[[str], Any],
    computer_url: str | None = None,
) -> int:
    """Start a desktop, serve it over ``transport`` until the client leaves or a signal.

    Args:
        transport: ``"stdio"`` or ``"http"``.
        width / height: the desktop's size in native pixels.
        apps: apps to open at start.
        read_only: list only the read tools (:class:`DesktopTools`).
        host / port: where HTTP listens (port 0: a free one; the URL is echoed).
        token: the bearer token HTTP requires (checked by :func:`check_http_options`).
        echo: writes one line for the user (to stderr: stdout may be the stdio transport).
        computer_url: serve the desktop of this computer server (``deskpilot serve``)
            instead of starting one (width, height and apps are then the server's).

    Returns:
        The exit status: 0 when the client ended the session (stdio) or the server stopped,
        128 + the signal number when a signal stopped it.

    Raises:
        ConfigError: a non-loopback HTTP bind without a token, or the port cannot be bound.
        MissingDependencyError / DesktopError: the desktop could not start.
    """
    sock: socket.socket | None = None
    if transport == "http":
        token = check_http_options(host, token)
        sock = _bind(host, port)  # before the desktop starts: a busy port fails fast
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        stop.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        async with desktop_tools(
            width, height, apps=apps, read_only=read_only, computer_url=computer_url
        ) as (tools, dt):
            server = build_server(tools)
            w, h = tools.computer.model_size
            echo(
                f"deskpilot mcp: desktop DISPLAY={dt.display} ({width}x{height}, screenshots "
                f"{w}x{h}); tools: {', '.join(tools.names())}."
            )
            userver: _Uvicorn | None = None
            if sock is None:
                serving = asyncio.create_task(_serve_stdio(server))
                echo("deskpilot mcp: serving over stdio (ends when the client closes stdin).")
            else:
                bound_host, bound_port = sock.getsockname()[:2]
                shown = f"[{bound_host}]" if ":" in bound_host else bound_host
                url = f"http://{shown}:{bound_port}"
                app = http_app(server, host=host, url=url, token=token)
                config = uvicorn.Config(
                    app,
                    log_level="warning",
                    access_log=False,
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                    lifespan="on",
                )
                userver = _Uvicorn(config)
                serving = asyncio.create_task(userver.serve(sockets=[sock]))
                need = "; requests need Authorization: Bearer <token>" if token else ""
                echo(f"deskpilot mcp: serving streamable HTTP on {url}{ENDPOINT}{need}.")
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not received:
                serving.result()  # the client left (or the transport failed: raise it)
            elif userver is not None:
                userver.should_exit = True
                await serving
            echo("deskpilot mcp: closing the desktop.")
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        if sock is not None:
            sock.close()
    if not received:
        return 0
    code = 128 + received[0]
    echo(f"deskpilot mcp: stopped by {signal.Signals(received[0]).name}.")
    if transport == "stdio":  # the stdin reader thread cannot be interrupted: see the docstring
        sys.stderr.flush()
        os._exit(code)
    return code


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
