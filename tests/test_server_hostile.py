"""The computer server against hostile clients, on a REAL Xvfb desktop over loopback HTTP:
a web page's "simple" cross-site POST (text/plain, form), JSON nested past the parser's
depth, and a second client reusing another client's request id with other params."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from deskpilot.remote import protocol as p
from deskpilot.server.app import fingerprint, reply_cache
from test_server import ok, serving, wire

pytestmark = pytest.mark.desktop

DEEP = "[" * 100_000  # json.loads raises RecursionError on this, not ValueError


async def test_a_post_not_typed_json_is_refused_and_runs_nothing(desktop):
    async with serving(desktop) as (url, app), aiohttp.ClientSession() as s:
        runs = reply_cache(app).runs
        for ctype, body in (
            ("text/plain", '{"command": "touch ~/pwned"}'),
            ("application/x-www-form-urlencoded", "a=b"),
            ("multipart/form-data; boundary=x", "--x--"),
        ):
            async with s.post(
                url + "/v1/run_command", data=body.encode(), headers={"Content-Type": ctype}
            ) as r:
                got = await r.json()
                assert r.status == 400 and got["error"]["code"] == "bad_request", got
                assert "application/json" in got["error"]["message"]
        assert reply_cache(app).runs == runs  # nothing ran
        async with s.post(url + "/v1/cursor_position") as r:  # an empty body is {}
            assert r.status == 200, await r.text()
        async with s.post(
            url + "/v1/health",
            data=b"{}",
            headers={"Content-Type": "application/json; charset=utf-8"},
        ) as r:
            assert r.status == 200 and (await r.json())["result"]["ok"]


async def test_json_nested_too_deeply_gets_bad_json_and_the_connection_stays(desktop):
    async with serving(desktop) as (url, _), aiohttp.ClientSession() as s:
        async with s.post(
            url + "/v1/health", data=DEEP.encode(), headers={"Content-Type": "application/json"}
        ) as r:
            got = await r.json()
            assert r.status == 400 and got["error"]["code"] == "bad_json", got
            assert "nested too deeply" in got["error"]["message"]
        async with wire(url) as w:
            await w.send_raw('{"id": "deep", "method": "health", "params": ' + DEEP + "}")
            got = await w.reply()
            assert got["id"] == "deep" and got["error"]["code"] == "bad_json", got
            assert ok(await w.call("health"))["ok"]  # still connected, still serving
    with pytest.raises(ValueError, match="nested too deeply"):
        p.loads(DEEP)


async def test_another_clients_id_with_other_params_is_a_conflict_not_its_reply(desktop):
    async with serving(desktop) as (url, app), wire(url) as first, wire(url) as second:
        mine = ok(await first.call("run_command", {"command": "echo first-secret"}, rid="7"))
        assert mine["stdout"] == "first-secret\n"
        got = await second.call("run_command", {"command": "echo second"}, rid="7")
        assert got["error"]["code"] == "id_conflict", got
        assert "first-secret" not in json.dumps(got)
        # the same request sent again (a reconnecting client) still gets its one reply
        runs = reply_cache(app).runs
        again = ok(await second.call("run_command", {"command": "echo first-secret"}, rid="7"))
        assert again == mine and reply_cache(app).runs == runs


def test_fingerprint_tells_long_params_apart_by_length_and_ends():
    data = "A" * 5000
    assert fingerprint("put_file", {"path": "a", "data": data}) == fingerprint(
        "put_file", {"data": data, "path": "a"}
    )
    assert fingerprint("put_file", {"path": "a", "data": data}) != fingerprint(
        "put_file", {"path": "a", "data": data + "B"}
    )
    assert fingerprint("put_file", {"path": "a"}) != fingerprint("get_file", {"path": "a"})


async def test_a_slow_client_sending_headers_a_byte_at_a_time_is_cut_off(desktop, monkeypatch):
    """Slow loris: run_server closes a connection that has not sent a whole request within
    IDLE_TIMEOUT_S, however it trickles bytes (aiohttp's default waits an hour)."""
    from deskpilot.server import command

    monkeypatch.setattr(command, "IDLE_TIMEOUT_S", 1.0)
    monkeypatch.setenv("XAUTHORITY", desktop.xauthority)
    stop, lines = asyncio.Event(), []
    server = asyncio.create_task(
        command.run_server(port=0, display=desktop.display, echo=lines.append, stop=stop)
    )
    try:
        while not lines:
            assert not server.done(), server
            await asyncio.sleep(0.05)
        host, port = lines[0].split("ws://")[1].split("/")[0].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        start = time.monotonic()
        closed = None
        while time.monotonic() - start < 12:
            writer.write(b"X-Slow: 1\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(100), 0.25) == b"":
                    closed = time.monotonic() - start
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed = time.monotonic() - start
                break
        writer.close()
        assert closed is not None and closed < 8, closed
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://{host}:{port}/healthz") as r,
        ):  # a whole request is still served
            assert r.status == 200
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 30) == 0


