"""RemoteDesktop against the computer server on loopback, on a REAL Xvfb desktop: the
Computer and DesktopHost methods, executors whose results equal the local ones, a dropped
connection mid-action (reconnect, same id, the action runs once), and the agent with every
tool on the server."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from aiohttp import web

from deskpilot import Agent, LLMClient, RemoteDesktop
from deskpilot.agent.toolbox import Toolbox
from deskpilot.computer_use.bash import BashTool
from deskpilot.computer_use.computer import ComputerTool
from deskpilot.computer_use.editor import EditorTool
from deskpilot.computer_use.specs import versions
from deskpilot.desktop.base import CommandOutput, Computer, DesktopHost
from deskpilot.errors import ConfigError, DesktopError, ToolInputError
from deskpilot.models import resolve_model
from deskpilot.prompt import ToolCall
from deskpilot.remote import RemoteError
from deskpilot.remote.executors import RemoteBashTool, RemoteComputerTool, RemoteEditorTool
from deskpilot.server.app import make_app, reply_cache
from deskpilot.server.service import DesktopService
from deskpilot.testing import FakeModelServer
from deskpilot.testing.wire import message_response, text_response, tool_use_block

pytestmark = pytest.mark.desktop


@contextlib.asynccontextmanager
async def serving(desktop, token=None):
    service = DesktopService(desktop)
    app = make_app(service, token=token, loopback=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        await runner.cleanup()
        await service.aclose()
        sock.close()


def test_url_forms():
    assert RemoteDesktop("ws://h:1").url == "ws://h:1/v1/ws"
    assert RemoteDesktop("http://h:1/").url == "ws://h:1/v1/ws"
    assert RemoteDesktop("https://h/x").url == "wss://h/x"
    with pytest.raises(ConfigError, match="ws://host:8766"):
        RemoteDesktop("ftp://h")
    with pytest.raises(ConfigError, match="request_timeout_s"):
        RemoteDesktop("ws://h", request_timeout_s=0)


async def test_no_server_and_wrong_token_are_sentences(desktop):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteError, match="Cannot reach the computer server"):
        async with RemoteDesktop(f"ws://127.0.0.1:{port}", connect_timeout_s=0.5):
            pass
    async with serving(desktop, token="right-token") as (url, _):
        with pytest.raises(RemoteError, match="wrong token") as info:
            async with RemoteDesktop(url, token="wrong"):
                pass
        assert info.value.code == "unauthorized"
        async with RemoteDesktop(url, token="right-token") as remote:
            assert (await remote.health())["ok"]


async def test_computer_and_host_methods(desktop):
    async with serving(desktop) as (url, _), RemoteDesktop(url) as remote:
        assert isinstance(remote, Computer) and isinstance(remote, DesktopHost)
        assert remote.size == (1280, 800) and remote.display == desktop.display
        assert remote.env["HOME"] == str(desktop.home)
        img = await remote.screenshot()
        assert img.size == (1280, 800) and img.mode == "RGB"
        assert img.tobytes() == (await desktop.screenshot()).convert("RGB").tobytes()
        await remote.move(400, 300)
        assert await remote.cursor_position() == (400, 300) == await desktop.cursor_position()
        await remote.drag((10, 10), (50, 60))
        assert await desktop.cursor_position() == (50, 60)
        await remote.click(5, 5, count=2, modifiers=("shift",))
        await remote.scroll("up", 1)
        await remote.key("Escape")
        await remote.type_text("")
        assert await remote.wait_settled(timeout_s=0.5) >= 0
        with pytest.raises(ToolInputError, match="nosuchkey"):
            await remote.key("nosuchkey")

        out = await remote.run_command(["sh", "-c", "echo $HOME; echo err >&2; exit 3"])
        assert out == CommandOutput(3, f"{desktop.home}\n", "err\n", False)
        slow = await remote.run_command("sleep 5", timeout_s=0.3)
        assert slow.timed_out and slow.returncode is None
        path = await remote.put_file("~/sub/a.txt", b"hello")
        assert path == remote.resolve_path("sub/a.txt") == f"{desktop.home}/sub/a.txt"
        assert await remote.get_file(path) == b"hello"
        with pytest.raises(DesktopError, match="more than"):
            await remote.get_file(path, max_bytes=2)
        with pytest.raises(DesktopError, match="No file"):
            await remote.get_file("~/missing")
        old_home = remote.hello.home
        await remote.reset()
        assert remote.hello.home != old_home and remote.env["HOME"] == remote.hello.home
        health = await remote.health()
        assert health["ok"] and (health["width"], health["height"]) == (1280, 800)
    assert (await remote.health())["ok"] is False  # closed: a sentence, never an exception


def _comparable(result):
    return (
        result.tool_call_id,
        result.is_error,
        result.toolset_name,
        result.text,
        [(i.media_type, i.size) for i in result.images],
    )


@pytest.mark.parametrize("version", versions("computer"))
async def test_remote_computer_results_equal_local_ones(desktop, version):
    toolset = version == "computer_toolset_20260801"

    def call(cid, action, **kw):
        if toolset:
            return ToolCall(cid, action, kw, toolset_name="computer")
        return ToolCall(cid, "computer", {"action": action, **kw})

    calls = [
        call("a", "screenshot"),
        call("b", "mouse_move", coordinate=[100, 120]),
        call("c", "cursor_position"),
        call("d", "left_click", coordinate=[5000, 5]),  # out of bounds: is_error
        call("e", "no_such_action"),
    ]
    local = ComputerTool(desktop, version)
    async with serving(desktop) as (url, _), RemoteDesktop(url) as remote:
        [remote_tool] = remote.tool_executors(computer=version, editor=None, bash=None)
        assert isinstance(remote_tool, RemoteComputerTool)
        assert remote_tool.definition == local.definition
        for c in calls:
            mine, theirs = await local.execute(c), await remote_tool.execute(c)
            assert _comparable(theirs) == _comparable(mine), c
            if c.id in ("a", "b"):  # a still screen: the same pixels, the same PNG
                assert theirs.images[0].data == mine.images[0].data
        assert set(remote_tool.last_timings) >= {"action_s", "settle_s", "screenshot_s"}
        quiet_call = call("q", "mouse_move", coordinate=[3, 4])
        quiet = await remote_tool.execute_quiet(quiet_call)
        assert not quiet.images and quiet.text == (await local.execute_quiet(quiet_call)).text
        if toolset:
            batch = await remote_tool.execute_batch(
                [call("x", "mouse_move", coordinate=[10, 10]), call("y", "bad")]
            )
            assert [r.is_error for r in batch] == [False, True] and batch[0].images


async def test_remote_bash_and_editor_run_on_the_server_with_local_results(desktop, tmp_path):
    async with serving(desktop) as (url, app), RemoteDesktop(url) as remote:
        editor_v, bash_v = versions("editor")[-1], versions("bash")[-1]
        _, editor, bash = remote.tool_executors(
            computer=versions("computer")[0], editor=editor_v, bash=bash_v
        )
        assert isinstance(editor, RemoteEditorTool) and isinstance(bash, RemoteBashTool)
        assert editor.definition == EditorTool(editor_v).definition
        assert bash.definition == BashTool(version=bash_v).definition
        # one persistent shell per executor, with the desktop's environment
        await bash.execute(ToolCall("1", "bash", {"command": "cd /tmp; export V=kept"}))
        r = await bash.execute(ToolCall("2", "bash", {"command": "echo $V $PWD $DISPLAY; exit 4"}))
        assert r.text.split("\n")[0] == f"kept /tmp {desktop.display}"
        moved = bash.with_version(versions("bash")[0])
        assert moved.session == bash.session
        f = tmp_path / "x.py"
        created = await editor.execute(
            ToolCall("3", editor.name, {"command": "create", "path": str(f), "file_text": "a\n"})
        )
        assert not created.is_error and f.read_text() == "a\n"
        async with EditorTool(editor_v) as local_editor:
            view = ToolCall("4", editor.name, {"command": "view", "path": str(f)})
            assert _comparable(await editor.execute(view)) == _comparable(
                await local_editor.execute(view)
            )
        await editor.aclose()
        await bash.aclose()
        closed = await bash.execute(ToolCall("5", "bash", {"command": "true"}))
        assert closed.is_error and "closed" in closed.text
        assert reply_cache(app).runs >= 5


async def test_dropped_connection_mid_action_reconnects_and_runs_once(desktop, tmp_path):
    out = tmp_path / "ran.txt"
    async with serving(desktop) as (url, app), RemoteDesktop(url) as remote:
        [bash] = remote.tool_executors(computer=None, editor=None, bash="bash_20250124")
        task = asyncio.create_task(
            bash.execute(ToolCall("s", "bash", {"command": f"sleep 0.6; echo x >> {out}; echo ok"}))
        )
        await asyncio.sleep(0.25)
        assert remote._ws is not None
        await remote._ws.close()  # the network drops the connection mid-action
        result = await asyncio.wait_for(task, 30)
        assert result.text == "ok" and not result.is_error
        assert out.read_text() == "x\n"  # ran once
        assert remote.reconnects == 1
        counts = reply_cache(app).counts
        assert counts["tool"] == 1 and counts["hello"] == 2  # the resend: from the cache
        assert (await remote.cursor_position()) is not None  # the new connection works


@pytest.mark.slow
async def test_a_server_restart_mid_action_fails_the_action_instead_of_rerunning_it(tmp_path):
    """The server dies mid-action and another one comes up on the same port: the client's
    resend reaches a new instance, so the action fails with a sentence (it never runs on
    the new desktop), and the next action runs there."""
    import signal

    from served import start_server

    out = tmp_path / "ran.txt"
    first, url = start_server("--apps", "")
    port = url.rsplit(":", 1)[1].split("/")[0]
    second = None
    try:
        async with RemoteDesktop(url) as remote:
            [bash] = remote.tool_executors(computer=None, editor=None, bash="bash_20250124")
            cmd = f"sleep 1; echo x >> {out}"
            task = asyncio.create_task(bash.execute(ToolCall("s", "bash", {"command": cmd})))
            await asyncio.sleep(0.3)
            first.send_signal(signal.SIGKILL)  # the server dies mid-action
            first.wait()
            second, _ = await asyncio.to_thread(start_server, "--apps", "", "--port", port)
            result = await asyncio.wait_for(task, 60)
            assert result.is_error and "restarted" in result.text, result
            again = await bash.execute(ToolCall("t", "bash", {"command": "echo fresh"}))
            assert again.text == "fresh"  # the next action runs on the new server
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
            if proc is not None and proc.stderr is not None:
                proc.stderr.close()
    assert not out.exists()  # the action was not run again on the new server


async def test_the_agent_uses_the_executors_a_remote_desktop_supplies(desktop):
    async with serving(desktop) as (url, _), RemoteDesktop(url) as remote:
        box = Toolbox.for_run(
            None, spec=resolve_model("claude-4-sonnet"), platform="anthropic", computer=remote
        )
        kinds = [type(e).__name__ for e in box.executors]
        assert kinds == ["RemoteComputerTool", "RemoteEditorTool", "RemoteBashTool"]
        assert box.computer is not None and box.computer.model_size == (1280, 800)
        await box.aclose()


@pytest.mark.slow
async def test_agent_end_to_end_through_deskpilot_serve(tmp_path):
    """The real client, the fake model server, `deskpilot serve` as a subprocess with its own
    desktop: the agent types into the remote xterm and checks with bash, which runs on the
    server's host (the server's DISPLAY, not ours)."""
    from served import served

    out = tmp_path / "typed.txt"
    probe = (
        f"for i in $(seq 100); do [ -s {out} ] && break; sleep 0.05; done; "
        f'cat {out}; echo "display=$DISPLAY"'
    )
    with served("--apps", "terminal") as url:
        async with FakeModelServer() as server, RemoteDesktop(url) as remote:
            server.enqueue(
                message_response([tool_use_block("computer", {"action": "screenshot"}, id="s1")]),
                message_response(
                    [
                        tool_use_block(
                            "computer", {"action": "left_click", "coordinate": [300, 200]}, id="s2"
                        )
                    ]
                ),
                message_response(
                    [
                        tool_use_block(
                            "computer",
                            {"action": "type", "text": f"echo remote-e2e > {out}\n"},
                            id="s3",
                        )
                    ]
                ),
                message_response([tool_use_block("bash", {"command": probe}, id="s4")]),
                text_response("done"),
            )
            async with LLMClient(
                "claude-4-sonnet",
                base_url=server.url,
                api_key="sk-ant-e2e",
                max_attempts=1,
                progress="none",
            ) as client:
                result = await Agent(client, remote, out_dir=tmp_path / "runs").run("type it")
            assert result.stop_reason == "end_turn", result.error
            bash_result = result.conversation.messages[-2].tool_results[0]
            assert bash_result.text.split() == ["remote-e2e", f"display={remote.display}"]
            assert out.read_text() == "remote-e2e\n"
            shots = [len(r.images) for m in result.conversation.messages for r in m.tool_results]
            assert shots[:3] == [1, 1, 1]
            assert server.requests[0].body["tools"][0]["display_width_px"] == 1280


async def test_mcp_serves_a_remote_desktop(desktop):
    """`deskpilot mcp --computer ws://...`: the MCP tools run on the computer server."""
    pytest.importorskip("mcp")
    from deskpilot.mcp.tools import desktop_tools

    async with serving(desktop) as (url, app):
        async with desktop_tools(1, 1, computer_url=url) as (tools, remote):
            assert isinstance(remote, RemoteDesktop) and remote.size == (1280, 800)
            assert tools.names() == [
                "screenshot",
                "computer",
                "bash",
                "str_replace_based_edit_tool",
            ]
            shown = await tools.call("bash", {"command": "echo $DISPLAY"})
            assert not shown.is_error and shown.content[0].text == desktop.display
            shot = await tools.call("screenshot", {})
            assert shot.content[0].mime_type == "image/png"
        assert reply_cache(app).counts["close_session"] == 2  # the shell and editor closed


@pytest.mark.slow
async def test_deskpilot_run_with_computer_url(tmp_path):
    """`deskpilot run --computer ws://...` (a CLI subprocess) drives a `deskpilot serve`
    subprocess: bash runs on the server's desktop, the run and report are written here."""
    import os
    import sys

    from served import served

    marker = tmp_path / "display.txt"
    script = [
        message_response(
            [tool_use_block("bash", {"command": f"echo $DISPLAY > {marker}"}, id="t1")]
        ),
        text_response("done"),
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "AWS_", "OPENAI_", "DESKPILOT_"))
    }
    with served("--apps", "") as url:
        async with FakeModelServer(script) as server, RemoteDesktop(url) as remote:
            env.update(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="sk-ant-test-remote-0")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "deskpilot", "run", "Say where you are",
                "--computer", url, "--out", str(tmp_path / "runs"),
                env=env, cwd=str(tmp_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output = (await asyncio.wait_for(proc.communicate(), 120))[0].decode()
            assert proc.returncode == 0, output
            assert marker.read_text().strip() == remote.display
    assert f"desktop at {url}" in output and "end_turn" in output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "report.html").is_file()


