"""FakeModelServer: a real aiohttp server on loopback that speaks the model APIs for tests.

It answers the Anthropic Messages API (``POST /v1/messages``, plus ``/v1/messages/count_tokens``),
Bedrock InvokeModel (``POST /model/{model-id}/invoke``, SigV4 checked with botocore) and OpenAI
chat completions (``POST /v1/chat/completions``, the Model.box gateway shape), with:

- scripted replies (a FIFO queue of Messages API responses, faults or :class:`FakeReply`), or a
  function of the request, or a default short text reply;
- injected faults (500, 529, 429 with or without ``retry-after``, timeouts, disconnects,
  malformed JSON, 400 "prompt is too long", 401, ...), optionally only for matching requests;
- RPM / input-TPM / output-TPM enforcement over a sliding window with real-shaped 429s
  (``retry-after`` and ``anthropic-ratelimit-*`` headers);
- simulated prompt caching (``cache_read_input_tokens`` / ``cache_creation_input_tokens``);
- a record of every request (:class:`RecordedRequest`), arrival times and peak concurrency.

Run alone: ``python -m deskpilot.testing.fake_server --port 0 [--rpm N] [--script file.json]``.
Control endpoints for out-of-process use: ``GET /_fake/stats``, ``POST /_fake/reset``.

Request checks follow the real services where a client bug would otherwise go unnoticed:
``x-api-key`` and ``anthropic-version`` headers, required body fields, the beta flag each
Anthropic-defined tool type needs (``anthropic-beta`` header, Bedrock body ``anthropic_beta``),
Bedrock's ``anthropic_version: "bedrock-2023-05-31"`` and its refusal of a ``model`` key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import math
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from ..computer_use.specs import beta_for_tool_type
from .caching import CachePlan, PromptCache
from .limits import RateLimits
from .sigv4 import verify_sigv4
from .tokens import count_request_tokens, response_output_tokens
from .wire import (
    AUTO,
    FakeReply,
    anthropic_error_body,
    bedrock_error,
    error_reply,
    fault,
    is_anthropic_error,
    openai_error,
    to_chat_completion,
)

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Messages API request size limit (32 MB, "Errors" page: 413 request_too_large)."""

ReplySpec = dict[str, Any] | FakeReply | str | int
Handler = Callable[["RecordedRequest"], ReplySpec | Awaitable[ReplySpec | None] | None]


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server received it, and what it answered.

    Attributes:
        index: arrival order, from 0.
        api: ``"anthropic"``, ``"bedrock"``, ``"openai"``, ``"count_tokens"`` or ``"other"``.
        method / path / raw_path: HTTP method, decoded path, path as sent (percent-encoded).
        headers: received headers with lower-case names.
        body: the decoded JSON body (None if it was not JSON).
        raw_body: the body bytes.
        received_at: ``time.monotonic()`` at arrival, seconds.
        model: the model from the body (or from the Bedrock URL).
        status: the HTTP status answered (None while pending or if the client went away).
        outcome: ``"ok"``, ``"fault"``, ``"rate_limited"``, ``"auth"``, ``"invalid"``,
            ``"hang"``, ``"disconnect"``.
        usage: the ``usage`` served with a successful message.
        error_type: the error ``type`` (or Bedrock error type) of an error answer.
    """

    index: int
    api: str
    method: str
    path: str
    raw_path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    received_at: float
    model: str | None = None
    status: int | None = None
    outcome: str = ""
    usage: dict[str, int] | None = None
    error_type: str | None = None

    @property
    def betas(self) -> list[str]:
        """Beta flags: the ``anthropic-beta`` header, or Bedrock's body ``anthropic_beta``."""
        if self.api == "bedrock":
            value = self.body.get("anthropic_beta") if isinstance(self.body, dict) else None
            return list(value or [])
        header = self.headers.get("anthropic-beta", "")
        return [b.strip() for b in header.split(",") if b.strip()]

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or []) if isinstance(self.body, dict) else []

    @property
    def tool_types(self) -> list[str | None]:
        """``type`` of each tool in order (None for custom tools without a type)."""
        return [t.get("type") for t in self.tools]

    @property
    def tool_names(self) -> list[str | None]:
        return [
            t.get("name") if t.get("type") != "function" else t["function"].get("name")
            for t in self.tools
        ]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def prompt_text(self) -> str | None:
        """The first text of the first user message (handy to group retries per prompt)."""
        for message in self.messages:
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                return content
            for block in content or ():
                if isinstance(block, dict) and block.get("type") == "text":
                    return block.get("text")
            return None
        return None

    def cache_control_locations(self) -> list[str]:
        """Where ``cache_control`` appears, e.g. ``["tools[2]", "messages[0].content[1]"]``."""
        if not isinstance(self.body, dict):
            return []
        out: list[str] = []
        if "cache_control" in self.body:
            out.append("body")
        for i, t in enumerate(self.body.get("tools") or ()):
            if isinstance(t, dict) and "cache_control" in t:
                out.append(f"tools[{i}]")
        system = self.body.get("system")
        if isinstance(system, list):
            for i, b in enumerate(system):
                if isinstance(b, dict) and "cache_control" in b:
                    out.append(f"system[{i}]")
        for i, m in enumerate(self.body.get("messages") or ()):
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):
                for j, b in enumerate(content):
                    if isinstance(b, dict) and "cache_control" in b:
                        out.append(f"messages[{i}].content[{j}]")
        return out


