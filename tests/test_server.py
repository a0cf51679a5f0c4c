"""The computer server on loopback with a REAL Xvfb desktop: every method, bad messages,
tokens, and a client that disconnects mid-action (the action runs once; asking again with
the same id gets its reply)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from PIL import Image as PILImage

from deskpilot.errors import ConfigError
from deskpilot.remote import protocol as p
from deskpilot.server.app import is_loopback, make_app, reply_cache
from deskpilot.server.command import check_bind
from deskpilot.server.service import DesktopService

pytestmark = pytest.mark.desktop


@contextlib.asynccontextmanager
async def serving(desktop, *, token=None, max_message_bytes=p.MAX_MESSAGE_BYTES):
    """The server's app on a free loopback port; yields (base_url, app)."""
    service = DesktopService(desktop, max_message_bytes=max_message_bytes)
    app = make_app(service, token=token, loopback=True, max_message_bytes=max_message_bytes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        await runner.cleanup()
        await service.aclose()
        sock.close()


class Wire:
    """A raw WebSocket client: send(method, params, id) and read replies by id."""

    def __init__(self, ws):
        self.ws = ws
        self.n = 0

    async def send_raw(self, text):
        await self.ws.send_str(text)

    async def reply(self):
        msg = await asyncio.wait_for(self.ws.receive(), 30)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)

    async def call(self, method, params=None, rid=None):
        self.n += 1
        rid = rid or f"r{self.n}"
        await self.ws.send_str(json.dumps({"id": rid, "method": method, "params": params or {}}))
        got = await self.reply()
        assert got["id"] == rid
        return got


@pytest.fixture
async def terminal_desktop():
    from deskpilot.desktop.local import LocalDesktop

    async with LocalDesktop(1280, 800, apps=("terminal",)) as d:
        yield d


@contextlib.asynccontextmanager
async def wire(url, headers=None):
    async with aiohttp.ClientSession() as s, s.ws_connect(url + "/v1/ws", headers=headers) as ws:
        yield Wire(ws)


def ok(reply):
    assert "error" not in reply, reply
    return reply["result"]


async def test_every_method(terminal_desktop, tmp_path):
    tested = set()
    async with serving(terminal_desktop) as (url, _), wire(url) as w:

        async def call(method, params=None):
            tested.add(method)
            return ok(await w.call(method, params))

        hello = await call("hello", {"protocol_version": p.PROTOCOL_VERSION})
        assert (hello["width"], hello["height"]) == (1280, 800)
        assert hello["apps"] == ["terminal"] and hello["env"]["DISPLAY"] == hello["display"]
        assert sorted(hello["methods"]) == sorted(p.METHODS)
        assert (await call("health"))["ok"] is True

        shot = await call("screenshot")
        with PILImage.open(io.BytesIO(base64.b64decode(shot["data"]))) as im:
            assert im.format == "PNG" and im.size == (1280, 800)

        await call("move", {"x": 700, "y": 500})
        assert await call("cursor_position") == {"x": 700, "y": 500}
        await call("click", {"x": 300, "y": 200})  # into the xterm
        await call("mouse_down", {"button": "left"})
        await call("mouse_up", {"button": "left"})
        await call("drag", {"start": [900, 600], "end": [950, 650]})
        assert await call("cursor_position") == {"x": 950, "y": 650}
        await call("scroll", {"direction": "down", "amount": 2, "x": 300, "y": 200})
        await call("hold_key", {"keys": "shift", "duration_s": 0.05})
        await call("click", {"x": 300, "y": 200})
        out = tmp_path / "typed.txt"
        await call("type_text", {"text": f"echo typed-remotely > {out}"})
        await call("key", {"keys": "Return"})
        assert (await call("wait_settled", {"timeout_s": 1.0}))["waited_s"] >= 0

        # the tool calls, with the real executors
        r = await call(
            "tool",
            {
                "kind": "computer",
                "version": "computer_20251124",
                "call": {"id": "c1", "name": "computer", "input": {"action": "screenshot"}},
            },
        )
        assert r["tool_call_id"] == "c1" and not r["is_error"]
        assert [part["type"] for part in r["content"]] == ["image"]
        r = await call(
            "tool",
            {
                "kind": "bash",
                "version": "bash_20250124",
                "session": "s1",
                "call": {
                    "id": "b1",
                    "name": "bash",
                    "input": {
                        "command": f"for i in $(seq 100); do [ -s {out} ] && break; "
                        f"sleep 0.05; done; cat {out}; echo $DISPLAY"
                    },
                },
            },
        )
        assert r["content"].split() == ["typed-remotely", hello["display"]], r
        path = tmp_path / "e.txt"
        r = await call(
            "tool",
            {
                "kind": "editor",
                "version": "text_editor_20250728",
                "session": "s1",
                "call": {
                    "id": "e1",
                    "name": "str_replace_based_edit_tool",
                    "input": {"command": "create", "path": str(path), "file_text": "x = 1\n"},
                },
            },
        )
        assert not r["is_error"] and path.read_text() == "x = 1\n"
        assert (await call("close_session", {"session": "s1"})) == {"closed": True}

        # the desktop's host
        run = await call("run_command", {"command": "echo $HOME; pwd"})
        assert run["returncode"] == 0 and run["stdout"].split() == [hello["home"]] * 2
        assert (await call("run_command", {"command": ["no-such-program-x"]}))["returncode"] == 127
        put = await call(
            "put_file", {"path": "~/d/f.bin", "data": base64.b64encode(b"\0\1").decode()}
        )
        assert put["path"] == f"{hello['home']}/d/f.bin"
        got = await call("get_file", {"path": "d/f.bin"})
        assert base64.b64decode(got["data"]) == b"\0\1" and got["path"] == put["path"]
        fresh = await call("reset")
        assert fresh["home"] != hello["home"] and fresh["apps"] == ["terminal"]
        assert not Path(put["path"]).exists()
    assert tested == set(p.METHODS)


