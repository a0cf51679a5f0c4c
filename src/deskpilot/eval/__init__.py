"""deskpilot's evaluation harness: OSWorld-format tasks, set-up steps, getters, metrics,
the checker, and the bundled offline suites (``suites/basic``).

The format and what is supported: ``docs/eval.md``. The pieces, bottom up:
:mod:`~deskpilot.eval.task` (models, loading, classification),
:mod:`~deskpilot.eval.setup` (set-up steps), :mod:`~deskpilot.eval.getters`,
:mod:`~deskpilot.eval.metrics`, :mod:`~deskpilot.eval.checker` (one verdict per run).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from .checker import INFEASIBLE_PROMPT, CheckResult, Evidence, check_task
from .context import EvalContext, EvalError, SetupError
from .setup import run_setup
from .task import Task, classify, load_tasks

__all__ = [
    "INFEASIBLE_PROMPT",
    "CheckResult",
    "EvalContext",
    "EvalError",
    "Evidence",
    "SetupError",
    "Task",
    "bundled_suite",
    "check_task",
    "classify",
    "load_tasks",
    "run_setup",
]


def bundled_suite(name: str = "basic") -> Path:
    """The directory of a suite shipped with deskpilot (``deskpilot eval --suite NAME``).

    Raises:
        ConfigError: no bundled suite has that name.
    """
    root = resources.files(__package__).joinpath("suites")
    path = Path(str(root)) / name
    if not name.isidentifier() or not path.is_dir():
        names = sorted(
            p.name for p in Path(str(root)).iterdir() if p.is_dir() and not p.name.startswith("_")
        )
        raise ConfigError(f"No bundled suite named {name!r}; the bundled suites are {names}.")
    return path
