"""DesktopPool.remote over real `deskpilot serve` processes on loopback (what compose.yaml
starts in containers): run_many resets each desktop over the wire between tasks, and a
server that dies and comes back on its port is leased again."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from deskpilot import DesktopPool, LLMClient
from deskpilot.agent.many import run_many
from deskpilot.errors import ConfigError
from deskpilot.testing import FakeModelServer
from deskpilot.testing.wire import message_response, text_response, tool_use_block

pytestmark = pytest.mark.desktop

TOKEN = "pool-remote-token-0123456789"


def start_server(port: int = 0) -> tuple[subprocess.Popen[str], str]:
    """A `deskpilot serve` process on 127.0.0.1 (320x240, no apps) and its ws:// URL."""
    env = {**os.environ, "DESKPILOT_SERVER_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "deskpilot", "serve", "--port", str(port)]
    argv += ["--width", "320", "--height", "240", "--apps", ""]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"listening on (ws://127\.0\.0\.1:\d+)/v1/ws", line)
        if found:
            return proc, found.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"deskpilot serve did not start (exit {proc.wait()})")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture
def servers() -> Iterator[list[tuple[subprocess.Popen[str], str]]]:
    started = [start_server(), start_server()]
    yield started
    for proc, _ in started:
        stop(proc)


def test_remote_pool_arguments():
    with pytest.raises(ConfigError, match="at least one ws://"):
        DesktopPool.remote([])
    with pytest.raises(ConfigError, match="ws://host:8766"):
        DesktopPool.remote(["ftp://x"])
    assert DesktopPool.remote("ws://127.0.0.1:9", token=TOKEN).size == 1


async def test_run_many_over_remote_desktops_resets_them_over_the_wire(servers, tmp_path):
    def handler(req):
        if len(req.body["messages"]) == 1:
            command = "ls -A ~ | grep -c '^mark-' ; touch ~/mark-$RANDOM"
            return message_response(
                [tool_use_block("bash", {"command": command}, id=f"b{req.index}")]
            )
        result = req.body["messages"][-1]["content"][0]["content"]
        text = result if isinstance(result, str) else result[0]["text"]
        return text_response(f"{req.prompt_text}: {text.split()[0]} marks")

    urls = [url for _, url in servers]
    async with FakeModelServer() as fake:
        fake.handler = handler
        async with (
            LLMClient(
                "claude-4-sonnet",
                base_url=fake.url,
                api_key="sk-ant-pool-remote-0000",
                max_attempts=1,
                progress="none",
            ) as client,
            DesktopPool.remote(urls, token=TOKEN) as pool,
        ):
            results = await run_many(
                ["a", "b", "c", "d"],
                client=client,
                pool=pool,
                show_progress=False,
                out_dir=tmp_path,
                initial_screenshot=False,
            )
            h = await pool.wait_recycled()
    assert [r.error for r in results] == [None] * 4
    assert [r.final_text for r in results] == [f"{t}: 0 marks" for t in "abcd"]
    assert (h.leases, h.resets, h.reset_failures, h.starts) == (4, 4, 0, 2), h


async def test_a_server_that_dies_and_comes_back_is_leased_again(servers):
    (first, url1), (_, url2) = servers
    async with DesktopPool.remote([url1, url2], token=TOKEN, between_tasks="keep") as pool:
        stop(first, signal.SIGKILL)  # the desktop server dies while its desktop is idle
        port = int(url1.rsplit(":", 1)[1])
        servers[0] = start_server(port)  # and its container restarts on the same port
        displays = set()
        for _ in range(2):  # both slots: the replaced one answers from the new server
            async with pool.lease(timeout_s=60) as desktop:
                health = await desktop.health()
                assert health["ok"], health
                out = await desktop.run_command("echo up")
                assert out.stdout == "up\n"
                displays.add(desktop.url)
            await pool.wait_recycled()
            await asyncio.sleep(0)
        assert len(displays) == 2 and pool.health().warm == 2
