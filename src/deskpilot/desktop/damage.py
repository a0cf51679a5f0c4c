"""Screen-change notifications from the X DAMAGE extension, for every desktop of the process.

Polling a whole 1280x800 frame every 12 ms to see whether the screen changed cost each desktop
~1.5 ms of CPU per poll (issue 8, §6: 28% of the event loop at 8 desktops). The X server
already knows what changed: a DAMAGE object on the root window reports every region drawn.
:class:`DamageWatch` holds one such object on its own X connection (not the backend's: its
events never mix with the backend's replies) and keeps the bounding box of what was drawn
since it was last taken; a waiting thread (the display's X thread, settling) is woken when
something new arrives.

One daemon thread, :class:`DamageHub`, serves the connections of every desktop of the process
with one ``select``: a screen that does not change costs nothing. Each watch uses the
``DeltaRectangles`` level and is reset (``DamageSubtract``) after each batch of events, so a
region drawn again and again before it is taken is reported once.

Everything here runs in the X thread (:meth:`DamageWatch.open`, the settle wait) or the hub
thread; the event loop is never woken from here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import selectors
import threading
from typing import TYPE_CHECKING, Any

from deskpilot.desktop.xauth import authority

if TYPE_CHECKING:
    from Xlib.display import Display

__all__ = ["Box", "DamageHub", "DamageWatch", "hub"]

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
"""A screen region ``(x0, y0, x1, y1)`` in native pixels, ``x1``/``y1`` exclusive."""


def union(a: Box | None, b: Box) -> Box:
    """The smallest box holding ``a`` (None: nothing) and ``b``."""
    if a is None:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


class DamageWatch:
    """What was drawn on one X display since it was last taken.

    Args:
        display: the X display name (``":7"``).
        xauthority: the Xauthority file of the display's cookie, or None (the environment's).

    Call :meth:`open` (in a thread that may block on X: the backend's X thread), then
    :meth:`DamageHub.add`. ``take()``/``clear()`` may be called from any thread.
    """

    def __init__(self, display: str, *, xauthority: str | None = None) -> None:
        self.display_name = display
        self.xauthority = xauthority
        self._lock = threading.Lock()
        self._box: Box | None = None
        self._drawn = threading.Event()
        self._d: Display | None = None
        self._damage = 0
        self._event_type = -1
        self.size = (0, 0)
        self.alive = False

    def open(self) -> bool:
        """Connect and create the DAMAGE object on the root window; False when the server
        has no DAMAGE extension (the caller then polls frames instead). Blocking."""
        from Xlib import display as xdisplay
        from Xlib.ext import damage

        with authority(self.xauthority):
            d = xdisplay.Display(self.display_name)
        try:
            if not d.has_extension(damage.extname):
                d.close()
                return False
            d.damage_query_version()
            screen = d.screen()
            self.size = (screen.width_in_pixels, screen.height_in_pixels)
            self._damage = screen.root.damage_create(damage.DamageReportDeltaRectangles)
            info = d.query_extension(damage.extname)
            self._event_type = info.first_event + damage.DamageNotifyCode
            d.sync()
        except Exception:
            d.close()
            raise
        self._d = d
        self.alive = True
        return True

    def fileno(self) -> int:
        assert self._d is not None
        return self._d.fileno()

    # ------------------------------------------------------------------ any thread
    def take(self) -> Box | None:
        """The box drawn since the last ``take``/``clear`` (None: nothing), and forget it."""
        with self._lock:
            box, self._box = self._box, None
            return box

    def peek(self) -> Box | None:
        """The box drawn since the last ``take``/``clear``, kept."""
        with self._lock:
            return self._box

    def clear(self) -> None:
        """Forget what was drawn so far (before a full grab of the screen)."""
        with self._lock:
            self._box = None

    def add(self, box: Box) -> None:
        """Record a drawn box and wake the waiting thread (also used by tests)."""
        with self._lock:
            self._box = union(self._box, box)
        self._drawn.set()

    def wait_drawn(self, timeout_s: float) -> bool:
        """Block until something is drawn (or :meth:`wake`) since :meth:`unwake`, at most
        ``timeout_s`` seconds; True when woken."""
        return self._drawn.wait(timeout_s)

    def unwake(self) -> None:
        """Forget earlier wake-ups (call before :meth:`take`, then :meth:`wait_drawn`)."""
        self._drawn.clear()

    def wake(self) -> None:
        """Wake the waiting thread now (a cancelled wait; the connection closed)."""
        self._drawn.set()

    # ------------------------------------------------------------------ hub thread
    def drain(self) -> None:
        """In the hub thread: read the queued events, record their boxes, reset the damage."""
        d = self._d
        if d is None:
            return
        box: Box | None = None
        w, h = self.size
        while d.pending_events():
            ev = d.next_event()
            if ev.type == self._event_type:
                a = ev.area
                x0, y0 = max(0, a.x), max(0, a.y)
                x1, y1 = min(w, a.x + a.width), min(h, a.y + a.height)
                if x1 > x0 and y1 > y0:
                    box = union(box, (x0, y0, x1, y1))
        if box is not None:
            d.damage_subtract(self._damage)
            d.flush()
            self.add(box)

    def close_connection(self) -> None:
        """In the hub thread (or before it was added): close the connection."""
        d, self._d = self._d, None
        self.alive = False
        if d is not None:
            with contextlib.suppress(Exception):
                d.close()
        self.wake()


class DamageHub:
    """One daemon thread reading the DAMAGE connections of every desktop (``select``)."""

    def __init__(self) -> None:
        self._ops: queue.SimpleQueue[tuple[str, DamageWatch]] = queue.SimpleQueue()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._thread = threading.Thread(target=self._loop, name="deskpilot-damage", daemon=True)
        self._thread.start()

    def add(self, watch: DamageWatch) -> None:
        """Start reading ``watch``'s connection (opened)."""
        self._post("add", watch)

    def remove(self, watch: DamageWatch) -> None:
        """Stop reading ``watch`` and close its connection (returns at once)."""
        self._post("remove", watch)

    def _post(self, op: str, watch: DamageWatch) -> None:
        self._ops.put((op, watch))
        with contextlib.suppress(BlockingIOError):
            os.write(self._wfd, b"x")

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._rfd, selectors.EVENT_READ, None)
        while True:
            for key, _ in sel.select():
                watch: Any = key.data
                if watch is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._rfd, 4096)
                    self._apply_ops(sel)
                    continue
                try:
                    watch.drain()
                except Exception as exc:  # the X server went away: stop watching it
                    log.debug("damage watch of %s ended: %s", watch.display_name, exc)
                    with contextlib.suppress(KeyError, ValueError):
                        sel.unregister(key.fd)
                    watch.close_connection()

    def _apply_ops(self, sel: selectors.BaseSelector) -> None:
        while True:
            try:
                op, watch = self._ops.get_nowait()
            except queue.Empty:
                return
            if op == "add":
                try:
                    sel.register(watch.fileno(), selectors.EVENT_READ, watch)
                except (AssertionError, ValueError, KeyError, OSError):
                    watch.close_connection()
                    continue
                with contextlib.suppress(Exception):  # events that arrived before
                    watch.drain()
            else:
                with contextlib.suppress(Exception):
                    sel.unregister(watch.fileno())
                watch.close_connection()


_hub: DamageHub | None = None
_hub_pid = 0
_hub_lock = threading.Lock()


def hub() -> DamageHub:
    """The process's :class:`DamageHub` (started on first use, and again in a forked child,
    which does not inherit the thread)."""
    global _hub, _hub_pid
    with _hub_lock:
        if _hub is None or _hub_pid != os.getpid():
            _hub, _hub_pid = DamageHub(), os.getpid()
        return _hub
