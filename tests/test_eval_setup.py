"""Eval set-up steps on a real desktop: each step type does its job through the DesktopHost,
and every failure (failing command, missing program or file, path outside the suite, network
URL, unknown window, bad parameters) is a SetupError naming the step."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deskpilot.desktop.local import LocalDesktop
from deskpilot.eval import EvalContext, SetupError, run_setup
from deskpilot.eval.pyautogui_compat import parse
from deskpilot.eval.setup import check_step, ere_escape, run_step
from deskpilot.eval.task import SetupStep

pytestmark = pytest.mark.desktop


@pytest.fixture
async def ctx(tmp_path):
    suite = tmp_path / "suite"
    (suite / "_assets").mkdir(parents=True)
    (suite / "_assets" / "page.txt").write_text("from the suite\n")
    (tmp_path / "secret.txt").write_text("outside the suite\n")
    async with LocalDesktop(640, 400) as desktop:
        yield EvalContext(
            host=desktop,
            work_dir=tmp_path / "work",
            computer=desktop,
            base_dir=suite,
            root_dir=suite,
            command_timeout_s=5,
        )


async def windows(ctx, name):
    out = await ctx.host.run_command(["xdotool", "search", "--onlyvisible", "--name", name])
    return out.stdout.split()


async def test_execute_runs_strings_in_bash_and_lists_as_argv(ctx):
    await run_step(ctx, "execute", {"command": "mkdir -p ~/d && echo hi > ~/d/a", "shell": True})
    await run_step(ctx, "command", {"command": ["cp", "~/d/a", "~/d/b"]})  # ~/ expanded
    await run_step(ctx, "execute", {"command": "touch '/home/user/x y'".replace("/home/user", "~")})
    assert await ctx.host.get_file("~/d/b") == b"hi\n"
    assert (
        await ctx.host.run_command(["test", "-f", "~/x y".replace("~", ctx.host.resolve_path("~"))])
    ).ok


async def test_execute_failures_say_what_failed(ctx):
    with pytest.raises(SetupError, match=r"exited with 3: boom"):
        await run_step(ctx, "execute", {"command": "echo boom >&2; exit 3", "shell": True})
    with pytest.raises(SetupError, match="exited with 127"):
        await run_step(ctx, "execute", {"command": ["no-such-program-xyz"]})
    t0 = time.perf_counter()
    with pytest.raises(SetupError, match="did not finish within 5 s"):
        await run_step(ctx, "execute", {"command": "sleep 30", "shell": True})
    assert time.perf_counter() - t0 < 15
    with pytest.raises(SetupError, match="'until' retry condition"):
        await run_step(ctx, "execute", {"command": "true", "until": {"returncode": 0}})
    with pytest.raises(SetupError, match="could not be split"):
        await run_step(ctx, "execute", {"command": "echo 'unclosed"})


async def test_pyautogui_one_liners_become_desktop_actions(ctx):
    code = "import pyautogui; import time; pyautogui.click(960, 540); time.sleep(0.1);"
    await run_step(ctx, "execute", {"command": ["python", "-c", code]})
    assert await ctx.computer.cursor_position() == (320, 200)  # OSWorld's centre, scaled
    actions = parse("import pyautogui; pyautogui.hotkey('ctrl', 'alt', 't'); pyautogui.write('ls')")
    assert [(a.kind, a.text) for a in actions] == [("key", "ctrl+alt+t"), ("type", "ls")]
    for bad, why in [
        ("import os", "'import os' is not supported"),
        ("pyautogui.moveTo(1, 2)", r"moveTo\(\) with 2 arguments"),
        ("x = 1", "statement 'x = 1'"),
        ("pyautogui.click(x, 2)", "must be a literal"),
        ("pyautogui.click(", "does not parse"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse(bad)
    no_screen = EvalContext(host=ctx.host, work_dir=ctx.work_dir)
    with pytest.raises(SetupError, match="no computer was given"):
        await run_step(no_screen, "execute", {"command": ["python3", "-c", code]})


async def test_launch_and_open_start_the_right_app_and_wait_for_its_window(ctx):
    await run_step(ctx, "launch", {"command": ["gedit"]})  # OSWorld's editor -> mousepad
    assert await windows(ctx, "Mousepad")
    await ctx.host.put_file("~/notes.txt", b"hello\n")
    await run_step(ctx, "open", {"path": "~/notes.txt"})
    assert await windows(ctx, "notes.txt")
    await run_step(ctx, "launch", {"command": "sleep 30", "shell": True})  # background
    with pytest.raises(SetupError, match="'no-such-app' is not installed"):
        await run_step(ctx, "launch", {"command": ["no-such-app", "--flag"]})
    with pytest.raises(SetupError, match=r"No file at .*missing\.txt to open"):
        await run_step(ctx, "open", {"path": "~/missing.txt"})
    with pytest.raises(SetupError, match="is a folder; no file manager"):
        await run_step(ctx, "open", {"path": "~"})
    assert "LibreOffice" in (check_step("open", {"path": "~/a.docx"}) or "")


async def test_open_a_web_page_waits_for_its_title(ctx):
    await ctx.host.put_file("~/p.html", b"<title>Hello page</title><h1>Hi</h1>")
    await run_step(ctx, "open", {"path": "~/p.html"})
    assert await windows(ctx, "Hello page")


async def test_sleep_waits_and_checks_its_seconds(ctx):
    t0 = time.perf_counter()
    assert await run_step(ctx, "sleep", {"seconds": 0.3}) == "slept 0.3 s"
    assert time.perf_counter() - t0 >= 0.3
    for bad in (-1, 61, "1", True):
        with pytest.raises(SetupError, match="'seconds' from 0 to 60"):
            await run_step(ctx, "sleep", {"seconds": bad})


async def test_upload_and_download_copy_suite_files_only(ctx):
    await run_step(
        ctx, "upload_file", {"files": [{"local_path": "_assets/page.txt", "path": "~/in/p.txt"}]}
    )
    assert await ctx.host.get_file("~/in/p.txt") == b"from the suite\n"
    await run_step(
        ctx, "download", {"files": [{"url": "file://_assets/page.txt", "path": "relative.txt"}]}
    )
    assert await ctx.host.get_file("~/relative.txt") == b"from the suite\n"
    with pytest.raises(SetupError, match="outside the suite's directory"):
        await run_step(
            ctx, "upload_file", {"files": [{"local_path": "../secret.txt", "path": "~/s"}]}
        )
    with pytest.raises(SetupError, match="No local file at"):
        await run_step(ctx, "upload_file", {"files": [{"local_path": "nope.txt", "path": "~/s"}]})
    with pytest.raises(SetupError, match="needs the network"):
        await run_step(
            ctx, "download", {"files": [{"url": "https://example.org/x.sh", "path": "x.sh"}]}
        )


async def test_activate_and_close_windows_by_title_or_class(ctx):
    for title in ("First [one]", "Second"):
        await ctx.host.run_command(["xterm", "-title", title], background=True)
    await run_step(ctx, "sleep", {"seconds": 0})
    await ctx.host.run_command(
        ["bash", "-c", "until xdotool search --onlyvisible --name Second; do sleep 0.1; done"],
        timeout_s=10,
    )
    await ctx.host.run_command(
        ["bash", "-c", "until xdotool search --onlyvisible --name First; do sleep 0.1; done"],
        timeout_s=10,
    )
    await run_step(ctx, "activate_window", {"window_name": "First [one]", "strict": True})
    active = await ctx.host.run_command(["xdotool", "getactivewindow", "getwindowname"])
    assert active.stdout.strip() == "First [one]"
    await run_step(ctx, "activate_window", {"window_name": "xterm", "by_class": True})
    with pytest.raises(SetupError, match="No window whose title is 'First'"):
        await run_step(ctx, "activate_window", {"window_name": "First", "strict": True})
    await run_step(ctx, "close_window", {"window_name": "Second"})
    await ctx.host.run_command(
        ["bash", "-c", "while xdotool search --onlyvisible --name Second; do sleep 0.1; done"],
        timeout_s=10,
    )
    assert not await windows(ctx, "Second") and await windows(ctx, "First")
    with pytest.raises(SetupError, match="No window whose title contains 'Nothing'"):
        await run_step(ctx, "close_window", {"window_name": "Nothing"})
    assert ere_escape("a.b[1]") == "a\\.b\\[1\\]"


async def test_run_setup_stops_at_the_first_failure_and_names_it(ctx):
    assert not (await ctx.host.run_command("test -d ~/Desktop")).ok  # a fresh HOME
    steps = [
        SetupStep(type="execute", parameters={"command": "echo 1 > ~/one", "shell": True}),
        SetupStep(type="execute", parameters={"command": "exit 4", "shell": True}),
        SetupStep(type="execute", parameters={"command": "echo 3 > ~/three", "shell": True}),
    ]
    with pytest.raises(SetupError, match=r"config step 2 \(execute\): .*exited with 4"):
        await run_setup(ctx, steps)
    assert (await ctx.host.run_command(["test", "-e", "~/one"])).returncode is not None
    assert await ctx.host.get_file("~/one") == b"1\n"
    assert not (await ctx.host.run_command("test -e ~/three")).ok
    with pytest.raises(SetupError, match="step type 'reboot' is not supported"):
        await run_setup(ctx, [SetupStep(type="reboot")])
    done = await run_setup(ctx, steps[:1], where="postconfig")
    assert done == ["ran `echo 1 > ~/one`"] and isinstance(ctx.work_dir, Path)
    # a task's config starts in a home with OSWorld's folders
    assert (await ctx.host.run_command("test -d ~/Desktop && test -d ~/Downloads")).ok
