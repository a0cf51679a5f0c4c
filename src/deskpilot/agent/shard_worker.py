"""One worker process of ``run_many(..., processes=K)``: its own event loop, client and
desktop pool, fed tasks by the parent over the link (:mod:`deskpilot.agent.shard_link`).

The worker connects to the parent's loopback socket, rebuilds the client from the
parent's settings with a :class:`~deskpilot.agent.shard_link.LinkLimiter` (one rate limit
for every worker), starts its :class:`~deskpilot.pool.DesktopPool`, and runs each task it
is sent on a leased desktop, sending each :class:`AgentResult` back as soon as it ends. It
exits after the parent's ``stop`` once its tasks are done, on SIGTERM (cancelling its runs
and closing its desktops), or when the parent's connection closes (the parent died). It
ignores SIGINT: a Ctrl-C in the terminal reaches the whole process group, and the parent
decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..client.core import LLMClient
from ..prompt import Conversation
from .loop import Agent
from .many import error_result, own_pool
from .result import AgentResult
from .shard_link import LinkLimiter, read_frame, write_frame

__all__ = ["WorkerSpec", "worker_main"]

log = logging.getLogger("deskpilot.agent")

_Item = tuple[int, str | Conversation] | None


@dataclass(frozen=True, kw_only=True)
class WorkerSpec:
    """What one worker process needs (pickled into it by ``spawn``).

    Attributes:
        index / count: this worker's number (0-based) and how many there are.
        port: the parent's loopback port; secret: the run's secret (not in repr).
        client_args: ``LLMClient`` keyword arguments (not in repr: may hold an api_key).
        desktops: this worker's desktops (its pool size and concurrent tasks).
        desktop_factory: the pool's factory (None: ``LocalDesktop()``).
        fresh_desktop: close each desktop after its task instead of reusing it.
        agent_kwargs: passed to every :class:`Agent`.
        log_level: the ``deskpilot`` logger's level in the parent.
    """

    index: int
    count: int
    port: int
    secret: bytes = field(repr=False)
    client_args: dict[str, Any] = field(repr=False)
    desktops: int
    desktop_factory: Callable[[], Any] | None
    fresh_desktop: bool
    agent_kwargs: dict[str, Any]
    log_level: int = logging.WARNING


def _ignore(signum: int, frame: object) -> None:
    """SIGINT in a worker: nothing (the parent stops the workers with SIGTERM). A Python
    handler rather than ``SIG_IGN``, which every program the desktop starts would inherit
    (a Ctrl-C typed into the desktop's terminal would then not stop its command)."""


def worker_main(spec: WorkerSpec) -> None:
    """The worker process's entry point (``multiprocessing`` target)."""
    signal.signal(signal.SIGINT, _ignore)
    logging.getLogger("deskpilot").setLevel(spec.log_level)
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(_serve(spec))


async def _serve(spec: WorkerSpec) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    closing = asyncio.Event()  # set once the desktops are being closed: no cancel after it

    def stop_now() -> None:
        if not closing.is_set():
            main.cancel()

    loop.add_signal_handler(signal.SIGTERM, stop_now)
    reader, writer = await asyncio.open_connection("127.0.0.1", spec.port)
    writer.write(spec.secret + struct.pack(">I", spec.index))
    limiter = LinkLimiter(writer)
    try:
        client = LLMClient(**spec.client_args, limiter=limiter)
    except Exception as exc:
        write_frame(writer, ("fatal", f"its LLMClient could not be built: {exc}"))
        await writer.drain()
        writer.close()
        return
    queue: asyncio.Queue[_Item] = asyncio.Queue()
    runner = _Runner(spec, client, writer)

    async def read() -> None:
        stopped = False
        while (message := await read_frame(reader)) is not None:
            kind = message[0]
            if kind == "granted":
                limiter.granted(message[1])
            elif kind == "task":
                queue.put_nowait((message[1], message[2]))
            elif kind == "stop":
                stopped = True
                for _ in range(spec.desktops):
                    queue.put_nowait(None)
        limiter.lose("The connection to run_many's parent process closed.")
        if not stopped:
            log.warning("Worker %d: the parent process is gone; stopping.", spec.index)
        stop_now()

    reading = asyncio.create_task(read())
    try:
        async with client:
            await runner.pool.start(wait=False)
            await asyncio.gather(*(runner.run(queue) for _ in range(spec.desktops)))
    finally:
        closing.set()
        await runner.pool.close()
        reading.cancel()
        with contextlib.suppress(Exception):
            await writer.drain()
        writer.close()


class _Runner:
    """Runs tasks from the queue on the worker's pool and sends their results."""

    def __init__(self, spec: WorkerSpec, client: LLMClient, writer: asyncio.StreamWriter):
        self.spec = spec
        self.client = client
        self.writer = writer
        self.pool = own_pool(spec.desktop_factory, spec.desktops, spec.fresh_desktop, spec.desktops)
        self.hopeless: str | None = None  # not one desktop ever started

    async def run(self, queue: asyncio.Queue[_Item]) -> None:
        while (item := await queue.get()) is not None:
            i, task = item
            res = await self._one(i, task)
            write_frame(self.writer, ("result", i, res))
            await self.writer.drain()

    async def _one(self, i: int, task: str | Conversation) -> AgentResult:
        if self.hopeless is not None:
            return error_result(task, self.hopeless)
        res: AgentResult | None = None
        try:
            async with self.pool.lease() as desktop:
                try:
                    agent = Agent(self.client, computer=desktop, **self.spec.agent_kwargs)
                    res = await agent.run(task)
                except Exception as exc:
                    log.warning("Task %d failed: %s: %s", i, type(exc).__name__, exc)
                    res = error_result(task, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.warning("No desktop for task %d: %s: %s", i, type(exc).__name__, exc)
            message = f"No desktop for this task: {exc}"
            health = self.pool.health()
            if health.starts == 0 and health.start_failures >= self.pool.size:
                self.hopeless = message
            if res is None:
                res = error_result(task, message)
        return res