async def test_bytes_that_are_not_utf8_in_headers_or_ids_get_a_reply_not_a_500(desktop):
    """A token, an X-Request-Id or a JSON id that is not text: a clear error, never a 500
    (the server crashed encoding them) nor a request left without a reply."""
    token = "t0k3n-" + "x" * 30
    async with serving(desktop, token=token) as (url, _):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        good = f"Authorization: Bearer {token}\r\n".encode()
        for headers, status in (
            (b"Authorization: Bearer \xff\xfe\r\n", 401),
            (good + b"X-Request-Id: \xff\xff\r\n", 400),
            (good + b"X-Request-Id: two words\r\n", 400),
        ):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"POST /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + headers
                + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 %d" % status), answer[:300]
            assert json.loads(body)["error"]["message"].endswith("."), body
        async with wire(url, {"Authorization": f"Bearer {token}"}) as w:
            await w.send_raw('{"id": "\\udcff", "method": "nope", "params": {}}')
            got = await w.reply()
            assert got["id"] is None and got["error"]["code"] == "bad_request", got
            assert ok(await w.call("health"))["ok"]


ATTACK_PAGE = """<!DOCTYPE html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" enctype="text/plain" target="sink" action="SERVER/v1/run_command">
<input name='{"command": "touch ~/pwned-form", "x": "' value='"}'></form>
<script>
window.log = [];
fetch("SERVER/v1/run_command", {method: "POST", mode: "no-cors",
  headers: {"Content-Type": "text/plain"}, body: '{"command": "touch ~/pwned-fetch"}'})
  .then(() => log.push("fetch sent"), e => log.push("fetch failed " + e));
fetch("SERVER/v1/reset", {method: "POST", mode: "no-cors"})
  .then(() => log.push("reset sent"), e => log.push("reset failed " + e));
const ws = new WebSocket("WS/v1/ws");
ws.onopen = () => { log.push("ws open");
  ws.send(JSON.stringify({id: "x1", method: "run_command",
                          params: {command: "touch ~/pwned-ws"}})); };
ws.onclose = () => log.push("ws closed");
document.getElementById("f").submit();
</script></body></html>"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
async def test_a_web_page_in_chromium_cannot_drive_a_loopback_server_without_a_token(
    desktop, tmp_path
):
    """A page from another origin (another loopback port) sends what browsers send without
    a CORS preflight: a no-cors fetch POST typed text/plain, an empty POST to reset, a
    text/plain form whose body is JSON, and a WebSocket. Nothing runs on the desktop."""
    from playwright.async_api import async_playwright

    async with serving(desktop) as (url, app):
        page_html = ATTACK_PAGE.replace("SERVER", url).replace("WS", "ws" + url[4:])

        async def attack(request: web.Request) -> web.Response:
            return web.Response(text=page_html, content_type="text/html")

        evil = web.Application()
        evil.router.add_get("/", attack)
        runner = web.AppRunner(evil, access_log=None)
        await runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=shutil.which("chromium"), args=["--no-sandbox"]
                )
                try:
                    page = await browser.new_page()
                    await page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/")
                    for _ in range(100):  # the page's requests reached the server and ended
                        log = await page.evaluate("window.log || []")
                        if {"fetch sent", "reset sent", "ws closed"} <= set(log):
                            break
                        await asyncio.sleep(0.1)
                    assert {"fetch sent", "reset sent", "ws closed"} <= set(log), log
                    assert "ws open" not in log
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()
            sock.close()
        assert reply_cache(app).runs == 0  # nothing ran: not the commands, not reset
        home = desktop.resolve_path("~")
        assert not list(Path(home).glob("pwned-*"))


async def test_files_of_the_servers_own_process_are_refused(desktop, monkeypatch):
    """get_file/put_file run in the server's process, outside the desktop's PID namespace:
    /proc/self/environ there is the server's environment (an API key exported in its shell),
    and a loopback server without a token answers the agent's own bash. Kernel files,
    FIFOs and symlinks to them are refused; regular files (through symlinks too) still work."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-probe-SECRET")
    home = Path(desktop.resolve_path("~"))
    (home / "env-link").symlink_to("/proc/self/environ")
    (home / "real.txt").write_text("kept")
    (home / "real-link").symlink_to(home / "real.txt")
    os.mkfifo(home / "fifo")
    async with serving(desktop) as (url, _), wire(url) as w:
        for path in ("/proc/self/environ", f"/proc/{os.getpid()}/environ", "~/env-link"):
            got = await w.call("get_file", {"path": path})
            assert got["error"]["code"] == "desktop_error", (path, str(got)[:300])
            assert "kernel interface" in got["error"]["message"]
            assert "SECRET" not in json.dumps(got)
        comm = Path("/proc/self/comm").read_text()
        data = base64.b64encode(b"pwned").decode()
        for path in ("/proc/self/comm", "~/fifo"):
            got = await asyncio.wait_for(w.call("put_file", {"path": path, "data": data}), 10)
            assert got["error"]["code"] == "desktop_error", (path, got)
        assert Path("/proc/self/comm").read_text() == comm
        got = await w.call("get_file", {"path": "~/fifo"})
        assert "not a regular file" in got["error"]["message"], got
        # ordinary files: written through a symlink, read back, a new one in new folders
        assert ok(await w.call("put_file", {"path": "~/real-link", "data": data}))
        assert (home / "real.txt").read_bytes() == b"pwned"
        new = ok(await w.call("put_file", {"path": "~/a/b/new.txt", "data": data}))
        assert new["path"] == str(home / "a/b/new.txt")
        back = ok(await w.call("get_file", {"path": "~/a/b/new.txt"}))
        assert base64.b64decode(back["data"]) == b"pwned" and back["path"] == new["path"]
        got = await w.call("get_file", {"path": "~/a/b/new.txt", "max_bytes": 2})
        assert "more than max_bytes" in got["error"]["message"] and "/proc" not in str(got)
        got = await w.call("get_file", {"path": "~/missing"})
        assert got["error"]["message"] == f"No file at {home / 'missing'}."


