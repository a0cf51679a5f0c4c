"""The ``deskpilot`` command: run, desktop, replay, report, doctor, demo (click).

Expected failures (no API key, no Xvfb, unknown model, not a run directory) print ONE line
``Error: <what happened and what to do>`` on stderr and exit with status 1; ``--debug``
shows the traceback and debug logs instead. Heavy modules are imported inside each command,
so ``deskpilot --help`` stays fast and works on a machine without the desktop packages.

Every option a user would set once for all runs also reads an environment variable, shown in
``--help``: ``DESKPILOT_MODEL``, ``DESKPILOT_PROVIDER``, ``DESKPILOT_WIDTH``/``HEIGHT``,
``DESKPILOT_MAX_TURNS``, ``DESKPILOT_OUT``, ``DESKPILOT_APPS``, ``DESKPILOT_BUDGET_USD``/
``TOKENS``, ``DESKPILOT_APPROVE``, ``DESKPILOT_DEBUG``, ``DESKPILOT_DEBUG_HTTP``; other
options take click's automatic ``DESKPILOT_<COMMAND>_<OPTION>`` (https://click.palletsprojects.com/en/stable/options/#values-from-environment-variables).
A command-line option wins over its variable. ``--replay``, ``--version`` and
``doctor --install`` are command-line only. The async bodies and signal handling of
``run``, ``demo`` and ``desktop`` are in :mod:`deskpilot.cli_run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .cli_show import step_printer
from .click_options import SIZE, provider_option
from .errors import ConfigError, DeskpilotError, MissingDependencyError
from .eval.command import eval_group
from .fleet.command import fleet as fleet_command
from .mcp.command import mcp as mcp_command
from .remote.option import computer_option
from .server.command import serve as serve_command
from .terminal import visible
from .ui.command import ui as ui_command

DEFAULT_MODEL = "claude-sonnet-4-5"
ENV_PREFIX = "DESKPILOT"
APPS = ("terminal", "editor", "browser")

__all__ = ["main"]


class _Group(click.Group):
    """A click group that turns expected errors into one line and a non-zero exit, and lists
    its commands in the order a new user needs them."""

    ORDER = ("doctor", "demo", "run", "desktop", "replay", "report")

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(self.commands)
        return sorted(names, key=lambda n: self.ORDER.index(n) if n in self.ORDER else 99)

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # `deskpilot doctor | head`: the reader left; say nothing
            # https://docs.python.org/3/library/signal.html#note-on-sigpipe
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(1)
        except (DeskpilotError, OSError) as exc:
            if debug:
                raise
            raise click.ClickException(visible(str(exc), keep_newlines=True)) from exc
        except Exception as exc:
            if debug:
                raise
            raise click.ClickException(
                f"Unexpected {type(exc).__name__}: {visible(str(exc), keep_newlines=True)} "
                "(run `deskpilot --debug ...` for the traceback and report it)."
            ) from exc


def _option(*decls: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``click.option`` with its environment variable shown in ``--help``: ``envvar=`` for
    the settings several commands share (``DESKPILOT_MODEL``, ``DESKPILOT_OUT``, ...), else
    click's automatic ``DESKPILOT_<COMMAND>_<OPTION>``."""
    kwargs.setdefault("show_envvar", True)
    return click.option(*decls, **kwargs)


CONTEXT = {
    "help_option_names": ["-h", "--help"],
    "auto_envvar_prefix": ENV_PREFIX,
    "max_content_width": 100,
}


