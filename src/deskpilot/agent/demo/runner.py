"""The bundled demo: a scripted model run through the real client, loop and desktop.

The model's turns are scripted (``demo.json`` next to this file, in the exact Messages API
response format) and served by an in-process :class:`~deskpilot.testing.FakeModelServer` on
loopback. Everything else is real: :class:`~deskpilot.LLMClient` talks HTTP to that server
with a dummy key, :class:`~deskpilot.Agent` runs the loop and records the trajectory, and
:class:`~deskpilot.LocalDesktop` is a fresh Xvfb + openbox desktop receiving real clicks and
keystrokes. The script right-clicks the desktop, opens "Text Editor" (mousepad) from the
openbox menu, types a Python hello world, saves it through the GTK save dialog into
``RUN_DIR/workspace/hello.py``, and runs it with the bash tool. :func:`run_demo` then runs
the saved file itself (``sys.executable``) and checks that it prints ``Hello, World!``,
and writes the report and animation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from ..records import StepRecord

log = logging.getLogger("deskpilot.demo")

__all__ = ["DEMO_SCREEN", "DemoResult", "DemoScript", "load_script", "run_demo"]

DEMO_SCREEN = (1280, 800)
"""The desktop size (native pixels) the script's coordinates were measured on."""
WORKDIR_PLACEHOLDER = "{WORKDIR}"
RUN_NAME_SUFFIX = "demo-hello-world"


@dataclass(frozen=True, slots=True)
class DemoScript:
    """The demo script with its placeholders substituted.

    Attributes:
        task: the task text given to the agent.
        model: the registry name the client is created with.
        responses: Messages API response bodies, one per model turn, in order.
        file: absolute path where the script saves the file.
        expected_output: what running the file must print (stripped).
        screen: (width, height) of the desktop the coordinates are for, native = model pixels.
    """

    task: str
    model: str
    responses: list[dict[str, Any]]
    file: Path
    expected_output: str
    screen: tuple[int, int]


def _substitute(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in mapping.items():
            value = value.replace(key, replacement)
        return value
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, mapping) for k, v in value.items()}
    return value


def load_script(workdir: str | os.PathLike[str], *, path: str | None = None) -> DemoScript:
    """Read ``demo.json`` (or ``path``) and substitute ``{WORKDIR}`` with ``workdir``.

    Each response's ``usage`` is replaced by ``"auto"``: the fake server then computes the
    tokens of the actual request (images included, simulated prompt caching), so the report
    shows what the run would have used.

    Raises:
        ConfigError: the script is not valid JSON or lacks ``task``/``responses``.
    """
    try:
        if path is None:
            text = resources.files(__package__).joinpath("demo.json").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        raw = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"The demo script could not be read: {exc}.") from exc
    if not isinstance(raw, dict) or "task" not in raw or not raw.get("responses"):
        raise ConfigError("The demo script needs 'task' and a non-empty 'responses' list.")
    data = _substitute(raw, {WORKDIR_PLACEHOLDER: str(Path(workdir).resolve())})
    responses = [dict(r, usage="auto") for r in data["responses"]]
    screen = tuple(data.get("screen") or DEMO_SCREEN)
    return DemoScript(
        task=data["task"],
        model=data.get("model", "claude-sonnet-4-5"),
        responses=responses,
        file=Path(data.get("file") or Path(workdir) / "hello.py"),
        expected_output=str(data.get("expected_output", "Hello, World!")),
        screen=(int(screen[0]), int(screen[1])),
    )


