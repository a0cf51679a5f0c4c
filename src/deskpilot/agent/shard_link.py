"""The link between ``run_many``'s parent process and one worker process: framed messages
over a loopback socket, and one rate limit served from the parent.

Wire: each message is a 4-byte big-endian length and a pickle of a tuple whose first item
names it. The connection starts with the worker sending the run's 32-byte secret (created
by the parent, sent to the worker through the ``spawn`` pipe, never written to disk) and its
4-byte worker index; the parent unpickles nothing from a connection before the secret
matched, and the socket listens on 127.0.0.1 only.

Messages, worker -> parent: ``("acquire", key, input_tokens, output_tokens)``,
``("release", key, input_tokens | None, output_tokens | None)``, ``("withdraw", key)``,
``("pause", seconds)``, ``("result", task_index, AgentResult)``, ``("fatal", sentence)``.
Parent -> worker: ``("granted", key)``, ``("task", task_index, task)``, ``("stop",)``.

The limit: :class:`LinkLimiter` (in the worker) is a :class:`~deskpilot.client.limiter.Limiter`
whose calls go over the link to a :class:`LimiterHost` (in the parent), which calls the
parent client's own limiter. So every worker's requests count against one set of budgets
(RPM, input TPM, output TPM, concurrency), FIFO by arrival at the parent. A worker whose
connection drops (it died) has its waiting acquires withdrawn and its admitted requests
released with their estimates kept (they may have reached the API).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import struct
from typing import Any

from ..client.limiter import Limiter
from ..errors import ClosedError

__all__ = [
    "MAX_FRAME_BYTES",
    "SECRET_BYTES",
    "LimiterHost",
    "LinkLimiter",
    "read_frame",
    "write_frame",
]

log = logging.getLogger("deskpilot.agent")

SECRET_BYTES = 32
"""Length of the run's secret that opens every worker connection."""
MAX_FRAME_BYTES = 512 * 2**20
"""The largest message accepted (a result with its conversation's images), in bytes."""
_LEN = struct.Struct(">I")


def write_frame(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    """Queue one message on ``writer`` (never blocks; the transport buffers it)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_LEN.pack(len(data)) + data)


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None when the peer closed the connection (or it broke).

    Raises:
        ConnectionError: a frame longer than :data:`MAX_FRAME_BYTES` (the link is unusable).
    """
    try:
        (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
        if size > MAX_FRAME_BYTES:
            raise ConnectionError(f"A {size}-byte message is over the link's limit.")
        message = pickle.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
        return None
    return message if isinstance(message, tuple) and message else None


class LimiterHost:
    """The parent's side of one worker's limiter calls: runs them on ``limiter``.

    Args:
        limiter: the parent client's limiter (shared by every worker's host).
        writer: the worker's connection, for the ``("granted", key)`` replies.
    """

    def __init__(self, limiter: Limiter, writer: asyncio.StreamWriter) -> None:
        self._limiter = limiter
        self._writer = writer
        self._tickets: dict[int, Any] = {}
        self._waiting: dict[int, asyncio.Task[None]] = {}
        self._closed = False

    def handle(self, message: tuple[Any, ...]) -> bool:
        """Serve ``message`` if it is a limiter call; False when it is something else."""
        kind = message[0]
        if kind == "acquire":
            _, key, est_in, est_out = message
            if not self._closed:
                self._waiting[key] = asyncio.ensure_future(self._acquire(key, est_in, est_out))
        elif kind == "release":
            _, key, used_in, used_out = message
            ticket = self._tickets.pop(key, None)
            if ticket is not None:
                self._limiter.release(ticket, input_tokens=used_in, output_tokens=used_out)
        elif kind == "withdraw":
            waiter = self._waiting.pop(message[1], None)
            if waiter is not None:
                waiter.cancel()
            ticket = self._tickets.pop(message[1], None)
            if ticket is not None:  # granted, but the worker gave up before it was sent
                self._limiter.release(ticket, input_tokens=0, output_tokens=0)
        elif kind == "pause":
            self._limiter.pause_for(float(message[1]))
        else:
            return False
        return True

    async def _acquire(self, key: int, est_in: float, est_out: float) -> None:
        try:
            ticket = await self._limiter.acquire(est_in, est_out)
        except asyncio.CancelledError:
            return
        finally:
            self._waiting.pop(key, None)
        if self._closed:
            self._limiter.release(ticket)
            return
        self._tickets[key] = ticket
        write_frame(self._writer, ("granted", key))

    def close(self) -> None:
        """The worker is gone: withdraw its waiting acquires, release what it held (the
        token estimates stay counted: those requests may have reached the API)."""
        self._closed = True
        for waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()
        for ticket in self._tickets.values():
            self._limiter.release(ticket)
        self._tickets.clear()

    @property
    def held(self) -> int:
        """Admissions this worker holds now."""
        return len(self._tickets)


class LinkLimiter:
    """A :class:`~deskpilot.client.limiter.Limiter` whose budget lives in the parent process.

    Each ``acquire`` is one round trip over the link (the parent's limiter decides, FIFO by
    arrival there); ``release`` and ``pause_for`` are sent without waiting. Cancelling an
    ``acquire`` withdraws it (a grant that crosses the withdrawal is refunded by the parent).

    Args:
        writer: the connection to the parent.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._keys = itertools.count()
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._open: set[int] = set()
        self._lost: str | None = None

    def __repr__(self) -> str:
        return f"LinkLimiter(in_flight={len(self._open)})"

    @property
    def in_flight(self) -> int:
        """Requests this process was admitted and has not released."""
        return len(self._open)

    async def acquire(self, input_tokens: float = 0, output_tokens: float = 0) -> int:
        """Wait until the parent's budget admits one request; returns the ticket key.

        Raises:
            ClosedError: the link to the parent is gone.
        """
        if self._lost is not None:
            raise ClosedError(self._lost)
        key = next(self._keys)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        write_frame(self._writer, ("acquire", key, float(input_tokens), float(output_tokens)))
        try:
            await waiter
        except asyncio.CancelledError:
            if self._lost is None:
                write_frame(self._writer, ("withdraw", key))
            raise
        finally:
            self._waiting.pop(key, None)
        self._open.add(key)
        return key

    def granted(self, key: int) -> None:
        """The parent admitted ``key`` (called by the worker's reader)."""
        waiter = self._waiting.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif waiter is None:  # withdrawn meanwhile: the parent refunds it on the withdraw
            log.debug("late grant %d", key)

    def release(
        self,
        ticket: Any,
        *,
        input_tokens: float | None = None,
        output_tokens: float | None = None,
    ) -> None:
        """End the request of ``ticket`` (idempotent; not awaited)."""
        if ticket not in self._open:
            return
        self._open.discard(ticket)
        if self._lost is None:
            write_frame(self._writer, ("release", ticket, input_tokens, output_tokens))

    def pause_for(self, seconds: float) -> None:
        """Admit nothing in any worker for ``seconds`` from now (not awaited)."""
        if self._lost is None:
            write_frame(self._writer, ("pause", max(0.0, float(seconds))))

    def lose(self, sentence: str) -> None:
        """The link is gone: every waiting and later ``acquire`` raises ClosedError."""
        self._lost = sentence
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(ClosedError(sentence))
        self._open.clear()