@click.group(name="deskpilot", cls=_Group, context_settings=CONTEXT)
@_option(
    "--debug",
    is_flag=True,
    envvar="DESKPILOT_DEBUG",
    help="Show tracebacks and debug logs instead of one-line errors.",
)
@_option(
    "--debug-http",
    is_flag=True,
    envvar="DESKPILOT_DEBUG_HTTP",
    help="With --debug, also show the HTTP libraries' debug logs (botocore, urllib3, "
    "aiohttp: signed requests); credentials are cut from every log line either way.",
)
@click.version_option(__version__, prog_name="deskpilot", allow_from_autoenv=False)
def main(debug: bool, debug_http: bool) -> None:
    """deskpilot: Claude computer use on a local virtual desktop.

    \b
    First steps:
      deskpilot doctor                 check the desktop packages and the API key
      deskpilot demo                   a scripted run (no API key needed): opens a text
                                       editor, writes and saves hello.py, runs it
      deskpilot run "Open a terminal and show the date"
                                       a live run (needs ANTHROPIC_API_KEY)

    Every run writes deskpilot-runs/<time>-<task>/ with trajectory.jsonl, the screenshots,
    report.html and run.gif. Run `deskpilot COMMAND --help` for the options of a command.
    """
    from .cli_logging import configure_logging

    configure_logging(debug, debug_http=debug_http)


# --- shared helpers --------------------------------------------------------------------------


def _require_xvfb(remote: str | None = None) -> None:
    from .install import INSTALL_HINT

    missing = [p for p in ("Xvfb", "openbox") if shutil.which(p) is None and not remote]
    if missing:
        raise MissingDependencyError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed, so "
            f"no virtual desktop can start; {INSTALL_HINT}."
        )


def _require_key(provider: str) -> None:
    """Fail early, before a desktop starts, when the provider has no credentials."""
    if provider == "anthropic" and not (
        os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
    ):
        raise ConfigError(
            "ANTHROPIC_API_KEY is not set; export it (export ANTHROPIC_API_KEY=sk-ant-...) "
            "or a bearer token as ANTHROPIC_AUTH_TOKEN, or try `deskpilot demo`, which needs "
            "no key."
        )
    if provider == "gateway" and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            "OPENAI_API_KEY is not set (the gateway provider sends it as the Bearer token); "
            "export it and OPENAI_BASE_URL, or try `deskpilot demo`, which needs no key."
        )
    if provider == "vertex" and not os.environ.get("CLOUD_ML_REGION"):
        raise ConfigError(
            "CLOUD_ML_REGION is not set; Vertex AI needs a region (export CLOUD_ML_REGION="
            "us-east5, or global) and Google credentials, or try `deskpilot demo`."
        )
    if provider == "bedrock":
        try:
            import botocore.session
        except ImportError as exc:
            raise MissingDependencyError(
                "The bedrock provider needs botocore; run `pip install 'deskpilot[bedrock]'`."
            ) from exc
        if botocore.session.get_session().get_credentials() is None:
            raise ConfigError(
                "No AWS credentials were found (env vars, ~/.aws profiles, SSO or instance "
                "role); configure them (e.g. `aws configure`) or try `deskpilot demo`."
            )


def _parse_apps(value: str) -> tuple[str, ...]:
    apps = tuple(a.strip() for a in value.split(",") if a.strip())
    bad = [a for a in apps if a not in APPS]
    if bad:
        raise click.BadParameter(
            f"unknown app(s) {', '.join(bad)}; choose from {', '.join(APPS)} (comma-separated)."
        )
    return apps


def _file_url(path: Path) -> str:
    return path.resolve().as_uri()


def _write_outputs(run_dir: Path) -> Path:
    from .agent.report import write_outputs

    outputs = write_outputs(run_dir)  # the HTML first: a failing animation never costs it
    if outputs.animation_error:
        click.echo(f"Warning: {visible(outputs.animation_error)}", err=True)
    return outputs.report


# --- run -------------------------------------------------------------------------------------


