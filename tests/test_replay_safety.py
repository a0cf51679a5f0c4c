"""Replaying a crafted run directory can read nothing outside it and runs no host command
unasked (security issue, defect 4), and a damaged line is handled the same way by the report
and by replay (one reader).

Fast: the replay desktop is the in-package FakeComputer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

from deskpilot.agent.replay import replay_run
from deskpilot.agent.report import write_report
from deskpilot.cli import main
from deskpilot.desktop.fake import FakeComputer

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_run


def fake_desktop(width: int, height: int, **_: object) -> FakeComputer:
    return FakeComputer(width, height)


def _edit(run: Path, change) -> None:
    lines = [json.loads(x) for x in (run / "trajectory.jsonl").read_text().splitlines()]
    change(lines)
    (run / "trajectory.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


class _Opens:
    """Paths opened by this process while active (``sys.addaudithook`` ``open`` events)."""

    hooked = False
    active: list[str] | None = None

    def __enter__(self) -> list[str]:
        if not _Opens.hooked:
            sys.addaudithook(_Opens._hook)
            _Opens.hooked = True
        _Opens.active = []
        return _Opens.active

    def __exit__(self, *exc: object) -> None:
        _Opens.active = None

    @staticmethod
    def _hook(event: str, args: tuple) -> None:
        if event == "open" and _Opens.active is not None and isinstance(args[0], str | Path):
            _Opens.active.append(str(args[0]))


def _host_actions_run(tmp_path: Path, marker: Path, editor_target: Path) -> Path:
    run = make_run(tmp_path / "runs")

    def change(lines: list[dict]) -> None:
        lines[2]["actions"][1]["input"] = {"command": f"touch {marker}; pwd"}
        lines[2]["actions"][1]["text"] = "recorded"
        lines[2]["actions"][1]["is_error"] = False
        lines[2]["actions"].append(
            {
                "tool_use_id": "toolu_04",
                "name": "str_replace_based_edit_tool",
                "input": {"command": "create", "path": str(editor_target), "file_text": "x\n"},
                "approved": True,
                "is_error": False,
                "text": "File created successfully.",
                "screenshot": None,
            }
        )

    _edit(run, change)
    return run


async def test_screenshot_paths_from_the_trajectory_are_confined(tmp_path: Path) -> None:
    """Regression: replay read ``"../../x.png"`` and ``/etc/passwd`` from a crafted run."""
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"\x89PNG not really")
    run = make_run(tmp_path / "runs")
    link_target = tmp_path / "linked.png"
    link_target.write_bytes(b"\x89PNG not really either")
    (run / "screenshots/0002-0.png").unlink()
    (run / "screenshots/0002-0.png").symlink_to(link_target)

    def change(lines: list[dict]) -> None:
        lines[0]["initial_screenshot"] = "../../outside.png"
        lines[1]["actions"][0]["screenshot"] = "/etc/passwd"

    _edit(run, change)
    with _Opens() as opened:
        report = await replay_run(run, desktop_factory=fake_desktop)
    assert not any(
        p.endswith(("outside.png", "passwd", "linked.png")) or "/etc/" in p for p in opened
    ), opened
    # the steps that name escaping paths are unreadable; the symlink is not compared
    kinds = [(d.step, d.kind) for d in report.divergences]
    assert (1, "unreadable") in kinds
    assert any("refused" in d.detail for d in report.divergences if d.kind == "unreadable")


async def test_bash_and_editor_actions_do_not_run_unless_allowed(tmp_path: Path) -> None:
    """Regression: replay re-executed recorded bash and editor actions on the host, with no
    confinement and no confirmation."""
    marker, target = tmp_path / "pwned", tmp_path / "pwned.txt"
    run = _host_actions_run(tmp_path, marker, target)
    report = await replay_run(run, desktop_factory=fake_desktop)
    assert not marker.exists() and not target.exists()
    assert [p.label for p in report.skipped] == ["bash", "str_replace_based_edit_tool"]
    assert "2 bash/editor action(s) were not replayed" in report.format()


async def test_allowed_host_actions_run_inside_the_sandbox(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    run = make_run(tmp_path / "runs")
    inside = sandbox / "notes.txt"
    outside = tmp_path / "escaped.txt"

    def change(lines: list[dict]) -> None:
        lines[2]["actions"][1]["input"] = {"command": "touch made-here && pwd"}
        lines[2]["actions"][1]["is_error"] = False
        for k, path in enumerate((inside, outside, Path("../escaped-too.txt"))):
            lines[2]["actions"].append(
                {
                    "tool_use_id": f"ed{k}",
                    "name": "str_replace_based_edit_tool",
                    "input": {"command": "create", "path": str(path), "file_text": "x\n"},
                    "approved": True,
                    "text": "File created successfully.",
                }
            )

    _edit(run, change)
    report = await replay_run(
        run, desktop_factory=fake_desktop, host_actions=True, sandbox_dir=sandbox
    )
    assert report.sandbox == sandbox.resolve() and not report.skipped
    # bash ran with its working directory in the sandbox
    assert (sandbox / "made-here").is_file()
    bash = next(d for d in report.divergences if d.action == "bash")
    assert str(sandbox.resolve()) in bash.detail
    # the editor may write inside the sandbox, not outside it
    assert inside.is_file() and not outside.exists()
    assert not (tmp_path / "escaped-too.txt").exists()
    refused = [d for d in report.divergences if d.kind == "is_error"]
    assert [(d.action, d.index) for d in refused] == [
        ("str_replace_based_edit_tool", 3),
        ("str_replace_based_edit_tool", 4),
    ]


async def test_default_sandbox_is_a_scratch_directory_removed_afterwards(tmp_path: Path) -> None:
    marker = Path("replay-marker")
    run = _host_actions_run(tmp_path, marker, Path("notes.txt"))
    report = await replay_run(run, desktop_factory=fake_desktop, host_actions=True)
    assert report.sandbox is not None and report.sandbox.name.startswith("deskpilot-replay-")
    assert not report.sandbox.exists()  # a FakeComputer has no scratch HOME: removed
    assert not marker.exists() and not Path("notes.txt").exists()  # not in our cwd


def test_replay_command_shows_the_plan_and_asks_first(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run = _host_actions_run(tmp_path, marker, tmp_path / "pwned.txt")
    result = CliRunner().invoke(main, ["replay", str(run)], input="n\n")
    assert result.exit_code == 1
    out = result.output
    assert "will run 4 recorded action(s)" in out
    # every host action is flagged and shown in full, whatever its length
    assert "[runs on THIS machine]" in out and f"      | touch {marker}; pwd\n" in out
    assert f"      | path: {tmp_path / 'pwned.txt'}\n" in out
    assert "2 bash/editor action(s) run on this machine (inside a scratch directory)" in out
    assert "Nothing was replayed" in out
    assert not marker.exists()
    # the plan comes before the question
    assert out.index("left_click (412, 300)") < out.index("Run them?")


async def test_a_damaged_line_is_handled_the_same_by_report_and_replay(tmp_path: Path) -> None:
    """One reader: a corrupted line in the middle and a truncated last line are unreadable
    entries with the same reason for both (replay used to raise on the first, the report to
    skip it)."""
    run = make_run(tmp_path, with_end=False)
    lines = (run / "trajectory.jsonl").read_text().splitlines()
    lines.insert(2, '{"type": "step", "index": 9, "response": {"usage": {"input_tokens": "lots"}}}')
    lines.insert(3, "this line is corrupted")
    text = "\n".join(lines) + '\n{"type": "step", "index": 3, "resp'
    (run / "trajectory.jsonl").write_text(text)
    page = write_report(run).read_text(encoding="utf-8")
    report = await replay_run(run, desktop_factory=fake_desktop)
    unreadable = [d for d in report.divergences if d.kind == "unreadable"]
    assert [d.step for d in unreadable] == [9, 0]  # the two lines that claim to be steps
    for d in unreadable:
        sentence = d.detail.removesuffix(" Its actions were not replayed.")
        line = int(sentence.split()[1])
        reason = sentence.split("could not be read: ", 1)[1].rstrip(".")
        assert f'id="line-{line}"' in page
        assert reason.replace("'", "&#39;") in page
    assert "Line 4 of trajectory.jsonl could not be read: not valid JSON" in page
    # both still show and replay the readable steps
    assert 'id="step-1"' in page and 'id="step-2"' in page
    assert report.actions_replayed == 2  # the click and the drag; bash is not allowed here
