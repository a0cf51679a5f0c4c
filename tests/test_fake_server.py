"""Tests of deskpilot.testing: the fake model server, spoken to with plain aiohttp and botocore."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import urllib.request
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from yarl import URL

from deskpilot.computer_use.specs import (
    bash_definition,
    computer_definition,
    editor_definition,
)
from deskpilot.testing import (
    PROMPT_TOO_LONG,
    FakeModelServer,
    FakeReply,
    PromptCache,
    count_request_tokens,
    error_reply,
    image_tokens,
    load_script,
    message_response,
    text_response,
    tool_use_response,
)
from deskpilot.testing.limits import RateLimits, SlidingWindow
from deskpilot.testing.tokens import image_size_from_bytes

ANTHROPIC_HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
AKID, SECRET = "AKIDTESTFAKE", "test-secret-key"
BEDROCK_MODEL = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"


def body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
    }
    b.update(extra)
    return b


def png_b64(w: int, h: int) -> str:
    buf = io.BytesIO()
    PILImage.new("RGB", (w, h), (10, 20, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def computer_tools(w: int = 1024, h: int = 768) -> list[dict[str, Any]]:
    return [
        computer_definition("computer_20250124", w, h),
        editor_definition("text_editor_20250429"),
        bash_definition("bash_20250124"),
    ]


async def post_messages(
    session: aiohttp.ClientSession, server: FakeModelServer, payload: Any, headers: Any = None
) -> tuple[int, dict[str, str], Any]:
    async with session.post(
        server.url + "/v1/messages",
        json=payload,
        headers=ANTHROPIC_HEADERS if headers is None else headers,
    ) as r:
        text = await r.text()
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        return r.status, {k.lower(): v for k, v in r.headers.items()}, data


def signed_bedrock(
    url: str,
    payload: dict[str, Any],
    *,
    akid: str = AKID,
    secret: str = SECRET,
    region: str = "us-east-1",
) -> tuple[bytes, dict[str, str]]:
    data = json.dumps(payload).encode()
    req = AWSRequest(
        method="POST", url=url, data=data, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(akid, secret), "bedrock", region).add_auth(req)
    return data, dict(req.headers.items())


def bedrock_url(server: FakeModelServer, model: str = BEDROCK_MODEL) -> str:
    return f"{server.url}/model/{quote(model, safe='')}/invoke"


def bedrock_body(**extra: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "hi"}],
    }
    b.update(extra)
    return b


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


# --- Messages API ------------------------------------------------------------------------


async def test_scripted_responses_served_in_order_then_default(session):
    async with FakeModelServer(
        [
            tool_use_response("computer", {"action": "screenshot"}, id="toolu_1"),
            text_response("second"),
        ]
    ) as server:
        s1, h1, r1 = await post_messages(session, server, body("a"))
        s2, _, r2 = await post_messages(session, server, body("b"))
        s3, _, r3 = await post_messages(session, server, body("c"))
    assert (s1, s2, s3) == (200, 200, 200)
    assert r1["type"] == "message" and r1["role"] == "assistant"
    assert r1["id"].startswith("msg_") and r1["model"] == "claude-sonnet-4-20250514"
    assert r1["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "computer", "input": {"action": "screenshot"}}
    ]
    assert r1["stop_reason"] == "tool_use" and r1["stop_sequence"] is None
    assert set(r1["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    }
    assert h1["request-id"].startswith("req_")
    assert r2["content"][0]["text"] == "second" and r2["stop_reason"] == "end_turn"
    assert r3["content"][0]["text"] == "Done."  # the default reply
    assert [r.prompt_text for r in server.requests] == ["a", "b", "c"]
    assert server.requests[0].headers["x-api-key"] == "sk-test"


async def test_default_usage_counts_request_tokens(session):
    long_text = "x" * 4000
    async with FakeModelServer() as server:
        _, _, r = await post_messages(session, server, body(long_text))
    assert r["usage"]["input_tokens"] == 1000 == count_request_tokens(body(long_text))
    assert r["usage"]["output_tokens"] >= 1
    assert server.stats()["usage"]["input_tokens"] == 1000


async def test_explicit_usage_is_kept_verbatim(session):
    usage = {"input_tokens": 7, "output_tokens": 3}
    async with FakeModelServer([text_response("hi", **usage)]) as server:
        _, _, r = await post_messages(session, server, body("x" * 400))
    assert r["usage"]["input_tokens"] == 7 and r["usage"]["output_tokens"] == 3
    assert r["usage"]["cache_read_input_tokens"] == 0


async def test_authentication_and_version_checks(session):
    async with FakeModelServer(api_key="sk-right") as server:
        s1, _, r1 = await post_messages(
            session, server, body(), {"anthropic-version": "2023-06-01"}
        )
        s2, _, r2 = await post_messages(
            session, server, body(), {"x-api-key": "sk-wrong", "anthropic-version": "2023-06-01"}
        )
        s3, _, r3 = await post_messages(session, server, body(), {"x-api-key": "sk-right"})
        s4, _, _ = await post_messages(
            session, server, body(), {"x-api-key": "sk-right", "anthropic-version": "2023-06-01"}
        )
    assert s1 == 401 and r1["error"]["type"] == "authentication_error"
    assert "x-api-key" in r1["error"]["message"]
    assert s2 == 401 and r2 == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": r2["request_id"],
    }
    assert s3 == 400 and "anthropic-version" in r3["error"]["message"]
    assert s4 == 200
    assert [r.outcome for r in server.requests] == ["auth", "auth", "invalid", "ok"]


async def test_missing_fields_and_bad_json_are_400(session):
    async with FakeModelServer() as server:
        s1, _, r1 = await post_messages(
            session, server, {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        )
        async with session.post(
            server.url + "/v1/messages", data=b"{not json", headers=ANTHROPIC_HEADERS
        ) as r:
            s2, r2 = r.status, await r.json()
        async with session.post(server.url + "/v1/nope", json={}) as r:
            s3 = r.status
    assert s1 == 400 and r1["error"]["message"] == "max_tokens: Field required"
    assert s2 == 400 and r2["error"]["type"] == "invalid_request_error"
    assert s3 == 404


async def test_computer_tool_needs_its_beta_flag(session):
    tools = computer_tools()
    async with FakeModelServer() as server:
        s1, _, r1 = await post_messages(session, server, body(tools=tools))
        s2, _, _ = await post_messages(
            session,
            server,
            body(tools=tools),
            {**ANTHROPIC_HEADERS, "anthropic-beta": "computer-use-2025-01-24"},
        )
    assert s1 == 400 and "computer-use-2025-01-24" in r1["error"]["message"]
    assert s2 == 200
    rec = server.requests[1]
    assert rec.betas == ["computer-use-2025-01-24"]
    assert rec.tool_types == ["computer_20250124", "text_editor_20250429", "bash_20250124"]


async def test_reject_tool_types_answers_the_api_400(session):
    tools = [computer_definition("computer_20251124", 1280, 800)]
    headers = {**ANTHROPIC_HEADERS, "anthropic-beta": "computer-use-2025-11-24"}
    async with FakeModelServer(reject_tool_types={"computer_20251124"}) as server:
        s, _, r = await post_messages(session, server, body(tools=tools), headers)
    assert s == 400
    assert r["error"]["message"] == (
        "'claude-sonnet-4-20250514' does not support tool types: computer_20251124."
    )


async def test_handler_sync_and_async(session):
    def sync_handler(req):
        return text_response(f"echo {req.prompt_text}")

    async def async_handler(req):
        await asyncio.sleep(0)
        return 529 if req.prompt_text == "boom" else None

    async with FakeModelServer(handler=sync_handler) as server:
        _, _, r = await post_messages(session, server, body("ping"))
    assert r["content"][0]["text"] == "echo ping"
    async with FakeModelServer(handler=async_handler) as server:
        s1, _, r1 = await post_messages(session, server, body("boom"))
        s2, _, r2 = await post_messages(session, server, body("fine"))
    assert s1 == 529 and r1["error"]["type"] == "overloaded_error"
    assert s2 == 200 and r2["content"][0]["text"] == "Done."


async def test_count_tokens_endpoint(session):
    count_body = {k: v for k, v in body("y" * 40).items() if k != "max_tokens"}
    async with FakeModelServer() as server:
        async with session.post(
            server.url + "/v1/messages/count_tokens", json=count_body, headers=ANTHROPIC_HEADERS
        ) as r:
            assert r.status == 200
            assert await r.json() == {"input_tokens": 10}
        # the endpoint takes no max_tokens (nor any sampling key)
        async with session.post(
            server.url + "/v1/messages/count_tokens", json=body("y" * 40), headers=ANTHROPIC_HEADERS
        ) as r:
            assert r.status == 400
            assert (
                "max_tokens: Extra inputs are not permitted" in (await r.json())["error"]["message"]
            )


# --- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "etype"),
    [
        (500, 500, "api_error"),
        ("server_error", 500, "api_error"),
        (529, 529, "overloaded_error"),
        ("overloaded", 529, "overloaded_error"),
        ("rate_limit", 429, "rate_limit_error"),
        ("rate_limit_no_retry_after", 429, "rate_limit_error"),
        ("prompt_too_long", 400, "invalid_request_error"),
        ("unauthorized", 401, "authentication_error"),
        ("not_found", 404, "not_found_error"),
    ],
)
async def test_injected_error_faults_have_the_api_shape(session, spec, status, etype):
    async with FakeModelServer() as server:
        server.inject(spec)
        s, h, r = await post_messages(session, server, body())
        s2, _, _ = await post_messages(session, server, body())  # count=1: next one is fine
    assert s == status and s2 == 200
    assert r["type"] == "error" and r["error"]["type"] == etype
    assert r["error"]["message"]
    if spec == "rate_limit":
        assert h["retry-after"] == "1"
    if spec == "rate_limit_no_retry_after":
        assert "retry-after" not in h
    if spec == "prompt_too_long":
        assert r["error"]["message"] == PROMPT_TOO_LONG
    assert server.requests[0].outcome == "fault" and server.requests[0].status == status


async def test_inject_count_and_predicate(session):
    async with FakeModelServer() as server:
        server.inject(500, count=2, when=lambda req: req.prompt_text == "bad")
        statuses = [
            (await post_messages(session, server, body(t)))[0]
            for t in ("ok", "bad", "ok", "bad", "bad")
        ]
    assert statuses == [200, 500, 200, 500, 200]


async def test_malformed_json_fault(session):
    async with FakeModelServer() as server:
        server.inject("malformed_json")
        s, h, r = await post_messages(session, server, body())
    assert s == 200 and h["content-type"].startswith("application/json")
    assert isinstance(r, str)
    with pytest.raises(ValueError):
        json.loads(r)


async def test_timeout_fault_hangs_until_client_gives_up(session):
    async with FakeModelServer() as server:
        server.inject("timeout")
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                server.url + "/v1/messages",
                json=body(),
                headers=ANTHROPIC_HEADERS,
                timeout=aiohttp.ClientTimeout(total=0.3),
            ) as r:
                await r.read()
        s, _, _ = await post_messages(session, server, body())
    assert s == 200
    assert server.requests[0].outcome == "hang" and server.requests[0].status is None


async def test_disconnect_fault_is_a_connection_error(session):
    async with FakeModelServer() as server:
        server.inject("disconnect")
        with pytest.raises(aiohttp.ClientError):
            await post_messages(session, server, body())
        s, _, _ = await post_messages(session, server, body())
    assert s == 200


async def test_unknown_fault_name_is_rejected():
    server = FakeModelServer()
    with pytest.raises(ValueError, match="Unknown fault"):
        server.inject("explode")
    with pytest.raises(ValueError):
        server.inject(500, count=0)


async def test_fake_reply_with_custom_headers_and_delay(session):
    reply = FakeReply(
        status=200, body=text_response("late"), headers={"x-extra": "1"}, delay_s=0.01
    )
    async with FakeModelServer([reply]) as server:
        s, h, r = await post_messages(session, server, body())
    assert s == 200 and h["x-extra"] == "1" and r["content"][0]["text"] == "late"


# --- rate limits -------------------------------------------------------------------------


def test_sliding_window_with_a_fake_clock():
    w = SlidingWindow(3, window_s=60)
    for t in (0.0, 1.0, 2.0):
        assert w.fits(t, 1)
        w.add(t, 1)
    assert not w.fits(30.0, 1)
    assert w.wait_for(30.0, 1) == pytest.approx(30.0)  # the entry at t=0 leaves at 60
    assert w.wait_for(30.0, 2) == pytest.approx(31.0)
    assert w.fits(60.0, 1)  # (0, 60] excludes t=0
    assert w.used(61.5) == 1
    assert w.full_reset_at(61.5) == pytest.approx(62.0)
    assert w.wait_for(0.0, 4) == float("inf")


def test_rate_limits_charge_only_admitted_requests():
    now = [0.0]
    limits = RateLimits(rpm=10, itpm=1000, window_s=60, clock=lambda: now[0])
    assert limits.admit(600).ok
    refused = limits.admit(600)
    assert not refused.ok and refused.limit_name == "input_tokens"
    assert refused.retry_after_s == pytest.approx(60.0)
    assert limits.requests is not None and limits.requests.used(0.0) == 1  # not charged
    now[0] = 60.0
    assert limits.admit(600).ok


def test_output_token_limit_refuses_when_window_is_spent():
    now = [0.0]
    limits = RateLimits(otpm=100, window_s=60, clock=lambda: now[0])
    assert limits.admit(10).ok
    limits.charge_output(100)
    assert not limits.admit(10).ok
    now[0] = 61.0
    assert limits.admit(10).ok


async def test_rpm_limit_429_has_retry_after_and_ratelimit_headers(session):
    async with FakeModelServer(rpm_limit=2) as server:
        results = [await post_messages(session, server, body(str(i))) for i in range(3)]
    (s1, h1, _), (s2, h2, _), (s3, h3, r3) = results
    assert (s1, s2, s3) == (200, 200, 429)
    assert h1["anthropic-ratelimit-requests-limit"] == "2"
    assert h1["anthropic-ratelimit-requests-remaining"] == "1"
    assert h2["anthropic-ratelimit-requests-remaining"] == "0"
    assert h3["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert 55 <= int(h3["retry-after"]) <= 60
    assert r3["error"]["type"] == "rate_limit_error"
    assert "2 requests per minute" in r3["error"]["message"]
    assert server.stats()["rate_limited"] == 1


async def test_itpm_limit_counts_request_tokens(session):
    async with FakeModelServer(itpm_limit=1500) as server:
        s1, h1, _ = await post_messages(session, server, body("a" * 4000))  # 1000 tokens
        s2, _, r2 = await post_messages(session, server, body("b" * 4000))
        s3, _, _ = await post_messages(session, server, body("c" * 1600))  # 400 tokens fit
    assert (s1, s2, s3) == (200, 429, 200)
    assert h1["anthropic-ratelimit-input-tokens-remaining"] == "500"
    assert "input tokens per minute" in r2["error"]["message"]


async def test_window_expiry_admits_again(session):
    now = [1000.0]
    async with FakeModelServer() as server:
        server.limits = RateLimits(rpm=1, window_s=60, clock=lambda: now[0])
        s1, _, _ = await post_messages(session, server, body())
        now[0] += 59.0
        s2, h2, _ = await post_messages(session, server, body())
        now[0] += 1.0
        s3, _, _ = await post_messages(session, server, body())
    assert (s1, s2, s3) == (200, 429, 200)
    assert h2["retry-after"] == "1"


# --- prompt caching ----------------------------------------------------------------------


def cached_tools() -> list[dict[str, Any]]:
    tools = computer_tools()
    tools[-1] = {**tools[-1], "cache_control": {"type": "ephemeral"}}
    return tools


async def test_tools_only_cache_write_then_read(session):
    headers = {**ANTHROPIC_HEADERS, "anthropic-beta": "computer-use-2025-01-24"}
    async with FakeModelServer() as server:
        _, _, r1 = await post_messages(
            session, server, body("first", tools=cached_tools()), headers
        )
        _, _, r2 = await post_messages(
            session, server, body("second!", tools=cached_tools()), headers
        )
    u1, u2 = r1["usage"], r2["usage"]
    assert u1["cache_creation_input_tokens"] == 735 + 700 + 245
    assert u1["cache_read_input_tokens"] == 0
    assert u1["input_tokens"] == 2  # "first"
    assert u2["cache_read_input_tokens"] == 1680 and u2["cache_creation_input_tokens"] == 0
    assert u2["input_tokens"] == 2


def test_growing_conversation_reads_the_previous_prefix_and_writes_the_increment():
    cache = PromptCache(min_tokens=1024)
    img = png_b64(1024, 768)
    turn1 = {
        "model": "m",
        "max_tokens": 10,
        "system": [{"type": "text", "text": "s" * 400, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "task"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": img},
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            }
        ],
    }
    p1 = cache.plan(turn1, "m")
    assert p1.cache_read_input_tokens == 0
    assert p1.cache_creation_input_tokens == 100 + 1 + image_tokens(
        1024, 768
    )  # system < 1024 alone
    assert p1.total == count_request_tokens(turn1)
    p1.commit()
    turn2 = json.loads(json.dumps(turn1))
    del turn2["messages"][0]["content"][1]["cache_control"]
    turn2["messages"] += [
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "n" * 400, "cache_control": {"type": "ephemeral"}}
            ],
        },
    ]
    # the old breakpoint moved: only a prefix marked in THIS request can be read
    turn2["messages"][0]["content"][1]["cache_control"] = {"type": "ephemeral"}
    p2 = cache.plan(turn2, "m")
    assert p2.cache_read_input_tokens == p1.cache_creation_input_tokens
    assert p2.cache_creation_input_tokens == 1 + 100
    assert p2.input_tokens == 0
    assert p2.total == count_request_tokens(turn2)
    assert cache.plan(turn2, "other-model").cache_read_input_tokens == 0  # per model


def test_short_prefixes_are_not_cached():
    cache = PromptCache(min_tokens=1024)
    b = body(
        "short", system=[{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]
    )
    p = cache.plan(b, "m")
    assert (p.cache_read_input_tokens, p.cache_creation_input_tokens) == (0, 0)
    p.commit()
    assert len(cache) == 0


# --- token counting ----------------------------------------------------------------------


def test_image_tokens_follow_the_vision_rule():
    assert image_tokens(1024, 768) == 1049
    assert image_tokens(1280, 800) == 1366
    assert image_tokens(1920, 1080) == 1600  # scaled to 1568 wide, then capped
    assert image_tokens(200, 200) == 54


def test_image_sizes_from_headers():
    for fmt in ("PNG", "JPEG", "GIF", "WEBP"):
        buf = io.BytesIO()
        PILImage.new("RGB", (321, 123)).save(buf, format=fmt)
        assert image_size_from_bytes(buf.getvalue()) == (321, 123), fmt


def test_count_request_tokens_for_both_formats():
    img = png_b64(1024, 768)
    anthropic = {
        "tools": computer_tools(),
        "system": "abcd" * 10,
        "messages": [
            {"role": "user", "content": "wxyz" * 5},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": img,
                                },
                            }
                        ],
                    }
                ],
            },
        ],
    }
    assert count_request_tokens(anthropic) == 1680 + 10 + 5 + 1049
    openai = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + img}}
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "bash", "arguments": '{"command":"ls"}'},
                    }
                ],
            },
        ]
    }
    assert count_request_tokens(openai) == 1049 + 1 + 4


# --- OpenAI chat completions ---------------------------------------------------------------


async def test_chat_completions_conversion_and_auth(session):
    reply = message_response(
        [
            {"type": "text", "text": "Let me look."},
            {
                "type": "tool_use",
                "id": "toolu_9",
                "name": "computer",
                "input": {"action": "screenshot"},
            },
        ],
        usage={
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 4,
            "cache_creation_input_tokens": 0,
        },
    )
    payload = {
        "model": "anthropic/claude-3-5-sonnet-20241022",
        "messages": [{"role": "user", "content": "Save a picture of a cat to my desktop."}],
        "tools": [computer_definition("computer_20241022", 1024, 768, display_number=1)],
        "tool_choice": "auto",
    }
    async with FakeModelServer([reply]) as server:
        async with session.post(server.gateway_base_url + "/chat/completions", json=payload) as r:
            s1, r1 = r.status, await r.json()
        async with session.post(
            server.gateway_base_url + "/chat/completions",
            json=payload,
            headers={"Authorization": "Bearer sk-x"},
        ) as r:
            s2, r2 = r.status, await r.json()
    assert s1 == 401 and r1["error"]["type"] == "authentication_error"
    assert s2 == 200 and r2["object"] == "chat.completion"
    choice = r2["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look."
    call = choice["message"]["tool_calls"][0]
    assert call == {
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "computer", "arguments": json.dumps({"action": "screenshot"})},
    }
    assert r2["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 5,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    assert server.requests[1].api == "gateway"
    assert server.requests[1].tool_types == ["computer_20241022"]


async def test_chat_completions_errors_in_openai_shape(session):
    async with FakeModelServer() as server:
        server.inject(429)
        async with session.post(
            server.gateway_base_url + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": "Bearer k"},
        ) as r:
            assert r.status == 429 and r.headers["retry-after"] == "1"
            data = await r.json()
    assert data["error"]["type"] == "rate_limit_error" and data["error"]["code"] == 429


# --- Bedrock -----------------------------------------------------------------------------


async def test_bedrock_signed_request_is_accepted(session):
    async with FakeModelServer(
        [text_response("from bedrock")], aws_credentials=(AKID, SECRET)
    ) as server:
        url = bedrock_url(server)
        data, headers = signed_bedrock(url, bedrock_body())
        async with session.post(URL(url, encoded=True), data=data, headers=headers) as r:
            status, res, h = r.status, await r.json(), r.headers
    assert status == 200, res
    assert res["content"][0]["text"] == "from bedrock"
    assert res["model"] == "claude-3-7-sonnet-20250219"
    assert "x-amzn-RequestId" in h and "X-Amzn-Bedrock-Input-Token-Count" in h
    rec = server.requests[0]
    assert rec.api == "bedrock" and rec.model == BEDROCK_MODEL
    assert "%3A" in rec.raw_path


@pytest.mark.parametrize("tamper", ["secret", "body", "akid"])
async def test_bedrock_bad_signatures_are_403(session, tamper):
    async with FakeModelServer(aws_credentials=(AKID, SECRET)) as server:
        url = bedrock_url(server)
        data, headers = signed_bedrock(
            url,
            bedrock_body(),
            secret="wrong" if tamper == "secret" else SECRET,
            akid="AKIDOTHER" if tamper == "akid" else AKID,
        )
        if tamper == "body":
            data = data.replace(b'"hi"', b'"ho"')
        async with session.post(URL(url, encoded=True), data=data, headers=headers) as r:
            status, res, etype = r.status, await r.json(), r.headers["x-amzn-ErrorType"]
    assert status == 403
    if tamper == "akid":
        assert etype.startswith("UnrecognizedClientException")
    else:
        assert etype.startswith("InvalidSignatureException")
        assert res["message"].startswith("The request signature we calculated does not match")
    assert server.requests[0].outcome == "auth"


async def test_bedrock_unsigned_request_is_refused(session):
    async with FakeModelServer() as server:
        async with session.post(URL(bedrock_url(server), encoded=True), json=bedrock_body()) as r:
            assert r.status == 403
            assert r.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")


async def test_bedrock_body_validation_and_beta_list(session):
    tools = computer_tools()
    async with FakeModelServer(aws_credentials=(AKID, SECRET)) as server:
        url = bedrock_url(server)
        cases = [
            bedrock_body(model="claude"),
            {k: v for k, v in bedrock_body().items() if k != "anthropic_version"},
            bedrock_body(tools=tools),
            bedrock_body(tools=tools, anthropic_beta=["computer-use-2025-01-24"]),
        ]
        results = []
        for payload in cases:
            data, headers = signed_bedrock(url, payload)
            async with session.post(URL(url, encoded=True), data=data, headers=headers) as r:
                results.append((r.status, r.headers.get("x-amzn-ErrorType", ""), await r.json()))
    assert results[0][0] == 400 and "extraneous key [model]" in results[0][2]["message"]
    assert results[0][1].startswith("ValidationException")
    assert "required key [anthropic_version]" in results[1][2]["message"]
    assert results[2][0] == 400 and "computer-use-2025-01-24" in results[2][2]["message"]
    assert results[3][0] == 200
    assert server.requests[3].betas == ["computer-use-2025-01-24"]


async def test_bedrock_errors_use_bedrock_shapes(session):
    async with FakeModelServer(aws_credentials=(AKID, SECRET)) as server:
        server.inject(429)
        server.inject(529)
        url = bedrock_url(server)
        out = []
        for _ in range(2):
            data, headers = signed_bedrock(url, bedrock_body())
            async with session.post(URL(url, encoded=True), data=data, headers=headers) as r:
                out.append(
                    (
                        r.status,
                        r.headers["x-amzn-ErrorType"],
                        "retry-after" in r.headers,
                        await r.json(),
                    )
                )
    assert out[0][0] == 429 and out[0][1].startswith("ThrottlingException") and not out[0][2]
    assert out[0][3] == {"message": "Too many requests, please wait before trying again."}
    assert out[1][0] == 503 and out[1][1].startswith("ServiceUnavailableException")


# --- concurrency, records, lifecycle, CLI --------------------------------------------------


async def test_peak_in_flight_is_recorded(session):
    gate = asyncio.Event()
    arrived = 0

    async def handler(req):
        nonlocal arrived
        arrived += 1
        if arrived == 5:
            gate.set()
        await gate.wait()
        return None

    async with FakeModelServer(handler=handler) as server:
        results = await asyncio.gather(
            *(post_messages(session, server, body(str(i))) for i in range(5))
        )
    assert all(s == 200 for s, _, _ in results)
    assert server.peak_in_flight == 5
    assert len(server.arrivals) == 5


async def test_cache_control_locations_helper(session):
    b = body(tools=cached_tools())
    b["messages"] = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
        }
    ]
    headers = {**ANTHROPIC_HEADERS, "anthropic-beta": "computer-use-2025-01-24"}
    async with FakeModelServer() as server:
        await post_messages(session, server, b, headers)
    assert server.requests[0].cache_control_locations() == ["tools[2]", "messages[0].content[0]"]


def test_threaded_mode_for_sync_callers():
    with FakeModelServer([text_response("sync")]) as server:
        req = urllib.request.Request(
            server.url + "/v1/messages",
            data=json.dumps(body()).encode(),
            headers={**ANTHROPIC_HEADERS, "content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            data = json.loads(r.read())
    assert data["content"][0]["text"] == "sync"
    assert len(server.requests) == 1


def test_script_file_and_cli(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                text_response("scripted one"),
                {"fault": "overloaded", "count": 2},
                {"status": 500, "body": error_reply(500).body},
            ]
        )
    )
    specs = load_script(str(script))
    assert len(specs) == 4
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deskpilot.testing.fake_server",
            "--port",
            "0",
            "--script",
            str(script),
            "--rpm",
            "100",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("FAKE_SERVER_URL=http://127.0.0.1:")
        url = first.split("=", 1)[1]
        statuses = []
        for _ in range(5):
            req = urllib.request.Request(
                url + "/v1/messages",
                data=json.dumps(body()).encode(),
                headers={**ANTHROPIC_HEADERS, "content-type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    statuses.append(r.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        with urllib.request.urlopen(url + "/_fake/stats", timeout=10) as r:
            stats = json.loads(r.read())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert statuses == [200, 529, 529, 500, 200]
    assert stats["total"] == 5 and stats["limits"]["rpm"] == 100
    assert len(stats["arrivals"]) == 5
    assert proc.returncode == 0


async def test_reset_endpoint_reconfigures_limits(session):
    async with FakeModelServer() as server:
        await post_messages(session, server, body())
        async with session.post(server.url + "/_fake/reset", json={"rpm_limit": 1}) as r:
            assert r.status == 200
        s1, _, _ = await post_messages(session, server, body())
        s2, _, _ = await post_messages(session, server, body())
    assert (s1, s2) == (200, 429)
    assert server.stats()["total"] == 2


def test_env_points_everything_here():
    server = FakeModelServer(aws_credentials=("A", "B"))
    server.url = "http://127.0.0.1:1234"
    env = server.env()
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1234"
    assert env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == "http://127.0.0.1:1234"
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:1234/v1"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("A", "B")


async def test_bedrock_path_decoded_by_the_client_fails_like_on_aws(session):
    """Signing ``%3A`` but letting the HTTP library send ``:`` breaks the signature (on AWS too)."""
    async with FakeModelServer(aws_credentials=(AKID, SECRET)) as server:
        url = bedrock_url(server)
        data, headers = signed_bedrock(url, bedrock_body())
        async with session.post(url, data=data, headers=headers) as r:  # yarl decodes %3A
            assert r.status == 403
    assert ":" in server.requests[0].raw_path


# --- properties ------------------------------------------------------------------------------

_blocks = st.lists(
    st.builds(
        lambda text, mark: (
            {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}
            if mark
            else {"type": "text", "text": text}
        ),
        st.text(min_size=0, max_size=3000),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(turns=st.lists(_blocks, min_size=1, max_size=5), mark_tools=st.booleans())
def test_cache_split_always_adds_up(turns, mark_tools):
    """input + cache read + cache write == the request's tokens, on first and repeated sends."""
    tools = computer_tools()
    if mark_tools:
        tools[-1] = {**tools[-1], "cache_control": {"type": "ephemeral"}}
    request = {
        "tools": tools,
        "messages": [
            {"role": "user" if i % 2 == 0 else "assistant", "content": blocks}
            for i, blocks in enumerate(turns)
        ],
    }
    cache = PromptCache(min_tokens=1024)
    total = count_request_tokens(request)
    first = cache.plan(request, "m")
    assert first.total == total and first.cache_read_input_tokens == 0
    first.commit()
    again = cache.plan(request, "m")
    assert again.total == total
    # everything written the first time is read the second time
    assert again.cache_read_input_tokens == first.cache_creation_input_tokens
    assert again.cache_creation_input_tokens == 0


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 20),
    steps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=120),
)
def test_admitted_requests_never_exceed_the_limit_in_any_window(limit, steps):
    now = [0.0]
    limits = RateLimits(rpm=limit, window_s=10.0, clock=lambda: now[0])
    admitted: list[float] = []
    for dt in steps:
        now[0] += dt
        if limits.admit(1).ok:
            admitted.append(now[0])
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u - t < 10.0) <= limit


