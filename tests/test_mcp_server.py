"""``deskpilot mcp`` as a real process, driven by the official MCP SDK's client.

Over stdio the SDK's ``stdio_client`` spawns ``python -m deskpilot mcp``; over streamable HTTP
the server listens on loopback and the SDK's ``streamable_http_client`` connects. Each server
starts a real Xvfb desktop: the screenshot is a PNG of it, a right-click opens openbox's
menu, text typed into the xterm runs in its shell and is read back through the bash tool.
"""

from __future__ import annotations

import base64
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ImageContent, TextContent
from PIL import Image as PILImage
from PIL import ImageChops

from deskpilot.computer_use.scaling import Scaler
from deskpilot.mcp.tools import READ_ONLY_ACTIONS

pytestmark = pytest.mark.desktop

TOKEN = "test-token-0123456789abcdef"
SECRET = "sk-ant-api03-NOT-A-REAL-KEY-mcp-test"
BACKGROUND = (0x3A, 0x6E, 0xA5)  # LocalDesktop's default background colour
MCP = [sys.executable, "-m", "deskpilot", "mcp"]
ALL_TOOLS = ["screenshot", "computer", "bash", "str_replace_based_edit_tool"]


def png(block: object) -> PILImage.Image:
    assert isinstance(block, ImageContent) and block.mime_type == "image/png"
    im = PILImage.open(io.BytesIO(base64.b64decode(block.data)))
    assert im.format == "PNG"
    return im.convert("RGB")


def text_of(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


def server_params(*args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "deskpilot", "mcp", *args], env=env
    )


async def common_checks(session: ClientSession, tmp: Path, model: tuple[int, int]) -> None:
    """What every transport must do: list, screenshot, bash, editor, a bad argument."""
    assert [t.name for t in (await session.list_tools()).tools] == ALL_TOOLS
    shot = await session.call_tool("screenshot", {})
    assert not shot.is_error
    image = png(shot.content[0])
    assert image.size == model
    corner = image.getpixel((model[0] - 1, model[1] - 1))
    assert corner == BACKGROUND  # the desktop's own background, as Xvfb shows it

    ran = await session.call_tool("bash", {"command": "echo $((6*7)) on $DISPLAY"})
    assert not ran.is_error and re.fullmatch(r"42 on :\d+", text_of(ran))

    path = tmp / "sub" / "hello.txt"
    made = await session.call_tool(
        "str_replace_based_edit_tool",
        {"command": "create", "path": str(path), "file_text": "hello mcp\n"},
    )
    assert not made.is_error and path.read_text() == "hello mcp\n"
    seen = await session.call_tool(
        "str_replace_based_edit_tool", {"command": "view", "path": str(path)}
    )
    assert "     1\thello mcp" in text_of(seen)

    bad = await session.call_tool("computer", {"action": "left_click", "coordinate": [-1, 5]})
    assert bad.is_error
    assert text_of(bad).startswith("coordinate=[-1, 5] must be a list of two non-negative")


@pytest.mark.slow
async def test_stdio_session_drives_a_real_desktop(tmp_path: Path) -> None:
    native = (1600, 1000)
    model = Scaler.for_display(native, tier="legacy").model
    assert model != native
    env = {"ANTHROPIC_API_KEY": SECRET, "DESKPILOT_MCP_TOKEN": TOKEN}
    params = server_params("--width", "1600", "--height", "1000", "--apps", "terminal", env=env)
    with tempfile.TemporaryFile("w+") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await common_checks(session, tmp_path, model)

            # typing reaches the focused xterm, whose shell runs it
            line = "echo mcp-$((6*7)) > ~/typed.txt\n"
            typed = await session.call_tool("computer", {"action": "type", "text": line})
            assert not typed.is_error and text_of(typed) == f"Typed {len(line)} characters."
            back = await session.call_tool(
                "bash",
                {
                    "command": "for i in $(seq 100); do [ -s ~/typed.txt ] && break; "
                    "sleep 0.05; done; cat ~/typed.txt"
                },
            )
            assert text_of(back) == "mcp-42"

            # a right-click on the background opens openbox's menu there
            x, y = model[0] * 3 // 4, model[1] * 3 // 4
            before = png((await session.call_tool("screenshot", {})).content[0])
            clicked = await session.call_tool(
                "computer", {"action": "right_click", "coordinate": [x, y]}
            )
            assert not clicked.is_error and text_of(clicked) == f"Right click at ({x}, {y})."
            after = png(clicked.content[1])
            box = (x, y, min(x + 60, model[0]), min(y + 40, model[1]))
            assert ImageChops.difference(before.crop(box), after.crop(box)).getbbox() is not None
            where = await session.call_tool("computer", {"action": "cursor_position"})
            assert text_of(where) == f"X={x}, Y={y}"
            await session.call_tool("computer", {"action": "key", "text": "Escape"})

            # the shell has the desktop's allow-listed environment: no credential of ours
            environ = text_of(await session.call_tool("bash", {"command": "env"}))
            assert "DISPLAY=" in environ
            assert SECRET not in environ and TOKEN not in environ
            home = text_of(await session.call_tool("bash", {"command": "echo $HOME"}))
        errlog.seek(0)
        log = errlog.read()
    assert "serving over stdio" in log and "closing the desktop" in log
    assert not Path(home).exists()  # the desktop's scratch HOME went with it


