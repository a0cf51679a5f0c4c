"""Remote desktops: :class:`RemoteDesktop`, the computer-server protocol and its executors.

* :mod:`deskpilot.remote.protocol`: the typed messages of ``deskpilot serve``
  (``docs/computer-server.md``);
* :mod:`deskpilot.remote.client`: :class:`RemoteDesktop` (Computer + DesktopHost over a
  WebSocket, reconnecting without running an action twice);
* :mod:`deskpilot.remote.executors`: the computer, bash and editor executors that send each
  tool call to the server whole;
* :mod:`deskpilot.remote.option`: ``--computer URL`` for the commands (click only).

Names are imported on first use, so the command line's ``--help`` does not load aiohttp.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RemoteDesktop", "RemoteError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("deskpilot.remote.client"), name)
    raise AttributeError(f"module 'deskpilot.remote' has no attribute {name!r}")
