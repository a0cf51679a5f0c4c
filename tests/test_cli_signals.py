"""Signals to ``deskpilot run`` and ``deskpilot demo``, sent to a real CLI process.

The CLI runs as a subprocess (``python -m deskpilot.cli``) on a real Xvfb desktop, talking
HTTP to a :class:`FakeModelServer` in this process. The scripted model's first action is a
bash command that creates a marker file and then sleeps; the signal is sent once the marker
exists, so it always lands in the middle of that action. SIGINT, SIGTERM and SIGHUP must all
stop the run after that action (it completes; no further model call), write ``run_end``
and the report, and exit 128 + the signal number; a second signal aborts at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from deskpilot.testing import FakeModelServer
from deskpilot.testing.wire import message_response, text_response, tool_use_block

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(
        any(shutil.which(p) is None for p in ("Xvfb", "openbox")),
        reason="Xvfb and openbox are needed (deskpilot doctor --install)",
    ),
]


class CLI:
    """A ``deskpilot`` subprocess whose combined output is collected as it arrives."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], cwd: Path) -> CLI:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "deskpilot.cli",
            *args,
            env=env,
            cwd=str(cwd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, predicate, what: str, timeout_s: float = 90.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if self.proc.returncode is not None:
                raise AssertionError(f"the CLI exited before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout_s} s:\n{self.output}")
            await asyncio.sleep(0.05)

    async def exit_code(self, timeout_s: float = 90.0) -> int:
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return code


def cli_env(server: FakeModelServer) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "AWS_", "OPENAI_", "DESKPILOT_"))
    }
    env.update(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="sk-ant-test-signals-0000")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def bash_turn(command: str) -> dict:
    return message_response([tool_use_block("bash", {"command": command}, id="toolu_sig_1")])


def records(run_dir: Path) -> list[dict]:
    text = (run_dir / "trajectory.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)],
    ids=["SIGTERM", "SIGHUP", "SIGINT"],
)
async def test_a_signal_stops_the_run_after_the_current_action(
    sig: signal.Signals, code: int, tmp_path: Path
) -> None:
    marker = tmp_path / "action-started"
    script = [
        bash_turn(f"touch {marker} && sleep 2 && echo action-finished"),
        message_response([tool_use_block("bash", {"command": "echo never"}, id="toolu_sig_2")]),
        text_response("never reached"),
    ]
    out = tmp_path / "runs"
    async with FakeModelServer(script) as server:
        cli = await CLI.start(
            "run", "Sleep a little", "--out", str(out), "--apps", "", "--max-turns", "5",
            env=cli_env(server),
            cwd=tmp_path,
        )  # fmt: skip
        await cli.wait_for(marker.exists, "bash action")
        cli.proc.send_signal(sig)
        assert await cli.exit_code() == code, cli.output
        assert len(server.requests) == 1  # no model call after the signal
    output = cli.output
    assert f"{sig.name}: stopping after the current action" in output
    assert f"Stopped by {sig.name}." in output and "Traceback" not in output
    (run_dir,) = out.iterdir()
    assert f"Run directory: {run_dir}" in output
    assert f"Report: {run_dir / 'report.html'}" in output
    assert (run_dir / "report.html").is_file()
    lines = records(run_dir)
    assert lines[-1]["type"] == "run_end" and lines[-1]["stop_reason"] == "interrupted"
    (step,) = [x for x in lines if x["type"] == "step"]
    (action,) = step["actions"]
    assert not action["is_error"] and "action-finished" in action["text"]  # it ran to the end


async def test_a_second_signal_aborts_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "action-started"
    script = [bash_turn(f"touch {marker} && sleep 60 && echo action-finished")]
    out = tmp_path / "runs"
    async with FakeModelServer(script) as server:
        cli = await CLI.start(
            "run", "Sleep a long time", "--out", str(out), "--apps", "",
            env=cli_env(server),
            cwd=tmp_path,
        )  # fmt: skip
        await cli.wait_for(marker.exists, "bash action")
        cli.proc.send_signal(signal.SIGTERM)
        await cli.wait_for(lambda: "stopping after the current action" in cli.output, "notice")
        started = time.monotonic()
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.exit_code(timeout_s=40) == 143, cli.output
        assert time.monotonic() - started < 30  # the 60 s action did not finish
    output = cli.output
    assert "SIGTERM: aborting now." in output
    assert f"Aborted; the steps done so far are recorded under {out}/" in output
    assert "Traceback" not in output
    (run_dir,) = out.iterdir()
    lines = records(run_dir)
    assert lines[-1]["type"] == "run_end" and lines[-1]["stop_reason"] == "interrupted"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mousepad") is None, reason="the demo opens mousepad")
async def test_ctrl_c_on_the_demo_writes_the_report_of_what_ran(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DESKPILOT_"))}
    env["PYTHONUNBUFFERED"] = "1"
    cli = await CLI.start("demo", "--out", str(out), env=env, cwd=tmp_path)
    await cli.wait_for(lambda: "  step   2  " in cli.output, "second step", timeout_s=120)
    cli.proc.send_signal(signal.SIGINT)
    assert await cli.exit_code(timeout_s=120) == 130, cli.output
    output = cli.output
    assert "SIGINT: stopping after the current action" in output
    assert "Demo stopped by SIGINT after" in output
    (run_dir,) = out.iterdir()
    assert f"run directory  {run_dir}" in output
    assert f"report         {run_dir / 'report.html'}" in output
    assert (run_dir / "report.html").is_file()
    lines = records(run_dir)
    assert lines[-1]["type"] == "run_end" and lines[-1]["stop_reason"] == "interrupted"
    steps = [x for x in lines if x["type"] == "step"]
    assert 2 <= len(steps) < 8  # stopped early (the script has more turns)
    assert "Traceback" not in output
