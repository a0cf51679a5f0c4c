"""XTEST input in bulk: many ``FakeInput`` requests queued as one write on a python-xlib display.

python-xlib builds each request in Python (about 15 us each) and appends it to its send buffer
by concatenation, which costs quadratic time when thousands are queued before one flush (the
cause of ``type`` taking 64 s for 60,000 characters; ``docs/desktop-backend.md``, "Typing").
:func:`send_fake_inputs` encodes the 32-byte XTEST ``FakeInput`` request of each (event type,
detail) once, joins a batch into one buffer, and advances the connection's request counter by
the number of requests, which is what ``Display.send_request`` does for one request, so later
replies still match their requests. The request layout is the XTEST extension's
(https://www.x.org/releases/current/doc/xextproto/xtest.html, "FakeInput"). If python-xlib's
internals ever differ, it falls back to ``xtest.fake_input`` per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["send_fake_inputs"]


class _RawRequests:
    """Several already-encoded X requests queued as one."""

    __slots__ = ("_binary", "_serial")

    def __init__(self, binary: bytes) -> None:
        self._binary = binary
        self._serial: int | None = None


def send_fake_inputs(
    display: Any, events: Sequence[tuple[int, int]], cache: dict[tuple[int, int], bytes]
) -> None:
    """Queue XTEST events ``(event_type, detail)`` (key or button press/release) on
    ``display`` (a python-xlib ``Display``, from the thread that owns it); not flushed.

    Args:
        display: the open connection.
        events: e.g. ``[(X.KeyPress, 38), (X.KeyRelease, 38)]``.
        cache: encoded requests by event, kept by the caller per connection.
    """
    from Xlib.ext import xtest

    pd: Any = getattr(display, "display", None)
    lock: Any = getattr(pd, "request_queue_lock", None)
    if lock is None or not hasattr(pd, "request_serial") or not events:
        for event_type, detail in events:
            xtest.fake_input(display, event_type, detail)
        return
    parts = []
    for key in events:
        data = cache.get(key)
        if data is None:
            data = cache[key] = xtest.FakeInput._request.to_binary(
                opcode=pd.get_extension_major(xtest.extname),
                event_type=key[0],
                detail=key[1],
                time=0,
                root=0,
                x=0,
                y=0,
            )
        parts.append(data)
    batch = _RawRequests(b"".join(parts))
    if pd.socket_error:
        raise pd.socket_error
    lock.acquire()  # python-xlib's own lock objects (no context manager protocol)
    try:
        batch._serial = pd.request_serial
        pd.request_serial = (pd.request_serial + len(parts)) % 65536
        pd.request_queue.append((batch, False))
    finally:
        lock.release()
