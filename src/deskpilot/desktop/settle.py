"""Screen-settle detection: wait for the first change after an action, then for quiet.

Strategy measured on Xvfb (``docs/desktop-backend.md``, "Settling": it returned after
0.22-0.63 s for typing, clicks, page loads and scrolls, where the reference implementation
sleeps a fixed 2.0 s):

1. Before an input action, :meth:`Settler.mark` grabs a baseline frame (about 1-2 ms).
2. :meth:`Settler.wait` polls the screen every ``poll_s``. Raw frames are compared byte for
   byte first; changed pixels are counted (numpy) only when they differ.
3. It waits for the first change of more than ``min_changed_px`` pixels, at most
   ``first_change_s`` after the action (a static screen returns then), then for ``quiet_s``
   with no change larger than ``min_changed_px`` (blinking carets change about 20 px, so they
   are ignored), with a hard cap ``cap_s``.

No detector can know when slow work (a network load, ``sleep 5``) finishes; the agent sees
the screenshot and can wait again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from deskpilot.desktop.damage import Box, DamageWatch, hub, union
from deskpilot.errors import ConfigError

if TYPE_CHECKING:
    from deskpilot.desktop.capture import ScreenCapture

__all__ = ["DamageSettler", "SettleConfig", "Settler", "changed_pixels", "make_settler"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class SettleConfig:
    """Timing of the settle detector (all seconds; pixels counted in native space).

    Attributes:
        poll_s: pause between two grabs.
        min_changed_px: a frame counts as changed only if more pixels than this differ.
        first_change_s: how long after an action to wait for the first change before
            deciding the screen is static (clicks, keys, scrolls, typing).
        move_first_change_s: the same for pointer moves (hover effects are fast or absent).
        quiet_s: after a change, return once the screen has been quiet this long.
        cap_s: never wait longer than this in one call.
    """

    poll_s: float = 0.012
    min_changed_px: int = 50
    first_change_s: float = 0.2
    move_first_change_s: float = 0.1
    quiet_s: float = 0.15
    cap_s: float = 2.5

    def __post_init__(self) -> None:
        for name in ("poll_s", "first_change_s", "move_first_change_s", "quiet_s", "cap_s"):
            value = getattr(self, name)
            if not 0 <= value <= 60:
                raise ConfigError(
                    f"SettleConfig.{name} must be between 0 and 60 seconds, not {value}."
                )
        if self.min_changed_px < 0:
            raise ConfigError("SettleConfig.min_changed_px must be 0 or more.")


def changed_pixels(a: bytes, b: bytes) -> int:
    """Number of 4-byte pixels that differ between two raw frames of the same size."""
    if a == b:
        return 0
    if len(a) != len(b):
        return max(len(a), len(b)) // 4
    va = np.frombuffer(a, dtype=np.uint32)
    vb = np.frombuffer(b, dtype=np.uint32)
    return int(np.count_nonzero(va != vb))


class Settler:
    """Tracks the frame before the last action and waits for the screen to settle.

    Args:
        grab_raw: returns the current frame as raw bytes (same length every call); used by
            :meth:`mark`, which callers run where the capture lives (the X backend: its X
            thread).
        config: detector timing.
        clock: monotonic clock in seconds (tests may pass a fake).
        grab_async: awaitable grab used by :meth:`wait` (the X backend runs the capture in its
            X thread with a timeout); default: ``grab_raw`` called inline.
    """

    def __init__(
        self,
        grab_raw: Callable[[], bytes],
        config: SettleConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        grab_async: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self._grab = grab_raw
        self._grab_async = grab_async
        self.config = config or SettleConfig()
        self._clock = clock
        self._baseline: bytes | None = None
        self._marked_at = 0.0
        self._first_change_s = self.config.first_change_s

    @property
    def pending(self) -> bool:
        """True when an action was marked and not waited for yet."""
        return self._baseline is not None

    def mark(self, *, first_change_s: float | None = None) -> None:
        """Record the frame before an action (kept if an earlier action is still pending)."""
        fc = self.config.first_change_s if first_change_s is None else first_change_s
        if self._baseline is None:
            self._baseline = self._grab()
            self._marked_at = self._clock()
            self._first_change_s = fc
        else:
            self._first_change_s = max(self._first_change_s, fc)

    def discard(self) -> None:
        """Forget a pending action (e.g. after the display was restarted)."""
        self._baseline = None

    async def wait(self, *, timeout_s: float | None = None) -> float:
        """Wait until the screen settles; returns the seconds spent in this call.

        With a pending action: wait for its first change (until ``first_change_s`` after the
        action), then for ``quiet_s`` of quiet. Without one: just wait for ``quiet_s`` of quiet.
        Never longer than ``timeout_s`` (default ``config.cap_s``).
        """
        cfg = self.config
        cap = cfg.cap_s if timeout_s is None else max(0.0, timeout_s)
        start = self._clock()
        baseline, self._baseline = self._baseline, None
        threshold = cfg.min_changed_px
        try:
            if baseline is not None:
                deadline = self._marked_at + self._first_change_s
                while True:
                    frame = await self._frame()
                    if changed_pixels(frame, baseline) > threshold:
                        last = frame
                        break
                    now = self._clock()
                    if now >= deadline or now - start >= cap:
                        return now - start
                    await asyncio.sleep(cfg.poll_s)
            else:
                last = await self._frame()
            last_change = self._clock()
            while True:
                await asyncio.sleep(cfg.poll_s)
                frame = await self._frame()
                now = self._clock()
                if changed_pixels(frame, last) > threshold:
                    last_change = now
                    last = frame
                if now - last_change >= cfg.quiet_s or now - start >= cap:
                    return now - start
        finally:
            self._baseline = None

    async def _frame(self) -> bytes:
        if self._grab_async is not None:
            return await self._grab_async()
        return self._grab()


class DamageSettler:
    """The settle detector driven by X DAMAGE notifications instead of polling frames.

    Same contract and timing as :class:`Settler` (first change of more than
    ``min_changed_px`` pixels within ``first_change_s`` of the action, then ``quiet_s``
    without one, at most ``cap_s``), but nothing is grabbed while the screen does not
    change: :class:`~deskpilot.desktop.damage.DamageWatch` reports the box the X server
    drew, and only that box is grabbed and compared with the last frame (a preallocated
    buffer, :attr:`ScreenCapture.frame <deskpilot.desktop.capture.ScreenCapture.frame>`).
    While the screen keeps changing, a box is checked at most every ``poll_s``.

    The whole wait is one job in the display's X thread (:meth:`wait_blocking`), which
    sleeps on the watch's notifications and grabs each box itself: the event loop is woken
    once per wait, not once per notification, grab and poll (each wake-up costs the
    process 0.1-0.3 ms of CPU on a small VM; issue 8).

    The frame is kept equal to the screen box by box: before an action (:meth:`mark`) the
    boxes drawn since the last check are grabbed into it (screenshots do not touch it).
    Pixel counts are exact, as in :class:`Settler`; damage only says where to look.

    Args:
        watch: the display's :class:`~deskpilot.desktop.damage.DamageWatch` (added to the hub).
        sync_region: ``sync_region(box, threshold) -> changed pixels``, called in the thread
            that runs :meth:`wait_blocking`
            (:meth:`ScreenCapture.sync_region <deskpilot.desktop.capture.ScreenCapture.sync_region>`).
        config: detector timing.
        run_blocking: ``run_blocking(fn, cap_s)`` awaits ``fn()`` in the X thread, allowing
            it ``cap_s`` seconds more than one X round trip (``X11Connection._call``).
        clock: monotonic clock in seconds.
    """

    def __init__(
        self,
        watch: DamageWatch,
        sync_region: Callable[[Box, int], int],
        config: SettleConfig | None = None,
        *,
        run_blocking: Callable[[Callable[[], Any], float], Awaitable[Any]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watch = watch
        self._sync = sync_region
        self._run_blocking = run_blocking
        self.config = config or SettleConfig()
        self._clock = clock
        self._pending = False
        self._marked_at = 0.0
        self._first_change_s = self.config.first_change_s

    @property
    def pending(self) -> bool:
        """True when an action was marked and not waited for yet."""
        return self._pending

    def mark(self, *, first_change_s: float | None = None) -> None:
        """In the X thread, before an action: bring the frame up to date with what was drawn
        since the last check (usually nothing), and note the time."""
        fc = self.config.first_change_s if first_change_s is None else first_change_s
        if self._pending:
            self._first_change_s = max(self._first_change_s, fc)
            return
        box = self.watch.take()
        if box is not None:
            self._sync(box, -1)
        self._pending = True
        self._marked_at = self._clock()
        self._first_change_s = fc

    def discard(self) -> None:
        """Forget a pending action."""
        self._pending = False

    def close(self) -> None:
        """Stop the DAMAGE notifications (closes the watch's connection in the hub)."""
        hub().remove(self.watch)

    async def wait(self, *, timeout_s: float | None = None) -> float:
        """Wait until the screen settles; returns the seconds spent waiting (see
        :meth:`Settler.wait`). Cancelling it ends the job in the X thread within
        ``poll_s``."""
        waited, _ = await self.wait_then(None, timeout_s=timeout_s)
        return waited

    async def wait_then(
        self, then: Callable[[], T] | None, *, timeout_s: float | None = None
    ) -> tuple[float, T | None]:
        """:meth:`wait`, then ``then()`` in the same X-thread job (a screenshot: the event
        loop is woken once for both); returns (seconds waited, what ``then`` returned)."""
        cap = self.config.cap_s if timeout_s is None else max(0.0, timeout_s)
        cancel = threading.Event()
        try:
            return await self._run_blocking(lambda: self.settle_then(then, cap, cancel), cap)
        except BaseException:
            cancel.set()
            self.watch.wake()
            raise

    def settle_then(
        self, then: Callable[[], T] | None, cap_s: float, cancel: threading.Event
    ) -> tuple[float, T | None]:
        """In the X thread: :meth:`wait_blocking`, then ``then()`` unless cancelled."""
        waited = self.wait_blocking(cap_s, cancel)
        if cancel.is_set() or then is None:
            return waited, None
        return waited, then()

    def wait_blocking(self, cap_s: float, cancel: threading.Event | None = None) -> float:
        """:meth:`wait` in the calling thread (the X thread): blocks at most ``cap_s``
        seconds, or until ``cancel`` is set; returns the seconds waited."""
        cfg = self.config
        start = self._clock()
        pending, self._pending = self._pending, False
        threshold = cfg.min_changed_px
        stop = cancel or threading.Event()
        acc: Box | None = None
        try:
            if pending:
                deadline = min(self._marked_at + self._first_change_s, start + cap_s)
                while True:
                    box = self._next_box(deadline, stop)
                    if box is None:
                        return self._clock() - start
                    acc = union(acc, box)
                    if self._sync(acc, threshold) > threshold:
                        acc = None
                        break
                    if stop.wait(cfg.poll_s):
                        return self._clock() - start
            else:
                box = self.watch.take()
                if box is not None:
                    self._sync(box, -1)
            last_change = self._clock()
            while True:
                deadline = min(last_change + cfg.quiet_s, start + cap_s)
                box = self._next_box(deadline, stop)
                if box is None:
                    return self._clock() - start
                acc = union(acc, box)
                if self._sync(acc, threshold) > threshold:
                    acc = None
                    last_change = self._clock()
                if stop.wait(cfg.poll_s):
                    return self._clock() - start
        finally:
            if acc is not None:  # small changes not copied into the frame: check them later
                self.watch.add(acc)

    def _next_box(self, deadline: float, stop: threading.Event) -> Box | None:
        """The next box drawn, or None once ``deadline`` passed without one (or on stop)."""
        while True:
            self.watch.unwake()
            box = self.watch.take()
            if box is not None:
                return box
            remaining = deadline - self._clock()
            if remaining <= 0 or not self.watch.alive or stop.is_set():
                return None
            self.watch.wait_drawn(remaining)


def make_settler(
    capture: ScreenCapture,
    config: SettleConfig,
    call: Callable[..., Awaitable[Any]],
    *,
    xauthority: str | None = None,
) -> Settler | DamageSettler:
    """In the X thread: the display's settle detector, a :class:`DamageSettler` where the X
    server has the DAMAGE extension (Xvfb, Xorg, Xvnc), else a polling :class:`Settler`.

    Args:
        capture: the display's capture (its frame is the settler's reference).
        config: detector timing.
        call: ``call(what, fn, *args, extra_s=0.0)`` awaits ``fn(*args)`` in the X thread
            with the backend's response timeout plus ``extra_s`` (``X11Connection._call``).
        xauthority: the display's Xauthority file, or None.
    """
    watch = DamageWatch(capture.display, xauthority=xauthority)
    try:
        has_damage = watch.open()
    except Exception as exc:  # a second connection refused: poll frames instead
        log.info("no DAMAGE notifications on %s (%s); polling frames", capture.display, exc)
        has_damage = False
    if has_damage:
        hub().add(watch)
        capture.grab_frame()  # the reference frame, before any action

        async def run_blocking(fn: Callable[[], Any], cap_s: float) -> Any:
            return await call("capture the screen", fn, extra_s=cap_s)

        return DamageSettler(watch, capture.sync_region, config, run_blocking=run_blocking)

    def grab() -> bytes:
        return capture.grab_raw()[0]

    async def grab_async() -> bytes:
        return bytes(await call("capture the screen", grab))

    return Settler(grab, config, grab_async=grab_async)
