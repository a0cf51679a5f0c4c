"""Regression tests for the client defects of issues 7 and 11 (each failed before its fix).

Most run against the loopback FakeModelServer (the real wire: SigV4 checked over the
network, timeouts of a real socket); the rest in process through a MockTransport.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from botocore.credentials import Credentials, RefreshableCredentials

from deskpilot import LLMClient
from deskpilot.testing import FakeModel, FakeModelServer, FakeReply, error_reply

AKID, SECRET = "AKIDFAKEDESKPILOT", "fake-secret-key"


# --- a read timeout while the body arrives is a timeout (issue 7, defect 11) -------------------


class StallingServer:
    """Sends a 200 and its headers, then the body stops short of its content-length."""

    def __init__(self) -> None:
        self.url = ""
        self.hits = 0
        self._stop = asyncio.Event()
        self._runner: web.ServerRunner | None = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        await request.content.read()
        self.hits += 1
        stream = web.StreamResponse(status=200, headers={"content-type": "application/json"})
        stream.content_length = 400
        await stream.prepare(request)
        await stream.write(b'{"id": "msg_01", "type": "message", "content": [')
        await self._stop.wait()
        return stream

    async def __aenter__(self) -> StallingServer:
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


async def test_a_body_read_timeout_is_reported_as_a_timeout() -> None:
    async with StallingServer() as server:
        async with LLMClient(
            "claude-4-sonnet",
            base_url=server.url,
            api_key="sk-ant-test-0123456789",
            request_timeout=0.3,
            max_attempts=2,
            retry_base_s=0.01,
            retry_cap_s=0.01,
            progress="none",
        ) as client:
            resp = await client.start("hello")
    assert resp.is_error and resp.status_code is None
    assert resp.error_type == "timeout" and resp.attempts == 2 == server.hits
    assert "timed out after 0.3 s" in (resp.error_message or "")
    assert "JSON" not in (resp.error_message or "")


async def test_the_fake_servers_stall_body_fault_is_a_timeout_too() -> None:
    async with FakeModelServer() as server:
        server.inject("stall_body")
        async with LLMClient(
            "claude-4-sonnet",
            environ=server.env(),
            request_timeout=0.3,
            max_attempts=1,
            progress="none",
        ) as client:
            resp = await client.start("hello")
    assert resp.error_type == "timeout" and "timed out after 0.3 s" in (resp.error_message or "")
    assert server.requests[0].status == 200  # the status line did arrive


# --- x-should-retry (the Anthropic SDK honours it) ------------------------------------------


@pytest.mark.parametrize(
    "status,header,attempts",
    [
        (500, "false", 1),  # forbids the retry a 500 would get
        (529, "false", 1),
        (429, "false", 1),
        (400, "true", 3),  # forces retries a 400 would not get
        (409, None, 3),
        (400, None, 1),
    ],
)
async def test_x_should_retry_header_decides(
    status: int, header: str | None, attempts: int
) -> None:
    headers = {"x-should-retry": header} if header else {}
    reply = FakeReply(status=status, body=error_reply(status).body, headers=headers)
    async with FakeModelServer(handler=lambda req: reply) as server:
        async with LLMClient(
            "claude-4-sonnet",
            environ=server.env(),
            max_attempts=3,
            retry_base_s=0.01,
            retry_cap_s=0.02,
            progress="none",
        ) as client:
            resp = await client.start("x")
    assert resp.is_error and resp.status_code == status
    assert resp.attempts == attempts == len(server.requests)


# --- max_tokens is capped by the model's maximum ----------------------------------------------


async def test_max_tokens_is_capped_at_the_models_maximum() -> None:
    async with FakeModelServer() as server:
        async with LLMClient(
            "claude-3-5-sonnet-20241022",  # max_output_tokens 8192
            environ=server.env(),
            max_new_tokens=64_000,
            progress="none",
        ) as client:
            assert client.model_spec().max_output_tokens == 8192
            await client.start("default")
            await client.start("explicit", max_tokens=100_000)
            await client.start("small", max_tokens=100)
    assert [r.body["max_tokens"] for r in server.requests] == [8192, 8192, 100]


# --- Bedrock: the AWS profile's region, credentials refreshed off the event loop --------------


def _aws_config(tmp_path: Path, region: str) -> Path:
    cfg = tmp_path / "aws-config"
    cfg.write_text(f"[default]\nregion = ap-south-1\n\n[profile work]\nregion = {region}\n")
    return cfg


@pytest.fixture
def clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


async def test_bedrock_takes_the_region_of_the_aws_profile(
    tmp_path: Path, clean_aws_env: pytest.MonkeyPatch
) -> None:
    cfg = _aws_config(tmp_path, "eu-north-1")
    clean_aws_env.setenv("AWS_PROFILE", "work")
    clean_aws_env.setenv("AWS_CONFIG_FILE", str(cfg))
    async with FakeModelServer(aws_region="eu-north-1") as server:  # checks the SigV4 scope
        async with LLMClient(
            "claude-4-sonnet-bedrock",
            endpoint_url=server.url,
            aws_credentials=Credentials(AKID, SECRET),
            progress="none",
        ) as client:
            resp = await client.start("hi")
    assert not resp.is_error, resp.error_message
    assert "/eu-north-1/bedrock/aws4_request" in server.requests[0].headers["authorization"]


async def test_region_order_argument_variable_profile_default(
    tmp_path: Path, clean_aws_env: pytest.MonkeyPatch
) -> None:
    from deskpilot.providers.bedrock import BedrockProvider

    cfg = str(_aws_config(tmp_path, "eu-north-1"))

    def region(**kw: object) -> str:
        client = LLMClient("claude-4-sonnet-bedrock", aws_credentials=Credentials("a", "b"), **kw)
        provider = client._providers["bedrock"]
        assert isinstance(provider, BedrockProvider)
        return provider.region

    environ = {"AWS_PROFILE": "work", "AWS_CONFIG_FILE": cfg}
    assert region(environ=environ) == "eu-north-1"
    assert region(environ={"AWS_CONFIG_FILE": cfg}) == "ap-south-1"  # the default profile
    assert region(environ={**environ, "AWS_DEFAULT_REGION": "us-west-1"}) == "us-west-1"
    assert region(environ={**environ, "AWS_REGION": "ca-central-1"}) == "ca-central-1"
    assert region(environ=environ, region="sa-east-1") == "sa-east-1"
    assert region(environ={"AWS_CONFIG_FILE": "/dev/null"}) == "us-east-1"
    from deskpilot.errors import ConfigError

    with pytest.raises(ConfigError, match="AWS profile 'nope'"):
        region(environ={"AWS_PROFILE": "nope", "AWS_CONFIG_FILE": cfg})


async def test_a_blocking_credential_refresh_never_stalls_the_event_loop() -> None:
    """An SSO / assume-role refresh blocks in botocore; it must run off the event loop."""
    refreshes = []

    def slow_refresh() -> dict[str, str]:
        refreshes.append(time.monotonic())
        time.sleep(0.5)  # an STS / SSO round trip
        expiry = datetime.now(UTC) + timedelta(seconds=60)  # inside the refresh window
        return {
            "access_key": AKID,
            "secret_key": SECRET,
            "token": "session-token-0123456789",
            "expiry_time": expiry.isoformat(),
        }

    creds = RefreshableCredentials.create_from_metadata(
        slow_refresh(), refresh_using=slow_refresh, method="sso"
    )
    refreshes.clear()
    lags: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            lags.append(now - last - 0.01)
            last = now

    async with FakeModelServer() as server:
        async with LLMClient(
            "claude-4-sonnet-bedrock",
            environ=server.env(),
            aws_credentials=creds,
            progress="none",
        ) as client:
            stop = asyncio.Event()
            tick = asyncio.create_task(ticker(stop))
            await asyncio.sleep(0.05)
            resp = await client.start("hi")
            stop.set()
            await tick
    assert not resp.is_error, resp.error_message
    assert refreshes, "the credentials were refreshed for the request"
    assert server.requests[0].headers["x-amz-security-token"] == "session-token-0123456789"
    assert max(lags) < 0.2, f"the event loop stalled for {max(lags):.2f} s"


# --- step-down: the caller's tools are never rewritten; the rejected types are reported -------


async def test_a_rejected_type_in_the_callers_tools_is_reported_not_rewritten() -> None:
    editor = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
    async with FakeModel(reject_tool_types={"text_editor_20250728"}) as fake:
        async with LLMClient(
            "claude-4.5-opus",
            environ=fake.env(),
            transport=fake.transport(),
            progress="none",
        ) as client:
            resp = await client.start("x", tools=[editor])
            assert resp.is_error and resp.attempts == 1 and resp.status_code == 400
            assert resp.rejected_tool_types == ("text_editor_20250728",)
            assert "rejected_tool_types" in (resp.error_message or "")
            assert editor == {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
            assert client.unsupported_tool_types() == {"text_editor_20250728"}
            # the client's own group (computer_use=True) steps past it without another 400
            ok = await client.start("y", computer_use=True)
    assert not ok.is_error and ok.rejected_tool_types == ()
    assert [r.status for r in fake.requests] == [400, 200]
    assert "text_editor_20250728" not in fake.requests[1].tool_types


async def test_the_client_group_steps_down_and_says_what_it_sent() -> None:
    async with FakeModel(reject_tool_types={"computer_20251124"}) as fake:
        async with LLMClient(
            "claude-4.5-opus", environ=fake.env(), transport=fake.transport(), progress="none"
        ) as client:
            resp = await client.start("x", computer_use=True)
    assert not resp.is_error and resp.attempts == 2
    assert resp.computer_tool_type == fake.requests[1].tool_types[0] != "computer_20251124"
