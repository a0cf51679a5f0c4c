"""FakeModel: the model APIs for tests, in process: scripted, faulty, rate-limited, cached.

It answers the Anthropic Messages API (``POST /v1/messages``), Bedrock InvokeModel
(``POST /model/{model-id}/invoke``, SigV4 checked with botocore), Vertex AI
(``POST /v1/projects/.../models/{model}:rawPredict``, bearer token checked; a Google token
endpoint at ``POST /token``: :mod:`deskpilot.testing.vertex_route`), both token-count
endpoints (:mod:`deskpilot.testing.count_tokens_route`) and OpenAI chat completions
(``POST /v1/chat/completions``, the Model.box gateway shape), with:

- scripted replies (a FIFO queue of Messages API responses, faults or :class:`FakeReply`), or a
  function of the request, or a default short text reply;
- injected faults (500, 529, 429 with or without ``retry-after``, timeouts, disconnects,
  malformed JSON, 400 "prompt is too long", 401, ...), optionally only for matching requests;
- RPM / input-TPM / output-TPM enforcement over a sliding window with real-shaped 429s
  (``retry-after`` and ``anthropic-ratelimit-*`` headers);
- simulated prompt caching (``cache_read_input_tokens`` / ``cache_creation_input_tokens``);
- a record of every request (:class:`RecordedRequest`), arrival times and peak concurrency.

Two ways in: :meth:`FakeModel.handle` takes an :class:`~deskpilot.transport.HTTPRequest` and
returns the :class:`~deskpilot.transport.HTTPResponse` (so ``LLMClient(...,
transport=fake.transport())`` talks to it with no socket), and
:class:`~deskpilot.testing.FakeModelServer` serves the same logic over real HTTP on loopback
(for tests of the real wire, SigV4 over the network, the examples and the demo).

Request checks follow the real services where a client bug would otherwise go unnoticed:
``x-api-key`` (or ``Authorization: Bearer``) and ``anthropic-version`` headers, required body fields, the beta flag each
Anthropic-defined tool type needs (``anthropic-beta`` header, Bedrock body ``anthropic_beta``),
Bedrock's ``anthropic_version: "bedrock-2023-05-31"`` and its refusal of a ``model`` key.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from yarl import URL

from ..errors import TransportError
from ..transport import HTTPRequest, HTTPResponse
from .caching import CachePlan, PromptCache
from .count_tokens_route import is_count_path, serve_count
from .fake_checks import MAX_REQUEST_BYTES, rate_limit_reply, validate
from .fake_replies import ReplyBuilder, Stats, json_http_response
from .limits import RateLimits
from .mock_transport import MockTransport
from .recorded import Disconnect, Hang, Incoming, Outcome, RecordedRequest
from .sigv4 import verify_sigv4
from .tokens import count_request_tokens, response_output_tokens
from .vertex_route import (
    FAKE_VERTEX_PROJECT,
    FAKE_VERTEX_REGION,
    FAKE_VERTEX_TOKEN,
    TOKEN_PATH,
    VERTEX_PATH,
    VertexAuth,
    validate_vertex,
)
from .wire import (
    FakeReply,
    anthropic_error_body,
    fault,
)

logger = logging.getLogger(__name__)

IN_PROCESS_URL = "http://fake-model.invalid"
"""The origin a :class:`FakeModel` without a server answers as (``.invalid`` never resolves,
so a client sent there over the network fails at once)."""

ReplySpec = dict[str, Any] | FakeReply | str | int
Handler = Callable[[RecordedRequest], ReplySpec | Awaitable[ReplySpec | None] | None]


@dataclass(slots=True)
class _Fault:
    reply: FakeReply | str | int | dict[str, Any]
    remaining: int
    when: Callable[[RecordedRequest], bool] | None


class FakeModel(ReplyBuilder):
    """The model APIs in process (see the module docstring).

    Use ``fake.transport()`` (a :class:`~deskpilot.testing.MockTransport` of
    :meth:`handle`) as an ``LLMClient``'s transport, or serve it over HTTP with
    :class:`~deskpilot.testing.FakeModelServer`. ``async with FakeModel(...) as fake:``
    ends hung answers on exit, like the server's ``close()``.

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
        auth_token: the only ``Authorization: Bearer`` token accepted on the Messages API
            in place of an ``x-api-key`` (None: any non-empty token).
        gateway_api_key: the only bearer token accepted on chat completions (None: any).
        window_s: rate-limit window in seconds (60 = per minute).
        cache_min_tokens: shortest cacheable prefix for the prompt-cache simulation.
        record: keep a :class:`RecordedRequest` per request (arrival times are always kept).
        reject_tool_types: tool types answered with the API's 400
            ``'<model>' does not support tool types: <type>.`` (to test step-down).
        vertex_token_expires_in_s: the lifetime of access tokens from ``POST /token``
            (:attr:`vertex`, a :class:`~deskpilot.testing.vertex_route.VertexAuth`, holds
            the accepted tokens and service-account keys).
        default_text: the text of the default reply.
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
        gateway_api_key: str | None = None,
        auth_token: str | None = None,
        window_s: float = 60.0,
        cache_min_tokens: int = 1024,
        record: bool = True,
        reject_tool_types: Iterable[str] = (),
        default_text: str = "Done.",
        vertex_token_expires_in_s: int = 3600,
    ) -> None:
        self.handler = handler
        self.latency_s = float(latency_s)
        self.aws_credentials = aws_credentials
        self.aws_region = aws_region
        self.api_key = api_key
        self.auth_token = auth_token
        self.gateway_api_key = gateway_api_key
        self.window_s = float(window_s)
        self.record = record
        self.reject_tool_types = set(reject_tool_types)
        self.vertex = VertexAuth(expires_in_s=vertex_token_expires_in_s)
        self.default_text = default_text
        self.count_tokens_refused_betas: set[str] = set()
        """Beta flags the count endpoints refuse (``count_tokens_route``)."""
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
        self._stats = Stats()
        self._in_flight = 0
        self._counter = 0
        self._counter_msg = 0
        self._closing: asyncio.Event | None = None
        self._default_text_json = json.dumps(
            [{"type": "text", "text": default_text}], separators=(",", ":")
        )
        self._default_output = response_output_tokens([{"type": "text", "text": default_text}])
        self._model_json: dict[str, str] = {}
        self.url = IN_PROCESS_URL
        if responses:
            self.enqueue(*responses)

    async def __aenter__(self) -> FakeModel:
        self._closing = None
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._wake_hung()

    def transport(self) -> MockTransport:
        """A :class:`~deskpilot.testing.MockTransport` whose handler is :meth:`handle`."""
        return MockTransport(self.handle)

    async def handle(self, request: HTTPRequest) -> HTTPResponse:
        """Answer ``request`` as the real API would (a :class:`MockTransport` handler).

        A ``"timeout"`` fault waits until the caller gives up (the transport's timeout
        cancels it); ``"disconnect"`` raises :class:`~deskpilot.errors.TransportError`.
        """
        url = URL(request.url, encoded=True)
        headers = {k.lower(): v for k, v in request.headers.items()}
        host = url.raw_authority or "fake-model.invalid"
        headers.setdefault("host", host)
        incoming = Incoming(request.method, url.path, url.raw_path_qs, headers, request.body, host)
        outcome = await self.dispatch(incoming)
        if isinstance(outcome, HTTPResponse):
            return outcome
        if isinstance(outcome, Disconnect):
            raise TransportError(f"{host} closed the connection before answering")
        await self._wait_closed()
        return HTTPResponse(503, {"content-type": "text/plain"}, b"server closing")

    async def _wait_closed(self) -> None:
        if self._closing is None:
            self._closing = asyncio.Event()
        await self._closing.wait()

    def _wake_hung(self) -> None:
        """End every hung answer (the server is closing)."""
        if self._closing is not None:
            self._closing.set()

    # --- configuration --------------------------------------------------------------------
    @property
    def gateway_base_url(self) -> str:
        """``OPENAI_BASE_URL`` form: :attr:`url` + ``/v1``."""
        return self.url + "/v1"

    def env(self) -> dict[str, str]:
        """Environment variables that point all three clients at this server, with fake keys.

        ``ANTHROPIC_BASE_URL`` / ``ANTHROPIC_API_KEY``, ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``
        and the AWS credentials the server checks (plus region, and config files set to
        ``/dev/null`` so no profile or instance metadata is consulted), ``OPENAI_BASE_URL`` /
        ``OPENAI_API_KEY``, and Vertex AI's endpoint, region and project (its credentials:
        :meth:`vertex_credentials` or :meth:`write_vertex_credentials`).
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
            "OPENAI_BASE_URL": self.gateway_base_url,
            "OPENAI_API_KEY": self.gateway_api_key or "sk-fake-deskpilot-gateway-key",
            "ANTHROPIC_VERTEX_BASE_URL": self.url + "/v1",
            "CLOUD_ML_REGION": FAKE_VERTEX_REGION,
            "ANTHROPIC_VERTEX_PROJECT_ID": FAKE_VERTEX_PROJECT,
        }

    def vertex_credentials(self) -> Any:
        """Google credentials holding the static token this fake accepts on Vertex AI
        (``google.oauth2.credentials.Credentials``; needs google-auth)."""
        from google.oauth2.credentials import Credentials

        return Credentials(token=FAKE_VERTEX_TOKEN)

    def write_vertex_credentials(self, directory: str | os.PathLike[str]) -> str:
        """Write a service-account JSON whose ``token_uri`` is this server's ``/token`` into
        ``directory``; returns its path (for ``GOOGLE_APPLICATION_CREDENTIALS``)."""
        return str(self.vertex.write_service_account(directory, self.url + TOKEN_PATH))

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
        self._stats = Stats()
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
    async def dispatch(self, request: Incoming) -> Outcome:
        """Count, route and answer one request (both ways in end here; token requests are
        answered without being counted)."""
        if request.method == "POST" and request.path == TOKEN_PATH:
            await asyncio.sleep(self.vertex.token_delay_s)
            status, body = self.vertex.token_reply(request.body)
            return json_http_response(body, status)
        now = time.monotonic()
        self.arrivals.append(now)
        stats = self._stats
        stats.total += 1
        self._in_flight += 1
        if self._in_flight > stats.peak_in_flight:
            stats.peak_in_flight = self._in_flight
        try:
            outcome = await self._route(request, now)
            if isinstance(outcome, HTTPResponse):
                stats.statuses[outcome.status] += 1
            return outcome
        finally:
            self._in_flight -= 1

    async def _route(self, request: Incoming, now: float) -> Outcome:
        path = request.path
        method = request.method
        if method == "POST":
            if path == "/v1/messages":
                return await self._serve(request, "anthropic", now)
            if path == "/v1/chat/completions":
                return await self._serve(request, "gateway", now)
            if path.startswith("/model/") and path.endswith("/invoke"):
                return await self._serve(request, "bedrock", now)
            if is_count_path(path):
                return serve_count(self, request, now)
            if VERTEX_PATH.match(path):
                return await self._serve(request, "vertex", now)
            if path.startswith("/model/") and path.endswith("/invoke-with-response-stream"):
                return self._bedrock_response(
                    400,
                    {"message": "The fake model server does not stream; use /invoke."},
                    {"x-amzn-ErrorType": "ValidationException"},
                )
        return json_http_response(
            anthropic_error_body("not_found_error", f"Not found: {method} {path}"), 404
        )

    async def _serve(self, request: Incoming, api: str, now: float) -> Outcome:
        raw = request.body
        headers = request.headers
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        model: str | None = None
        if api == "bedrock":
            model = unquote(request.raw_path.split("?", 1)[0][len("/model/") : -len("/invoke")])
        elif api == "vertex":
            m = VERTEX_PATH.match(request.path)
            model = m.group("model") if m else None
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
            refused = self._bedrock_auth_failure(request, rec)
            if refused is not None:
                return refused
        if api == "vertex":
            problem = self.vertex.check_bearer(headers) or validate_vertex(
                headers, body, model or "", self.reject_tool_types
            )
        else:
            problem = validate(
                api,
                headers,
                raw,
                body,
                model,
                api_key=self.api_key,
                gateway_api_key=self.gateway_api_key,
                reject_tool_types=self.reject_tool_types,
                auth_token=self.auth_token,
            )
        if problem is not None:
            rec.outcome = "auth" if problem.status in (401, 403) else "invalid"
            return self._error_response(api, rec, problem)
        # 2. rate limits (input tokens excluding cache reads, like the API's ITPM)
        plan: CachePlan | None = None
        if api == "gateway":
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
                return self._error_response(api, rec, rate_limit_reply(admission, self.limits))

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
            return Hang()
        if reply.disconnect:
            rec.outcome = "disconnect"
            return Disconnect()
        if reply.status == 200 and isinstance(reply.body, dict):
            resp = self._message_reply(api, rec, reply.body, plan, input_tokens, source)
            if reply.headers:
                resp = HTTPResponse(resp.status, {**resp.headers, **reply.headers}, resp.body)
            return Hang(resp) if reply.stall_body else resp
        rec.outcome = "fault" if source == "fault" else source
        return self._error_response(api, rec, reply)

    # --- checks ---------------------------------------------------------------------------
    def _bedrock_auth_failure(self, request: Incoming, rec: RecordedRequest) -> Any:
        """Bedrock's error answer when ``request``'s SigV4 signature does not verify (``rec``
        marked ``auth``), else None (also when the fake checks no credentials)."""
        if self.aws_credentials is None:
            return None
        akid, secret = self.aws_credentials
        host = request.headers.get("host", request.host)
        failure = verify_sigv4(
            method=request.method,
            url=f"http://{host}{request.raw_path}",
            headers=request.headers,
            body=request.body,
            access_key=akid,
            secret_key=secret,
            region=self.aws_region,
        )
        if failure is None:
            return None
        rec.status, rec.outcome, rec.error_type = failure.status, "auth", failure.error_type
        return self._bedrock_response(
            failure.status,
            {"message": failure.message},
            {
                "x-amzn-ErrorType": f"{failure.error_type}:http://internal.amazon.com/coral/"
                "com.amazon.bedrock/"
            },
        )

    def _take_fault(self, rec: RecordedRequest) -> FakeReply | dict[str, Any] | None:
        for i, f in enumerate(self._faults):
            if f.when is not None and not f.when(rec):
                continue
            f.remaining -= 1
            if f.remaining <= 0:
                del self._faults[i]
            return f.reply if isinstance(f.reply, dict) else fault(f.reply)
        return None


__all__ = [
    "IN_PROCESS_URL",
    "MAX_REQUEST_BYTES",
    "Disconnect",
    "FakeModel",
    "Handler",
    "Hang",
    "Incoming",
    "Outcome",
    "RecordedRequest",
    "ReplySpec",
]
