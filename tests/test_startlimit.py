"""The bound on desktops starting at once (deskpilot.desktop.startlimit)."""

from __future__ import annotations

import asyncio

from deskpilot.desktop import startlimit


async def test_at_most_max_starting_run_at_once_first_come_first_served():
    running = 0
    peak = 0
    order: list[int] = []

    async def start(i: int) -> None:
        nonlocal running, peak
        async with startlimit.starting():
            order.append(i)
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    n = startlimit.MAX_STARTING * 3
    await asyncio.gather(*(start(i) for i in range(n)))
    assert peak == startlimit.MAX_STARTING
    assert order == list(range(n))  # queued starts go in arrival order


def test_each_event_loop_has_its_own_slots():
    async def once() -> None:
        async with startlimit.starting():
            await asyncio.sleep(0)

    asyncio.run(once())
    asyncio.run(once())  # a semaphore bound to the first loop would raise here
