"""``LLMClient.count_tokens`` and ``exact_token_counts=True`` against the fake's count endpoints.

Wire shapes are asserted server-side (what the fake received); Bedrock runs over real HTTP
(FakeModelServer) so SigV4 is verified on the bytes sent. The fake's count and its ``usage``
come from the same counter, so a count must equal the usage of the same request.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import pytest
from botocore.credentials import Credentials
from PIL import Image

from deskpilot import Conversation, LLMClient, NotSupported, Tool
from deskpilot.errors import TokenCountError
from deskpilot.prompt import Image as PromptImage
from deskpilot.prompt import Message, ToolCall, ToolResult
from deskpilot.testing import FakeModel, FakeModelServer
from deskpilot.testing.vertex_route import (
    FAKE_VERTEX_PROJECT,
    FAKE_VERTEX_REGION,
    FAKE_VERTEX_TOKEN,
)

BETA = "computer-use-2025-01-24"  # claude-4-sonnet's computer-use group


def client(fake: FakeModel, model: str = "claude-4-sonnet", **kw: Any) -> LLMClient:
    settings: dict[str, Any] = {
        "environ": fake.env(),
        "aws_credentials": Credentials(*(fake.aws_credentials or ("a", "b"))),
        "progress": "none",
        "retry_base_s": 0.01,
        "retry_cap_s": 0.05,
        "max_attempts": 3,
    }
    if not isinstance(fake, FakeModelServer):
        settings["transport"] = fake.transport()
    settings.update(kw)
    return LLMClient([model], **settings)


def png(w: int = 1024, h: int = 768) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (40, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


def weather(city: str) -> str:
    """Say the weather in a city."""
    return f"sunny in {city}"


def rich_prompts() -> list[Conversation]:
    return [
        Conversation().system("You are terse.").user("Describe this screen.", image=png()),
        Conversation().user("lorem ipsum " * 300),
    ]


def of(fake: FakeModel, api: str) -> list[Any]:
    return [r for r in fake.requests if r.api == api]


# --- count_tokens per provider ---------------------------------------------------------------


async def test_anthropic_count_matches_usage_and_carries_tools_and_betas() -> None:
    fake = FakeModel()
    options: dict[str, Any] = {"computer_use": True, "tools": [Tool.from_function(weather)]}
    async with client(fake) as c:
        counts = await c.count_tokens(rich_prompts(), **options)
        bare = await c.count_tokens(rich_prompts())
        answers = await c.process_prompts_async(rich_prompts(), show_progress=False, **options)
    counted = of(fake, "count_tokens")
    assert len(counted) == 4
    for rec in counted:
        assert rec.path == "/v1/messages/count_tokens"
        assert rec.headers["x-api-key"] == fake.env()["ANTHROPIC_API_KEY"]
        assert rec.headers["anthropic-version"] == "2023-06-01"
        assert set(rec.body) <= {"model", "messages", "system", "tools", "tool_choice", "thinking"}
        assert rec.body["model"] == "claude-sonnet-4-20250514"
    assert counted[0].betas == [BETA] and counted[2].betas == []
    assert counted[0].tool_names == ["computer", "str_replace_based_edit_tool", "bash", "weather"]
    assert counted[0].body["system"] == "You are terse."
    # the same counter as usage: the count is what the answered request was charged
    assert counts == [a.usage.input_tokens for a in answers]
    # tools and the screenshot count: 735 + 700 + 245 + weather's definition, 1,049 image
    assert counts[0] - bare[0] > 1680 and counts[1] - bare[1] > 1680
    assert bare[0] > 1049 > bare[0] - 20


async def test_bedrock_count_is_signed_and_uses_the_foundation_model_id() -> None:
    async with FakeModelServer(aws_region="us-east-1") as server:
        async with client(server, "claude-4-sonnet-bedrock") as c:
            counts = await c.count_tokens(rich_prompts(), computer_use=True, max_tokens=77)
            answers = await c.process_prompts_async(
                rich_prompts(), computer_use=True, show_progress=False
            )
        # a wrong secret: the server's SigV4 check refuses it, nothing is counted
        async with LLMClient(
            ["claude-4-sonnet-bedrock"],
            environ=server.env(),
            aws_credentials=Credentials("AKIDFAKEDESKPILOT", "not-the-secret"),
            progress="none",
            max_attempts=1,
        ) as wrong:
            with pytest.raises(TokenCountError) as info:
                await wrong.count_tokens("hello")
    assert info.value.status_code == 403 and "signature" in str(info.value).lower()
    counted = of(server, "bedrock_count_tokens")
    assert len(counted) == 3
    for rec in counted[:2]:
        # us.anthropic... is an inference profile; CountTokens takes the foundation model
        assert rec.raw_path == "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/count-tokens"
        assert rec.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID")
        assert set(rec.body) == {"input"} and set(rec.body["input"]) == {"invokeModel"}
        inner = json.loads(base64.b64decode(rec.body["input"]["invokeModel"]["body"]))
        assert inner["anthropic_version"] == "bedrock-2023-05-31"
        assert inner["anthropic_beta"] == [BETA] and inner["max_tokens"] == 77
        assert "model" not in inner and len(inner["tools"]) == 3
    assert counts == [a.usage.input_tokens for a in answers]


async def test_gateways_have_no_count_endpoint() -> None:
    fake = FakeModel()
    async with client(fake, "anthropic/claude-sonnet-4-20250514") as c:
        with pytest.raises(NotSupported, match="no token-count endpoint"):
            await c.count_tokens("hello")
    with pytest.raises(NotSupported, match="gateway"):
        client(fake, "anthropic/claude-sonnet-4-20250514", exact_token_counts=True)
    assert fake.requests == []
    assert issubclass(NotSupported, NotImplementedError)


async def test_beta_flags_the_count_endpoint_refuses_are_dropped_and_remembered() -> None:
    fake = FakeModel()
    fake.count_tokens_refused_betas = {BETA}
    async with client(fake) as c:
        first = await c.count_tokens("hello", computer_use=True)
        second = await c.count_tokens("hello again", computer_use=True)
        plain = await c.count_tokens("hello")
    counted = of(fake, "count_tokens")
    assert [r.status for r in counted] == [400, 200, 200, 200]
    assert [r.betas for r in counted] == [[BETA], [], [], []]
    assert first[0] == plain[0] + 735 + 700 + 245
    assert second[0] > first[0]


async def test_count_requests_are_retried_and_failures_raise() -> None:
    fake = FakeModel()
    fake.inject(429, when=lambda r: r.api == "count_tokens")
    async with client(fake) as c:
        assert (await c.count_tokens("hello"))[0] > 0
        fake.inject(400, when=lambda r: r.api == "count_tokens")
        with pytest.raises(TokenCountError) as info:
            await c.count_tokens("something else")
    assert [r.status for r in of(fake, "count_tokens")] == [429, 200, 400]
    assert info.value.status_code == 400 and info.value.error_kind == "invalid_request_error"
    assert "Token count for claude-4-sonnet failed after 1 attempt" in str(info.value)


# --- the cache ---------------------------------------------------------------------------------


async def test_counted_prompts_are_not_counted_again_nor_when_sent() -> None:
    fake = FakeModel()
    fake.inject(500, when=lambda r: r.api == "anthropic")
    async with client(fake, exact_token_counts=True) as c:
        counts = await c.count_tokens(rich_prompts(), computer_use=True)
        again = await c.count_tokens(rich_prompts(), computer_use=True)
        answers = await c.process_prompts_async(
            rich_prompts(), computer_use=True, show_progress=False
        )
    assert counts == again
    assert len(of(fake, "count_tokens")) == 2  # one per distinct request, ever
    assert len(of(fake, "anthropic")) == 3  # a retry re-uses the count
    assert [a.usage.input_tokens for a in answers] == counts


async def test_a_batch_sharing_a_prefix_counts_it_once() -> None:
    context = Conversation().user(
        "Here is the screen and a manual. " + "manual " * 800, image=png()
    )
    context.ai("Understood.")
    batch = []
    for i in range(12):
        conv = Conversation(list(context.messages))
        batch.append(conv.user(f"Question {i}: where is button {i}?"))
    fake = FakeModel()
    async with client(fake, exact_token_counts=True) as c:
        answers = await c.process_prompts_async(batch, computer_use=True, show_progress=False)
        counts = await c.count_tokens(batch[:2], computer_use=True)
    assert all(not a.is_error for a in answers)
    counted = of(fake, "count_tokens")
    # 1 for the shared prefix (two messages); count_tokens afterwards finds each request's
    # count learnt from its usage
    assert len(counted) == 1 and len(counted[0].messages) == 2
    assert counts == [a.usage.input_tokens for a in answers[:2]]


async def test_the_agents_growing_conversation_is_counted_once() -> None:
    fake = FakeModel()
    conv = Conversation().user("Open the editor and type hello.", image=png())
    async with client(fake, exact_token_counts=True) as c:
        for step in range(6):
            r = await c.start(conv, computer_use=True)
            assert not r.is_error
            call = ToolCall(id=f"toolu_{step:03d}", name="computer", arguments={"action": "key"})
            conv.add(Message("assistant", [*r.content.parts, call]))
            conv.add(Message("user", [ToolResult(call.id, [PromptImage(png(1024, 768))])]))
    # steps 1 and 2 are counted (step 2's new turn, a screenshot, is over a quarter of it);
    # from step 3 on, the prefix is the previous request, learnt from its usage, and the new
    # turn is under a quarter of the request: no count
    assert len(of(fake, "count_tokens")) == 2
    assert len(of(fake, "anthropic")) == 6
    assert len(c._counter.cache) >= 6


async def test_a_model_without_counts_falls_back_to_estimates(caplog: Any) -> None:
    async with FakeModelServer() as server:
        server.inject(400, 10, when=lambda r: r.api == "bedrock_count_tokens")
        async with client(
            server, "claude-4-sonnet-bedrock", exact_token_counts=True, max_concurrent_requests=1
        ) as c:
            with caplog.at_level(logging.WARNING, logger="deskpilot.client"):
                answers = await c.process_prompts_async(
                    [f"prompt {i}" for i in range(4)], show_progress=False
                )
    assert all(not a.is_error for a in answers)
    assert len(of(server, "bedrock_count_tokens")) == 1
    assert "estimating claude-4-sonnet-bedrock's input tokens from now on" in caplog.text


# --- Vertex AI ---------------------------------------------------------------------------------


def vertex(fake: FakeModel, **kw: Any) -> LLMClient:
    kw.setdefault("google_credentials", fake.vertex_credentials())
    return LLMClient(
        "claude-4-sonnet-vertex",
        environ=fake.env(),
        transport=fake.transport(),
        progress="none",
        retry_base_s=0.01,
        **kw,
    )


async def test_vertex_count_goes_to_count_tokens_rawpredict_with_the_model_in_the_body() -> None:
    fake = FakeModel()
    async with vertex(fake, exact_token_counts=True) as c:
        counts = await c.count_tokens(rich_prompts(), computer_use=True)
        answers = await c.process_prompts_async(
            rich_prompts(), computer_use=True, show_progress=False
        )
    counted = of(fake, "vertex_count_tokens")
    assert len(counted) == 2  # the answers re-use the counts
    path = (
        f"/v1/projects/{FAKE_VERTEX_PROJECT}/locations/{FAKE_VERTEX_REGION}/publishers/"
        "anthropic/models/count-tokens:rawPredict"
    )
    for rec in counted:
        assert rec.path == path
        assert rec.headers["authorization"] == f"Bearer {FAKE_VERTEX_TOKEN}"
        assert rec.body["anthropic_version"] == "vertex-2023-10-16"
        assert rec.body["model"] == of(fake, "vertex")[0].path.rsplit("/", 1)[1].split(":")[0]
        assert "@" in rec.body["model"] and "max_tokens" not in rec.body
        assert rec.betas == [BETA] and len(rec.tools) == 3
    assert counts == [a.usage.input_tokens for a in answers]


async def test_vertex_count_drops_refused_betas_and_reports_auth_failures() -> None:
    fake = FakeModel()
    fake.count_tokens_refused_betas = {BETA}
    async with vertex(fake) as c:
        [n] = await c.count_tokens("hello", computer_use=True)
    assert [r.betas for r in of(fake, "vertex_count_tokens")] == [[BETA], []]
    assert n > 1680
    from google.oauth2.credentials import Credentials as GoogleCredentials

    async with vertex(fake, google_credentials=GoogleCredentials("not-a-token")) as c:
        with pytest.raises(TokenCountError) as info:
            await c.count_tokens("hello")
    assert info.value.status_code == 401
