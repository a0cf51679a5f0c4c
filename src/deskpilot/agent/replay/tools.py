"""The executors a replay runs recorded calls with: the recorded tool versions, bash and the
text editor confined to one sandbox directory.

One implementation for both ways of replaying: ``deskpilot replay`` / :func:`replay_run`
(recorded actions) and ``deskpilot run --replay`` (recorded model turns driving the agent).
The sandbox is the fresh desktop's scratch HOME (``LocalDesktop.home``), a directory the
caller names, or a new temporary directory; bash starts in it (``cwd``) and the editor may
not leave it (``allowed_roots``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..records import RunStart

__all__ = ["replay_sandbox", "replay_tools"]


@runtime_checkable
class _HasHome(Protocol):
    """A desktop with a scratch HOME of its own (``LocalDesktop``)."""

    @property
    def home(self) -> Path | None: ...


def replay_sandbox(desktop: Any, given: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The directory recorded bash and editor calls are confined to, and whether the caller
    created it here and must remove it.

    Returns:
        ``(given, False)`` (created when missing), else ``(desktop.home, False)`` for a
        desktop with a scratch HOME, else ``(a new temporary directory, True)``; resolved.
    """
    if given is not None:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve(), False
    if isinstance(desktop, _HasHome) and isinstance(desktop.home, Path):
        return desktop.home.resolve(), False
    return Path(tempfile.mkdtemp(prefix="deskpilot-replay-")).resolve(), True


def replay_tools(desktop: Any, start: RunStart, sandbox: Path | None) -> dict[str, Any]:
    """The executors of the recorded tool versions, by kind (``"computer"``, ``"editor"``,
    ``"bash"``): a ComputerTool on ``desktop`` (the recorded image tier and screenshot size,
    model-space pixels), and, only with a ``sandbox``, an EditorTool confined to it and a
    BashTool starting in it (with the desktop's environment).

    Raises:
        ConfigError, ValueError, TypeError: a recorded version or setting is refused by its
            executor.
    """
    versions = start.tool_versions
    tools: dict[str, Any] = {}
    if versions.computer:
        from ...computer_use.computer import ComputerTool

        kw: dict[str, Any] = {}
        if start.image_tier:
            kw["image_tier"] = start.image_tier
        if start.model_size:
            kw["target_size"] = tuple(start.model_size)
        tools["computer"] = ComputerTool(desktop, versions.computer, **kw)
    if sandbox is not None and versions.editor:
        from ...computer_use.editor import EditorTool

        tools["editor"] = EditorTool(version=versions.editor, allowed_roots=[sandbox])
    if sandbox is not None and versions.bash:
        from ...computer_use.bash import BashTool

        env = getattr(desktop, "env", None)
        tools["bash"] = BashTool(version=versions.bash, env=env, cwd=sandbox)
    return tools