@dataclass(slots=True)
class _Fault:
    reply: FakeReply | str | int | dict[str, Any]
    remaining: int
    when: Callable[[RecordedRequest], bool] | None


@dataclass(slots=True)
class _Stats:
    statuses: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    peak_in_flight: int = 0
    total: int = 0


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class FakeModelServer:
    """A local model-API server for tests, demos and benchmarks (see the module docstring).

    Use as ``async with FakeModelServer(...) as server:`` (same event loop as the test) or
    ``with FakeModelServer(...) as server:`` (served from a background thread, for sync code).

    Args:
        responses: scripted replies served first-in first-out (see :meth:`enqueue`).
        handler: ``handler(request: RecordedRequest)`` returning a reply spec (or None for
            the default reply), sync or async; used when the queue is empty.
        rpm_limit / itpm_limit / otpm_limit: requests, input tokens and output tokens per
            window enforced with 429s; None = unlimited.
        latency_s: seconds added before every answer.
        aws_credentials: ``(access_key_id, secret_access_key)`` Bedrock signatures must be
            made with; None disables the SigV4 check.
        aws_region: the region signatures must be scoped to (None: any).
        api_key: the only ``x-api-key`` accepted on the Messages API (None: any non-empty key).
        openai_api_key: the only bearer token accepted on chat completions (None: any).
        window_s: rate-limit window in seconds (60 = per minute).
        cache_min_tokens: shortest cacheable prefix for the prompt-cache simulation.
        record: keep a :class:`RecordedRequest` per request (arrival times are always kept).
        reject_tool_types: tool types answered with the API's 400
            ``'<model>' does not support tool types: <type>.`` (to test step-down).
        default_text: the text of the default reply.
        host / port: where to listen (port 0 = a free port).
    """

    def __init__(
        self,
        responses: Iterable[ReplySpec] | None = None,
        handler: Handler | None = None,
        *,
        rpm_limit: int | None = None,
        itpm_limit: int | None = None,
        otpm_limit: int | None = None,
        latency_s: float = 0.0,
        aws_credentials: tuple[str, str] | None = ("AKIDFAKEDESKPILOT", "fake-secret-key"),
        aws_region: str | None = None,
        api_key: str | None = None,
        openai_api_key: str | None = None,
        window_s: float = 60.0,
        cache_min_tokens: int = 1024,
        record: bool = True,
        reject_tool_types: Iterable[str] = (),
        default_text: str = "Done.",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.handler = handler
        self.latency_s = float(latency_s)
        self.aws_credentials = aws_credentials
        self.aws_region = aws_region
        self.api_key = api_key
        self.openai_api_key = openai_api_key
        self.window_s = float(window_s)
        self.record = record
        self.reject_tool_types = set(reject_tool_types)
        self.default_text = default_text
        self.host = host
        self.port = port
        self.limits = RateLimits(
            rpm=rpm_limit, itpm=itpm_limit, otpm=otpm_limit, window_s=self.window_s
        )
        self.cache = PromptCache(min_tokens=cache_min_tokens)
        self.requests: list[RecordedRequest] = []
        self.arrivals: list[float] = []
        self.served: list[tuple[float, int, int]] = []
        """``(monotonic time, input tokens charged (input + cache writes), output tokens)`` of
        every successful answer, for token-rate measurements."""
        self._queue: deque[FakeReply | dict[str, Any]] = deque()
        self._faults: list[_Fault] = []
        self._stats = _Stats()
        self._in_flight = 0
        self._counter = 0
        self._counter_msg = 0
        self._runner: web.ServerRunner | None = None
        self._closing: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._default_text_json = json.dumps(
            [{"type": "text", "text": default_text}], separators=(",", ":")
        )
        self._default_output = response_output_tokens([{"type": "text", "text": default_text}])
        self._model_json: dict[str, str] = {}
        self.url = ""
        if responses:
            self.enqueue(*responses)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> FakeModelServer:
        """Start listening; sets :attr:`url`. Returns self."""
        if self._runner is not None:
            return self
        self._closing = asyncio.Event()
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
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
        if self._closing is not None:
            self._closing.set()
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

    # --- configuration --------------------------------------------------------------------
    @property
    def openai_base_url(self) -> str:
        """``OPENAI_BASE_URL`` form: :attr:`url` + ``/v1``."""
        return self.url + "/v1"

    def env(self) -> dict[str, str]:
        """Environment variables that point all three clients at this server, with fake keys.

        ``ANTHROPIC_BASE_URL`` / ``ANTHROPIC_API_KEY``, ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``
        and the AWS credentials the server checks (plus region, and config files set to
        ``/dev/null`` so no profile or instance metadata is consulted), ``OPENAI_BASE_URL`` /
        ``OPENAI_API_KEY``.
        """
        akid, secret = self.aws_credentials or ("AKIDFAKEDESKPILOT", "fake-secret-key")
        region = self.aws_region or "us-east-1"
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": self.api_key or "sk-ant-fake-deskpilot-key",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url,
            "AWS_ACCESS_KEY_ID": akid,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "OPENAI_BASE_URL": self.openai_base_url,
            "OPENAI_API_KEY": self.openai_api_key or "sk-fake-deskpilot-gateway-key",
        }

    def enqueue(self, *responses: ReplySpec) -> None:
        """Append scripted replies, served first-in first-out to any API path.

        Each is a Messages API response dict (see :func:`text_response`), a
        :class:`FakeReply`, a fault name or an error status (see :func:`fault`).
        """
        for r in responses:
            self._queue.append(r if isinstance(r, dict) else fault(r))

    def inject(
        self,
        reply: ReplySpec,
        count: int = 1,
        *,
        when: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Answer the next ``count`` requests (matching ``when``, if given) with ``reply``.

        Faults take precedence over the queue and the handler; they are applied after the
        authentication, validation and rate-limit checks. ``reply`` is anything
        :func:`fault` accepts: ``"timeout"``, ``"malformed_json"``, ``500``, ``529``,
        ``"rate_limit"``, ``"prompt_too_long"``, a :class:`FakeReply`, ...

        Raises:
            ValueError: an unknown fault name or a count below 1.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}.")
        fault(reply)  # validate now, not at serve time
        self._faults.append(_Fault(reply, count, when))

    def set_limits(
        self,
        *,
        rpm_limit: int | None = None,
        itpm_limit: int | None = None,
        otpm_limit: int | None = None,
        window_s: float | None = None,
    ) -> None:
        """Replace the rate limits (windows start empty)."""
        if window_s is not None:
            self.window_s = float(window_s)
        self.limits = RateLimits(
            rpm=rpm_limit, itpm=itpm_limit, otpm=otpm_limit, window_s=self.window_s
        )

    def reset(self) -> None:
        """Forget recorded requests, statistics, rate-limit windows, the cache and faults."""
        self.requests.clear()
        self.arrivals.clear()
        self.served.clear()
        self._faults.clear()
        self._queue.clear()
        self._stats = _Stats()
        self._counter = 0
        self.limits.clear()
        self.cache.clear()

    # --- observations ---------------------------------------------------------------------
    @property
    def peak_in_flight(self) -> int:
        """Most requests being handled at the same time so far."""
        return self._stats.peak_in_flight

    @property
    def pending_replies(self) -> int:
        """Scripted replies not yet served."""
        return len(self._queue)

    def attempts_by_prompt(self) -> dict[str | None, list[RecordedRequest]]:
        """Recorded requests grouped by :attr:`RecordedRequest.prompt_text`, in arrival order."""
        out: dict[str | None, list[RecordedRequest]] = {}
        for r in self.requests:
            out.setdefault(r.prompt_text, []).append(r)
        return out

    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-able dict (also served at ``GET /_fake/stats``).

        Keys: ``total``, ``statuses`` (status -> count), ``rate_limited``, ``peak_in_flight``,
        ``usage`` (summed served usage), ``arrivals`` (seconds since the first arrival),
        ``served`` (``[seconds since the first arrival, input tokens charged, output tokens]``
        per successful answer), ``limits``.
        """
        s = self._stats
        first = self.arrivals[0] if self.arrivals else 0.0
        limits = {
            "rpm": self.limits.requests.limit if self.limits.requests else None,
            "itpm": self.limits.input_tokens.limit if self.limits.input_tokens else None,
            "otpm": self.limits.output_tokens.limit if self.limits.output_tokens else None,
            "window_s": self.window_s,
        }
        return {
            "total": s.total,
            "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
            "rate_limited": s.rate_limited,
            "peak_in_flight": s.peak_in_flight,
            "usage": {
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
                "cache_read_input_tokens": s.cache_read_input_tokens,
                "cache_creation_input_tokens": s.cache_creation_input_tokens,
            },
            "arrivals": [round(t - first, 6) for t in self.arrivals],
            "served": [[round(t - first, 6), i, o] for t, i, o in self.served],
            "limits": limits,
        }

    # --- request handling -----------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await self._control(request)
        now = time.monotonic()
        self.arrivals.append(now)
        stats = self._stats
        stats.total += 1
        self._in_flight += 1
        if self._in_flight > stats.peak_in_flight:
            stats.peak_in_flight = self._in_flight
        try:
            response = await self._route(request, now)
            stats.statuses[response.status] += 1
            return response
        finally:
            self._in_flight -= 1

    async def _route(self, request: web.BaseRequest, now: float) -> web.StreamResponse:
        path = request.path
        method = request.method
        if method == "POST":
            if path == "/v1/messages":
                return await self._serve(request, "anthropic", now)
            if path == "/v1/chat/completions":
                return await self._serve(request, "openai", now)
            if path.startswith("/model/") and path.endswith("/invoke"):
                return await self._serve(request, "bedrock", now)
            if path == "/v1/messages/count_tokens":
                return await self._serve(request, "count_tokens", now)
            if path.startswith("/model/") and path.endswith("/invoke-with-response-stream"):
                return self._bedrock_response(
                    400,
                    {"message": "The fake model server does not stream; use /invoke."},
                    {"x-amzn-ErrorType": "ValidationException"},
                )
        return web.Response(
            status=404,
            body=_json_bytes(
                anthropic_error_body("not_found_error", f"Not found: {method} {path}")
            ),
            content_type="application/json",
        )

    async def _control(self, request: web.BaseRequest) -> web.Response:
        """``GET /_fake/stats`` and ``POST /_fake/reset`` (not counted in the statistics)."""
        if request.method == "GET" and request.path == "/_fake/stats":
            return web.Response(body=_json_bytes(self.stats()), content_type="application/json")
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

    async def _serve(self, request: web.BaseRequest, api: str, now: float) -> web.StreamResponse:
        raw = await request.content.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        model: str | None = None
        if api == "bedrock":
            model = unquote(request.raw_path.split("?", 1)[0][len("/model/") : -len("/invoke")])
        elif isinstance(body, dict) and isinstance(body.get("model"), str):
            model = body["model"]
        rec = RecordedRequest(
            index=self._counter,
            api=api,
            method=request.method,
            path=request.path,
            raw_path=request.raw_path,
            headers=headers,
            body=body,
            raw_body=raw,
            received_at=now,
            model=model,
        )
        self._counter += 1
        if self.record:
            self.requests.append(rec)

        # 1. authentication and validation, as the real services order them
        if api == "bedrock":
            failure = self._check_bedrock_auth(request, headers, raw)
            if failure is not None:
                rec.status, rec.outcome, rec.error_type = failure.status, "auth", failure.error_type
                return self._bedrock_response(
                    failure.status,
                    {"message": failure.message},
                    {
                        "x-amzn-ErrorType": f"{failure.error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
                    },
                )
        problem = self._validate(api, headers, raw, body, model)
        if problem is not None:
            rec.outcome = "auth" if problem.status in (401, 403) else "invalid"
            return self._error_response(api, rec, problem)
        if api == "count_tokens":
            n = count_request_tokens(body)
            rec.status, rec.outcome = 200, "ok"
            return web.Response(
                body=_json_bytes({"input_tokens": n}), content_type="application/json"
            )

        # 2. rate limits (input tokens excluding cache reads, like the API's ITPM)
        plan: CachePlan | None = None
        if api == "openai":
            input_tokens = count_request_tokens(body)
            charged = input_tokens
        else:
            plan = self.cache.plan(body, model or "")
            input_tokens = plan.input_tokens
            charged = plan.input_tokens + plan.cache_creation_input_tokens
        if self.limits.enabled:
            admission = self.limits.admit(charged)
            if not admission.ok:
                self._stats.rate_limited += 1
                rec.outcome = "rate_limited"
                return self._error_response(api, rec, self._rate_limit_reply(admission))

        # 3. the reply: injected fault, else the queue, else the handler, else the default
        reply: FakeReply | dict[str, Any] | None = self._take_fault(rec)
        source = "fault"
        if reply is None and self._queue:
            reply, source = self._queue.popleft(), "scripted"
        if reply is None and self.handler is not None:
            got = self.handler(rec)
            if inspect.isawaitable(got):
                got = await got
            if got is not None:
                reply, source = (got if isinstance(got, dict) else fault(got)), "handler"
        delay = self.latency_s
        if isinstance(reply, FakeReply):
            delay += reply.delay_s
        if delay > 0:
            await asyncio.sleep(delay)

        if reply is None:
            return self._default_reply(api, rec, plan, input_tokens)
        if isinstance(reply, dict):
            return self._message_reply(api, rec, reply, plan, input_tokens, source)
        if reply.hang:
            rec.outcome = "hang"
            assert self._closing is not None
            await self._closing.wait()
            return web.Response(status=503, text="server closing")
        if reply.disconnect:
            rec.outcome = "disconnect"
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if reply.status == 200 and isinstance(reply.body, dict):
            resp = self._message_reply(api, rec, reply.body, plan, input_tokens, source)
            resp.headers.update(reply.headers)
            return resp
        rec.outcome = "fault" if source == "fault" else source
        return self._error_response(api, rec, reply)

    # --- checks ---------------------------------------------------------------------------
    def _check_bedrock_auth(
        self, request: web.BaseRequest, headers: dict[str, str], raw: bytes
    ) -> Any:
        if self.aws_credentials is None:
            return None
        akid, secret = self.aws_credentials
        host = headers.get("host", f"{self.host}:{self.port}")
        return verify_sigv4(
            method=request.method,
            url=f"http://{host}{request.raw_path}",
            headers=headers,
            body=raw,
            access_key=akid,
            secret_key=secret,
            region=self.aws_region,
        )

    def _validate(
        self, api: str, headers: dict[str, str], raw: bytes, body: Any, model: str | None
    ) -> FakeReply | None:
        if api in ("anthropic", "count_tokens"):
            key = headers.get("x-api-key")
            if not key:
                return error_reply(401, message="x-api-key header is required")
            if self.api_key is not None and key != self.api_key:
                return error_reply(401, message="invalid x-api-key")
            if "anthropic-version" not in headers:
                return error_reply(400, message="anthropic-version: header is required")
        elif api == "openai":
            auth = headers.get("authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not token:
                return error_reply(401, message="Missing bearer token in the Authorization header.")
            if self.openai_api_key is not None and token != self.openai_api_key:
                return error_reply(401, message="Incorrect API key provided.")
        if len(raw) > MAX_REQUEST_BYTES:
            return error_reply(413)
        if not isinstance(body, dict):
            return error_reply(
                400, message="There was an error parsing the body: not a JSON object."
            )
        if api == "bedrock":
            return self._validate_bedrock(body, model or "")
        if not isinstance(body.get("model"), str):
            return error_reply(400, message="model: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error_reply(400, message="messages: Field required (at least one message)")
        if api == "openai":
            return self._check_tool_types(body, None, model or "")
        if api == "anthropic" and not isinstance(body.get("max_tokens"), int):
            return error_reply(400, message="max_tokens: Field required")
        if body.get("stream"):
            return error_reply(400, message="stream: the fake model server does not stream.")
        if api == "count_tokens":
            return None
        betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()]
        return self._check_tool_types(body, betas, model or "")

    def _validate_bedrock(self, body: dict[str, Any], model: str) -> FakeReply | None:
        if "anthropic." not in model:
            return error_reply(400, message="The provided model identifier is invalid.")
        for key in ("anthropic_version", "max_tokens", "messages"):
            if key not in body:
                return error_reply(
                    400,
                    message=f"Malformed input request: #: required key [{key}] not found, "
                    "please reformat your input and try again.",
                )
        for key in ("model", "stream"):
            if key in body:
                return error_reply(
                    400,
                    message=f"Malformed input request: #: extraneous key [{key}] is not "
                    "permitted, please reformat your input and try again.",
                )
        if body["anthropic_version"] != "bedrock-2023-05-31":
            return error_reply(
                400,
                message="Malformed input request: anthropic_version must be bedrock-2023-05-31.",
            )
        betas = body.get("anthropic_beta") or []
        if not isinstance(betas, list):
            return error_reply(
                400, message="Malformed input request: #/anthropic_beta: expected type: JSONArray."
            )
        return self._check_tool_types(body, [str(b) for b in betas], model)

    def _check_tool_types(
        self, body: dict[str, Any], betas: list[str] | None, model: str
    ) -> FakeReply | None:
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            return error_reply(400, message="tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return error_reply(400, message=f"tools.{i}: Input should be a valid dictionary")
            tool_type = tool.get("type")
            if not isinstance(tool_type, str) or tool_type in ("custom", "function"):
                continue
            if tool_type in self.reject_tool_types:
                return error_reply(
                    400, message=f"'{model}' does not support tool types: {tool_type}."
                )
            if betas is None:
                continue  # a gateway adds the beta flag itself
            beta = beta_for_tool_type(tool_type)
            if beta is not None and beta not in betas:
                return error_reply(
                    400,
                    message=f"tools.{i}: tool type '{tool_type}' requires the beta flag "
                    f"'{beta}' (anthropic-beta), which the request did not carry.",
                )
        return None

    def _take_fault(self, rec: RecordedRequest) -> FakeReply | dict[str, Any] | None:
        for i, f in enumerate(self._faults):
            if f.when is not None and not f.when(rec):
                continue
            f.remaining -= 1
            if f.remaining <= 0:
                del self._faults[i]
            return f.reply if isinstance(f.reply, dict) else fault(f.reply)
        return None

    def _rate_limit_reply(self, admission: Any) -> FakeReply:
        kind = {
            "requests": "requests",
            "input_tokens": "input tokens",
            "output_tokens": "output tokens",
        }[admission.limit_name]
        window = {
            "requests": self.limits.requests,
            "input_tokens": self.limits.input_tokens,
            "output_tokens": self.limits.output_tokens,
        }[admission.limit_name]
        limit = window.limit if window is not None else 0
        wait = admission.retry_after_s
        retry_after = 60 if math.isinf(wait) else max(1, math.ceil(wait))
        return error_reply(
            429,
            message=(
                f"This request would exceed the rate limit for your organization of {limit} "
                f"{kind} per minute. For details, refer to: "
                "https://docs.claude.com/en/api/rate-limits. You can see the response headers "
                "for current usage. Please reduce the prompt length or the maximum tokens "
                "requested, or try again later."
            ),
            retry_after=retry_after,
        )

    # --- answers --------------------------------------------------------------------------
    def _common_headers(self, api: str) -> dict[str, str]:
        if api == "bedrock":
            return {"x-amzn-requestid": str(uuid.uuid4())}
        h = {"request-id": "req_" + uuid.uuid4().hex[:24]}
        if api == "openai":
            h["x-request-id"] = h["request-id"]
        if self.limits.enabled and api == "anthropic":
            h.update(self.limits.headers())
        return h

    def _bedrock_response(
        self, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> web.Response:
        h = {"x-amzn-requestid": str(uuid.uuid4()), **headers}
        return web.Response(
            status=status, body=_json_bytes(body), headers=h, content_type="application/json"
        )

    def _error_response(self, api: str, rec: RecordedRequest, reply: FakeReply) -> web.Response:
        body = reply.body
        status = reply.status
        headers = {**self._common_headers(api), **reply.headers}
        if is_anthropic_error(body):
            assert isinstance(body, dict)
            rec.error_type = body["error"].get("type")
            if api == "bedrock":
                status, body, extra = bedrock_error(status, body)
                headers.update(extra)
                headers.pop("retry-after", None)  # Bedrock sends no retry-after
                rec.error_type = extra["x-amzn-ErrorType"].split(":", 1)[0]
            elif api == "openai":
                body = openai_error(status, body)
        rec.status = status
        if not rec.outcome:
            rec.outcome = "fault"
        if isinstance(body, (dict, list)):
            payload = _json_bytes(body)
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body or b""
        headers.setdefault("content-type", "application/json")
        return web.Response(status=status, body=payload, headers=headers)

    def _account(self, usage: dict[str, int]) -> None:
        s = self._stats
        s.input_tokens += usage.get("input_tokens", 0)
        s.output_tokens += usage.get("output_tokens", 0)
        s.cache_read_input_tokens += usage.get("cache_read_input_tokens", 0)
        s.cache_creation_input_tokens += usage.get("cache_creation_input_tokens", 0)
        self.limits.charge_output(usage.get("output_tokens", 0))
        self.served.append(
            (
                time.monotonic(),
                usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0),
                usage.get("output_tokens", 0),
            )
        )

    def _model_field(self, api: str, model: str | None) -> str:
        name = model or "claude-fake"
        if api == "bedrock":  # Bedrock answers with the Anthropic model name
            name = name.split(".anthropic.", 1)[-1].removeprefix("anthropic.").split(":", 1)[0]
            name = name.rsplit("-v", 1)[0] if name.rsplit("-v", 1)[-1].isdigit() else name
        return name

    def _default_reply(
        self, api: str, rec: RecordedRequest, plan: CachePlan | None, input_tokens: int
    ) -> web.Response:
        self._counter_msg += 1
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": plan.cache_creation_input_tokens if plan else 0,
            "cache_read_input_tokens": plan.cache_read_input_tokens if plan else 0,
            "output_tokens": self._default_output,
        }
        if plan is not None:
            plan.commit()
        self._account(usage)
        rec.status, rec.outcome, rec.usage = 200, "ok", usage
        model = self._model_field(api, rec.model)
        msg_id = f"msg_fake{self._counter_msg:016x}"
        if api == "openai":
            body = _json_bytes(
                to_chat_completion(
                    {
                        "id": msg_id,
                        "model": model,
                        "content": [{"type": "text", "text": self.default_text}],
                        "stop_reason": "end_turn",
                        "usage": usage,
                    }
                )
            )
        else:
            model_json = self._model_json.get(model)
            if model_json is None:
                model_json = self._model_json[model] = json.dumps(model)
            body = (
                f'{{"id":"{msg_id}","type":"message","role":"assistant","model":{model_json},'
                f'"content":{self._default_text_json},"stop_reason":"end_turn",'
                f'"stop_sequence":null,"usage":{{"input_tokens":{usage["input_tokens"]},'
                f'"cache_creation_input_tokens":{usage["cache_creation_input_tokens"]},'
                f'"cache_read_input_tokens":{usage["cache_read_input_tokens"]},'
                f'"output_tokens":{usage["output_tokens"]}}}}}'
            ).encode()
        return self._success(api, body, usage)

    def _success(self, api: str, body: bytes, usage: dict[str, int]) -> web.Response:
        headers = self._common_headers(api)
        if api == "bedrock":
            headers["x-amzn-bedrock-input-token-count"] = str(
                usage["input_tokens"]
                + usage.get("cache_read_input_tokens", 0)
                + usage.get("cache_creation_input_tokens", 0)
            )
            headers["x-amzn-bedrock-output-token-count"] = str(usage["output_tokens"])
            headers["x-amzn-bedrock-invocation-latency"] = str(int(self.latency_s * 1000))
        return web.Response(body=body, headers=headers, content_type="application/json")

    def _message_reply(
        self,
        api: str,
        rec: RecordedRequest,
        message: dict[str, Any],
        plan: CachePlan | None,
        input_tokens: int,
        source: str,
    ) -> web.Response:
        msg = dict(message)
        self._counter_msg += 1
        if not msg.get("id"):
            msg["id"] = f"msg_fake{self._counter_msg:016x}"
        if not msg.get("model"):
            msg["model"] = self._model_field(api, rec.model)
        msg.setdefault("type", "message")
        msg.setdefault("role", "assistant")
        msg.setdefault("content", [])
        msg.setdefault("stop_sequence", None)
        if msg.get("stop_reason") is None:
            has_tool = any(b.get("type") == "tool_use" for b in msg["content"])
            msg["stop_reason"] = "tool_use" if has_tool else "end_turn"
        usage = msg.get("usage")
        if usage is None or usage == AUTO:
            usage = {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": plan.cache_creation_input_tokens if plan else 0,
                "cache_read_input_tokens": plan.cache_read_input_tokens if plan else 0,
                "output_tokens": response_output_tokens(msg["content"]),
            }
            msg["usage"] = usage
        if plan is not None:
            plan.commit()
        self._account(usage)
        rec.status, rec.outcome, rec.usage = 200, "ok" if source != "fault" else "fault", usage
        payload = to_chat_completion(msg) if api == "openai" else msg
        full_usage = {
            "input_tokens": int(usage.get("input_tokens", 0)),
            "output_tokens": int(usage.get("output_tokens", 0)),
            "cache_read_input_tokens": int(usage.get("cache_read_input_tokens", 0) or 0),
            "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens", 0) or 0),
        }
        return self._success(api, _json_bytes(payload), full_usage)


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
