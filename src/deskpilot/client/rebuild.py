"""Rebuilding an :class:`~deskpilot.client.core.LLMClient` in another process (``run_many``'s
worker processes): the arguments that make an equivalent client there."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .config import read_environment

if TYPE_CHECKING:
    from .core import LLMClient

__all__ = ["rebuild_arguments"]


def rebuild_arguments(client: LLMClient) -> dict[str, Any]:
    """Keyword arguments that build a client equivalent to ``client`` in another process:
    ``LLMClient(**rebuild_arguments(client), limiter=shared)``.

    The resolved models and every :class:`~deskpilot.client.config.ClientConfig` setting are
    included, so an ``api_key=``/``auth_token=`` given as an argument is too: send the dict
    to another process only through a pipe or socket, never to a file. Credentials the
    client read from the environment are not: the other process reads its own (inherited)
    environment. The limiter is not either: pass one shared with this process.

    Raises:
        ConfigError: ``client`` cannot be rebuilt elsewhere: it was given a ``transport=``,
            an ``aws_credentials=``/``google_credentials=`` object or an ``environ=`` that
            differs from ``os.environ``.
    """
    if client._own_transport is None:
        what = "a transport= object"
    elif client._aws_credentials is not None or client._google_credentials is not None:
        what = "an aws_credentials=/google_credentials= object"
    elif client._env != read_environment(None):
        what = "an environ= mapping that differs from os.environ"
    else:
        cfg = client.config
        settings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
        return {"model_names": client.models, **settings}
    raise ConfigError(
        f"This LLMClient was built with {what}, which stays in this process; build it from "
        "model names, settings and environment variables to use it in other processes."
    )
