"""What ``deskpilot run``, ``demo`` and ``desktop`` do once their options are parsed: the
async bodies, one progress line per action, outputs, and signal handling.

Signals (POSIX ``signal(7)``; exit statuses follow the shell's 128 + signal number rule,
https://www.gnu.org/software/bash/manual/html_node/Exit-Status.html): the first SIGINT
(Ctrl-C), SIGTERM or SIGHUP asks the agent to stop after the action in progress
(:meth:`deskpilot.Agent.interrupt`); the run then writes ``run_end`` and the report as
usual and the command exits 130 / 143 / 129. A second signal aborts at once (the
trajectory still ends with ``run_end``; no report is written). A signal that arrives before
the agent has started aborts at once too: nothing has run yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_logging import watch
from .cli_show import ask_approval, show
from .terminal import one_line

if TYPE_CHECKING:
    from .agent.loop import Agent
    from .agent.trajectory import Run

__all__ = [
    "STOP_SIGNALS",
    "SignalBridge",
    "replay_command",
    "run_demo_command",
    "run_task",
    "serve_desktop",
]

StepPrinter = Callable[[float], Callable[[Any], None]]
"""Makes the agent's ``on_step`` callback from the run's start (a ``time.monotonic()``)."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop a run (and a kept-open desktop)."""


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


class SignalBridge:
    """Turns :data:`STOP_SIGNALS` into "stop after the current action", then "abort now".

    Use as a context manager inside the command's task (it installs loop signal handlers
    and restores the defaults on exit); :meth:`attach` the agent right before awaiting
    ``agent.run``.

    Attributes:
        signum: the first signal received, or None.
        aborted: True once a second signal (or one before :meth:`attach`) cancelled the task.
    """

    def __init__(self, echo: Callable[[str], Any] = click.echo) -> None:
        self.signum: int | None = None
        self.aborted = False
        self._echo = echo
        self._agent: Agent | None = None
        self._task: asyncio.Task[Any] | None = None
        self._installed: list[int] = []

    def __enter__(self) -> SignalBridge:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append(sig)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    def attach(self, agent: Agent) -> None:
        """The agent a first signal interrupts (call right before ``await agent.run``)."""
        self._agent = agent

    def exit_code(self, default: int) -> int:
        """128 + the first signal's number when a signal stopped the run, else ``default``."""
        return 128 + self.signum if self.signum is not None else default

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.signum is None:
            self.signum = sig
            if self._agent is not None:
                self._echo(
                    f"\n{name}: stopping after the current action; the report is still "
                    "written (a second signal aborts at once)."
                )
                self._agent.interrupt()
                return
        self._echo(f"\n{name}: aborting now.")
        self.aborted = True
        if self._task is not None:
            self._task.cancel()


# --- run -------------------------------------------------------------------------------------


async def run_task(
    task: str,
    *,
    model: str,
    provider: str | None,
    size: tuple[int, int],
    max_turns: int,
    out: str,
    approve: bool,
    replay: Run | None,
    budget_usd: float | None,
    budget_tokens: int | None,
    apps: tuple[str, ...],
    step_printer: StepPrinter,
    write_outputs: Callable[[Path], Path],
    computer_url: str | None = None,
) -> int:
    """``deskpilot run``: a desktop, the client, the agent, progress lines, the report.

    ``step_printer`` makes the per-step progress callback; ``write_outputs(run_dir)``
    writes the report (and animation) and returns the report's path. ``replay``: a run
    read (and its calls approved) by the caller whose model turns are served offline; its
    calls run on executors of the recorded versions, bash and the editor confined to the
    desktop's scratch directory (:func:`deskpilot.agent.replay.replay_tools`).
    ``computer_url``: drive the desktop of that computer server (a ``RemoteDesktop``,
    every tool on its host) instead of starting a local one.

    Returns:
        The exit status: 0 when the model ended the run, 1 when a limit or an error
        stopped it, 128 + signal number when a signal did (see the module docstring).
    """
    if replay is not None and computer_url:
        raise click.UsageError("--replay runs on a fresh local desktop, not on --computer.")
    with SignalBridge() as bridge:
        try:
            return await _run_task(
                bridge,
                task,
                model=model,
                provider=provider,
                size=size,
                max_turns=max_turns,
                out=out,
                approve=approve,
                replay=replay,
                budget_usd=budget_usd,
                budget_tokens=budget_tokens,
                apps=apps,
                step_printer=step_printer,
                write_outputs=write_outputs,
                computer_url=computer_url,
            )
        except asyncio.CancelledError:
            if not bridge.aborted:
                raise
            click.echo(
                f"Aborted; the steps done so far are recorded under {out}/ "
                "(`deskpilot report RUN_DIR` writes their report).",
                err=True,
            )
            return bridge.exit_code(130)


