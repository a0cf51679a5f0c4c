"""Credentials never leave the client (issue 7, defect 2): a server that echoes the key it got
(``401 invalid x-api-key sk-ant-...``) must not put it in the response, the agent's result,
the trajectory, the report or the CLI's output, whether the key came from the environment
or from ``api_key=``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from click.testing import CliRunner

from deskpilot import Agent, LLMClient
from deskpilot.client.redact import REDACTED, Redactor
from deskpilot.desktop.fake import FakeComputer
from deskpilot.testing import FakeModel, FakeModelServer, RecordedRequest, error_reply

KEY = "sk-ant-api03-ECHOED-test-key-0123456789abcdef"
GATEWAY_KEY = "sk-gw-ECHOED-test-key-9876543210"
AKID, AWS_SECRET, AWS_TOKEN = (
    "AKIDECHOTEST",
    "aws-SECRET-echoed-0123456789",
    "aws-TOKEN-abcdef012345",
)


def echo_credentials(req: RecordedRequest) -> Any:
    """A careless server: its 401 / 403 repeats the credential it was sent."""
    if req.api == "bedrock":
        return error_reply(
            403,
            message=f"The security token {AWS_TOKEN} for secret {AWS_SECRET} is invalid",
        )
    if req.api == "gateway":
        sent = req.headers["authorization"].removeprefix("Bearer ")
        return error_reply(401, message=f"Incorrect API key provided: {sent}")
    return error_reply(401, message=f"invalid x-api-key {req.headers['x-api-key']}")


def texts_of(resp: Any) -> list[str]:
    return [resp.error_message or "", repr(resp), json.dumps(resp.raw), str(resp.error_type)]


def client_settings(source: str, fake: FakeModel, key: str, env_name: str) -> dict[str, Any]:
    if source == "env":
        return {"environ": {env_name: key}}
    return {"environ": {}, "api_key": key}


@pytest.mark.parametrize("source", ["env", "arg"])
async def test_an_echoed_anthropic_key_never_leaves_the_client(source: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeModel(handler=echo_credentials) as fake:
        client = LLMClient(
            "claude-4-sonnet",
            base_url=fake.url,
            transport=fake.transport(),
            max_attempts=1,
            progress="none",
            **client_settings(source, fake, KEY, "ANTHROPIC_API_KEY"),
        )
        async with client:
            (resp,) = await client.process_prompts_async(["x"], show_progress=False)
    assert fake.requests[0].headers["x-api-key"] == KEY  # the key was sent, and echoed
    assert resp.status_code == 401 and REDACTED in (resp.error_message or "")
    assert REDACTED in json.dumps(resp.raw)  # the error body is kept, redacted
    for text in [*texts_of(resp), caplog.text]:
        assert KEY not in text
    assert KEY in client.credential_values()


@pytest.mark.parametrize("source", ["env", "arg"])
async def test_an_echoed_gateway_key_never_leaves_the_client(source: str) -> None:
    async with FakeModel(handler=echo_credentials) as fake:
        async with LLMClient(
            "anthropic/claude-3-5-sonnet-20241022",
            base_url=fake.gateway_base_url,
            transport=fake.transport(),
            max_attempts=1,
            progress="none",
            **client_settings(source, fake, GATEWAY_KEY, "OPENAI_API_KEY"),
        ) as client:
            resp = await client.start("x")
    assert fake.requests[0].headers["authorization"] == f"Bearer {GATEWAY_KEY}"
    assert resp.status_code == 401 and REDACTED in (resp.error_message or "")
    assert all(GATEWAY_KEY not in t for t in texts_of(resp))


@pytest.mark.parametrize("source", ["env", "arg"])
async def test_echoed_aws_secrets_never_leave_the_client(source: str) -> None:
    async with FakeModel(handler=echo_credentials, aws_credentials=(AKID, AWS_SECRET)) as fake:
        settings: dict[str, Any] = (
            {
                "environ": {
                    "AWS_ACCESS_KEY_ID": AKID,
                    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                    "AWS_SESSION_TOKEN": AWS_TOKEN,
                    "AWS_REGION": "us-east-1",
                }
            }
            if source == "env"
            else {
                "environ": {"AWS_REGION": "us-east-1"},
                "aws_credentials": Credentials(AKID, AWS_SECRET, AWS_TOKEN),
            }
        )
        async with LLMClient(
            "claude-4-sonnet-bedrock",
            endpoint_url=fake.url,
            transport=fake.transport(),
            max_attempts=1,
            progress="none",
            **settings,
        ) as client:
            resp = await client.start("x")
            values = client.credential_values()
    assert fake.requests[0].headers["x-amz-security-token"] == AWS_TOKEN
    assert resp.status_code == 403 and REDACTED in (resp.error_message or "")
    for secret in (AWS_SECRET, AWS_TOKEN):
        assert secret in values
        assert all(secret not in t for t in texts_of(resp))


@pytest.mark.parametrize("source", ["env", "arg"])
async def test_agent_result_trajectory_and_report_never_hold_the_key(
    source: str, tmp_path: Path
) -> None:
    async with FakeModel(handler=echo_credentials) as fake:
        async with LLMClient(
            "claude-4-sonnet",
            base_url=fake.url,
            transport=fake.transport(),
            max_attempts=1,
            progress="none",
            **client_settings(source, fake, KEY, "ANTHROPIC_API_KEY"),
        ) as client:
            result = await Agent(client, FakeComputer(640, 480), out_dir=tmp_path).run("look")
    assert result.stop_reason == "api_error" and REDACTED in (result.error or "")
    assert KEY not in (result.error or "") and KEY not in repr(result)
    run_dir = Path(result.trajectory_dir)
    from deskpilot.cli import main

    report = CliRunner().invoke(main, ["report", str(run_dir)])
    assert report.exit_code == 0, report.output
    written = [p for p in run_dir.rglob("*") if p.suffix in (".jsonl", ".html", ".json")]
    assert any(p.name == "trajectory.jsonl" for p in written)
    assert any(p.suffix == ".html" for p in written)
    for path in written:
        assert KEY not in path.read_text(errors="replace"), path


@pytest.mark.desktop
@pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("Xvfb", "openbox")),
    reason="Xvfb and openbox are needed (bash scripts/install-desktop-deps.sh)",
)
def test_the_cli_never_prints_or_writes_the_key(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    with FakeModelServer(handler=echo_credentials) as server:  # served from a thread
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANTHROPIC_", "OPENAI_", "AWS_", "DESKPILOT_"))
        }
        env.update(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.url)
        deskpilot = str(Path(sys.executable).parent / "deskpilot")  # the console script
        args = ["run", "Look at the screen", "--out", str(out), "--apps", "", "--max-turns", "2"]
        run = subprocess.run(
            [deskpilot, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        sent = [r.headers.get("x-api-key") for r in server.requests]
    assert sent and all(k == KEY for k in sent)  # the server got (and echoed) the key
    assert run.returncode != 0
    assert REDACTED in run.stderr + run.stdout, run.stderr
    assert KEY not in run.stdout and KEY not in run.stderr
    files = [p for p in out.rglob("*") if p.suffix in (".jsonl", ".html", ".json")]
    assert any(p.name == "trajectory.jsonl" for p in files)
    for path in files:
        assert KEY not in path.read_text(errors="replace"), path


def test_redactor_cuts_every_value_longest_first_and_leaves_short_ones() -> None:
    r = Redactor(["sk-ant-abc123456", "sk-ant-abc123456-and-more", "k2", ""])
    assert r.secrets == ("sk-ant-abc123456-and-more", "sk-ant-abc123456")
    assert r.text("a sk-ant-abc123456-and-more b sk-ant-abc123456 k2") == (
        f"a {REDACTED} b {REDACTED} k2"
    )
    data = {"error": {"message": ["x sk-ant-abc123456"], "sk-ant-abc123456": 3, "n": None}}
    assert r.data(data) == {"error": {"message": [f"x {REDACTED}"], REDACTED: 3, "n": None}}
    assert "sk-ant" not in repr(r)
    assert Redactor().text("sk-ant-abc123456") == "sk-ant-abc123456"


def test_credential_values_lists_what_the_client_holds() -> None:
    client = LLMClient(
        ["claude-4-sonnet", "claude-4-sonnet-bedrock"],
        api_key="sk-ant-argument-0123456789",
        aws_credentials=Credentials(AKID, AWS_SECRET, AWS_TOKEN),
        environ={"OPENAI_API_KEY": GATEWAY_KEY, "AWS_REGION": "us-east-1"},
    )
    values = client.credential_values()
    assert set(values) == {"sk-ant-argument-0123456789", GATEWAY_KEY, AWS_SECRET, AWS_TOKEN}
    assert AKID not in values  # an access key id is an identifier, not a secret
    assert all(v not in repr(client) for v in values)