async def test_bad_messages_get_error_replies_and_the_connection_stays(desktop):
    async with serving(desktop, max_message_bytes=64 * 1024) as (url, _), wire(url) as w:
        cases = [
            ('{"id": "j1", "method": "health", "params": {', "j1", "bad_json"),
            ("not json at all", None, "bad_json"),
            ('{"id": "j2", "method": "nope", "params": {}}', "j2", "unknown_method"),
            ('{"id": "j3", "method": "move", "params": {"x": "left"}}', "j3", "bad_params"),
            (
                '{"id": "j4", "method": "move", "params": {"x": 1, "y": 2, "z": 3}}',
                "j4",
                "bad_params",
            ),
            ('{"id": "j5", "method": "key", "params": {"keys": "nosuchkey"}}', "j5", "bad_params"),
            ('{"id": "j6", "params": {}}', "j6", "bad_request"),
            ("[1, 2]", None, "bad_request"),
            (
                '{"id": "j7", "method": "hello", "params": {"protocol_version": 99}}',
                "j7",
                "version_mismatch",
            ),
            (
                '{"id": "j8", "method": "get_file", "params": {"path": "/no/such/file"}}',
                "j8",
                "desktop_error",
            ),
            (
                json.dumps({"id": "j9", "method": "type_text", "params": {"text": "x" * 70000}}),
                "j9",
                "too_large",
            ),
        ]
        for text, rid, code in cases:
            await w.send_raw(text)
            got = await w.reply()
            assert got["id"] == rid and got["error"]["code"] == code, (text[:80], got)
            assert got["error"]["message"].endswith((".", ")")), got  # a sentence
        await w.ws.send_bytes(b'{"id": "b1"}')
        got = await w.reply()
        assert got["id"] == "b1" and got["error"]["code"] == "bad_request"
        # an id used for another method is a conflict, not a silent wrong answer
        assert ok(await w.call("cursor_position", rid="same"))
        got = await w.call("health", rid="same")
        assert got["error"]["code"] == "id_conflict"
        assert ok(await w.call("health"))["ok"]  # still connected, still serving