async def _run_task(
    bridge: SignalBridge,
    task: str,
    *,
    model: str,
    provider: str | None,
    size: tuple[int, int],
    max_turns: int,
    out: str,
    approve: bool,
    replay: Run | None,
    budget_usd: float | None,
    budget_tokens: int | None,
    apps: tuple[str, ...],
    step_printer: StepPrinter,
    write_outputs: Callable[[Path], Path],
    computer_url: str | None = None,
) -> int:
    from . import Agent, LLMClient, LocalDesktop, RemoteDesktop

    async with contextlib.AsyncExitStack() as stack:
        client_kwargs: dict[str, Any] = {}
        if provider is not None:
            client_kwargs["provider"] = provider
        if replay is not None:
            from .agent.replay import recorded_responses
            from .testing import FakeModelServer

            responses = recorded_responses(replay)  # the Run approved: not read again
            server = await stack.enter_async_context(FakeModelServer(responses=responses))
            client_kwargs.update(base_url=server.url, api_key="replay-no-key", provider="anthropic")
            click.echo(
                f"Replaying {len(responses)} recorded model turns from "
                f"{one_line(str(replay.run_dir))}."
            )
        client = LLMClient(model, **client_kwargs)
        watch(client)  # its credentials are cut from every log line from now on
        stack.push_async_callback(client.close)
        desktop: LocalDesktop | RemoteDesktop
        if computer_url:
            click.echo(f"Connecting to the computer server at {one_line(computer_url, 200)}...")
            desktop = await stack.enter_async_context(RemoteDesktop(computer_url))
            where = f"{desktop.size[0]}x{desktop.size[1]} desktop at {desktop.url}"
        else:
            click.echo(f"Starting a {size[0]}x{size[1]} desktop...")
            desktop = await stack.enter_async_context(
                LocalDesktop(width=size[0], height=size[1], apps=apps)
            )
            where = f"Desktop on DISPLAY={desktop.display}"
        click.echo(f"{where}; model {one_line(model, 80)}. Ctrl-C stops after the current action.")

        tools = None
        if replay is not None and replay.start is not None:
            from .agent.replay import replay_sandbox, replay_tools

            assert isinstance(desktop, LocalDesktop)  # the CLI refuses --replay with --computer
            sandbox, owned = replay_sandbox(desktop)
            if owned:
                stack.callback(shutil.rmtree, sandbox, ignore_errors=True)
            tools = list(replay_tools(desktop, replay.start, sandbox).values())
            for tool in tools:
                stack.push_async_callback(tool.aclose)
            click.echo(f"Recorded bash and editor calls are confined to {sandbox}.")
        start = time.monotonic()
        agent = Agent(
            client,
            computer=desktop,
            tools=tools,
            max_turns=max_turns,
            approve=ask_approval if approve else None,
            on_step=step_printer(start),
            budget_usd=budget_usd,
            budget_tokens=budget_tokens,
            out_dir=out,
        )
        bridge.attach(agent)
        result = await agent.run(task)
    report = await asyncio.to_thread(write_outputs, Path(result.trajectory_dir))
    elapsed = time.monotonic() - start
    click.echo("")
    if result.final_text:
        click.echo(show(result.final_text))
        click.echo("")
    click.echo(
        f"{result.stop_reason}: {result.steps} steps in {elapsed:.1f} s, "
        f"{result.usage.total_tokens:,} tokens, ${result.cost:.4f}"
    )
    click.echo(f"Run directory: {result.trajectory_dir}")
    click.echo(f"Report: {report}\n        {_uri(report)}")
    if bridge.signum is not None:
        click.echo(f"Stopped by {signal.Signals(bridge.signum).name}.", err=True)
        return bridge.exit_code(1)
    if result.stop_reason != "end_turn":
        click.echo(f"The run stopped early ({result.stop_reason}).", err=True)
        return 1
    return 0


