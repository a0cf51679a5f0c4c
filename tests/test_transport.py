"""The HTTP seam: AiohttpTransport on a real loopback socket, MockTransport, and the one place
that translates aiohttp's exceptions."""

from __future__ import annotations

import asyncio
import inspect
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import deskpilot
from deskpilot.client.aiohttp_transport import AiohttpTransport, translate_error
from deskpilot.errors import DeskpilotError, TransportError, TransportTimeoutError
from deskpilot.testing import MockTransport, json_response
from deskpilot.transport import HTTPRequest, HTTPResponse


class Loopback:
    """A real aiohttp server whose answer per path is scripted in the test."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.url = ""
        self._runner: web.ServerRunner | None = None
        self._stop = asyncio.Event()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.content.read()
        self.received.append((request.raw_path, dict(request.headers), body))
        if request.path == "/ok":
            return web.Response(
                status=201, body=b'{"a": 1}', headers={"Request-Id": "r1", "X-Two": "2"}
            )
        if request.path == "/hang":
            await self._stop.wait()
        if request.path == "/stall":  # headers out, then the body stops short
            stream = web.StreamResponse(status=200, headers={"content-type": "application/json"})
            stream.content_length = 1000
            await stream.prepare(request)
            await stream.write(b'{"id": "msg')
            await self._stop.wait()
            return stream
        if request.path == "/drop" and request.transport is not None:
            request.transport.abort()
            raise asyncio.CancelledError
        return web.Response(status=404)

    async def __aenter__(self) -> Loopback:
        self._runner = web.ServerRunner(
            web.Server(self._handle, handler_cancellation=True), shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._runner is not None
        await self._runner.cleanup()


def post(url: str, timeout_s: float = 5.0, body: bytes = b"{}") -> HTTPRequest:
    return HTTPRequest("POST", url, {"x-api-key": "sk-secret-header"}, body, timeout_s)


async def test_aiohttp_transport_returns_the_whole_answer() -> None:
    transport = AiohttpTransport()
    async with Loopback() as server:
        resp = await transport.send(post(server.url + "/ok", body=b'{"q": 2}'))
        big = await transport.send(post(server.url + "/ok", body=b"x" * (2 << 20)))
    await transport.aclose()
    assert isinstance(resp, HTTPResponse)
    assert (resp.status, resp.body) == (201, b'{"a": 1}')
    assert resp.headers["request-id"] == resp.headers["REQUEST-ID"] == "r1"
    assert server.received[0][1]["x-api-key"] == "sk-secret-header"
    assert server.received[0][2] == b'{"q": 2}'
    assert big.status == 201 and len(server.received[1][2]) == 2 << 20


async def test_no_answer_in_time_is_a_timeout_whether_headers_came_or_not() -> None:
    transport = AiohttpTransport()
    async with Loopback() as server:
        for path in ("/hang", "/stall"):
            with pytest.raises(TransportTimeoutError) as info:
                await transport.send(post(server.url + path, timeout_s=0.2))
            assert "within 0.2 s" in str(info.value)
            assert isinstance(info.value, TimeoutError) and isinstance(info.value, TransportError)
            assert isinstance(info.value.__cause__, TimeoutError)  # raised from the original
    await transport.aclose()


async def test_refused_and_dropped_connections_are_transport_errors() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = AiohttpTransport()
    with pytest.raises(TransportError) as refused:
        await transport.send(post(f"http://127.0.0.1:{port}/x"))
    assert "could not connect to 127.0.0.1" in str(refused.value)
    async with Loopback() as server:
        with pytest.raises(TransportError) as dropped:
            await transport.send(post(server.url + "/drop"))
    assert "closed the connection" in str(dropped.value)
    assert not isinstance(dropped.value, TimeoutError)
    await transport.aclose()


def _client_exception_classes() -> list[type[BaseException]]:
    out = []
    for name in dir(aiohttp):
        cls = getattr(aiohttp, name)
        if inspect.isclass(cls) and issubclass(cls, aiohttp.ClientError | OSError):
            out.append(cls)
    return out


@pytest.mark.parametrize("cls", _client_exception_classes(), ids=lambda c: c.__name__)
def test_every_aiohttp_client_exception_is_translated(cls: type[BaseException]) -> None:
    """AiohttpTransport.send catches (ClientError, OSError) and translates here; every
    exception class aiohttp exports on the client side must come out as ours, with words."""
    exc = cls.__new__(cls)  # no arguments: the translation must not depend on them
    out = translate_error(exc, post("http://api.example.test/v1/messages", timeout_s=3))
    assert isinstance(out, TransportError) and isinstance(out, DeskpilotError)
    assert isinstance(out, TransportTimeoutError) is issubclass(cls, TimeoutError)
    assert "api.example.test" in str(out) and len(str(out)) > 20


async def test_the_session_follows_the_event_loop_and_reopens_after_aclose() -> None:
    transport = AiohttpTransport()
    async with Loopback() as server:
        await transport.send(post(server.url + "/ok"))
        first = transport._session
        await transport.aclose()
        assert first is not None and first.closed
        await transport.send(post(server.url + "/ok"))
        assert transport._session is not first
    await transport.aclose()


async def test_mock_transport_sync_async_timeout_and_errors() -> None:
    def sync_handler(request: HTTPRequest) -> HTTPResponse:
        return json_response({"got": request.body.decode()}, 202, {"X-Id": "7"})

    mock = MockTransport(sync_handler)
    resp = await mock.send(post("http://x.test/a", body=b"hi"))
    assert (resp.status, resp.headers["x-id"], resp.body) == (202, "7", b'{"got": "hi"}')
    assert resp.headers["content-type"] == "application/json"
    assert [r.url for r in mock.requests] == ["http://x.test/a"]

    async def slow(request: HTTPRequest) -> HTTPResponse:
        await asyncio.sleep(5)
        return HTTPResponse(200)

    with pytest.raises(TransportTimeoutError):
        await MockTransport(slow).send(post("http://x.test/a", timeout_s=0.05))

    async def drop(request: HTTPRequest) -> HTTPResponse:
        raise TransportError("x.test closed the connection before answering")

    with pytest.raises(TransportError):
        await MockTransport(drop).send(post("http://x.test/a"))
    with pytest.raises(TypeError, match="HTTPResponse"):
        await MockTransport(lambda r: {"not": "a response"}).send(post("http://x.test/a"))  # type: ignore[arg-type,return-value]


def test_request_repr_never_shows_headers() -> None:
    r = post("http://x.test/a", body=b"12345")
    assert "sk-secret-header" not in repr(r) and "5 bytes" in repr(r)
    assert "sk-secret" not in repr(HTTPResponse(200, {"x-api-key": "sk-secret"}, b""))


def test_the_wire_layers_never_import_the_client() -> None:
    """providers/, response.py and transport.py sit below client/ (issue 11, item 4)."""
    import ast

    root = Path(deskpilot.__file__).parent
    below = [
        root / "response.py",
        root / "transport.py",
        *sorted((root / "providers").glob("*.py")),
    ]
    for path in below:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert "client" not in module.split("."), f"{path.name} imports {module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("deskpilot.client"), path.name
