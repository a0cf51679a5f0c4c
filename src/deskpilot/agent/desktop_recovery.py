"""A dead desktop under the agent: restart it once, tell the model, stop if it dies again.

Issue 7, defect 9. Before, every action on a dead desktop answered "call restart()", which
the model cannot do, and the run burned its remaining turns. Now, after each turn's tool
calls, :class:`DesktopRecovery` looks at the desktop (a :class:`RestartableComputer`, e.g.
``LocalDesktop``, whose ``dead`` is True once its X server exited or stopped answering):

1. the first time it is dead, the desktop is restarted (a fresh X server, window manager and
   apps: every window and unsaved change is lost), the tools that belong to it follow it
   (a bash tool whose ``DISPLAY`` was the old desktop's gets the new desktop's environment and
   a fresh shell, so it never drives another run's desktop that reused the display number),
   the last tool result of the turn gets :data:`RESTARTED_NOTE` so the model knows, and a
   ``desktop_restart`` record is written to the trajectory;
2. the second time, the run stops with ``stop_reason="desktop_dead"``.

A ``RemoteDesktop`` has both: its ``dead`` comes from the server's tool results and its
``restart`` resets the server's desktop (``docs/computer-server.md``). A desktop without
``dead``/``restart`` (an in-memory fake) is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..prompt import Text, ToolResult
from .context import text_before_images
from .records import DesktopRestart

__all__ = ["DESKTOP_DEAD", "RESTARTED_NOTE", "DesktopRecovery", "RestartableComputer"]

log = logging.getLogger("deskpilot.agent")

DESKTOP_DEAD = "desktop_dead"
"""The ``stop_reason`` of a run whose desktop died again after one restart."""

RESTARTED_NOTE = (
    "[The desktop stopped working (its X server died or stopped responding) and was restarted "
    "by the agent. Everything that was open on it is gone: windows, apps and unsaved work; "
    "the bash tool has a fresh shell. Take a screenshot to see the new state before acting.]"
)


@runtime_checkable
class RestartableComputer(Protocol):
    """A desktop the agent can restart (``LocalDesktop``)."""

    @property
    def dead(self) -> bool:
        """True once the desktop's X server is gone or not responding."""
        ...

    @property
    def display(self) -> str:
        """The X display name (may change on restart)."""
        ...

    @property
    def env(self) -> dict[str, str]:
        """The variables that put a program on this desktop (``DISPLAY``, ``HOME``, ...)."""
        ...

    async def restart(self) -> Any:
        """Stop what is left of the desktop and start it again."""
        ...


class DesktopRecovery:
    """Watches one run's desktop (see the module docstring).

    Args:
        computer: the run's desktop (anything; only a :class:`RestartableComputer` is watched).
        tools: the run's tools (bash tools on the old display are moved to the new one).
        max_restarts: restarts allowed per run before the run stops (default 1).
    """

    def __init__(self, computer: Any, tools: Sequence[Any], *, max_restarts: int = 1) -> None:
        self.computer = computer if isinstance(computer, RestartableComputer) else None
        self.tools = tools
        self.max_restarts = max_restarts
        self.restarts = 0

    async def after_turn(
        self, results: list[ToolResult], writer: Any = None, *, step: int = 0
    ) -> tuple[list[ToolResult], str | None, str | None]:
        """Check the desktop after a turn's tool calls.

        Returns:
            ``(results, stop_reason, error)``: the results (the last one with
            :data:`RESTARTED_NOTE` appended after a restart), and ``("desktop_dead", message)``
            when the run must stop, else ``(None, None)``.
        """
        desktop = self.computer
        if desktop is None or not desktop.dead:
            return results, None, None
        old_display, old_env = desktop.display, dict(desktop.env)
        if self.restarts >= self.max_restarts:
            message = (
                f"The desktop on display {old_display} died again after it had been restarted "
                f"{self.restarts} time(s); the run stops."
            )
            log.error(message)
            return results, DESKTOP_DEAD, message
        self.restarts += 1
        log.warning("The desktop on %s is dead; restarting it.", old_display)
        try:
            await desktop.restart()
        except Exception as exc:
            message = f"The desktop on display {old_display} died and could not be restarted: {exc}"
            log.error(message)
            return results, DESKTOP_DEAD, message
        followed = await self._move_tools(old_env, dict(desktop.env))
        if writer is not None:
            await writer.write_line(
                DesktopRestart(
                    step=step,
                    reason=(
                        f"The desktop on display {old_display} stopped working (its X server "
                        "died or stopped responding); it was restarted and its state lost."
                    ),
                    old_display=old_display,
                    new_display=desktop.display,
                    tools_moved=followed,
                )
            )
        if results:
            results = [*results[:-1], _with_note(results[-1], RESTARTED_NOTE)]
        return results, None, None

    async def _move_tools(self, old_env: dict[str, str], new_env: dict[str, str]) -> list[str]:
        """Point the tools that drove the old desktop at the new one; returns their names."""
        moved = []
        old_display = old_env.get("DISPLAY")
        for tool in self.tools:
            follow = getattr(tool, "follow_desktop", None)
            env = getattr(tool, "env", None)
            if follow is None or not isinstance(env, dict) or env.get("DISPLAY") != old_display:
                continue
            await follow(old_env, new_env)
            moved.append(str(getattr(tool, "name", type(tool).__name__)))
        return moved


def _with_note(result: ToolResult, note: str) -> ToolResult:
    if isinstance(result.result, str):
        body: Any = f"{result.result}\n\n{note}" if result.result else note
    else:
        body = text_before_images([*result.result, Text(note)])
    return ToolResult(result.tool_call_id, body, result.is_error, result.toolset_name)
