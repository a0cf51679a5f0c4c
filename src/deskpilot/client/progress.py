"""The progress bar of a batch: done/total, in flight, tokens and cost (tqdm, to stderr).

:class:`Progress` is a no-op unless enabled, so the client calls it unconditionally and
prints nothing when ``show_progress=False``. The postfix is refreshed at most twice a second
to keep the per-request cost negligible.
"""

from __future__ import annotations

import time
from typing import Any

from ..response import APIResponse

_REFRESH_S = 0.5


class Progress:
    """Counts finished responses; draws a tqdm bar when ``enabled``.

    Args:
        total: the number of prompts.
        enabled: draw the bar (to stderr); when False nothing is printed.
        in_flight: a zero-argument callable giving the client's in-flight count.
    """

    __slots__ = ("_bar", "_in_flight", "_last", "cost", "done", "errors", "tokens", "total")

    def __init__(self, total: int, *, enabled: bool, in_flight: Any = None) -> None:
        self.total = total
        self.done = 0
        self.errors = 0
        self.tokens = 0
        self.cost = 0.0
        self._in_flight = in_flight
        self._last = 0.0
        self._bar: Any = None
        if enabled and total:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="deskpilot", unit="req", dynamic_ncols=True)

    def update(self, response: APIResponse) -> None:
        """Count one finished response."""
        self.done += 1
        if response.is_error:
            self.errors += 1
        self.tokens += response.usage.total_tokens
        self.cost += response.cost
        bar = self._bar
        if bar is None:
            return
        bar.update(1)
        now = time.monotonic()
        if now - self._last >= _REFRESH_S or self.done == self.total:
            self._last = now
            bar.set_postfix(
                in_flight=self._in_flight() if self._in_flight else 0,
                tokens=self.tokens,
                cost=f"${self.cost:.4f}",
                errors=self.errors,
                refresh=False,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


__all__ = ["Progress"]
