"""The MCP tools of one desktop: their definitions and the dispatch onto deskpilot's executors.

:class:`DesktopTools` lists four tools and runs each call on the executor the agent uses for
the same Anthropic-defined tool, so a client gets the same validation and the same
sentences on failure:

* ``screenshot`` (no arguments): the screen as an MCP image (PNG, base64) at the size the
  model sees (:class:`~deskpilot.computer_use.computer.ComputerTool`'s scaling, in
  screenshot pixels);
* ``computer``: the actions and argument names of Anthropic's computer tool at the newest
  version with one ``computer`` tool and an ``action`` input (``computer_20251124``, zoom
  enabled; the newer ``computer_toolset_20260801`` has the same actions split into one tool
  each), run by ``ComputerTool``: coordinates are in screenshot pixels, input actions answer
  with a sentence and a screenshot;
* ``bash`` (``command``, ``restart``): :class:`~deskpilot.computer_use.bash.BashTool`, one
  persistent shell whose environment is the desktop's allow-listed one (no credential of
  the server's: :mod:`deskpilot.desktop.environment`);
* ``str_replace_based_edit_tool`` (``text_editor_20250728``):
  :class:`~deskpilot.computer_use.editor.EditorTool`.

Results follow the MCP "Tools" page
(https://modelcontextprotocol.io/specification/2025-11-25/server/tools, "Tool Result" and
"Error Handling"): text parts become ``TextContent``, images ``ImageContent``
(``data`` base64, ``mimeType``); a failure the executor reports is a result with
``isError: true`` and the executor's sentence, never a protocol error. A tool name this
server does not list is a protocol error (``-32602``), as the page prescribes for unknown
tools.

Read-only (``deskpilot mcp --read-only``): only ``screenshot`` and a ``computer`` tool
restricted to :data:`READ_ONLY_ACTIONS` are listed; no shell or editor exists. The computer
tool's schemas are written from the tool table (:mod:`deskpilot.computer_use.specs`) and the
computer use tool page
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool,
"Available actions").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    ContentBlock,
    ImageContent,
    TextContent,
    Tool,
    ToolAnnotations,
)

from ..computer_use.actions import SCROLL_DIRECTIONS, allowed_actions
from ..computer_use.bash import BashTool
from ..computer_use.computer import ComputerTool
from ..computer_use.editor import EditorTool
from ..computer_use.specs import computer_spec, editor_spec, versions
from ..prompt import Image, Text, ToolCall, ToolResult
from ..remote.client import RemoteDesktop
from ..remote.executors import RemoteBashTool, RemoteComputerTool, RemoteEditorTool

if TYPE_CHECKING:
    from ..desktop.base import Computer
    from ..desktop.local import LocalDesktop

__all__ = [
    "BASH_VERSION",
    "COMPUTER_VERSION",
    "EDITOR_VERSION",
    "READ_ONLY_ACTIONS",
    "DesktopTools",
    "desktop_tools",
]

log = logging.getLogger(__name__)

COMPUTER_VERSION: str = [v for v in versions("computer") if not computer_spec(v).toolset][-1]
"""The computer tool version served: the newest with one ``computer`` tool (``computer_20251124``)."""
EDITOR_VERSION: str = versions("editor")[-1]
"""The text-editor version served (``text_editor_20250728``, ``str_replace_based_edit_tool``)."""
BASH_VERSION: str = versions("bash")[-1]
"""The bash tool version served (``bash_20250124``)."""

READ_ONLY_ACTIONS: tuple[str, ...] = ("screenshot", "cursor_position", "zoom")
"""The computer actions a read-only server runs: they look at the screen, never change it."""

_POINT = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
    "minItems": 2,
    "maxItems": 2,
}


def _computer_schema(actions: Sequence[str], hold_cap_s: float) -> dict[str, Any]:
    """The JSON Schema of the ``computer`` tool's input (Anthropic's argument names)."""
    props: dict[str, Any] = {
        "action": {"type": "string", "enum": list(actions), "description": "What to do."},
        "coordinate": {
            **_POINT,
            "description": "[x, y] in screenshot pixels, origin top-left: where to click, "
            "move, scroll, or end a left_click_drag.",
        },
        "start_coordinate": {
            **_POINT,
            "description": "[x, y] where left_click_drag starts (screenshot pixels).",
        },
        "text": {
            "type": "string",
            "description": "For type: the text. For key and hold_key: xdotool key names such "
            "as 'Return' or 'ctrl+s'. For clicks, scroll and left_click_drag: modifier keys "
            "to hold, e.g. 'shift'.",
        },
        "scroll_direction": {"type": "string", "enum": list(SCROLL_DIRECTIONS)},
        "scroll_amount": {
            "type": "integer",
            "minimum": 0,
            "maximum": 100,
            "description": "Wheel clicks to scroll.",
        },
        "duration": {
            "type": "number",
            "minimum": 0,
            "maximum": hold_cap_s,
            "description": "Seconds, for hold_key and wait.",
        },
        "region": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 4,
            "maxItems": 4,
            "description": "[x0, y0, x1, y1] of the screenshot to show enlarged (zoom).",
        },
    }
    if set(actions) <= set(READ_ONLY_ACTIONS):
        keep = ("action", "region")
        props = {k: v for k, v in props.items() if k in keep}
    return {"type": "object", "properties": props, "required": ["action"]}


_BASH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "description": "The bash command to run."},
        "restart": {"type": "boolean", "description": "Restart the shell (no command)."},
    },
}


def _editor_schema(commands: Sequence[str], insert_param: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": list(commands)},
            "path": {"type": "string", "description": "Absolute path of a file or directory."},
            "file_text": {"type": "string", "description": "The content of a new file (create)."},
            "view_range": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 2,
                "maxItems": 2,
                "description": "[first, last] line to view, 1-based; last -1 means the end.",
            },
            "old_str": {"type": "string", "description": "The text to replace; must be unique."},
            "new_str": {"type": "string", "description": "The replacement (str_replace)."},
            "insert_line": {
                "type": "integer",
                "minimum": 0,
                "description": "Insert after this line (0: at the top).",
            },
            insert_param: {"type": "string", "description": "The text to insert."},
        },
        "required": ["command", "path"],
    }


def _content(result: ToolResult) -> list[ContentBlock]:
    """The MCP content blocks of an executor's result (text and base64 images, in order)."""
    if isinstance(result.result, str):
        return [TextContent(text=result.result)]
    blocks: list[ContentBlock] = []
    for part in result.result:
        if isinstance(part, Text):
            blocks.append(TextContent(text=part.text))
        elif isinstance(part, Image):
            blocks.append(ImageContent(data=part.base64, mime_type=part.media_type))
    return blocks


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=message)], is_error=True)


