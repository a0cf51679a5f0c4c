"""Nothing deskpilot writes into a run directory goes through a planted symlink, and run
directories are private (probe #1, finding D and "run dirs world-readable").

A crafted run directory handed to ``deskpilot report`` (or a prompt-injected agent writing
into its own run directory) plants symlinks named like the files deskpilot writes; their
targets, outside the run directory, must stay untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskpilot.agent.records import ActionRecord, ResponseRecord, RunStart, StepRecord
from deskpilot.agent.report import write_checks, write_outputs
from deskpilot.agent.trajectory import TrajectoryWriter, new_run_dir, read_run
from deskpilot.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_run

ORIGINAL = "export PS1=original\n"


def _victims(root: Path, names: list[str]) -> dict[str, Path]:
    victims = root / "victims"
    victims.mkdir()
    out = {}
    for name in names:
        (victims / name).write_text(ORIGINAL)
        out[name] = victims / name
    return out


def _untouched(victims: dict[str, Path]) -> None:
    for path in victims.values():
        assert path.read_text() == ORIGINAL, f"{path} was overwritten"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_report_does_not_write_through_planted_symlinks(tmp_path: Path) -> None:
    """Regression: ``deskpilot report`` wrote report.html.tmp, run.gif and run.mp4 through
    symlinks planted in the run directory, overwriting their targets (e.g. ~/.bashrc)."""
    run = make_run(tmp_path)
    names = ["report.html.tmp", "run.gif", "run.mp4", "report.html"]
    victims = _victims(tmp_path, names)
    for name in names:
        (run / name).symlink_to(victims[name])
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    _untouched(victims)
    for name in ("report.html", "run.gif") + (("run.mp4",) if shutil.which("ffmpeg") else ()):
        path = run / name
        assert not path.is_symlink() and path.is_file(), name
        assert _mode(path) == 0o600, name
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (run / "run.gif").read_bytes()[:6] == b"GIF89a"
    # no temporary file is left behind
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp") and p.name[0] == "."]


def test_the_end_of_run_report_does_not_write_through_planted_symlinks(tmp_path: Path) -> None:
    """The agent's end-of-run report (``write_outputs``, what ``deskpilot run`` calls) uses
    the same code: a symlink planted by a prompt-injected agent in its own run directory is
    replaced, its target left alone."""
    run = make_run(tmp_path)
    victims = _victims(tmp_path, ["report.html.tmp", "run.gif"])
    for name, target in victims.items():
        (run / name).symlink_to(target)
    outputs = write_outputs(run, mp4=False)
    _untouched(victims)
    assert outputs.report == run.resolve() / "report.html"
    assert not outputs.report.is_symlink() and outputs.animations == [run.resolve() / "run.gif"]
    assert not (run / "run.gif").is_symlink()


async def test_the_trajectory_writer_never_follows_planted_symlinks(tmp_path: Path) -> None:
    """Regression: screenshots, trajectory.jsonl and checks.json were opened by name, so a
    symlink planted in the run directory redirected the write."""
    run_dir = new_run_dir(tmp_path / "runs", "task")
    writer = TrajectoryWriter(run_dir)
    victims = _victims(tmp_path, ["shot", "checks", "trajectory"])
    (run_dir / "screenshots/0001-0.png").symlink_to(victims["shot"])
    (run_dir / "checks.json").symlink_to(victims["checks"])
    rel = await writer.save_screenshot("0001-0", b"\x89PNG\r\n\x1a\nnew", "image/png")
    write_checks(run_dir, [{"name": "saved", "ok": True, "detail": "x"}])
    _untouched(victims)
    assert (run_dir / rel).read_bytes() == b"\x89PNG\r\n\x1a\nnew"
    assert not (run_dir / rel).is_symlink() and not (run_dir / "checks.json").is_symlink()
    assert json.loads((run_dir / "checks.json").read_text())[0]["name"] == "saved"
    # trajectory.jsonl: a symlink (or a hard link to someone's file) is refused, not appended to
    (run_dir / "trajectory.jsonl").symlink_to(victims["trajectory"])
    with pytest.raises(OSError):
        await writer.write_line(RunStart(task="x"))
    (run_dir / "trajectory.jsonl").unlink()
    os.link(victims["trajectory"], run_dir / "trajectory.jsonl")
    with pytest.raises(OSError):
        await writer.write_line(RunStart(task="x"))
    _untouched(victims)
    # screenshots/ swapped for a symlink to another directory: refused
    (run_dir / "trajectory.jsonl").unlink()
    shutil.rmtree(run_dir / "screenshots")
    (run_dir / "screenshots").symlink_to(victims["shot"].parent)
    with pytest.raises(OSError):
        await writer.save_screenshot("0001-0", b"\x89PNG\r\n\x1a\nagain", "image/png")
    _untouched(victims)
    assert sorted(p.name for p in victims["shot"].parent.iterdir()) == [
        "checks",
        "shot",
        "trajectory",
    ]


async def test_run_directories_and_files_are_private(tmp_path: Path) -> None:
    """Regression: run directories were 0755 and their files 0644 (screens can hold
    secrets)."""
    old = os.umask(0o022)
    try:
        run_dir = new_run_dir(tmp_path / "runs", "task")
        writer = TrajectoryWriter(run_dir)
        await writer.write_line(RunStart(task="x"))
        rel = await writer.save_screenshot("0001-0", b"\x89PNG\r\n\x1a\n", "image/png")
        await writer.write_line(
            StepRecord(
                index=1,
                response=ResponseRecord(),
                actions=[ActionRecord(tool_use_id="a", name="computer", screenshot=rel)],
            )
        )
        write_checks(run_dir, [])
    finally:
        os.umask(old)
    assert _mode(run_dir) == 0o700
    assert _mode(run_dir / "screenshots") == 0o700
    for name in ("trajectory.jsonl", rel, "checks.json"):
        assert _mode(run_dir / name) == 0o600, name
    assert read_run(run_dir).readable_steps[0].actions[0].screenshot == rel
