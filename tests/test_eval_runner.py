"""The eval runner on real desktops: oracle, do-nothing model, replay, pools, errors, index.

The tiny suite (tests/data/eval_tiny: a bash task, a GUI task typing into a launched xterm,
an infeasible task and one needing the network) runs through the real client (HTTP to
deskpilot's fake model server on loopback), the real agent loop and real Xvfb desktops.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from deskpilot.errors import ConfigError
from deskpilot.eval.options import EvalOptions
from deskpilot.eval.results import (
    ResultsWriter,
    TaskResult,
    read_results,
    read_settings,
)
from deskpilot.eval.runner import run_suite, select_tasks
from deskpilot.eval.task import load_tasks

pytestmark = pytest.mark.desktop

TINY = Path(__file__).parent / "data" / "eval_tiny"
EXPECTED_ORACLE = {
    "tiny-bash-file": "pass",
    "tiny-gui-terminal": "pass",
    "tiny-infeasible": "pass",
    "tiny-unsupported": "unsupported",
}


def _statuses(results: list[TaskResult]) -> dict[str, str]:
    return {r.id: r.status for r in results}


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny suite under --oracle on one desktop (shared by the tests that read it)."""
    out = tmp_path_factory.mktemp("oracle") / "out"
    asyncio.run(run_suite(TINY, EvalOptions(out=out, mode="oracle")))
    return out


def test_oracle_passes_every_supported_task(oracle_run: Path) -> None:
    rows = read_results(oracle_run)
    assert rows.unreadable == []
    results = rows.latest()
    assert _statuses(results) == EXPECTED_ORACLE
    by_id = {r.id: r for r in results}
    bash = by_id["tiny-bash-file"]
    assert bash.score == 1.0 and bash.steps == 2 and bash.stop_reason == "end_turn"
    assert "hello eval" in bash.evidence
    assert bash.tokens > 0 and bash.cost > 0  # the fake server's usage of the real requests
    assert bash.home and bash.home.startswith("/")
    t = bash.timings
    assert t.setup_s > 0 and t.agent_s > 0 and t.check_s > 0
    assert bash.duration_s == pytest.approx(
        t.reset_s + t.setup_s + t.agent_s + t.check_s + t.report_s, abs=0.01
    )
    # each run's trajectory and report, with the verdict in its checks.json
    for r in results[:3]:
        assert r.trajectory_dir is not None and r.report is not None
        run_dir = oracle_run / r.trajectory_dir
        assert (run_dir / "trajectory.jsonl").is_file()
        assert (oracle_run / r.report).is_file()
        checks = json.loads((run_dir / "checks.json").read_text())
        assert checks[0]["ok"] is True and r.id in checks[0]["name"]
    # the eval system prompt tells the model how to declare infeasibility
    start = json.loads(
        (oracle_run / (by_id["tiny-infeasible"].trajectory_dir or "") / "trajectory.jsonl")
        .read_text()
        .splitlines()[0]
    )
    assert "INFEASIBLE" in start["system_prompt"]
    unsupported = by_id["tiny-unsupported"]
    assert "network" in (unsupported.reason or "") and unsupported.trajectory_dir is None
    settings = read_settings(oracle_run)
    assert settings is not None and settings.mode == "oracle" and settings.tasks == 4
    assert settings.screen == (1280, 800) and "computer_20250124" in settings.tool_types
    assert (oracle_run / "index.html").is_file()


def test_do_nothing_model_fails_every_task(tmp_path: Path) -> None:
    """A model that answers "Done." at once: every checker's failing side (the infeasible
    task too: it passes only when declared infeasible)."""
    run = asyncio.run(run_suite(TINY, EvalOptions(out=tmp_path / "out", mode="noop")))
    assert _statuses(run.results) == {
        "tiny-bash-file": "fail",
        "tiny-gui-terminal": "fail",
        "tiny-infeasible": "fail",
        "tiny-unsupported": "unsupported",
    }
    for r in run.results[:3]:
        assert r.steps == 1 and r.final_text == "Done." and r.score == 0.0
        assert r.evidence  # the checker says what it compared
    assert "does not start with INFEASIBLE" in run.results[2].evidence


def test_two_desktops_give_the_same_verdicts(oracle_run: Path, tmp_path: Path) -> None:
    run = asyncio.run(run_suite(TINY, EvalOptions(out=tmp_path / "out", mode="oracle", desktops=2)))
    one = {(r.id, r.status, r.score, r.steps) for r in read_results(oracle_run).latest()}
    two = {(r.id, r.status, r.score, r.steps) for r in run.results}
    assert one == two
    assert run.settings.desktops == 2