class DesktopTools:
    """The MCP tools over one computer's executors (see the module docstring).

    Args:
        computer: the ``ComputerTool`` of the desktop (``computer_20251124``, zoom enabled).
        bash: the shell, or None (read-only servers have none).
        editor: the text editor, or None (read-only servers have none).
        read_only: list only ``screenshot`` and the read actions of ``computer``.

    Calls to the computer run one at a time (two clients must not interleave a drag); the
    shell serialises its own commands.
    """

    def __init__(
        self,
        computer: ComputerTool,
        bash: BashTool | RemoteBashTool | None = None,
        editor: EditorTool | RemoteEditorTool | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self.computer = computer
        self.read_only = read_only
        self.bash = None if read_only else bash
        self.editor = None if read_only else editor
        self._computer_lock = asyncio.Lock()
        self._ids = itertools.count(1)

    @classmethod
    def for_computer(
        cls,
        computer: Computer,
        *,
        read_only: bool = False,
        shell_env: Mapping[str, str] | None = None,
    ) -> DesktopTools:
        """Executors for ``computer`` at the served versions.

        Args:
            computer: a started desktop (e.g. a ``LocalDesktop``) or a ``FakeComputer``.
            read_only: see the class.
            shell_env: variables for the shell over the allow-listed environment (a
                desktop's ``env``: its ``DISPLAY`` and scratch ``HOME``), as the agent
                gives its bash tool.

        Raises:
            ConfigError: ``computer`` does not implement the Computer protocol.
        """
        if isinstance(computer, RemoteDesktop):  # every tool runs on the server's host
            remote = RemoteComputerTool(computer, COMPUTER_VERSION, enable_zoom=True)
            if read_only:
                return cls(remote, read_only=True)
            return cls(
                remote,
                RemoteBashTool(computer, BASH_VERSION),
                RemoteEditorTool(computer, EDITOR_VERSION),
            )
        tool = ComputerTool(computer, COMPUTER_VERSION, enable_zoom=True)
        if read_only:
            return cls(tool, read_only=True)
        return cls(tool, BashTool(version=BASH_VERSION, env=shell_env), EditorTool(EDITOR_VERSION))

    @property
    def computer_actions(self) -> tuple[str, ...]:
        """The ``action`` values the ``computer`` tool accepts on this server."""
        actions = allowed_actions(computer_spec(COMPUTER_VERSION), enable_zoom=True)
        if self.read_only:
            return tuple(a for a in actions if a in READ_ONLY_ACTIONS)
        return actions

    def list_tools(self) -> list[Tool]:
        """The tools this server offers, in a fixed order (screenshot, computer, bash, editor)."""
        w, h = self.computer.model_size
        screen = (
            f"The screen is {w}x{h} pixels (screenshot space); coordinates are [x, y] in those "
            "pixels, origin top-left."
        )
        tools = [
            Tool(
                name="screenshot",
                description=f"Take a screenshot of the desktop (PNG). {screen}",
                input_schema={"type": "object", "properties": {}},
                annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
            ),
            Tool(
                name="computer",
                description=(
                    "Use the mouse and keyboard of the desktop and look at its screen, with "
                    f"the actions and arguments of Anthropic's computer tool ({COMPUTER_VERSION}"
                    f", zoom enabled). {screen} Input actions answer with a sentence and a "
                    "screenshot taken once the screen settled."
                    + (" This server is read-only: only " + ", ".join(READ_ONLY_ACTIONS) + ".")
                    * self.read_only
                ),
                input_schema=_computer_schema(
                    self.computer_actions, computer_spec(COMPUTER_VERSION).hold_cap_s
                ),
                annotations=ToolAnnotations(
                    read_only_hint=self.read_only, destructive_hint=True, open_world_hint=True
                ),
            ),
        ]
        if self.bash is not None:
            tools.append(
                Tool(
                    name="bash",
                    description=(
                        "Run a command in a persistent bash shell on the desktop's machine "
                        "(state such as the directory and variables persists between calls; "
                        f"commands time out after {self.bash.timeout_s:g} s). Its environment "
                        "holds the desktop's DISPLAY and no credentials."
                    ),
                    input_schema=_BASH_SCHEMA,
                    annotations=ToolAnnotations(destructive_hint=True, open_world_hint=True),
                )
            )
        if self.editor is not None:
            spec = editor_spec(self.editor.version)
            tools.append(
                Tool(
                    name=self.editor.name,
                    description=(
                        "View, create and edit text files (Anthropic's text editor tool, "
                        f"{spec.type}): view, create, str_replace, insert."
                    ),
                    input_schema=_editor_schema(spec.commands, spec.insert_param),
                    annotations=ToolAnnotations(destructive_hint=True, open_world_hint=False),
                )
            )
        return tools

    def names(self) -> list[str]:
        """The names of :meth:`list_tools`."""
        return [t.name for t in self.list_tools()]

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> CallToolResult:
        """Run one tool call and answer with its MCP result (never raises for a bad input).

        Args:
            name: the tool name the client called.
            arguments: its arguments (None: none).

        Returns:
            The result: executor failures have ``is_error=True`` and the executor's sentence.

        Raises:
            MCPError: ``name`` is not a tool of this server (code ``INVALID_PARAMS``).
        """
        args = dict(arguments or {})
        call_id = f"mcp-{next(self._ids)}"
        if name == "screenshot":
            if args:
                return _error(
                    "The screenshot tool takes no arguments (got "
                    f"{', '.join(sorted(args))}); use the computer tool for other actions."
                )
            args = {"action": "screenshot"}
            name = "computer"
        if name == "computer":
            action = args.get("action")
            if self.read_only and action not in READ_ONLY_ACTIONS:
                return _error(
                    f"The action {action} is not available: this server is read-only "
                    f"(deskpilot mcp --read-only); it accepts: {', '.join(READ_ONLY_ACTIONS)}."
                )
            async with self._computer_lock:
                result = await self.computer.execute(ToolCall(call_id, "computer", args))
        elif self.bash is not None and name == self.bash.name:
            result = await self.bash.execute(ToolCall(call_id, name, args))
        elif self.editor is not None and name == self.editor.name:
            result = await self.editor.execute(ToolCall(call_id, name, args))
        else:
            offered = ", ".join(self.names())
            why = " (this server is read-only: deskpilot mcp --read-only)" if self.read_only else ""
            raise MCPError(
                INVALID_PARAMS, f"Unknown tool: {name}{why}; this server offers: {offered}."
            )
        log.debug("MCP %s call %s: is_error=%s", name, call_id, result.is_error)
        return CallToolResult(content=_content(result), is_error=result.is_error)

    async def aclose(self) -> None:
        """Close the executors (the shell ends). Idempotent."""
        for executor in (self.bash, self.editor, self.computer):
            if executor is not None:
                await executor.aclose()


@contextlib.asynccontextmanager
async def desktop_tools(
    width: int,
    height: int,
    *,
    apps: Sequence[str] = (),
    read_only: bool = False,
    computer_url: str | None = None,
) -> AsyncIterator[tuple[DesktopTools, LocalDesktop | RemoteDesktop]]:
    """Start a ``LocalDesktop`` (or connect to a computer server) and its tools; close both
    on exit (also on cancellation).

    Args:
        width / height: the desktop's size in native pixels.
        apps: apps to open at start (``"terminal"``, ``"text_editor"``, ``"browser"``).
        read_only: see :class:`DesktopTools`.
        computer_url: serve the desktop of this computer server (``ws://host:8766``, its
            token from ``DESKPILOT_SERVER_TOKEN``) instead; width, height and apps are then
            the server's.

    Yields:
        (the tools, the started desktop).

    Raises:
        MissingDependencyError / DesktopError / DeskpilotTimeoutError: the desktop could not
            start (see :class:`~deskpilot.desktop.local.LocalDesktop`).
    """
    from ..desktop.local import LocalDesktop

    if computer_url:
        async with RemoteDesktop(computer_url) as remote:
            tools = DesktopTools.for_computer(remote, read_only=read_only)
            try:
                yield tools, remote
            finally:
                await tools.aclose()
        return
    async with LocalDesktop(width=width, height=height, apps=tuple(apps)) as desktop:
        tools = DesktopTools.for_computer(desktop, read_only=read_only, shell_env=desktop.env)
        try:
            yield tools, desktop
        finally:
            await tools.aclose()
