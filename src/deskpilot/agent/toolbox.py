"""The agent's tools for one run: executors and custom tools, their group, and step-down.

:class:`Toolbox` holds the executors (computer, editor, bash: each a
:class:`~deskpilot.computer_use.base.ToolExecutor`) and the custom
:class:`~deskpilot.Tool` s of one run, in request order, and knows which executors the agent
created (and closes them). Its tool group is read from the executors' versions; when the API
rejects some of them, :meth:`Toolbox.step_down` asks the one step-down function
(:func:`deskpilot.computer_use.specs.step_down`, the same the client applies to
``computer_use=True``) for the next group and moves each affected executor to its new version
(``with_version``), so the model's calls are parsed with the matching action set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..computer_use.base import ComputerExecutor, ToolExecutor
from ..computer_use.specs import KINDS, ToolGroup, step_down, tool_spec
from ..errors import ConfigError
from ..providers.tools import group_for
from ..tool import Tool
from .protocols import ExecutorSource

if TYPE_CHECKING:
    from ..computer_use.scaling import ImageTier
    from ..desktop.base import Computer
    from ..models import ModelSpec

log = logging.getLogger("deskpilot.agent")


def _check_item(item: Any) -> ToolExecutor | Tool:
    if isinstance(item, Tool | ToolExecutor):
        return item
    raise ConfigError(
        "Agent tools= items must be executors (ComputerTool, EditorTool, BashTool, or anything "
        "implementing deskpilot.computer_use.base.ToolExecutor) or deskpilot.Tool objects, "
        f"not {type(item).__name__}."
    )


class Toolbox:
    """The tools of one agent run (see the module docstring).

    Args:
        items: executors and custom Tools, in request order.
        owned: the executors among ``items`` the agent created (closed by :meth:`aclose`).

    Raises:
        ConfigError: an item is neither an executor nor a Tool, two executors run the same
            kind of tool, or the computer executor lacks the
            :class:`~deskpilot.computer_use.base.ComputerExecutor` methods.
    """

    def __init__(
        self, items: Sequence[ToolExecutor | Tool], owned: Sequence[ToolExecutor] = ()
    ) -> None:
        self.items: list[ToolExecutor | Tool] = [_check_item(i) for i in items]
        self.owned: list[ToolExecutor] = list(owned)
        try:
            ToolGroup.of_types(e.version for e in self.executors)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"Agent tools: {exc}; pass one executor per tool.") from exc
        computer = self._of_kind("computer")
        if computer is not None and not isinstance(computer, ComputerExecutor):
            raise ConfigError(
                f"{type(computer).__name__} runs the computer tool but lacks the methods of "
                "deskpilot.computer_use.base.ComputerExecutor (model_size, execute_quiet, ...)."
            )

    @classmethod
    def for_run(
        cls,
        given: Sequence[Any] | None,
        *,
        spec: ModelSpec,
        platform: str,
        computer: Computer | None,
        rejected: Collection[str] = (),
        computer_version: str | None = None,
        image_tier: ImageTier | None = None,
        bash_env: dict[str, str] | None = None,
    ) -> Toolbox:
        """The run's tools: ``given`` as is when it holds an executor; otherwise a
        ComputerTool (when there is a ``computer``), an EditorTool and a BashTool of the
        model's group on ``platform`` past the ``rejected`` types (the client's choice for
        ``computer_use=True``), then ``given``'s custom Tools. A ``computer`` that is an
        :class:`~deskpilot.agent.protocols.ExecutorSource` (a ``RemoteDesktop``) makes
        those three executors itself. Given executors whose types
        were already rejected are moved down the same way.

        Raises:
            ConfigError: see the class.
        """
        items = [_check_item(i) for i in given or ()]
        if any(not isinstance(i, Tool) for i in items):
            box = cls(items)
            if rejected:
                box.step_down(rejected)
            return box
        from ..computer_use.bash import BashTool
        from ..computer_use.computer import ComputerTool
        from ..computer_use.editor import EditorTool

        group = group_for(spec, platform, rejected)
        assert group.computer and group.editor and group.bash  # named groups have every kind
        if isinstance(computer, ExecutorSource):  # e.g. a RemoteDesktop: tools on its host
            supplied = list(
                computer.tool_executors(
                    computer=computer_version or group.computer,
                    editor=group.editor,
                    bash=group.bash,
                    image_tier=image_tier or spec.image_tier,
                )
            )
            return cls([*supplied, *items], owned=supplied)
        created: list[ToolExecutor] = []
        if computer is not None:
            created.append(
                ComputerTool(
                    computer,
                    version=computer_version or group.computer,
                    image_tier=image_tier or spec.image_tier,
                )
            )
        created.append(EditorTool(version=group.editor))
        created.append(BashTool(version=group.bash, env=bash_env))
        return cls([*created, *items], owned=created)

    # --- views ------------------------------------------------------------------------------
    @property
    def executors(self) -> list[ToolExecutor]:
        """The executors, in request order."""
        return [i for i in self.items if not isinstance(i, Tool)]

    @property
    def custom(self) -> list[Tool]:
        """The custom Tools, in request order."""
        return [i for i in self.items if isinstance(i, Tool)]

    def _of_kind(self, kind: str) -> ToolExecutor | None:
        return next((e for e in self.executors if tool_spec(e.version).kind == kind), None)

    @property
    def computer(self) -> ComputerExecutor | None:
        """The computer tool's executor, or None."""
        # checked against the protocol once, in __init__ (a runtime protocol check costs
        # ~0.2 ms, and this runs on every request)
        return cast("ComputerExecutor | None", self._of_kind("computer"))

    @property
    def group(self) -> ToolGroup:
        """The tool group the executors run (the versions sent)."""
        return ToolGroup.of_types(e.version for e in self.executors)

    def name_of(self, kind: str) -> str | None:
        """The name the model calls the ``kind`` tool by (``"bash"``,
        ``"str_replace_based_edit_tool"``, ...), or None without one."""
        found = self._of_kind(kind)
        return found.name if found is not None else None

    def definitions(self) -> list[dict[str, Any] | Tool]:
        """The request's ``tools=``: executor definitions and custom Tools, in order."""
        return [i if isinstance(i, Tool) else i.definition for i in self.items]

    def request_options(self) -> dict[str, Any]:
        """The client keywords these tools need: ``tools`` and, with a computer, the
        ``display_width``/``display_height`` of its screenshots (model-space pixels)."""
        options: dict[str, Any] = {"tools": self.definitions()}
        if self.computer is not None:
            options["display_width"], options["display_height"] = self.computer.model_size
        return options

    def names(self) -> list[str]:
        """The tool names the model may call."""
        return [i.name for i in self.items]

    def find(self, name: str, toolset_name: str | None = None) -> ToolExecutor | Tool | None:
        """The tool a call names (a toolset member goes to the computer executor)."""
        if toolset_name:
            return self.computer if toolset_name == "computer" else None
        return next((i for i in self.items if i.name == name), None)

    # --- step-down and lifecycle ------------------------------------------------------------
    def step_down(self, rejected: Collection[str]) -> tuple[ToolGroup, ToolGroup] | None:
        """Move the executors past the ``rejected`` types (the next group of
        :func:`~deskpilot.computer_use.specs.step_down`).

        Returns:
            (group before, group after), or None when nothing could change (no executor's
            type was rejected, or a rejected one has no older version).
        """
        before = self.group
        after = step_down(before, rejected)
        if after is None:
            return None
        for kind in KINDS:
            old, new = before.member(kind), after.member(kind)
            if old == new or new is None:
                continue
            i, executor = next(
                (i, e)
                for i, e in enumerate(self.items)
                if not isinstance(e, Tool) and e.version == old
            )
            moved = executor.with_version(new)
            self.items[i] = moved
            if executor in self.owned:
                self.owned[self.owned.index(executor)] = moved
        log.info("The API rejected %s; the agent's tools step down to %s.", sorted(rejected), after)
        return before, after

    async def aclose(self) -> None:
        """Close the executors the agent created (never the caller's)."""
        for executor in self.owned:
            with contextlib.suppress(Exception):
                await executor.aclose()


__all__ = ["Toolbox"]
