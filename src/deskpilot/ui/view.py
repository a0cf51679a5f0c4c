"""The live view of a run's desktop (``/vnc``, ``/websockify``): the hook of the web app.

:func:`add_view_routes` gives every run a :class:`~deskpilot.ui.vnc.VncServer` (a supervised
x11vnc) from the moment its desktop is up (status ``running``) until the run is over (``done``
/ ``failed``) or the app shuts down, and adds the routes of :mod:`deskpilot.ui.bridge`
behind the app's token middleware (:mod:`deskpilot.ui.auth`, which also checks a WebSocket's
``Origin``). The bridge passes the browser's keyboard and mouse to the desktop only while a
human holds the run's takeover lease (``run.control.held``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .bridge import add_live_view
from .vnc import VncServer

if TYPE_CHECKING:
    from aiohttp import web

    from .runs import RunManager, UIRun

__all__ = ["add_view_routes"]

log = logging.getLogger(__name__)


class _RunView:
    """One run's live view: its VNC server and its takeover lease."""

    def __init__(self, run: UIRun) -> None:
        self.run = run
        self.vnc: VncServer | None = None
        self.task: asyncio.Task[None] | None = None

    def input_allowed(self) -> bool:
        return self.run.control.held

    def start(self) -> None:
        desktop = self.run.desktop
        if self.vnc is not None or desktop is None:
            return
        vnc = self.vnc = VncServer(desktop)

        async def start() -> None:
            try:
                await vnc.start()
            except Exception as exc:  # the run goes on without a live view
                log.warning("The live view of run %s is off: %s", self.run.id, exc)

        self.task = asyncio.create_task(start(), name=f"live view {self.run.id}")

    async def stop(self) -> None:
        task, vnc = self.task, self.vnc
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if vnc is not None:
            await vnc.stop()


def add_view_routes(app: web.Application, manager: RunManager) -> None:
    """Add the live view's routes (``/vnc``, ``/websockify``, ``/novnc/...``) to ``app`` and
    run an x11vnc for each running run's desktop.

    Args:
        app: the web app (token middleware already installed).
        manager: the run manager (``manager.get(run_id)``, ``manager.status_listeners``).
    """
    views: dict[str, _RunView] = {}
    stopping: set[asyncio.Task[None]] = set()

    def on_status(run: UIRun, status: str) -> None:
        if status == "running":
            views.setdefault(run.id, _RunView(run)).start()
        elif status in ("done", "failed") and run.id in views:
            task = asyncio.ensure_future(views.pop(run.id).stop())
            stopping.add(task)
            task.add_done_callback(stopping.discard)

    def lookup(run_id: str) -> _RunView | None:
        return views.get(run_id)

    async def stop_all(app: web.Application) -> None:
        pending = [view.stop() for view in views.values()]
        views.clear()
        await asyncio.gather(*pending, *stopping, return_exceptions=True)

    manager.status_listeners.append(on_status)
    app.on_cleanup.append(stop_all)
    add_live_view(app, lookup)
