"""``deskpilot eval compare A B``: per-task differences and the overall delta with a bootstrap CI.

Each task's score in a run is the mean over its trials (:func:`per_task_scores`). The
overall delta is the mean of ``B - A`` over the tasks both runs have; its confidence interval
is the percentile bootstrap over tasks (Efron & Tibshirani, *An Introduction to the
Bootstrap*, ch. 13): the tasks are resampled with replacement ``resamples`` times, the mean
delta of each resample taken, and the interval is the ``(1 - confidence) / 2`` and
``(1 + confidence) / 2`` quantiles of those means. The resampling is seeded, so the same two
runs always give the same interval. Tasks only one run has are listed, not scored.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from .results import HarnessSettings, TaskResult, read_results, read_settings

__all__ = ["Comparison", "TaskDelta", "bootstrap_ci", "compare_runs", "per_task_scores"]


def per_task_scores(results: Sequence[TaskResult]) -> dict[str, float]:
    """Each task's mean score over its trials, by task id."""
    sums: dict[str, list[float]] = {}
    for r in results:
        sums.setdefault(r.id, []).append(r.score)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0-1) of already sorted values, linear between neighbours."""
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(
    deltas: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap confidence interval of the mean of ``deltas``.

    Args:
        deltas: one value per task (e.g. score B - score A).
        confidence: the interval's coverage, strictly between 0 and 1.
        resamples: bootstrap resamples (>= 100).
        seed: the random generator's seed (same inputs, same interval).

    Returns:
        ``(low, high)``; ``(0.0, 0.0)`` for no task.

    Raises:
        ValueError: ``confidence`` or ``resamples`` out of range.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence!r}.")
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100, not {resamples!r}.")
    n = len(deltas)
    if n == 0:
        return (0.0, 0.0)
    rng = random.Random(seed)
    values = list(deltas)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    return (_quantile(means, tail), _quantile(means, 1.0 - tail))


@dataclass(frozen=True, slots=True)
class TaskDelta:
    """One task in both runs: mean scores, the statuses seen, and ``b - a``."""

    id: str
    a: float
    b: float
    a_status: str
    b_status: str

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass(slots=True)
class Comparison:
    """What :func:`compare_runs` found.

    Attributes:
        rows: the tasks both runs have, by id.
        only_a / only_b: task ids one run has and the other not.
        mean_a / mean_b: mean task scores over the shared tasks.
        delta: ``mean_b - mean_a``; ``ci``: its bootstrap interval at ``confidence``.
        settings_differences: harness settings that differ (``name: a -> b``); a non-empty
            list means the runs were not made the same way.
    """

    rows: list[TaskDelta]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    mean_a: float = 0.0
    mean_b: float = 0.0
    delta: float = 0.0
    ci: tuple[float, float] = (0.0, 0.0)
    confidence: float = 0.95
    settings_differences: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[TaskDelta]:
        """The shared tasks whose score changed, largest change first."""
        return sorted((r for r in self.rows if r.delta), key=lambda r: (-abs(r.delta), r.id))

    def format(self, *, all_tasks: bool = False) -> str:
        """A plain-text table for the terminal."""
        lines = []
        if self.settings_differences:
            lines.append("Warning: the runs' harness settings differ:")
            lines += [f"  {d}" for d in self.settings_differences]
        shown = self.rows if all_tasks else self.changed
        if shown:
            width = max(4, *(len(r.id) for r in shown))
            lines.append(f"{'task':<{width}}  {'A':>5}  {'B':>5}  {'B-A':>6}  status A -> B")
            for r in shown:
                lines.append(
                    f"{r.id:<{width}}  {r.a:5.2f}  {r.b:5.2f}  {r.delta:+6.2f}  "
                    f"{r.a_status} -> {r.b_status}"
                )
        else:
            lines.append("No shared task changed score.")
        for name, ids in (("A", self.only_a), ("B", self.only_b)):
            if ids:
                lines.append(f"Only in {name} ({len(ids)}): {', '.join(ids[:20])}")
        pct = round(self.confidence * 100)
        lines.append(
            f"{len(self.rows)} shared tasks: mean score A {self.mean_a:.3f}, B {self.mean_b:.3f}; "
            f"delta B-A {self.delta:+.3f} ({pct}% CI {self.ci[0]:+.3f} to {self.ci[1]:+.3f}, "
            "bootstrap over tasks)"
        )
        return "\n".join(lines)


def _statuses(results: Sequence[TaskResult]) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for r in results:
        out.setdefault(r.id, []).append(r.status)
    return {k: "/".join(sorted(set(v))) for k, v in out.items()}


def compare_results(
    a: Sequence[TaskResult],
    b: Sequence[TaskResult],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    settings: tuple[HarnessSettings | None, HarnessSettings | None] = (None, None),
) -> Comparison:
    """Compare two lists of results (see the module docstring)."""
    sa, sb = per_task_scores(a), per_task_scores(b)
    st_a, st_b = _statuses(a), _statuses(b)
    shared = sorted(set(sa) & set(sb))
    rows = [TaskDelta(t, sa[t], sb[t], st_a[t], st_b[t]) for t in shared]
    n = len(rows)
    mean_a = sum(r.a for r in rows) / n if n else 0.0
    mean_b = sum(r.b for r in rows) / n if n else 0.0
    diffs = []
    if settings[0] is not None and settings[1] is not None:
        diffs = settings[0].differences(settings[1])
    return Comparison(
        rows=rows,
        only_a=sorted(set(sa) - set(sb)),
        only_b=sorted(set(sb) - set(sa)),
        mean_a=mean_a,
        mean_b=mean_b,
        delta=mean_b - mean_a,
        ci=bootstrap_ci(
            [r.delta for r in rows], confidence=confidence, resamples=resamples, seed=seed
        ),
        confidence=confidence,
        settings_differences=diffs,
    )


def compare_runs(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare two ``deskpilot eval`` output directories (or their ``results.jsonl``).

    Raises:
        ConfigError: a run has no readable results.
    """
    ra, rb = read_results(a).latest(), read_results(b).latest()
    for name, rows in (("A", ra), ("B", rb)):
        if not rows:
            raise ConfigError(f"Run {name} has no readable result line.")
    dirs = [os.fspath(p) for p in (a, b)]
    base = [d[: -len("/results.jsonl")] if d.endswith("/results.jsonl") else d for d in dirs]
    return compare_results(
        ra,
        rb,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        settings=(read_settings(base[0]), read_settings(base[1])),
    )
