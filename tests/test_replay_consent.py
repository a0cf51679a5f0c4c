"""Replaying a crafted run runs nothing on this machine unasked (probe #1 findings B, C, F, G).

- B: keyboard input (``type``, ``key``...) is asked about like bash: a terminal on the
  desktop runs what is typed, on this machine.
- F: a call is routed to the executor it would reach; an unknown tool or toolset name
  (``toolset_name: "computer_helpers"`` on a bash call) is unsupported, shown, never run.
- G: ``deskpilot replay`` replays the Run whose plan was approved; the file is not read again.
- C: ``deskpilot run --replay`` shows the recorded turns' calls and asks the same way, and
  runs bash and the editor confined to the desktop's scratch directory.

The library tests use the in-package FakeComputer; the CLI ones start a real Xvfb desktop
(``deskpilot replay`` and ``run`` always do) with the loopback fake model server.
"""

from __future__ import annotations

import inspect
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from deskpilot.agent.replay import (
    consent_question,
    format_plan,
    plan_calls,
    recorded_calls,
    replay_plan,
    replay_run,
)
from deskpilot.agent.trajectory import read_run
from deskpilot.cli import main
from deskpilot.desktop.fake import FakeComputer

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")
XTERM_POINT = [300, 200]  # inside the desktop's xterm (at +40+40, about 800x500)