# --- replay ----------------------------------------------------------------------------------


async def replay_command(
    run: Any,
    max_changed_share: float,
    compare_text: bool,
    stop_at_first: bool,
    host_actions: bool,
) -> int:
    """``deskpilot replay``: replay the approved Run on a fresh desktop, print the report;
    the exit status (0: no divergence, 1: some)."""
    from .agent.replay import replay_run

    click.echo(f"Replaying {run.run_dir} on a fresh desktop...")
    report = await replay_run(
        run,
        max_changed_share=max_changed_share,
        compare_text=compare_text,
        stop_at_first=stop_at_first,
        host_actions=host_actions,
    )
    click.echo(report.format())
    return 0 if report.ok else 1


# --- demo ------------------------------------------------------------------------------------


async def run_demo_command(out: str, keep_open: bool, step_printer: StepPrinter) -> int:
    """``deskpilot demo``: the scripted run, its summary, and the exit status (0 ok, 1 failed,
    128 + signal number when a signal stopped it; the report of what ran is written)."""
    from .agent.demo import run_demo

    start = time.monotonic()
    click.echo(
        "deskpilot demo: the model's turns are scripted; the desktop, clicks and files are real."
    )
    with SignalBridge() as bridge:
        try:
            result = await run_demo(
                out_dir=out,
                keep_open=keep_open,
                on_step=step_printer(start),
                echo=lambda text: click.echo(show(text)),
                on_agent=bridge.attach,
            )
        except asyncio.CancelledError:
            if not bridge.aborted:
                raise
            click.echo(
                f"Aborted; the steps done so far are recorded under {out}/ "
                "(`deskpilot report RUN_DIR` writes their report).",
                err=True,
            )
            return bridge.exit_code(130)
    click.echo("")
    if bridge.signum is not None:
        name = signal.Signals(bridge.signum).name
        click.echo(f"Demo stopped by {name} after {result.steps} steps.")
        if result.trajectory_dir is not None:
            click.echo(f"  run directory  {result.trajectory_dir}")
        if result.report_path is not None:
            click.echo(f"  report         {result.report_path}")
            click.echo(f"                 {_uri(result.report_path)}")
        return bridge.exit_code(1)
    click.echo(show(result.summary()))
    if not result.ok:
        click.echo(f"Error: {show(result.error or 'the demo failed.')}", err=True)
        return 1
    return 0


# --- desktop ---------------------------------------------------------------------------------


async def serve_desktop(width: int, height: int, apps: tuple[str, ...]) -> None:
    """``deskpilot desktop``: start a desktop, say how to reach it, keep it until a signal."""
    from . import LocalDesktop

    async with LocalDesktop(width=width, height=height, apps=apps) as dt:
        d, auth = dt.display, dt.xauthority or ""
        on = f"DISPLAY={d} XAUTHORITY={shlex.quote(auth)}"  # the X server wants its cookie
        click.echo(f"Desktop running: DISPLAY={d} ({width}x{height}, openbox).")
        click.echo(f"  run a program on it     {on} xterm &")
        click.echo(f"  take a screenshot       {on} import -window root shot.png")
        click.echo(f"  drive it from Python    X11Display({d!r}, xauthority={auth!r})")
        click.echo("  right-click the background for the menu (Terminal, Text Editor, Web Browser)")
        click.echo("Press Ctrl-C to stop it.")
        await _until_signalled()
        click.echo("Stopping the desktop.")


async def _until_signalled() -> None:
    """Wait for one of :data:`STOP_SIGNALS`."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
