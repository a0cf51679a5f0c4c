"""TrajectoryWriter / read_trajectory: the on-disk contract of TRAJECTORY_FORMAT.md."""

from __future__ import annotations

import json

import pytest

from deskpilot.agent.trajectory import (
    TrajectoryWriter,
    new_run_dir,
    read_trajectory,
    redact,
    slugify,
)
from deskpilot.errors import ConfigError


async def test_lines_are_written_in_order_and_read_back(tmp_path):
    w = TrajectoryWriter(tmp_path / "run")
    await w.write_line({"type": "run_start", "t": 0.0, "task": "x"})
    rel = await w.save_screenshot(w.screenshot_name(1, 0), b"\x89PNG\r\n\x1a\nfake", "image/png")
    assert rel == "screenshots/0001-0.png"
    assert (tmp_path / "run" / rel).read_bytes().startswith(b"\x89PNG")
    await w.write_line({"type": "step", "index": 1, "actions": [{"screenshot": rel}]})
    # every line is complete on disk before the next write
    lines = (tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()
    assert [json.loads(x)["type"] for x in lines] == ["run_start", "step"]
    assert all("t" in json.loads(x) for x in lines)
    await w.write_line({"type": "run_end", "stop_reason": "end_turn"})
    traj = read_trajectory(tmp_path / "run")
    assert traj.start["task"] == "x" and traj.start["t"] == 0.0
    assert [s["index"] for s in traj.steps] == [1]
    assert traj.end["stop_reason"] == "end_turn" and traj.complete
    assert traj.screenshot_path(rel).is_file()
    assert traj.actions() == [(1, {"screenshot": rel})]


async def test_dead_run_is_readable(tmp_path):
    w = TrajectoryWriter(tmp_path)
    await w.write_line({"type": "run_start", "task": "x"})
    await w.write_line({"type": "step", "index": 1, "actions": []})
    with (tmp_path / "trajectory.jsonl").open("a") as f:
        f.write('{"type": "step", "index": 2, "acti')  # killed mid-write
    traj = read_trajectory(tmp_path)
    assert traj.end is None and not traj.complete
    assert traj.truncated
    assert [s["index"] for s in traj.steps] == [1]


def test_read_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a deskpilot run directory"):
        read_trajectory(tmp_path)
    (tmp_path / "trajectory.jsonl").write_text(
        '{"type": "run_start"}\nnot json\n{"type": "step"}\n'
    )
    with pytest.raises(ConfigError, match="Line 2"):
        read_trajectory(tmp_path)


async def test_secrets_never_written(tmp_path, monkeypatch):
    key = "sk-ant-api03-SECRETSECRETSECRET"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    w = TrajectoryWriter(tmp_path)
    await w.write_line(
        {
            "type": "step",
            "actions": [{"input": {"command": f"echo {key}"}, "text": f"{key}\n"}],
            "headers": {"x-api-key": "anything-here", "api_key": "abc12345"},
        }
    )
    raw = (tmp_path / "trajectory.jsonl").read_text()
    assert key not in raw and "anything-here" not in raw and "abc12345" not in raw
    assert "[redacted]" in raw
    # numeric token counts are not mistaken for secrets
    assert redact({"input_tokens": 5, "cache_read_tokens": 2}, []) == {
        "input_tokens": 5,
        "cache_read_tokens": 2,
    }


def test_run_dir_names(tmp_path):
    a = new_run_dir(tmp_path, "Open a text editor & write hello.py!")
    b = new_run_dir(tmp_path, "x", run_name=a.name)
    assert a.is_dir() and b.is_dir() and a != b
    assert a.name.endswith("open-a-text-editor-write-hello-py")
    assert b.name == a.name + "-2"
    assert slugify("   ") == "run"
    assert len(slugify("word " * 40)) <= 40