def write_run(
    run: Path, calls: list[dict[str, Any]], *, versions: dict[str, str] | None = None, **start: Any
) -> Path:
    """A run directory whose steps each make one recorded call (action record and tool_use)."""
    (run / "screenshots").mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = [
        {
            "type": "run_start",
            "task": "harmless looking task",
            "model": "claude-sonnet-4-5",
            "native_size": [1280, 800],
            "model_size": [1280, 800],
            "tool_versions": versions
            if versions is not None
            else {
                "computer": "computer_20250124",
                "editor": "text_editor_20250728",
                "bash": "bash_20250124",
            },
            "apps": ["terminal"],
            **start,
        }
    ]
    for i, call in enumerate(calls, 1):
        use = {"type": "tool_use", "id": f"t{i}", "name": call["name"], "input": call["input"]}
        if call.get("toolset_name"):
            use["toolset_name"] = call["toolset_name"]
        lines.append(
            {
                "type": "step",
                "index": i,
                "response": {"content": [use], "stop_reason": "tool_use"},
                "actions": [{"tool_use_id": f"t{i}", "executed": True, "text": "", **call}],
            }
        )
    lines.append(
        {
            "type": "step",
            "index": len(calls) + 1,
            "response": {"content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"},
        }
    )
    lines.append({"type": "run_end", "stop_reason": "end_turn", "steps": len(calls) + 1})
    (run / "trajectory.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run


def typing_run(run: Path, text: str) -> Path:
    """Probe finding B: only computer actions: click the xterm, type a command."""
    return write_run(
        run,
        [
            {"name": "computer", "input": {"action": "left_click", "coordinate": XTERM_POINT}},
            {"name": "computer", "input": {"action": "type", "text": text}},
        ],
    )


# --- B: keyboard input --------------------------------------------------------------------


def test_keyboard_input_is_in_the_plan_and_needs_consent(tmp_path: Path) -> None:
    run = read_run(typing_run(tmp_path / "run", "touch /tmp/x; exit\n"))
    plan = replay_plan(run)
    assert [(p.label, p.reach) for p in plan] == [
        ("computer left_click", "desktop"),
        ("computer type", "keyboard"),
    ]
    shown = format_plan(plan)
    assert "[keyboard input]" in shown and "      | text: touch /tmp/x; exit\\n" in shown
    assert "a terminal on the desktop runs what is typed on THIS machine" in plan[1].reason
    question = consent_question(plan)
    assert question is not None and "1 keyboard input(s)" in question
    # pointer-only actions need no consent; a click holding keys does
    held = replay_plan(
        read_run(
            write_run(
                tmp_path / "held",
                [{"name": "computer", "input": {"action": "left_click", "text": "ctrl"}}],
            )
        )
    )
    assert held[0].needs_consent


async def test_keyboard_input_is_not_replayed_without_consent(tmp_path: Path) -> None:
    """Regression (probe B): replay typed recorded keyboard input with no question."""
    run = typing_run(tmp_path / "run", "touch /tmp/x; exit\n")
    desktops: list[FakeComputer] = []

    def factory(width: int, height: int, **_: Any) -> FakeComputer:
        desktops.append(FakeComputer(width, height))
        return desktops[-1]

    report = await replay_run(run, desktop_factory=factory)
    assert desktops[0].typed == []
    assert [p.label for p in report.skipped] == ["computer type"]
    assert "1 keyboard input(s) were not replayed" in report.format()
    report = await replay_run(run, desktop_factory=factory, host_actions=True)
    assert desktops[1].typed == ["touch /tmp/x; exit\n"] and not report.skipped


@needs_xvfb
def test_replay_command_asks_before_typing_into_the_terminal(tmp_path: Path) -> None:
    """Regression (probe B): `deskpilot replay` typed a command into the desktop's xterm
    (which ran it on this machine) without asking; now "n" runs nothing, --yes runs it."""
    marker = tmp_path / "typed-by-replay"
    run = typing_run(tmp_path / "run", f"touch {marker}; sleep 0.5; exit\n")
    result = CliRunner().invoke(main, ["replay", str(run)], input="n\n")
    assert result.exit_code == 1, result.output
    assert "[keyboard input]" in result.output and "Nothing was replayed" in result.output
    assert not marker.exists()
    result = CliRunner().invoke(main, ["replay", str(run), "--yes"])
    assert "Replayed 2 actions" in result.output, result.output
    assert marker.exists()


# --- F: routing by executor ---------------------------------------------------------------


async def test_a_call_with_an_unknown_toolset_is_shown_and_never_run(tmp_path: Path) -> None:
    """Regression (probe F): a bash call recorded with toolset_name "computer_helpers" was
    not flagged in the plan, yet ran (in bash) once the visible host action was approved."""
    hidden, sandbox = tmp_path / "hidden-ran", tmp_path / "sandbox"
    run = write_run(
        tmp_path / "run",
        [
            {"name": "bash", "input": {"command": "echo hello"}, "text": "hello"},
            {
                "name": "bash",
                "toolset_name": "computer_helpers",
                "input": {"command": "true" + " " * 200 + f"; touch {hidden}"},
            },
            {"name": "my_custom_tool", "input": {"x": 1}},
        ],
    )
    report = await replay_run(
        run,
        desktop_factory=lambda width, height, **_: FakeComputer(width, height),
        host_actions=True,
        sandbox_dir=sandbox,
    )
    assert not hidden.exists()
    assert [(d.step, d.kind) for d in report.divergences] == [
        (2, "unsupported"),
        (3, "unsupported"),
    ]
    assert report.actions_replayed == 1
    plan = replay_plan(read_run(run))
    assert [p.reach for p in plan] == ["machine", "unsupported", "unsupported"]
    shown = format_plan(plan)
    assert "[NOT RUN: the toolset 'computer_helpers' is not the run's computer tool" in shown
    assert "[NOT RUN: no recorded tool is named 'my_custom_tool'" in shown
    question = consent_question(plan)
    assert question is not None and question.startswith("1 bash/editor action(s)")


def test_calls_are_routed_by_the_recorded_tool_versions(tmp_path: Path) -> None:
    """The toolset's members reach the computer; a bash call in a run without a bash tool
    reaches nothing; a tool named like the editor of ANOTHER version reaches nothing."""
    run = write_run(
        tmp_path / "run",
        [
            {"name": "type", "toolset_name": "computer", "input": {"text": "ls\n"}},
            {"name": "left_click", "toolset_name": "computer", "input": {"coordinate": [1, 2]}},
            {"name": "bash", "input": {"command": "ls"}},
            {"name": "str_replace_editor", "input": {"command": "view", "path": "/"}},
        ],
        versions={
            "computer": "computer_toolset_20260801",
            "editor": "text_editor_20250728",
        },
    )
    plan = replay_plan(read_run(run))
    assert [p.reach for p in plan] == ["keyboard", "desktop", "unsupported", "unsupported"]


# --- G: the approved Run is the one replayed ----------------------------------------------


class _SwapOnAnswer(io.BytesIO):
    """stdin that rewrites the run's trajectory when ``click.confirm`` reads the answer (the
    probe's swap after the plan was shown)."""

    def __init__(self, answer: bytes, swap: Any) -> None:
        super().__init__(answer)
        self._swap: Any = swap

    def _maybe_swap(self) -> None:
        # only when the question reads its answer (the plan has been shown by then)
        asking = any(f.function == "confirm" for f in inspect.stack(0))
        if self._swap is not None and asking:
            self._swap()
            self._swap = None

    def read(self, *args: Any) -> bytes:
        self._maybe_swap()
        return super().read(*args)

    def read1(self, *args: Any) -> bytes:
        self._maybe_swap()
        return super().read1(*args)

    def readline(self, *args: Any) -> bytes:
        self._maybe_swap()
        return super().readline(*args)


@needs_xvfb
def test_replay_runs_the_plan_that_was_approved_not_a_swapped_file(tmp_path: Path) -> None:
    """Regression (probe G): replay read trajectory.jsonl again after the user said yes; a
    command swapped in meanwhile ran instead of the one shown."""
    shown, swapped = tmp_path / "approved-ran", tmp_path / "swapped-ran"
    versions = {"bash": "bash_20250124"}
    run = write_run(
        tmp_path / "run",
        [{"name": "bash", "input": {"command": f"touch {shown}"}}],
        versions=versions,
    )

    def swap() -> None:
        write_run(
            run, [{"name": "bash", "input": {"command": f"touch {swapped}"}}], versions=versions
        )

    result = CliRunner().invoke(main, ["replay", str(run)], input=_SwapOnAnswer(b"y\n", swap))
    assert f"| touch {shown}" in result.output, result.output
    assert "Replayed 1 actions" in result.output, result.output
    assert shown.exists() and not swapped.exists()


# --- C: run --replay ------------------------------------------------------------------------


def test_run_replay_plans_the_recorded_turns_calls(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run",
        [
            {"name": "bash", "input": {"command": "touch x"}},
            {"name": "computer", "input": {"action": "key", "text": "ctrl+alt+t"}},
            {"name": "computer", "input": {"action": "mouse_move", "coordinate": [5, 5]}},
        ],
    )
    loaded = read_run(run)
    assert loaded.start is not None
    plan = plan_calls(recorded_calls(loaded), loaded.start.tool_versions)
    assert [(p.step, p.label, p.reach) for p in plan] == [
        (1, "bash", "machine"),
        (2, "computer key", "keyboard"),
        (3, "computer mouse_move", "desktop"),
    ]


@needs_xvfb
def test_run_replay_asks_first_and_confines_bash_and_the_editor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (probe C): `deskpilot run --replay DIR` ran the recorded bash command in
    the current directory and let the editor write anywhere, without showing or asking."""
    cwd, outside = tmp_path / "cwd", tmp_path / "outside.txt"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    run = write_run(
        tmp_path / "run",
        [
            {"name": "bash", "input": {"command": "touch made-by-replay; pwd"}},
            {
                "name": "str_replace_based_edit_tool",
                "input": {"command": "create", "path": str(outside), "file_text": "x\n"},
            },
        ],
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--replay", str(run), "--out", str(out)], input="n\n")
    assert result.exit_code == 1, result.output
    assert "      | touch made-by-replay; pwd" in result.output
    assert f"      | path: {outside}" in result.output
    assert "2 bash/editor action(s) run on this machine" in result.output
    assert not (cwd / "made-by-replay").exists() and not out.exists()

    result = CliRunner().invoke(
        main, ["run", "--replay", str(run), "--out", str(out), "--yes", "--apps", ""]
    )
    assert result.exit_code == 0, result.output
    assert not (cwd / "made-by-replay").exists() and not outside.exists()
    replayed = read_run(next(out.iterdir()))
    bash, editor = (s.actions[0] for s in replayed.readable_steps[:2])
    assert bash.executed and not bash.is_error
    assert "deskpilot-home-" in bash.text and str(cwd) not in bash.text  # ran in the sandbox
    assert editor.executed and editor.is_error  # outside the sandbox: refused


def test_run_replay_refuses_a_run_without_tool_versions(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [{"name": "bash", "input": {"command": "ls"}}], versions={})
    result = CliRunner().invoke(main, ["run", "--replay", str(run)], input="y\n")
    assert result.exit_code == 1
    assert "records no tool versions" in result.output
