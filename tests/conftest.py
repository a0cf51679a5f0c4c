"""Shared fixtures for desktop tests: a real Xvfb desktop and an event-logging window.

* ``desktop``: a started ``LocalDesktop(width=1280, height=800)`` (openbox, no apps), closed
  after the test. Start takes about 0.3 s.
* ``event_window``: an async factory ``await event_window(x=100, y=100, width=400,
  height=300, colour=0x20C040)`` that opens an :class:`EventWindow` on the ``desktop`` with
  the input focus; the window logs every button/motion/key event it receives (see
  ``tests/event_window.py``). Closed after the test.

Tests that need them are marked ``@pytest.mark.desktop``; they are skipped with a reason when
Xvfb or openbox is missing (install with ``bash scripts/install-desktop-deps.sh``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from event_window import EventWindow

HAVE_XVFB = shutil.which("Xvfb") is not None and shutil.which("openbox") is not None
SKIP_REASON = "Xvfb/openbox not installed; run: bash scripts/install-desktop-deps.sh"


def pytest_collection_modifyitems(config, items):
    if HAVE_XVFB:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "desktop" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
async def desktop():
    """A started LocalDesktop(1280x800, openbox) for one test."""
    if not HAVE_XVFB:
        pytest.skip(SKIP_REASON)
    from deskpilot.desktop.local import LocalDesktop

    async with LocalDesktop(width=1280, height=800) as d:
        yield d


@pytest.fixture
async def event_window(desktop):
    """Factory: ``await event_window(x=..., y=..., width=..., height=..., colour=...)``."""
    opened: list[EventWindow] = []

    async def make(
        x: int = 100, y: int = 100, width: int = 400, height: int = 300, colour: int = 0x20C040
    ) -> EventWindow:
        win = EventWindow(desktop.display, x, y, width, height, colour, desktop.xauthority)
        opened.append(win)
        await win.start()
        return win

    yield make
    for win in opened:
        await win.close()
