"""``run_many(..., processes=K)``: the tasks and desktops spread over K worker processes,
one rate limit for all of them, results in input order.

The parent starts K ``spawn`` processes (:mod:`deskpilot.agent.shard_worker`), each with
an even share of the desktops, and serves them on a loopback socket
(:mod:`deskpilot.agent.shard_link`): every worker's requests are admitted by the parent
client's limiter, and tasks are handed to whichever worker has a free desktop (at most as
many at once as it has desktops). Results arrive as tasks end and are put in input order.

A worker that dies (its process exits before its tasks' results arrived) turns those tasks
into error results with a sentence saying so; they are not rerun (a half-run task may
already have acted on its desktop or elsewhere). Tasks not yet handed out go to the other
workers; when no worker is left, they become error results too. Nothing is lost or counted
twice: every task gets exactly one result.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import multiprocessing
import pickle
import secrets
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..client.rebuild import rebuild_arguments
from ..desktop.processes import signal_name
from ..errors import ConfigError
from ..prompt import Conversation
from .many import error_result
from .result import AgentResult
from .shard_link import SECRET_BYTES, LimiterHost, read_frame, write_frame
from .shard_worker import WorkerSpec, worker_main

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from ..client.core import LLMClient
    from ..pool import DesktopPool

__all__ = ["STOP_TIMEOUT_S", "run_sharded"]

log = logging.getLogger("deskpilot.agent")

STOP_TIMEOUT_S = 30.0
"""Seconds a worker gets to close its desktops after SIGTERM before it is killed."""
_HELLO_TIMEOUT_S = 10.0
_CALLBACKS = ("on_step", "approve", "control")


@dataclass(eq=False)
class _Worker:
    index: int
    desktops: int
    process: BaseProcess
    exited: asyncio.Future[None]
    writer: asyncio.StreamWriter | None = None
    host: LimiterHost | None = None
    running: set[int] = field(default_factory=set)
    stopped: bool = False
    gone: bool = False
    fatal: str | None = None
    link_done: asyncio.Event = field(default_factory=asyncio.Event)


def _split(total: int, parts: int) -> list[int]:
    """``total`` desktops over ``parts`` workers, as evenly as possible (first ones +1)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _check_picklable(what: str, value: Any, processes: int, hint: str) -> None:
    try:
        pickle.dumps(value)
    except Exception as exc:
        raise ConfigError(
            f"{what} must be picklable to reach the worker processes of processes="
            f"{processes} ({type(exc).__name__}: {exc}); {hint}"
        ) from exc


def _check(
    processes: int,
    pool: DesktopPool[Any] | None,
    desktop_factory: Any,
    tasks: Sequence[str | Conversation],
    agent_kwargs: dict[str, Any],
) -> None:
    if pool is not None:
        raise ConfigError(
            f"pool= holds desktops of this process and cannot be shared by processes="
            f"{processes}; pass desktops= and desktop_factory= (each worker builds its own "
            "pool), or processes=1."
        )
    for name in _CALLBACKS:
        if agent_kwargs.get(name) is not None:
            raise ConfigError(
                f"{name}= runs in this process and cannot reach the agents of processes="
                f"{processes}, which run in worker processes; use processes=1 with {name}=, "
                "or read each result's step_records after the run."
            )
    _check_picklable(
        "desktop_factory",
        desktop_factory,
        processes,
        "pass a module-level function or functools.partial(LocalDesktop, 1280, 800), "
        "not a lambda or a nested function.",
    )
    _check_picklable("The tasks", list(tasks), processes, "pass strings or Conversations.")
    for name, value in agent_kwargs.items():
        _check_picklable(f"{name}=", value, processes, "pass plain data or module-level objects.")


