"""The MCP tools of ``deskpilot mcp`` through the SDK's own client, in process (fast).

The server (``deskpilot.mcp.server.build_server``) runs in this process and the official
SDK's ``mcp.Client`` talks to it over the SDK's in-memory transport. The computer is a
``FakeComputer`` (the protocol only); the shell and the editor are real. Whatever an
executor answers is what the MCP client gets: every error sentence below is compared with
the one the executor itself gives for the same input, not with a copy of it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ImageContent, TextContent
from PIL import Image as PILImage

from deskpilot import ToolCall
from deskpilot.computer_use.bash import BashTool
from deskpilot.computer_use.computer import ComputerTool
from deskpilot.computer_use.editor import EditorTool
from deskpilot.computer_use.scaling import Scaler
from deskpilot.desktop.fake import FakeComputer
from deskpilot.mcp.server import build_server
from deskpilot.mcp.tools import (
    COMPUTER_VERSION,
    EDITOR_VERSION,
    READ_ONLY_ACTIONS,
    DesktopTools,
)

NATIVE = (1600, 1000)  # larger than the legacy image rule: screenshots are scaled down


@pytest.fixture
async def tools(tmp_path: Path):
    t = DesktopTools.for_computer(FakeComputer(*NATIVE), shell_env={"HOME": str(tmp_path)})
    yield t
    await t.aclose()


@pytest.fixture
async def read_only_tools():
    t = DesktopTools.for_computer(FakeComputer(*NATIVE), read_only=True)
    yield t
    await t.aclose()


def png_size(block: object) -> tuple[int, int]:
    assert isinstance(block, ImageContent)
    assert block.mime_type == "image/png"
    with PILImage.open(io.BytesIO(base64.b64decode(block.data))) as im:
        assert im.format == "PNG"
        return im.size


def text_of(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


async def test_lists_the_four_tools_with_the_computer_actions_of_the_table(tools) -> None:
    async with Client(build_server(tools)) as client:
        listed = (await client.list_tools()).tools
    assert [t.name for t in listed] == [
        "screenshot",
        "computer",
        "bash",
        "str_replace_based_edit_tool",
    ]
    computer = listed[1]
    executor = ComputerTool(FakeComputer(*NATIVE), COMPUTER_VERSION, enable_zoom=True)
    assert COMPUTER_VERSION == "computer_20251124"
    assert computer.input_schema["properties"]["action"]["enum"] == list(executor.actions)
    assert "zoom" in executor.actions
    w, h = Scaler.for_display(NATIVE, tier="legacy").model
    assert f"{w}x{h}" in (computer.description or "")
    editor = listed[3]
    assert "insert_text" in editor.input_schema["properties"]
    assert EDITOR_VERSION == "text_editor_20250728"


async def test_screenshot_is_a_png_at_the_size_the_model_sees(tools) -> None:
    async with Client(build_server(tools)) as client:
        result = await client.call_tool("screenshot", {})
    assert not result.is_error
    assert len(result.content) == 1
    model = Scaler.for_display(NATIVE, tier="legacy").model
    assert model != NATIVE
    assert png_size(result.content[0]) == model


async def test_a_click_is_scaled_to_native_pixels_and_answered_with_a_screenshot(tools) -> None:
    fake = tools.computer.computer
    mw, mh = tools.computer.model_size
    async with Client(build_server(tools)) as client:
        result = await client.call_tool(
            "computer", {"action": "left_click", "coordinate": [mw - 1, 0]}
        )
    assert not result.is_error
    assert text_of(result) == f"Left click at ({mw - 1}, 0)."
    assert png_size(result.content[1]) == (mw, mh)
    clicks = [kw for name, kw in fake.calls if name == "click"]
    assert clicks and clicks[-1]["x"] == tools.computer.scaler.to_native(mw - 1, 0)[0]


BAD_COMPUTER_INPUTS = [
    {},
    {"action": "fly"},
    {"action": "left_click", "coordinate": [5]},
    {"action": "left_click", "coordinate": [99999, 5]},
    {"action": "scroll", "scroll_direction": "sideways", "scroll_amount": 1},
    {"action": "type", "text": 5},
    {"action": "key"},
    {"action": "zoom", "region": [0, 0, 10]},
    {"action": "screenshot", "coordinate": [1, 1]},
]


@pytest.mark.parametrize("arguments", BAD_COMPUTER_INPUTS)
async def test_bad_computer_arguments_come_back_as_the_executors_tool_error(
    tools, arguments
) -> None:
    own = await ComputerTool(FakeComputer(*NATIVE), COMPUTER_VERSION).execute(
        ToolCall("x", "computer", dict(arguments))
    )
    assert own.is_error
    async with Client(build_server(tools)) as client:
        result = await client.call_tool("computer", arguments)
    assert result.is_error
    assert text_of(result) == own.text


async def test_bash_runs_and_its_errors_are_the_executors(tools) -> None:
    async with Client(build_server(tools)) as client:
        ok = await client.call_tool("bash", {"command": "echo $((6*7)); false"})
        empty = await client.call_tool("bash", {})
    assert not ok.is_error
    assert text_of(ok) == "42\n[exit code: 1]"
    own = await BashTool().execute(ToolCall("x", "bash", {}))
    assert empty.is_error and text_of(empty) == own.text == "no command provided."


async def test_the_editor_creates_views_and_reports_errors(tools, tmp_path: Path) -> None:
    path = tmp_path / "notes" / "a.txt"
    async with Client(build_server(tools)) as client:
        created = await client.call_tool(
            "str_replace_based_edit_tool",
            {"command": "create", "path": str(path), "file_text": "one\ntwo\n"},
        )
        viewed = await client.call_tool(
            "str_replace_based_edit_tool", {"command": "view", "path": str(path)}
        )
        bad = await client.call_tool(
            "str_replace_based_edit_tool", {"command": "view", "path": "relative.txt"}
        )
    assert not created.is_error and path.read_text() == "one\ntwo\n"
    assert not viewed.is_error and "     1\tone\n     2\ttwo" in text_of(viewed)
    own = await EditorTool(EDITOR_VERSION).execute(
        ToolCall("x", "str_replace_based_edit_tool", {"command": "view", "path": "relative.txt"})
    )
    assert bad.is_error and text_of(bad) == own.text


async def test_screenshot_takes_no_arguments(tools) -> None:
    async with Client(build_server(tools)) as client:
        result = await client.call_tool("screenshot", {"action": "left_click"})
    assert result.is_error
    assert "takes no arguments" in text_of(result)
    assert not [c for c in tools.computer.computer.calls if c[0] == "click"]


async def test_an_unknown_tool_is_a_protocol_error(tools) -> None:
    async with Client(build_server(tools)) as client:
        with pytest.raises(MCPError, match=r"Unknown tool: nope; this server offers: screenshot"):
            await client.call_tool("nope", {})


async def test_read_only_lists_and_runs_only_the_read_tools(read_only_tools) -> None:
    fake = read_only_tools.computer.computer
    async with Client(build_server(read_only_tools)) as client:
        listed = (await client.list_tools()).tools
        shot = await client.call_tool("screenshot", {})
        zoom = await client.call_tool("computer", {"action": "zoom", "region": [0, 0, 100, 50]})
        click = await client.call_tool("computer", {"action": "left_click", "coordinate": [5, 5]})
        typed = await client.call_tool("computer", {"action": "type", "text": "rm -rf ~\n"})
        with pytest.raises(MCPError, match=r"Unknown tool: bash \(this server is read-only"):
            await client.call_tool("bash", {"command": "id"})
        with pytest.raises(MCPError, match="Unknown tool: str_replace_based_edit_tool"):
            await client.call_tool("str_replace_based_edit_tool", {"command": "view", "path": "/"})
    assert [t.name for t in listed] == ["screenshot", "computer"]
    assert listed[1].input_schema["properties"]["action"]["enum"] == list(READ_ONLY_ACTIONS)
    assert listed[1].annotations is not None and listed[1].annotations.read_only_hint
    assert not shot.is_error and not zoom.is_error
    assert isinstance(zoom.content[1], ImageContent)
    for refused in (click, typed):
        assert refused.is_error
        assert "read-only" in text_of(refused)
    assert not [c for c in fake.calls if c[0] in ("click", "type_text", "move")]
    assert read_only_tools.bash is None and read_only_tools.editor is None


def test_the_cli_loads_without_the_sdk_and_the_command_says_how_to_install_it() -> None:
    hide_sdk = "import sys; sys.modules['mcp'] = None; sys.modules['mcp_types'] = None\n"
    run = "from deskpilot.cli import main; main([{}], prog_name='deskpilot')"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        code = hide_sdk + run.format(", ".join(repr(a) for a in args))
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )

    listed = cli("--help")
    assert listed.returncode == 0 and "mcp" in listed.stdout
    refused = cli("mcp", "--apps", "")
    assert refused.returncode == 1
    assert "deskpilot mcp needs the MCP SDK" in refused.stderr
    assert "pip install 'deskpilot[mcp]'" in refused.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2"])
async def test_any_loopback_bind_refuses_a_rebound_host_name(tools, host: str) -> None:
    """A page that rebinds its own name to a loopback address must not reach the server:
    the SDK checks Host/Origin only for 127.0.0.1/localhost/::1 by itself."""
    import asyncio
    import socket

    import httpx2
    import uvicorn

    from deskpilot.mcp.server import http_app

    sock = socket.create_server((host, 0))
    port = sock.getsockname()[1]
    url = f"http://{host}:{port}"
    app = http_app(build_server(tools), host=host, url=url, token=None)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        }
        accept = {"Accept": "application/json, text/event-stream"}
        async with httpx2.AsyncClient(headers=accept) as client:
            rebound = await client.post(
                f"{url}/mcp", json=init, headers={"Host": f"attacker.example:{port}"}
            )
            own = await client.post(f"{url}/mcp", json=init)
        assert rebound.status_code == 421
        assert own.status_code == 200
    finally:
        server.should_exit = True
        await task
        sock.close()


def test_the_cli_log_filter_cuts_the_mcp_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log line never shows ``deskpilot mcp``'s bearer token (its HTTP transport's secret)."""
    import logging

    from deskpilot.cli_logging import FILTER, environment_secrets

    token = "mcp-token-0123456789abcdef"
    monkeypatch.setenv("DESKPILOT_MCP_TOKEN", token)
    assert token in environment_secrets()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "auth %s", (token,), None)
    FILTER.filter(record)
    assert token not in record.getMessage()
