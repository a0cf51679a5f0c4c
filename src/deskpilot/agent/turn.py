"""Run one model turn's tool calls for the agent: approval, interruption, dispatch, results.

The order and the toolset halt rule are :func:`deskpilot.computer_use.batch.run_turn` (the one
implementation of the computer use page's "Batch actions"); this module supplies what runs
each call: a call is answered without running when the run was interrupted
(:data:`INTERRUPTED_TEXT`), the user took over (:data:`~deskpilot.agent.control.TAKEN_OVER_TEXT`:
each executed call holds the run's input lease, :class:`~deskpilot.agent.control.RunControl`)
or the approval callback refuses it (:data:`DECLINED_PREFIX`);
otherwise it goes to the executor or custom :class:`~deskpilot.Tool` it names. Every answer
is a :class:`~deskpilot.prompt.ToolResult` with its text before its images (instruction text
before screenshots: computer use tool page,
https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..computer_use.batch import CallOutcome, run_turn
from ..errors import ConfigError
from ..prompt import Conversation, Image, Message, Text, ToolCall, ToolResult
from ..tool import Tool
from .context import text_before_images
from .control import TAKEN_OVER_TEXT, Declined, RunControl
from .toolbox import Toolbox

if TYPE_CHECKING:
    from ..computer_use.base import ComputerExecutor
    from .trajectory import TrajectoryWriter

log = logging.getLogger("deskpilot.agent")

INTERRUPTED_TEXT = "Not executed: the run was interrupted by the user."
DECLINED_PREFIX = "The user declined this action: "

ApproveFn = Callable[[ToolCall], bool | Declined | Awaitable[bool | Declined]]
"""``approve(call)``: True runs the call; False or a :class:`Declined` (with the user's
reason) answers it :data:`DECLINED_PREFIX` without running it."""
T = TypeVar("T")


async def maybe_await(value: Any) -> Any:
    """``await value`` if it is awaitable, else ``value`` (sync or async callbacks)."""
    if inspect.isawaitable(value):
        return await value
    return value


def not_run(call: ToolCall, text: str) -> ToolResult:
    """An ``is_error`` result for a call that did not run (echoing its ``toolset_name``)."""
    return ToolResult(call.id, text, is_error=True, toolset_name=call.toolset_name)


def first_conversation(task: str | Conversation) -> Conversation:
    """The conversation a run starts from: a copy of ``task`` (its last turn must be the
    user's) or a new one with the task text as the user's turn.

    Raises:
        ConfigError: an empty task, or a conversation not ending with the user's turn.
    """
    if isinstance(task, Conversation):
        conv = task.copy()
        if not conv.messages or conv.messages[-1].role != "user":
            raise ConfigError(
                "Agent.run(conversation) needs a conversation whose last turn is the "
                "user's (the task)."
            )
        return conv
    if not isinstance(task, str) or not task.strip():
        raise ConfigError("Agent.run(task) needs a non-empty task string or a Conversation.")
    return Conversation().user(task)


async def unless_woken(work: Awaitable[T], wake: asyncio.Event | None) -> T | None:
    """``await work`` unless ``wake`` is set first; then ``work`` is cancelled (and awaited)
    and the answer is None (the agent's model call raced against an interrupt)."""
    call = asyncio.ensure_future(work)
    woken = asyncio.ensure_future(wake.wait()) if wake is not None else None
    try:
        await asyncio.wait(
            [f for f in (call, woken) if f is not None], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        if woken is not None:
            woken.cancel()
        if not call.done():
            call.cancel()
    if call.cancelled() or not call.done():
        await asyncio.gather(call, return_exceptions=True)
        return None
    return call.result()


def close_pending(conv: Conversation, text: str) -> None:
    """Answer every unanswered tool_use of ``conv``'s last assistant turn with an ``is_error``
    result ``text`` (keeps the conversation valid for the API when a run stops mid-turn)."""
    if not conv.messages or conv.messages[-1].role != "assistant":
        return
    calls = conv.messages[-1].tool_calls
    if calls:
        conv.messages.append(Message("user", [not_run(c, text) for c in calls]))


async def add_initial_screenshot(
    conv: Conversation, computer_tool: ComputerExecutor, writer: TrajectoryWriter | None
) -> str | None:
    """Put a screenshot after the task text of ``conv``'s last turn and save it as
    ``screenshots/0000-initial.png``; returns its relative path (None when not saved)."""
    result = await computer_tool.execute(computer_tool.screenshot_call("initial_screenshot"))
    if result.is_error or not result.images:
        log.warning("The initial screenshot failed: %s", result.text)
        return None
    img = result.images[0]
    last = conv.messages[-1]
    conv.messages[-1] = Message(last.role, text_before_images([*last.parts, img]))
    if writer is None:
        return None
    return await writer.save_screenshot("0000-initial", img.data, img.media_type)


def describe(call: ToolCall, limit: int = 200) -> str:
    """``name {json input}``, cut to ``limit`` characters (for messages and logs)."""
    args = json.dumps(call.arguments, ensure_ascii=False, default=repr)
    if len(args) > limit:
        args = args[: limit - 3] + "..."
    return f"{call.name} {args}"


def as_result(call: ToolCall, value: Any) -> ToolResult:
    """A custom Tool's return value as the call's ToolResult (JSON text for other values)."""
    if isinstance(value, ToolResult):
        return value
    if value is None or (isinstance(value, str | list) and not value):
        value = "(no output)"
    if isinstance(value, str | Text | Image) or (
        isinstance(value, list) and all(isinstance(v, str | Text | Image | dict) for v in value)
    ):
        return ToolResult(call.id, value, toolset_name=call.toolset_name)
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = str(value)
    return ToolResult(call.id, text, toolset_name=call.toolset_name)


class TurnRunner:
    """Runs the calls of one turn (see the module docstring).

    Args:
        tools: the run's :class:`~deskpilot.agent.toolbox.Toolbox`.
        approve: ``approve(call) -> bool`` (or awaitable), asked before each call; an
            exception counts as a refusal. None approves everything.
        interrupted: True once the user asked the run to stop.
        clock: seconds clock for the timings.
        control: the run's input lease (each executed call holds it), or None.
    """

    def __init__(
        self,
        tools: Toolbox,
        *,
        approve: ApproveFn | None,
        interrupted: Callable[[], bool],
        clock: Callable[[], float],
        control: RunControl | None = None,
    ) -> None:
        self.control = control
        self.tools = tools
        self.approve = approve
        self.interrupted = interrupted
        self.clock = clock

    async def run(self, calls: Sequence[ToolCall]) -> list[CallOutcome]:
        """One outcome per call, in order (never raises for a tool's failure)."""
        computer = self.tools.computer

        async def screenshot() -> list[Image]:
            if computer is None:
                return []
            shot = await computer.execute(computer.screenshot_call("end_of_batch_screenshot"))
            if shot.is_error:
                log.warning("Could not attach the end-of-batch screenshot: %s", shot.text)
            return shot.images

        def preempt(call: ToolCall) -> CallOutcome | None:
            if self.interrupted():
                text = INTERRUPTED_TEXT
            elif self.control is not None and self.control.turn_taken:
                text = TAKEN_OVER_TEXT
            else:
                return None
            return CallOutcome(not_run(call, text), executed=False, approved=False)

        return await run_turn(
            calls, self._run_one, screenshot=screenshot, preempt=preempt, clock=self.clock
        )

    async def _ask(self, call: ToolCall) -> tuple[bool, str | None]:
        if self.approve is None:
            return True, None
        try:
            answer = await maybe_await(self.approve(call))
        except Exception as exc:
            log.warning(
                "The approve callback raised %s: %s; treating it as a refusal.",
                type(exc).__name__,
                exc,
            )
            return False, f"the approval check failed ({type(exc).__name__}: {exc})"
        if isinstance(answer, Declined) and answer.reason.strip():
            return False, f"the user said: {json.dumps(answer.reason.strip(), ensure_ascii=False)}"
        return bool(answer), None

    async def _run_one(self, call: ToolCall, quiet: bool) -> CallOutcome:
        approved, why = await self._ask(call)
        if not approved:
            reason = f" ({why})" if why else ""
            text = (
                f"{DECLINED_PREFIX}{describe(call)}{reason}. It was not executed; do not "
                "retry it unchanged: continue another way, or say what you need."
            )
            return CallOutcome(not_run(call, text), executed=False, approved=False)
        control = self.control
        if control is not None and not control.begin_action():  # the user took over
            return CallOutcome(not_run(call, TAKEN_OVER_TEXT), executed=False, approved=True)
        tool = self.tools.find(call.name, call.toolset_name)
        t0 = self.clock()
        try:
            result = await self._execute(call, tool, quiet=quiet)
        finally:
            if control is not None:
                control.end_action()
        total = self.clock() - t0
        timings = {"action_s": total, "settle_s": 0.0, "screenshot_s": 0.0, "total_s": total}
        computer = self.tools.computer
        if tool is not None and tool is computer:
            for key in ("action_s", "settle_s", "screenshot_s"):
                value = computer.last_timings.get(key)
                if isinstance(value, int | float):
                    timings[key] = float(value)
        return CallOutcome(result, executed=True, approved=True, timings=timings)

    async def _execute(self, call: ToolCall, tool: Any, *, quiet: bool) -> ToolResult:
        computer = self.tools.computer
        if tool is None:
            names = sorted(set(self.tools.names()))
            return not_run(
                call, f"Unknown tool {call.name!r}; the tools available are {', '.join(names)}."
            )
        if isinstance(tool, Tool):
            try:
                value = await tool.acall(**call.arguments)
            except Exception as exc:
                return not_run(call, f"Tool {call.name!r} failed: {type(exc).__name__}: {exc}")
            result = as_result(call, value)
        elif quiet and computer is not None and tool is computer:
            result = await computer.execute_quiet(call)
        else:
            result = await tool.execute(call)
        if not isinstance(result.result, str):
            ordered = text_before_images(result.result)
            if ordered != result.result:
                result = ToolResult(
                    result.tool_call_id, ordered, result.is_error, result.toolset_name
                )
        if call.toolset_name and not result.toolset_name:
            result.toolset_name = call.toolset_name
        return result


__all__ = [
    "DECLINED_PREFIX",
    "INTERRUPTED_TEXT",
    "ApproveFn",
    "TurnRunner",
    "add_initial_screenshot",
    "as_result",
    "close_pending",
    "describe",
    "first_conversation",
    "maybe_await",
    "not_run",
    "unless_woken",
]
