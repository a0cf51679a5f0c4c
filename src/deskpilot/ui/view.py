"""The live view of a run's desktop (``/vnc``, ``/websockify``): the hook of the web app.

Owned by the live view's authors (x11vnc supervisor ``ui/vnc.py``, WebSocket bridge
``ui/bridge.py``). The app calls :func:`add_view_routes` once, after its own routes; every
route added here is behind the app's token middleware (:mod:`deskpilot.ui.auth`; a WebSocket
handler should also call :func:`deskpilot.ui.auth.check_origin` if it accepts requests the
middleware lets through without an ``Origin``). A run's desktop is ``manager.get(id).desktop``
(None before it starts and after it ends), its takeover lease ``manager.get(id).control``
(``held``, ``requested``; ``listeners`` are called with ``"requested"``, ``"held"``,
``"ended"``: switch the view between view-only and full control there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from .runs import RunManager

__all__ = ["add_view_routes"]


def add_view_routes(app: web.Application, manager: RunManager) -> None:
    """Add the live view's routes (``/vnc``, ``/websockify``) to ``app``.

    Args:
        app: the web app (token middleware already installed).
        manager: the run manager (``manager.runs``, ``manager.get(run_id)``).
    """
    # The live view lands separately (ui/vnc.py, ui/bridge.py); until then there is none.
    return None
