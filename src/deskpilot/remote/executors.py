"""Client-side executors of a RemoteDesktop: each whole tool call in one round trip.

:class:`RemoteComputerTool` is a :class:`~deskpilot.computer_use.computer.ComputerTool`
(the same definition, model-space size and settings) whose calls run on the server's
``ComputerTool`` with those settings: the server acts, settles, captures and encodes, and
answers the exact :class:`~deskpilot.prompt.ToolResult` a local executor gives.
:class:`RemoteBashTool` and :class:`RemoteEditorTool` run the ``bash`` and text-editor
tools on the server's host, each in its own server-side session (one persistent shell,
one undo history), closed by :meth:`aclose`. A failure to reach the server is an
``is_error`` result with a sentence, like every executor failure.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from ..computer_use.base import Executor
from ..computer_use.computer import ComputerTool
from ..computer_use.specs import bash_definition, editor_definition, editor_spec, versions
from ..errors import ConfigError
from ..prompt import Image, ToolCall, ToolResult
from . import protocol as p

if TYPE_CHECKING:
    from .client import RemoteDesktop

__all__ = ["RemoteBashTool", "RemoteComputerTool", "RemoteEditorTool"]


class RemoteComputerTool(ComputerTool):
    """The computer tool on a :class:`~deskpilot.remote.client.RemoteDesktop`, one round
    trip per call. Takes ComputerTool's arguments (see there)."""

    def __init__(self, computer: RemoteDesktop, version: str = "computer_20251124", **kw: Any):
        super().__init__(computer, version, **kw)
        self.remote = computer
        self.last_server_s = 0.0  # the server's own seconds for the last call

    def _options(self) -> p.ComputerOptions:
        return p.ComputerOptions(
            image_tier=self.image_tier,
            target_size=(self.target_size[0], self.target_size[1]) if self.target_size else None,
            enable_zoom=self.enable_zoom,
            screenshot_format=self.screenshot_format,
            screenshot_quality=self.screenshot_quality,
            screenshot_after_action=self.screenshot_after_action,
            settle=self.settle,
            settle_timeout_s=self.settle_timeout_s,
        )

    async def _execute(self, call: ToolCall, screenshot: bool | None = None) -> ToolResult:
        params = p.ToolParams(
            kind="computer",
            version=self.version,
            call=p.CallWire.of(call),
            quiet=screenshot is False,
            options=self._options(),
        )
        wire = p.ToolResultWire.model_validate(
            await self.remote.call("tool", params.model_dump(mode="json"))
        )
        self.last_timings = dict(wire.timings)
        self.last_server_s = wire.server_s
        self.remote.dead = wire.desktop_dead
        return wire.to_result()

    async def _screenshot_part(self) -> Image:
        """The end-of-batch screenshot, taken by the server's executor."""
        result = await self._execute(self.screenshot_call("screenshot"))
        if result.is_error or not result.images:
            raise ConfigError(f"The server took no screenshot: {result.text}")
        return result.images[0]


class _RemoteSessionTool(Executor):
    """A bash or editor tool whose calls run in a session on the server."""

    def __init__(self, remote: RemoteDesktop, version: str) -> None:
        if version not in versions(self.kind):
            raise ConfigError(
                f"Unknown {self.kind} tool version {version!r}; use one of {versions(self.kind)}."
            )
        self.remote = remote
        self.session = f"{self.kind}-{uuid.uuid4().hex}"
        self.last_server_s = 0.0  # the server's own seconds for the last call
        self._use_version(version)

    async def _execute(self, call: ToolCall) -> ToolResult:
        params = p.ToolParams(
            kind=self.kind, version=self.version, call=p.CallWire.of(call), session=self.session
        )
        wire = p.ToolResultWire.model_validate(
            await self.remote.call("tool", params.model_dump(mode="json"))
        )
        self.last_server_s = wire.server_s
        self.remote.dead = wire.desktop_dead
        return wire.to_result()

    async def aclose(self) -> None:
        """End the server-side session (best effort) and refuse later calls. Idempotent."""
        if not self._closed:
            with contextlib.suppress(Exception):
                await self.remote.call("close_session", {"session": self.session}, timeout_s=10)
        await super().aclose()


class RemoteBashTool(_RemoteSessionTool):
    """The ``bash`` tool on the server's host: one persistent shell (the server's
    :class:`~deskpilot.computer_use.bash.BashTool`, with the remote desktop's environment)."""

    kind = "bash"
    name = "bash"
    timeout_s = 120.0
    """Seconds a command may run on the server (its BashTool's limit)."""

    def __init__(self, remote: RemoteDesktop, version: str = "bash_20250124") -> None:
        super().__init__(remote, version)

    @property
    def definition(self) -> dict[str, Any]:
        return bash_definition(self.version)


class RemoteEditorTool(_RemoteSessionTool):
    """The text-editor tool on the server's host (the server's
    :class:`~deskpilot.computer_use.editor.EditorTool`: its files, its undo history)."""

    kind = "editor"

    def __init__(self, remote: RemoteDesktop, version: str = "text_editor_20250728") -> None:
        super().__init__(remote, version)

    def _use_version(self, version: str) -> None:
        self.version = version
        self.name = editor_spec(version).name

    @property
    def definition(self) -> dict[str, Any]:
        return editor_definition(self.version)