@dataclass(slots=True)
class DemoResult:
    """The outcome of :func:`run_demo`.

    Attributes:
        ok: True when the run ended normally AND the saved file printed the expected text.
        file: the file the script saved (``RUN_DIR/workspace/hello.py``).
        output: what running the file printed (stdout + stderr), or "" if it was not run.
        steps: model turns taken; ``elapsed_s`` wall-clock seconds of the whole demo
            (desktop start to report written).
        stop_reason: the agent's stop reason (``end_turn`` on success).
        trajectory_dir / report_path / animation_paths: what was written.
        error: why it failed (a sentence), or None.
        tokens / cost: usage summed over the run (computed by the fake server from the real
            requests) and its price at the demo model's rates, in US dollars.
    """

    ok: bool
    file: Path
    output: str = ""
    steps: int = 0
    elapsed_s: float = 0.0
    stop_reason: str = ""
    trajectory_dir: Path | None = None
    report_path: Path | None = None
    animation_paths: list[Path] = field(default_factory=list)
    error: str | None = None
    tokens: int = 0
    cost: float = 0.0

    def summary(self) -> str:
        """A few lines for the terminal: outcome, steps, time, file, report path and URL."""
        lines = []
        if self.ok:
            lines.append(
                f"Demo OK: {self.file.name} prints {self.output.strip()!r} "
                f"({self.steps} steps, {self.elapsed_s:.1f} s)."
            )
        else:
            lines.append(f"Demo FAILED after {self.steps} steps ({self.elapsed_s:.1f} s).")
        lines.append(f"  saved file  {self.file}")
        lines.append(
            f"  tokens      {self.tokens:,} (simulated by the fake server), ${self.cost:.4f}"
        )
        if self.report_path is not None:
            lines.append(f"  report      {self.report_path}")
            lines.append(f"              {self.report_path.resolve().as_uri()}")
        for anim in self.animation_paths:
            lines.append(f"  animation   {anim}")
        return "\n".join(lines)


