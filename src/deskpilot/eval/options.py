"""The options of an eval run (``deskpilot eval``'s flags) and the harness's constants."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from .checker import INFEASIBLE_PROMPT

__all__ = [
    "DEFAULT_MAX_TURNS",
    "DEFAULT_TIMEOUT_S",
    "INFEASIBLE_RULE",
    "ORACLE_MODEL",
    "RUNS_DIR",
    "WORK_DIR",
    "EvalOptions",
    "Mode",
]

Mode = Literal["model", "oracle", "noop", "replay"]
DEFAULT_MAX_TURNS = 30
"""Model calls per task when neither ``--max-turns`` nor the task says."""
DEFAULT_TIMEOUT_S = 900.0
"""Seconds for the agent's run when the task does not say."""
RUNS_DIR = "runs"
ORACLE_MODEL = "claude-sonnet-4-5"
WORK_DIR = "work"
INFEASIBLE_RULE = f"\n<EVALUATION>\n* {INFEASIBLE_PROMPT}\n</EVALUATION>"
"""What eval adds to the agent's default system prompt (a task whose checker is
``infeasible`` passes only when the final answer starts with ``INFEASIBLE``; any other task
then fails: :mod:`deskpilot.eval.checker`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalOptions:
    """How :func:`run_suite` runs a suite (the ``deskpilot eval`` options).

    Attributes:
        out: the output directory (``results.jsonl``, ``settings.json``, ``index.html``,
            ``runs/``).
        mode: ``"model"``, ``"oracle"``, ``"noop"`` or ``"replay"`` (module docstring).
        model / provider: the model's registry name and platform (model mode; oracle,
            noop and replay serve the fake model under this name, default
            ``claude-sonnet-4-5``).
        desktops: desktops (and tasks) at once, >= 1.
        trials: runs of each task, >= 1 (pass@k over them).
        max_turns: model calls per task for every task (None: the task's ``max_turns``, else
            :data:`DEFAULT_MAX_TURNS`).
        resume: skip the tasks and trials ``OUT/results.jsonl`` already has.
        pattern: ``--tasks``: comma-separated shell patterns matched against ids and tags.
        replay_dir: the earlier run's output directory (replay mode).
        screen: the desktops' size in pixels.
        pass_mark: the score a task needs to pass (0-1].
        report: write each run's ``report.html``.
        client_options: extra ``LLMClient`` keyword arguments (model mode).
    """

    out: Path
    mode: Mode = "model"
    model: str | None = None
    provider: str | None = None
    desktops: int = 1
    trials: int = 1
    max_turns: int | None = None
    resume: bool = False
    pattern: str | None = None
    replay_dir: Path | None = None
    screen: tuple[int, int] = (1280, 800)
    pass_mark: float = 1.0
    report: bool = True
    client_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.desktops < 1 or self.trials < 1:
            raise ConfigError("--desktops and --trials must be at least 1.")
        if self.max_turns is not None and self.max_turns < 1:
            raise ConfigError(f"--max-turns must be at least 1, not {self.max_turns}.")
        if not 0.0 < self.pass_mark <= 1.0:
            raise ConfigError(f"The pass mark must be in (0, 1], not {self.pass_mark}.")
        if self.mode == "replay" and self.replay_dir is None:
            raise ConfigError("Replay mode needs the directory of the run to replay.")

    @property
    def model_name(self) -> str:
        return self.model or ORACLE_MODEL
