"""Server-side rate-limit enforcement: RPM, input TPM and output TPM over a sliding window.

The fake server admits a request only if, counting it, no limit is exceeded within the last
``window_s`` seconds (60 s, "per minute", by default). Input tokens are charged at admission
(cache reads excluded, as the Messages API "Rate limits" page documents for ITPM); output
tokens are charged when the reply is built, and a request is refused while the window's
output tokens are already at the limit (the API estimates OTPM from ``max_tokens`` and
settles on the real count; we charge only the real count).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


def most_in_window(times: Iterable[float], window_s: float = 60.0) -> int:
    """The most of ``times`` (seconds, any order) that fall in one window of ``window_s``
    seconds, each window half-open, ``(t - window_s, t]``, as :class:`SlidingWindow` counts
    them: what a limit of N requests "per minute" must keep at or below N."""
    ordered = sorted(times)
    best = first = 0
    for i, t in enumerate(ordered):
        while ordered[first] <= t - window_s:
            first += 1
        best = max(best, i - first + 1)
    return best


class SlidingWindow:
    """Sum of amounts recorded in the last ``window_s`` seconds, capped at ``limit``."""

    __slots__ = ("_events", "_total", "limit", "window_s")

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        if limit <= 0:
            raise ValueError(f"A rate limit must be a positive number, got {limit!r}.")
        self.limit = int(limit)
        self.window_s = float(window_s)
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def used(self, now: float) -> int:
        """Amount recorded within ``(now - window_s, now]``."""
        events = self._events
        cutoff = now - self.window_s
        while events and events[0][0] <= cutoff:
            self._total -= events.popleft()[1]
        return self._total

    def fits(self, now: float, amount: int) -> bool:
        return self.used(now) + amount <= self.limit

    def add(self, now: float, amount: int) -> None:
        if amount > 0:
            self._events.append((now, amount))
            self._total += amount

    def wait_for(self, now: float, amount: int) -> float:
        """Seconds until ``amount`` more fits (inf if it can never fit, 0 if it fits now)."""
        if amount > self.limit:
            return math.inf
        need = self.used(now) + amount - self.limit
        if need <= 0:
            return 0.0
        freed = 0
        for t, n in self._events:
            freed += n
            if freed >= need:
                return max(0.0, t + self.window_s - now)
        return self.window_s

    def full_reset_at(self, now: float) -> float:
        """Monotonic time at which the window will be empty (the newest entry expires)."""
        self.used(now)
        return self._events[-1][0] + self.window_s if self._events else now

    def clear(self) -> None:
        self._events.clear()
        self._total = 0


@dataclass(slots=True)
class Admission:
    """Outcome of :meth:`RateLimits.admit`: ``ok``, or which limit refused and for how long."""

    ok: bool
    limit_name: str = ""
    retry_after_s: float = 0.0


class RateLimits:
    """RPM / ITPM / OTPM windows of one server; any of them may be None (not enforced).

    Args:
        rpm: requests per window; itpm / otpm: input / output tokens per window.
        window_s: window length in seconds (60 in production-like runs; tests may shorten it).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        itpm: int | None = None,
        otpm: int | None = None,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = SlidingWindow(rpm, window_s) if rpm else None
        self.input_tokens = SlidingWindow(itpm, window_s) if itpm else None
        self.output_tokens = SlidingWindow(otpm, window_s) if otpm else None
        self.window_s = window_s
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.requests or self.input_tokens or self.output_tokens)

    def admit(self, input_tokens: int) -> Admission:
        """Charge one request of ``input_tokens`` if every limit allows it."""
        now = self._clock()
        checks: list[tuple[str, SlidingWindow, int]] = []
        if self.requests is not None:
            checks.append(("requests", self.requests, 1))
        if self.input_tokens is not None:
            checks.append(("input_tokens", self.input_tokens, input_tokens))
        if self.output_tokens is not None:
            checks.append(("output_tokens", self.output_tokens, 1))
        for name, window, amount in checks:
            if not window.fits(now, amount):
                return Admission(False, name, window.wait_for(now, amount))
        if self.requests is not None:
            self.requests.add(now, 1)
        if self.input_tokens is not None:
            self.input_tokens.add(now, input_tokens)
        return Admission(True)

    def charge_output(self, output_tokens: int) -> None:
        if self.output_tokens is not None:
            self.output_tokens.add(self._clock(), output_tokens)

    def clear(self) -> None:
        for w in (self.requests, self.input_tokens, self.output_tokens):
            if w is not None:
                w.clear()

    def headers(self) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers for the current state (limits configured only).

        ``-remaining`` is what is left in the window; ``-reset`` is the RFC 3339 time at which
        the window will be fully replenished (Messages API "Rate limits" page, response headers).
        """
        now = self._clock()
        wall_now = time.time()
        out: dict[str, str] = {}
        for name, window in (
            ("requests", self.requests),
            ("input-tokens", self.input_tokens),
            ("output-tokens", self.output_tokens),
        ):
            if window is None:
                continue
            used = window.used(now)
            reset = wall_now + (window.full_reset_at(now) - now)
            out[f"anthropic-ratelimit-{name}-limit"] = str(window.limit)
            out[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, window.limit - used))
            out[f"anthropic-ratelimit-{name}-reset"] = rfc3339(reset)
        return out


def rfc3339(wall_time_s: float) -> str:
    """``2026-11-22T19:30:00Z`` for a Unix time in seconds (rounded up to the second)."""
    return datetime.fromtimestamp(math.ceil(wall_time_s), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["Admission", "RateLimits", "SlidingWindow", "rfc3339"]
