"""One turn's tool calls, run in order under the toolset's halt rule (the one implementation).

The computer use tool page, "Batch actions"
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool): the
``computer_toolset_20260801`` may send several member ``tool_use`` blocks in one response.
They run **in order**; the first failure answers ``is_error`` with its description and every
later member answers ``is_error`` with exactly :data:`~.specs.TOOLSET_HALT_TEXT`; when the
batch does not end with a screenshot, one may be attached to the last result.

:func:`run_turn` is that rule, once. :meth:`ComputerTool.execute_batch
<deskpilot.computer_use.computer.ComputerTool.execute_batch>` and the agent (which adds
approval, interruption and records through its ``run`` callable) both call it. Calls that are
not toolset members (bash, editor, custom tools, beta computer calls) run in their place in
the order and never halt anything.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ..prompt import Image, Text, ToolCall, ToolResult
from .specs import TOOLSET_HALT_TEXT


def _zero_timings() -> dict[str, float]:
    return {"action_s": 0.0, "settle_s": 0.0, "screenshot_s": 0.0, "total_s": 0.0}


@dataclass(slots=True)
class CallOutcome:
    """What became of one call of the turn.

    Attributes:
        result: the tool result to send back (echoing the call's ``toolset_name``).
        executed: True when an executor ran it (False: halted, declined, interrupted, ...).
        approved: False when the caller's approval refused it.
        timings: seconds spent (``action_s``, ``settle_s``, ``screenshot_s``, ``total_s``).
    """

    result: ToolResult
    executed: bool = True
    approved: bool = True
    timings: dict[str, float] = field(default_factory=_zero_timings)


RunCall = Callable[[ToolCall, bool], Awaitable[CallOutcome]]
"""``run(call, quiet)``: run one call; ``quiet`` asks the computer tool for no screenshot of
its own (a toolset member that is not the turn's last member)."""

TakeScreenshot = Callable[[], Awaitable[list[Image]]]
"""Capture the screen for the end of a batch (model-space images; empty on failure)."""


def halted(call: ToolCall) -> CallOutcome:
    """The outcome of a member after the batch's first failure (exact text of the docs)."""
    return CallOutcome(
        ToolResult(call.id, TOOLSET_HALT_TEXT, is_error=True, toolset_name=call.toolset_name),
        executed=False,
        approved=False,
    )


async def run_turn(
    calls: Sequence[ToolCall],
    run: RunCall,
    *,
    screenshot: TakeScreenshot | None = None,
    preempt: Callable[[ToolCall], CallOutcome | None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[CallOutcome]:
    """Run one turn's calls in order under the halt rule; one outcome per call, in order.

    Args:
        calls: the response's tool calls, in the order the model sent them.
        run: runs one call (see :data:`RunCall`); it must not raise (executors answer
            failures with ``is_error`` results).
        screenshot: captures the screen for the end of the batch; None attaches nothing.
        preempt: asked first for every call; an outcome it returns is used as is, without
            running the call or applying the halt rule (e.g. the agent's "interrupted").
        clock: seconds clock for the end-of-batch screenshot's timing.

    Returns:
        The outcomes. A toolset member after the first failing member (any ``is_error``
        result, including a refusal) is :func:`halted` without running. If the last member
        that ran successfully has no image, ``screenshot()`` is attached to its result and
        its seconds added to that outcome's ``screenshot_s`` and ``total_s``.
    """
    last_member = max((i for i, c in enumerate(calls) if c.toolset_name), default=-1)
    outcomes: list[CallOutcome] = []
    failed = False
    for k, call in enumerate(calls):
        member = bool(call.toolset_name)
        early = preempt(call) if preempt is not None else None
        if early is not None:
            outcomes.append(early)
            continue
        if member and failed:
            outcomes.append(halted(call))
            continue
        outcome = await run(call, member and k < last_member)
        outcomes.append(outcome)
        if member and outcome.result.is_error:
            failed = True
    if screenshot is not None and last_member >= 0:
        await _attach_screenshot(calls, outcomes, screenshot, clock)
    return outcomes


async def _attach_screenshot(
    calls: Sequence[ToolCall],
    outcomes: list[CallOutcome],
    screenshot: TakeScreenshot,
    clock: Callable[[], float],
) -> None:
    ok = [
        i
        for i, (c, o) in enumerate(zip(calls, outcomes, strict=True))
        if c.toolset_name and o.executed and not o.result.is_error
    ]
    if not ok or outcomes[ok[-1]].result.images:
        return
    target = outcomes[ok[-1]]
    t0 = clock()
    images = await screenshot()
    spent = clock() - t0
    target.timings["screenshot_s"] = target.timings.get("screenshot_s", 0.0) + spent
    target.timings["total_s"] = target.timings.get("total_s", 0.0) + spent
    if not images:
        return
    r = target.result
    parts: list[Text | Image | dict[str, object]]
    if isinstance(r.result, str):
        parts = [Text(r.result)] if r.result else []
    else:
        parts = list(r.result)
    target.result = ToolResult(r.tool_call_id, [*parts, *images], r.is_error, r.toolset_name)


__all__ = ["CallOutcome", "RunCall", "TakeScreenshot", "halted", "run_turn"]
