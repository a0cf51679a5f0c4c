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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from deskpilot.errors import ConfigError

__all__ = ["SettleConfig", "Settler", "changed_pixels"]


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
