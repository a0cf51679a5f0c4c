"""The common shape of the tool executors: definition, execute (never raises), aclose.

Every executor (:class:`~deskpilot.computer_use.computer.ComputerTool`,
:class:`~deskpilot.computer_use.bash.BashTool`, :class:`~deskpilot.computer_use.editor.EditorTool`)
runs one kind of Anthropic-defined tool at one ``version`` (a row of the tool-version table,
:mod:`deskpilot.computer_use.specs`), has a wire ``definition``, the ``name`` the model calls,
``async execute(call) -> ToolResult``, ``with_version(version)`` (the same executor for another
version of its tool, after a step-down) and ``aclose()``, and is an async context manager.
:class:`ToolExecutor` is that shape as a protocol, for callers such as the agent. ``execute`` turns every failure into an
``is_error`` tool result whose text is a sentence the model can act on; unexpected exceptions
are logged with their traceback (the reference let them escape and crash the loop, its
issue #135).
"""

from __future__ import annotations

import copy
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from ..errors import ConfigError, ToolError
from ..prompt import ToolCall, ToolResult
from .specs import ToolKind, tool_spec, versions

logger = logging.getLogger(__name__)


@runtime_checkable
class ToolExecutor(Protocol):
    """What a caller (the agent) needs from an executor of an Anthropic-defined tool."""

    @property
    def name(self) -> str:
        """The tool name the model calls (``"computer"``, ``"bash"``, ...)."""
        ...

    @property
    def version(self) -> str:
        """The wire type this executor runs (a key of ``specs.TOOL_VERSIONS``)."""
        ...

    @property
    def definition(self) -> dict[str, Any]:
        """The ``tools`` entry to send to the API."""
        ...

    async def execute(self, call: ToolCall) -> ToolResult:
        """Run ``call``; failures come back as ``is_error`` results (never raises)."""
        ...

    def with_version(self, version: str) -> ToolExecutor:
        """This executor for another version of its tool (same settings and state)."""
        ...

    async def aclose(self) -> None:
        """Release resources (idempotent)."""
        ...


@runtime_checkable
class ComputerExecutor(ToolExecutor, Protocol):
    """What a caller needs from the computer tool's executor, beyond :class:`ToolExecutor`."""

    @property
    def model_size(self) -> tuple[int, int]:
        """(width, height) in pixels of the screenshots the model sees."""
        ...

    @property
    def image_tier(self) -> str:
        """The API image rule the screenshots follow (``"legacy"`` or ``"2576"``)."""
        ...

    @property
    def last_timings(self) -> dict[str, float]:
        """Seconds of the last action: ``action_s``, ``settle_s``, ``screenshot_s``."""
        ...

    async def execute_quiet(self, call: ToolCall) -> ToolResult:
        """Like :meth:`execute` but without the post-action screenshot."""
        ...

    def screenshot_call(self, call_id: str) -> ToolCall:
        """A ``screenshot`` call in the wire shape of this executor's version."""
        ...


class Executor(ABC):
    """Base class of the tool executors (see the module docstring).

    Subclasses set :attr:`kind` and a ``version`` of that kind.
    """

    kind: ClassVar[ToolKind]
    name: str = ""
    version: str = ""
    _closed: bool = False

    def with_version(self, version: str) -> Self:
        """A copy of this executor for ``version`` of the same tool (e.g. after the API
        rejected the newer one: :func:`deskpilot.computer_use.specs.step_down`).

        The copy shares the original's settings and state (a bash session, an editor's
        undo history, a computer's scaling); use it instead of the original from then on.

        Raises:
            ConfigError: ``version`` is not a version of this executor's tool.
        """
        try:
            row = tool_spec(version)
        except KeyError:
            row = None
        if row is None or row.kind != self.kind:
            raise ConfigError(
                f"{type(self).__name__} runs the {self.kind} tool; use one of "
                f"{versions(self.kind)}, not {version!r}."
            )
        clone = copy.copy(self)
        clone._use_version(version)
        return clone

    def _use_version(self, version: str) -> None:
        """Switch this (copied) executor to ``version`` (subclasses update what derives from it)."""
        self.version = version

    @property
    @abstractmethod
    def definition(self) -> dict[str, Any]:
        """The ``tools`` entry to send to the API for this executor."""

    @abstractmethod
    async def _execute(self, call: ToolCall) -> ToolResult:
        """Run one call; may raise :class:`~deskpilot.errors.ToolError` (becomes is_error)."""

    async def execute(self, call: ToolCall) -> ToolResult:
        """Run ``call`` and answer with a :class:`ToolResult` (never raises, except
        ``asyncio.CancelledError``). Failures come back with ``is_error=True``."""
        return await self._guarded(call, self._execute, call)

    async def _guarded(
        self, call: ToolCall, fn: Callable[..., Awaitable[ToolResult]], *args: Any
    ) -> ToolResult:
        """Await ``fn(*args)``, turning every exception into an is_error result for ``call``."""
        if self._closed:
            return self.error_result(
                call, f"The {self.name} tool was closed; start a new session to use it again."
            )
        try:
            return await fn(*args)
        except ToolError as exc:
            logger.debug("%s call %s failed: %s", self.name, call.id, exc)
            return self.error_result(call, str(exc))
        except Exception as exc:
            logger.exception("%s call %s raised unexpectedly", self.name, call.id)
            return self.error_result(
                call,
                f"The {self.name} tool failed unexpectedly ({type(exc).__name__}: {exc}). "
                "Try again, or try a different approach.",
            )

    @staticmethod
    def error_result(call: ToolCall, message: str) -> ToolResult:
        """An ``is_error`` result for ``call`` (echoing its ``toolset_name``)."""
        return ToolResult(call.id, message, is_error=True, toolset_name=call.toolset_name)

    async def aclose(self) -> None:
        """Release resources; later calls answer with an is_error result. Idempotent."""
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["ComputerExecutor", "Executor", "ToolExecutor"]
