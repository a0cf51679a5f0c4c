"""Command-line options that several commands share (``deskpilot run``, ``serve``, ``ui``,
``eval``, ``fleet``, ``mcp``: the screen size, the provider): one definition each, so their ranges, defaults and environment
variables cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from .models.spec import PLATFORMS

F = TypeVar("F", bound=Callable[..., object])

SIZE = click.IntRange(200, 8192)
"""A desktop side in native pixels (``LocalDesktop`` accepts 64-8192; below 200 no app fits)."""


def screen_size_options(
    width_help: str = "Desktop width in native pixels.",
    height_help: str = "Desktop height in native pixels.",
) -> Callable[[F], F]:
    """``--width`` (default 1280, ``DESKPILOT_WIDTH``) and ``--height`` (default 800,
    ``DESKPILOT_HEIGHT``), each in native pixels within :data:`SIZE`."""

    def decorate(fn: F) -> F:
        for name, default, env, text in (
            ("--height", 800, "DESKPILOT_HEIGHT", height_help),
            ("--width", 1280, "DESKPILOT_WIDTH", width_help),
        ):
            fn = click.option(
                name,
                default=default,
                show_default=True,
                type=SIZE,
                envvar=env,
                show_envvar=True,
                help=text,
            )(fn)
        return fn

    return decorate


def provider_option(
    help: str = "Where to call the model (default: the model's own).",
) -> Callable[[F], F]:
    """``--provider`` (``DESKPILOT_PROVIDER``): one of the platforms of
    :data:`deskpilot.models.spec.PLATFORMS`, or None for the model's own."""
    return click.option(
        "--provider",
        type=click.Choice(PLATFORMS),
        default=None,
        envvar="DESKPILOT_PROVIDER",
        show_envvar=True,
        help=help,
    )


__all__ = ["SIZE", "provider_option", "screen_size_options"]
