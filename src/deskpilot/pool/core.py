"""``DesktopPool``: K desktops kept warm, leased one task at a time, reset between tasks.

A pool holds ``size`` slots, each filled from a factory (``LocalDesktop``, a
``RemoteDesktop`` URL, anything that satisfies the Computer protocol and, for resets, the
DesktopHost one of :mod:`deskpilot.desktop.base`). :meth:`DesktopPool.lease` hands out one
warm desktop exclusively; when the lease ends the desktop is recycled in the background
(``reset()`` by default, see :data:`~deskpilot.pool.health.BetweenTasks`) and offered to the
next waiter in FIFO order. A desktop whose reset fails, or that is found dead when leased
(its ``health()`` not ok, or ``dead``), is closed and a fresh one started in its place. At
most ``max_starting`` desktops start or reset at once (starting many Xvfb servers together
makes each one slow). :meth:`DesktopPool.health` returns a :class:`PoolHealth` snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar

from deskpilot.errors import ClosedError, ConfigError, DeskpilotTimeoutError, DesktopError
from deskpilot.pool.health import BetweenTasks, PoolHealth

if TYPE_CHECKING:
    from deskpilot.desktop.local import LocalDesktop
    from deskpilot.remote import RemoteDesktop

__all__ = ["DesktopPool"]

log = logging.getLogger("deskpilot.pool")

D = TypeVar("D")

_State = Literal["empty", "starting", "warm", "leased"]
_BETWEEN = ("reset", "keep", "fresh")


@dataclass(eq=False)
class _Slot(Generic[D]):
    index: int
    factory: Callable[[], Any]
    desktop: D | None = None
    stack: contextlib.AsyncExitStack | None = None
    state: _State = "empty"


@dataclass
class _Counters:
    leases: int = 0
    starts: int = 0
    start_failures: int = 0
    resets: int = 0
    reset_failures: int = 0
    replaced: int = 0
    start_s: float = 0.0
    reset_s: float = 0.0
    last_error: str | None = None

    def note(self, exc: BaseException | str) -> str:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.last_error = text
        return text


def _positive(name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a number of seconds > 0, not {value!r}.")


class DesktopPool(Generic[D]):
    """K desktops kept warm; one leased per task; reset (or replaced) between tasks.

    Args:
        factory: a zero-argument callable returning a desktop or an awaitable of one
            (e.g. ``lambda: LocalDesktop(1280, 800, apps=("terminal",))``), used for every
            slot; or a sequence of such callables, one per slot (e.g. one per remote URL),
            in which case ``size`` defaults to its length. A desktop that is an async
            context manager is entered on start and exited on close or replacement.
        size: how many desktops (K >= 1); default 2, or ``len(factory)``.
        between_tasks: ``"reset"`` (default), ``"keep"`` or ``"fresh"``
            (:data:`~deskpilot.pool.health.BetweenTasks`).
        max_starting: at most this many desktops start or reset at the same time (>= 1).
        keep_warm: True (default): a slot whose desktop was closed (``"fresh"``, a failed
            reset) gets a new one started at once; False: only when a lease needs it.
        check_on_lease: before handing out an idle desktop, call its ``health()`` (or read
            its ``dead`` flag) and replace it when it is not ok. Costs one round trip to the
            desktop per lease.
        start_timeout_s: limit for one factory call plus start, in seconds.
        reset_timeout_s: limit for one ``reset()``, in seconds (then: replaced).
        health_timeout_s: limit for the ``health()`` call of ``check_on_lease``, in seconds.
        close_timeout_s: limit for closing one desktop, in seconds (then abandoned, logged).

    Use::

        async with DesktopPool(lambda: LocalDesktop(1280, 800), size=4) as pool:
            async with pool.lease() as desktop:
                await Agent(client, computer=desktop).run("...")
            print(pool.health())

    Raises:
        ConfigError: (construction) a bad size, mode, limit or factory.
    """

    def __init__(
        self,
        factory: Callable[[], D | Awaitable[D]] | Sequence[Callable[[], D | Awaitable[D]]],
        *,
        size: int | None = None,
        between_tasks: BetweenTasks = "reset",
        max_starting: int = 4,
        keep_warm: bool = True,
        check_on_lease: bool = True,
        start_timeout_s: float = 120.0,
        reset_timeout_s: float = 60.0,
        health_timeout_s: float = 10.0,
        close_timeout_s: float = 30.0,
    ) -> None:
        if isinstance(factory, Sequence):
            factories = list(factory)
            if not factories:
                raise ConfigError("factory must be a callable or a non-empty list of callables.")
            if size is not None and size != len(factories):
                raise ConfigError(
                    f"size={size!r} but {len(factories)} factories were given; drop size=."
                )
            size = len(factories)
        else:
            size = 2 if size is None else size
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigError(f"size must be an integer >= 1, not {size!r}.")
            factories = [factory] * size
        for f in factories:
            if not callable(f):
                raise ConfigError(
                    f"factory must be a zero-argument callable returning a desktop, not {f!r}."
                )
        if between_tasks not in _BETWEEN:
            raise ConfigError(
                f"between_tasks must be 'reset', 'keep' or 'fresh', not {between_tasks!r}."
            )
        if isinstance(max_starting, bool) or not isinstance(max_starting, int) or max_starting < 1:
            raise ConfigError(f"max_starting must be an integer >= 1, not {max_starting!r}.")
        for name, value in (
            ("start_timeout_s", start_timeout_s),
            ("reset_timeout_s", reset_timeout_s),
            ("health_timeout_s", health_timeout_s),
            ("close_timeout_s", close_timeout_s),
        ):
            _positive(name, value)
        self.size = size
        self.between_tasks: BetweenTasks = between_tasks
        self.max_starting = max_starting
        self.keep_warm = keep_warm
        self.check_on_lease = check_on_lease
        self.start_timeout_s = start_timeout_s
        self.reset_timeout_s = reset_timeout_s
        self.health_timeout_s = health_timeout_s
        self.close_timeout_s = close_timeout_s
        self._slots: list[_Slot[D]] = [_Slot(i, f) for i, f in enumerate(factories)]
        self._idle: deque[_Slot[D]] = deque()
        self._empty: deque[_Slot[D]] = deque()
        self._waiters: deque[asyncio.Future[_Slot[D]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._warmup: list[asyncio.Task[None]] = []
        self._gate: asyncio.Semaphore | None = None
        self._n = _Counters()
        self._started = False
        self._closed = False

    @classmethod
    def local(
        cls,
        size: int = 2,
        *,
        width: int = 1280,
        height: int = 800,
        apps: Sequence[str] = (),
        **pool_kwargs: Any,
    ) -> DesktopPool[LocalDesktop]:
        """A pool of ``size`` :class:`~deskpilot.LocalDesktop` (``width`` x ``height``
        pixels, ``apps`` started on each and again after every reset); ``pool_kwargs`` go to
        the constructor.

        Raises:
            ConfigError: a bad size, screen size, app name or pool setting.
        """
        from deskpilot.desktop.local import LocalDesktop

        LocalDesktop(width, height, apps=apps)  # validates now, not in the first start

        def factory() -> LocalDesktop:
            return LocalDesktop(width, height, apps=apps)

        return DesktopPool(factory, size=size, **pool_kwargs)

    @classmethod
    def remote(
        cls, urls: Sequence[str], *, token: str | None = None, **pool_kwargs: Any
    ) -> DesktopPool[RemoteDesktop]:
        """A pool of one :class:`~deskpilot.RemoteDesktop` per computer-server URL (each
        ``ws://host:8766``, e.g. the containers of ``compose.yaml``); ``token`` defaults to
        ``DESKPILOT_SERVER_TOKEN``. Resets go to the server (``reset`` method); a dead
        desktop is reconnected to the same URL. ``pool_kwargs`` go to the constructor.

        Raises:
            ConfigError: no URL, a URL that is not ``ws://``/``wss://``/``http(s)://``, or a
                bad pool setting.
        """
        from deskpilot.remote import RemoteDesktop

        if isinstance(urls, str):
            urls = [urls]
        if not urls:
            raise ConfigError("DesktopPool.remote needs at least one ws://host:port URL.")
        for url in urls:
            RemoteDesktop(url, token=token)  # validates the URL now; connects nothing
        factories = [functools.partial(RemoteDesktop, url, token=token) for url in urls]
        return DesktopPool(factories, **pool_kwargs)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, wait: bool = True) -> Self:
        """Start the K desktops (at most ``max_starting`` at once). Idempotent.

        Args:
            wait: True: return once every first start has finished (succeeded or failed);
                False: return at once, the desktops start in the background and
                :meth:`lease` waits for the first one.

        Returns:
            self.

        Raises:
            ClosedError: the pool was closed.
            DesktopError: (``wait=True``) not one desktop started; the pool is closed and
                the message carries the last start error.
        """
        self._check_open()
        if not self._started:
            self._started = True
            self._gate = asyncio.Semaphore(self.max_starting)
            for slot in self._slots:
                slot.state = "starting"
                self._warmup.append(self._spawn(self._warm(slot)))
        if wait:
            await asyncio.gather(*self._warmup, return_exceptions=True)
            if not any(s.desktop is not None for s in self._slots):
                error = self._n.last_error or "no error was recorded"
                await self.close()
                raise DesktopError(
                    f"None of the pool's {self.size} desktops started; the last error: {error}."
                )
        return self

    async def close(self) -> None:
        """Stop the background starts and resets, close every desktop (leased ones too),
        and fail the waiting :meth:`lease` calls with ClosedError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(ClosedError("The desktop pool was closed during a lease wait."))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(self._close_slot(s) for s in self._slots))
        self._idle.clear()
        self._empty.clear()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    # ------------------------------------------------------------------ leases
    @contextlib.asynccontextmanager
    async def lease(self, *, timeout_s: float | None = None) -> AsyncIterator[D]:
        """Hold one desktop for a task: ``async with pool.lease() as desktop: ...``.

        The desktop is this lease's alone until the block ends; then it is recycled in the
        background (``between_tasks``) and offered to the next waiter (FIFO). An idle
        desktop is checked first (``check_on_lease``) and replaced when dead; an empty
        slot is started for the lease. Starts the pool (in the background) if needed.

        Args:
            timeout_s: limit in seconds for getting a desktop (waiting plus any start);
                None: no limit beyond ``start_timeout_s`` per start.

        Yields:
            The desktop (what the factory returned, or its ``__aenter__`` result).

        Raises:
            ClosedError: the pool is or gets closed.
            DesktopError: no desktop could be started or replaced for this lease (the
                message names the cause); the slot stays empty for the next lease.
            DeskpilotTimeoutError: ``timeout_s`` passed.
        """
        _positive("timeout_s", timeout_s, allow_none=True)
        slot = await self._acquire(timeout_s)
        try:
            assert slot.desktop is not None
            yield slot.desktop
        finally:
            slot.state = "starting"
            self._spawn(self._recycle(slot))

    async def _acquire(self, timeout_s: float | None) -> _Slot[D]:
        self._check_open()
        if not self._started:
            await self.start(wait=False)
        try:
            async with asyncio.timeout(timeout_s):
                return await self._take()
        except TimeoutError as exc:
            if isinstance(exc, DeskpilotTimeoutError):
                raise
            raise DeskpilotTimeoutError(
                f"No desktop of the pool was free within {timeout_s} s (timeout_s); "
                f"{self.health().leased} of {self.size} are leased."
            ) from None

    async def _take(self) -> _Slot[D]:
        if self._idle:
            slot = self._idle.popleft()
        elif self._empty:
            slot = self._empty.popleft()
        else:
            fut: asyncio.Future[_Slot[D]] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                slot = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self._offer(fut.result())  # handed over just as we gave up
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(fut)
                raise
        assert slot.state != "leased", "a desktop was leased twice"
        try:
            if slot.desktop is None:
                slot.state = "starting"
                await self._start_slot(slot)
            elif self.check_on_lease and not await self._alive(slot):
                slot.state = "starting"
                self._n.replaced += 1
                log.warning("Desktop %d of the pool is dead; replacing it.", slot.index)
                await self._close_slot(slot)
                await self._start_slot(slot)
        except BaseException as exc:
            slot.state = "empty"
            self._offer(slot)
            if isinstance(exc, Exception) and not isinstance(
                exc, DeskpilotTimeoutError | ClosedError
            ):
                raise DesktopError(
                    f"The pool could not start a desktop: {type(exc).__name__}: {exc}"
                ) from exc
            raise
        slot.state = "leased"
        self._n.leases += 1
        return slot

    def _offer(self, slot: _Slot[D]) -> None:
        """Hand a free slot to the first waiter, or queue it (warm first, then empty)."""
        if self._closed:
            return
        slot.state = "warm" if slot.desktop is not None else "empty"
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(slot)
                return
        (self._idle if slot.desktop is not None else self._empty).append(slot)

    # ------------------------------------------------------------------ background work
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _warm(self, slot: _Slot[D]) -> None:
        try:
            await self._try_start(slot)
        finally:
            self._offer(slot)

    async def _recycle(self, slot: _Slot[D]) -> None:
        """After a lease: reset, keep or replace the desktop, then offer the slot again."""
        try:
            if self._closed:
                await self._close_slot(slot)
                return
            desktop = slot.desktop
            reset = getattr(desktop, "reset", None)
            if self.between_tasks == "keep":
                pass
            elif self.between_tasks == "reset" and callable(reset):
                if not await self._reset(slot, reset):
                    self._n.replaced += 1
                    await self._close_slot(slot)
                    await self._try_start(slot)
            else:  # "fresh", or a desktop that cannot reset itself
                await self._close_slot(slot)
                if self.keep_warm:
                    await self._try_start(slot)
        finally:
            if self._closed:
                await asyncio.shield(self._close_slot(slot))
            else:
                self._offer(slot)

    async def _reset(self, slot: _Slot[D], reset: Callable[[], Awaitable[object]]) -> bool:
        assert self._gate is not None
        async with self._gate:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            try:
                async with asyncio.timeout(self.reset_timeout_s) as scope:
                    await reset()
            except Exception as exc:
                self._n.reset_failures += 1
                if isinstance(exc, TimeoutError) and scope.expired():
                    text = self._n.note(
                        f"reset() took longer than {self.reset_timeout_s} s (reset_timeout_s)"
                    )
                else:
                    text = self._n.note(exc)
                log.warning("Desktop %d failed to reset (%s); replacing it.", slot.index, text)
                return False
            self._n.resets += 1
            self._n.reset_s += loop.time() - t0
            return True

    async def _try_start(self, slot: _Slot[D]) -> None:
        with contextlib.suppress(Exception):
            await self._start_slot(slot)

    async def _start_slot(self, slot: _Slot[D]) -> None:
        """Fill ``slot`` from its factory (bounded by ``max_starting``, ``start_timeout_s``).

        Raises:
            DeskpilotTimeoutError: the start took longer than ``start_timeout_s``.
            Exception: whatever the factory or the desktop's start raised.
        """
        assert self._gate is not None and slot.desktop is None
        async with self._gate:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            stack = contextlib.AsyncExitStack()
            try:
                async with asyncio.timeout(self.start_timeout_s) as scope:
                    obj = slot.factory()
                    if inspect.isawaitable(obj):
                        obj = await obj
                    desktop = obj
                    if isinstance(obj, contextlib.AbstractAsyncContextManager):
                        entered = await stack.enter_async_context(obj)
                        desktop = obj if entered is None else entered
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await asyncio.shield(stack.aclose())
                if not isinstance(exc, Exception):
                    raise
                self._n.start_failures += 1
                if isinstance(exc, TimeoutError) and scope.expired():
                    text = self._n.note(
                        f"a desktop did not start within {self.start_timeout_s} s (start_timeout_s)"
                    )
                    log.warning("Desktop %d of the pool: %s.", slot.index, text)
                    raise DeskpilotTimeoutError(f"{text[0].upper()}{text[1:]}.") from None
                log.warning("Desktop %d of the pool failed to start: %s", slot.index, exc)
                self._n.note(exc)
                raise
            if self._closed:  # closed while it started: it must not outlive the pool
                await asyncio.shield(stack.aclose())
                raise ClosedError("The desktop pool was closed while a desktop started.")
            slot.desktop, slot.stack = desktop, stack
            self._n.starts += 1
            self._n.start_s += loop.time() - t0

    async def _close_slot(self, slot: _Slot[D]) -> None:
        stack, slot.stack, slot.desktop = slot.stack, None, None
        if stack is None:
            return
        try:
            async with asyncio.timeout(self.close_timeout_s):
                await stack.aclose()
        except Exception as exc:
            log.warning("Desktop %d of the pool did not close cleanly: %s", slot.index, exc)

    async def _alive(self, slot: _Slot[D]) -> bool:
        """The desktop answers ``health()`` with ok (or is not flagged ``dead``)."""
        desktop = slot.desktop
        probe = getattr(desktop, "health", None)
        if callable(probe):
            try:
                async with asyncio.timeout(self.health_timeout_s):
                    report = await probe()
            except Exception as exc:
                self._n.note(exc)
                return False
            ok = report.get("ok") if isinstance(report, Mapping) else getattr(report, "ok", None)
            if not ok:
                detail = report.get("detail") if isinstance(report, Mapping) else report
                self._n.note(f"health check failed: {detail}")
            return bool(ok)
        return not bool(getattr(desktop, "dead", False))

    async def wait_recycled(self) -> PoolHealth:
        """Wait for the background starts, resets and replacements pending now (each bounded
        by its timeout), then return :meth:`health`. Raises nothing."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)
        return self.health()

    # ------------------------------------------------------------------ reporting
    def health(self) -> PoolHealth:
        """A snapshot of the slots and counters (:class:`PoolHealth`); cheap, no I/O."""
        states = [s.state for s in self._slots]
        n = self._n
        return PoolHealth(
            size=self.size,
            warm=states.count("warm"),
            leased=states.count("leased"),
            starting=states.count("starting"),
            empty=states.count("empty"),
            waiting=sum(not f.done() for f in self._waiters),
            leases=n.leases,
            starts=n.starts,
            start_failures=n.start_failures,
            resets=n.resets,
            reset_failures=n.reset_failures,
            replaced=n.replaced,
            last_error=n.last_error,
            start_s_mean=n.start_s / n.starts if n.starts else None,
            reset_s_mean=n.reset_s / n.resets if n.resets else None,
            closed=self._closed,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("The desktop pool is closed; create a new DesktopPool.")

    def __repr__(self) -> str:
        h = self.health()
        state = "closed" if h.closed else ("running" if self._started else "not started")
        return (
            f"DesktopPool(size={h.size}, between_tasks={self.between_tasks!r}, warm={h.warm}, "
            f"leased={h.leased}, starting={h.starting}, empty={h.empty}, {state})"
        )
