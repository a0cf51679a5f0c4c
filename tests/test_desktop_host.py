"""LocalDesktop as a DesktopHost on a real Xvfb: commands, files, reset and health."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from deskpilot.desktop.apps import MENU_ENTRY_OFFSETS
from deskpilot.desktop.base import CommandOutput, DesktopHost
from deskpilot.desktop.local import LocalDesktop, merged_env
from deskpilot.errors import DesktopError

pytestmark = pytest.mark.desktop


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_local_desktop_is_a_desktop_host():
    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        assert isinstance(desktop, DesktopHost)


async def test_run_command_sees_the_desktop_and_its_home():
    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        out = await desktop.run_command('echo "$DISPLAY|$HOME|$PWD"; echo err >&2; exit 3')
        assert out.returncode == 3 and not out.ok and not out.timed_out
        assert out.stdout.strip() == f"{desktop.display}|{desktop.home}|{desktop.home}"
        assert out.stderr.strip() == "err"
        listed = await desktop.run_command(["ls", "-a"], cwd="~")
        assert listed.ok and ".config" in listed.stdout.split()
        # the desktop's programs never see deskpilot's environment
        os.environ["DESKPILOT_HOST_TEST_SECRET"] = "s3cret"
        try:
            env = await desktop.run_command(["env"])
        finally:
            del os.environ["DESKPILOT_HOST_TEST_SECRET"]
        assert env.ok and "s3cret" not in env.stdout


async def test_run_command_errors_are_results_with_a_sentence():
    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        missing = await desktop.run_command(["no-such-program-here", "x"])
        assert missing.returncode == 127 and "not found" in missing.stderr
        assert (await desktop.run_command([])).returncode == 127
        bad_dir = await desktop.run_command(["true"], cwd="~/no/such/dir")
        assert bad_dir.returncode == 127 and "no/such/dir" in bad_dir.stderr
        t0 = time.perf_counter()
        slow = await desktop.run_command("sleep 30", timeout_s=0.5)
        assert time.perf_counter() - t0 < 5
        assert slow.timed_out and slow.returncode is None and "0.5 s" in slow.stderr


async def test_run_command_keeps_the_first_megabyte_and_drains_the_rest():
    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        out = await desktop.run_command("head -c 3000000 /dev/zero | tr '\\0' a")
        assert out.ok
        assert (
            out.stdout.startswith("a" * 1000)
            and f"{3000000 - 2**20} more bytes not kept" in out.stdout
        )


async def test_background_commands_run_until_reset():
    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        started = await desktop.run_command(["sleep", "60"], background=True)
        assert started == CommandOutput(None, "", "")
        sleeper = desktop.pids[-1]  # its process group, tracked with the desktop's programs
        os.killpg(sleeper, 0)  # alive (raises ProcessLookupError otherwise)
        await desktop.reset()
        assert sleeper not in desktop.pids
        # killed at once; its zombie may stay in the group until its new parent reaps it
        deadline = time.monotonic() + 5
        while _group_alive(sleeper) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _group_alive(sleeper)


async def test_files_round_trip_and_errors():
    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        assert desktop.resolve_path("~") == str(desktop.home)
        written = await desktop.put_file("~/a/b/c.txt", b"hello\n")
        assert written == str(desktop.home / "a/b/c.txt")
        assert await desktop.get_file("a/b/c.txt") == b"hello\n"
        out = await desktop.run_command(["cat", "a/b/c.txt"])
        assert out.stdout == "hello\n"
        with pytest.raises(DesktopError, match="No file at"):
            await desktop.get_file("~/missing.txt")
        with pytest.raises(DesktopError, match="not a regular file"):
            await desktop.get_file("~/a")
        with pytest.raises(DesktopError, match="more than max_bytes"):
            await desktop.get_file("~/a/b/c.txt", max_bytes=3)
        with pytest.raises(DesktopError, match="only ~ and ~/"):
            desktop.resolve_path("~root/x")


async def test_reset_gives_a_fresh_desktop_with_its_apps():
    async with LocalDesktop(640, 480, apps=("terminal",)) as desktop:
        old_home = desktop.home
        await desktop.put_file("~/left-over.txt", b"x")
        await desktop.run_command(["xterm"], background=True)
        await asyncio.sleep(0.5)
        assert len(await desktop.client_windows()) == 2
        await desktop.reset()
        assert desktop.home != old_home and old_home is not None and not old_home.exists()
        with pytest.raises(DesktopError):
            await desktop.get_file("~/left-over.txt")
        assert len(await desktop.client_windows()) == 1  # the configured terminal only
        health = await desktop.health()
        assert health["ok"] is True and health["display"] == desktop.display
        assert (health["width"], health["height"]) == (640, 480)


def _set_root_mark(d, value: bytes) -> None:
    d.screen().root.change_property(d.intern_atom("DESKPILOT_TASK_MARK"), 31, 8, value)  # STRING
    d.sync()


def _root_mark(d) -> object:
    prop = d.screen().root.get_full_property(d.intern_atom("DESKPILOT_TASK_MARK"), 0)
    return None if prop is None else prop.value


async def _new_window(desktop: LocalDesktop, before: set[int]) -> set[int]:
    for _ in range(250):
        fresh = set(await desktop.client_windows()) - before
        if fresh:
            return fresh
        await asyncio.sleep(0.02)
    return set()


async def test_reset_keeps_the_x_server_unless_the_window_manager_died():
    async with LocalDesktop(320, 240, apps=("terminal",)) as desktop:
        x_server, display, old_home = desktop.pids[0], desktop.display, desktop.home
        assert old_home is not None
        # a program the desktop did not start, on its display (as the agent's shell may)
        stray = await asyncio.create_subprocess_exec(
            "xterm", env=merged_env(desktop), stdout=asyncio.subprocess.DEVNULL
        )
        try:
            assert len(await _new_window(desktop, set(await desktop.client_windows()))) == 1
            await desktop.type_text("é")  # on a spare keycode: deskpilot puts it back
            await desktop.backend.run_x("mark the root", _set_root_mark, b"task one")
            await desktop.move(5, 7)
            await desktop.reset()
            # light: the same X server, its stray client disconnected, the task's state gone
            assert (desktop.pids[0], desktop.display) == (x_server, display)
            assert await asyncio.wait_for(stray.wait(), 5) is not None
        finally:
            if stray.returncode is None:
                stray.kill()
                await stray.wait()
        assert len(await desktop.client_windows()) == 1  # the configured terminal only
        assert desktop.home != old_home and not old_home.exists()
        assert await desktop.backend.run_x("read the root", _root_mark) is None
        assert await desktop.cursor_position() == (160, 120)  # where a fresh Xvfb puts it
        out = await desktop.run_command('echo "$HOME|$XAUTHORITY"')
        assert out.stdout.strip() == f"{desktop.home}|{desktop.home}/.Xauthority"
        # the window manager runs again with the new HOME: its menu starts a working app
        before = set(await desktop.client_windows())
        await desktop.click(10, 90, button="right")  # the background
        await desktop.wait_settled()
        dx, dy = MENU_ENTRY_OFFSETS["Terminal"]
        await desktop.click(10 + dx, 90 + dy)
        assert await _new_window(desktop, before), "the root menu's Terminal did not start"

        os.killpg(desktop.pids[1], signal.SIGKILL)  # the window manager dies
        deadline = time.monotonic() + 5
        while _group_alive(desktop.pids[1]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await desktop.reset()
        assert desktop.pids[0] != x_server  # restarted: a new X server
        assert (await desktop.health())["ok"] and len(await desktop.client_windows()) == 1


def _swap_buttons(d) -> None:
    d.set_pointer_mapping([3, 2, 1, *d.get_pointer_mapping()[3:]])


async def test_reset_restarts_when_a_program_changed_what_it_cannot_put_back():
    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        x_server = desktop.pids[0]
        await desktop.backend.run_x("swap the buttons", _swap_buttons)  # as xmodmap would
        await desktop.reset()
        assert desktop.pids[0] != x_server
        mapping = await desktop.backend.run_x("read the buttons", lambda d: d.get_pointer_mapping())
        assert list(mapping[:3]) == [1, 2, 3]


async def test_health_and_commands_of_a_stopped_desktop():
    desktop = LocalDesktop(320, 240, window_manager=None)
    health = await desktop.health()
    assert health["ok"] is False and "not running" in health["detail"]
    with pytest.raises(DesktopError, match="not running"):
        await desktop.run_command("true")
    async with desktop:
        assert (await desktop.health())["ok"] is True
    assert (await desktop.health())["ok"] is False


async def test_kernel_files_and_folders_are_refused_even_through_a_symlink():
    """/proc here is deskpilot's own (files are read outside the desktop's namespace):
    /proc/self/environ would be deskpilot's environment, API key included."""
    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        out = await desktop.run_command("ln -s /proc/self/environ ~/answer.txt")
        assert out.ok
        for path in ("/proc/self/environ", "~/answer.txt"):
            with pytest.raises(DesktopError, match="kernel interface"):
                await desktop.get_file(path)
        with pytest.raises(DesktopError, match="kernel interface"):
            await desktop.put_file("/proc/self/comm", b"x")
        with pytest.raises(DesktopError, match="kernel interface"):
            await desktop.run_command(["ls"], cwd="/proc")
