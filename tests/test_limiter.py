"""The rate limiter on a virtual clock: FIFO, windows, burst, reconciliation, pauses."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

import pytest

from deskpilot.client.limiter import Budget, RateLimiter
from deskpilot.client.retry import (
    RetryPolicy,
    parse_retry_after,
    rate_limit_reset_in,
)
from deskpilot.client.tokens import estimate_input_tokens, image_tokens
from deskpilot.errors import ConfigError
from deskpilot.prompt import Conversation, Image
from deskpilot.testing import most_in_window


class VirtualClock:
    """A clock plus a ``call_later`` whose timers fire only when the test advances time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[tuple[float, int, _Handle]] = []
        self._seq = itertools.count()
        self.armed = 0

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback) -> _Handle:
        h = _Handle(callback)
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), h))
        self.armed += 1
        return h

    def pending(self) -> list[float]:
        return sorted(t for t, _, h in self._timers if not h.cancelled)

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def run_next(self) -> bool:
        """Jump to the next live timer, fire it, let tasks run. False when none is left."""
        while self._timers:
            when, _, h = heapq.heappop(self._timers)
            if h.cancelled:
                continue
            self.now = max(self.now, when)
            h.callback()
            await self.settle()
            return True
        return False

    async def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._timers:
            live = [t for t, _, h in self._timers if not h.cancelled]
            if not live or min(live) > end:
                break
            await self.run_next()
        self.now = end
        await self.settle()


class _Handle:
    def __init__(self, callback) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def make(clock: VirtualClock, **kw) -> RateLimiter:
    return RateLimiter(clock=clock, call_later=clock.call_later, **kw)


async def test_fifo_order_even_when_a_later_smaller_request_would_fit() -> None:
    clock = VirtualClock()
    lim = make(clock, input_tokens_per_minute=6000, burst_s=10)  # 1000-token bucket
    order: list[str] = []

    async def take(name: str, tokens: int) -> None:
        t = await lim.acquire(tokens)
        order.append(name)
        lim.release(t)

    first = await lim.acquire(1000)  # empties the bucket
    lim.release(first)
    tasks = [
        asyncio.create_task(take("big", 900)),
        asyncio.create_task(take("small", 10)),
        asyncio.create_task(take("medium", 500)),
    ]
    await clock.settle()
    assert order == []  # "small" (10 tokens) must not overtake "big"
    while not all(t.done() for t in tasks):
        assert await clock.run_next()
    assert order == ["big", "small", "medium"]


async def test_rpm_never_exceeded_in_any_sliding_window_and_steady_rate() -> None:
    clock = VirtualClock()
    rpm = 600
    lim = make(clock, requests_per_minute=rpm, burst_s=1.0)
    sent: list[float] = []
    n = 1500

    async def one() -> None:
        t = await lim.acquire()
        sent.append(clock.now)
        lim.release(t)

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await clock.settle()
    while not all(t.done() for t in tasks):
        assert await clock.run_next()
    assert len(sent) == n
    assert most_in_window(sent) <= rpm
    # the initial burst is one second of quota, not a minute
    assert sum(1 for t in sent if t == sent[0]) == 10
    # steady rate over the whole run is at least 98% of the limit
    span_min = (sent[-1] - sent[0]) / 60.0
    assert (n - 10) / span_min >= 0.98 * rpm
    assert sent == sorted(sent)


@pytest.mark.parametrize("burst_s,expected", [(1.0, 5), (2.0, 10), (0.001, 1)])
async def test_burst_size_is_burst_s_of_quota_min_one(burst_s: float, expected: int) -> None:
    clock = VirtualClock()
    lim = make(clock, requests_per_minute=300, burst_s=burst_s)
    admitted = 0
    tickets = []
    for _ in range(50):
        task = asyncio.create_task(lim.acquire())
        await clock.settle()
        if not task.done():
            task.cancel()
            break
        tickets.append(task.result())
        admitted += 1
    assert admitted == expected


