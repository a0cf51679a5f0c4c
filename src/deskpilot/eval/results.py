"""The eval results format: ``OUT/results.jsonl`` lines and ``OUT/settings.json`` (one owner).

``deskpilot eval`` writes one :class:`TaskResult` line per task and trial to
``OUT/results.jsonl`` as soon as that task is checked (appended, flushed and fsynced, so a
killed run keeps every finished task and ``--resume`` skips them), and the harness settings
once to ``OUT/settings.json`` (:class:`HarnessSettings`: what two runs must share to be
compared). Everything else (the terminal table, ``index.html``, ``eval compare``,
``--resume``, ``--replay``) reads them through :func:`read_results` and
:func:`read_settings`. The format is documented in ``docs/eval.md`` ("Results").

The reader is lenient: a line that is not JSON or not a result (a run killed mid-write) is
reported in :attr:`ResultsFile.unreadable` and skipped, never raised; when a task and trial
appear more than once (a re-run), the last line wins (:meth:`ResultsFile.latest`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, DeskpilotError

__all__ = [
    "RESULTS_FILE",
    "RESULTS_VERSION",
    "SETTINGS_FILE",
    "STATUSES",
    "HarnessSettings",
    "ResultsFile",
    "ResultsWriter",
    "Status",
    "SuiteSummary",
    "TaskResult",
    "Timings",
    "read_results",
    "read_settings",
    "results_path",
    "summarize",
    "write_settings",
]

RESULTS_VERSION = 1
RESULTS_FILE = "results.jsonl"
SETTINGS_FILE = "settings.json"

Status = Literal["pass", "fail", "unsupported", "error"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "unsupported", "error")
"""``pass``/``fail``: the checker ran (score >= the pass mark, or not); ``unsupported``: the
task needs something this harness cannot do here (never run halfway); ``error``: set-up, the
agent run or the checker failed (the reason says which)."""


class Timings(BaseModel):
    """Where one task's wall time went, in seconds (``duration_s`` is their sum)."""

    model_config = ConfigDict(extra="ignore")

    reset_s: float = 0.0
    """Waiting for a fresh desktop from the pool (its start, or the
    :meth:`~deskpilot.desktop.base.DesktopHost.reset` after its previous task)."""
    setup_s: float = 0.0
    """The task's ``config`` steps."""
    agent_s: float = 0.0
    """The agent's run (model turns and actions)."""
    check_s: float = 0.0
    """The checker (``postconfig``, getters, metric)."""
    report_s: float = 0.0
    """Writing the run's report."""

    @property
    def overhead_s(self) -> float:
        """The harness's own per-task cost beside the agent: set-up + check (seconds)."""
        return self.setup_s + self.check_s


class TaskResult(BaseModel):
    """One line of ``results.jsonl``: one task, one trial.

    ``trajectory_dir`` and ``report`` are relative to the results file's directory (so an
    output directory can be moved or copied whole); None when the agent did not run.
    """

    model_config = ConfigDict(extra="ignore")

    version: int = RESULTS_VERSION
    id: str
    trial: int = Field(default=1, ge=1)
    status: Status
    score: float = Field(default=0.0, ge=0.0, le=1.0)
    evidence: str = ""
    """What the checker compared (or why nothing was), for a human."""
    reason: str | None = None
    """Why the task is ``unsupported`` or an ``error`` (a sentence)."""
    instruction: str = ""
    tags: list[str] = Field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    cost: float = 0.0
    """US dollars at the model's list price."""
    duration_s: float = 0.0
    timings: Timings = Field(default_factory=Timings)
    stop_reason: str | None = None
    final_text: str | None = None
    trajectory_dir: str | None = None
    report: str | None = None
    home: str | None = None
    """The desktop's HOME during the run (``--replay`` maps it to the new desktop's)."""
    started_at: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def key(self) -> tuple[str, int]:
        """``(id, trial)``: what ``--resume`` skips on."""
        return (self.id, self.trial)


