"""Eval tasks in OSWorld's JSON format: the pydantic models, loading, and classification.

A task file is OSWorld's ``evaluation_examples`` format
(https://github.com/xlang-ai/OSWorld/tree/main/evaluation_examples, one JSON object per
task): ``id``, ``instruction``, ``config`` (set-up steps ``{"type", "parameters"}``) and
``evaluator`` (``func``, ``result``, ``expected``, ``options``, ``conj``, ``postconfig``;
``func`` may be a list, then ``result``/``expected``/``options`` are lists of the same
length and ``conj`` is ``"and"`` (default) or ``"or"``). deskpilot adds optional fields:
``max_turns`` (model calls, >= 1), ``timeout_s`` (seconds for the agent's run), ``tags``
(free labels, e.g. ``"files"``, ``"hard"``) and ``solution`` (the assistant turns that
accomplish the task, each in the Messages API response format ``{"content": [...],
"stop_reason": "tool_use" | "end_turn"}``, served in order by the fake model server under
``deskpilot eval --oracle``). OSWorld's other fields (``snapshot``, ``source``,
``related_apps``, ``trajectory``, ``proxy``, ...) are accepted and ignored.

Loading (:func:`load_tasks`) reads a directory (every ``*.json`` below it, sorted by path)
or a JSONL file (one task per line). A file that is not a task (bad JSON, no ``id``...)
raises :class:`~deskpilot.errors.ConfigError` naming the file; a well-formed task that needs
a set-up step, getter or metric this harness does not have is *classified* at load:
:attr:`Task.unsupported` holds the reason and the runner reports it as ``unsupported``
without running any of it (:func:`classify`).

Paths: OSWorld's tasks run as the user ``user`` whose home is ``/home/user``. Here every
task runs on a desktop with a scratch ``HOME``; :meth:`Task.localized` rewrites every
``/home/user`` path prefix and every ``{HOME}`` placeholder in the task (instruction, steps,
evaluator, solution) to that HOME, so the agent, the set-up and the checker all see the real
path. ``~`` keeps working too (the desktop's shell and :meth:`DesktopHost.resolve_path
<deskpilot.desktop.base.DesktopHost.resolve_path>` expand it to the same HOME).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError

__all__ = [
    "HOME_PLACEHOLDER",
    "OSWORLD_HOME",
    "Check",
    "Evaluator",
    "SetupStep",
    "SolutionTurn",
    "Task",
    "classify",
    "load_tasks",
    "parse_task",
]

OSWORLD_HOME = "/home/user"
"""The home directory OSWorld's tasks are written for; mapped to the desktop's HOME."""
HOME_PLACEHOLDER = "{HOME}"
"""deskpilot's own placeholder for the desktop's HOME in task files."""

_HOME_RE = re.compile(re.escape(OSWORLD_HOME) + r"(?![\w.-])")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SetupStep(BaseModel):
    """One set-up (``config``) or post-config step: ``{"type": ..., "parameters": {...}}``."""

    model_config = ConfigDict(extra="ignore")

    type: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class Check(BaseModel):
    """One metric call of an evaluator, after lists are zipped: ``func(result, expected,
    **options)`` (``expected`` None -> ``func(result, **options)``, OSWorld's rule)."""

    func: str
    result: dict[str, Any] | None = None
    expected: dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class Evaluator(BaseModel):
    """OSWorld's ``evaluator`` object (https://github.com/xlang-ai/OSWorld, desktop_env/
    desktop_env.py ``_set_evaluator_info`` and ``evaluate``)."""

    model_config = ConfigDict(extra="ignore")

    func: str | list[str]
    result: dict[str, Any] | list[dict[str, Any]] | None = None
    expected: dict[str, Any] | list[dict[str, Any]] | None = None
    options: dict[str, Any] | list[dict[str, Any]] | None = None
    conj: Literal["and", "or"] = "and"
    postconfig: list[SetupStep] = Field(default_factory=list)

    def checks(self) -> list[Check]:
        """The metric calls in order (one for a single ``func``).

        Raises:
            ConfigError: ``func`` is a list and ``result``/``expected``/``options`` are not
                lists of the same length (or absent).
        """
        if isinstance(self.func, str):
            r, e, o = self.result, self.expected, self.options
            if isinstance(r, list) or isinstance(e, list) or isinstance(o, list):
                raise ConfigError(
                    "The evaluator's func is one name but result/expected/options is a list."
                )
            return [Check(func=self.func, result=r, expected=e, options=o or {})]
        n = len(self.func)
        cols: dict[str, list[Any]] = {}
        for name in ("result", "expected", "options"):
            value = getattr(self, name)
            if value is None:
                cols[name] = [None] * n
            elif isinstance(value, list) and len(value) == n:
                cols[name] = value
            else:
                raise ConfigError(
                    f"The evaluator has {n} funcs, so {name} must be a list of {n} entries."
                )
        return [
            Check(func=f, result=r, expected=e, options=o or {})
            for f, r, e, o in zip(
                self.func, cols["result"], cols["expected"], cols["options"], strict=True
            )
        ]


class SolutionTurn(BaseModel):
    """One scripted assistant turn: a Messages API response body (``content`` blocks and
    ``stop_reason``; ``id``/``model``/``usage`` optional, filled in when served)."""

    model_config = ConfigDict(extra="allow")

    content: list[dict[str, Any]]
    stop_reason: Literal["tool_use", "end_turn", "max_tokens", "stop_sequence"]

    @field_validator("content")
    @classmethod
    def _blocks_typed(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for block in value:
            if not isinstance(block.get("type"), str):
                raise ValueError("every content block needs a string 'type'")
        return value


class Task(BaseModel):
    """One eval task (OSWorld's fields plus deskpilot's optional ones; see the module doc).

    Attributes:
        unsupported: why this task cannot run here (set by :func:`load_tasks` through
            :func:`classify`), or None when it can.
        base_dir: the directory of the file it was loaded from; relative local paths in
            ``upload_file``/``download``/``cloud_file`` resolve against it.
        root_dir: the suite's root directory; local paths must stay inside it.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    instruction: str
    config: list[SetupStep] = Field(default_factory=list)
    evaluator: Evaluator | None = None
    snapshot: str | None = None
    source: str | None = None
    related_apps: list[str] = Field(default_factory=list)
    max_turns: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    tags: list[str] = Field(default_factory=list)
    solution: list[SolutionTurn] | None = None
    unsupported: str | None = None
    base_dir: str | None = Field(default=None, exclude=True)
    root_dir: str | None = Field(default=None, exclude=True)

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(
                "id must be 1-128 letters, digits, '.', '_' or '-' (it names the result's "
                "directory), starting with a letter or digit"
            )
        return value

    @property
    def runnable(self) -> bool:
        """True when the task has no unsupported part."""
        return self.unsupported is None

    @property
    def infeasible(self) -> bool:
        """True for a task whose checker is OSWorld's ``infeasible`` (the agent should say so)."""
        return self.evaluator is not None and self.evaluator.func == "infeasible"

    def localized(self, home: str) -> Task:
        """A copy with ``/home/user`` path prefixes and ``{HOME}`` replaced by ``home``.

        Args:
            home: the desktop's HOME, an absolute path (e.g. ``host.resolve_path("~")``).

        Raises:
            ConfigError: ``home`` is not absolute.
        """
        if not home.startswith("/"):
            raise ConfigError(f"The desktop's HOME must be an absolute path, not {home!r}.")
        home = home.rstrip("/") or "/"
        data = _substitute(self.model_dump(mode="json", exclude_none=False), home)
        return Task.model_validate({**data, "base_dir": self.base_dir, "root_dir": self.root_dir})

    def solution_responses(self) -> list[dict[str, Any]]:
        """The ``solution`` as full Messages API response bodies for the fake model server:
        ``type``/``role`` set, ``usage`` ``"auto"`` (the server computes it), and every
        ``tool_use`` block without an ``id`` given ``toolu_sol_<turn>_<block>``.

        Raises:
            ConfigError: the task has no solution.
        """
        if not self.solution:
            raise ConfigError(f"Task {self.id} has no solution to serve.")
        out: list[dict[str, Any]] = []
        for t, turn in enumerate(self.solution, 1):
            body = turn.model_dump(mode="json")
            blocks = []
            for b, block in enumerate(body["content"], 1):
                block = dict(block)
                if block.get("type") == "tool_use" and not block.get("id"):
                    block["id"] = f"toolu_sol_{t:02d}_{b}"
                blocks.append(block)
            body.update(content=blocks, type="message", role="assistant", usage="auto")
            body.setdefault("id", None)
            body.setdefault("model", None)
            body.setdefault("stop_sequence", None)
            out.append(body)
        return out


def _substitute(value: Any, home: str) -> Any:
    if isinstance(value, str):
        return _HOME_RE.sub(lambda _m: home, value).replace(HOME_PLACEHOLDER, home)
    if isinstance(value, list):
        return [_substitute(v, home) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, home) for k, v in value.items()}
    return value


def classify(task: Task) -> str | None:
    """Why ``task`` cannot run here, or None when every part of it is supported.

    Checks the evaluator (present, a non-empty ``func``, lists of equal length), every
    metric and getter type with its arguments, and every ``config``/``postconfig`` step with
    its parameters (e.g. a ``download`` from an http URL: "unsupported here: no network").
    The reason is one sentence naming the part, e.g. ``"metric 'compare_table' is not
    supported here"``.
    """
    from .getters import check_getter
    from .metrics import check_metric
    from .setup import check_step

    ev = task.evaluator
    if ev is None:
        return "the task has no evaluator, so its result cannot be checked"
    if isinstance(ev.func, list) and not ev.func:
        return "the evaluator's func list is empty"
    try:
        checks = ev.checks()
    except ConfigError as exc:
        return str(exc).rstrip(".")
    steps = [("config", s) for s in task.config] + [("postconfig", s) for s in ev.postconfig]
    for where, step in steps:
        reason = check_step(step.type, step.parameters)
        if reason:
            return f"{where} step '{step.type}': {reason}"
    for check in checks:
        if not check.func:
            return "the evaluator's func is empty (OSWorld has no checker for this task)"
        rules = (
            (check.expected or {}).get("rules")
            if (check.expected or {}).get("type") == "rule"
            else None
        )
        reason = check_metric(check.func, check.options, rules)
        if reason:
            return reason
        for role, getter in (("result", check.result), ("expected", check.expected)):
            if getter is None:
                if role == "result" and check.func != "infeasible":
                    return f"metric '{check.func}' has no result getter"
                continue
            reason = check_getter(getter, steps=[s for _, s in steps])
            if reason:
                return f"{role} getter: {reason}"
    return None


def parse_task(
    data: Any, *, where: str, base_dir: Path | None = None, root_dir: Path | None = None
) -> Task:
    """Validate one task object and classify it (:attr:`Task.unsupported`).

    Args:
        data: the decoded JSON object.
        where: what to name in errors (``"tasks/x.json"``, ``"suite.jsonl line 3"``).
        base_dir / root_dir: see :class:`Task`.

    Raises:
        ConfigError: ``data`` is not a task object (the message names ``where`` and the field).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where} is not a task: expected a JSON object.")
    try:
        task = Task.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{where} is not a valid task: {loc}: {first['msg']}.") from exc
    task.base_dir = str(base_dir) if base_dir is not None else None
    task.root_dir = str(root_dir) if root_dir is not None else None
    if task.unsupported is None:
        task.unsupported = classify(task)
    return task


def _iter_sources(path: Path) -> Iterator[tuple[str, Any, Path]]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        for file in files:
            rel = file.relative_to(path)
            if any(part.startswith("_") for part in rel.parts):
                continue  # assets, not tasks
            try:
                data = json.loads(file.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{rel} could not be read as JSON: {exc}.") from exc
            yield str(rel), data, file.parent
        return
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The task file {path} could not be read: {exc}.") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path.name} line {number} is not JSON: {exc}.") from exc
        yield f"{path.name} line {number}", data, path.parent


def load_tasks(path: str | Path) -> list[Task]:
    """Load every task of a suite: a directory of ``*.json`` files (recursively, sorted by
    relative path; files named ``_*.json`` and anything under a ``_``-prefixed directory are
    skipped, for assets) or a ``.jsonl`` file (one task per non-empty line).

    Returns:
        The tasks in order, each classified (:attr:`Task.unsupported`).

    Raises:
        ConfigError: the path does not exist, a file is not a task, or two tasks share an id.
    """
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise ConfigError(f"No task suite at {path} (give a directory of *.json or a .jsonl).")
    base_root = root if root.is_dir() else root.parent
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for where, data, base in _iter_sources(root):
        task = parse_task(data, where=where, base_dir=base, root_dir=base_root)
        if task.id in seen:
            raise ConfigError(f"{where} repeats the task id {task.id!r} of {seen[task.id]}.")
        seen[task.id] = where
        tasks.append(task)
    return tasks