async def test_sigterm_stops_the_server_promptly_with_a_client_connected():
    import signal
    import time

    from served import start_server

    proc, url = start_server("--apps", "")
    try:
        async with RemoteDesktop(url, reconnect_timeout_s=1) as remote:
            assert (await remote.health())["ok"]
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 128 + signal.SIGTERM
            assert time.monotonic() - t0 < 10  # not aiohttp's 60 s wait for open sockets
            with pytest.raises(RemoteError, match="Cannot reach"):
                await remote.cursor_position()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


async def test_run_many_with_remote_desktops(desktop, tmp_path):
    from deskpilot.agent.many import run_many
    from deskpilot.agent.trajectory import read_run

    def handler(req):
        if len(req.body["messages"]) == 1:
            return message_response(
                [tool_use_block("bash", {"command": "echo $DISPLAY"}, id=f"b{req.index}")]
            )
        return text_response(f"finished {req.prompt_text}")

    async with serving(desktop) as (url, app), FakeModelServer() as server:
        server.handler = handler
        async with LLMClient(
            "claude-4-sonnet", base_url=server.url, api_key="sk-ant-x", progress="none"
        ) as client:
            results = await run_many(
                ["one", "two"],
                client=client,
                desktops=1,
                desktop_factory=lambda: RemoteDesktop(url),
                show_progress=False,
                out_dir=tmp_path,
            )
        assert [r.final_text for r in results] == ["finished one", "finished two"]
        for r in results:
            bash = r.conversation.messages[2].tool_results[0]
            assert bash.text == desktop.display  # ran on the server's desktop
            assert read_run(r.trajectory_dir).start.native_size == (1280, 800)
        assert reply_cache(app).counts["close_session"] >= 2  # each run closed its tools


