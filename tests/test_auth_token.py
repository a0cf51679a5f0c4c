"""``ANTHROPIC_AUTH_TOKEN`` / ``auth_token=``: bearer auth for the Anthropic API (issue 10, item 3).

The precedence is the Anthropic SDK's (``src/anthropic/_client.py`` of
anthropics/anthropic-sdk-python: ``auth_headers`` = ``X-Api-Key`` + ``Authorization: Bearer``;
an explicit ``api_key=`` / ``auth_token=`` means no credential variable is read). The token
is a credential like a key: redacted from errors, logs and trajectories.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from deskpilot import LLMClient
from deskpilot.agent.records import ResponseRecord, StepRecord
from deskpilot.agent.trajectory import TrajectoryWriter
from deskpilot.cli_logging import environment_secrets
from deskpilot.client.redact import REDACTED
from deskpilot.errors import ConfigError
from deskpilot.response import ErrorKind
from deskpilot.testing import FakeModel, FakeModelServer, RecordedRequest, error_reply

TOKEN = "sk-ant-oat01-BEARER-test-token-0123456789"
KEY = "sk-ant-api03-KEY-test-key-0123456789abcdef"


def _client(fake: FakeModel, **settings: Any) -> LLMClient:
    settings.setdefault("environ", {})
    return LLMClient(
        "claude-4-sonnet",
        base_url=fake.url,
        transport=fake.transport(),
        max_attempts=1,
        progress="none",
        **settings,
    )


async def _one(fake: FakeModel, **settings: Any) -> tuple[Any, RecordedRequest]:
    async with _client(fake, **settings) as client:
        resp = await client.start("hello")
    return resp, fake.requests[-1]


async def test_the_token_alone_is_sent_as_bearer_without_an_api_key_header() -> None:
    async with FakeModel(auth_token=TOKEN) as fake:
        resp, req = await _one(fake, environ={"ANTHROPIC_AUTH_TOKEN": TOKEN})
    assert not resp.is_error, resp.error_message
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-api-key" not in req.headers
    assert req.headers["anthropic-version"] == "2023-06-01"


async def test_the_auth_token_argument_wins_over_the_environment_key() -> None:
    async with FakeModel(auth_token=TOKEN) as fake:
        resp, req = await _one(fake, environ={"ANTHROPIC_API_KEY": KEY}, auth_token=TOKEN)
    assert not resp.is_error
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-api-key" not in req.headers  # an explicit credential argument is total


async def test_the_api_key_argument_wins_over_the_environment_token() -> None:
    async with FakeModel(api_key=KEY) as fake:
        resp, req = await _one(fake, environ={"ANTHROPIC_AUTH_TOKEN": TOKEN}, api_key=KEY)
    assert not resp.is_error
    assert req.headers["x-api-key"] == KEY
    assert "authorization" not in req.headers


async def test_both_variables_send_both_headers_as_the_sdk_does() -> None:
    async with FakeModel(api_key=KEY, auth_token=TOKEN) as fake:
        resp, req = await _one(
            fake, environ={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_AUTH_TOKEN": TOKEN}
        )
    assert not resp.is_error
    assert req.headers["x-api-key"] == KEY
    assert req.headers["authorization"] == f"Bearer {TOKEN}"


async def test_no_credential_sends_no_empty_api_key_header() -> None:
    async with FakeModel() as fake:
        resp, req = await _one(fake, environ={})
    assert "x-api-key" not in req.headers and "authorization" not in req.headers
    assert resp.is_error and resp.status_code == 401
    assert "ANTHROPIC_AUTH_TOKEN" in (resp.error_message or "")  # the hint names it


def _echo_bearer(req: RecordedRequest) -> Any:
    sent = req.headers.get("authorization", "").removeprefix("Bearer ")
    return error_reply(401, message=f"Invalid bearer token {sent}")


@pytest.mark.parametrize("source", ["env", "arg"])
async def test_an_echoed_token_never_leaves_the_client(source: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings: dict[str, Any] = (
        {"environ": {"ANTHROPIC_AUTH_TOKEN": TOKEN}}
        if source == "env"
        else {"environ": {}, "auth_token": TOKEN}
    )
    async with FakeModel(handler=_echo_bearer) as fake:
        async with _client(fake, **settings) as client:
            resp = await client.start("x")
            values = client.credential_values()
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"  # sent and echoed
    assert resp.status_code == 401 and REDACTED in (resp.error_message or "")
    texts = [resp.error_message or "", repr(resp), json.dumps(resp.raw), caplog.text]
    assert all(TOKEN not in t for t in texts)
    assert TOKEN in values
    assert TOKEN not in repr(client.config)


async def test_a_wrong_token_is_an_authentication_error_not_retried() -> None:
    async with FakeModel(auth_token=TOKEN) as fake:
        async with _client(fake, environ={"ANTHROPIC_AUTH_TOKEN": "sk-ant-oat01-wrong-0000"}) as c:
            resp = await c.start("x")
    assert resp.is_error and resp.status_code == 401
    assert resp.error_kind is ErrorKind.AUTHENTICATION
    assert len(fake.requests) == 1


async def test_the_token_goes_over_the_real_wire() -> None:
    async with FakeModelServer(auth_token=TOKEN) as server:
        async with LLMClient(
            "claude-4-sonnet",
            environ={"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_AUTH_TOKEN": TOKEN},
            progress="none",
        ) as client:
            resp = await client.start("x")
    assert not resp.is_error, resp.error_message
    (req,) = server.requests
    assert req.headers["authorization"] == f"Bearer {TOKEN}" and "x-api-key" not in req.headers


def test_a_token_with_a_line_break_inside_is_refused_and_one_around_it_stripped() -> None:
    with pytest.raises(ConfigError, match="auth_token="):
        LLMClient("claude-4-sonnet", environ={}, auth_token="abc\ndef", progress="none")
    client = LLMClient("claude-4-sonnet", environ={}, auth_token=f"{TOKEN}\r\n", progress="none")
    assert client.config.auth_token == TOKEN


def test_the_cli_log_filter_knows_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", TOKEN)
    assert TOKEN in environment_secrets()


async def test_the_trajectory_never_holds_the_environment_token(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", TOKEN)
    writer = TrajectoryWriter(tmp_path)
    await writer.write_line(
        StepRecord(index=1, response=ResponseRecord(error_message=f"401 bad token {TOKEN}"))
    )
    raw = (tmp_path / "trajectory.jsonl").read_text()
    assert TOKEN not in raw and "[redacted]" in raw


def test_the_cli_accepts_a_token_in_place_of_a_key(monkeypatch) -> None:
    from deskpilot.cli import _require_key

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_AUTH_TOKEN"):
        _require_key("anthropic")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", TOKEN)
    _require_key("anthropic")  # no error: the token is a credential
