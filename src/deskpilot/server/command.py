"""The ``deskpilot serve`` command (click) and :func:`run_server`, which it runs.

This module imports only click at load time (``deskpilot --help`` stays fast); the desktop,
aiohttp and the executors are imported when the command runs. Options read the environment
like every deskpilot command: ``DESKPILOT_WIDTH``/``HEIGHT``/``APPS`` and
``DESKPILOT_SERVER_TOKEN`` (the token; prefer it to ``--token``, which other users can see
in the process list).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from ..click_options import screen_size_options
from ..errors import ConfigError
from ..remote.option import DEFAULT_PORT, TOKEN_ENV

if TYPE_CHECKING:
    from ..desktop.display import X11Display

__all__ = ["check_bind", "run_server", "serve"]

STOP_SIGNALS = (2, 15)  # SIGINT, SIGTERM

SHUTDOWN_TIMEOUT_S = 5.0
"""Seconds a stopping server gives requests in progress before it cancels them."""

IDLE_TIMEOUT_S = 15.0
"""Seconds an HTTP connection may sit without a whole request (idle, or a client sending its
headers a byte at a time) before the server closes it; aiohttp's default is an hour, which
lets a slow client hold sockets open at no cost. WebSockets are kept alive by heartbeats."""


def check_bind(host: str, token: str | None) -> str | None:
    """The token to demand (None: none), or refuse a non-loopback ``host`` without one.

    Raises:
        ConfigError: ``host`` is not a loopback address and ``token`` is empty.
    """
    from .app import is_loopback

    token = token or None
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"deskpilot serve on {host} (not a loopback address) needs a token: set "
            f"{TOKEN_ENV} (or pass --token) to a long random secret, e.g. "
            "`openssl rand -hex 32`; clients send it as Authorization: Bearer <token>."
        )
    return token


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc


async def run_server(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    width: int = 1280,
    height: int = 800,
    display: str | None = None,
    apps: Sequence[str] = ("terminal",),
    token: str | None = None,
    max_message_bytes: int | None = None,
    echo: Callable[[str], Any] = print,
    stop: asyncio.Event | None = None,
) -> int:
    """Start a desktop and serve it until a signal (or ``stop`` is set).

    Args:
        host / port: where to listen (port 0: a free one; the URL is echoed as
            ``deskpilot serve: listening on ws://HOST:PORT/v1/ws``).
        width / height: the LocalDesktop's size in native pixels (ignored with ``display``).
        display: drive this existing X display (``X11Display``) instead of starting one.
        apps: apps the LocalDesktop opens at start.
        token: the bearer token clients must send; required unless ``host`` is loopback.
        max_message_bytes: the largest request accepted (default
            :data:`~deskpilot.remote.protocol.MAX_MESSAGE_BYTES`).
        echo: writes one line for the user.
        stop: an event that stops the server when set (tests); signals always do.

    Returns:
        0 when stopped by ``stop``, 128 + the signal number when a signal stopped it.

    Raises:
        ConfigError: a non-loopback bind without a token, or the port cannot be bound.
        MissingDependencyError / DesktopError: the desktop could not start.
    """
    from aiohttp import web

    from ..remote.protocol import MAX_MESSAGE_BYTES
    from .app import is_loopback, make_app
    from .service import DesktopService

    token = check_bind(host, token)
    max_message_bytes = max_message_bytes or MAX_MESSAGE_BYTES
    sock = _bind(host, port)  # before the desktop starts: a busy port fails fast
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        stop.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        desktop: X11Display
        if display:
            from ..desktop.display import X11Display

            desktop = X11Display(display)
        else:
            from ..desktop.local import LocalDesktop

            desktop = LocalDesktop(width=width, height=height, apps=tuple(apps))
        async with desktop:
            service = DesktopService(desktop, max_message_bytes=max_message_bytes)
            app = make_app(
                service,
                token=token,
                loopback=is_loopback(host),
                max_message_bytes=max_message_bytes,
            )
            runner = web.AppRunner(
                app,
                handle_signals=False,
                access_log=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                keepalive_timeout=IDLE_TIMEOUT_S,
            )
            await runner.setup()
            try:
                await web.SockSite(runner, sock).start()
                bound = sock.getsockname()
                shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                size = desktop.size
                echo(
                    f"deskpilot serve: listening on ws://{shown}:{bound[1]}/v1/ws "
                    f"(desktop {getattr(desktop, 'display', '')} {size[0]}x{size[1]}"
                    f"{', token required' if token else ''})"
                )
                await stop.wait()
            finally:
                await runner.cleanup()
                await service.aclose()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        sock.close()
    return 128 + received[0] if received else 0


@click.command(short_help="Serve a desktop's tools to RemoteDesktop clients (WebSocket, HTTP).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to bind. Anything but a loopback address needs a token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="The port (0: a free one; the URL is printed on stderr).",
)
@click.option(
    "--token",
    default=None,
    envvar=TOKEN_ENV,
    show_envvar=True,
    help="A bearer token every request must carry (Authorization: Bearer ...); "
    "required when --host is not loopback. Prefer the environment variable: a "
    "command line is visible to other users.",
)
@screen_size_options()
@click.option(
    "--display",
    default=None,
    help="Drive this existing X display (e.g. :1) instead of starting a desktop "
    "(no reset, files or commands then).",
)
@click.option(
    "--apps",
    default="terminal",
    show_default=True,
    envvar="DESKPILOT_APPS",
    show_envvar=True,
    help="Apps to open at start, comma-separated: terminal, editor, browser (empty for none).",
)
def serve(
    host: str, port: int, token: str | None, width: int, height: int, display: str | None, apps: str
) -> None:
    """Serve one desktop to RemoteDesktop clients: the computer tool (every version), bash,
    the editor, screenshots, files, commands, health and reset.

    \b
    deskpilot serve                                  ws://127.0.0.1:8766/v1/ws
    DESKPILOT_SERVER_TOKEN=... deskpilot serve --host 0.0.0.0
    deskpilot run --computer ws://HOST:8766 "task"   (the agent on that desktop)

    Messages go to stderr. Stops on Ctrl-C / SIGTERM. See docs/computer-server.md.
    """
    from ..desktop.apps import app_spec

    app_list = tuple(a.strip() for a in apps.split(",") if a.strip())
    for name in app_list:
        app_spec(name)
    check_bind(host, token)  # a refused bind starts no desktop

    def echo(line: str) -> None:
        click.echo(line, err=True)

    sys.exit(
        asyncio.run(
            run_server(
                host=host,
                port=port,
                width=width,
                height=height,
                display=display,
                apps=app_list,
                token=token,
                echo=echo,
            )
        )
    )
