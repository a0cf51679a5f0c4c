"""A bound on how many desktops of this process start at the same time.

Starting a desktop (Xvfb, the window manager, the apps, each waited for) is CPU work for the
machine; 128 started together took 22 s each (p50) on 2 cores, because every start competes
with every other one and with the desktops already running. :func:`starting` lets
:data:`MAX_STARTING` starts run at once (per event loop) and queues the rest in arrival order
(``asyncio.Semaphore`` is FIFO), so each start takes about as long as a lone one and the first
desktops are ready early. A light ``LocalDesktop.reset()`` (the X server kept, the apps
started again) holds a slot too.

A :class:`~deskpilot.pool.DesktopPool` has its own bound, ``max_starting``: per pool, for any
kind of desktop (a remote one's start costs this machine nothing) and for resets too. A pool's
``LocalDesktop`` holds a pool slot, then one of these; the two stay separate because neither
can stand in for the other without changing what is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator

__all__ = ["MAX_STARTING", "starting"]

MAX_STARTING = 2 * max(1, os.cpu_count() or 1)
"""Desktops that may start at once in one event loop (twice the number of cores)."""

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def starting() -> AsyncIterator[None]:
    """Hold one of the running loop's start slots for the body (waits, first come first
    served, while :data:`MAX_STARTING` starts are under way)."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(MAX_STARTING)
    async with slots:
        yield
