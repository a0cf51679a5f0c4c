"""`deskpilot ui` as a real process: the printed URL, a --fake run, Ctrl-C (SIGINT) stopping
the run validly, writing its report and leaving no process behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from deskpilot.agent.trajectory import read_run

pytestmark = pytest.mark.desktop


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_ctrl_c_stops_runs_validly_and_leaves_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DESKPILOT_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deskpilot",
        "ui",
        "--fake",
        "--port",
        "0",
        "--width",
        "800",
        "--height",
        "600",
        "--out",
        str(tmp_path / "runs"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = None
        t0 = time.monotonic()
        while url is None and time.monotonic() - t0 < 60:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=([0-9a-f]{48})", line)
            if m:
                url, token = m.group(1), m.group(2)
        assert url is not None
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/api/runs") as r:
                assert r.status == 401
            async with s.post(url + "/api/runs", json={"task": "hello"}, headers=auth) as r:
                assert r.status == 201
                run_id = (await r.json())["id"]
            for _ in range(600):
                async with s.get(f"{url}/api/runs/{run_id}", headers=auth) as r:
                    run = await r.json()
                if run["steps"] >= 1:
                    break
                await asyncio.sleep(0.1)
            assert run["status"] == "running" and run["steps"] >= 1
        below = descendants(proc.pid)
        assert below  # Xvfb, openbox, xterm, ...
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert "Stopped" in out.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await asyncio.sleep(0.2)
    assert [p for p in below if alive(p)] == []
    [run_dir] = list((tmp_path / "runs").iterdir())
    traj = read_run(run_dir)
    assert traj.end is not None and traj.end.stop_reason == "interrupted"
    assert (run_dir / "report.html").is_file()


def test_live_mode_without_a_key_says_what_to_do(monkeypatch):
    from click.testing import CliRunner

    from deskpilot.cli import main

    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["ui", "--port", "0"])
    assert result.exit_code == 1
    assert "ANTHROPIC_API_KEY is not set" in result.output and "--fake" in result.output
    result = CliRunner().invoke(main, ["ui", "--fake", "--replay", "."])
    assert result.exit_code == 2 and "pick one" in result.output
