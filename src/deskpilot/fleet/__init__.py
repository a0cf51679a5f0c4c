"""Fleets on Ray: desktops as Ray actors, task retries, resume, and one shared rate limit.

``run_fleet(tasks, settings=FleetSettings(...), desktops=N)`` runs tasks over N desktop
actors (each owns a LocalDesktop, or a RemoteDesktop with ``server=``) and writes
``results.jsonl`` plus every run's trajectory into one directory (or, with
``shared_dir=``, leaves the runs on storage every node mounts); ``shared_limiter()``
starts the named actor that holds the fleet's RPM / TPM / concurrency budgets and returns a
:class:`RayLimiter` for ``LLMClient(..., limiter=...)``. Needs ``pip install
'deskpilot[ray]'`` (Ray is imported only when a fleet starts). See ``docs/fleet.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .desktop_actor import DesktopActor, FleetSettings
    from .limit import (
        LIMITER_NAME,
        LimitActor,
        LimitConfig,
        LimiterDiedError,
        RayLimiter,
        shared_limiter,
    )
    from .ray_support import NAMESPACE
    from .records import FleetResult, FleetTask, read_results, read_tasks
    from .run import run_fleet

# Imported on first use, so ``deskpilot fleet --help`` (fleet.command) loads only click.
_WHERE = {
    "DesktopActor": "desktop_actor",
    "FleetSettings": "desktop_actor",
    "LIMITER_NAME": "limit",
    "LimitActor": "limit",
    "LimitConfig": "limit",
    "LimiterDiedError": "limit",
    "RayLimiter": "limit",
    "shared_limiter": "limit",
    "NAMESPACE": "ray_support",
    "FleetResult": "records",
    "FleetTask": "records",
    "read_results": "records",
    "read_tasks": "records",
    "run_fleet": "run",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "LIMITER_NAME",
    "NAMESPACE",
    "DesktopActor",
    "FleetResult",
    "FleetSettings",
    "FleetTask",
    "LimitActor",
    "LimitConfig",
    "LimiterDiedError",
    "RayLimiter",
    "read_results",
    "read_tasks",
    "run_fleet",
    "shared_limiter",
]
