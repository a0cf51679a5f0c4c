"""Retry policy: how many attempts, how long to wait, and the rate-limit headers.

Which failures are retried is decided by :func:`deskpilot.client.classify.classify`.
Backoff: exponential with jitter, ``min(cap_s, base_s * 2**(n-1)) * uniform(1, 1.5)`` before
retry ``n`` (so never less than ``base_s`` and never more than ``cap_s``); a ``retry-after``
or ``retry-after-ms`` header replaces it when present (the Anthropic SDK's rule,
https://github.com/anthropics/anthropic-sdk-python, ``_base_client.py``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ..errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many attempts and how long between them.

    Attributes:
        max_attempts: total attempts per prompt (not retries), at least 1.
        base_s: seconds before the first retry (the minimum wait).
        cap_s: the longest wait between attempts, in seconds.
        max_retry_after_s: the longest ``retry-after`` honoured, in seconds.

    Raises:
        ConfigError: a value out of range.
    """

    max_attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, not {self.max_attempts}.")
        if self.base_s < 0 or self.cap_s < self.base_s:
            raise ConfigError(
                f"Backoff needs 0 <= retry_base_s <= retry_cap_s; got {self.base_s} and "
                f"{self.cap_s}."
            )

    def backoff_s(
        self, retry: int, retry_after_s: float | None = None, jitter: float | None = None
    ) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first retry).

        Args:
            retry: which retry this is, from 1.
            retry_after_s: the server's ``retry-after``, seconds (wins when given, capped
                at ``max_retry_after_s``).
            jitter: the factor in [1, 1.5] the backoff is multiplied by (None: random).
        """
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_retry_after_s)
        if jitter is None:
            jitter = random.uniform(1.0, 1.5)
        d = min(self.cap_s, self.base_s * (2 ** max(retry - 1, 0)))
        return min(self.cap_s, d * jitter)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return float(ra)
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(ra).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_RESOURCES = ("requests", "input-tokens", "output-tokens", "tokens")


def rate_limit_reset_in(
    headers: Mapping[str, str], needed: Mapping[str, float] | None = None
) -> float | None:
    """Seconds to pause because a resource's ``anthropic-ratelimit-<resource>-remaining`` is 0,
    or None when nothing is exhausted (Anthropic "Rate limits" page).

    The API replenishes continuously (a token bucket) and ``-reset`` is when the bucket is
    *full* again. With ``needed`` (units the next request needs per resource, e.g.
    ``{"requests": 1, "input-tokens": 1200}``) and a ``-limit`` header, the pause is only the
    time to free those units: ``(reset - now) * needed / limit``. Without them it is the
    whole time to ``-reset`` (the conservative answer, used after a 429).
    """
    latest: float | None = None
    for res in _RESOURCES:
        remaining = headers.get(f"anthropic-ratelimit-{res}-remaining")
        if remaining is None or remaining.strip() not in ("0", "0.0"):
            continue
        reset = headers.get(f"anthropic-ratelimit-{res}-reset")
        if not reset:
            continue
        try:
            when = datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        wait = max(0.0, when - time.time())
        if needed is not None and res in needed:
            try:
                limit = float(headers.get(f"anthropic-ratelimit-{res}-limit") or 0)
            except ValueError:
                limit = 0.0
            if limit > 0:
                wait *= min(1.0, max(needed[res], 1.0) / limit)
        latest = wait if latest is None else max(latest, wait)
    return latest


__all__ = ["RetryPolicy", "parse_retry_after", "rate_limit_reset_in"]