async def test_http_post_routes(desktop):
    async with (
        serving(desktop, max_message_bytes=64 * 1024) as (url, app),
        aiohttp.ClientSession() as s,
    ):
        async with s.post(url + "/v1/move", json={"x": 10, "y": 20}) as r:
            assert r.status == 200 and (await r.json())["result"] == {}
        async with s.post(url + "/v1/cursor_position") as r:
            assert (await r.json())["result"] == {"x": 10, "y": 20}
        async with s.post(url + "/v1/nope", json={}) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_method"
        async with s.post(
            url + "/v1/move", data=b"{oops", headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "bad_json"
        for size in (70_000, 3_000_000):  # over our limit; over aiohttp's body limit too
            body = io.BytesIO(json.dumps({"text": "x" * size}).encode())
            async with s.post(url + "/v1/type_text", data=body) as r:
                assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"
        runs = reply_cache(app).runs
        for _ in range(2):  # the same X-Request-Id: one run, one reply
            async with s.post(
                url + "/v1/run_command",
                json={"command": "date +%s%N"},
                headers={"X-Request-Id": "once"},
            ) as r:
                assert r.status == 200
                stamps = (await r.json())["result"]["stdout"]
        assert reply_cache(app).runs == runs + 1 and stamps
        async with s.get(url + "/healthz") as r:
            assert r.status == 200 and await r.json() == {"ok": True}


async def test_token_is_required_and_checked(desktop):
    token = "t0k3n-" + "x" * 30
    async with serving(desktop, token=token) as (url, _), aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await s.ws_connect(url + "/v1/ws", headers=headers)
            assert info.value.status == 401
            async with s.post(url + "/v1/health", headers=headers) as r:
                assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
        good = {"Authorization": f"Bearer {token}"}
        async with wire(url, good) as w:
            assert ok(await w.call("health"))["ok"]
        async with s.post(url + "/v1/health", headers={**good, "Origin": "http://evil"}) as r:
            assert r.status == 401  # a web page cannot drive the desktop even with the token
        async with s.post(url + "/v1/health", headers={**good, "Host": "evil.example"}) as r:
            assert r.status == 401  # DNS rebinding onto a loopback server
        async with s.get(url + "/healthz") as r:
            assert r.status == 200  # the container health check needs no token


def test_non_loopback_bind_without_token_refuses_to_start():
    assert check_bind("127.0.0.1", None) is None and check_bind("::1", "") is None
    assert check_bind("0.0.0.0", "secret") == "secret"
    with pytest.raises(ConfigError, match="needs a token"):
        check_bind("0.0.0.0", None)
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and not is_loopback("10.0.0.1")
    env = {k: v for k, v in os.environ.items() if k != p.TOKEN_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "deskpilot", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode != 0
    assert "needs a token" in done.stderr and p.TOKEN_ENV in done.stderr
    assert "listening" not in done.stderr  # no desktop started, nothing bound


async def test_disconnect_mid_action_runs_once_and_the_reconnect_gets_the_result(desktop, tmp_path):
    out = tmp_path / "count.txt"
    request = {
        "id": "slow-1",
        "method": "tool",
        "params": {
            "kind": "bash",
            "version": "bash_20250124",
            "call": {
                "id": "t1",
                "name": "bash",
                "input": {"command": f"sleep 0.6; echo ran >> {out}; echo finished"},
            },
        },
    }
    async with serving(desktop) as (url, app):
        async with wire(url) as w:
            await w.send_raw(json.dumps(request))
            await asyncio.sleep(0.2)  # the command is running; the client goes away
        assert not out.exists()
        async with wire(url) as w:
            await w.send_raw(json.dumps(request))  # the same id again
            got = await w.reply()
        assert got["id"] == "slow-1" and got["result"]["content"] == "finished"
        async with wire(url) as w:  # and once more after it finished: from the cache
            await w.send_raw(json.dumps(request))
            assert (await w.reply())["result"]["content"] == "finished"
        assert out.read_text() == "ran\n"  # it ran once
        assert reply_cache(app).runs == 1


async def test_serve_an_existing_display(desktop, monkeypatch):
    """`deskpilot serve --display :N` (run_server in-process): the Computer methods and tool
    calls work on that display; reset, files and commands are `not_supported`."""
    from deskpilot import RemoteDesktop
    from deskpilot.errors import NotSupported
    from deskpilot.prompt import ToolCall
    from deskpilot.server.command import run_server

    monkeypatch.setenv("XAUTHORITY", desktop.xauthority)
    stop, lines = asyncio.Event(), []
    server = asyncio.create_task(
        run_server(port=0, display=desktop.display, echo=lines.append, stop=stop)
    )
    while not lines:
        assert not server.done(), server
        await asyncio.sleep(0.05)
    url = lines[0].split("listening on ")[1].split()[0]
    async with RemoteDesktop(url) as remote:
        assert remote.display == desktop.display and remote.size == (1280, 800)
        await remote.move(33, 44)
        assert await desktop.cursor_position() == (33, 44)
        [computer] = remote.tool_executors(computer="computer_20250124", editor=None, bash=None)
        shot = await computer.execute(ToolCall("s", "computer", {"action": "screenshot"}))
        assert not shot.is_error and shot.images[0].size == (1280, 800)
        for attempt in (
            remote.reset(),
            remote.run_command("true"),
            remote.get_file("/etc/hostname"),
        ):
            with pytest.raises(NotSupported, match="serve a LocalDesktop"):
                await attempt
        assert (await remote.health())["ok"]
    stop.set()
    assert await asyncio.wait_for(server, 30) == 0


async def test_bash_sessions_are_bounded_and_the_oldest_idle_one_closes(monkeypatch):
    from deskpilot.desktop.fake import FakeComputer
    from deskpilot.server import service as service_module

    monkeypatch.setattr(service_module, "MAX_SESSIONS", 2)
    service = DesktopService(FakeComputer())
    try:

        async def pid(session):
            r = await service.call(
                "tool",
                {
                    "kind": "bash",
                    "version": "bash_20250124",
                    "session": session,
                    "call": {"id": "x", "name": "bash", "input": {"command": "echo $$"}},
                },
            )
            return r["content"]

        first = await pid("a")
        await pid("b")
        assert await pid("a") == first  # kept: the same shell
        await pid("c")  # a third session: "b", the oldest idle one, is closed
        assert sorted(service._sessions) == ["a", "c"]
        assert await pid("a") == first
    finally:
        await service.aclose()


async def test_binary_frames_carry_a_tool_results_images_as_bytes(desktop):
    from deskpilot.remote import frames

    request = {
        "id": "bin-1",
        "method": "tool",
        "params": {
            "kind": "computer",
            "version": "computer_20250124",
            "call": {
                "id": "c",
                "name": "computer",
                "input": {"action": "mouse_move", "coordinate": [9, 9]},
            },
        },
    }
    async with serving(desktop) as (url, app):
        async with wire(url) as w:
            ok(await w.call("hello", {"protocol_version": p.PROTOCOL_VERSION, "binary": True}))
            await w.send_raw(json.dumps(request))
            msg = await asyncio.wait_for(w.ws.receive(), 30)
            assert msg.type == aiohttp.WSMsgType.BINARY and msg.data[:4] == frames.MAGIC
            reply = frames.decode_binary(msg.data)
            text, image = reply.result["content"]
            assert text == {"type": "text", "text": "Moved the pointer to (9, 9)."}
            with PILImage.open(io.BytesIO(image["raw"])) as im:
                assert im.format == "PNG" and im.size == (1280, 800)
            assert ok(await w.call("cursor_position")) == {"x": 9, "y": 9}  # no image: text
        async with wire(url) as w:  # a text client asking again for that id: base64
            await w.send_raw(json.dumps(request))
            again = await w.reply()
            assert base64.b64decode(again["result"]["content"][1]["data"]) == image["raw"]
        assert reply_cache(app).counts["tool"] == 1
    for bad in (b"XXXX\0\0\0\2{}", frames.MAGIC + b"\0\0\0\2{}"[:3]):
        with pytest.raises(ValueError):
            frames.decode_binary(bad)
    head = (
        b'{"id":"x","result":{"content":[{"type":"image","media_type":"image/png","blob":[0,99]}]}}'
    )
    with pytest.raises(ValueError, match="outside"):
        frames.decode_binary(frames.MAGIC + len(head).to_bytes(4, "big") + head + b"short")