async def run_sharded(
    tasks: Sequence[str | Conversation],
    *,
    client: LLMClient,
    processes: int,
    desktops: int,
    desktop_factory: Any,
    fresh_desktop: bool,
    pool: DesktopPool[Any] | None,
    show_progress: bool,
    agent_kwargs: dict[str, Any],
) -> list[AgentResult]:
    """The ``processes > 1`` path of :func:`~deskpilot.agent.many.run_many` (its docstring
    has the contract); arguments already validated there but for the multi-process ones.

    Raises:
        ConfigError: see :func:`~deskpilot.agent.many.run_many`.
    """
    _check(processes, pool, desktop_factory, tasks, agent_kwargs)
    client_args = rebuild_arguments(client)
    client_args["progress"] = "none"
    n = len(tasks)
    if n == 0:
        return []
    desktops = min(desktops, n)  # as in one process: no more desktops than tasks
    sizes = _split(desktops, min(processes, desktops))
    return await _Shards(tasks, client, sizes, show_progress).run(
        client_args, desktop_factory, fresh_desktop, agent_kwargs
    )


class _Shards:
    """One sharded run: the socket, the workers, the task queue and the results."""

    def __init__(
        self,
        tasks: Sequence[str | Conversation],
        client: LLMClient,
        sizes: list[int],
        show_progress: bool,
    ) -> None:
        from tqdm.auto import tqdm

        self.tasks = tasks
        self.client = client
        self.sizes = sizes
        self.secret = secrets.token_bytes(SECRET_BYTES)
        self.pending: deque[int] = deque(range(len(tasks)))
        self.results: list[AgentResult | None] = [None] * len(tasks)
        self.left = len(tasks)
        self.all_done = asyncio.Event()
        self.workers: list[_Worker] = []
        self.bar = tqdm(total=len(tasks), desc="deskpilot", unit="task", disable=not show_progress)
        self.ok = 0

    async def run(
        self,
        client_args: dict[str, Any],
        desktop_factory: Any,
        fresh_desktop: bool,
        agent_kwargs: dict[str, Any],
    ) -> list[AgentResult]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        level = logging.getLogger("deskpilot").getEffectiveLevel()
        watchers: list[asyncio.Task[None]] = []
        try:
            for index, size in enumerate(self.sizes):
                spec = WorkerSpec(
                    index=index, count=len(self.sizes), port=port, secret=self.secret,
                    client_args=client_args, desktops=size, desktop_factory=desktop_factory,
                    fresh_desktop=fresh_desktop, agent_kwargs=agent_kwargs, log_level=level,
                )  # fmt: skip
                proc = ctx.Process(
                    target=worker_main, args=(spec,), name=f"deskpilot-worker-{index}", daemon=True
                )
                self.workers.append(_Worker(index, size, proc, loop.create_future()))
            await asyncio.to_thread(self._start_all)
            for w in self.workers:
                loop.add_reader(w.process.sentinel, self._on_exit, w)
            watchers.extend(asyncio.create_task(self._watch(w)) for w in self.workers)
            await self.all_done.wait()
            await asyncio.wait([w.exited for w in self.workers], timeout=STOP_TIMEOUT_S)
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await self._stop_all()
            for w in self.workers:
                if w.writer is not None:
                    w.writer.close()
            server.close()
            self.bar.close()
        return [
            r if r is not None else error_result(self.tasks[i], "The task did not run.")
            for i, r in enumerate(self.results)
        ]

    def _start_all(self) -> None:
        for w in self.workers:
            w.process.start()

    def _on_exit(self, w: _Worker) -> None:
        asyncio.get_running_loop().remove_reader(w.process.sentinel)
        if not w.exited.done():
            w.exited.set_result(None)

    async def _stop_all(self) -> None:
        """SIGTERM every live worker, then SIGKILL those still there after the timeout."""
        alive = [w for w in self.workers if w.process.pid is not None and not w.exited.done()]
        for w in alive:
            with contextlib.suppress(ProcessLookupError, OSError):
                w.process.terminate()
        if alive:
            await asyncio.wait([w.exited for w in alive], timeout=STOP_TIMEOUT_S)
        for w in alive:
            if not w.exited.done():
                log.warning(
                    "Worker %d did not stop in %.0f s; killing it.", w.index, STOP_TIMEOUT_S
                )
                with contextlib.suppress(ProcessLookupError, OSError):
                    w.process.kill()
        loop = asyncio.get_running_loop()
        for w in self.workers:
            if w.process.pid is not None:
                loop.remove_reader(w.process.sentinel)
                await asyncio.to_thread(w.process.join, 5)
                with contextlib.suppress(ValueError):
                    w.process.close()
            if w.host is not None:
                w.host.close()

    # ---------------------------------------------------------------- the links
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(
                reader.readexactly(SECRET_BYTES + 4), timeout=_HELLO_TIMEOUT_S
            )
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        (index,) = struct.unpack(">I", hello[SECRET_BYTES:])
        if not hmac.compare_digest(hello[:SECRET_BYTES], self.secret) or not (
            0 <= index < len(self.workers) and self.workers[index].writer is None
        ):
            log.warning("A connection to run_many's worker socket was refused (wrong secret).")
            writer.close()
            return
        w = self.workers[index]
        w.writer = writer
        w.host = LimiterHost(self.client.limiter, writer)
        try:
            self._feed(w)
            while (message := await read_frame(reader)) is not None:
                if w.host.handle(message):
                    continue
                if message[0] == "result":
                    self._finish(w, message[1], message[2])
                elif message[0] == "fatal":
                    w.fatal = str(message[1])
        except ConnectionError as exc:
            log.warning("Worker %d's link broke: %s", index, exc)
        finally:
            w.host.close()
            w.link_done.set()

    def _feed(self, w: _Worker) -> None:
        """Hand ``w`` tasks up to its desktops; ``stop`` once none are left."""
        if w.writer is None or w.gone or w.stopped:
            return
        while self.pending and len(w.running) < w.desktops:
            i = self.pending.popleft()
            w.running.add(i)
            write_frame(w.writer, ("task", i, self.tasks[i]))
        if not self.pending:
            w.stopped = True
            write_frame(w.writer, ("stop",))

    def _finish(self, w: _Worker, i: int, res: AgentResult) -> None:
        if i not in w.running or self.results[i] is not None:
            log.warning("Worker %d sent a result for task %d it was not running.", w.index, i)
            return
        w.running.discard(i)
        self._record(i, res)
        self.client.total_usage = self.client.total_usage + res.usage
        self.client.total_cost += res.cost
        self._feed(w)

    def _record(self, i: int, res: AgentResult) -> None:
        self.results[i] = res
        self.left -= 1
        self.ok += int(res.ok)
        self.bar.set_postfix(ok=self.ok, refresh=False)
        self.bar.update(1)
        if self.left == 0:
            self.all_done.set()

    async def _watch(self, w: _Worker) -> None:
        """When ``w``'s process ends: fail what it was running; when no worker is left, fail
        the tasks nobody will run."""
        await asyncio.shield(w.exited)  # cancelling the watcher must not mark it exited
        if w.writer is not None:  # read what it sent before it died
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.link_done.wait(), timeout=5.0)
        w.gone = True
        await asyncio.to_thread(w.process.join, 5)  # its pipe closes just before it is reaped
        code = w.process.exitcode
        if w.fatal is not None:
            why = f"worker process {w.index + 1} of {len(self.workers)} could not start: {w.fatal}"
        else:
            why = (
                f"worker process {w.index + 1} of {len(self.workers)} (pid {w.process.pid}) "
                f"{_describe(code)}"
            )
            if w.writer is None:
                why += " before it connected (its error, if any, is on stderr)"
        for i in sorted(w.running):
            self._record(
                i,
                error_result(
                    self.tasks[i],
                    f"The {why} before this task finished; the task was not rerun (its "
                    "trajectory, if it started one, is on disk up to its last step).",
                ),
            )
        w.running.clear()
        if self.pending and all(x.gone for x in self.workers):
            while self.pending:
                i = self.pending.popleft()
                message = f"No worker process was left to run this task (the last: the {why})."
                self._record(i, error_result(self.tasks[i], message))


def _describe(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        return f"was killed by {signal_name(-code)}"
    return f"exited with code {code}"