def test_load_script_rejects_bad_entries(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match="JSON list"):
        load_script(str(bad))
    bad.write_text(json.dumps([{"neither": 1}]))
    with pytest.raises(ValueError, match="entry 0"):
        load_script(str(bad))


# --- the same fake in process (MockTransport) ------------------------------------------------


async def test_in_process_fake_answers_like_the_served_one(session):
    """FakeModel.handle and FakeModelServer share one implementation: the same scripted
    reply, checks, SigV4 verification, faults and records, with or without a socket."""
    from deskpilot.errors import TransportError, TransportTimeoutError
    from deskpilot.testing import FakeModel
    from deskpilot.transport import HTTPRequest

    script = [text_response("one"), 529]
    fake = FakeModel(list(script), aws_credentials=(AKID, SECRET))
    async with FakeModelServer(list(script), aws_credentials=(AKID, SECRET)) as server:
        served = [await post_messages(session, server, body()) for _ in range(2)]
        url = bedrock_url(server)
        data, headers = signed_bedrock(url, bedrock_body())
        async with session.post(URL(url, encoded=True), data=data, headers=headers) as r:
            served_bedrock = r.status
    transport = fake.transport()

    def request(url: str, data: bytes, headers: dict[str, str]) -> HTTPRequest:
        return HTTPRequest("POST", url, headers, data, timeout_s=0.2)

    msg = request(fake.url + "/v1/messages", json.dumps(body()).encode(), ANTHROPIC_HEADERS)
    first, second = [await transport.send(msg) for _ in range(2)]
    assert (first.status, second.status) == (served[0][0], served[1][0]) == (200, 529)
    assert json.loads(first.body)["content"] == served[0][2]["content"]
    assert json.loads(second.body)["error"]["type"] == served[1][2]["error"]["type"]
    in_url = bedrock_url(fake)
    data, headers = signed_bedrock(in_url, bedrock_body())
    assert (await transport.send(request(in_url, data, headers))).status == served_bedrock == 200
    data, headers = signed_bedrock(in_url, bedrock_body(), secret="wrong")
    assert (await transport.send(request(in_url, data, headers))).status == 403
    assert [r.api for r in fake.requests] == ["anthropic", "anthropic", "bedrock", "bedrock"]
    assert [r.status for r in fake.requests] == [200, 529, 200, 403]
    fake.inject("timeout")
    with pytest.raises(TransportTimeoutError):
        await transport.send(msg)
    fake.inject("disconnect")
    with pytest.raises(TransportError, match="closed the connection"):
        await transport.send(msg)
