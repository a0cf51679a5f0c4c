"""One worker thread per X display: every X request and capture runs there, never on the loop.

An X server that stops answering (SIGSTOPped, swapped out, wedged) blocks whatever waits for
its reply. Run inline on the event loop, that froze every task of the process and no
``asyncio.wait_for`` could fire (issue 7, defect 8). Here the event loop hands each piece of
X work to a daemon thread and awaits a future with a timeout: the loop keeps running, and a
call that does not finish in time is reported by the caller as "desktop not responding".

One thread per display keeps python-xlib's connection and mss's handle on one thread and the
calls in submission order. The thread is a daemon: a thread stuck on a dead server never
blocks interpreter exit (a ``ThreadPoolExecutor`` thread would, at shutdown).
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["XThread"]

T = TypeVar("T")

_STOP = object()


class XThread:
    """A daemon thread running submitted callables one at a time, in order.

    Args:
        name: the thread's name (shown in debuggers and thread dumps).
    """

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args)``; returns its future (cancel it to skip it if not started).

        Raises:
            RuntimeError: the thread was stopped.
        """
        if self._stopped:
            raise RuntimeError("The X worker thread was stopped.")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fut, fn, args))
        return fut

    def stop(self) -> None:
        """Let the thread end after the work already queued (returns at once; idempotent)."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(_STOP)

    @property
    def alive(self) -> bool:
        """True while the thread runs (it may be blocked in a call)."""
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting task
                fut.set_exception(exc)
            else:
                fut.set_result(result)
