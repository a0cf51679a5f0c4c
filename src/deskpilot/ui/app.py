"""The ``deskpilot ui`` web app: the aiohttp application, its route table, the page, serving.

Route table (``docs/ui.md``; every route behind the token, :mod:`deskpilot.ui.auth`):

============================================  ================================================
``GET /``                                      the page (``ui/static/index.html``)
``GET /static/{path}``                         the page's files (``ui/static/``)
``GET/POST /api/...``                          the API (:mod:`deskpilot.ui.api`)
``GET /runs/{id}/{path}``                      a run's report and screenshots
``/vnc``, ``/websockify``, ...                 the live view (:func:`deskpilot.ui.view.add_view_routes`)
============================================  ================================================

:func:`create_app` builds the application around a :class:`~deskpilot.ui.runs.RunManager`;
the live view's routes are added by :func:`deskpilot.ui.view.add_view_routes` (its one hook:
it receives the app and the manager; ``manager.get(id).desktop`` is a run's desktop and
``manager.get(id).control`` its takeover lease). :func:`serve` runs it until a stop signal
and shuts every run down validly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..agent.records import safe_relative_path
from .api import MANAGER_KEY, add_api_routes
from .auth import TOKEN_KEY, new_token, token_middleware
from .bridge import CSP
from .runs import RunManager
from .view import add_view_routes

log = logging.getLogger("deskpilot.ui")

__all__ = ["STATIC_DIR", "create_app", "serve", "start_site"]

STATIC_DIR = Path(__file__).parent / "static"
"""The page's files: ``index.html`` and what it loads (owned by the page's authors)."""

PAGE_CSP = CSP
"""The Content-Security-Policy of the page: its own files only, no inline script."""

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_TYPES |= {".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json"}
_TYPES |= {".ico": "image/x-icon", ".woff2": "font/woff2", ".map": "application/json"}

_FALLBACK_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>deskpilot ui</title>
</head><body><h1>deskpilot ui</h1><p>The page's files are missing from this install
(deskpilot/ui/static/index.html); the API works: see docs/ui.md.</p></body></html>
"""


def _static_file(rel: str) -> Path | None:
    try:
        safe_relative_path(rel)
    except ValueError:
        return None
    base = STATIC_DIR.resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base) or not path.is_file() or path.suffix not in _TYPES:
        return None
    return path


def _headers(path: Path) -> dict[str, str]:
    headers = {
        "Content-Type": _TYPES[path.suffix],
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    if path.suffix == ".html":
        headers["Content-Security-Policy"] = PAGE_CSP
        headers["X-Frame-Options"] = "DENY"
    return headers


async def index(request: web.Request) -> web.StreamResponse:
    path = _static_file("index.html")
    if path is None:
        headers = {"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"}
        return web.Response(text=_FALLBACK_PAGE, content_type="text/html", headers=headers)
    return web.FileResponse(path, headers=_headers(path))


async def static(request: web.Request) -> web.StreamResponse:
    path = _static_file(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(text="No such file.\n")
    return web.FileResponse(path, headers=_headers(path))


async def _shutdown_runs(app: web.Application) -> None:
    await app[MANAGER_KEY].shutdown()


def create_app(manager: RunManager, *, token: str | None = None) -> web.Application:
    """The web app around ``manager``.

    Args:
        manager: the run manager (its runs, desktops and settings).
        token: the access token (default: a fresh random one, :func:`new_token`); read it
            back as ``app[TOKEN_KEY]``.

    Returns:
        An :class:`aiohttp.web.Application`; its shutdown stops every run
        (:meth:`RunManager.shutdown`).
    """
    app = web.Application(middlewares=[token_middleware], client_max_size=2 * 2**20)
    app[TOKEN_KEY] = token or new_token()
    app[MANAGER_KEY] = manager
    app.router.add_get("/", index)
    app.router.add_get("/static/{path:.+}", static)
    add_api_routes(app)
    add_view_routes(app, manager)
    app.on_shutdown.append(_shutdown_runs)
    return app


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``app`` on ``host:port`` (0: a free port); returns the runner and the
    port bound.

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            bound = int(addr[1])
            break
    return runner, bound


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_ready: Callable[[int], Any] = lambda port: None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM/SIGHUP (or ``stop`` is set), then stop every run
    validly (reports written, desktops closed) and return. A second signal during the
    shutdown cancels the runs at once (their trajectories still end with ``run_end``).

    Args:
        on_ready: called with the bound port once listening (prints the URL).
        stop: an event that ends serving like a signal (tests).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    installed: list[signal.Signals] = []
    hurry = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    runner, bound = await start_site(app, host, port)
    try:
        on_ready(bound)
        await stop.wait()
        manager = app[MANAGER_KEY]
        shutdown = asyncio.ensure_future(manager.shutdown())
        hurried = asyncio.ensure_future(hurry.wait())
        await asyncio.wait({shutdown, hurried}, return_when=asyncio.FIRST_COMPLETED)
        if not shutdown.done():
            log.warning("Second signal: cancelling the runs now.")
            shutdown.cancel()
            await manager.shutdown(grace_s=0.0)
        hurried.cancel()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