class HarnessSettings(BaseModel):
    """``settings.json``: what a run was made with, so two runs can be compared fairly."""

    model_config = ConfigDict(extra="ignore")

    version: int = RESULTS_VERSION
    deskpilot_version: str = ""
    suite: str = ""
    """The suite's path (or ``basic`` for a bundled one)."""
    tasks: int = 0
    """Tasks selected (after ``--tasks``)."""
    mode: Literal["model", "oracle", "noop", "replay"] = "model"
    model: str = ""
    model_id: str = ""
    provider: str = ""
    tool_types: list[str] = Field(default_factory=list)
    """The tool versions sent (computer, editor, bash), before any step-down."""
    screen: tuple[int, int] = (1280, 800)
    """The desktop's native size (pixels)."""
    max_turns: int | None = None
    """The run's ``--max-turns`` (None: each task's own, else the harness default)."""
    default_max_turns: int = 0
    keep_screenshots: int | None = None
    prune_interval: int = 0
    cache: list[str] | None = None
    system_prompt_suffix: str = ""
    """What eval adds to the agent's default system prompt (the INFEASIBLE rule)."""
    trials: int = 1
    desktops: int = 1
    pass_mark: float = 1.0
    started_at: str = ""

    def differences(self, other: HarnessSettings) -> list[str]:
        """The settings that make two runs not directly comparable, as ``name: a -> b``
        (the mode, model, tools, screen, turn limit, context policy and prompt)."""
        keys = (
            "mode model model_id provider tool_types screen max_turns default_max_turns "
            "keep_screenshots prune_interval cache system_prompt_suffix pass_mark"
        ).split()
        mine, theirs = self.model_dump(), other.model_dump()
        return [f"{k}: {mine[k]!r} -> {theirs[k]!r}" for k in keys if mine[k] != theirs[k]]


@dataclass(slots=True)
class ResultsFile:
    """What :func:`read_results` read.

    Attributes:
        results: every readable line, in file order.
        unreadable: ``(line number, reason)`` of the lines skipped.
    """

    results: list[TaskResult] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)

    def latest(self) -> list[TaskResult]:
        """One result per ``(id, trial)``: the last line of each, in first-seen order."""
        seen: dict[tuple[str, int], TaskResult] = {}
        for r in self.results:
            seen[r.key] = r
        return list(seen.values())

    def done(self) -> set[tuple[str, int]]:
        """The ``(id, trial)`` pairs that have a result (what ``--resume`` skips)."""
        return {r.key for r in self.results}


def results_path(out: str | os.PathLike[str]) -> Path:
    """``OUT/results.jsonl`` for an output directory (or the file itself when given)."""
    p = Path(out)
    return p if p.suffix == ".jsonl" else p / RESULTS_FILE


