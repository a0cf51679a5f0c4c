"""The pool's typed records: what to do between tasks, and a health snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BetweenTasks", "PoolHealth"]

BetweenTasks = Literal["reset", "keep", "fresh"]
"""What a :class:`~deskpilot.pool.DesktopPool` does with a desktop when its lease ends:

- ``"reset"``: ``await desktop.reset()`` (the DesktopHost contract: every program and window
  gone, a new empty HOME, the configured apps started again); a desktop without ``reset``,
  or whose reset fails or times out, is closed and a fresh one started in its place.
- ``"keep"``: nothing; the next task sees what the last one left (``run_many``'s default).
- ``"fresh"``: the desktop is closed and a new one started from the factory.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolHealth:
    """A snapshot of a :class:`~deskpilot.pool.DesktopPool` (``pool.health()``).

    Slot counts (``warm + leased + starting + empty == size``):

    Attributes:
        size: how many desktops the pool holds (K).
        warm: started, idle and ready to lease.
        leased: in use by a task.
        starting: being started, reset or replaced.
        empty: no desktop: its start failed, or it waits for a lease to start one
            (``keep_warm=False``).
        waiting: tasks waiting in :meth:`~deskpilot.pool.DesktopPool.lease` for a desktop.

    Counters since the pool started:

    Attributes:
        leases: leases handed out.
        starts: desktops started from the factory (the first K included).
        start_failures: factory calls or starts that raised or timed out.
        resets: successful ``reset()`` calls between tasks.
        reset_failures: resets that raised or timed out (each one led to a replacement).
        replaced: desktops closed and started anew because they were dead at lease time
            or their reset failed.
        last_error: the last failure as ``"Type: message"``, or None.
        start_s_mean: mean seconds per successful start, or None before the first.
        reset_s_mean: mean seconds per successful reset, or None before the first.
        closed: the pool was closed.
    """

    size: int
    warm: int
    leased: int
    starting: int
    empty: int
    waiting: int
    leases: int
    starts: int
    start_failures: int
    resets: int
    reset_failures: int
    replaced: int
    last_error: str | None
    start_s_mean: float | None
    reset_s_mean: float | None
    closed: bool

    @property
    def ok(self) -> bool:
        """True when the pool is open and at least one of its desktops is up (warm, leased
        or being started)."""
        return not self.closed and self.warm + self.leased + self.starting > 0