@main.command(short_help="Run a task with Claude on a fresh desktop (needs an API key).")
@click.argument("task", required=False)
@_option(
    "--model",
    default=DEFAULT_MODEL,
    envvar="DESKPILOT_MODEL",
    show_default=True,
    help="Registry name or API id (claude-sonnet-4-5, claude-opus-4-1, claude-4-sonnet, ...).",
)
@provider_option(
    "Where to call the model: anthropic (ANTHROPIC_API_KEY), bedrock (AWS credentials), "
    "vertex (CLOUD_ML_REGION + Google credentials) or gateway (OPENAI_BASE_URL + "
    "OPENAI_API_KEY). Default: the model's own."
)
@_option(
    "--width",
    default=1280,
    show_default=True,
    type=SIZE,
    envvar="DESKPILOT_WIDTH",
    help="Desktop width in native pixels.",
)
@_option(
    "--height",
    default=800,
    show_default=True,
    type=SIZE,
    envvar="DESKPILOT_HEIGHT",
    help="Desktop height in native pixels.",
)
@_option(
    "--max-turns",
    envvar="DESKPILOT_MAX_TURNS",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Stop after this many model turns.",
)
@_option(
    "--out",
    default="deskpilot-runs",
    show_default=True,
    type=click.Path(file_okay=False),
    envvar="DESKPILOT_OUT",
    help="Directory that receives the run directory.",
)
@_option(
    "--approve",
    is_flag=True,
    envvar="DESKPILOT_APPROVE",
    help="Ask before each action (default No); bash, editor and keyboard actions are shown "
    "in full, control characters visible.",
)
@click.option(
    "--replay",
    "replay_dir",
    allow_from_autoenv=False,
    type=click.Path(),
    default=None,
    help="Serve a recorded run's model turns from a local fake server (offline, no key); "
    "their calls are shown first, and bash, editor and keyboard calls asked about.",
)
@click.option(
    "--yes",
    "-y",
    "assume_yes",
    is_flag=True,
    allow_from_autoenv=False,  # consent is given on the command line, never by the environment
    help="With --replay: run the recorded bash/editor calls (inside the desktop's scratch "
    "directory) and keyboard input without asking.",
)
@_option(
    "--budget-usd",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    envvar="DESKPILOT_BUDGET_USD",
    help="Stop once the run cost this many US dollars.",
)
@_option(
    "--budget-tokens",
    type=click.IntRange(min=1),
    default=None,
    envvar="DESKPILOT_BUDGET_TOKENS",
    help="Stop once the run used this many tokens.",
)
@_option(
    "--apps",
    default="terminal",
    show_default=True,
    envvar="DESKPILOT_APPS",
    help=f"Apps to open on the desktop at start, comma-separated: {', '.join(APPS)}.",
)
@computer_option
@click.pass_context
def run(
    ctx: click.Context,
    task: str | None,
    model: str,
    provider: str | None,
    width: int,
    height: int,
    max_turns: int,
    out: str,
    approve: bool,
    replay_dir: str | None,
    assume_yes: bool,
    budget_usd: float | None,
    budget_tokens: int | None,
    apps: str,
    computer_url: str | None,
) -> None:
    """Run TASK with Claude on a fresh local desktop; write the trajectory and report.

    \b
    Examples:
      export ANTHROPIC_API_KEY=sk-ant-...
      deskpilot run "Open a text editor and write a haiku about X11" --max-turns 30
      deskpilot run --replay deskpilot-runs/<run>    # the recorded model turns, offline

    With --replay, TASK and --model default to the recorded ones; the recorded turns' tool
    calls are shown first, and bash/editor calls (confined to the desktop's scratch
    directory) and keyboard input are asked about (or --yes). Press Ctrl-C once to stop
    after the current action (the report is still written); twice to abort at once.
    """
    from .models import resolve_model

    app_list = _parse_apps(apps)
    replay_run = None
    if replay_dir is not None:
        from .agent.trajectory import read_run

        replay_run = read_run(replay_dir)  # ConfigError: not a run directory; read ONCE
        recorded = replay_run.start
        if recorded is None or not any(recorded.tool_versions.model_dump().values()):
            raise ConfigError(
                f"{replay_dir} records no tool versions (no readable run_start with "
                "tool_versions), so its calls cannot be routed to confined tools; only runs "
                "recorded by deskpilot's Agent can be replayed."
            )
        if ctx.get_parameter_source("model") is click.core.ParameterSource.DEFAULT:
            model = str(recorded.model or model)
        task = task or recorded.task
    elif assume_yes:
        raise click.UsageError("--yes only goes with --replay.")
    if not task:
        raise click.UsageError("Missing argument 'TASK' (the instruction for Claude).")
    spec = resolve_model(model, provider)  # ModelNotFoundError with close matches
    if replay_run is None:
        _require_key(spec.provider)
    else:
        from .agent.replay import plan_calls, recorded_calls

        assert replay_run.start is not None
        plan = plan_calls(recorded_calls(replay_run), replay_run.start.tool_versions)
        from .cli_show import confirm_plan

        confirm_plan(
            f"The recorded model turns of {visible(str(replay_run.run_dir))} make "
            f"{len(plan)} tool call(s):",
            plan,
            replay_run.problems,
            assume_yes,
        )
    _require_xvfb(remote=computer_url)  # a desktop of a computer server needs none here
    from .cli_run import run_task

    code = asyncio.run(
        run_task(
            task,
            model=model,
            provider=provider,
            size=(width, height),
            max_turns=max_turns,
            out=out,
            approve=approve,
            replay=replay_run,
            budget_usd=budget_usd,
            budget_tokens=budget_tokens,
            apps=app_list,
            step_printer=step_printer,
            write_outputs=_write_outputs,
            computer_url=computer_url,
        )
    )
    sys.exit(code)


