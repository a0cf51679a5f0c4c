"""The computer server's transport: an aiohttp app with a WebSocket and HTTP POST routes.

Routes (``docs/computer-server.md``):

* ``GET /v1/ws``: a WebSocket; each text frame is one request ``{id, method, params}`` and
  gets one reply ``{id, result | error}`` (replies may come out of order: several requests
  can be in flight);
* ``POST /v1/<method>``: the body is the ``params`` object (``Content-Type:
  application/json``; an empty body is ``{}``), the optional
  ``X-Request-Id`` header the id; the body of the answer is the reply;
* ``GET /healthz``: ``{"ok": bool}`` without a token (for container health checks).

Every route but ``/healthz`` demands ``Authorization: Bearer <token>`` when the server has a
token (compared in constant time). Requests carrying an ``Origin`` header (a web page) are
refused, and on a loopback bind so is a ``Host`` that is not a loopback name (DNS
rebinding); a POST whose body is not typed ``application/json`` (a form or ``text/plain``,
which a web page can send without a CORS preflight) is refused too. Nothing a client sends drops its connection or stops the server: unreadable
JSON, an unknown method, bad params and an oversized message each get an error reply.

Idempotent ids (:class:`ReplyCache`): each request runs as its own task, independent of
the connection that sent it; its reply is kept (the last :data:`REPLY_CACHE_SIZE`), so a
client that lost its connection mid-action and sends the same id again gets that reply
when the action ends, and the action runs once. The same id with another method or other
params (another client's id) is an ``id_conflict``, never someone else's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
from collections import Counter, OrderedDict
from typing import Any

from aiohttp import WSMsgType, web

from ..remote import frames
from ..remote import protocol as p
from .service import DesktopService, Refusal

__all__ = ["REPLY_CACHE_SIZE", "ReplyCache", "fingerprint", "is_loopback", "make_app"]

log = logging.getLogger("deskpilot.server")

Answer = tuple[p.Reply, list[bytes]]
"""A reply and the bytes of its images (:mod:`deskpilot.remote.frames`)."""

REPLY_CACHE_SIZE = 512
"""Replies kept for requests sent again with the same id (finished ones, oldest dropped)."""

_JSON_TYPES = frozenset({"application/json"})

_STATUS = {
    "bad_json": 400,
    "bad_request": 400,
    "bad_params": 400,
    "version_mismatch": 400,
    "unknown_method": 404,
    "too_large": 413,
    "unauthorized": 401,
    "id_conflict": 409,
    "not_supported": 501,
    "timeout": 504,
    "desktop_error": 502,
    "internal": 500,
}


_SAMPLE = 512  # characters kept from each end of a long string in a params fingerprint


def _sampled(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 4 * _SAMPLE:
        return f"{len(value)}:{value[:_SAMPLE]}:{value[-_SAMPLE:]}"
    if isinstance(value, dict):
        return {k: _sampled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sampled(v) for v in value]
    return value


def fingerprint(method: str, params: dict[str, Any]) -> str:
    """A digest of a request's method and params that tells another request sent with the
    same id from the same request sent again (a long string, e.g. a file's base64, counts
    by its length and ends: a few microseconds, not a pass over megabytes)."""
    text = json.dumps([method, _sampled(params)], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (``127.0.0.0/8``, ``::1``)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ReplyCache:
    """Request id -> the task computing its reply (see the module docstring).

    Args:
        service: runs the methods.
        size: finished replies kept; running ones are never dropped.
    """

    def __init__(self, service: DesktopService, size: int = REPLY_CACHE_SIZE) -> None:
        self.service = service
        self.size = size
        self._tasks: OrderedDict[str, tuple[str, str, asyncio.Task[Answer]]] = OrderedDict()
        self.runs = 0  # methods started (a request sent again is not counted)
        self.counts: Counter[str] = Counter()  # the same, per method

    def reply(self, request: p.Request) -> asyncio.Future[Answer]:
        """The reply to ``request`` (with its images' bytes): the running or finished one
        for its id, or a new run."""
        found = self._tasks.get(request.id)
        digest = fingerprint(request.method, request.params)
        if found is not None:
            method, seen, task = found
            if seen != digest:
                other = "other params" if method == request.method else ""
                fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
                conflict = p.error_reply(
                    request.id,
                    "id_conflict",
                    f"Request id {request.id!r} was already used for {method}"
                    f"{' with ' + other if other else ''}; use a new id for each request "
                    "(the same id only to ask again for one reply).",
                )
                fut.set_result((conflict, []))
                return fut
            return task
        task = asyncio.get_running_loop().create_task(self._run(request))
        self.runs += 1
        self.counts[request.method] += 1
        self._tasks[request.id] = (request.method, digest, task)
        self._trim()
        return task

    async def _run(self, request: p.Request) -> Answer:
        try:
            result, blobs = await self.service.call_blobs(request.method, request.params)
        except Refusal as exc:
            return p.error_reply(request.id, exc.code, exc.message), []
        return p.Reply(id=request.id, result=result), blobs

    def _trim(self) -> None:
        excess = len(self._tasks) - self.size
        if excess <= 0:
            return
        for key in [k for k, (_, _, t) in self._tasks.items() if t.done()][:excess]:
            del self._tasks[key]

    async def aclose(self) -> None:
        """Cancel the runs still going (server shutdown)."""
        for _, _, task in self._tasks.values():
            task.cancel()
        for _, _, task in self._tasks.values():
            with contextlib.suppress(BaseException):
                await task


CACHE_KEY = web.AppKey("cache", ReplyCache)


def _json_response(reply: p.Reply) -> web.Response:
    status = 200 if reply.error is None else _STATUS.get(reply.error.code, 400)
    return web.Response(text=p.encode_reply(reply), status=status, content_type="application/json")


def make_app(
    service: DesktopService,
    *,
    token: str | None,
    loopback: bool,
    max_message_bytes: int = p.MAX_MESSAGE_BYTES,
) -> web.Application:
    """The server's aiohttp application (see the module docstring).

    Args:
        service: the desktop's method runner.
        token: the bearer token every request must carry, or None (loopback only: the
            caller refuses a non-loopback bind without one).
        loopback: the server listens on a loopback address (Host names are then checked).
        max_message_bytes: the largest request accepted; a larger one gets ``too_large``.
    """
    cache = ReplyCache(service)
    expected = token.encode() if token else None
    sockets: set[web.WebSocketResponse] = set()

    def refused(request: web.Request) -> p.Reply | None:
        if request.headers.get("Origin") is not None:
            return p.error_reply(
                None,
                "unauthorized",
                "Requests from web pages (with an Origin header) are refused by the computer "
                "server.",
            )
        if loopback:
            host = (
                request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
            )
            if not is_loopback(host):
                return p.error_reply(
                    None, "unauthorized", f"Host {request.host!r} is not a loopback name."
                )
        if expected is None:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), expected
        ):
            return p.error_reply(
                None,
                "unauthorized",
                "Missing or wrong token: send Authorization: Bearer <token> (the server's "
                f"--token or {p.TOKEN_ENV}).",
            )
        return None

    async def healthz(request: web.Request) -> web.Response:
        try:
            health = await service.call("health", {})
            ok = bool(health.get("ok"))
        except Refusal:
            ok = False
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def post(request: web.Request) -> web.Response:
        denied = refused(request)
        if denied is not None:
            return _json_response(denied)
        rid = request.headers.get("X-Request-Id") or "http-" + secrets.token_hex(12)
        if not p.valid_id(rid):
            return _json_response(
                p.error_reply(
                    None,
                    "bad_request",
                    "The X-Request-Id header must be 1-128 printable ASCII characters "
                    "without spaces.",
                )
            )
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json_response(_too_large(rid, request.content_length or 0, max_message_bytes))
        if len(raw) > max_message_bytes:
            return _json_response(_too_large(rid, len(raw), max_message_bytes))
        if raw and request.content_type not in _JSON_TYPES:
            typed = request.headers.get("Content-Type", "nothing")
            return _json_response(
                p.error_reply(
                    rid,
                    "bad_request",
                    f"The body is typed {typed!r}; send the params as JSON with "
                    "Content-Type: application/json.",
                )
            )
        try:
            params = p.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return _json_response(p.error_reply(rid, "bad_json", f"The body is not JSON ({exc})."))
        parsed = p.parse_request(
            json.dumps({"id": rid, "method": request.match_info["method"], "params": params})
        )
        if isinstance(parsed, p.Reply):
            return _json_response(parsed)
        reply, blobs = await asyncio.shield(cache.reply(parsed))
        return _json_response(frames.inline(reply, blobs))

    async def websocket(request: web.Request) -> web.StreamResponse:
        denied = refused(request)
        if denied is not None:
            return _json_response(denied)
        # aiohttp closes the connection above its own limit; ours (checked below) answers
        # no permessage-deflate: base64 PNGs gain ~25% from it and cost milliseconds per frame
        ws = web.WebSocketResponse(
            max_msg_size=2 * max_message_bytes + 2**20, heartbeat=30.0, compress=False
        )
        await ws.prepare(request)
        sockets.add(ws)
        send_lock = asyncio.Lock()
        pending: set[asyncio.Task[None]] = set()
        binary = False  # set by a hello with binary: true (deskpilot.remote.frames)

        async def answer(reply: p.Reply | asyncio.Future[Answer]) -> None:
            done, blobs = (reply, []) if isinstance(reply, p.Reply) else await asyncio.shield(reply)
            frame: str | bytes
            if blobs and binary:
                frame = frames.encode_binary(done, blobs)
            else:
                frame = p.encode_reply(frames.inline(done, blobs))
            async with send_lock:
                if ws.closed:
                    return  # the client asks again with the same id after reconnecting
                with contextlib.suppress(ConnectionError, RuntimeError):
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)

        def spawn(reply: p.Reply | asyncio.Future[Answer]) -> None:
            task = asyncio.get_running_loop().create_task(answer(reply))
            pending.add(task)
            task.add_done_callback(pending.discard)

        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data: str = msg.data
                    if len(data) > max_message_bytes:
                        spawn(_too_large(p.guess_id(data), len(data), max_message_bytes))
                        continue
                    parsed = p.parse_request(data)
                    if isinstance(parsed, p.Request) and parsed.method == "hello":
                        binary = parsed.params.get("binary") is True
                    spawn(parsed if isinstance(parsed, p.Reply) else cache.reply(parsed))
                elif msg.type == WSMsgType.BINARY:
                    spawn(
                        p.error_reply(
                            p.guess_id(msg.data),
                            "bad_request",
                            "Send requests as JSON in text frames, not binary frames.",
                        )
                    )
                elif msg.type == WSMsgType.ERROR:
                    log.info("A WebSocket connection failed: %s", ws.exception())
        finally:
            sockets.discard(ws)
            for task in list(pending):
                task.cancel()
        return ws

    app = web.Application(client_max_size=max_message_bytes + 2**20)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/ws", websocket)
    app.router.add_post("/v1/{method}", post)

    async def on_shutdown(app: web.Application) -> None:
        # close the open WebSockets (1001 "going away"): their clients reconnect elsewhere
        # or fail their unanswered requests, instead of the server waiting for them
        for ws in list(sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"The computer server is stopping.")

    async def on_cleanup(app: web.Application) -> None:
        await cache.aclose()

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app[CACHE_KEY] = cache
    return app


def _too_large(rid: str | None, size: int, limit: int) -> p.Reply:
    return p.error_reply(
        rid,
        "too_large",
        f"The message is {size} bytes; this server takes at most {limit} bytes per message "
        "(send a large file in parts).",
    )


def reply_cache(app: web.Application) -> ReplyCache:
    """The app's :class:`ReplyCache` (tests count ``runs``)."""
    return app[CACHE_KEY]
