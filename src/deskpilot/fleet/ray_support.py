"""Ray, imported lazily with an install hint, and the fleet's namespace."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import MissingDependencyError

NAMESPACE = "deskpilot"
"""The Ray namespace of the fleet's named actors (limiter, desktops)."""


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        MissingDependencyError: Ray is not installed (the message says how to install it).
    """
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise MissingDependencyError(
            "deskpilot fleets need Ray: pip install 'deskpilot[ray]'."
        ) from exc


def actor_died_errors() -> tuple[type[BaseException], ...]:
    """The Ray exceptions that mean an actor, its worker process or its node is gone (the
    task it ran must be run again elsewhere); an exception the task itself raised
    (``RayTaskError``) is not one of them."""
    exc = import_ray().exceptions
    names = (
        "RayActorError",  # ActorDiedError, ActorUnavailableError
        "WorkerCrashedError",
        "NodeDiedError",
        "ObjectLostError",
        "OwnerDiedError",
        "LocalRayletDiedError",
    )
    return tuple(getattr(exc, n) for n in names if hasattr(exc, n))


__all__ = ["NAMESPACE", "actor_died_errors", "import_ray"]