@pytest.mark.slow
async def test_read_only_server_lists_only_the_read_tools() -> None:
    async with (
        stdio_client(server_params("--read-only", "--apps", "")) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = (await session.list_tools()).tools
        zoom = await session.call_tool("computer", {"action": "zoom", "region": [0, 0, 64, 40]})
        refused = await session.call_tool(
            "computer", {"action": "left_click", "coordinate": [1, 1]}
        )
        with pytest.raises(MCPError, match="read-only"):
            await session.call_tool("bash", {"command": "id"})
    assert [t.name for t in listed] == ["screenshot", "computer"]
    assert listed[1].input_schema["properties"]["action"]["enum"] == list(READ_ONLY_ACTIONS)
    assert not zoom.is_error and png(zoom.content[1]).size[0] > 64
    assert refused.is_error and "read-only" in text_of(refused)


@pytest.fixture
def http_server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKPILOT_")}
    env["DESKPILOT_MCP_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [*MCP, "--transport", "http", "--port", "0", "--apps", ""],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        found = re.search(r"serving streamable HTTP on (http://127\.0\.0\.1:\d+/mcp)", line)
        url = found.group(1) if found else None
    try:
        assert url is not None, f"no URL; exit {proc.poll()}"
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
async def test_http_session_needs_the_token_and_drives_the_desktop(
    http_server: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    proc, url = http_server
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx2.AsyncClient() as raw:
        missing = await raw.post(url, json=ping)
        wrong = await raw.post(url, json=ping, headers={"Authorization": "Bearer not-it"})
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer ")

    auth = {"Authorization": f"Bearer {TOKEN}"}
    port = url.split(":")[2].split("/")[0]
    async with httpx2.AsyncClient(headers=auth) as raw:  # DNS rebinding: a foreign name
        rebound = await raw.post(url, json=ping, headers={"Host": f"evil.example:{port}"})
        foreign = await raw.post(url, json=ping, headers={"Origin": "http://evil.example"})
    assert rebound.status_code == 421 and foreign.status_code == 403
    async with (
        httpx2.AsyncClient(headers=auth) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await common_checks(session, tmp_path, Scaler.for_display((1280, 800)).model)
        environ = text_of(await session.call_tool("bash", {"command": "env"}))
        assert TOKEN not in environ

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 128 + signal.SIGTERM
    assert proc.stderr is not None
    tail = proc.stderr.read()
    assert "closing the desktop" in tail and "stopped by SIGTERM" in tail


def test_a_stdio_server_closes_its_desktop_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "deskpilot", "mcp", "--apps", ""],
        stdin=subprocess.PIPE,  # kept open: the client has not left
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = []
        while not any("serving over stdio" in line for line in lines):
            line = proc.stderr.readline()
            assert line, f"server ended early: {lines}"
            lines.append(line)
        display = re.search(r"DISPLAY=(:\d+)", "".join(lines))
        assert display is not None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 128 + signal.SIGTERM
        rest = proc.stderr.read()
        assert "closing the desktop" in rest and "stopped by SIGTERM" in rest
        assert proc.stdout is not None and proc.stdout.read() == ""  # stdout: protocol only
        lock = Path(f"/tmp/.X{display.group(1)[1:]}-lock")
        assert not lock.exists()  # Xvfb is gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DESKPILOT_")}
    return subprocess.run(
        [sys.executable, "-m", "deskpilot", "mcp", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_binding_beyond_loopback_without_a_token_is_refused_before_any_desktop() -> None:
    done = run_cli("--transport", "http", "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 1
    assert "Error: Binding 0.0.0.0 would let anyone" in done.stderr
    assert "DESKPILOT_MCP_TOKEN" in done.stderr
    assert "DISPLAY=" not in done.stderr  # no desktop was started

    short = run_cli("--transport", "http", "--host", "0.0.0.0", env={"DESKPILOT_MCP_TOKEN": "x"})
    assert short.returncode == 1 and "at least 16 printable characters" in short.stderr


def test_http_options_only_go_with_http() -> None:
    done = run_cli("--port", "9999")
    assert done.returncode == 2
    assert "--port only go(es) with --transport http" in done.stderr