async def test_only_one_timer_is_armed_while_many_wait() -> None:
    clock = VirtualClock()
    lim = make(clock, requests_per_minute=60, burst_s=1.0)
    tasks = [asyncio.create_task(lim.acquire()) for _ in range(2000)]
    await clock.settle()
    assert lim.waiting == 1999
    assert len(clock.pending()) == 1  # one timer for the head, none per waiter
    for t in tasks:
        t.cancel()
    await clock.settle()


async def test_reconciliation_refunds_overestimates_so_real_usage_fills_the_budget() -> None:
    clock = VirtualClock()
    itpm = 60_000
    lim = make(clock, input_tokens_per_minute=itpm, burst_s=1.0)
    real_per_request = 300
    log: list[tuple[float, int]] = []

    async def one() -> None:
        t = await lim.acquire(1200)  # estimate 4x the real usage
        log.append((clock.now, real_per_request))
        lim.release(t, input_tokens=real_per_request)

    tasks = [asyncio.create_task(one()) for _ in range(600)]
    await clock.settle()
    while clock.now < 1000.0 + 120 and not all(t.done() for t in tasks):
        if not await clock.run_next():
            break
    # real tokens sent in the second minute (steady state) vs the budget
    second_minute = sum(tok for t, tok in log if 1060.0 <= t < 1120.0)
    assert second_minute >= 0.85 * itpm
    # and no 60 s window ever held more real tokens than the limit
    times = [t for t, _ in log]
    assert most_in_window(times) * real_per_request <= itpm
    for t in tasks:
        t.cancel()
    await clock.settle()


async def test_without_reconciliation_estimates_hold_the_budget() -> None:
    clock = VirtualClock()
    lim = make(clock, input_tokens_per_minute=6000, burst_s=60.0)
    for _ in range(5):
        lim.release(await lim.acquire(1200))  # release keeps the estimate
    task = asyncio.create_task(lim.acquire(1200))
    await clock.settle()
    assert not task.done()  # 6000 of 6000 used within the window
    await clock.advance(61.0)
    assert task.done()


async def test_charge_when_real_usage_exceeds_estimate_delays_next() -> None:
    clock = VirtualClock()
    lim = make(clock, input_tokens_per_minute=6000, burst_s=60.0)
    t = await lim.acquire(100)
    lim.release(t, input_tokens=5950)
    task = asyncio.create_task(lim.acquire(100))
    await clock.settle()
    assert not task.done()
    await clock.advance(61.0)
    assert task.done()


async def test_pause_until_blocks_admissions() -> None:
    clock = VirtualClock()
    lim = make(clock, requests_per_minute=6000, burst_s=1.0)
    lim.release(await lim.acquire())
    lim.pause_for(5.0)
    task = asyncio.create_task(lim.acquire())
    await clock.settle()
    assert not task.done()
    await clock.advance(4.9)
    assert not task.done()
    await clock.advance(0.2)
    assert task.done()
    assert lim.paused_until == pytest.approx(1005.0)


async def test_concurrency_limit_and_release_wakes_next() -> None:
    clock = VirtualClock()
    lim = make(clock, max_concurrent=2)
    a = await lim.acquire()
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await clock.settle()
    assert not waiter.done() and lim.in_flight == 2
    assert clock.pending() == []  # concurrency waits need no timer
    lim.release(a)
    await clock.settle()
    assert waiter.done() and lim.in_flight == 2
    lim.release(a)  # idempotent
    assert lim.in_flight == 2


async def test_cancelled_waiter_does_not_block_the_queue() -> None:
    clock = VirtualClock()
    lim = make(clock, max_concurrent=1)
    held = await lim.acquire()
    first = asyncio.create_task(lim.acquire())
    second = asyncio.create_task(lim.acquire())
    await clock.settle()
    first.cancel()
    await clock.settle()
    lim.release(held)
    await clock.settle()
    assert second.done() and not second.cancelled()
    assert lim.in_flight == 1


async def test_output_token_limit() -> None:
    clock = VirtualClock()
    lim = make(clock, output_tokens_per_minute=1000, burst_s=60.0)
    t = await lim.acquire(0, 600)
    lim.release(t, output_tokens=900)
    task = asyncio.create_task(lim.acquire(0, 200))
    await clock.settle()
    assert not task.done()
    await clock.advance(61)
    assert task.done()


