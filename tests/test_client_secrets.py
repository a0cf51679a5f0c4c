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
from deskpilot.testing import (
    FakeModel,
    FakeModelServer,
    RecordedRequest,
    error_reply,
    text_response,
)

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


# --- partial and split echoes (probe 1, finding M) --------------------------------------------

PARTIAL_KEY = "sk-ant-api03-PROBEKEY-abcdefghijklmnop0123456789"


def longest_run(secret: str, text: str) -> int:
    """The most consecutive characters of ``secret`` found together in ``text``."""
    best = 0
    for i in range(len(secret)):
        for j in range(len(secret), i + best, -1):
            if secret[i:j] in text:
                best = j - i
                break
    return best


def partial_echoes(key: str) -> list[tuple[str, Any]]:
    from deskpilot.testing import FakeReply

    return [
        (
            "html body, the key straddles the 500-character cut",
            FakeReply(
                401,
                ("<html><body>" + "x" * 468 + key + "</body></html>").encode(),
                {"content-type": "text/html"},
            ),
        ),
        ("masked echo", error_reply(401, message=f"invalid x-api-key {key[:24]}...{key[-4:]}")),
        ("split over two lines", error_reply(401, message=f"bad key {key[:20]}\n{key[20:]}")),
        (
            "split in small pieces",
            error_reply(401, message=f"key {key[:7]} {key[7:16]}\n{key[16:]}"),
        ),
    ]


@pytest.mark.parametrize("case", range(4))
async def test_partial_and_split_echoes_of_the_key_never_leave_the_client(
    case: int, tmp_path: Path
) -> None:
    name, reply = partial_echoes(PARTIAL_KEY)[case]
    async with FakeModel([reply]) as fake:
        async with LLMClient(
            "claude-4-sonnet",
            transport=fake.transport(),
            max_attempts=1,
            progress="none",
            api_key=PARTIAL_KEY,
            environ={},
        ) as client:
            result = await Agent(client, FakeComputer(320, 240), out_dir=tmp_path).run("look")
    assert result.stop_reason == "api_error" and REDACTED in (result.error or ""), name
    run_dir = Path(result.trajectory_dir)
    from deskpilot.agent.report import write_report

    write_report(run_dir)
    texts = {
        "AgentResult.error": result.error or "",
        "repr(result)": repr(result),
        "trajectory": (run_dir / "trajectory.jsonl").read_text(),
        "report.html": (run_dir / "report.html").read_text(),
    }
    for where, text in texts.items():
        assert longest_run(PARTIAL_KEY, text) < 12, (name, where, text[-300:])


def test_redactor_cuts_runs_of_twelve_characters_prefixes_suffixes_and_splits() -> None:
    key = PARTIAL_KEY
    r = Redactor([key])
    assert r.text("x" * 40 + key[:20]) == "x" * 40 + REDACTED  # cut at a length limit
    assert r.text(f"got {key[:24]}...{key[-4:]}.") == f"got {REDACTED}...{key[-4:]}."
    assert r.text(f"{key[-14:]} at the end") == f"{REDACTED} at the end"
    assert r.text(f"a {key[:20]}\n{key[20:]} b") == f"a {REDACTED} b"  # split over lines
    assert r.text(f"a {key[:6]} \n {key[6:14]} b") == f"a {REDACTED} b"  # two short pieces
    # eleven characters of the key, or a run broken by other text, are left alone
    assert r.text(f"tail {key[-11:]}") == f"tail {key[-11:]}"
    assert r.text(f"{key[:8]}Q{key[8:16]}") == f"{key[:8]}Q{key[8:16]}"
    assert r.text("nothing of it here") == "nothing of it here"
    # a value from 8 to 11 characters is only cut whole
    short = Redactor(["abcdefghij"])
    assert short.text("abcdefghij abcdefgh") == f"{REDACTED} abcdefgh"


# --- a key with a line break (probe 1, "a key with a trailing newline") ------------------------

NEWLINE_KEY = "sk-ant-api03-NEWLINEKEY-abcdefghijklmnop0123456789"


@pytest.mark.parametrize("source", ["env", "arg"])
@pytest.mark.parametrize("around", ["\n", "\r\n", " ", "\t\n"])
async def test_a_key_read_with_its_line_break_is_stripped_with_a_warning(
    source: str, around: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="deskpilot.client")
    settings = (
        {"environ": {"ANTHROPIC_API_KEY": NEWLINE_KEY + around}}
        if source == "env"
        else {"environ": {}, "api_key": around + NEWLINE_KEY + around}
    )
    async with FakeModelServer(api_key=NEWLINE_KEY) as server:
        server.enqueue(text_response("ok"))
        async with LLMClient(
            "claude-4-sonnet", base_url=server.url, max_attempts=1, progress="none", **settings
        ) as client:
            resp = await client.start("x")
            values = client.credential_values()
    assert not resp.is_error, resp.error_message
    assert server.requests[0].headers["x-api-key"] == NEWLINE_KEY
    assert values == (NEWLINE_KEY,)
    name = "ANTHROPIC_API_KEY" if source == "env" else "api_key="
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(name in w and "line break" in w for w in warnings), warnings
    assert all(NEWLINE_KEY[:12] not in w for w in warnings)


@pytest.mark.parametrize("source", ["env", "arg"])
@pytest.mark.parametrize("inside", ["\x00", "\n", " ", "\x1b"])
def test_a_key_with_a_control_character_inside_is_refused_with_a_sentence(
    source: str, inside: str
) -> None:
    from deskpilot.errors import ConfigError

    bad = NEWLINE_KEY[:20] + inside + NEWLINE_KEY[20:]
    settings: dict[str, Any] = (
        {"environ": {"ANTHROPIC_API_KEY": bad}} if source == "env" else {"api_key": bad}
    )
    with pytest.raises(ConfigError) as err:
        LLMClient("claude-4-sonnet", progress="none", **{"environ": {}, **settings})
    name = "ANTHROPIC_API_KEY" if source == "env" else "api_key="
    assert f"{name} contains a control character or whitespace inside it" in str(err.value)
    assert NEWLINE_KEY[:12] not in str(err.value)


def test_aws_credentials_from_the_environment_are_stripped_too() -> None:
    client = LLMClient(
        "claude-4-sonnet-bedrock",
        progress="none",
        environ={
            "AWS_ACCESS_KEY_ID": AKID + "\n",
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET + "\r\n",
            "AWS_SESSION_TOKEN": AWS_TOKEN + "\n",
            "AWS_REGION": "us-east-1",
        },
    )
    assert set(client.credential_values()) == {AWS_SECRET, AWS_TOKEN}
