"""TrajectoryWriter / read_run: the on-disk contract of docs/trajectory-format.md."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from deskpilot.agent import run_reader
from deskpilot.agent.records import (
    FORMAT_VERSION,
    ActionRecord,
    ResponseRecord,
    RunEnd,
    RunStart,
    StepRecord,
)
from deskpilot.agent.trajectory import (
    TrajectoryWriter,
    Unreadable,
    new_run_dir,
    read_run,
    redact,
    slugify,
)
from deskpilot.errors import ConfigError


def _step(index: int, **action: object) -> StepRecord:
    actions = [ActionRecord(tool_use_id=f"t{index}", name="computer", **action)] if action else []
    return StepRecord(index=index, response=ResponseRecord(), actions=actions)


async def test_lines_are_written_in_order_and_read_back(tmp_path):
    w = TrajectoryWriter(tmp_path / "run")
    await w.write_line(RunStart(task="x"))
    rel = await w.save_screenshot(w.screenshot_name(1, 0), b"\x89PNG\r\n\x1a\nfake", "image/png")
    assert rel == "screenshots/0001-0.png"
    assert (tmp_path / "run" / rel).read_bytes().startswith(b"\x89PNG")
    step = _step(1, input={"action": "screenshot"}, screenshot=rel)
    await w.write_line(step)
    assert step.t is not None and step.t >= 0  # the writer stamps t on the record
    # every line is complete on disk before the next write
    lines = (tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()
    assert [json.loads(x)["type"] for x in lines] == ["run_start", "step"]
    assert all("t" in json.loads(x) for x in lines)
    assert json.loads(lines[0])["format_version"] == FORMAT_VERSION
    await w.write_line(RunEnd(stop_reason="end_turn"))
    run = read_run(tmp_path / "run")
    assert run.start.task == "x" and run.start.t == 0.0
    assert run.steps == [step]
    assert run.end.stop_reason == "end_turn" and run.complete
    assert run.path(rel).is_file()
    assert run.actions() == [(1, step.actions[0])]
    assert not run.unreadable and not run.notes and not run.truncated


async def test_a_staged_screenshot_is_on_disk_with_its_line_and_fsyncs_are_few(
    tmp_path, monkeypatch
):
    """One job per step writes its staged screenshots before its line; trajectory.jsonl is
    fsync'd with the first line, at run_end and otherwise at most once a second."""
    from deskpilot.agent import runfiles, trajectory

    synced: list[int] = []
    real_fsync = runfiles.os.fsync
    monkeypatch.setattr(runfiles.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    now = [1000.0]
    monkeypatch.setattr(trajectory.time, "monotonic", lambda: now[0])
    w = TrajectoryWriter(tmp_path / "run")
    await w.write_line(RunStart(task="x"))
    assert len(synced) == 1  # the first line
    for i in range(1, 6):
        rel = w.stage_screenshot(w.screenshot_name(i, 0), b"\x89PNG%d" % i, "image/png")
        assert not (tmp_path / "run" / rel).exists()  # staged: written with the line
        await w.write_line(_step(i, input={"action": "screenshot"}, screenshot=rel))
        assert (tmp_path / "run" / rel).read_bytes() == b"\x89PNG%d" % i
        now[0] += 0.3
    assert len(synced) == 2  # 1.5 s of steps: one more fsync, at 1.2 s
    lines = (tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()
    assert len(lines) == 6  # every line written at once, fsync'd or not
    await w.write_line(RunEnd(stop_reason="end_turn"))
    assert len(synced) == 3  # run_end always
    run = read_run(tmp_path / "run")
    assert run.complete and all(run.path(a.screenshot).is_file() for _, a in run.actions())


async def test_the_writer_takes_typed_records_only(tmp_path):
    w = TrajectoryWriter(tmp_path)
    with pytest.raises(TypeError, match="typed records"):
        await w.write_line({"type": "step", "index": 1})  # type: ignore[arg-type]
    assert not (tmp_path / "trajectory.jsonl").exists()


async def test_dead_run_is_readable(tmp_path):
    w = TrajectoryWriter(tmp_path)
    await w.write_line(RunStart(task="x"))
    await w.write_line(_step(1))
    with (tmp_path / "trajectory.jsonl").open("a") as f:
        f.write('{"type": "step", "index": 2, "acti')  # killed mid-write
    run = read_run(tmp_path)
    assert run.end is None and not run.complete
    assert run.truncated
    assert [s.index for s in run.readable_steps] == [1]
    assert run.steps[1] == Unreadable(2 + 1, "not valid JSON (cut short?)", kind="step")


def test_not_a_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        read_run(tmp_path / "missing")
    with pytest.raises(ConfigError, match="not a deskpilot run directory"):
        read_run(tmp_path)


def test_a_bad_line_in_the_middle_is_unreadable_not_fatal(tmp_path):
    """Regression: read_trajectory raised on a bad line that was not the last one, while the
    report skipped it; the one reader keeps it as an explicit unreadable entry."""
    (tmp_path / "trajectory.jsonl").write_text(
        '{"type": "run_start"}\nnot json\n{"type": "step", "index": 1, "response": {}}\n'
    )
    run = read_run(tmp_path)
    assert run.start is not None and [s.index for s in run.readable_steps] == [1]
    assert run.unreadable == [Unreadable(2, "not valid JSON")]
    assert not run.truncated
    assert "Line 2 of trajectory.jsonl could not be read: not valid JSON." in run.problems


def _lines(*objs: object) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def test_field_rules_of_the_lenient_reader(tmp_path):
    good = {"type": "step", "index": 1, "response": {"content": []}}
    (tmp_path / "trajectory.jsonl").write_text(
        _lines(
            {"type": "run_start", "task": "t", "native_size": [1280], "format_version": 9},
            {**good, "response": {"usage": {"input_tokens": "lots"}}},
            {**good, "index": 2, "timings": {"model_s": 1e308}},
            '{"type": "step", "index": 3, "response": {}, "t": NaN}',
            {
                **good,
                "index": 4,
                "actions": [
                    {"tool_use_id": "a", "name": "computer", "input": {"coordinate": [1e308, 5]}}
                ],
            },
            {
                **good,
                "index": 5,
                "actions": [{"tool_use_id": "b", "name": "x", "screenshot": "/etc/passwd"}],
            },
            [1, 2],
            {"no": "type"},
            {"type": "from_the_future", "x": 1},
            {"type": "run_start", "task": "second"},
            {"type": "run_end", "stop_reason": "end_turn", "cost": "free", "steps": 5},
        )
    )
    run = read_run(tmp_path)
    # run_start: the bad field is dropped (noted), the rest is kept
    assert run.start.task == "t" and run.start.native_size is None
    assert any("native_size could not be read" in n for n in run.notes)
    assert any("trajectory format 9" in n for n in run.notes)
    assert any("unknown type 'from_the_future'" in n for n in run.notes)
    assert any("a second run_start" in n for n in run.notes)
    assert run.end.stop_reason == "end_turn" and run.end.cost == 0.0 and run.end.steps == 5
    # steps: a bad field makes the step unreadable, with the field and the reason
    entries = {e.index: e for e in run.steps}
    assert isinstance(entries[1], Unreadable)
    assert "response.usage.input_tokens" in entries[1].reason and "'lots'" in entries[1].reason
    assert isinstance(entries[2], Unreadable) and "timings.model_s" in entries[2].reason
    assert isinstance(entries[3], Unreadable) and "finite" in entries[3].reason
    # a tool input is the model's JSON as sent: kept (the report draws nothing for it)
    assert isinstance(entries[4], StepRecord)
    assert entries[4].actions[0].input["coordinate"] == [1e308, 5]
    assert isinstance(entries[5], Unreadable) and "refused" in entries[5].reason
    reasons = [u.reason for u in run.unreadable]
    assert "a JSON list, not an object" in reasons and "the line has no 'type'" in reasons
    assert [s.index for s in run.readable_steps] == [4]


def test_an_overlong_line_is_unreadable(tmp_path, monkeypatch):
    monkeypatch.setattr(run_reader, "MAX_LINE_BYTES", 100)
    (tmp_path / "trajectory.jsonl").write_text(
        _lines(
            {"type": "run_start", "task": "x" * 200},
            {"type": "step", "index": 1, "response": {}},
        )
    )
    run = read_run(tmp_path)
    assert run.start is None
    assert run.unreadable == [Unreadable(1, "longer than 100 bytes")]
    assert [s.index for s in run.readable_steps] == [1]


def test_paths_are_confined_to_the_run_directory(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    run_dir = tmp_path / "run"
    (run_dir / "screenshots").mkdir(parents=True)
    (run_dir / "screenshots/ok.png").write_bytes(b"\x89PNG")
    (run_dir / "screenshots/link.png").symlink_to(secret)
    (run_dir / "checks.json").symlink_to(outside / "checks.json")
    (outside / "checks.json").write_text('[{"name": "stolen", "ok": true}]')
    (run_dir / "trajectory.jsonl").write_text(_lines({"type": "run_start"}))
    run = read_run(run_dir)
    assert run.path("screenshots/ok.png") == (run_dir / "screenshots/ok.png").resolve()
    for rel in (
        "../outside/secret.png",
        "screenshots/../../outside/secret.png",
        str(secret),
        "/etc/passwd",
        "~/x.png",
        "screenshots/link.png",  # a symlink leading out
        "screenshots",  # not a file
        "screenshots/missing.png",
    ):
        assert run.path(rel) is None, rel
    assert run.checks == [] and any("leads out of the run directory" in n for n in run.notes)
    # a trajectory.jsonl that is a link out of the directory is refused outright
    (outside / "trajectory.jsonl").write_text(_lines({"type": "run_start", "task": "elsewhere"}))
    (run_dir / "trajectory.jsonl").unlink()
    (run_dir / "trajectory.jsonl").symlink_to(outside / "trajectory.jsonl")
    with pytest.raises(ConfigError, match="leads out of the run directory"):
        read_run(run_dir)


async def test_secrets_never_written(tmp_path, monkeypatch):
    key = "sk-ant-api03-SECRETSECRETSECRET"
    passed = "sk-ant-passed-as-argument-000"  # api_key=...: not in the environment
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    w = TrajectoryWriter(tmp_path, secrets=[passed, "short"])
    await w.write_line(
        StepRecord(
            index=1,
            response=ResponseRecord(error_message=f"401 invalid x-api-key {passed}"),
            actions=[
                ActionRecord(
                    tool_use_id="t",
                    name="bash",
                    input={"command": f"echo {key}", "api_key": "abc12345"},
                    text=f"{key}\n{passed}\n",
                )
            ],
        )
    )
    raw = (tmp_path / "trajectory.jsonl").read_text()
    assert key not in raw and passed not in raw and "abc12345" not in raw
    assert "[redacted]" in raw and "short" not in raw.replace("[redacted]", "")
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


def test_old_lines_without_executed_or_version_read_as_version_1(tmp_path: Path):
    """Lines written before ``executed`` and ``format_version`` existed stay readable."""
    (tmp_path / "trajectory.jsonl").write_text(
        _lines(
            {"type": "run_start", "t": 0.0, "task": "old"},
            {
                "type": "step",
                "index": 1,
                "response": {},
                "actions": [
                    {"tool_use_id": "a", "name": "bash", "approved": True},
                    {"tool_use_id": "b", "name": "bash", "approved": False},
                ],
            },
        )
    )
    run = read_run(tmp_path)
    assert run.start.format_version == 1 and not run.notes
    assert [a.executed for a in run.readable_steps[0].actions] == [True, False]
    assert math.isclose(run.start.t or 0.0, 0.0)
