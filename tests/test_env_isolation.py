"""No credential reaches a tool subprocess or the desktop (issue 7, defect 1).

deskpilot's own environment holds API keys and cloud credentials; the bash tool's shell, Xvfb,
the window manager and every desktop app get an allow-listed environment instead
(:mod:`deskpilot.desktop.environment`). Checked on real processes: the shell's ``env`` and
``/proc/self/environ``, each desktop process's ``/proc/PID/environ``, and end to end through
an Agent whose scripted model asks for them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deskpilot import BashTool, ToolCall
from deskpilot.desktop.environment import ALLOWED_NAMES, child_env, is_allowed

SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-envsecret-0123456789abcdef",
    "ANTHROPIC_AUTH_TOKEN": "sk-ant-authtoken-envsecret-fedcba98",
    "OPENAI_API_KEY": "sk-openai-envsecret-77777777",
    "AWS_ACCESS_KEY_ID": "AKIAENVSECRET0000001",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-envsecret-wJalrXUtnFEMI",
    "AWS_SESSION_TOKEN": "aws-session-envsecret-IQoJb3JpZ2lu",
    "MY_SERVICE_TOKEN": "ghp_unlisted-envsecret-424242",  # any other name goes too
}


@pytest.fixture
def secrets_in_env(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    return SECRETS


def leaked(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_child_env_keeps_only_the_allow_list_and_explicit_variables():
    base = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_CTYPE": "C.UTF-8",
        "TERM": "xterm",
        "DISPLAY": ":0",
        **SECRETS,
        "LD_PRELOAD": "/tmp/evil.so",
        "SSH_AUTH_SOCK": "/tmp/agent",
    }
    env = child_env({"FOO": "bar"}, base=base)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_CTYPE": "C.UTF-8",
        "TERM": "xterm",
        "DISPLAY": ":0",
        "FOO": "bar",
    }
    assert "DISPLAY" not in child_env(base=base, drop=("DISPLAY",))
    # what the caller passes explicitly is its choice, never filtered
    assert child_env({"OPENAI_API_KEY": "given"}, base=base)["OPENAI_API_KEY"] == "given"
    assert not any(is_allowed(n) for n in SECRETS) and is_allowed("LC_ALL")
    assert {"PATH", "HOME", "LANG", "DISPLAY", "TERM", "XAUTHORITY"} <= ALLOWED_NAMES
    with pytest.raises(TypeError, match="must be strings"):
        child_env({"N": 1})  # type: ignore[dict-item]


async def test_bash_tool_shell_sees_no_credential(secrets_in_env, tmp_path):
    async with BashTool(timeout_s=10, cwd=tmp_path, env={"GIVEN": "explicit"}) as bash:
        outputs = []
        for command in (
            'echo "[$ANTHROPIC_API_KEY][$OPENAI_API_KEY][$AWS_SECRET_ACCESS_KEY]"',
            "env",
            "cat /proc/self/environ | tr '\\0' '\\n'",
            "bash -c 'cat /proc/$$/environ' | tr '\\0' '\\n'",  # a grandchild too
        ):
            result = await bash.execute(ToolCall("t", "bash", {"command": command}))
            assert not result.is_error, result.text
            outputs.append(result.text)
    assert outputs[0] == "[][][]"
    for text in outputs[1:]:
        assert leaked(text) == [], text
        assert "GIVEN=explicit" in text and "LC_TIME=C.UTF-8" in text and "PATH=" in text
        assert "PAGER=cat" in text


@pytest.mark.desktop
async def test_desktop_processes_see_no_credential(secrets_in_env):
    from deskpilot.desktop.local import LocalDesktop, merged_env

    async with LocalDesktop(640, 480, apps=("terminal",), env={"DESK_VAR": "yes"}) as desktop:
        pids = desktop.pids
        assert len(pids) == 3  # Xvfb, openbox, xterm
        app = await desktop.launch("xterm", "-e", "sleep", "30", env={"ONE_APP": "1"})
        for pid in [*pids, app.pid]:
            env = proc_environ(pid)
            assert leaked("\n".join(f"{k}={v}" for k, v in env.items())) == [], pid
            if pid != pids[0]:  # Xvfb starts before its display number is known
                assert env["DISPLAY"] == desktop.display
            assert env["HOME"] == str(desktop.home)
            assert env["DESK_VAR"] == "yes" and env["LC_TIME"] == "C.UTF-8"
        assert proc_environ(app.pid)["ONE_APP"] == "1"
        assert "ONE_APP" not in proc_environ(pids[2])
        own = merged_env(desktop)
        assert leaked(json.dumps(own)) == [] and own["DISPLAY"] == desktop.display


@pytest.mark.desktop
async def test_agent_run_never_shows_a_credential_to_the_model(secrets_in_env, tmp_path):
    """The issue's "Done when": a scripted model runs ``env`` and ``cat /proc/self/environ``
    through bash on a real desktop; no credential value appears in any tool result, any
    trajectory line or the report. The client takes its key from ANTHROPIC_API_KEY."""
    from deskpilot import LLMClient
    from deskpilot.agent.loop import Agent
    from deskpilot.agent.report import write_report
    from deskpilot.desktop.local import LocalDesktop
    from deskpilot.testing import FakeModelServer
    from deskpilot.testing.wire import message_response, text_response, tool_use_block

    commands = [
        "env",
        "cat /proc/self/environ | tr '\\0' '\\n'",
        # the shell has its own PID namespace (deskpilot.desktop.isolation): it sees no
        # desktop process (their environments are checked from outside above), only itself
        "for p in $(pgrep -x Xvfb) $(pgrep -x openbox) $$; do tr '\\0' '\\n' < /proc/$p/environ; done",
    ]
    responses = [
        message_response([tool_use_block("bash", {"command": c}, id=f"e{i}")])
        for i, c in enumerate(commands)
    ]
    async with FakeModelServer(api_key=SECRETS["ANTHROPIC_API_KEY"]) as server:
        server.enqueue(*responses, text_response("Looked at the environment."))
        async with (
            LocalDesktop(640, 480) as desktop,
            LLMClient("claude-4-sonnet", base_url=server.url, max_attempts=1, progress="none") as c,
        ):
            result = await Agent(c, desktop, out_dir=tmp_path / "runs").run("show me env")
        assert result.stop_reason == "end_turn", result.error
        # the key really was the client's (the server accepts only it)
        assert len(server.requests) == 4
    tool_results = [r for m in result.conversation.messages for r in m.tool_results]
    assert len(tool_results) == 3
    for r in tool_results:
        assert not r.is_error and "PATH=" in r.text, r.text
        assert leaked(r.text) == [], r.text
    assert "DISPLAY=" + desktop.display in tool_results[0].text
    run_dir = result.trajectory_dir
    assert run_dir is not None
    lines = (run_dir / "trajectory.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 5
    for line in lines:
        assert leaked(line) == [], line
    report = write_report(run_dir)
    assert leaked(report.read_text(encoding="utf-8")) == []
    assert leaked(repr(result)) == []
