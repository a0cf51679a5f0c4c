"""Desktop pools: K desktops kept warm and leased one task at a time.

:class:`DesktopPool` (:mod:`.core`) fills its slots from a factory (``LocalDesktop``, a
``RemoteDesktop`` per URL, ...), leases one desktop per task, resets it between tasks
through the DesktopHost contract of :mod:`deskpilot.desktop.base` (a fresh desktop when the
reset fails), replaces a dead one and reports a :class:`PoolHealth` snapshot (:mod:`.health`).
``run_many(..., pool=...)`` runs its tasks on one. Usage: README, "Scale out".
"""

from deskpilot.pool.core import DesktopPool
from deskpilot.pool.health import BetweenTasks, PoolHealth

__all__ = ["BetweenTasks", "DesktopPool", "PoolHealth"]
