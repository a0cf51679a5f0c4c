"""DesktopPool scheduling: exclusive FIFO leases, bounded starts, resets, replacements,
timeouts and close, on in-memory desktops (the real-Xvfb behaviour is in
tests/test_pool_desktop.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

import pytest

from deskpilot.errors import ClosedError, ConfigError, DeskpilotTimeoutError, DesktopError
from deskpilot.pool import DesktopPool, PoolHealth


class Box:
    """A desktop double: an async context manager with reset() and health()."""

    ids = itertools.count()

    def __init__(self, log: dict, *, start_s: float = 0.0, fail_start: bool = False) -> None:
        self.id = next(self.ids)
        self.log = log
        self.start_s = start_s
        self.fail_start = fail_start
        self.fail_reset = False
        self.dead = False
        self.up = False
        self.closed = False
        self.resets = 0

    async def __aenter__(self) -> Box:
        self.log["starting"] += 1
        self.log["max_starting"] = max(self.log["max_starting"], self.log["starting"])
        try:
            await asyncio.sleep(self.start_s)
            if self.fail_start:
                raise RuntimeError("no X server here")
        finally:
            self.log["starting"] -= 1
        self.up = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.up = False
        self.closed = True

    async def reset(self) -> None:
        await asyncio.sleep(0)
        if self.fail_reset:
            raise RuntimeError("reset broke")
        self.resets += 1

    async def health(self) -> dict:
        ok = self.up and not self.dead
        return {"ok": ok, "display": ":0", "width": 64, "height": 64, "detail": "" if ok else "x"}


@pytest.fixture
def made() -> list[Box]:
    return []


def factory_of(made: list[Box], log: dict | None = None, **kw):
    log = {"starting": 0, "max_starting": 0} if log is None else log

    def factory() -> Box:
        box = Box(log, **kw)
        made.append(box)
        return box

    return factory


async def test_leases_are_exclusive_fifo_and_reset_between_tasks(made):
    in_use: set[int] = set()
    order: list[int] = []
    peak = 0

    async with DesktopPool(factory_of(made), size=2) as pool:
        assert pool.health().warm == 2

        async def task(i: int) -> None:
            nonlocal peak
            await asyncio.sleep(0.001 * i)  # queue up in order 0..5
            async with pool.lease() as box:
                assert box.id not in in_use, "a desktop was leased twice at once"
                in_use.add(box.id)
                order.append(i)
                peak = max(peak, len(in_use))
                await asyncio.sleep(0.02)
                in_use.discard(box.id)

        await asyncio.gather(*(task(i) for i in range(6)))
        await asyncio.sleep(0.01)  # the last resets run in the background
        h = pool.health()
    assert peak == 2 and order == [0, 1, 2, 3, 4, 5]
    assert len(made) == 2 and sum(b.resets for b in made) == 6
    assert (h.leases, h.resets, h.replaced, h.starts, h.warm) == (6, 6, 0, 2, 2)
    assert h.reset_s_mean is not None and h.start_s_mean is not None and h.ok
    assert all(b.closed for b in made) and pool.health().closed and not pool.health().ok


async def test_starts_are_bounded(made):
    log = {"starting": 0, "max_starting": 0}
    async with DesktopPool(factory_of(made, log, start_s=0.03), size=5, max_starting=2) as pool:
        assert pool.health().warm == 5
    assert log["max_starting"] == 2


async def test_a_failed_reset_gets_a_fresh_desktop(made):
    async with DesktopPool(factory_of(made), size=1) as pool:
        async with pool.lease() as first:
            first.fail_reset = True
        async with pool.lease() as second:
            assert second is not first and first.closed and second.up
        await asyncio.sleep(0.01)
        h = pool.health()
    assert (h.reset_failures, h.replaced, h.resets, h.starts) == (1, 1, 1, 2)
    assert h.last_error == "RuntimeError: reset broke"


async def test_a_dead_idle_desktop_is_replaced_at_lease(made):
    async with DesktopPool(factory_of(made), size=1) as pool:
        async with pool.lease() as first:
            pass
        await asyncio.sleep(0.01)
        first.dead = True  # dies while idle, after its reset
        async with pool.lease() as second:
            assert second is not first and first.closed and not second.dead
        assert pool.health().replaced == 1


async def test_keep_and_fresh(made):
    async with DesktopPool(factory_of(made), size=1, between_tasks="keep") as pool:
        boxes = []
        for _ in range(3):
            async with pool.lease() as box:
                boxes.append(box)
    assert boxes[0] is boxes[1] is boxes[2] and boxes[0].resets == 0
    made.clear()
    async with DesktopPool(factory_of(made), size=1, between_tasks="fresh") as pool:
        boxes = []
        for _ in range(3):
            async with pool.lease() as box:
                boxes.append(box)
        assert len({b.id for b in boxes}) == 3 and all(b.resets == 0 for b in boxes)
        assert boxes[0].closed and pool.health().replaced == 0


async def test_start_failures_are_reported(made):
    pool = DesktopPool(factory_of(made, fail_start=True), size=2)
    with pytest.raises(DesktopError, match=r"None of the pool's 2 desktops started.*no X server"):
        await pool.start()
    assert pool.closed
    with pytest.raises(ClosedError):
        async with pool.lease():
            pass


async def test_lease_after_a_failed_start_tries_again(made):
    flaky = iter([True, False, True])

    def factory() -> Box:
        box = Box({"starting": 0, "max_starting": 0}, fail_start=next(flaky))
        made.append(box)
        return box

    pool = DesktopPool(factory, size=1, between_tasks="fresh", keep_warm=False)
    await pool.start(wait=False)
    # the warm-up fails; the waiting lease gets the empty slot and starts it again
    async with pool.lease() as box:
        assert box.up and len(made) == 2
    # fresh + keep_warm=False: the next lease starts one, and this start fails
    with pytest.raises(DesktopError, match="could not start a desktop: RuntimeError: no X"):
        async with pool.lease():
            pass
    h = pool.health()
    assert (h.start_failures, h.starts, h.leases, h.empty) == (2, 1, 1, 1)
    await pool.close()


async def test_lease_timeout_and_cancelled_waiters(made):
    async with DesktopPool(factory_of(made), size=1) as pool:
        async with pool.lease():
            with pytest.raises(DeskpilotTimeoutError, match=r"within 0.05 s.*1 of 1 are leased"):
                async with pool.lease(timeout_s=0.05):
                    pass
            waiter = asyncio.create_task(pool.lease().__aenter__())
            await asyncio.sleep(0.01)
            assert pool.health().waiting == 1
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with pool.lease(timeout_s=1.0) as box:  # the slot was not lost
            assert box.up


async def test_close_fails_waiters_and_closes_leased_desktops(made):
    pool = await DesktopPool(factory_of(made), size=1).start()
    async with pool.lease() as box:
        waiter = asyncio.create_task(pool.lease().__aenter__())
        await asyncio.sleep(0.01)
        await pool.close()
        assert box.closed
        with pytest.raises(ClosedError, match="closed during a lease wait"):
            await waiter
    await pool.close()  # idempotent


async def test_a_desktop_that_finishes_starting_after_close_is_closed(made):
    pool = DesktopPool(
        factory_of(made, start_s=0.1), size=1, between_tasks="fresh", keep_warm=False
    )
    async with pool.lease():
        pass
    await pool.wait_recycled()  # the slot is empty now: the next lease starts a desktop
    lease = asyncio.create_task(pool.lease().__aenter__())
    await asyncio.sleep(0.03)
    assert len(made) == 2 and pool.health().starting == 1
    await pool.close()
    with pytest.raises(ClosedError, match="closed while a desktop started"):
        await lease
    assert made[1].closed and not made[1].up


async def test_desktops_without_reset_or_context_manager():
    class Plain:  # a bare Computer: no reset(), no health(), not a context manager
        dead = False

    made: list[Plain] = []

    async def factory() -> Plain:
        made.append(Plain())
        return made[-1]

    async with DesktopPool(factory, size=1) as pool:
        async with pool.lease() as a:
            pass
        async with pool.lease() as b:
            assert b is not a  # could not reset itself: a new one
        b.dead = True
        await asyncio.sleep(0.01)
        async with pool.lease() as c:
            assert c is not b


def test_bad_arguments():
    ok = lambda: None  # noqa: E731
    for kwargs, match in (
        ({"size": 0}, "size must be an integer >= 1"),
        ({"between_tasks": "wipe"}, "between_tasks must be"),
        ({"max_starting": 0}, "max_starting must be"),
        ({"reset_timeout_s": 0}, "reset_timeout_s must be"),
    ):
        with pytest.raises(ConfigError, match=match):
            DesktopPool(ok, **kwargs)
    with pytest.raises(ConfigError, match="size=3 but 2 factories"):
        DesktopPool([ok, ok], size=3)
    with pytest.raises(ConfigError, match="zero-argument callable"):
        DesktopPool(["ws://x"])
    assert DesktopPool([ok, ok, ok]).size == 3
    assert "not started" in repr(DesktopPool(ok))


def test_health_is_a_typed_snapshot():
    h = DesktopPool(lambda: None, size=3).health()
    assert isinstance(h, PoolHealth)
    assert (h.size, h.warm, h.leased, h.empty, h.leases) == (3, 0, 0, 3, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.warm = 1
