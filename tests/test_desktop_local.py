"""LocalDesktop and X11Display on a real Xvfb: lifecycle, isolation, death and restart,
screenshots, app launch, the root menu."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from deskpilot.desktop.apps import MENU_ENTRY_OFFSETS, MENU_SIZE
from deskpilot.desktop.local import LocalDesktop, X11Display
from deskpilot.errors import ClosedError, ConfigError, DisplayDiedError
from event_window import EventWindow

pytestmark = pytest.mark.desktop

BACKGROUND = (0x3A, 0x6E, 0xA5)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_start_and_close_end_every_process_group_and_remove_home():
    desktop = LocalDesktop(640, 480, apps=("terminal",))
    async with desktop:
        assert desktop.display.startswith(":")
        assert desktop.size == (640, 480)
        pids = desktop.pids
        assert len(pids) == 3  # Xvfb, openbox, xterm
        assert all(_group_exists(p) for p in pids)
        # No GLX: Mesa's software rasteriser (libLLVM) would add ~50 MB to every desktop.
        maps = Path(f"/proc/{pids[0]}/maps").read_text()
        assert "Xvfb" in Path(f"/proc/{pids[0]}/cmdline").read_text()
        assert "libLLVM" not in maps and "swrast_dri" not in maps
        home = desktop.home
        assert home is not None and home.is_dir()
        env = desktop.env
        assert env["DISPLAY"] == desktop.display and env["HOME"] == str(home)
        assert env["LANG"] == "C.UTF-8"
        number = desktop.display[1:]
        assert Path(f"/tmp/.X11-unix/X{number}").exists()
    for _ in range(100):  # reaped already; groups vanish at once, give the kernel a moment
        if not any(_group_exists(p) for p in pids):
            break
        await asyncio.sleep(0.02)
    assert not any(_group_exists(p) for p in pids)
    assert not home.exists()
    assert not Path(f"/tmp/.X{number}-lock").exists()
    with pytest.raises(ClosedError):
        await desktop.screenshot()
    with pytest.raises(ClosedError):
        await desktop.click(1, 1)
    await desktop.close()  # idempotent


async def test_screenshot_is_native_size_and_shows_a_known_window(desktop, event_window):
    await event_window(x=200, y=150, width=300, height=200, colour=0xFF8000)
    img = await desktop.screenshot()
    assert img.size == (1280, 800) and img.mode == "RGB"
    assert img.getpixel((200, 150)) == (0xFF, 0x80, 0x00)
    assert img.getpixel((499, 349)) == (0xFF, 0x80, 0x00)
    assert img.getpixel((199, 150)) == BACKGROUND
    assert img.getpixel((500, 349)) == BACKGROUND
    assert img.getpixel((1279, 799)) == BACKGROUND


async def test_two_desktops_side_by_side_show_their_own_content():
    async with LocalDesktop(800, 600) as a, LocalDesktop(800, 600) as b:
        assert a.display != b.display
        wa = await EventWindow(a.display, 50, 50, 100, 100, 0xFF0000, a.xauthority).start()
        wb = await EventWindow(b.display, 300, 300, 100, 100, 0x00FF00, b.xauthority).start()
        try:
            ia, ib = await a.screenshot(), await b.screenshot()
            assert ia.getpixel((60, 60)) == (255, 0, 0) and ia.getpixel((310, 310)) == BACKGROUND
            assert ib.getpixel((310, 310)) == (0, 255, 0) and ib.getpixel((60, 60)) == BACKGROUND
            await a.click(70, 80)
            await wa.wait_count("ButtonPress", 1)
            await wb.quiet(0.2)
            assert wb.of("ButtonPress") == []
        finally:
            await wa.close()
            await wb.close()


async def test_dead_x_server_raises_display_died_and_restart_recovers():
    async with LocalDesktop(640, 480) as desktop:
        xvfb_pid = desktop.pids[0]
        old_display = desktop.display
        os.kill(xvfb_pid, signal.SIGKILL)
        with pytest.raises(DisplayDiedError, match=f"display {old_display} is no longer running"):
            for _ in range(50):
                await desktop.click(10, 10)
                await asyncio.sleep(0.02)
        with pytest.raises(DisplayDiedError, match="must be restarted"):
            await desktop.screenshot()
        await desktop.restart()
        assert desktop.pids[0] != xvfb_pid
        img = await desktop.screenshot()
        assert img.size == (640, 480) and img.getpixel((5, 5)) == BACKGROUND
        win = await EventWindow(
            desktop.display, 10, 10, 100, 100, xauthority=desktop.xauthority
        ).start()
        try:
            await desktop.click(20, 30)
            press = (await win.wait_count("ButtonPress", 1))[0]
            assert (press["x"], press["y"]) == (10, 20)
        finally:
            await win.close()


async def test_launch_terminal_runs_in_the_desktop_env(desktop):
    app = await desktop.launch("terminal")
    assert app.window is not None
    assert await desktop.active_window() == app.window
    await desktop.type_text('echo "$DISPLAY $HOME" > "$HOME/where.txt"\n')
    target = desktop.home / "where.txt"
    for _ in range(200):
        if target.exists() and target.read_text().endswith("\n"):
            break
        await asyncio.sleep(0.01)
    assert target.read_text().split() == [desktop.display, str(desktop.home)]


async def test_root_menu_opens_on_right_click_of_the_background(desktop):
    before = await desktop.screenshot()
    await desktop.click(400, 300, button="right")
    await desktop.wait_settled()  # openbox draws the menu after the click returns
    after = await desktop.screenshot()
    # The menu appears to the lower right of the click point.
    region = (400, 300, 600, 400)
    assert before.crop(region).tobytes() != after.crop(region).tobytes()
    assert after.getpixel((390, 290)) == BACKGROUND
    await desktop.key("Escape")
    await desktop.wait_settled()
    closed = await desktop.screenshot()
    assert closed.crop(region).getcolors(1) == [(200 * 100, BACKGROUND)]


def _menu_rows(img, x0: int, y0: int) -> list[tuple[int, int]]:
    """(first, last) y offsets of the text rows inside the menu opened at (x0, y0)."""
    rows, inside = [], None
    for dy in range(1, MENU_SIZE[1] - 1):
        dark = any(sum(img.getpixel((x0 + dx, y0 + dy))) < 300 for dx in range(4, 90))
        if dark and inside is None:
            inside = dy
        elif not dark and inside is not None:
            rows.append((inside, dy - 1))
            inside = None
    return rows


async def test_root_menu_entry_offsets_match_the_published_table(desktop):
    await desktop.click(300, 200, button="right")
    await desktop.wait_settled()  # openbox draws the menu after the click returns
    img = await desktop.screenshot()
    w, h = MENU_SIZE
    assert img.getpixel((300 + w - 1, 200 + h - 1)) != BACKGROUND
    assert img.getpixel((300 + w, 200 + h)) == BACKGROUND
    rows = _menu_rows(img, 300, 200)
    assert len(rows) == 3
    for (top, bottom), (label, (_, dy)) in zip(rows, MENU_ENTRY_OFFSETS.items(), strict=True):
        assert top <= dy <= bottom, (label, rows)


@pytest.mark.parametrize(
    ("label", "wm_class"), [("Text Editor", "mousepad"), ("Terminal", "xterm")]
)
async def test_root_menu_entries_start_their_apps(desktop, label, wm_class):
    before = set(await desktop.client_windows())
    await desktop.click(300, 200, button="right")
    await desktop.wait_settled()  # openbox draws the menu after the click returns
    await desktop.screenshot()
    dx, dy = MENU_ENTRY_OFFSETS[label]
    await desktop.click(300 + dx, 200 + dy)
    fresh: set[int] = set()
    for _ in range(500):
        fresh = set(await desktop.client_windows()) - before
        if fresh:
            break
        await asyncio.sleep(0.02)
    assert fresh, f"no window appeared after clicking {label}"
    classes = await desktop.backend.run_x("read WM_CLASS", _wm_classes, sorted(fresh))
    assert any(wm_class in c.lower() for c in classes), classes


def _wm_classes(d, windows):
    out = []
    for wid in windows:
        cls = d.create_resource_object("window", wid).get_wm_class() or ()
        out.append(" ".join(cls))
    return out


async def test_x11_display_drives_an_existing_display(desktop, event_window):
    win = await event_window(x=10, y=10, width=200, height=200)
    async with X11Display(desktop.display, xauthority=desktop.xauthority) as other:
        assert other.size == (1280, 800)
        assert other.env == {"DISPLAY": desktop.display, "XAUTHORITY": desktop.xauthority}
        await other.click(60, 70)
        press = (await win.wait_count("ButtonPress", 1))[0]
        assert (press["x"], press["y"]) == (50, 60)
    with pytest.raises(ClosedError):
        await other.click(1, 1)


def test_bad_configuration_is_rejected():
    with pytest.raises(ConfigError):
        LocalDesktop(10, 800)
    with pytest.raises(ConfigError):
        LocalDesktop(depth=16)
    with pytest.raises(ConfigError):
        LocalDesktop(apps=("spreadsheet",))
    with pytest.raises(ConfigError):
        LocalDesktop(background="blue")
    with pytest.raises(ConfigError):
        X11Display("not-a-display")
    with pytest.raises(TypeError):
        X11Display()  # type: ignore[call-arg]  # never the default display


def test_doctor_reports_programs_modules_and_key_without_its_value(monkeypatch):
    from deskpilot.doctor import check, format_report

    env = {"PATH": os.environ["PATH"], "ANTHROPIC_API_KEY": "sk-secret-value"}
    checks = {c.name: c for c in check(env)}
    assert checks["Xvfb"].ok and checks["openbox"].ok
    assert checks["python: mss"].ok and checks["python: Xlib"].ok
    assert checks["ANTHROPIC_API_KEY"].ok
    report = format_report(list(checks.values()))
    assert "sk-secret-value" not in report


def test_doctor_gives_exact_install_commands_for_missing_things(tmp_path):
    from deskpilot.doctor import check, format_report

    checks = {c.name: c for c in check({"PATH": str(tmp_path)})}
    xvfb = checks["Xvfb"]
    assert not xvfb.ok and xvfb.required
    assert "apt-get install -y --no-install-recommends xvfb" in xvfb.fix_command
    assert "deskpilot doctor --install" in xvfb.fix_command
    assert "apt-get install -y --no-install-recommends chromium" in checks["chromium"].fix_command
    assert not checks["ANTHROPIC_API_KEY"].ok
    report = format_report(list(checks.values()))
    assert "MISSING" in report and "required item(s) missing" in report


def test_chromium_turns_its_sandbox_off_only_as_root(tmp_path):
    """Probe ("other low"): the browser app always passed --no-sandbox; only root needs it."""
    from deskpilot.desktop.apps import app_spec, menu_xml

    browser = app_spec("browser")
    as_user = browser.argv(tmp_path, as_root=False)
    as_root = browser.argv(tmp_path, as_root=True)
    assert "--no-sandbox" not in as_user and "--test-type" not in as_user
    assert as_root[:3] == ["chromium", "--no-sandbox", "--test-type"]
    assert as_user == [as_root[0], *as_root[3:]]
    assert f"--user-data-dir={tmp_path}/.chromium-profile" in as_user
    assert browser.argv(tmp_path) == (as_root if os.geteuid() == 0 else as_user)
    assert ("--no-sandbox" in menu_xml(tmp_path)) == (os.geteuid() == 0)
    assert app_spec("terminal").argv(tmp_path, as_root=True)[0] == "xterm"