# --- desktop ---------------------------------------------------------------------------------


@main.command(short_help="Start a virtual desktop and keep it until Ctrl-C.")
@_option(
    "--width",
    default=1280,
    show_default=True,
    type=SIZE,
    envvar="DESKPILOT_WIDTH",
    help="Width in native pixels.",
)
@_option(
    "--height",
    default=800,
    show_default=True,
    type=SIZE,
    envvar="DESKPILOT_HEIGHT",
    help="Height in native pixels.",
)
@_option(
    "--apps",
    default="terminal",
    show_default=True,
    envvar="DESKPILOT_APPS",
    help=f"Apps to open at start, comma-separated: {', '.join(APPS)} (empty for none).",
)
def desktop(width: int, height: int, apps: str) -> None:
    """Start a local virtual desktop (Xvfb + openbox) and keep it until Ctrl-C.

    Prints its DISPLAY and how to reach it: run programs on it, take screenshots, point your
    own code at it with X11Display(":N").
    """
    from .cli_run import serve_desktop

    app_list = _parse_apps(apps) if apps.strip() else ()
    _require_xvfb()
    asyncio.run(serve_desktop(width, height, app_list))


# --- replay / report / doctor ----------------------------------------------------------------


@main.command(short_help="Re-execute a recorded run on a fresh desktop and compare.")
@click.argument("run_dir", type=click.Path())
@click.option(
    "--max-changed-share",
    type=float,
    default=0.005,
    show_default=True,
    help="A screenshot diverges when more than this share (0-1) of its pixels changed.",
)
@click.option("--no-text", is_flag=True, help="Do not compare the tools' result texts.")
@click.option("--stop-at-first", is_flag=True, help="Stop at the first divergence.")
@click.option(
    "--yes",
    "-y",
    "assume_yes",
    is_flag=True,
    allow_from_autoenv=False,  # consent is given on the command line, never by the environment
    help="Run the recorded bash/editor actions (inside a scratch directory) and keyboard input "
    "without asking.",
)
def replay(
    run_dir: str, max_changed_share: float, no_text: bool, stop_at_first: bool, assume_yes: bool
) -> None:
    """Re-execute a recorded run's actions on a fresh desktop and compare.

    First shows every action that will run. Recorded bash and text-editor actions run on
    THIS machine (confined to the fresh desktop's scratch directory: bash starts there, the
    editor may not leave it), and keyboard input goes to the desktop, where a terminal runs
    it on THIS machine: both only run after you confirm, or with --yes. Calls of unknown
    tools are shown and never run.
    Prints where results or screens diverge from the recording; exits 1 if any do.
    To replay the MODEL instead (the whole loop offline), use `deskpilot run --replay DIR`.
    """
    from .agent.replay import replay_plan
    from .agent.trajectory import read_run
    from .cli_run import replay_command
    from .cli_show import confirm_plan

    run = read_run(run_dir)  # ConfigError: not a run directory; read ONCE (what is approved runs)
    plan = replay_plan(run)
    consent = confirm_plan(
        f"The replay of {visible(str(run.run_dir))} will run {len(plan)} recorded action(s):",
        plan,
        run.problems,
        assume_yes,
    )
    _require_xvfb()
    sys.exit(
        asyncio.run(replay_command(run, max_changed_share, not no_text, stop_at_first, consent))
    )


