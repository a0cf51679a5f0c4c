"""What set-up steps, getters and metrics work with: the desktop host, files, the answer.

One :class:`EvalContext` per task run. The runner builds it after the desktop is ready
(:meth:`EvalContext.for_task`); set-up steps (:mod:`deskpilot.eval.setup`) and getters
(:mod:`deskpilot.eval.getters`) reach the desktop only through its
:class:`~deskpilot.desktop.base.DesktopHost` (``run_command``, ``put_file``, ``get_file``,
``resolve_path``) and, for the few steps that press keys or click, its
:class:`~deskpilot.desktop.base.Computer`.

Local files named by a task (``upload_file``'s ``local_path``, a ``download``/``cloud_file``
``file://`` or plain path) are untrusted input: they resolve against the task file's
directory and must lie inside the suite's root directory (:meth:`EvalContext.local_path`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DeskpilotError

if TYPE_CHECKING:
    from ..desktop.base import CommandOutput, Computer, DesktopHost
    from .task import Task

__all__ = [
    "INFEASIBLE_MARK",
    "OSWORLD_SCREEN",
    "EvalContext",
    "EvalError",
    "SetupError",
    "normalize_command",
    "tail",
]

INFEASIBLE_MARK = "INFEASIBLE"
"""A final answer starting with this word declares the task infeasible."""
OSWORLD_SCREEN = (1920, 1080)
"""The screen size (pixels) OSWorld's pyautogui coordinates are written for."""


class EvalError(DeskpilotError):
    """A task's set-up or check could not be done (the message says which step and why)."""


class SetupError(EvalError):
    """A set-up or post-config step failed; the task is not run (or not checked)."""


@dataclass(slots=True, kw_only=True)
class EvalContext:
    """The handles of one task run.

    Attributes:
        host: the desktop's machine (commands and files run there, in the desktop's env).
        work_dir: a local directory for this run's copies (``vm_file`` downloads land here).
        computer: the desktop's screen and input, for steps that click or type (pyautogui
            one-liners); None -> such steps fail with a sentence.
        base_dir: the task file's directory (relative local paths start here).
        root_dir: the suite's root; local paths must lie inside it (None: base_dir).
        final_text: the agent's final answer (``AgentResult.final_text``) once it ran.
        command_timeout_s: limit for each command of a step or getter, in seconds.
    """

    host: DesktopHost
    work_dir: Path
    computer: Computer | None = None
    base_dir: Path | None = None
    root_dir: Path | None = None
    final_text: str | None = None
    command_timeout_s: float = 60.0

    @classmethod
    def for_task(
        cls,
        task: Task,
        host: DesktopHost,
        *,
        work_dir: str | Path,
        computer: Computer | None = None,
        final_text: str | None = None,
    ) -> EvalContext:
        """A context for ``task`` (its ``base_dir``/``root_dir``), creating ``work_dir``."""
        work = Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
        return cls(
            host=host,
            work_dir=work,
            computer=computer,
            base_dir=Path(task.base_dir) if task.base_dir else None,
            root_dir=Path(task.root_dir) if task.root_dir else None,
            final_text=final_text,
        )

    @property
    def declared_infeasible(self) -> bool:
        """True when the final answer starts with ``INFEASIBLE`` (leading blanks ignored)."""
        return (self.final_text or "").lstrip().startswith(INFEASIBLE_MARK)

    def local_path(self, path: str) -> Path:
        """Resolve a task's local file (plain path or ``file://`` URL) inside the suite.

        Raises:
            SetupError: no suite directory is known, the path leaves the suite's root, or
                no file is there.
        """
        raw = path.removeprefix("file://")
        base = self.base_dir or self.root_dir
        if base is None:
            raise SetupError(f"The local file {path!r} has no suite directory to resolve in.")
        root = (self.root_dir or base).resolve()
        full = (base / raw).resolve()
        if full != root and root not in full.parents:
            raise SetupError(
                f"The local file {path!r} lies outside the suite's directory {root}; "
                "task files may only use files inside their suite."
            )
        if not full.is_file():
            raise SetupError(f"No local file at {full} (named {path!r} by the task).")
        return full

    async def get_file(self, path: str) -> bytes:
        """The bytes of the desktop's file at ``path``: a regular file only, never one on
        ``/proc`` or ``/sys`` (the agent may have left a symlink to ``/proc/self/environ``,
        deskpilot's own environment, where a checker reads; see
        :mod:`deskpilot.desktop.host_files`).

        Raises:
            DesktopError: no such file, or not a regular stored file.
        """
        return await self.host.get_file(path)  # the host refuses kernel files itself

    async def put_file(self, path: str, data: bytes) -> str:
        """Write ``data`` to the desktop's file at ``path`` (folders made); the same rule as
        :meth:`get_file`. Returns the absolute path written.

        Raises:
            DesktopError: not a regular stored file, or the system refused.
        """
        return await self.host.put_file(path, data)

    async def run(
        self, command: str | list[str], *, shell: bool = False, timeout_s: float | None = None
    ) -> CommandOutput:
        """Run a command the way OSWorld's VM server does (see :func:`normalize_command`)."""
        return await self.host.run_command(
            normalize_command(command, shell=shell, home=self.host.resolve_path("~")),
            timeout_s=timeout_s or self.command_timeout_s,
        )


def normalize_command(command: str | list[str], *, shell: bool, home: str) -> str | list[str]:
    """OSWorld's command rule (https://github.com/xlang-ai/OSWorld,
    desktop_env/server/main.py ``/execute``): ``shell`` true -> one ``bash -c`` string (a
    list is joined with spaces); false -> an argument list (a string is split with
    ``shlex``), each argument starting with ``~/`` expanded to ``home``, and a first
    argument ``python`` run as ``python3`` (OSWorld's VM has ``python``; Debian has
    ``python3``).

    Raises:
        SetupError: an empty command, or a string ``shlex`` cannot split.
    """
    if shell:
        text = command if isinstance(command, str) else " ".join(command)
        if not text.strip():
            raise SetupError("The command is empty.")
        return text
    try:
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    except ValueError as exc:
        raise SetupError(f"The command {command!r} could not be split: {exc}.") from exc
    if not argv:
        raise SetupError("The command is empty.")
    argv = [home + a[1:] if a == "~" or a.startswith("~/") else a for a in argv]
    if argv[0] == "python":
        argv[0] = "python3"
    return argv


def tail(text: str, limit: int = 400) -> str:
    """The last ``limit`` characters of ``text`` (stripped), with ``...`` when cut."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]