async def test_a_command_cannot_start_in_the_servers_own_proc(desktop, monkeypatch):
    """run_command's cwd is entered before the command's PID namespace exists: cwd=/proc
    (or a symlink to it) listed every process of the server's user and their environments
    (the API key of the shell that started the server). Refused; ordinary folders work."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-probe-SECRET")
    home = Path(desktop.resolve_path("~"))
    (home / "proc-link").symlink_to("/proc")
    (home / "work").mkdir()
    (home / "work-link").symlink_to(home / "work")
    read_all = "cat [0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c SECRET; true"
    async with serving(desktop) as (url, _), wire(url) as w:
        for cwd in ("/proc", "~/proc-link", f"/proc/{os.getpid()}"):
            got = await w.call("run_command", {"command": read_all, "cwd": cwd})
            assert got.get("error", {}).get("code") == "desktop_error", (cwd, got)
            assert "kernel interface" in got["error"]["message"]
        assert (
            ok(await w.call("run_command", {"command": "pwd", "cwd": "~/work-link"}))["stdout"]
            == f"{home / 'work'}\n"
        )
        missing = ok(await w.call("run_command", {"command": "pwd", "cwd": "~/nope"}))
        assert missing["returncode"] == 127 and str(home / "nope") in missing["stderr"]
        # inside the command's namespace /proc is its own: no process of the server's user
        inside = ok(await w.call("run_command", {"command": "cd /proc && " + read_all}))
        assert inside["stdout"] == "0\n", inside