def read_results(out: str | os.PathLike[str]) -> ResultsFile:
    """Read ``OUT/results.jsonl`` (or the ``.jsonl`` file given), leniently.

    Returns:
        A :class:`ResultsFile`; lines that are not JSON objects of a :class:`TaskResult` are
        listed in ``unreadable`` with a reason and skipped.

    Raises:
        ConfigError: the file does not exist or cannot be read.
    """
    path = results_path(out)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(
            f"No eval results at {path}: pass the --out directory of a `deskpilot eval` run."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Could not read {path}: {exc}.") from exc
    out_file = ResultsFile()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out_file.results.append(TaskResult.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {"msg": str(exc)}
            out_file.unreadable.append((n, str(first.get("msg", exc))[:200]))
    return out_file


class ResultsWriter:
    """Appends :class:`TaskResult` lines to ``OUT/results.jsonl`` (one writer per run).

    Each line is written with one ``write`` on a file opened in append mode, then flushed
    and fsynced: a kill leaves at most one partial last line, which the next writer ends
    with a newline before appending (so it stays one unreadable line, never two spoiled).
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.path = results_path(out)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_symlink():
                raise DeskpilotError(f"{self.path} is a symbolic link; refusing to write it.")
            needs_newline = False
            if self.path.is_file() and self.path.stat().st_size > 0:
                with self.path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    needs_newline = f.read(1) != b"\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise DeskpilotError(f"Could not open {self.path} for writing: {exc}.") from exc
        self._fd: int | None = fd
        if needs_newline:
            os.write(fd, b"\n")

    def write(self, result: TaskResult) -> None:
        """Append ``result`` as one JSON line (flushed and fsynced).

        Raises:
            DeskpilotError: the writer is closed or the disk refused the line.
        """
        if self._fd is None:
            raise DeskpilotError(f"The results writer of {self.path} is closed.")
        line = result.model_dump_json() + "\n"
        try:
            os.write(self._fd, line.encode("utf-8"))
            os.fsync(self._fd)
        except OSError as exc:
            raise DeskpilotError(f"Could not append to {self.path}: {exc}.") from exc

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_settings(out: str | os.PathLike[str], settings: HarnessSettings) -> Path:
    """Write ``OUT/settings.json`` (indented JSON); returns its path.

    Raises:
        DeskpilotError: it could not be written.
    """
    from ..agent.runfiles import replace_file

    path = Path(out) / SETTINGS_FILE
    data = (settings.model_dump_json(indent=1) + "\n").encode("utf-8")
    try:  # a new file renamed over the name: a planted symlink is replaced, never followed
        path.parent.mkdir(parents=True, exist_ok=True)
        return replace_file(path.parent, SETTINGS_FILE, data)
    except (OSError, ValueError) as exc:
        raise DeskpilotError(f"Could not write {path}: {exc}.") from exc


def read_settings(out: str | os.PathLike[str]) -> HarnessSettings | None:
    """``OUT/settings.json``, or None when it is missing or unreadable."""
    path = Path(out) / SETTINGS_FILE
    try:
        return HarnessSettings.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class SuiteSummary:
    """Totals over a run's results (one result per task and trial).

    Attributes:
        tasks: distinct task ids; ``trials``: the most trials any task has.
        counts: results per status.
        mean_score: the mean score over every result (unsupported and error results
            score 0).
        pass_at_k: the share of tasks with at least one passing trial.
        pass_rate: the share of results (task x trial) that passed.
        cost / tokens / steps: totals; ``duration_s``: the sum of task durations.
        median_overhead_s: the median of set-up + check seconds over tasks that ran.
    """

    tasks: int
    trials: int
    counts: dict[str, int]
    mean_score: float
    pass_at_k: float
    pass_rate: float
    cost: float
    tokens: int
    steps: int
    duration_s: float
    median_overhead_s: float


def _median(values: list[float]) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def summarize(results: Iterable[TaskResult]) -> SuiteSummary:
    """The :class:`SuiteSummary` of ``results`` (latest line per task and trial first).

    Every status counts in the denominators (an ``error`` or ``unsupported`` task scores 0):
    a harness that cannot run a task does not get to leave it out.
    """
    rows = list(results)
    ids = {r.id for r in rows}
    counts: dict[str, int] = {s: sum(r.status == s for r in rows) for s in STATUSES}
    passed_ids = {r.id for r in rows if r.passed}
    ran = [r.timings.overhead_s for r in rows if r.status in ("pass", "fail")]
    return SuiteSummary(
        tasks=len(ids),
        trials=max((r.trial for r in rows), default=0),
        counts=counts,
        mean_score=sum(r.score for r in rows) / len(rows) if rows else 0.0,
        pass_at_k=len(passed_ids) / len(ids) if ids else 0.0,
        pass_rate=counts["pass"] / len(rows) if rows else 0.0,
        cost=sum(r.cost for r in rows),
        tokens=sum(r.tokens for r in rows),
        steps=sum(r.steps for r in rows),
        duration_s=sum(r.duration_s for r in rows),
        median_overhead_s=_median(ran),
    )
