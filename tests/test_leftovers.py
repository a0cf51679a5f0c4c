"""Nothing outlives a SIGKILLed deskpilot process (issue 7, defect 10, the desktop and tool part).

A child Python process starts a desktop (Xvfb, openbox, an xterm) and a bash tool with a
background job, reports their pids and scratch directories, and is SIGKILLed. Everything it
started must go: by the parent-death signal, by deskpilot's watcher process (the job and the
scratch directories), and, if the watcher was killed too, the next start removes the stale
directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deskpilot import BashTool, ToolCall
from deskpilot.desktop.processes import process_alive

pytestmark = pytest.mark.desktop

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import psutil
    from deskpilot import BashTool, ToolCall
    from deskpilot.desktop.local import LocalDesktop
    from deskpilot.desktop.processes import reaper

    async def main():
        desktop = await LocalDesktop(640, 480, apps=("terminal",)).start()
        bash = BashTool(env=desktop.env)
        await bash.execute(ToolCall("1", "bash", {"command":
            "sleep 600 & setsid sleep 601 >/dev/null 2>&1 </dev/null & echo started"}))
        # the jobs' pids as this process sees them ($! is their pid in the shell's namespace)
        shell = psutil.Process(bash._session.shell_pid)
        for _ in range(200):  # until both have exec'd sleep
            jobs = {tuple(p.cmdline()): p.pid for p in shell.children()}
            if ("sleep", "600") in jobs and ("sleep", "601") in jobs:
                break
            time.sleep(0.01)
        info = {
            "desktop": desktop.pids,
            "shell": bash._session.proc.pid,
            "job": jobs[("sleep", "600")],
            "setsid_job": jobs[("sleep", "601")],
            "dirs": [str(desktop.home), bash._tmpdir],
            "watcher": reaper().pid,
        }
        print(json.dumps(info), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def start_child() -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the child did not start its desktop"
    return proc, json.loads(line)


def wait_gone(pids: list[int], timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in pids if process_alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigkill_of_the_python_process_leaves_no_process_and_no_directory():
    """A ``setsid`` job left the shell's process group, so the watcher's group kill missed
    it and it outlived deskpilot (probe #1, f14); in the shell's own PID namespace it ends
    with the shell."""
    proc, info = start_child()
    pids = [*info["desktop"], info["shell"], info["job"], info["setsid_job"]]
    try:
        assert all(process_alive(p) for p in pids)
        assert all(Path(d).is_dir() for d in info["dirs"])
        proc.kill()
        proc.wait()
        assert wait_gone(pids) == []  # Xvfb, openbox, xterm, the shell and its jobs
        deadline = time.monotonic() + 10
        while any(Path(d).exists() for d in info["dirs"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(Path(d).exists() for d in info["dirs"])
        assert wait_gone([info["watcher"]]) == []
    finally:
        kill_all([proc.pid, *pids])


async def test_when_the_watcher_dies_too_the_next_start_removes_the_stale_directories():
    from deskpilot.desktop.processes import clean_stale_scratch_dirs

    proc, info = start_child()
    pids = [*info["desktop"], info["shell"]]
    try:
        os.kill(info["watcher"], signal.SIGKILL)  # e.g. the OOM killer took both
        proc.kill()
        proc.wait()
        # the parent-death signal still ends the desktop and the shell
        assert wait_gone(pids) == []
        assert all(Path(d).is_dir() for d in info["dirs"])  # nobody removed them
        removed = clean_stale_scratch_dirs(force=True)
        assert {str(p) for p in removed} >= set(info["dirs"])
        assert not any(Path(d).exists() for d in info["dirs"])
        # and a scratch directory of a live process is kept
        async with BashTool() as bash:
            await bash.execute(ToolCall("1", "bash", {"command": "true"}))
            mine = Path(bash._tmpdir)
            assert clean_stale_scratch_dirs(force=True) == [] and mine.is_dir()
    finally:
        kill_all([proc.pid, *pids, info["job"], info["setsid_job"]])
        await asyncio.sleep(0)


def test_a_stopped_x_server_goes_with_its_parent_even_without_the_watcher():
    """Probe (issue 7 leftovers): the parent-death signal was SIGTERM, which a SIGSTOPped
    Xvfb never acts on; with the watcher gone too, the stopped Xvfb outlived deskpilot."""
    proc, info = start_child()
    xvfb = info["desktop"][0]
    pids = [*info["desktop"], info["shell"]]
    try:
        os.kill(info["watcher"], signal.SIGKILL)
        assert wait_gone([info["watcher"]]) == []
        os.kill(xvfb, signal.SIGSTOP)
        proc.kill()
        proc.wait()
        assert wait_gone([xvfb], 5.0) == []
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        kill_all([proc.pid, *pids])
        for d in info["dirs"]:
            shutil.rmtree(d, ignore_errors=True)


async def test_a_setsid_job_ends_when_the_bash_tool_closes():
    """Probe #1 (f14): a job that left the shell's process group with ``setsid`` survived
    BashTool.aclose(), which kills the group; the shell's PID namespace takes it along."""
    import random

    import psutil

    seconds = f"600.{random.randrange(10**6):06d}"
    async with BashTool(timeout_s=10) as bash:
        r = await bash.execute(
            ToolCall(
                "1",
                "bash",
                {"command": f"setsid sleep {seconds} >/dev/null 2>&1 </dev/null & echo ok"},
            )
        )
        assert r.text == "ok"
        shell = psutil.Process(bash._session.shell_pid)
        for _ in range(200):  # until the job has exec'd sleep
            job = [p.pid for p in shell.children() if p.cmdline() == ["sleep", seconds]]
            if job:
                break
            await asyncio.sleep(0.01)
        assert len(job) == 1 and os.getsid(job[0]) == job[0]  # really its own session
    try:
        assert wait_gone(job, 5.0) == []
    finally:
        kill_all(job)