def test_budget_oversized_request_waits_for_an_empty_window() -> None:
    b = Budget(100, 60.0, 100, now=0.0)
    assert b.delay(0.0, 150) == 0.0  # alone in the window: allowed (bucket goes into debt)
    b.take(0.0, 150)
    assert b.delay(1.0, 10) > 0


def test_bad_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        RateLimiter(requests_per_minute=0)
    with pytest.raises(ConfigError):
        RateLimiter(burst_s=0)
    with pytest.raises(ConfigError):
        RateLimiter(max_concurrent=0)


async def test_real_time_smoke() -> None:
    lim = RateLimiter(requests_per_minute=6000, burst_s=0.01, window_s=60.0)  # 100/s, burst 1
    order: list[int] = []
    t0 = time.monotonic()

    async def one(i: int) -> None:
        t = await lim.acquire()
        order.append(i)
        lim.release(t)

    await asyncio.gather(*(one(i) for i in range(6)))
    assert order == list(range(6))
    assert time.monotonic() - t0 >= 0.045  # 5 waits of 10 ms: a lower bound, never flaky


# --- token estimates and retry policy (pure) -------------------------------------------------


def test_image_token_rules_per_tier() -> None:
    assert image_tokens(1024, 768, "legacy") == 1049  # w*h/750 (vision docs)
    assert image_tokens(1280, 720, "legacy") == 1229
    big = image_tokens(3840, 2160, "legacy")  # resized to <= 1568 long edge, <= 1.15 MP
    assert 1500 <= big <= 1600
    assert image_tokens(1920, 1080, "2576") == 69 * 39  # ceil(w/28)*ceil(h/28)
    assert image_tokens(2576, 2576, "2576") <= 4784
    assert image_tokens(0, 10) == 0


def test_estimate_counts_text_images_and_tool_overhead() -> None:
    from PIL import Image as PILImage

    png = PILImage.new("RGB", (1024, 768), "white")
    conv = Conversation().system("s" * 350).user("u" * 700, image=png)
    est = estimate_input_tokens(conv, tier="legacy", tool_overhead=1000)
    assert est == 1000 + 100 + 200 + 1049 + 4  # overhead + system + text + image + message
    assert estimate_input_tokens(conv, system="x" * 35, tool_overhead=0) == 10 + 200 + 1049 + 4
    assert isinstance(conv.messages[1].parts[1], Image)  # not modified


def test_retry_policy_backoff_bounds() -> None:
    p = RetryPolicy(max_attempts=5, base_s=0.5, cap_s=4.0)
    for retry, low in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        for _ in range(50):
            d = p.backoff_s(retry)
            assert low <= d <= min(4.0, low * 1.5)
    assert p.backoff_s(1, retry_after_s=7.0) == 7.0
    assert p.backoff_s(1, retry_after_s=1e6) == p.max_retry_after_s
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)


def test_retry_after_and_reset_headers() -> None:
    from datetime import UTC, datetime, timedelta

    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({}) is None
    reset = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
    wait = rate_limit_reset_in(
        {
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": reset,
            "anthropic-ratelimit-requests-remaining": "5",
            "anthropic-ratelimit-requests-reset": reset,
        }
    )
    assert wait is not None and 18 < wait <= 20
    assert rate_limit_reset_in({"anthropic-ratelimit-requests-remaining": "3"}) is None


def test_exhausted_headers_after_success_pause_only_for_what_the_next_request_needs() -> None:
    # Anthropic's buckets refill continuously; `-reset` is when they are full again. At 600 RPM
    # with 60 s to full, one request frees after 0.1 s: waiting the full 60 s halves throughput.
    from datetime import UTC, datetime, timedelta

    reset = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    headers = {
        "anthropic-ratelimit-requests-limit": "600",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset,
    }
    one = rate_limit_reset_in(headers, {"requests": 1})
    assert one is not None and 0.09 < one <= 0.1
    full = rate_limit_reset_in(headers)
    assert full is not None and 59 < full <= 60
    tokens = {
        "anthropic-ratelimit-input-tokens-limit": "60000",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": reset,
    }
    wait = rate_limit_reset_in(tokens, {"input-tokens": 3000})
    assert wait is not None and 2.9 < wait <= 3.0
