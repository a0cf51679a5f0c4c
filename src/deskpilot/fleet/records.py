"""The fleet's formats: the tasks file (``TASKS.jsonl``) and the results file
(``results.jsonl``), one typed owner each (see ``docs/fleet.md``).

Tasks: one JSON object per line, ``{"id": "...", "task": "..."}``; blank lines and lines
starting with ``#`` are skipped; ids are unique. Results: one :class:`FleetResult` per task
that finished (ok or not), appended as the fleet goes, so a killed driver leaves every
finished task on disk and ``--resume`` skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

RESULTS_VERSION = 1
"""The version of the results-line format this module writes (``FleetResult.version``)."""

RESULTS_FILE = "results.jsonl"
RUNS_DIR = "runs"


class FleetTask(BaseModel):
    """One line of a tasks file.

    Attributes:
        id: a unique name for the task (any string; its run directory gets a safe form).
        task: the instruction given to the agent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    task: str = Field(min_length=1)


class FleetResult(BaseModel):
    """One line of ``results.jsonl``: the outcome of one task (its last attempt).

    Attributes:
        version: :data:`RESULTS_VERSION`.
        id / task: the task's id and instruction.
        ok: True when the model ended the run itself (``AgentResult.ok``).
        stop_reason: ``AgentResult.stop_reason``, or ``"fleet_error"`` when every attempt
            lost its desktop actor or node.
        final_text: the last text the model wrote (None if none).
        steps: model turns taken; cost: US dollars; input_tokens / output_tokens: usage.
        attempts: how many times the task was started (> 1 after an actor or node died).
        duration_s: wall-clock seconds of the last attempt's agent run.
        trajectory: the run directory: relative to the output directory
            (``runs/<name>``) when the driver gathered it, or the absolute path on shared
            storage when the fleet ran with ``shared_dir`` (None when there is none).
        desktop: the Ray actor name that ran the last attempt.
        node: the hex id of the Ray node that ran the last attempt (None when unknown).
        error: the error text when the run failed.
    """

    model_config = ConfigDict(extra="ignore")

    version: int = RESULTS_VERSION
    id: str
    task: str
    ok: bool
    stop_reason: str
    final_text: str | None = None
    steps: int = 0
    cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 1
    duration_s: float = 0.0
    trajectory: str | None = None
    desktop: str | None = None
    node: str | None = None
    error: str | None = None


def read_tasks(path: str | os.PathLike[str]) -> list[FleetTask]:
    """The tasks of a JSONL file, in file order.

    Raises:
        ConfigError: the file is missing, a line is not a ``{"id", "task"}`` object, or an
            id repeats (the message names the line).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the tasks file {p}: {exc.strerror or exc}.") from exc
    tasks: list[FleetTask] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tasks.append(FleetTask.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "line"
            raise ConfigError(
                f'{p}:{n}: expected {{"id": "...", "task": "..."}}; {where}: {first["msg"]}.'
            ) from exc
    check_unique(tasks)
    return tasks


def check_unique(tasks: Iterable[FleetTask]) -> None:
    """Raises ConfigError when two tasks share an id."""
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise ConfigError(f"Task id {t.id!r} appears twice; ids must be unique.")
        seen.add(t.id)


def read_results(out_dir: str | os.PathLike[str]) -> dict[str, FleetResult]:
    """The results already in ``out_dir/results.jsonl`` by task id (lenient: a torn last
    line or a line that is not a result is skipped). Empty when there is no file."""
    path = Path(out_dir) / RESULTS_FILE
    results: dict[str, FleetResult] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return results
    for line in text.splitlines():
        try:
            r = FleetResult.model_validate_json(line)
        except ValidationError:
            continue
        results[r.id] = r
    return results


def append_result(out_dir: Path, result: FleetResult) -> None:
    """Append one line to ``out_dir/results.jsonl`` and flush it to disk."""
    with open(out_dir / RESULTS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(result.model_dump(mode="json"), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_dir_name(task_id: str) -> str:
    """A directory name for ``task_id``: the id itself when it is already safe, else its
    safe characters plus a short hash (never ``..``, a slash or a leading dot)."""
    safe = _UNSAFE.sub("_", task_id).strip("._")[:80]
    if safe == task_id:
        return safe
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:10]
    return f"{safe or 'task'}-{digest}"


__all__ = [
    "RESULTS_FILE",
    "RESULTS_VERSION",
    "RUNS_DIR",
    "FleetResult",
    "FleetTask",
    "append_result",
    "check_unique",
    "read_results",
    "read_tasks",
    "run_dir_name",
]