async def _run_file(path: Path, timeout_s: float = 20.0) -> tuple[int | None, str]:
    """Run ``python path`` (this interpreter) and return (exit code, stdout+stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return None, f"(timed out after {timeout_s:.0f} s)"
    return proc.returncode, out.decode("utf-8", errors="replace")


def _new_run_name() -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{RUN_NAME_SUFFIX}"


def _plan(out_dir: str | os.PathLike[str], script_path: str | None) -> tuple[Path, str, DemoScript]:
    """(absolute out dir, a run name not taken yet, the script for RUN_DIR/workspace).

    Raises:
        MissingDependencyError: mousepad (the menu's "Text Editor") is not installed.
    """
    if shutil.which("mousepad") is None:
        raise MissingDependencyError(
            "mousepad, the Text Editor the demo opens from the desktop menu, is not installed; "
            "run `deskpilot doctor --install` (or `sudo apt-get install -y "
            "--no-install-recommends mousepad`)."
        )
    out = Path(out_dir).expanduser().resolve()
    run_name = _new_run_name()
    while (out / run_name).exists():  # pragma: no cover - same microsecond
        run_name = _new_run_name()
    return out, run_name, load_script(out / run_name / "workspace", path=script_path)


async def run_demo(
    out_dir: str | os.PathLike[str] = "deskpilot-runs",
    keep_open: bool = False,
    *,
    on_step: Callable[[StepRecord], Any] | None = None,
    echo: Callable[[str], Any] | None = None,
    animation: bool = True,
    script_path: str | None = None,
    on_agent: Callable[[Any], Any] | None = None,
) -> DemoResult:
    """Run the bundled scripted demo end to end and verify its outcome.

    Args:
        out_dir: where the run directory ``<UTC time>-demo-hello-world/`` is created; the
            file is saved in its ``workspace/`` subdirectory.
        keep_open: after the run, keep the desktop until SIGINT/SIGTERM (Ctrl-C) so it can
            be looked at (``DISPLAY=:N``); ``echo`` says how.
        on_step: the agent's per-step callback (gets each step's
            :class:`~deskpilot.agent.records.StepRecord`).
        echo: where to send status lines (e.g. ``click.echo``); None sends them to the log.
        animation: also write ``run.gif`` (+ ``run.mp4`` with ffmpeg).
        script_path: another script in the same format (default: the bundled demo.json).
        on_agent: called with the :class:`~deskpilot.Agent` right before its run starts
            (the CLI uses it to interrupt the run on a signal: the run then stops after the
            action in progress and the report of what ran is still written).

    Returns:
        A :class:`DemoResult`; ``ok`` is False with ``error`` set when the run or the check
        failed (the report is still written when a trajectory exists).

    Raises:
        MissingDependencyError: Xvfb, openbox or mousepad is not installed.
        DeskpilotError: the desktop or the fake server could not start.
    """
    from ... import Agent, LLMClient, LocalDesktop
    from ...testing import FakeModelServer
    from ..report import write_checks, write_outputs

    say = echo or (lambda line: log.info("%s", line))
    t0 = time.monotonic()
    out, run_name, script = await asyncio.to_thread(_plan, out_dir, script_path)
    run_dir = out / run_name
    result = DemoResult(ok=False, file=script.file)

    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(FakeModelServer(responses=script.responses))
        client = LLMClient(
            script.model,
            base_url=server.url,
            api_key="demo-key-not-a-secret",
            max_requests_per_minute=6000,
            max_tokens_per_minute=100_000_000,
            max_concurrent_requests=4,
        )
        stack.push_async_callback(client.close)
        say(f"Starting a {script.screen[0]}x{script.screen[1]} desktop (Xvfb + openbox)...")
        desktop = await stack.enter_async_context(
            LocalDesktop(width=script.screen[0], height=script.screen[1])
        )
        say(
            f"Desktop on DISPLAY={desktop.display}; running {len(script.responses)} scripted turns."
        )
        agent = Agent(
            client,
            computer=desktop,
            max_turns=len(script.responses) + 2,
            on_step=on_step,
            out_dir=out,
            run_name=run_name,
        )
        if on_agent is not None:
            on_agent(agent)
        try:
            run = await agent.run(script.task)
        except Exception as exc:  # the agent recorded it in the trajectory; report it too
            log.exception("The demo's agent run failed")
            result.error = f"The agent loop failed: {type(exc).__name__}: {exc}"
            run = None
        if run is not None:
            result.steps = run.steps
            result.stop_reason = run.stop_reason
            result.trajectory_dir = run.trajectory_dir
            result.tokens = run.usage.total_tokens
            result.cost = run.cost
            if run.trajectory_dir is not None and Path(run.trajectory_dir) != run_dir:
                log.warning("The agent wrote %s, not %s.", run.trajectory_dir, run_dir)
            if run.stop_reason != "end_turn":
                result.error = (
                    f"The run stopped with {run.stop_reason}"
                    + (f": {run.error}" if run.error else "")
                    + "."
                )
        if result.error is None:
            result.error = await _verify(script, result)
        if result.error is None:
            say(f"Verified: running {script.file.name} prints {result.output.strip()!r}.")
        waited = time.monotonic()
        if keep_open:
            say(
                f"The desktop stays open on DISPLAY={desktop.display} (e.g. "
                f"`DISPLAY={desktop.display} XAUTHORITY={desktop.xauthority} "
                "import -window root shot.png`); Ctrl-C closes it."
            )
            await _until_signalled()
        waited = time.monotonic() - waited

    has_traj = await asyncio.to_thread((run_dir / "trajectory.jsonl").is_file)
    traj = result.trajectory_dir or (run_dir if has_traj else None)
    if traj is not None:
        result.trajectory_dir = Path(traj)
        check = {
            "name": f"Checked by deskpilot after the run: {script.file.name} prints "
            f"{script.expected_output!r}",
            "ok": result.error is None,
            "detail": (
                f"{Path(sys.executable).name} {script.file} printed {result.output.strip()!r}."
                if result.error is None
                else result.error
            ),
        }
        await asyncio.to_thread(write_checks, traj, [check])
        # the HTML first: a failing animation never costs the report
        outputs = await asyncio.to_thread(write_outputs, traj, animation=animation)
        if outputs.animation_error:
            log.warning("No animation: %s", outputs.animation_error)
        result.report_path = outputs.report
        result.animation_paths = outputs.animations
    result.ok = result.error is None
    result.elapsed_s = time.monotonic() - t0 - waited  # without the keep_open wait
    return result


async def _verify(script: DemoScript, result: DemoResult) -> str | None:
    """Run the saved file; return None when it printed the expected text, else why not."""
    if not await asyncio.to_thread(script.file.is_file):
        return (
            f"The script did not produce {script.file} (the editor or its save dialog did not "
            "react as scripted; see the report's screenshots)."
        )
    code, output = await _run_file(script.file)
    result.output = output
    if code != 0 or output.strip() != script.expected_output:
        return (
            f"Running {script.file} exited with {code} and printed {output.strip()[:200]!r}, "
            f"not {script.expected_output!r}."
        )
    return None


async def _until_signalled() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
