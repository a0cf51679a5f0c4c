"""What the agent needs from its collaborators, as small protocols (no attribute probing).

* :class:`AgentClient`: the model client (:class:`~deskpilot.LLMClient` is one): the model's
  spec, the tool types the API already rejected for it, its credentials (kept out of the
  trajectory), and one request.
* :class:`DesktopExtras`: what a desktop may offer beyond the
  :class:`~deskpilot.desktop.base.Computer` protocol (``LocalDesktop`` does): the environment
  its programs see and the apps it opened.
* :class:`ExecutorSource`: a desktop that supplies the agent's executors itself
  (:class:`~deskpilot.RemoteDesktop`: every tool call then runs on the desktop's host).
* The executors are :class:`~deskpilot.computer_use.base.ToolExecutor` and
  :class:`~deskpilot.computer_use.base.ComputerExecutor`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..computer_use.base import ToolExecutor
    from ..computer_use.scaling import ImageTier
    from ..models import ModelSpec
    from ..prompt import Conversation
    from ..response import APIResponse
    from ..tool import Tool


class AgentClient(Protocol):
    """The model client as the agent uses it."""

    def model_spec(self, name: str | None = None) -> ModelSpec:
        """The spec of model ``name`` (default: the client's first model); its ``provider``
        is the platform the agent's tools are chosen for."""
        ...

    def unsupported_tool_types(self, name: str | None = None) -> set[str]:
        """Tool types the API already rejected for that model on its platform."""
        ...

    def credential_values(self) -> tuple[str, ...]:
        """Every credential value the client holds (scrubbed from the trajectory)."""
        ...

    async def start(
        self,
        prompt: Conversation,
        *,
        display_width: int = ...,
        display_height: int = ...,
        cache: str | Sequence[str] | None = ...,
        tools: Iterable[Tool | dict[str, Any]] | None = ...,
        max_tokens: int | None = ...,
        system: str | None = ...,
        thinking: dict[str, Any] | None = ...,
        model: str | None = ...,
    ) -> APIResponse:
        """One request; API errors come back as ``is_error`` responses (with
        ``rejected_tool_types`` when the API named unsupported tool types)."""
        ...


@runtime_checkable
class DesktopExtras(Protocol):
    """Optional desktop extras: ``env`` for the bash tool's shell (``DISPLAY``, ``HOME``,
    ...) and ``apps``, the app names already open (mentioned in the system prompt)."""

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def apps(self) -> Sequence[str]: ...


@runtime_checkable
class ExecutorSource(Protocol):
    """A desktop that makes the agent's executors (instead of the local ComputerTool,
    EditorTool and BashTool), e.g. a remote desktop whose tools run on its own host."""

    def tool_executors(
        self,
        *,
        computer: str | None,
        editor: str | None,
        bash: str | None,
        image_tier: ImageTier | None = None,
    ) -> list[ToolExecutor]:
        """Executors of these tool versions (None: leave that kind out), in that order;
        the computer tool's screenshots follow ``image_tier``."""
        ...


__all__ = ["AgentClient", "DesktopExtras", "ExecutorSource"]