def test_replay_rescored_a_recorded_run(oracle_run: Path, tmp_path: Path) -> None:
    """--replay serves the recorded turns (the old HOME mapped to the new desktop's) and
    checks again: the same verdicts."""
    run = asyncio.run(
        run_suite(
            TINY,
            EvalOptions(
                out=tmp_path / "out", mode="replay", replay_dir=oracle_run, pattern="tiny-*"
            ),
        )
    )
    assert _statuses(run.results) == EXPECTED_ORACLE
    old = {r.id: r.home for r in read_results(oracle_run).latest()}
    new = {r.id: r.home for r in run.results}
    assert old["tiny-bash-file"] != new["tiny-bash-file"]  # really a new desktop


def test_errors_are_results_not_crashes(tmp_path: Path) -> None:
    """A failing set-up and a checker reading a missing file: one task's error, the others
    still run."""
    suite = tmp_path / "suite"
    suite.mkdir()
    bad_setup = {
        "id": "bad-setup",
        "instruction": "anything",
        "config": [{"type": "command", "parameters": {"command": "exit 3", "shell": True}}],
        "evaluator": {
            "func": "exact_match",
            "result": {"type": "vm_command_line", "command": "echo x", "shell": True},
            "expected": {"type": "rule", "rules": {"expected": "x\n"}},
        },
    }
    fine = dict(bad_setup, id="fine", config=[])
    (suite / "a.json").write_text(json.dumps(bad_setup))
    (suite / "b.json").write_text(json.dumps(fine))
    run = asyncio.run(run_suite(suite, EvalOptions(out=tmp_path / "out", mode="noop")))
    by_id = {r.id: r for r in run.results}
    assert by_id["bad-setup"].status == "error"
    assert "Set-up failed" in (by_id["bad-setup"].reason or "")
    assert "exited with 3" in (by_id["bad-setup"].reason or "")
    assert by_id["fine"].status == "pass"  # its checker does not depend on the agent
    # the oracle cannot run a task without a solution: an error saying so
    run = asyncio.run(run_suite(suite, EvalOptions(out=tmp_path / "o2", mode="oracle")))
    assert {r.reason for r in run.results if r.id == "fine"} == {
        "The task has no solution, so --oracle cannot run it."
    }


def test_the_time_limit_stops_the_agent_after_the_action_in_progress(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    task = {
        "id": "slow",
        "instruction": "Write hi to ~/x.",
        "timeout_s": 3,
        "evaluator": {
            "func": "exact_match",
            "result": {"type": "vm_command_line", "command": "cat ~/x", "shell": True},
            "expected": {"type": "rule", "rules": {"expected": "hi\n"}},
        },
        "solution": [
            {
                "content": [
                    {
                        "type": "tool_use",
                        "name": "bash",
                        "input": {"command": "sleep 5; echo hi > ~/x"},
                    }
                ],
                "stop_reason": "tool_use",
            },
            {"content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"},
        ],
    }
    (suite / "slow.json").write_text(json.dumps(task))
    run = asyncio.run(run_suite(suite, EvalOptions(out=tmp_path / "out", mode="oracle")))
    (r,) = run.results
    assert r.stop_reason == "interrupted at the task's time limit (3 s)"
    assert r.steps <= 1  # the second turn was never asked for
    if r.steps == 1:  # the action in progress (the sleep) finished, then the check ran
        assert r.status == "pass" and r.timings.agent_s >= 5


def test_out_holding_results_needs_resume_and_the_same_settings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = asyncio.run(
        run_suite(TINY, EvalOptions(out=out, mode="noop", pattern="tiny-infeasible"))
    )
    assert [r.id for r in first.results] == ["tiny-infeasible"]
    with pytest.raises(ConfigError, match="already holds eval results; pass --resume"):
        asyncio.run(run_suite(TINY, EvalOptions(out=out, mode="noop")))
    with pytest.raises(ConfigError, match=r"other settings.*mode: 'noop' -> 'oracle'"):
        asyncio.run(run_suite(TINY, EvalOptions(out=out, mode="oracle", resume=True)))
    again = asyncio.run(
        run_suite(TINY, EvalOptions(out=out, mode="noop", resume=True, pattern="*infeasible,*file"))
    )
    assert again.skipped == [("tiny-infeasible", 1)]
    assert [r.id for r in again.results] == ["tiny-bash-file"]
    assert [r.id for r in read_results(out).latest()] == ["tiny-infeasible", "tiny-bash-file"]
    assert [r.id for r in again.all_results] == ["tiny-bash-file", "tiny-infeasible"]  # suite order


def test_trials_run_each_task_k_times(tmp_path: Path) -> None:
    run = asyncio.run(
        run_suite(
            TINY, EvalOptions(out=tmp_path / "out", mode="oracle", trials=2, pattern="tiny-inf*")
        )
    )
    assert [(r.id, r.trial, r.status) for r in run.results] == [
        ("tiny-infeasible", 1, "pass"),
        ("tiny-infeasible", 2, "pass"),
    ]
    dirs = {r.trajectory_dir for r in run.results}
    assert dirs == {"runs/tiny-infeasible-t1", "runs/tiny-infeasible-t2"}


# --- no desktop needed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "ids"),
    [
        ("tiny-bash-*", ["tiny-bash-file"]),
        ("gui", ["tiny-gui-terminal"]),  # a tag
        ("*infeasible, tiny-unsupported", ["tiny-infeasible", "tiny-unsupported"]),
    ],
)
def test_select_tasks_by_id_or_tag(pattern: str, ids: list[str]) -> None:
    assert [t.id for t in select_tasks(load_tasks(TINY), pattern)] == ids


