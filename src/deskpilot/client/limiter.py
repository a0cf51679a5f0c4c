"""The rate limiter: RPM, input TPM, output TPM and concurrency, FIFO, one timer, no polling.

Each limited quantity (requests, input tokens, output tokens) is held by a :class:`Budget`
that combines two rules:

* a **sliding-window log** (a deque of ``[send_time, amount]``): the amounts sent in any
  window of ``window_s`` seconds never exceed the limit. This is the hard guarantee ("never
  more than RPM requests in any 60 s window"); ``window_s`` defaults to 60 s plus a small
  safety margin so a server that timestamps on arrival never sees a full window either;
* a **token bucket** refilled at ``limit / window_s`` per second whose capacity is
  ``burst_s`` seconds of quota (at least one request): it spreads requests evenly instead of
  letting a whole minute of quota out at once. A request larger than the capacity is admitted
  when the bucket is full and leaves it in debt.

Waiters are served strictly **first in, first out**: a request never overtakes an earlier
one, even a smaller one that would fit (aiolimiter orders smallest-first; we chose FIFO so
batches finish in input order and nobody starves). Waiters are futures; a single timer
(``loop.call_later``) wakes the head of the queue when its budget will be available, and a
release wakes it when concurrency frees. Nothing polls: 20,000 queued prompts cost nothing
while they wait.

Token amounts are estimates when reserved; :meth:`RateLimiter.release` reconciles them with
the response's real usage (refunding or charging the difference in both the window and the
bucket). :meth:`RateLimiter.pause_until` stops all admissions until a time (``retry-after``,
``anthropic-ratelimit-*-reset``).

Clock and timer are injectable (``clock``, ``call_later``) so unit tests drive a virtual
clock instead of sleeping.

:class:`Limiter` is the interface :class:`~deskpilot.client.core.LLMClient` uses (``acquire``
before each attempt, ``release`` with the real usage after it, ``pause_for`` on a 429 or
spent rate-limit headers, ``in_flight`` for the progress bar); :class:`RateLimiter` is the
default, and ``LLMClient(..., limiter=...)`` takes any other implementation, e.g.
:class:`deskpilot.fleet.RayLimiter`, one budget shared by every process of a Ray fleet.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError

_EPS = 1e-9


@runtime_checkable
class Limiter(Protocol):
    """Admission control as :class:`~deskpilot.client.core.LLMClient` uses it.

    The client calls :meth:`acquire` before every HTTP attempt (with its estimates of the
    request's input tokens and of its output tokens), :meth:`release` exactly once per
    admission when the attempt ends (with the real token counts from the response's
    ``usage``, 0 for a refund, or None to keep the estimate), and :meth:`pause_for` when a
    429's ``retry-after`` or spent ``anthropic-ratelimit-*`` headers say to stop sending.
    :class:`RateLimiter` (in process) is the default; an implementation shared across
    processes must keep the same meaning for every call.
    """

    @property
    def in_flight(self) -> int:
        """Requests admitted by this limiter object and not yet released."""
        ...

    async def acquire(self, input_tokens: float = 0, output_tokens: float = 0) -> Any:
        """Wait until one request with these token estimates may be sent; returns a ticket
        (opaque) for :meth:`release`. Cancelling the wait gives the admission back."""
        ...

    def release(
        self,
        ticket: Any,
        *,
        input_tokens: float | None = None,
        output_tokens: float | None = None,
    ) -> None:
        """End the request of ``ticket`` (idempotent, never blocks): free its concurrency
        slot and replace its token estimates by the real counts (None keeps one)."""
        ...

    def pause_for(self, seconds: float) -> None:
        """Admit nothing for ``seconds`` from now (every waiter, not only the caller)."""
        ...


class Budget:
    """One limited quantity: a sliding-window log plus a token bucket.

    Args:
        limit: the most ``amount`` per ``window_s`` seconds (requests or tokens).
        window_s: the window length in seconds.
        burst: the bucket capacity (in the same unit as ``limit``), at least 1.
        now: the clock time the bucket starts full at.
    """

    __slots__ = ("capacity", "level", "limit", "log", "rate", "stamp", "total", "window_s")

    def __init__(self, limit: float, window_s: float, burst: float, now: float) -> None:
        if limit <= 0:
            raise ConfigError(f"A rate limit must be positive, not {limit}.")
        self.limit = float(limit)
        self.window_s = float(window_s)
        self.rate = self.limit / self.window_s
        self.capacity = max(float(burst), 1.0)
        self.level = self.capacity
        self.stamp = now
        self.log: deque[list[float]] = deque()
        self.total = 0.0

    def _advance(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
        log = self.log
        cutoff = now - self.window_s
        while log and log[0][0] <= cutoff:
            self.total -= log.popleft()[1]
        if not log:
            self.total = 0.0

    def delay(self, now: float, amount: float) -> float:
        """Seconds from ``now`` until ``amount`` may be taken (0 when it may now)."""
        self._advance(now)
        d = 0.0
        need = min(amount, self.capacity)
        if self.level + _EPS < need:
            d = (need - self.level) / self.rate
        if self.log and self.total + amount > self.limit + _EPS:
            excess = self.total + amount - self.limit
            freed = 0.0
            until = self.log[-1][0]
            for t, a in self.log:
                freed += a
                if freed + _EPS >= excess:
                    until = t
                    break
            d = max(d, until + self.window_s - now)
        return d

    def take(self, now: float, amount: float) -> list[float]:
        """Record ``amount`` sent at ``now``; returns the log entry (for :meth:`adjust`)."""
        entry = [now, float(amount)]
        self.level -= amount
        self.log.append(entry)
        self.total += amount
        return entry

    def adjust(self, entry: list[float], amount: float, now: float) -> None:
        """Replace the amount of ``entry`` by the real ``amount`` (refund or charge)."""
        delta = amount - entry[1]
        if delta == 0:
            return
        self._advance(now)
        self.level = min(self.capacity, self.level - delta)
        if entry[0] > now - self.window_s and self.log:  # still inside the window
            self.total = max(0.0, self.total + delta)
        entry[1] = float(amount)

    def restamp(self, entry: list[float], now: float) -> list[float]:
        """Count ``entry``'s amount from ``now`` (its end) instead of its send time: the old
        entry keeps its place with amount 0 and a new one is appended (the log stays in time
        order). Returns the entry that now holds the amount."""
        self._advance(now)
        if entry[0] <= now - self.window_s or entry[1] == 0:
            return entry  # already out of the window: nothing to move
        moved = [now, entry[1]]
        entry[1] = 0.0
        self.log.append(moved)
        return moved

    def used(self, now: float) -> float:
        """The amount sent in the window ending at ``now``."""
        self._advance(now)
        return self.total


class Ticket:
    """An admission: hold it while the request is in flight, then :meth:`RateLimiter.release`."""

    __slots__ = ("input_entry", "output_entry", "released", "request_entry")

    def __init__(
        self,
        request_entry: list[float] | None,
        input_entry: list[float] | None,
        output_entry: list[float] | None,
    ) -> None:
        self.request_entry = request_entry
        self.input_entry = input_entry
        self.output_entry = output_entry
        self.released = False


class RateLimiter:
    """FIFO admission control for requests under RPM, input/output TPM and concurrency.

    Args:
        requests_per_minute: the RPM limit, or None for none.
        input_tokens_per_minute: the input-TPM limit (estimated tokens), or None.
        output_tokens_per_minute: the output-TPM limit, or None.
        max_concurrent: the most requests in flight at once, or None.
        burst_s: the bucket capacity in seconds of quota (min. one request).
        window_s: the sliding window in seconds (60 for per-minute limits).
        safety_s: seconds added to the window so arrival-time jitter at the server never
            shows more than the limit in a window (default ``window_s / 240``, 0.25 s per
            minute; the long-run rate is ``limit * window_s / (window_s + safety_s)``).
        clock: a monotonic clock in seconds (default ``time.monotonic``).
        call_later: ``(delay_s, callback) -> handle with cancel()``; default the running
            loop's ``call_later``.
        arrival_slack_s: 0 (default): a request counts in the window from its admission.
            > 0: a request released within this many seconds of its admission counts from
            its release instead, so a server that counts it on arrival (anywhere between
            the two) never sees more than the limit however long the request took to leave
            (a fleet's shared limiter: a cross-process call and a cold connection sit
            between admission and sending). Costs up to ``arrival_slack_s / window_s`` of
            the rate when requests take that long.

    Raises:
        ConfigError: a non-positive limit or burst.
    """

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        input_tokens_per_minute: float | None = None,
        output_tokens_per_minute: float | None = None,
        max_concurrent: int | None = None,
        burst_s: float = 1.0,
        window_s: float = 60.0,
        safety_s: float | None = None,
        clock: Callable[[], float] | None = None,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
        arrival_slack_s: float = 0.0,
    ) -> None:
        if burst_s <= 0:
            raise ConfigError(f"burst_s must be positive seconds, not {burst_s}.")
        if max_concurrent is not None and max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be at least 1, not {max_concurrent}.")
        if arrival_slack_s < 0:
            raise ConfigError(f"arrival_slack_s must be >= 0 seconds, not {arrival_slack_s}.")
        self._clock = clock or time.monotonic
        self._call_later = call_later
        self._slack_s = arrival_slack_s
        now = self._clock()
        span = window_s + (window_s / 240.0 if safety_s is None else safety_s)

        def budget(limit: float | None) -> Budget | None:
            if limit is None:
                return None
            return Budget(limit, span, limit * burst_s / window_s, now)

        self.requests = budget(requests_per_minute)
        self.input_tokens = budget(input_tokens_per_minute)
        self.output_tokens = budget(output_tokens_per_minute)
        self.max_concurrent = max_concurrent
        self._in_flight = 0
        self._paused_until = 0.0
        self._queue: deque[tuple[asyncio.Future[Ticket], float, float]] = deque()
        self._timer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- introspection -----------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet released."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests queued for admission (cancelled ones may still be counted briefly)."""
        return len(self._queue)

    @property
    def paused_until(self) -> float:
        """The clock time before which nothing is admitted (0 when not paused)."""
        return self._paused_until

    # --- core --------------------------------------------------------------------------
    def _delay(self, now: float, inp: float, out: float) -> float | None:
        """Seconds until a request may go, or None when only concurrency blocks it."""
        if self.max_concurrent is not None and self._in_flight >= self.max_concurrent:
            return None
        d = self._paused_until - now
        if self.requests is not None:
            d = max(d, self.requests.delay(now, 1.0))
        if self.input_tokens is not None and inp:
            d = max(d, self.input_tokens.delay(now, inp))
        if self.output_tokens is not None and out:
            d = max(d, self.output_tokens.delay(now, out))
        return d

    def _take(self, now: float, inp: float, out: float) -> Ticket:
        self._in_flight += 1
        return Ticket(
            self.requests.take(now, 1.0) if self.requests is not None else None,
            self.input_tokens.take(now, inp) if self.input_tokens is not None else None,
            self.output_tokens.take(now, out) if self.output_tokens is not None else None,
        )

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        call_later = self._call_later or asyncio.get_running_loop().call_later
        self._timer = call_later(max(delay, 0.0), self._wake)

    def _wake(self) -> None:
        """Admit queued waiters from the head while they fit; arm the timer for the next."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        q = self._queue
        if not q:
            return
        now = self._clock()
        while q:
            fut, inp, out = q[0]
            if fut.done():
                q.popleft()
                continue
            d = self._delay(now, inp, out)
            if d is None:
                return  # a release will wake us
            if d > _EPS:
                self._arm(d)
                return
            q.popleft()
            fut.set_result(self._take(now, inp, out))

    async def acquire(self, input_tokens: float = 0, output_tokens: float = 0) -> Ticket:
        """Wait (FIFO) until one request with these token estimates may be sent.

        Returns:
            a :class:`Ticket`; pass it to :meth:`release` when the request is answered.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (process_prompts_sync): fresh waiters
            self._loop = loop
            self._queue.clear()
            self._timer = None
            self._in_flight = 0
        if not self._queue:
            now = self._clock()
            d = self._delay(now, input_tokens, output_tokens)
            if d is not None and d <= _EPS:
                return self._take(now, input_tokens, output_tokens)
        fut: asyncio.Future[Ticket] = loop.create_future()
        self._queue.append((fut, float(input_tokens), float(output_tokens)))
        if len(self._queue) == 1:
            self._wake()
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result(), input_tokens=0, output_tokens=0)
            elif self._queue and self._queue[0][0] is fut:
                loop.call_soon(self._wake)
            raise

    def release(
        self,
        ticket: Ticket,
        *,
        input_tokens: float | None = None,
        output_tokens: float | None = None,
    ) -> None:
        """End a request: free its concurrency slot and reconcile its token reservations
        with the real counts (None keeps the estimate). Idempotent."""
        if ticket.released:
            return
        ticket.released = True
        self._in_flight -= 1
        if input_tokens is not None or output_tokens is not None:
            now = self._clock()
            if input_tokens is not None and ticket.input_entry is not None:
                assert self.input_tokens is not None
                self.input_tokens.adjust(ticket.input_entry, input_tokens, now)
            if output_tokens is not None and ticket.output_entry is not None:
                assert self.output_tokens is not None
                self.output_tokens.adjust(ticket.output_entry, output_tokens, now)
        if self._slack_s:
            self._restamp(ticket)
        if self._queue:
            self._wake()

    def _restamp(self, ticket: Ticket) -> None:
        """Count a ticket's amounts from now when it ends within ``arrival_slack_s``."""
        now = self._clock()
        pairs = (
            (self.requests, ticket.request_entry),
            (self.input_tokens, ticket.input_entry),
            (self.output_tokens, ticket.output_entry),
        )
        for budget, entry in pairs:
            if budget is not None and entry is not None and now - entry[0] <= self._slack_s:
                budget.restamp(entry, now)

    def pause_until(self, when: float) -> None:
        """Admit nothing before clock time ``when`` (seconds, same clock as ``clock``)."""
        if when > self._paused_until:
            self._paused_until = when
            if self._queue and self._loop is not None:
                self._wake()

    def pause_for(self, seconds: float) -> None:
        """Admit nothing for ``seconds`` from now."""
        self.pause_until(self._clock() + max(0.0, seconds))


__all__ = ["Budget", "Limiter", "RateLimiter", "Ticket"]
