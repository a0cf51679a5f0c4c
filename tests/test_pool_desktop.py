"""DesktopPool on real Xvfb desktops: a killed desktop is replaced, reset leaves nothing of
the previous task, leases are exclusive, and run_many runs an agent per task on a pool
against the fake model server."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from deskpilot import LLMClient
from deskpilot.agent.many import run_many
from deskpilot.desktop.local import LocalDesktop
from deskpilot.desktop.processes import process_alive
from deskpilot.errors import DesktopError
from deskpilot.pool import DesktopPool
from deskpilot.testing import FakeModelServer
from deskpilot.testing.wire import message_response, text_response, tool_use_block

pytestmark = pytest.mark.desktop

W, H = 320, 240


def small_pool(size: int, **kw) -> DesktopPool[LocalDesktop]:
    return DesktopPool.local(size, width=W, height=H, **kw)


SLEEP_MARK = "613.25"  # a background `sleep` this test can find in /proc


def sleepers() -> list[int]:
    """Pids of processes whose command line is ``sleep SLEEP_MARK``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[:2] == [b"sleep", SLEEP_MARK.encode()]:
                        found.append(int(entry))
            except OSError:
                continue
    return found


async def wait_gone(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    """The pids of ``pids`` still alive after up to ``timeout_s`` seconds."""
    for _ in range(int(timeout_s / 0.05)):
        alive = [p for p in pids if process_alive(p)]
        if not alive:
            return []
        await asyncio.sleep(0.05)
    return alive


async def test_a_desktop_killed_between_tasks_is_replaced():
    async with small_pool(1, between_tasks="keep") as pool:
        async with pool.lease() as first:
            display, pids = first.display, first.pids
        os.kill(pids[0], signal.SIGKILL)  # the X server dies while the desktop is idle
        assert await wait_gone(pids[:1]) == []
        async with pool.lease() as second:
            health = await second.health()
            assert health["ok"], health
            assert (await second.screenshot()).size == (W, H)
            out = await second.run_command("echo alive")
            assert out.ok and out.stdout == "alive\n"
        h = await pool.wait_recycled()
        assert (h.replaced, h.starts, h.leases, h.warm) == (1, 2, 2, 1), h
        assert "not running" in (h.last_error or "")
    # every process of the dead desktop (openbox too) was ended with it
    assert await wait_gone(pids) == [], f"processes of {display} outlived its replacement"


async def test_reset_leaves_no_windows_files_or_programs_of_the_previous_task():
    async with small_pool(1) as pool:
        async with pool.lease() as desktop:
            app = await desktop.launch("xterm")
            assert app.window in await desktop.client_windows()
            written = await desktop.put_file("~/notes/task.txt", b"from task one")
            await desktop.run_command("touch ~/.hidden-mark ~/visible-mark")
            job = await desktop.run_command(["sleep", SLEEP_MARK], background=True)
            for _ in range(100):  # until the program is exec'd
                if sleepers():
                    break
                await asyncio.sleep(0.02)
            assert job.returncode is None and sleepers()
            listing = (await desktop.run_command("ls -A ~")).stdout.split()
            assert {"notes", ".hidden-mark", "visible-mark"} <= set(listing)
            old_pids = desktop.pids
        async with pool.lease() as desktop:  # the same desktop, reset
            assert await desktop.client_windows() == []
            with pytest.raises(DesktopError, match="No file"):
                await desktop.get_file("~/notes/task.txt")
            after = set((await desktop.run_command("ls -A ~")).stdout.split())
            assert not after & {"notes", ".hidden-mark", "visible-mark"}, after
            assert not os.path.exists(written)
            assert (await desktop.health())["ok"]
            x_server = desktop.pids[0]  # a light reset keeps it (test_desktop_host)
        old_programs = [pid for pid in old_pids if pid != x_server]
        assert await wait_gone(old_programs) == [], "a program of the previous task survived reset"
        assert await wait_gone(sleepers()) == [], "a background command survived reset"
        h = await pool.wait_recycled()
        assert (h.resets, h.replaced, h.starts) == (2, 0, 1), h
        assert h.reset_s_mean is not None and h.reset_s_mean < 15


async def test_leases_of_real_desktops_are_exclusive():
    holders: dict[str, int] = {}
    seen: list[tuple[int, str, str]] = []

    async with small_pool(2) as pool:

        async def task(i: int) -> None:
            async with pool.lease(timeout_s=60) as desktop:
                assert desktop.display not in holders, f"{desktop.display} leased twice"
                holders[desktop.display] = i
                out = await desktop.run_command(f"ls -A ~ | grep -c '^task-' ; touch ~/task-{i}")
                seen.append((i, desktop.display, out.stdout.split()[0]))
                await asyncio.sleep(0.05)
                del holders[desktop.display]

        await asyncio.gather(*(task(i) for i in range(4)))
        assert pool.health().leases == 4
    # every task found a HOME without another task's mark
    assert sorted(i for i, _, _ in seen) == [0, 1, 2, 3]
    assert all(count == "0" for _, _, count in seen), seen


async def test_run_many_with_a_pool_against_the_fake_model(tmp_path):
    def handler(req):
        # turn 1: look at HOME through the bash tool and leave a mark; turn 2: answer
        if len(req.body["messages"]) == 1:
            command = "ls -A ~ | grep -c '^mark-' ; touch ~/mark-$RANDOM"
            return message_response(
                [tool_use_block("bash", {"command": command}, id=f"b{req.index}")]
            )
        result = req.body["messages"][-1]["content"][0]["content"]
        text = result if isinstance(result, str) else result[0]["text"]
        return text_response(f"{req.prompt_text}: {text.split()[0]} marks")

    async with FakeModelServer() as server:
        server.handler = handler
        async with (
            LLMClient(
                "claude-4-sonnet",
                base_url=server.url,
                api_key="sk-ant-pool-key-000000",
                max_attempts=1,
                progress="none",
            ) as client,
            small_pool(2) as pool,
        ):
            results = await run_many(
                ["one", "two", "three"],
                client=client,
                pool=pool,
                show_progress=False,
                out_dir=tmp_path,
                initial_screenshot=False,
            )
            assert not pool.closed  # the caller's pool stays open
            h = await pool.wait_recycled()
    assert [r.error for r in results] == [None] * 3
    assert [r.final_text for r in results] == ["one: 0 marks", "two: 0 marks", "three: 0 marks"]
    assert all(r.ok and r.steps == 2 for r in results)
    assert (h.leases, h.resets, h.starts, h.replaced, h.warm) == (3, 3, 2, 0, 2), h
