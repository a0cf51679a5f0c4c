"""The ``deskpilot`` command: help texts, one-line errors with hints, report, doctor."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import deskpilot
from deskpilot.agent.records import StepRecord
from deskpilot.cli import main
from deskpilot.errors import ConfigError

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_run

COMMANDS = ["run", "desktop", "replay", "report", "doctor", "demo"]
NO_KEYS = {"ANTHROPIC_API_KEY": None, "OPENAI_API_KEY": None, "DESKPILOT_MODEL": None}


def invoke(*args: str, env: dict | None = None):
    runner = CliRunner()
    return runner.invoke(main, list(args), env={**NO_KEYS, **(env or {})})


def test_main_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output
    assert "deskpilot demo" in result.output and "ANTHROPIC_API_KEY" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: main {command}" in result.output or "Usage:" in result.output


def test_run_help_names_its_options() -> None:
    out = invoke("run", "--help").output
    for opt in (
        "--model",
        "--provider",
        "--width",
        "--height",
        "--max-turns",
        "--out",
        "--approve",
        "--replay",
        "--budget-usd",
        "--apps",
    ):
        assert opt in out
    assert "anthropic|bedrock|vertex|gateway" in out


def test_bad_model_name_suggests_close_matches() -> None:
    result = invoke("run", "open a terminal", "--model", "claude-sonet-4-5")
    assert result.exit_code == 1
    assert "Unknown model 'claude-sonet-4-5'" in result.output
    assert "Did you mean" in result.output and "claude-sonnet-4-5" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_api_key_points_to_the_demo() -> None:
    result = invoke("run", "open a terminal")
    assert result.exit_code == 1
    assert "ANTHROPIC_API_KEY is not set" in result.output
    assert "deskpilot demo" in result.output
    assert "Traceback" not in result.output


def test_gateway_needs_openai_key() -> None:
    result = invoke("run", "x", "--model", "anthropic/claude-3-5-sonnet-20241022")
    assert result.exit_code == 1
    assert "OPENAI_API_KEY is not set" in result.output


def test_missing_xvfb_says_how_to_install(tmp_path: Path) -> None:
    # an empty PATH: no Xvfb, no openbox
    result = invoke(
        "run", "x", env={"ANTHROPIC_API_KEY": "sk-ant-test-not-real", "PATH": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert "Xvfb and openbox are not installed" in result.output
    assert "deskpilot doctor --install" in result.output  # works from a pip install
    assert "sk-ant-test-not-real" not in result.output


def test_unknown_app_is_a_usage_error() -> None:
    result = invoke("run", "x", "--apps", "terminal,spreadsheet")
    assert result.exit_code == 2
    assert "spreadsheet" in result.output


def test_replay_of_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    result = invoke("run", "x", "--replay", str(tmp_path))
    assert result.exit_code == 1
    assert "no trajectory.jsonl" in result.output
    result = invoke("replay", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert "is not a directory" in result.output


def test_report_command_writes_report_and_gif(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    result = invoke("report", str(run))
    assert result.exit_code == 0, result.output
    assert (run / "report.html").is_file() and (run / "run.gif").is_file()
    assert str(run / "report.html") in result.output
    assert "file://" in result.output


def test_report_bad_dir_is_one_line_and_debug_shows_the_exception(tmp_path: Path) -> None:
    result = invoke("report", str(tmp_path / "missing"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "Traceback" not in result.output
    debug = CliRunner().invoke(main, ["--debug", "report", str(tmp_path / "missing")])
    assert debug.exit_code == 1
    assert isinstance(debug.exception, ConfigError)


def test_doctor_runs_and_reports_the_programs() -> None:
    result = invoke("doctor")
    assert result.exit_code in (0, 1), result.output
    assert "Xvfb" in result.output
    assert "sk-ant" not in result.output


@pytest.mark.parametrize("module", ["deskpilot.cli", "deskpilot"])
def test_console_entry_point_starts(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"deskpilot, version {deskpilot.__version__}"


def test_run_needs_a_task_without_replay() -> None:
    result = invoke("run", env={"ANTHROPIC_API_KEY": "sk-ant-test-not-real"})
    assert result.exit_code == 2
    assert "Missing argument 'TASK'" in result.output


@pytest.mark.desktop
@pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("Xvfb", "openbox")),
    reason="Xvfb and openbox are needed (bash scripts/install-desktop-deps.sh)",
)
def test_run_replay_offline_with_interactive_approval(tmp_path: Path) -> None:
    """`deskpilot run --replay DIR --approve`: the recorded model turns drive the real loop
    on a real desktop without a key; the y/n answers decide which actions run."""
    recorded = make_run(tmp_path / "recorded")
    out = tmp_path / "runs"
    # first the replay's own question (the recorded turns make a bash call); then
    # step 1: the click (allow); step 2: the drag (allow) and the bash call (decline)
    result = CliRunner().invoke(
        main,
        ["run", "--replay", str(recorded), "--approve", "--out", str(out), "--apps", ""],
        input="y\ny\ny\nn\n",
        env=NO_KEYS,
    )
    assert "1 bash/editor action(s) run on this machine" in result.output, result.output
    assert "Replaying 2 recorded model turns" in result.output, result.output
    assert "allow left_click (412, 300)? [y/N]" in result.output
    assert "      | cat /nonexistent\n  allow bash? [y/N]" in result.output
    (run_dir,) = list(out.iterdir())
    assert (run_dir / "report.html").is_file()
    lines = [json.loads(x) for x in (run_dir / "trajectory.jsonl").read_text().splitlines()]
    start = lines[0]
    assert (
        start["task"].startswith("Click the button")
        and start["model_id"] == "claude-sonnet-4-5-20250929"
    )
    steps = [x for x in lines if x["type"] == "step"]
    approved = [(a["name"], a["approved"]) for s in steps for a in s["actions"]]
    assert approved == [("computer", True), ("computer", True), ("bash", False)]
    declined = steps[1]["actions"][1]
    assert declined["is_error"] and "declined" in declined["text"]
    # the recording has no final answer, so the fake server's default reply ends the run
    assert lines[-1]["type"] == "run_end" and lines[-1]["stop_reason"] == "end_turn"
    assert result.exit_code == 0, result.output


@pytest.mark.desktop
@pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("Xvfb", "openbox", "xdpyinfo")),
    reason="Xvfb, openbox and xdpyinfo are needed (bash scripts/install-desktop-deps.sh)",
)
def test_desktop_command_prints_how_to_reach_it_and_stops_on_ctrl_c() -> None:
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "deskpilot.cli", "desktop", "--apps", "", "--width", "800"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(lines)
        m = re.search(r"DISPLAY=(:\d+) \(800x800", text)
        assert m, text
        display = m.group(1)
        auth = re.search(rf"DISPLAY={display} XAUTHORITY=(\S+) xterm", text)
        assert auth, text
        # the display really is up: a client with its cookie can connect to it
        probe = subprocess.run(
            ["xdpyinfo", "-display", display],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "XAUTHORITY": auth.group(1)},
        )
        assert probe.returncode == 0 and "800x800" in probe.stdout
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        gone = subprocess.run(["xdpyinfo", "-display", display], capture_output=True, timeout=20)
        assert gone.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_progress_lines_one_per_action(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import time

    from deskpilot.cli_show import step_printer

    run = make_run(tmp_path)
    lines = [json.loads(x) for x in (run / "trajectory.jsonl").read_text().splitlines()]
    printer = step_printer(time.monotonic())
    for record in lines[1:3]:
        printer(StepRecord.model_validate(record))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert re.match(r"  step +1  left_click \(412, 300\) +0\.23 s", out[0])
    assert re.match(r"  step +2  drag \(100, 120\) → \(500, 200\) +0\.27 s", out[1])
    assert "bash: cat /nonexistent" in out[2]
    assert out[2].endswith("ERROR: cat: /nonexistent: No such file or directory [exit code: 1]")


@pytest.mark.desktop
@pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("Xvfb", "openbox")),
    reason="Xvfb and openbox are needed (bash scripts/install-desktop-deps.sh)",
)
def test_run_against_an_api_from_the_environment(tmp_path: Path) -> None:
    """The live path of `deskpilot run`: key and base URL from the standard variables (here a
    fake server in another process); the key never reaches the output, trajectory or report."""
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": None,
                    "content": [
                        {"type": "text", "text": "Clicking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "computer",
                            "input": {"action": "left_click", "coordinate": [100, 120]},
                        },
                    ],
                    "stop_reason": "tool_use",
                    "stop_sequence": None,
                    "usage": "auto",
                },
                {
                    "id": "msg_2",
                    "type": "message",
                    "role": "assistant",
                    "model": None,
                    "content": [{"type": "text", "text": "All done."}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": "auto",
                },
            ]
        )
    )
    key = "sk-ant-api03-THIS-IS-A-TEST-KEY-0123456789"
    server = subprocess.Popen(
        [sys.executable, "-m", "deskpilot.testing.fake_server", "--script", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip().split("=", 1)[1]
        assert url.startswith("http://127.0.0.1:")
        out = tmp_path / "runs"
        result = CliRunner().invoke(
            main,
            ["run", "Click at 100,120", "--out", str(out), "--apps", "", "--max-turns", "5"],
            env={**NO_KEYS, "ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": url},
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert result.exit_code == 0, result.output
    assert re.search(r"step +1  left_click \(100, 120\)", result.output)
    assert "All done." in result.output and "end_turn: 2 steps" in result.output
    (run_dir,) = list(out.iterdir())
    for name in ("trajectory.jsonl", "report.html"):
        assert key not in (run_dir / name).read_text(encoding="utf-8")
    assert key not in result.output


# --- settings from the environment ---------------------------------------------------------

# command -> {parameter: (variable, value in the environment, parsed value)}
ENV_SETTINGS = {
    "run": {
        "model": ("DESKPILOT_MODEL", "claude-4-sonnet", "claude-4-sonnet"),
        "provider": ("DESKPILOT_PROVIDER", "bedrock", "bedrock"),
        "width": ("DESKPILOT_WIDTH", "1024", 1024),
        "height": ("DESKPILOT_HEIGHT", "768", 768),
        "max_turns": ("DESKPILOT_MAX_TURNS", "7", 7),
        "out": ("DESKPILOT_OUT", "/tmp/elsewhere", "/tmp/elsewhere"),
        "approve": ("DESKPILOT_APPROVE", "1", True),
        "budget_usd": ("DESKPILOT_BUDGET_USD", "0.5", 0.5),
        "budget_tokens": ("DESKPILOT_BUDGET_TOKENS", "9000", 9000),
        "apps": ("DESKPILOT_APPS", "editor,browser", "editor,browser"),
    },
    "desktop": {
        "width": ("DESKPILOT_WIDTH", "1024", 1024),
        "height": ("DESKPILOT_HEIGHT", "768", 768),
        "apps": ("DESKPILOT_APPS", "editor", "editor"),
    },
    "demo": {
        "out": ("DESKPILOT_OUT", "/tmp/elsewhere", "/tmp/elsewhere"),
        "keep_open": ("DESKPILOT_DEMO_KEEP_OPEN", "true", True),
    },
}


def parse(command: str, *args: str) -> dict:
    """The parameters click gives COMMAND for ARGS (the real option parsing, no run)."""
    parent = main.make_context("deskpilot", [command, *args])
    sub = main.get_command(parent, command)
    assert sub is not None
    with parent:
        return dict(sub.make_context(command, list(args), parent=parent).params)


@pytest.mark.parametrize("command", sorted(ENV_SETTINGS))
def test_settings_come_from_deskpilot_variables(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ENV_SETTINGS[command]
    defaults = parse(command)
    for param, (var, raw, value) in settings.items():
        monkeypatch.setenv(var, raw)
        assert defaults[param] != value, param  # the variable, not the default, decides
    params = parse(command)
    for param, (_, _, value) in settings.items():
        assert params[param] == value, param


@pytest.mark.parametrize("command", sorted(ENV_SETTINGS))
def test_help_shows_each_variable(command: str) -> None:
    text = " ".join(invoke(command, "--help").output.split())
    for var, _, _ in ENV_SETTINGS[command].values():
        assert f"env var: {var}" in text, var


def test_the_command_line_beats_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKPILOT_MAX_TURNS", "7")
    monkeypatch.setenv("DESKPILOT_APPS", "browser")
    params = parse("run", "task", "--max-turns", "3", "--apps", "terminal")
    assert (params["max_turns"], params["apps"]) == (3, "terminal")


def test_debug_comes_from_the_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["report", str(tmp_path / "missing")], env={**NO_KEYS, "DESKPILOT_DEBUG": "1"}
    )
    assert isinstance(result.exception, ConfigError)  # raised, not turned into one line


def test_a_provider_from_the_environment_is_used() -> None:
    result = invoke("run", "open a terminal", env={"DESKPILOT_PROVIDER": "gateway"})
    assert result.exit_code == 1
    assert "OPENAI_API_KEY is not set" in result.output


def test_a_bad_value_from_the_environment_names_the_option() -> None:
    result = invoke("run", "x", env={"DESKPILOT_WIDTH": "10"})
    assert result.exit_code == 2
    assert "--width" in result.output and "10 is not in the range 200<=x<=8192" in result.output


def test_command_line_only_options_ignore_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("DESKPILOT_VERSION", "DESKPILOT_DOCTOR_INSTALL", "DESKPILOT_RUN_REPLAY_DIR"):
        monkeypatch.setenv(var, "1")
    assert parse("doctor")["do_install"] is False
    assert parse("run", "x")["replay_dir"] is None
    result = invoke("doctor", "--help")
    assert result.exit_code == 0 and "Usage: deskpilot doctor" in result.output


# options that confirm, install or switch what runs: typed on the command line, never
# picked up from a variable left in the shell (DESKPILOT_REPLAY_YES must not skip a question)
COMMAND_LINE_ONLY = {"--yes", "-y", "--install", "--dry-run", "--replay", "--version"}


def test_confirming_options_are_command_line_only() -> None:
    ctx = click.Context(main)
    commands = [main, *(main.get_command(ctx, n) for n in main.list_commands(ctx))]
    checked = 0
    for command in commands:
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option) and COMMAND_LINE_ONLY & set(param.opts):
                assert param.allow_from_autoenv is False, (command.name, param.opts)
                assert not param.envvar, (command.name, param.opts)
                checked += 1
    assert checked >= 4
