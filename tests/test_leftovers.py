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
    from deskpilot import BashTool, ToolCall
    from deskpilot.desktop.local import LocalDesktop
    from deskpilot.desktop.processes import reaper

    async def main():
        desktop = await LocalDesktop(640, 480, apps=("terminal",)).start()
        bash = BashTool(env=desktop.env)
        job = await bash.execute(ToolCall("1", "bash", {"command": "sleep 600 & echo $!"}))
        info = {
            "desktop": desktop.pids,
            "shell": bash._session.proc.pid,
            "job": int(job.text),
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
    proc, info = start_child()
    pids = [*info["desktop"], info["shell"], info["job"]]
    try:
        assert all(process_alive(p) for p in pids)
        assert all(Path(d).is_dir() for d in info["dirs"])
        proc.kill()
        proc.wait()
        assert wait_gone(pids) == []  # Xvfb, openbox, xterm, the shell and its job
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
        kill_all([proc.pid, *pids, info["job"]])
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