async def test_the_agent_restarts_a_dead_remote_desktop(tmp_path):
    """The server's X server dies under a run: the tool result says so (desktop_dead), the
    agent resets the remote desktop once, notes it for the model and goes on."""
    import os
    import signal

    from deskpilot.agent.desktop_recovery import RESTARTED_NOTE
    from deskpilot.desktop.local import LocalDesktop

    async with LocalDesktop(640, 480) as desktop, serving(desktop) as (url, _):
        async with FakeModelServer() as server, RemoteDesktop(url) as remote:
            server.enqueue(
                message_response([tool_use_block("computer", {"action": "screenshot"}, id="x1")]),
                text_response("done"),
            )

            def approve(call):
                os.kill(desktop.pids[0], signal.SIGKILL)  # Xvfb dies before the action
                return True

            async with LLMClient(
                "claude-4-sonnet", base_url=server.url, api_key="sk-ant-x", progress="none"
            ) as client:
                agent = Agent(client, remote, approve=approve, out_dir=tmp_path)
                result = await agent.run("look")
            assert result.stop_reason == "end_turn", result.error
            shot = result.conversation.messages[2].tool_results[0]
            assert shot.is_error and RESTARTED_NOTE in shot.text
            assert not remote.dead and (await remote.health())["ok"]
            assert (await remote.screenshot()).size == (640, 480)
