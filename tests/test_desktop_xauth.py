"""Only clients holding a desktop's cookie can use its X server (probe #1, finding E).

Xvfb ran without ``-auth``: any local user could screenshot the agent's desktop and type into
its terminal. Now each LocalDesktop has a random MIT-MAGIC-COOKIE-1 (deskpilot.desktop.xauth):
clients without it are refused (xdpyinfo, python-xlib, another user's xdotool), clients with
it (the desktop's own programs, deskpilot's connection, ``merged_env``) get in.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from deskpilot.desktop.local import LocalDesktop, merged_env
from deskpilot.desktop.xauth import COOKIE_NAME, new_cookie, read_cookies, write_xauthority

pytestmark = pytest.mark.desktop

BARE_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}


def xdpyinfo(display: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["xdpyinfo", "-display", display], env=env, capture_output=True, text=True, timeout=20
    )


@pytest.fixture
async def desktop():
    async with LocalDesktop(320, 240, window_manager=None) as d:
        yield d


@pytest.mark.skipif(shutil.which("xdpyinfo") is None, reason="needs xdpyinfo (x11-utils)")
async def test_a_client_without_the_cookie_is_refused_and_one_with_it_accepted(desktop, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    for env in (BARE_ENV, {**BARE_ENV, "XAUTHORITY": str(empty)}):
        refused = await asyncio.to_thread(xdpyinfo, desktop.display, env)
        assert refused.returncode != 0
        assert "Authorization required" in refused.stderr, refused.stderr
    ok = await asyncio.to_thread(xdpyinfo, desktop.display, merged_env(desktop, base=BARE_ENV))
    assert ok.returncode == 0 and "320x240" in ok.stdout, ok.stderr


async def test_python_xlib_needs_the_cookie_too(desktop, tmp_path):
    from Xlib import display as xdisplay
    from Xlib import error as xerror

    from deskpilot.desktop.xauth import authority

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with authority(str(empty)), pytest.raises(xerror.DisplayConnectionError, match="uthoriz"):
        xdisplay.Display(desktop.display)
    with authority(desktop.xauthority):
        d = xdisplay.Display(desktop.display)
    assert d.screen().width_in_pixels == 320
    d.close()
    assert (await desktop.screenshot()).size == (320, 240)  # deskpilot's own connection


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("xdotool") is None,
    reason="needs root (to become nobody), setpriv and xdotool",
)
async def test_another_user_cannot_type_into_the_agents_terminal(tmp_path):
    """The probe's attack (f16): user nobody clicks into the xterm and types a command."""
    target = Path("/tmp") / f"deskpilot-xauth-probe-{os.getpid()}"
    target.unlink(missing_ok=True)
    async with LocalDesktop(640, 480, apps=("terminal",)) as d:
        attack = await asyncio.to_thread(
            subprocess.run,
            [
                "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                "xdotool", "mousemove", "200", "150", "click", "1", "type", f"touch {target}\n",
            ],
            env={**BARE_ENV, "DISPLAY": d.display, "HOME": "/tmp"},
            capture_output=True,
            text=True,
            timeout=20,
        )  # fmt: skip
        await asyncio.sleep(1.0)
    try:
        assert attack.returncode != 0, attack.stdout
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


async def test_the_cookie_is_private_random_per_start_and_removed_on_close():
    d = LocalDesktop(320, 240, window_manager=None)
    async with d:
        first = Path(d.env["XAUTHORITY"])
        assert first.parent == d.home and d.xauthority == str(first)
        assert stat.S_IMODE(first.stat().st_mode) == 0o600
        assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
        cookies = {rec[4] for rec in read_cookies(first)}
        assert len(cookies) == 1 and len(next(iter(cookies))) == 16
        await d.restart()
        second = Path(d.env["XAUTHORITY"])
        assert not first.exists()  # with the old scratch HOME
        assert {rec[4] for rec in read_cookies(second)}.isdisjoint(cookies)
        assert (await d.screenshot()).size == (320, 240)
    assert not second.exists() and d.xauthority is None


def test_the_file_format_and_no_write_through_a_planted_link(tmp_path):
    cookie = new_cookie()
    path = write_xauthority(tmp_path / "auth", cookie)
    records = read_cookies(path)
    # one FamilyLocal record for this host, one FamilyWild; any display number
    assert [(r[0], r[2], r[3], r[4]) for r in records] == [
        (256, b"", COOKIE_NAME, cookie),
        (65535, b"", COOKIE_NAME, cookie),
    ]
    if shutil.which("xauth"):
        listed = subprocess.run(
            ["xauth", "-f", str(path), "list"], capture_output=True, text=True, check=True
        ).stdout
        assert listed.count(cookie.hex()) == 2
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_xauthority(tmp_path / "link", cookie)
    assert victim.read_text() == "keep"
    with pytest.raises(ValueError):
        write_xauthority(tmp_path / "short", b"1234")
