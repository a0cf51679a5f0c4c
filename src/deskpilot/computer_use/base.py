"""The common shape of the tool executors: definition, execute (never raises), aclose.

Every executor (:class:`~deskpilot.computer_use.computer.ComputerTool`,
:class:`~deskpilot.computer_use.bash.BashTool`, :class:`~deskpilot.computer_use.editor.EditorTool`)
has a wire ``definition``, the ``name`` the model calls, ``async execute(call) -> ToolResult``
and ``aclose()``, and is an async context manager. ``execute`` turns every failure into an
``is_error`` tool result whose text is a sentence the model can act on; unexpected exceptions
are logged with their traceback (the reference let them escape and crash the loop, its
issue #135).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Self

from ..errors import ToolError
from ..prompt import ToolCall, ToolResult

logger = logging.getLogger(__name__)


class Executor(ABC):
    """Base class of the tool executors (see the module docstring)."""

    name: str = ""
    _closed: bool = False

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


__all__ = ["Executor"]
