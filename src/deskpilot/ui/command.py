"""The ``deskpilot ui`` command (click): options, the printed URL, serving until Ctrl-C.

This module imports only click at load time (``deskpilot --help`` stays fast); aiohttp, the
agent and the desktop are imported when the command runs. Options read the environment like
every deskpilot command (``DESKPILOT_MODEL``, ``DESKPILOT_PROVIDER``, ``DESKPILOT_WIDTH``/
``HEIGHT``, ``DESKPILOT_OUT``, ``DESKPILOT_APPROVE``, ``DESKPILOT_APPS``, and click's automatic
``DESKPILOT_UI_<OPTION>``: ``DESKPILOT_UI_PORT``, ``DESKPILOT_UI_DESKTOPS``, ...).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..click_options import provider_option, screen_size_options
from ..errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from ..agent.trajectory import Run
    from .runs import ToolsFactory, UIConfig

__all__ = ["ui"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(short_help="A web page to watch, approve, take over and hand back runs.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    show_envvar=True,
    help="Address to bind; anything but loopback exposes the app (token-protected) "
    "to the network and prints a warning.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    show_envvar=True,
    help="Port (0: any free port; the URL says which).",
)
@click.option(
    "--model",
    default="claude-sonnet-4-5",
    show_default=True,
    envvar="DESKPILOT_MODEL",
    show_envvar=True,
    help="Default model of new runs (each run may name another).",
)
@provider_option()
@screen_size_options()
@click.option(
    "--desktops",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    show_envvar=True,
    help="Runs that may run at once, each on its own desktop; more wait in a queue.",
)
@click.option(
    "--out",
    default="deskpilot-runs",
    show_default=True,
    type=click.Path(file_okay=False),
    envvar="DESKPILOT_OUT",
    show_envvar=True,
    help="Directory that receives the run directories.",
)
@click.option(
    "--approve/--no-approve",
    default=False,
    show_default=True,
    envvar="DESKPILOT_APPROVE",
    show_envvar=True,
    help="Default for new runs: ask in the page before each action.",
)
@click.option(
    "--max-turns",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="DESKPILOT_MAX_TURNS",
    show_envvar=True,
    help="Stop each run after this many model turns.",
)
@click.option(
    "--apps",
    default="terminal",
    show_default=True,
    envvar="DESKPILOT_APPS",
    show_envvar=True,
    help="Apps opened on each desktop: terminal, editor, browser (comma-separated).",
)
@click.option(
    "--fake",
    is_flag=True,
    allow_from_autoenv=False,
    help="Scripted model replies from deskpilot.testing (no API key, no network): "
    "the page works end to end on a real desktop.",
)
@click.option(
    "--replay",
    "replay_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    allow_from_autoenv=False,
    help="Serve a recorded run's model turns to every new run (offline, no key); "
    "its bash and editor calls are confined to the desktop's scratch HOME.",
)
def ui(
    host: str,
    port: int,
    model: str,
    provider: str | None,
    width: int,
    height: int,
    desktops: int,
    out: str,
    approve: bool,
    max_turns: int,
    apps: str,
    fake: bool,
    replay_dir: str | None,
) -> None:
    """Start the web page: give Claude a task, watch the desktop live, approve actions, take
    over and hand back. Prints one URL with the access token (as Jupyter does); open it.

    \b
    Examples:
      deskpilot ui --fake                      # no API key: scripted model, real desktop
      deskpilot ui --approve --desktops 2      # ANTHROPIC_API_KEY set
      deskpilot ui --replay deskpilot-runs/<run>

    Ctrl-C stops every run after its current action, writes their reports and exits; a
    second Ctrl-C cancels them at once.
    """
    from ..desktop.apps import app_spec
    from ..models import resolve_model

    if fake and replay_dir is not None:
        raise click.UsageError("--fake and --replay are two different model sources; pick one.")
    app_list = tuple(a.strip() for a in apps.split(",") if a.strip())
    for name in app_list:
        app_spec(name)  # ConfigError for an unknown app
    replay_run = None
    if replay_dir is not None:
        from ..agent.trajectory import read_run

        replay_run = read_run(replay_dir)
        if replay_run.start is None or replay_run.start.model is None:
            raise ConfigError(f"{replay_dir} has no readable run_start; it cannot be replayed.")
        model = replay_run.start.model
    spec = resolve_model(model, provider)  # ModelNotFoundError with close matches
    if (
        not fake
        and replay_dir is None
        and spec.provider == "anthropic"
        and not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"))
    ):
        raise ConfigError(
            "ANTHROPIC_API_KEY is not set; export it (or ANTHROPIC_AUTH_TOKEN), or try "
            "`deskpilot ui --fake`, which needs no key."
        )
    if shutil.which("Xvfb") is None:
        raise MissingDependencyError(
            "Xvfb is not installed; run `deskpilot doctor --install` (each run gets a desktop)."
        )
    if not _loopback(host):
        click.echo(
            f"Warning: --host {host} makes the app reachable from the network. Anyone with "
            "the URL's token can drive the desktops; plain HTTP exposes the token to the "
            "network path.",
            err=True,
        )
    from .runs import UIConfig

    config = UIConfig(
        model=model,
        provider=provider,
        width=width,
        height=height,
        desktops=desktops,
        out=Path(out),
        approve=approve,
        max_turns=max_turns,
        apps=app_list,
        mode="fake" if fake else "replay" if replay_run is not None else "live",
    )
    sys.exit(asyncio.run(_serve(config, host, port, replay_run)))


async def _serve(config: UIConfig, host: str, port: int, replay_run: Run | None) -> int:
    from .app import create_app, serve
    from .auth import TOKEN_KEY
    from .clients import fake_client_factory, live_client_factory, replay_factories
    from .runs import RunManager

    tools_factory: ToolsFactory | None = None
    if replay_run is not None:
        client_factory, tools_factory = replay_factories(replay_run.run_dir)
    elif config.mode == "fake":
        client_factory = fake_client_factory(config.provider)
    else:
        client_factory = live_client_factory(config.provider)
    manager = RunManager(config, client_factory, tools_factory=tools_factory)
    app = create_app(manager)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown

    def ready(bound: int) -> None:
        mode = {"fake": " (--fake: scripted model, no key)", "replay": " (replaying)"}
        click.echo(f"deskpilot ui{mode.get(config.mode, '')}: runs go to {config.out}/")
        click.echo("Open this URL in a browser (it carries the access token):")
        click.echo(f"    http://{shown}:{bound}/?token={app[TOKEN_KEY]}")
        click.echo("Ctrl-C stops the runs (reports written) and the server.")

    await serve(app, host, port, on_ready=ready)
    click.echo("Stopped; every run's report is written.")
    return 0
