"""LLMClient: order, retries, step-down, never-raise, providers, secrets, lifecycle.

Behaviour is tested in process through a MockTransport (``wire``); the tests that prove the
real wire (headers and bodies as aiohttp sends them, SigV4 over the network, socket
timeouts, the session's lifecycle across event loops, URL routing) use a tiny real aiohttp
server on loopback (``server``)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from deskpilot import Conversation, LLMClient, Message, Tool, ToolResult
from deskpilot.computer_use.specs import computer_definition
from deskpilot.errors import ClosedError, ConfigError
from deskpilot.testing import MockTransport
from deskpilot.transport import HTTPRequest, HTTPResponse

PNG_1x1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
API_KEY = "sk-ant-SECRET-KEY-0123456789"
AWS_SECRET = "AWS-SECRET-abcdefghijklmnop"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; bytes/str sent raw; None -> default echo reply
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Rec:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    at: float


def _last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages", [])):
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c
        for b in reversed(c):
            if b.get("type") == "text":
                return b["text"]
    return ""


def messages_reply(text: str, **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage.get("input_tokens", 10), "output_tokens": 3},
    }


def error_body(etype: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": etype, "message": message}}


class Wire:
    """Records every request and answers it by ``behaviour`` (or an echo of the prompt)."""

    def __init__(self) -> None:
        self.requests: list[Rec] = []
        self.behaviour: Callable[[Rec], Reply | None] | None = None
        self.in_flight = 0
        self.peak = 0
        self.url = ""

    async def answer(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        rec = Rec(path, headers, body, raw, time.monotonic())
        self.requests.append(rec)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            reply = (self.behaviour(rec) if self.behaviour else None) or Reply()
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            payload = reply.body
            if payload is None:
                text = f"echo: {_last_user_text(body)}"
                if path.endswith("/chat/completions"):
                    payload = {
                        "id": "chatcmpl-1",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 3},
                    }
                else:
                    payload = messages_reply(text)
            data = (
                json.dumps(payload).encode()
                if isinstance(payload, dict)
                else (payload.encode() if isinstance(payload, str) else payload)
            )
            out = {"content-type": "application/json", "request-id": "req_123"}
            out.update(reply.headers)
            return reply.status, out, data
        finally:
            self.in_flight -= 1

    def env(self) -> dict[str, str]:
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": API_KEY,
            "OPENAI_BASE_URL": self.url + "/v1",
            "OPENAI_API_KEY": "sk-gateway-SECRET",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url,
            "AWS_REGION": "us-west-2",
        }

    def client_settings(self) -> dict[str, Any]:
        return {"environ": self.env()}


class MockWire(Wire):
    """In process, through a MockTransport: what the client would send, no socket."""

    def __init__(self) -> None:
        super().__init__()
        self.url = "http://api.test"

    async def handle(self, request: HTTPRequest) -> HTTPResponse:
        path = URL(request.url, encoded=True).raw_path
        status, headers, data = await self.answer(path, dict(request.headers), request.body)
        return HTTPResponse(status, headers, data)

    def client_settings(self) -> dict[str, Any]:
        return {"environ": self.env(), "transport": MockTransport(self.handle)}


class TinyServer(Wire):
    """A real HTTP server on loopback, for the tests that prove the real wire."""

    def __init__(self) -> None:
        super().__init__()
        self._runner: web.ServerRunner | None = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.read()
        status, headers, data = await self.answer(request.raw_path, dict(request.headers), raw)
        return web.Response(status=status, body=data, headers=headers)

    async def start(self) -> TinyServer:
        self._runner = web.ServerRunner(web.Server(self._handle), shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server():
    s = await TinyServer().start()
    yield s
    await s.close()


@pytest.fixture
def wire() -> MockWire:
    return MockWire()


def client_for(server: Wire, model: str = "claude-4-sonnet", **kw: Any) -> LLMClient:
    kw.setdefault("retry_base_s", 0.01)
    kw.setdefault("retry_cap_s", 0.05)
    kw.setdefault("max_concurrent_requests", 8)
    return LLMClient(model, **server.client_settings(), **kw)


# --- order and basics ----------------------------------------------------------------------


async def test_results_in_input_order_with_mixed_latency(wire: MockWire) -> None:
    wire.behaviour = lambda r: Reply(delay_s=(hash(_last_user_text(r.body)) % 7) / 500)
    async with client_for(wire, max_requests_per_minute=100_000) as client:
        prompts = [f"prompt {i}" for i in range(40)]
        results = await client.process_prompts_async(prompts, show_progress=False)
    assert [r.completion for r in results] == [f"echo: prompt {i}" for i in range(40)]
    assert all(r.status_code == 200 and r.attempts == 1 for r in results)
    assert wire.peak <= 8
    r = results[0]
    assert r.request_id == "req_123" and r.model == "claude-4-sonnet"
    assert r.model_id == "claude-sonnet-4-20250514" and r.provider == "anthropic"
    assert r.cost == pytest.approx((10 * 3.0 + 3 * 15.0) / 1e6)
    assert r.latency_s > 0


async def test_request_headers_and_body_on_anthropic(server: TinyServer) -> None:
    async with client_for(server) as client:
        conv = Conversation().system("be brief").user("Take a screenshot")
        await client.process_prompts_async(
            [conv], computer_use=True, display_width=1920, display_height=1080, show_progress=False
        )
    (rec,) = server.requests
    assert rec.path == "/v1/messages"
    assert rec.headers["x-api-key"] == API_KEY
    assert rec.headers["anthropic-version"] == "2023-06-01"
    assert rec.headers["anthropic-beta"] == "computer-use-2025-01-24"
    assert rec.body["model"] == "claude-sonnet-4-20250514"
    assert rec.body["system"] == "be brief"
    assert [t["type"] for t in rec.body["tools"]] == [
        "computer_20250124",
        "text_editor_20250429",
        "bash_20250124",
    ]
    assert rec.body["tools"][0]["display_width_px"] == 1920
    assert rec.body["tools"][0]["display_height_px"] == 1080


async def test_seed_multi_turn_flow_serialises_tool_result_images(wire: MockWire) -> None:
    tool_use = {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [
            {"type": "text", "text": "Taking one."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "computer",
                "input": {"action": "screenshot"},
            },
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 5},
    }
    replies = iter([Reply(body=tool_use), Reply()])
    wire.behaviour = lambda r: next(replies)
    async with client_for(wire) as client:
        conv = Conversation().user("Open a text editor")
        (resp,) = await client.process_prompts_async([conv], computer_use=True, show_progress=False)
        assert resp.stop_reason == "tool_use"
        (call,) = resp.content.tool_calls
        assert call.arguments == {"action": "screenshot"}
        conv.messages.append(resp.content)
        result = [
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG_1x1},
            }
        ]
        conv.messages.append(Message("user", [ToolResult(call.id, result)]))
        (resp2,) = await client.process_prompts_async(
            [conv], computer_use=True, cache="last_3_user_messages", show_progress=False
        )
    assert not resp2.is_error
    msgs = wire.requests[1].body["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    block = msgs[2]["content"][0]
    assert block["type"] == "tool_result" and block["tool_use_id"] == "toolu_1"
    assert block["content"][0]["source"]["data"] == PNG_1x1
    assert block["cache_control"] == {"type": "ephemeral"}
    # the caller's conversation was not touched by caching
    assert "cache_control" not in conv.messages[2].parts[0].to_anthropic()


async def test_custom_tool_goes_after_computer_tools(wire: MockWire) -> None:
    def get_weather(location: str) -> str:
        """Get weather for a location."""
        return f"The weather in {location} is sunny"

    async with client_for(wire) as client:
        await client.process_prompts_async(
            ["hi"],
            computer_use=True,
            tools=[Tool.from_function(get_weather)],
            cache="tools_only",
            show_progress=False,
        )
    tools = wire.requests[0].body["tools"]
    assert [t.get("name") for t in tools] == [
        "computer",
        "str_replace_based_edit_tool",
        "bash",
        "get_weather",
    ]
    assert tools[-1]["cache_control"] == {"type": "ephemeral"}
    assert sum("cache_control" in t for t in tools) == 1


# --- retries and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,etype,message,attempts",
    [
        (500, "api_error", "Internal server error", 3),
        (529, "overloaded_error", "Overloaded", 3),
        (429, "rate_limit_error", "Too many requests", 3),
        (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", 1),
        (401, "authentication_error", "invalid x-api-key", 1),
        (403, "permission_error", "not allowed", 1),
        (404, "not_found_error", "model: nope", 1),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes", 1),
    ],
)
async def test_retry_classification(
    wire: MockWire, status: int, etype: str, message: str, attempts: int
) -> None:
    wire.behaviour = lambda r: Reply(status, error_body(etype, message))
    async with client_for(wire, max_attempts=3) as client:
        (resp,) = await client.process_prompts_async(["x"], show_progress=False)
    assert resp.is_error and resp.status_code == status and resp.error_type == etype
    assert resp.attempts == attempts == len(wire.requests)
    assert message in resp.error_message and resp.error_message.endswith(".")
    assert resp.content is None and resp.completion is None
    assert resp.request_id == "req_123"


async def test_backoff_between_attempts_then_success(wire: MockWire) -> None:
    count = {"n": 0}

    def behaviour(r: Rec) -> Reply | None:
        count["n"] += 1
        return Reply(500, error_body("api_error", "boom")) if count["n"] <= 2 else None

    wire.behaviour = behaviour
    async with client_for(wire, retry_base_s=0.05, retry_cap_s=0.2) as client:
        (resp,) = await client.process_prompts_async(["x"], show_progress=False)
    assert not resp.is_error and resp.attempts == 3
    gaps = [b.at - a.at for a, b in zip(wire.requests, wire.requests[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # base, then 2x base (jitter only adds)


async def test_retry_after_ms_is_honoured(wire: MockWire) -> None:
    count = {"n": 0}

    def behaviour(r: Rec) -> Reply | None:
        count["n"] += 1
        if count["n"] == 1:
            return Reply(
                429, error_body("rate_limit_error", "slow down"), {"retry-after-ms": "250"}
            )
        return None

    wire.behaviour = behaviour
    async with client_for(wire) as client:
        (resp,) = await client.process_prompts_async(["x"], show_progress=False)
    assert not resp.is_error and resp.attempts == 2
    assert wire.requests[1].at - wire.requests[0].at >= 0.25


async def test_timeout_is_retried_then_reported(server: TinyServer) -> None:
    server.behaviour = lambda r: Reply(delay_s=1.0)
    async with client_for(server, max_attempts=2, request_timeout=0.15) as client:
        (resp,) = await client.process_prompts_async(["x"], show_progress=False)
    assert resp.is_error and resp.error_type == "timeout" and resp.status_code is None
    assert resp.attempts == 2 == len(server.requests)
    assert "request_timeout" in resp.error_message


async def test_malformed_json_is_retried(wire: MockWire) -> None:
    wire.behaviour = lambda r: Reply(200, b"{not json")
    async with client_for(wire, max_attempts=2) as client:
        (resp,) = await client.process_prompts_async(["x"], show_progress=False)
    assert resp.is_error and resp.error_type == "malformed_response" and resp.attempts == 2


async def test_connection_error_becomes_error_response() -> None:
    env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "k"}
    async with LLMClient(
        "claude-4-sonnet", environ=env, max_attempts=2, retry_base_s=0.01, retry_cap_s=0.02
    ) as client:
        (resp,) = await client.process_prompts_async(["x"], show_progress=False)
    assert resp.is_error and resp.error_type == "connection_error" and resp.attempts == 2


async def test_401_does_not_blocklist_the_model(wire: MockWire) -> None:
    wire.behaviour = lambda r: Reply(401, error_body("authentication_error", "invalid x-api-key"))
    async with client_for(wire) as client:
        first = await client.process_prompts_async(["a", "b"], show_progress=False)
        assert all(r.is_error and r.status_code == 401 for r in first)
        wire.behaviour = None
        second = await client.process_prompts_async(["c"], show_progress=False)
    assert second[0].completion == "echo: c"


async def test_rate_limit_headers_pause_the_limiter(wire: MockWire) -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    wire.behaviour = lambda r: Reply(
        headers={
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset,
        }
    )
    async with client_for(wire) as client:
        await client.process_prompts_async(["x"], show_progress=False)
        assert client.limiter.paused_until - time.monotonic() > 25


# --- step-down ---------------------------------------------------------------------------------


def _reject(tool_type: str, model: str) -> Callable[[Rec], Reply | None]:
    def behaviour(r: Rec) -> Reply | None:
        types = [t.get("type") for t in r.body.get("tools", [])]
        if tool_type in types:
            msg = f"'{model}' does not support tool types: {tool_type}."
            return Reply(400, error_body("invalid_request_error", msg))
        return None

    return behaviour


async def test_step_down_on_400_and_remember(wire: MockWire) -> None:
    wire.behaviour = _reject("computer_toolset_20260801", "claude-sonnet-5-5")
    async with client_for(wire, "claude-5.5-sonnet", max_attempts=1) as client:
        (resp,) = await client.process_prompts_async(["x"], computer_use=True, show_progress=False)
        assert not resp.is_error and resp.attempts == 2
        assert resp.computer_tool_type == "computer_20251124"
        sent = wire.requests[1].body["tools"][0]
        assert sent["type"] == "computer_20251124" and sent["display_width_px"] == 1024
        assert wire.requests[1].headers["anthropic-beta"] == "computer-use-2025-11-24"
        assert "anthropic-beta" not in wire.requests[0].headers  # the toolset is GA
        assert client.unsupported_tool_types() == {"computer_toolset_20260801"}
        (again,) = await client.process_prompts_async(["y"], computer_use=True, show_progress=False)
    assert again.attempts == 1 and len(wire.requests) == 3
    assert again.computer_tool_type == "computer_20251124"


async def test_raw_tool_dicts_are_never_rewritten_the_rejection_is_reported(
    wire: MockWire,
) -> None:
    # issue 11: the client used to replace the caller's computer dict behind its back
    wire.behaviour = _reject("computer_toolset_20260801", "claude-opus-4-8")
    raw = computer_definition("computer_toolset_20260801", 1280, 800)
    bash = {"type": "bash_20250124", "name": "bash"}
    async with client_for(wire, "claude-4.8-opus") as client:
        resp = await client.start("x", tools=[raw, bash], display_width=1280, display_height=800)
        assert client.unsupported_tool_types() == {"computer_toolset_20260801"}
    assert resp.is_error and resp.status_code == 400 and resp.attempts == 1
    assert resp.rejected_tool_types == ("computer_toolset_20260801",)
    assert resp.tool_types == ("computer_toolset_20260801", "bash_20250124")
    assert len(wire.requests) == 1
    assert wire.requests[0].body["tools"] == [raw, bash]
    assert raw == {"type": "computer_toolset_20260801"}  # caller's dict untouched


async def test_unrelated_400_does_not_step_down(wire: MockWire) -> None:
    wire.behaviour = lambda r: Reply(400, error_body("invalid_request_error", "bad thing"))
    async with client_for(wire, "claude-4.7-opus") as client:
        resp = await client.start("x", computer_use=True)
    assert resp.is_error and resp.attempts == 1
    assert resp.computer_tool_type == "computer_20251124"


# --- other platforms ---------------------------------------------------------------------------


async def test_bedrock_request_is_signed_and_shaped(server: TinyServer) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = Credentials("AKIDTEST", AWS_SECRET)
    async with client_for(server, "claude-3.7-sonnet-bedrock", aws_credentials=creds) as client:
        (resp,) = await client.process_prompts_async(
            ["Take a screenshot"], computer_use=True, cache="tools_only", show_progress=False
        )
    assert not resp.is_error and resp.provider == "bedrock"
    (rec,) = server.requests
    assert rec.path == "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/invoke"
    assert "model" not in rec.body
    assert rec.body["anthropic_version"] == "bedrock-2023-05-31"
    assert rec.body["anthropic_beta"] == ["computer-use-2025-01-24"]
    assert rec.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "anthropic-beta" not in rec.headers
    # verify the signature by recomputing it with botocore over what the server received
    auth = rec.headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    assert "/us-west-2/bedrock/aws4_request" in auth
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    req = AWSRequest(
        method="POST",
        url=server.url + rec.path,
        data=rec.raw,
        headers={k: v for k, v in rec.headers.items() if k.lower() in signed},
    )
    req.context["timestamp"] = rec.headers["X-Amz-Date"]
    signer = SigV4Auth(creds, "bedrock", "us-west-2")
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    assert auth.endswith(f"Signature={expected}")


async def test_gateway_body_and_tool_call_parsing(server: TinyServer) -> None:
    server.behaviour = lambda r: Reply(
        body={
            "id": "gen-1",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {
                                    "name": "computer",
                                    "arguments": '{"action": "screenshot"}',
                                },
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20},
        }
    )
    async with client_for(server, "anthropic/claude-3-5-sonnet-20241022") as client:
        (resp,) = await client.process_prompts_async(
            ["Save a picture of a cat to my desktop."],
            computer_use=True,
            cache="tools_only",
            show_progress=False,
        )
    assert not resp.is_error and resp.provider == "gateway" and resp.stop_reason == "tool_use"
    (call,) = resp.content.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "computer", {"action": "screenshot"})
    assert resp.usage.input_tokens == 100 and resp.usage.output_tokens == 20
    (rec,) = server.requests
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["Authorization"] == "Bearer sk-gateway-SECRET"
    assert rec.body["model"] == "anthropic/claude-3-5-sonnet-20241022"
    assert rec.body["tool_choice"] == "auto"
    assert rec.body["tools"] == [
        {
            "type": "computer_20241022",
            "name": "computer",
            "display_width_px": 1024,
            "display_height_px": 768,
        },
        {"type": "text_editor_20241022", "name": "str_replace_editor"},
        {"type": "bash_20241022", "name": "bash"},
    ]  # verbatim, no cache_control on gateways
    assert rec.body["messages"] == [
        {"role": "user", "content": "Save a picture of a cat to my desktop."}
    ]


# --- options, lifecycle, secrets -----------------------------------------------------------------


async def test_system_max_tokens_and_thinking_options(wire: MockWire) -> None:
    async with client_for(wire) as client:
        await client.start(
            Conversation().system("old").user("x"),
            system="new system",
            max_tokens=4096,
            thinking={"type": "enabled", "budget_tokens": 2048},
            cache=["system_and_tools", "last_3_user_messages"],
            computer_use=True,
        )
    body = wire.requests[0].body
    assert body["system"] == [
        {"type": "text", "text": "new system", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["max_tokens"] == 4096
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}


async def test_bad_arguments_raise_at_call_time_and_send_nothing(wire: MockWire) -> None:
    async with client_for(wire) as client:
        with pytest.raises(ConfigError):
            await client.process_prompts_async(["x"], cache="everything", show_progress=False)
        with pytest.raises(ConfigError):
            await client.process_prompts_async(["x"], tools=[42], show_progress=False)
        with pytest.raises(ConfigError):
            await client.process_prompts_async([1, 2], show_progress=False)
        with pytest.raises(ValueError):  # ConfigError is a ValueError
            await client.start("x", display_width=0)
        with pytest.raises(TypeError, match=r"'computr_use'.*computer_use"):
            await client.start("x", computr_use=True)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="process_prompts_async"):
            await client.process_prompts_async(["x"], show_progres=False)  # type: ignore[call-arg]
    assert wire.requests == []


async def test_closed_client_raises(wire: MockWire) -> None:
    client = client_for(wire)
    await client.start("x")
    await client.close()
    with pytest.raises(ClosedError):
        await client.start("x")
    with pytest.raises(ClosedError):
        await client.process_prompts_async(["x"], show_progress=False)


async def test_progress_bar_only_when_asked(wire: MockWire, capsys) -> None:
    async with client_for(wire) as client:
        await client.process_prompts_async(["a", "b"], show_progress=False)
        out = capsys.readouterr()
        assert out.out == "" and out.err == ""
        await client.process_prompts_async(["a", "b"], show_progress=True)
        out = capsys.readouterr()
    assert out.out == "" and "2/2" in out.err


async def test_no_secret_in_reprs_logs_or_errors(wire: MockWire, caplog) -> None:
    from botocore.credentials import Credentials

    caplog.set_level(logging.DEBUG)
    wire.behaviour = lambda r: Reply(401, error_body("authentication_error", "invalid x-api-key"))
    client = client_for(wire, max_attempts=2)
    bedrock = client_for(
        wire, "claude-4-sonnet-bedrock", aws_credentials=Credentials("AKIDX", AWS_SECRET)
    )
    texts = [repr(client), repr(client.config), repr(bedrock), repr(bedrock.config)]
    for c in (client, bedrock):
        async with c:
            rs = await c.process_prompts_async(["x"], show_progress=False)
            texts += [repr(r) for r in rs] + [r.error_message or "" for r in rs]
    wire.behaviour = lambda r: Reply(500, error_body("api_error", "boom"))
    async with client_for(wire, max_attempts=2) as c3:
        rs = await c3.process_prompts_async(["y"], show_progress=False)
        texts += [repr(rs[0]), rs[0].error_message or "", repr(c3._providers)]
    texts.append(caplog.text)
    blob = "\n".join(texts)
    assert "authentication_error" in blob and "boom" in blob  # we did capture real text
    assert API_KEY not in blob and AWS_SECRET not in blob


def test_process_prompts_sync_runs_its_own_loop() -> None:
    server = TinyServer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        client = client_for(server)
        first = client.process_prompts_sync(["one", "two"], show_progress=False)
        second = client.process_prompts_sync("three", show_progress=False)
        assert [r.completion for r in first] == ["echo: one", "echo: two"]
        assert [r.completion for r in second] == ["echo: three"]
        assert client.process_prompts_sync(
            ["z"], show_progress=False, return_completions_only=True
        ) == ["echo: z"]
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_several_models_round_robin_and_model_spec(wire: MockWire) -> None:
    async with client_for(wire, ["claude-4-sonnet", "claude-4.5-haiku"]) as client:
        rs = await client.process_prompts_async(["a", "b", "c", "d"], show_progress=False)
        assert {r.model for r in rs} == {"claude-4-sonnet", "claude-4.5-haiku"}
        assert client.provider == "anthropic"
        assert client.model_spec().name == "claude-4-sonnet"
        assert client.model_spec("claude-4.5-haiku").generation("anthropic") == "20250728"


async def test_prompts_are_fed_as_capacity_frees_not_as_tasks_up_front(wire: MockWire) -> None:
    client = client_for(wire, max_requests_per_minute=60, max_concurrent_requests=16)
    before = len(asyncio.all_tasks())
    run = asyncio.create_task(
        client.process_prompts_async([f"p{i}" for i in range(20_000)], show_progress=False)
    )
    for _ in range(50):
        await asyncio.sleep(0.01)
        if wire.requests:
            break
    await asyncio.sleep(0.05)
    assert len(wire.requests) == 1  # burst of one request at RPM 60 (1 s of quota)
    assert len(asyncio.all_tasks()) - before <= 16 + 2  # one worker per concurrency slot
    assert client.limiter.waiting <= 16
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert client.limiter.in_flight == 0
    await client.close()


async def test_model_spec_and_base_url_overrides_without_global_state(server: TinyServer) -> None:
    from deskpilot.models import REGISTRY, ModelSpec

    spec = ModelSpec(
        name="my-claude",
        model_id="claude-custom-1",
        generations={"anthropic": "20250728"},
        base_url=server.url,
    )
    env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "k"}
    async with LLMClient(spec, environ=env) as client:
        resp = await client.start("x", computer_use=True)
    assert not resp.is_error and resp.model == "my-claude"
    assert server.requests[-1].body["model"] == "claude-custom-1"
    assert server.requests[-1].body["tools"][1]["type"] == "text_editor_20250728"
    async with LLMClient("claude-4-sonnet", base_url=server.url, api_key="k2", environ={}) as c2:
        resp2 = await c2.start("y")
    assert not resp2.is_error and server.requests[-1].headers["x-api-key"] == "k2"
    assert "my-claude" not in REGISTRY


def test_provider_override_and_gateway_needs_a_base_url() -> None:
    c = LLMClient("claude-4-sonnet", provider="bedrock", environ={"AWS_REGION": "eu-central-1"})
    assert c.provider == "bedrock" and c.model_spec().model_id.startswith("us.anthropic.")
    assert c.model_spec().generation(c.provider) == "20250429"
    with pytest.raises(ConfigError):
        LLMClient("anthropic/claude-3-5-sonnet-20241022", environ={})
    with pytest.raises(ConfigError):
        LLMClient("claude-4-sonnet", max_requests_per_minute=0)
    with pytest.raises(ConfigError):
        LLMClient("claude-4-sonnet", no_such_setting=1)


async def test_rejected_requests_refund_their_token_reservation(wire: MockWire) -> None:
    calls = {"n": 0}

    def behaviour(r: Rec) -> Reply | None:
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(400, error_body("invalid_request_error", "prompt is too long"))
        return None

    wire.behaviour = behaviour
    big = "x" * 6000  # ~1,700 estimated tokens; two do not fit in 2,000 per minute
    async with client_for(wire, max_tokens_per_minute=2000, burst_s=60.0) as client:
        first = await client.start(big)
        assert first.is_error and first.status_code == 400
        second = await asyncio.wait_for(client.start(big), timeout=5)  # not held for 60 s
    assert not second.is_error


async def test_odd_answer_shapes_never_leak_a_concurrency_slot(wire: MockWire) -> None:
    shapes = iter([Reply(200, {"content": [1, 2]}), Reply(200, "[]"), Reply(503, b"\xff\xfe")])
    wire.behaviour = lambda r: next(shapes, None)
    async with client_for(wire, max_concurrent_requests=1, max_attempts=1) as client:
        odd = [await asyncio.wait_for(client.start("x"), timeout=5) for _ in range(3)]
        ok = await asyncio.wait_for(client.start("y"), timeout=5)
        assert client.limiter.in_flight == 0
    assert [r.error_type for r in odd] == ["malformed_response", "malformed_response", "api_error"]
    assert ok.completion == "echo: y"


async def test_bodies_over_one_mebibyte_are_sent_without_warnings() -> None:
    # Screenshot-heavy agent requests exceed 1 MiB; aiohttp warns (ResourceWarning, an error
    # under this suite's filterwarnings) when such a body is passed as raw bytes.
    import os
    import warnings

    from deskpilot.prompt import Image
    from deskpilot.testing import FakeModelServer, text_response

    noise = os.urandom(1_600_000)  # incompressible, so the PNG stays large
    from PIL import Image as PILImage

    img = PILImage.frombytes("RGB", (800, 666), noise[: 800 * 666 * 3])
    async with FakeModelServer() as server:
        server.enqueue(text_response("seen"))
        async with LLMClient(
            "claude-4-sonnet", base_url=server.url, api_key="sk-ant-x", max_attempts=1
        ) as client:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                conv = Conversation().user("what is this?", image=Image(img))
                resp = await client.start(conv)
        assert not resp.is_error, resp.error_message
        assert len(server.requests[0].raw_body) > 1 << 20
