"""Vertex AI with Google credentials from a file, over the real wire (issue 10, item 1).

Each test writes a service-account JSON with a fresh RSA key (``cryptography``) whose
``token_uri`` is the FakeModelServer's ``/token`` on loopback; google-auth signs a JWT with
the key, the fake checks the signature and issues access tokens that expire, and the
Vertex route accepts only tokens it issued and that are still valid. The client loads the
file named by ``GOOGLE_APPLICATION_CREDENTIALS`` (as Application Default Credentials do),
takes the project from it, and refreshes the token in a worker thread when it expires.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from deskpilot import LLMClient
from deskpilot.response import ErrorKind
from deskpilot.testing import FakeModelServer
from deskpilot.testing.vertex_route import FAKE_VERTEX_PROJECT, VertexAuth


def adc_env(server: FakeModelServer, directory: Path, project: bool = False) -> dict[str, str]:
    """The fake's Vertex variables and a service-account file; no project variable unless
    ``project`` (the client must read it from the file)."""
    env = {
        "ANTHROPIC_VERTEX_BASE_URL": server.url + "/v1",
        "CLOUD_ML_REGION": "europe-west1",
        "GOOGLE_APPLICATION_CREDENTIALS": server.write_vertex_credentials(directory),
    }
    if project:
        env["ANTHROPIC_VERTEX_PROJECT_ID"] = "from-the-variable"
    return env


def bearer(server: FakeModelServer, i: int) -> str:
    return server.requests[i].headers["authorization"].removeprefix("Bearer ")


async def test_a_service_account_file_gives_the_token_and_the_project(tmp_path: Path) -> None:
    async with FakeModelServer() as server:
        async with LLMClient(
            "claude-4-sonnet-vertex", environ=adc_env(server, tmp_path), progress="none"
        ) as client:
            resp = await client.start("x", computer_use=True)
            values = client.credential_values()
    assert not resp.is_error, resp.error_message
    (req,) = server.requests
    assert req.api == "vertex" and req.status == 200
    assert req.path.startswith(f"/v1/projects/{FAKE_VERTEX_PROJECT}/locations/europe-west1/")
    assert len(server.vertex.token_requests) == 1
    token = bearer(server, 0)
    assert token in server.vertex.issued and token in values  # issued, and redacted


async def test_the_project_variable_wins_over_the_file(tmp_path: Path) -> None:
    async with FakeModelServer() as server:
        env = adc_env(server, tmp_path, project=True)
        async with LLMClient("claude-4-sonnet-vertex", environ=env, progress="none") as c:
            resp = await c.start("x")
    assert not resp.is_error
    assert "/projects/from-the-variable/" in server.requests[0].path


async def test_an_expired_token_is_refreshed(tmp_path: Path) -> None:
    # google-auth treats a token as expired 225 s before its expiry (REFRESH_THRESHOLD), so a
    # 226 s lifetime makes it stale after one second while the server still accepts it.
    async with FakeModelServer(vertex_token_expires_in_s=226) as server:
        env = adc_env(server, tmp_path)
        async with LLMClient("claude-4-sonnet-vertex", environ=env, progress="none") as c:
            first = await c.start("one")
            again = await c.start("two")  # within the second: the same token
            await asyncio.sleep(1.2)
            later = await c.start("three")
    assert not (first.is_error or again.is_error or later.is_error)
    assert bearer(server, 0) == bearer(server, 1)
    assert bearer(server, 2) != bearer(server, 0)
    assert len(server.vertex.token_requests) == 2


async def test_concurrent_requests_share_one_token_request(tmp_path: Path) -> None:
    async with FakeModelServer() as server:
        server.vertex.token_delay_s = 0.3
        env = adc_env(server, tmp_path)
        async with LLMClient("claude-4-sonnet-vertex", environ=env, progress="none") as c:
            results = await c.process_prompts_async([f"p{i}" for i in range(12)])
    assert all(not r.is_error for r in results)
    assert len(server.requests) == 12 and len(server.vertex.token_requests) == 1
    assert len({bearer(server, i) for i in range(12)}) == 1


async def test_the_token_request_never_blocks_the_event_loop(tmp_path: Path) -> None:
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with FakeModelServer() as server:
        server.vertex.token_delay_s = 0.8  # the token endpoint is slow
        env = adc_env(server, tmp_path)
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        async with LLMClient("claude-4-sonnet-vertex", environ=env, progress="none") as c:
            started = time.monotonic()
            resp = await c.start("x")
            took = time.monotonic() - started
        stop.set()
        await tick
    assert not resp.is_error and took >= 0.8
    assert max(gaps) < 0.3, f"the loop stalled for {max(gaps):.2f} s"


async def test_a_key_the_token_endpoint_refuses_is_a_credentials_error(tmp_path: Path) -> None:
    async with FakeModelServer() as server:
        stranger = VertexAuth()  # a key the server never saw
        path = stranger.write_service_account(tmp_path, server.url + "/token")
        env: dict[str, Any] = {
            "ANTHROPIC_VERTEX_BASE_URL": server.url + "/v1",
            "CLOUD_ML_REGION": "us-east5",
            "GOOGLE_APPLICATION_CREDENTIALS": str(path),
        }
        async with LLMClient(
            "claude-4-sonnet-vertex", environ=env, progress="none", max_attempts=1
        ) as c:
            resp = await c.start("x")
    assert resp.is_error and resp.error_kind is ErrorKind.CONFIGURATION
    assert "could not be refreshed" in (resp.error_message or "")
    assert "unknown issuer" in (resp.error_message or "")
    assert server.requests == []  # nothing reached Vertex without a token
    assert len(server.vertex.token_requests) == 1


async def test_a_missing_credentials_file_is_a_credentials_error(tmp_path: Path) -> None:
    env = {
        "ANTHROPIC_VERTEX_BASE_URL": "http://127.0.0.1:9/v1",
        "CLOUD_ML_REGION": "us-east5",
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json"),
    }
    async with LLMClient("claude-4-sonnet-vertex", environ=env, progress="none") as c:
        resp = await c.start("x")
    assert resp.is_error and resp.error_kind is ErrorKind.CONFIGURATION
    assert "GOOGLE_APPLICATION_CREDENTIALS" in (resp.error_message or "")
