"""``deskpilot eval compare``: per-task deltas and the bootstrap confidence interval."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskpilot.cli import main
from deskpilot.eval.compare import bootstrap_ci, compare_results, compare_runs
from deskpilot.eval.results import HarnessSettings, ResultsWriter, TaskResult, write_settings


def _r(task: str, score: float, trial: int = 1) -> TaskResult:
    return TaskResult(id=task, trial=trial, status="pass" if score >= 1 else "fail", score=score)


def test_bootstrap_of_a_constant_is_that_constant() -> None:
    assert bootstrap_ci([0.25] * 12) == (0.25, 0.25)
    assert bootstrap_ci([]) == (0.0, 0.0)


def test_bootstrap_interval_on_known_inputs() -> None:
    """30 tasks, 12 improved by 1, 3 got worse by 1, 15 unchanged: mean delta 0.3. The
    percentile interval of the resampled means is close to the normal approximation
    mean +- 1.96 * sd / sqrt(n) (0.3 +- 0.176), contains the mean, and is reproducible."""
    deltas = [1.0] * 12 + [-1.0] * 3 + [0.0] * 15
    low, high = bootstrap_ci(deltas, resamples=20_000, seed=7)
    mean = statistics.fmean(deltas)
    half = 1.96 * statistics.pstdev(deltas) / len(deltas) ** 0.5
    assert low < mean < high
    assert low == pytest.approx(mean - half, abs=0.03)
    assert high == pytest.approx(mean + half, abs=0.03)
    assert bootstrap_ci(deltas, resamples=20_000, seed=7) == (low, high)
    # a wider coverage gives a wider interval
    low99, high99 = bootstrap_ci(deltas, confidence=0.99, resamples=20_000, seed=7)
    assert low99 < low and high99 > high


def test_bootstrap_of_a_sure_improvement_excludes_zero() -> None:
    low, high = bootstrap_ci([1.0] * 20 + [0.0] * 5)
    assert 0.0 < low <= high <= 1.0


def test_bootstrap_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        bootstrap_ci([1.0, 0.0], confidence=1.0)
    with pytest.raises(ValueError, match="resamples must be at least 100"):
        bootstrap_ci([1.0, 0.0], resamples=5)


def test_compare_per_task_with_trials_and_missing_tasks() -> None:
    a = [_r("t1", 0), _r("t2", 1), _r("t3", 1), _r("only-a", 1)]
    b = [_r("t1", 1), _r("t1", 0, trial=2), _r("t2", 1), _r("t3", 0), _r("only-b", 0)]
    c = compare_results(a, b)
    assert [(r.id, r.a, r.b) for r in c.rows] == [("t1", 0, 0.5), ("t2", 1, 1), ("t3", 1, 0)]
    assert c.only_a == ["only-a"] and c.only_b == ["only-b"]
    assert c.mean_a == pytest.approx(2 / 3) and c.mean_b == pytest.approx(0.5)
    assert c.delta == pytest.approx(-1 / 6)
    assert c.ci[0] <= c.delta <= c.ci[1]
    assert [r.id for r in c.changed] == ["t3", "t1"]  # largest change first
    text = c.format()
    assert "t3" in text and "t2" not in text.split("\n")[1:3]
    assert "Only in A (1): only-a" in text and "delta B-A -0.167" in text
    assert "fail/pass" in text  # t1's two trials in B


def _write_run(out: Path, scores: dict[str, float], model: str) -> None:
    with ResultsWriter(out) as w:
        for task, score in scores.items():
            w.write(_r(task, score))
    write_settings(out, HarnessSettings(model=model, suite="basic", mode="model"))


def test_compare_command_on_two_runs(tmp_path: Path) -> None:
    _write_run(tmp_path / "a", {"x": 0, "y": 1, "z": 0}, "claude-sonnet-4-5")
    _write_run(tmp_path / "b", {"x": 1, "y": 1, "z": 1}, "claude-opus-4-1")
    result = CliRunner().invoke(main, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "Warning: the runs' harness settings differ" in result.output
    assert "model: 'claude-sonnet-4-5' -> 'claude-opus-4-1'" in result.output
    assert "3 shared tasks: mean score A 0.333, B 1.000; delta B-A +0.667" in result.output
    assert "95% CI" in result.output
    c = compare_runs(tmp_path / "a" / "results.jsonl", tmp_path / "b")
    assert c.delta == pytest.approx(2 / 3) and c.ci[1] == pytest.approx(1.0)


def test_compare_command_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    _write_run(tmp_path / "b", {"x": 1}, "m")
    result = CliRunner().invoke(main, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "Error: No eval results at" in result.output