def test_select_tasks_refuses_a_pattern_that_selects_nothing() -> None:
    with pytest.raises(ConfigError, match="selects no task"):
        select_tasks(load_tasks(TINY), "nope-*")


def test_results_survive_a_partial_last_line(tmp_path: Path) -> None:
    """A kill mid-write leaves a partial line: the reader skips it, the next writer starts
    a new line, so nothing else is lost."""
    with ResultsWriter(tmp_path) as w:
        w.write(TaskResult(id="a", status="pass", score=1.0))
    path = tmp_path / "results.jsonl"
    with path.open("a") as f:
        f.write('{"id": "b", "status": "pa')
    with ResultsWriter(tmp_path) as w:
        w.write(TaskResult(id="c", status="fail"))
    got = read_results(tmp_path)
    assert [r.id for r in got.results] == ["a", "c"]
    assert len(got.unreadable) == 1 and got.unreadable[0][0] == 2
    assert got.done() == {("a", 1), ("c", 1)}


def test_results_reader_keeps_the_last_line_of_a_task(tmp_path: Path) -> None:
    with ResultsWriter(tmp_path) as w:
        w.write(TaskResult(id="a", status="error", reason="x"))
        w.write(TaskResult(id="b", status="fail"))
        w.write(TaskResult(id="a", status="pass", score=1.0))
    latest = read_results(tmp_path).latest()
    assert [(r.id, r.status) for r in latest] == [("a", "pass"), ("b", "fail")]
    with pytest.raises(ConfigError, match="No eval results at"):
        read_results(tmp_path / "nothing")


# --- the bundled suite ---------------------------------------------------------------------


@pytest.mark.slow
def test_bundled_suite_passes_under_oracle_and_fails_under_noop(tmp_path: Path) -> None:
    """Every bundled task passes with its solution on 2 desktops, and fails when the model
    does nothing (the infeasible ones too: they pass only when declared). The tasks of
    test_eval_suite's QUICK sample are checked the same way there (in the default run), so
    they are not run twice here."""
    from deskpilot.eval import bundled_suite
    from test_eval_suite import QUICK  # tests/ is on sys.path (conftest.py)

    suite = bundled_suite("basic")
    tasks = load_tasks(suite)
    assert len(tasks) >= 25
    assert all(t.unsupported is None and t.solution for t in tasks)
    assert set(QUICK) <= {t.id for t in tasks}
    rest = [t.id for t in tasks if t.id not in QUICK]
    pattern = ",".join(rest)
    oracle = asyncio.run(
        run_suite(
            suite, EvalOptions(out=tmp_path / "oracle", mode="oracle", desktops=2, pattern=pattern)
        )
    )
    not_passed = [(r.id, r.status, r.reason or r.evidence) for r in oracle.results if not r.passed]
    assert not_passed == []
    assert [r.id for r in oracle.results] == rest
    noop = asyncio.run(
        run_suite(
            suite, EvalOptions(out=tmp_path / "noop", mode="noop", desktops=2, pattern=pattern)
        )
    )
    not_failed = [
        (r.id, r.status, r.reason or r.evidence) for r in noop.results if r.status != "fail"
    ]
    assert not_failed == []
    assert [r.id for r in noop.results] == rest
