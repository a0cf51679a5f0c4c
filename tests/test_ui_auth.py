"""deskpilot ui's access rules over real HTTP on loopback: token on every route and WebSocket,
the first-load cookie, Origin checks, no HTML from the server for API errors. No desktop."""

from __future__ import annotations

import aiohttp
import pytest

from deskpilot.ui.app import create_app, start_site
from deskpilot.ui.auth import COOKIE, TOKEN_KEY, check_origin
from deskpilot.ui.clients import fake_client_factory
from deskpilot.ui.runs import RunManager, UIConfig

PATHS = [
    ("GET", "/"),
    ("GET", "/static/app.js"),
    ("GET", "/api/config"),
    ("GET", "/api/runs"),
    ("POST", "/api/runs"),
    ("GET", "/api/runs/abc"),
    ("GET", "/api/runs/abc/events"),
    ("POST", "/api/runs/abc/approvals/toolu_1"),
    ("POST", "/api/runs/abc/takeover"),
    ("POST", "/api/runs/abc/handback"),
    ("POST", "/api/runs/abc/stop"),
    ("GET", "/api/runs/abc/screenshot"),
    ("GET", "/runs/abc/report.html"),
    ("GET", "/vnc"),
    ("GET", "/websockify"),
    ("GET", "/novnc/app.js"),  # noVNC's modules (/novnc/core/rfb.js, ...)
    ("GET", "/no/such/route"),
]


@pytest.fixture
async def ui(tmp_path):
    manager = RunManager(UIConfig(out=tmp_path, mode="fake"), fake_client_factory())
    app = create_app(manager)
    runner, port = await start_site(app, "127.0.0.1", 0)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield f"http://127.0.0.1:{port}", app[TOKEN_KEY], session, manager
    await runner.cleanup()


def test_every_route_of_the_app_is_in_the_list():
    app = create_app(RunManager(UIConfig(mode="fake"), fake_client_factory()))
    listed = {p for _, p in PATHS}
    for resource in app.router.resources():
        canonical = resource.canonical
        probe = canonical.replace("{run_id}", "abc").replace("{call_id}", "toolu_1")
        probe = probe.replace("{path:.+}", "report.html").replace("{path}", "app.js")
        if canonical.startswith("/static/"):
            probe = "/static/app.js"
        if canonical.startswith("/runs/"):
            probe = "/runs/abc/report.html"
        assert probe in listed, f"{canonical} is not checked by test_no_token_is_401"


@pytest.mark.parametrize(("method", "path"), PATHS)
async def test_no_token_is_401(ui, method, path):
    base, token, session, _ = ui
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Cookie": f"{COOKIE}=wrong"}):
        async with session.request(method, base + path, headers=headers) as r:
            assert r.status == 401, (method, path, headers)
            text = await r.text()
            assert "access token" in text and token not in text
            assert "<" not in text  # a sentence, never a page


@pytest.mark.parametrize("path", ["/websockify", "/api/runs/abc/events", "/vnc"])
async def test_websocket_upgrade_without_token_is_401(ui, path):
    base, _, session, _ = ui
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(base.replace("http", "ws") + path, origin=base)
    assert info.value.status == 401


async def test_wrong_token_in_the_url_is_401(ui):
    base, _, session, _ = ui
    async with session.get(base + "/?token=nope", allow_redirects=False) as r:
        assert r.status == 401


async def test_first_load_sets_the_cookie_and_drops_the_token(ui):
    base, token, session, _ = ui
    async with session.get(f"{base}/?token={token}", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/"
        cookie = r.cookies[COOKIE]
        assert cookie.value == token and cookie["httponly"] and cookie["samesite"] == "Strict"
    async with session.get(base + "/") as r:  # the session now sends the cookie
        assert r.status == 200 and "text/html" in r.headers["Content-Type"]
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    async with session.get(base + "/api/runs") as r:
        assert r.status == 200 and await r.json() == {"runs": []}


async def test_bearer_works_without_origin(ui):
    base, token, session, _ = ui
    h = {"Authorization": f"Bearer {token}"}
    async with session.get(base + "/api/config", headers=h) as r:
        assert r.status == 200 and (await r.json())["mode"] == "fake"


async def test_wrong_origin_is_refused(ui):
    base, token, session, _ = ui
    evil = {"Authorization": f"Bearer {token}", "Origin": "http://evil.example"}
    async with session.post(base + "/api/runs", json={"task": "x"}, headers=evil) as r:
        assert r.status == 403 and "Origin" in (await r.json())["error"]
    other_port = {"Authorization": f"Bearer {token}", "Origin": "http://127.0.0.1:1"}
    async with session.post(base + "/api/runs/abc/stop", headers=other_port) as r:
        assert r.status == 403
    # the cookie alone: a WebSocket from another origin, or with no Origin at all, is refused
    async with session.get(f"{base}/?token={token}", allow_redirects=False):
        pass
    ws = base.replace("http", "ws") + "/websockify"
    for origin in ("http://evil.example", None):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            kw = {"origin": origin} if origin else {}
            await session.ws_connect(ws, **kw)
        assert info.value.status == 403
    # the right origin passes the checks (the route itself belongs to the live view)
    async with session.post(
        base + "/api/runs/abc/stop", headers={"Origin": base}
    ) as r:  # cookie + own origin
        assert r.status == 404 and (await r.json())["error"] == "There is no run with that id."


async def test_bad_bodies_are_400_sentences(ui):
    base, token, session, _ = ui
    h = {"Authorization": f"Bearer {token}"}
    for body in (b"not json", b'{"task": ""}', b'{"task": "x", "surprise": 1}'):
        async with session.post(base + "/api/runs", data=body, headers=h) as r:
            assert r.status == 400
            assert (await r.json())["error"].startswith(("The body", "The task"))
    async with session.post(
        base + "/api/runs", json={"task": "x", "model": "gpt-9"}, headers=h
    ) as r:
        assert r.status == 400 and "gpt-9" in (await r.json())["error"]


def test_check_origin_rules():
    from aiohttp.test_utils import make_mocked_request

    def req(origin: str | None, host: str = "127.0.0.1:8765"):
        headers = {"Host": host} | ({"Origin": origin} if origin else {})
        return make_mocked_request("POST", "/api/runs", headers=headers)

    assert check_origin(req("http://127.0.0.1:8765")) is None
    assert check_origin(req(None)) is None
    assert check_origin(req(None), required=True) is not None
    for bad in ("null", "http://127.0.0.1:8766", "http://localhost:8765", "file://x"):
        assert check_origin(req(bad)) is not None, bad
