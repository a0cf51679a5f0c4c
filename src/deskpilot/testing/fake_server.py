"""FakeModelServer: the fake model APIs over real HTTP on loopback.

:class:`FakeModelServer` is a :class:`~deskpilot.testing.FakeModel` (scripted replies, faults,
rate limits, prompt caching, a record of requests) behind a real aiohttp server on
127.0.0.1, for what only the real wire proves: the bytes and headers aiohttp sends, SigV4
over the network, timeouts of a socket, the examples, the demo, and clients other than
deskpilot's. Tests of behaviour use the in-process ``FakeModel().transport()`` instead.

Run alone: ``python -m deskpilot.testing.fake_server --port 0 [--rpm N] [--script file.json]``.
Control endpoints for out-of-process use: ``GET /_fake/stats``, ``POST /_fake/reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shlex
import signal
import sys
import threading
from typing import Any

from aiohttp import web

from ..transport import HTTPResponse
from .fake_model import FakeModel, ReplySpec
from .fake_replies import json_bytes
from .recorded import Disconnect, Hang, Incoming, RecordedRequest
from .wire import FakeReply

logger = logging.getLogger(__name__)


def _web_response(response: HTTPResponse) -> web.Response:
    return web.Response(status=response.status, body=response.body, headers=response.headers)


class FakeModelServer(FakeModel):
    """A :class:`FakeModel` served over HTTP on ``host:port`` (see the module docstring).

    Use as ``async with FakeModelServer(...) as server:`` (same event loop as the test) or
    ``with FakeModelServer(...) as server:`` (served from a background thread, for sync code).

    Args:
        *args / **kwargs: those of :class:`FakeModel`.
        host / port: where to listen (port 0 = a free port).
    """

    def __init__(self, *args: Any, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = host
        self.port = port
        self.url = ""
        self._runner: web.ServerRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> FakeModelServer:
        """Start listening; sets :attr:`url`. Returns self."""
        if self._runner is not None:
            return self
        self._closing = asyncio.Event()
        server = web.Server(self._handle_http, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        sockets = self._runner.addresses
        port = sockets[0][1] if sockets else self.port
        self.port = port
        self.url = f"http://{self.host}:{port}"
        logger.info("fake model server listening on %s", self.url)
        return self

    async def close(self) -> None:
        """Stop listening; pending hung requests end at once."""
        self._wake_hung()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeModelServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __enter__(self) -> FakeModelServer:
        """Serve from a background thread with its own event loop (for synchronous callers)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-model-server", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def __exit__(self, *exc: object) -> None:
        loop, thread = self._thread_loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        self._thread = self._thread_loop = None

    # --- HTTP -----------------------------------------------------------------------------
    async def _handle_http(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await self._control(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        incoming = Incoming(
            request.method,
            request.path,
            request.raw_path,
            headers,
            await request.content.read(),
            headers.get("host", f"{self.host}:{self.port}"),
        )
        outcome = await self.dispatch(incoming)
        if isinstance(outcome, HTTPResponse):
            return _web_response(outcome)
        if isinstance(outcome, Disconnect):
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        assert isinstance(outcome, Hang)
        if outcome.head is None:
            await self._wait_closed()
            return web.Response(status=503, text="server closing")
        # the status and headers go out, the body stops short of its content-length
        head = outcome.head
        stream = web.StreamResponse(status=head.status, headers=head.headers)
        stream.content_length = len(head.body)
        await stream.prepare(request)
        await stream.write(head.body[: max(1, len(head.body) // 3)])
        await self._wait_closed()
        return stream

    async def _control(self, request: web.BaseRequest) -> web.Response:
        """``GET /_fake/stats`` and ``POST /_fake/reset`` (not counted in the statistics)."""
        if request.method == "GET" and request.path == "/_fake/stats":
            return web.Response(body=json_bytes(self.stats()), content_type="application/json")
        if request.method != "POST" or request.path != "/_fake/reset":
            return web.Response(status=404, text="unknown control endpoint")
        raw = await request.content.read()
        cfg = json.loads(raw) if raw.strip() else {}
        self.reset()
        if any(k in cfg for k in ("rpm_limit", "itpm_limit", "otpm_limit", "window_s")):
            self.set_limits(
                rpm_limit=cfg.get("rpm_limit"),
                itpm_limit=cfg.get("itpm_limit"),
                otpm_limit=cfg.get("otpm_limit"),
                window_s=cfg.get("window_s"),
            )
        if "latency_s" in cfg:
            self.latency_s = float(cfg["latency_s"])
        return web.Response(body=b'{"ok":true}', content_type="application/json")


# --- command line ---------------------------------------------------------------------------


def load_script(path: str) -> list[ReplySpec]:
    """Read a script file: a JSON list of Messages API responses and fault entries.

    Entries: a response dict (``{"type": "message", "content": [...], ...}``), a fault
    (``{"fault": "timeout", "count": 2}``), or a raw reply (``{"status": 500, "body": {...},
    "headers": {...}, "delay_s": 0.5}``).

    Raises:
        ValueError: the file is not a JSON list or an entry has none of those shapes.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: a script must be a JSON list of replies, got {type(data).__name__}."
        )
    out: list[ReplySpec] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: entry {i} must be an object.")
        count = int(item.get("count", 1))
        if "fault" in item:
            spec: ReplySpec = item["fault"]
        elif "status" in item:
            spec = FakeReply(
                status=int(item["status"]),
                body=item.get("body"),
                headers=dict(item.get("headers") or {}),
                delay_s=float(item.get("delay_s", 0.0)),
            )
        elif "content" in item:
            spec = item
        else:
            raise ValueError(f"{path}: entry {i} is neither a response, a fault nor a raw reply.")
        out.extend([spec] * count)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m deskpilot.testing.fake_server``: serve until Ctrl-C / SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m deskpilot.testing.fake_server",
        description="A local fake of the Anthropic Messages API, Bedrock InvokeModel and "
        "OpenAI chat completions, for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (default)")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute to enforce")
    parser.add_argument("--itpm", type=int, default=None, help="input tokens per minute")
    parser.add_argument("--otpm", type=int, default=None, help="output tokens per minute")
    parser.add_argument("--window", type=float, default=60.0, help="rate-limit window, seconds")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--script", default=None, help="JSON file of scripted replies")
    parser.add_argument("--api-key", default=None, help="the only x-api-key accepted")
    parser.add_argument("--aws-access-key-id", default="AKIDFAKEDESKPILOT")
    parser.add_argument("--aws-secret-access-key", default="fake-secret-key")
    parser.add_argument("--no-sigv4", action="store_true", help="do not check Bedrock signatures")
    parser.add_argument(
        "--no-record", action="store_true", help="keep only arrival times, not request bodies"
    )
    args = parser.parse_args(argv)
    responses = load_script(args.script) if args.script else None
    server = FakeModelServer(
        responses,
        rpm_limit=args.rpm,
        itpm_limit=args.itpm,
        otpm_limit=args.otpm,
        window_s=args.window,
        latency_s=args.latency,
        api_key=args.api_key,
        aws_credentials=None
        if args.no_sigv4
        else (args.aws_access_key_id, args.aws_secret_access_key),
        record=not args.no_record,
        host=args.host,
        port=args.port,
    )

    async def serve() -> None:
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        out = sys.stdout
        out.write(f"FAKE_SERVER_URL={server.url}\n")
        out.write(
            "# export these to point deskpilot (or any Anthropic/Bedrock/OpenAI client) here:\n"
        )
        for k, v in server.env().items():
            out.write(f"export {k}={shlex.quote(v)}\n")
        out.flush()
        await stop.wait()
        await server.close()

    asyncio.run(serve())
    return 0


__all__ = ["FakeModelServer", "RecordedRequest", "load_script", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