@main.command(short_help="Write report.html and run.gif/run.mp4 of a run directory.")
@click.argument("run_dir", type=click.Path())
@click.option(
    "--no-animation", is_flag=True, help="Only write report.html (skip run.gif / run.mp4)."
)
def report(run_dir: str, no_animation: bool) -> None:
    """Write (or refresh) RUN_DIR/report.html, then RUN_DIR/run.gif (+ run.mp4 with ffmpeg).

    Lines of the trajectory that cannot be read are shown in the page as unreadable, with
    the reason; the page is written before the animation, so it survives an animation
    failure.
    """
    from .agent.report import write_outputs

    outputs = write_outputs(run_dir, animation=not no_animation)
    for extra in outputs.animations:
        click.echo(f"Animation: {extra}")
    if outputs.animation_error:
        click.echo(f"Warning: {outputs.animation_error}", err=True)
    click.echo(f"Report: {outputs.report}\n        {_file_url(outputs.report)}")


@main.command(short_help="Check what the desktop needs; install it with --install.")
@click.option(
    "--install",
    "do_install",
    is_flag=True,
    allow_from_autoenv=False,  # installing packages is asked for on the command line only
    help="Install the missing Debian/Ubuntu packages (apt-get; sudo when not root), then check.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    allow_from_autoenv=False,
    help="With --install: print what would be installed, run nothing.",
)
def doctor(do_install: bool, dry_run: bool) -> None:
    """Check the desktop programs, Python modules and API key; print how to fix what is
    missing, and the versions to quote in a bug report.

    With --install, first install the missing system packages (the same list as
    `python -m deskpilot.install`). Exits 1 when something required is missing.
    """
    from .doctor import check, format_report, format_versions, versions
    from .install import install

    if dry_run and not do_install:
        raise click.UsageError(
            "--dry-run only goes with --install (deskpilot doctor --install --dry-run)."
        )
    if do_install:
        code = install(dry_run=dry_run, echo=click.echo)
        if code != 0:
            sys.exit(code)
        if dry_run:
            return
        click.echo("")
    checks = check()
    click.echo(format_report(checks))
    click.echo("")
    click.echo(format_versions(versions()))
    failed = [c for c in checks if not c.ok and c.required]
    sys.exit(1 if failed else 0)


# --- demo ------------------------------------------------------------------------------------


@main.command(short_help="The scripted demo: no API key, real desktop, verified result.")
@_option(
    "--out",
    default="deskpilot-runs",
    show_default=True,
    type=click.Path(file_okay=False),
    envvar="DESKPILOT_OUT",
    help="Directory that receives the run directory.",
)
@_option("--keep-open", is_flag=True, help="Keep the desktop running after the demo until Ctrl-C.")
def demo(out: str, keep_open: bool) -> None:
    """Run the bundled scripted demo (no API key, no network).

    The model's turns are SCRIPTED (src/deskpilot/agent/demo/demo.json, in the exact Messages
    API response format) and served by a local fake server; everything else is real: the
    client, the agent loop, a fresh Xvfb desktop, the clicks and keystrokes. The script
    right-clicks the desktop, opens the Text Editor from the menu, types a Python hello
    world, saves it with ctrl+s, and runs it with the bash tool. deskpilot then checks that
    the saved file prints "Hello, World!" and writes the report.
    """
    _require_xvfb()
    from .cli_run import run_demo_command

    sys.exit(asyncio.run(run_demo_command(out, keep_open, step_printer)))


main.add_command(mcp_command, name="mcp")  # deskpilot.mcp.command: the desktop as an MCP server
main.add_command(eval_group, name="eval")
main.add_command(serve_command, name="serve")  # deskpilot.server.command: the computer server
main.add_command(fleet_command, name="fleet")
main.add_command(ui_command, name="ui")

if __name__ == "__main__":  # pragma: no cover
    main()
