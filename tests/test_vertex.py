"""Claude on Vertex AI (issue 10, item 1): URL, body and headers for every region form, model
names, beta flags, the fake's checks, and error classification.

The wire format is the Anthropic SDK's Vertex client (``src/anthropic/lib/vertex/_client.py``
of anthropics/anthropic-sdk-python). These tests run in process: the client's requests go
through a MockTransport to the FakeModel, whose Vertex route checks the path, the body and
the bearer token (the network and ADC: tests/test_vertex_adc.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from deskpilot import LLMClient
from deskpilot.client.redact import REDACTED
from deskpilot.errors import ConfigError
from deskpilot.models import resolve_model
from deskpilot.providers.vertex import default_base_url, parse_vertex_error, predict_url
from deskpilot.response import ErrorKind
from deskpilot.testing import FakeModel, RecordedRequest, error_reply, text_response
from deskpilot.testing.vertex_route import (
    FAKE_VERTEX_PROJECT,
    FAKE_VERTEX_TOKEN,
    validate_vertex,
)

SONNET_4 = "claude-sonnet-4@20250514"


def vertex_client(fake: FakeModel, model: str = "claude-4-sonnet-vertex", **kw: Any) -> LLMClient:
    kw.setdefault("environ", fake.env())
    kw.setdefault("google_credentials", fake.vertex_credentials())
    return LLMClient(model, transport=fake.transport(), progress="none", retry_base_s=0.01, **kw)


async def one(fake: FakeModel, model: str = "claude-4-sonnet-vertex", **kw: Any) -> Any:
    async with vertex_client(fake, model, **kw) as client:
        return await client.start("Take a screenshot", computer_use=True)


# --- URL, body, headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("us-east5", "us-east5-aiplatform.googleapis.com"),
        ("europe-west1", "europe-west1-aiplatform.googleapis.com"),
        ("global", "aiplatform.googleapis.com"),
        ("us", "aiplatform.us.rep.googleapis.com"),
        ("eu", "aiplatform.eu.rep.googleapis.com"),
    ],
)
async def test_every_region_form_has_its_endpoint(region: str, host: str) -> None:
    async with FakeModel() as fake:
        env = {"CLOUD_ML_REGION": region, "ANTHROPIC_VERTEX_PROJECT_ID": "my-proj"}
        resp = await one(fake, environ=env)
    assert not resp.is_error, resp.error_message
    (req,) = fake.requests
    assert req.api == "vertex" and req.status == 200
    assert req.headers["host"] == host
    assert req.path == (
        f"/v1/projects/my-proj/locations/{region}/publishers/anthropic/models/{SONNET_4}:rawPredict"
    )
    assert default_base_url(region) == f"https://{host}/v1"


async def test_the_body_and_headers_are_vertex_shaped() -> None:
    async with FakeModel([text_response("On Vertex.")]) as fake:
        resp = await one(fake)
    assert resp.completion == "On Vertex." and resp.provider == "vertex"
    assert resp.model_id == SONNET_4
    (req,) = fake.requests
    assert req.raw_path.endswith(f"/models/{SONNET_4}:rawPredict")  # "@" sent as is
    body = req.body
    assert body["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in body and "anthropic_beta" not in body
    assert isinstance(body["max_tokens"], int) and body["messages"][0]["role"] == "user"
    assert [t["type"] for t in body["tools"]] == [
        "computer_20250124",
        "text_editor_20250429",
        "bash_20250124",
    ]
    assert req.headers["authorization"] == f"Bearer {FAKE_VERTEX_TOKEN}"
    assert req.headers["anthropic-beta"] == "computer-use-2025-01-24"
    assert "x-api-key" not in req.headers and "anthropic-version" not in req.headers


async def test_a_beta_flag_can_be_moved_into_the_body() -> None:
    async with FakeModel() as fake:
        resp = await one(fake, vertex_body_betas=("computer-use-2025-01-24",))
    assert not resp.is_error, resp.error_message
    (req,) = fake.requests
    assert req.body["anthropic_beta"] == ["computer-use-2025-01-24"]
    assert "anthropic-beta" not in req.headers
    assert req.betas == ["computer-use-2025-01-24"]


async def test_arguments_win_over_the_environment() -> None:
    async with FakeModel() as fake:
        env = {
            **fake.env(),
            "ANTHROPIC_VERTEX_BASE_URL": "https://ignored.example/v1",
            "CLOUD_ML_REGION": "ignored-region",
            "ANTHROPIC_VERTEX_PROJECT_ID": "ignored-project",
        }
        resp = await one(
            fake,
            environ=env,
            base_url="https://vertex.internal/v1",
            region="asia-east1",
            project_id="argument-project",
        )
    assert not resp.is_error, resp.error_message
    (req,) = fake.requests
    assert req.headers["host"] == "vertex.internal"
    assert req.path.startswith("/v1/projects/argument-project/locations/asia-east1/")


async def test_the_environment_base_url_is_used() -> None:
    async with FakeModel() as fake:
        resp = await one(fake)  # fake.env(): ANTHROPIC_VERTEX_BASE_URL = the fake's /v1
    assert not resp.is_error
    assert fake.requests[0].headers["host"] == "fake-model.invalid"
    assert f"/projects/{FAKE_VERTEX_PROJECT}/locations/us-east5/" in fake.requests[0].path


def test_a_vertex_model_without_a_region_is_refused_at_construction() -> None:
    with pytest.raises(ConfigError, match="CLOUD_ML_REGION"):
        LLMClient("claude-4-sonnet-vertex", environ={}, google_credentials=Credentials("t"))


async def test_no_project_anywhere_is_a_configuration_error_with_a_hint() -> None:
    async with FakeModel() as fake:
        env = {k: v for k, v in fake.env().items() if k != "ANTHROPIC_VERTEX_PROJECT_ID"}
        resp = await one(fake, environ=env)
    assert resp.is_error and resp.error_kind is ErrorKind.CONFIGURATION
    assert "ANTHROPIC_VERTEX_PROJECT_ID" in (resp.error_message or "")
    assert fake.requests == []  # nothing was sent


def test_predict_url_quotes_segments_and_keeps_the_date() -> None:
    url = predict_url("https://x/v1/", "p 1", "us-east5", "claude-opus-4-5@20251101")
    assert url == (
        "https://x/v1/projects/p%201/locations/us-east5/publishers/anthropic/models/"
        "claude-opus-4-5@20251101:rawPredict"
    )


# --- model names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("claude-4-sonnet-vertex", "claude-sonnet-4@20250514"),
        ("claude-3.7-sonnet-vertex", "claude-3-7-sonnet@20250219"),
        ("claude-3-5-sonnet-20241022-vertex", "claude-3-5-sonnet-v2@20241022"),
        ("vertex/claude-sonnet-4-5", "claude-sonnet-4-5@20250929"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5@20250929"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5@20251001"),
        ("vertex/claude-opus-4-5@20251101", "claude-opus-4-5@20251101"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2@20241022"),
        ("vertex/claude-opus-4-6", "claude-opus-4-6"),  # undated ids stay undated
        ("claude-4.1-opus-vertex", "claude-opus-4-1@20250805"),
    ],
)
def test_vertex_names_resolve_to_vertex_ids(name: str, model_id: str) -> None:
    spec = resolve_model(name)
    assert spec.provider == "vertex" and spec.model_id == model_id
    anthropic = resolve_model(name.removeprefix("vertex/").removesuffix("-vertex").split("@")[0])
    assert spec.generation() == anthropic.generation("anthropic")  # the Claude API's tools


def test_the_provider_setting_moves_every_model_to_vertex() -> None:
    client = LLMClient(
        ["claude-4-sonnet", "claude-4.5-haiku"],
        provider="vertex",
        environ={"CLOUD_ML_REGION": "global"},
        google_credentials=Credentials("t"),
    )
    assert [m.model_id for m in client.models] == [SONNET_4, "claude-haiku-4-5@20251001"]


# --- errors ----------------------------------------------------------------------------------


async def test_a_quota_429_is_rate_limited_and_retried() -> None:
    async with FakeModel([text_response("ok")]) as fake:
        fake.inject(429)
        resp = await one(fake)
    assert not resp.is_error and resp.attempts == 2
    first = fake.requests[0]
    assert first.status == 429 and first.error_type == "RESOURCE_EXHAUSTED"


async def test_a_quota_429_that_lasts_fails_as_rate_limited() -> None:
    async with FakeModel() as fake:
        fake.inject(429, count=3)
        resp = await one(fake, max_attempts=3)
    assert resp.is_error and resp.error_kind is ErrorKind.RATE_LIMITED
    assert resp.error_type == "rate_limit_error" and "Quota exceeded" in (resp.error_message or "")
    assert "Vertex AI request" in (resp.error_message or "")


async def test_an_overloaded_529_passes_through_and_is_retried() -> None:
    async with FakeModel() as fake:
        fake.inject(529, count=2)
        resp = await one(fake, max_attempts=2)
    assert resp.is_error and resp.error_kind is ErrorKind.OVERLOADED
    assert [r.status for r in fake.requests] == [529, 529]


async def test_a_bad_token_is_an_authentication_error_not_retried() -> None:
    async with FakeModel() as fake:
        resp = await one(fake, google_credentials=Credentials("ya29.not-a-known-token"))
    assert resp.is_error and resp.error_kind is ErrorKind.AUTHENTICATION
    assert resp.status_code == 401 and len(fake.requests) == 1
    assert "UNAUTHENTICATED" in (resp.error_message or "")
    assert "Google credentials" in (resp.error_message or "")


@pytest.mark.parametrize(
    ("status", "data", "etype"),
    [
        (429, {"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}, "rate_limit_error"),
        (429, [{"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}], "rate_limit_error"),
        (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "overloaded_error"),
        (503, {"error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}, "overloaded_error"),
        (403, {"error": {"code": 403, "message": "x", "status": "PERMISSION_DENIED"}}, "permission_error"),
        (404, {"error": {"code": 404, "message": "x", "status": "NOT_FOUND"}}, "not_found_error"),
        (400, {"error": {"code": 400, "message": "x", "status": "INVALID_ARGUMENT"}}, "invalid_request_error"),
        (500, "<html>oops</html>", "api_error"),
    ],
)  # fmt: skip
def test_vertex_error_shapes_map_to_the_api_types(status: int, data: Any, etype: str) -> None:
    assert parse_vertex_error(status, data).error_type == etype


async def test_an_echoed_access_token_is_redacted() -> None:
    def echo(req: RecordedRequest) -> Any:
        return error_reply(400, message=f"bad request from {req.headers['authorization']}")

    async with FakeModel(handler=echo) as fake:
        async with vertex_client(fake, max_attempts=1) as client:
            resp = await client.start("x")
            values = client.credential_values()
    assert FAKE_VERTEX_TOKEN in values
    texts = [resp.error_message or "", json.dumps(resp.raw), repr(resp)]
    assert all(FAKE_VERTEX_TOKEN not in t for t in texts)
    assert REDACTED in (resp.error_message or "")


# --- the fake's checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [{}]}, "vertex-2023-10-16"),
        ({"anthropic_version": "vertex-2023-10-16", "model": "m", "max_tokens": 5, "messages": [{}]}, "in the URL"),
        ({"anthropic_version": "vertex-2023-10-16", "messages": [{}]}, "max_tokens"),
        ({"anthropic_version": "vertex-2023-10-16", "max_tokens": 5, "messages": [{}],
          "tools": [{"type": "computer_20250124", "name": "computer"}]}, "requires the beta flag"),
    ],
)  # fmt: skip
def test_the_fake_refuses_what_vertex_refuses(body: dict[str, Any], words: str) -> None:
    reply = validate_vertex({}, body, SONNET_4, ())
    assert reply is not None and reply.status == 400
    assert words in json.dumps(reply.body)


async def test_the_fake_refuses_a_request_without_a_bearer_token() -> None:
    async with FakeModel() as fake:
        from deskpilot.transport import HTTPRequest

        body = b'{"anthropic_version":"vertex-2023-10-16","max_tokens":5,"messages":[]}'
        url = f"{fake.url}/v1/projects/p/locations/r/publishers/anthropic/models/m:rawPredict"
        answer = await fake.handle(HTTPRequest("POST", url, {}, body))
    assert answer.status == 401
    assert json.loads(answer.body)["error"]["status"] == "UNAUTHENTICATED"


def test_the_cli_asks_for_a_region_before_starting_a_desktop(monkeypatch) -> None:
    from deskpilot.cli import _require_key

    monkeypatch.delenv("CLOUD_ML_REGION", raising=False)
    with pytest.raises(ConfigError, match="CLOUD_ML_REGION"):
        _require_key("vertex")
    monkeypatch.setenv("CLOUD_ML_REGION", "global")
    _require_key("vertex")


def test_doctor_lists_google_auth_as_optional() -> None:
    from deskpilot.doctor import check

    (row,) = [c for c in check({}) if c.name == "python: google.auth"]
    assert row.ok and not row.required  # installed by the dev extra; only Vertex needs it
