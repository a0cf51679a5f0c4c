"""A settle-and-capture job queued in the X thread right behind an input action's last job.

Under load every return from the X thread to the event loop waits for the loop (at 32
desktops on 2 cores, 15 ms at the median and 60 ms at p95; issue 8). An action that waits
for the screen to settle and then takes a screenshot used to return to the loop twice: after
the input, and after the settle-and-capture job. With a :class:`CapturePrefetch` the backend
queues that job behind the input's last X request before the input's result reaches the loop,
so the X thread goes on at once and only the last result waits for the loop.

The job only runs when the input it follows completed the action (``armed``); otherwise (an
input that had to remap keycodes first, or one that failed) it returns ``None`` at once and
:meth:`CapturePrefetch.result` falls back to a settle-and-capture job of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from deskpilot.desktop.capture import ScreenCapture
    from deskpilot.desktop.settle import DamageSettler

__all__ = ["CapturePrefetch", "arming", "capture_job"]

T = TypeVar("T")


class CapturePrefetch:
    """One action's request for a screenshot after the screen settles (see the module).

    Args:
        timeout_s: the most seconds to wait for the screen to settle.
        fallback: ``fallback(timeout_s) -> (seconds waited, PNG)`` when no job was queued.
        unregister: forget this request in the backend (it is used once, by this action).
    """

    def __init__(
        self,
        timeout_s: float,
        fallback: Callable[[float], Awaitable[tuple[float, bytes]]],
        unregister: Callable[[CapturePrefetch], None],
    ) -> None:
        self.timeout_s = timeout_s
        self.task = asyncio.current_task()
        self.armed = False  # set in the X thread by the input's last job
        self.future: concurrent.futures.Future[Any] | None = None
        self.cancel_event = threading.Event()
        self.cap_s = max(0.0, timeout_s)
        self._fallback = fallback
        self._unregister = unregister
        self._await: Callable[[CapturePrefetch], Awaitable[Any]] | None = None
        self._settler: DamageSettler | None = None

    def attach(
        self,
        future: concurrent.futures.Future[Any],
        await_job: Callable[[CapturePrefetch], Awaitable[Any]],
        settler: DamageSettler,
    ) -> None:
        """Called by the backend when it queued the job (:func:`capture_job`)."""
        self.future, self._await, self._settler = future, await_job, settler

    def cancel(self) -> None:
        """The action failed or was cancelled: end the queued job (if any) at once."""
        self._unregister(self)
        self.cancel_event.set()
        if self._settler is not None:  # the pending action is not waited for any more
            self._settler.discard()
            self._settler.watch.wake()

    async def result(self) -> tuple[float, bytes]:
        """(seconds waited for the screen to settle, the PNG) once the queued job is done,
        or from a job of its own when none was queued or the input did not complete."""
        self._unregister(self)
        if self.future is not None and self._await is not None:
            try:
                done = await self._await(self)
            except BaseException:
                self.cancel()
                raise
            if done is not None and done[1] is not None:
                return float(done[0]), done[1]
        return await self._fallback(self.timeout_s)


def arming(fn: Callable[..., T], done: Callable[[T], bool], p: CapturePrefetch) -> Callable[..., T]:
    """``fn`` that arms ``p`` when its result says the input action is complete."""

    def run(*args: Any) -> T:
        result = fn(*args)
        if done(result):
            p.armed = True
        return result

    return run


def capture_job(
    p: CapturePrefetch, settler: DamageSettler, capture: ScreenCapture
) -> Callable[[], tuple[float, bytes | None] | None]:
    """The X-thread job of ``p``: wait for the screen to settle, then its PNG; None at once
    when the input before it did not complete the action."""

    def job() -> tuple[float, bytes | None] | None:
        if not p.armed or p.cancel_event.is_set():
            return None
        return settler.settle_then(capture.grab_png, p.cap_s, p.cancel_event)

    return job
