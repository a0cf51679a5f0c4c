"""A run's event log and its Server-Sent Events stream (``GET /api/runs/{id}/events``).

Every run keeps its events in order (:class:`EventLog`); ids count from 1. A client that
connects (or reconnects, with ``Last-Event-ID`` or ``?after=N``) first receives every event
after that id, then the new ones as they are published: closing the browser loses nothing,
and a reload replays the run so far, then goes live. The stream ends after the run's ``end``
event (the page should then close its ``EventSource``, which would otherwise reconnect and
replay). Waiting subscribers are woken by an :class:`asyncio.Event` per publication, never by
polling; a comment line is sent every :data:`HEARTBEAT_S` seconds so a dead connection is
noticed. Event types and payloads: ``docs/ui.md``, "Events" (:mod:`deskpilot.ui.schema`).

SSE format: https://html.spec.whatwg.org/multipage/server-sent-events.html
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["HEARTBEAT_S", "Event", "EventLog", "stream_events"]

HEARTBEAT_S = 15.0
"""Seconds between keep-alive comments on an idle stream."""
RETRY_MS = 1000
"""The reconnection delay the stream asks ``EventSource`` to use (milliseconds)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a run.

    Attributes:
        id: 1-based position in the run's log.
        type: the SSE event name (``status``, ``step``, ``approval``, ``approval_done``,
            ``takeover``, ``end``; ``docs/ui.md``).
        data: the JSON payload (always with ``"run"``: the run's id).
        published: ``time.perf_counter()`` when it was published (seconds; for latency
            measurements).
    """

    id: int
    type: str
    data: dict[str, Any]
    published: float

    def encode(self) -> bytes:
        """The event as SSE bytes (``id``, ``event``, one ``data`` line of JSON, blank line)."""
        body = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.type}\ndata: {body}\n\n".encode()


class EventLog:
    """The ordered events of one run; closed after its ``end`` event."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False
        self._new = asyncio.Event()

    def publish(self, type: str, data: dict[str, Any]) -> Event:
        """Append an event and wake every follower. Publishing after :meth:`close` is
        ignored (returns the event unsent)."""
        event = Event(len(self.events) + 1, type, data, time.perf_counter())
        if self.closed:
            return event
        self.events.append(event)
        self._wake()
        return event

    def close(self) -> None:
        """No more events: followers return after sending what is in the log."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        old, self._new = self._new, asyncio.Event()
        old.set()

    async def follow(
        self, after: int = 0, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[Event | None]:
        """Every event with ``id > after``, then each new one; ``None`` after
        ``heartbeat_s`` seconds without one (time for a keep-alive). Ends once the log is
        closed and everything was yielded."""
        sent = max(0, after)
        while True:
            while sent < len(self.events):
                sent += 1
                yield self.events[sent - 1]
            if self.closed:
                return
            waiter = self._new
            try:
                await asyncio.wait_for(waiter.wait(), heartbeat_s)
            except TimeoutError:
                yield None


def _after(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


async def stream_events(
    request: web.Request, log: EventLog, *, heartbeat_s: float = HEARTBEAT_S
) -> web.StreamResponse:
    """Serve ``log`` as an SSE stream to ``request`` (see the module docstring); returns when
    the log is closed and sent, or the client went away."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        async for event in log.follow(_after(request), heartbeat_s=heartbeat_s):
            await response.write(event.encode() if event is not None else b": keep-alive\n\n")
    except (ConnectionResetError, ConnectionError):
        pass  # the browser went away; the run goes on
    return response
