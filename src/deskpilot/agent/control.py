"""Human takeover of a running agent: the exclusive input lease, the pause, the hand-back.

One :class:`RunControl` per run, passed as ``Agent(control=...)`` (``deskpilot ui`` makes one
for every run). It is an exclusive **input lease** between the agent and a human:

- the agent takes the lease around every action it executes (:meth:`RunControl.begin_action`
  / :meth:`RunControl.end_action`, called by :class:`~deskpilot.agent.turn.TurnRunner`);
- :meth:`RunControl.take_over` asks for it: from that moment no new agent action starts; it
  returns once the action in flight (if any) has finished, so no action is ever
  half-executed, and the human holds the lease until :meth:`RunControl.hand_back`;
- every call of the turn during which the takeover began that has not run is answered
  ``is_error`` :data:`TAKEN_OVER_TEXT` without running (the screen changed under the plan);
- after that step the agent waits for the hand-back (:meth:`RunControl.after_step`), takes
  a fresh screenshot and adds ONE user turn (text, then the screenshot) saying that the user
  took control, for how long, and what they wrote, and records a ``takeover`` line
  (:class:`~deskpilot.agent.records.Takeover`, ``docs/trajectory-format.md``). The
  conversation stays valid: every ``tool_use`` has its ``tool_result`` before that turn.

A response without tool calls does not end the run when a takeover happened during its step:
the model is asked again with the takeover turn. :meth:`RunControl.stop` (called by
:meth:`Agent.interrupt <deskpilot.Agent.interrupt>`) ends a takeover and wakes every waiter.

All methods run on the run's event loop (one loop, no threads); waiters are
:class:`asyncio.Event` s, never polling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..prompt import Conversation, Image, Message, Text
from .records import Takeover

if TYPE_CHECKING:
    from ..computer_use.base import ComputerExecutor
    from .trajectory import TrajectoryWriter

log = logging.getLogger("deskpilot.agent")

TAKEN_OVER_TEXT = "Not executed: the user took over."
"""The ``is_error`` result of a call that did not run because the user took over."""

MAX_MESSAGE_CHARS = 4000
"""The longest hand-back message passed to the model (characters; longer ones are cut)."""

__all__ = [
    "MAX_MESSAGE_CHARS",
    "TAKEN_OVER_TEXT",
    "Declined",
    "RunControl",
    "TakeoverPeriod",
    "takeover_text",
]


@dataclass(frozen=True, slots=True)
class Declined:
    """An approval callback's refusal with the user's reason (falsy, like ``False``).

    Return it from ``approve(call)`` instead of ``False`` to pass the reason on: the model
    receives "The user declined this action: ... (the user said: <reason>) ...".
    """

    reason: str = ""

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class TakeoverPeriod:
    """One takeover: ``started`` / ``ended`` on the control's clock (seconds), the hand-back
    message (may be empty) and the step during which it began (0: before the first)."""

    started: float
    ended: float
    message: str = ""
    step: int = 0

    @property
    def duration_s(self) -> float:
        """How long the human held the lease, in seconds."""
        return max(0.0, self.ended - self.started)


StateListener = Callable[[str], object]
"""``listener(state)`` with state ``"requested"``, ``"held"`` or ``"ended"``."""


def takeover_text(periods: list[TakeoverPeriod]) -> str:
    """The text of the user turn after a hand-back (before the fresh screenshot)."""
    total = sum(p.duration_s for p in periods)
    times = f"{len(periods)} times, " if len(periods) > 1 else ""
    said = [p.message.strip()[:MAX_MESSAGE_CHARS] for p in periods if p.message.strip()]
    text = (
        f"The user took control of the computer ({times}for {total:.1f} seconds) and has "
        "handed it back to you. Your actions answered "
        f'"{TAKEN_OVER_TEXT}" did not run, and the screen may have changed.'
    )
    if said:
        text += " The user wrote: " + " / ".join(json.dumps(s, ensure_ascii=False) for s in said)
    else:
        text += " The user wrote nothing."
    return text + " The screenshot below shows the screen now; continue the task from it."


@dataclass(slots=True)
class _State:
    human_since: float | None = None  # set from the request until the hand-back
    held: bool = False
    turn_taken: bool = False  # a takeover began during the current step
    stopped: bool = False
    done: list[TakeoverPeriod] = field(default_factory=list)


class RunControl:
    """The input lease of one run (see the module docstring).

    Args:
        clock: seconds clock for the takeover times (``time.perf_counter``).

    Attributes:
        listeners: called with ``"requested"``, ``"held"`` or ``"ended"`` on every change
            (exceptions are logged and ignored).
        step: the agent's current step (set by the agent; recorded with each takeover).
        periods: every takeover that has ended, in order.
    """

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._s = _State()
        self._idle = asyncio.Event()  # no agent action in flight
        self._idle.set()
        self._released = asyncio.Event()  # no human holds or wants the lease
        self._released.set()
        self.listeners: list[StateListener] = []
        self.periods: list[TakeoverPeriod] = []
        self.step = 0
        self._shots = 0

    # --- the human's side -----------------------------------------------------------------
    @property
    def requested(self) -> bool:
        """True from :meth:`take_over` until :meth:`hand_back` (the agent starts no action)."""
        return self._s.human_since is not None

    @property
    def held(self) -> bool:
        """True while the human holds the lease (no agent action is in flight)."""
        return self._s.held

    @property
    def stopped(self) -> bool:
        return self._s.stopped

    @property
    def agent_acting(self) -> bool:
        """True while an agent action is being executed."""
        return not self._idle.is_set()

    def held_for_s(self) -> float:
        """Seconds since the current takeover was asked for (0 when there is none)."""
        since = self._s.human_since
        return 0.0 if since is None else self._clock() - since

    async def take_over(self) -> float:
        """Take the lease: no new agent action starts; returns once the action in flight (if
        any) has finished. Idempotent while a takeover lasts.

        Returns:
            Seconds waited for the action in flight.

        Raises:
            ConfigError: the run was stopped.
        """
        if self._s.stopped:
            raise ConfigError("The run has stopped; there is nothing to take over.")
        t0 = self._clock()
        if self._s.human_since is None:
            self._s.human_since = t0
            self._s.turn_taken = True
            self._released.clear()
            self._notify("requested")
        await self._idle.wait()
        if self._s.human_since is not None and not self._s.held:
            self._s.held = True
            self._notify("held")
        return self._clock() - t0

    def hand_back(self, message: str = "") -> TakeoverPeriod:
        """End the takeover; the agent continues after its fresh screenshot.

        Args:
            message: what the user wants the model to know (may be empty; cut to
                :data:`MAX_MESSAGE_CHARS`).

        Raises:
            ConfigError: there is no takeover to end.
        """
        since = self._s.human_since
        if since is None:
            raise ConfigError("There is no takeover to hand back; take over first.")
        period = TakeoverPeriod(
            since, self._clock(), (message or "")[:MAX_MESSAGE_CHARS], step=self.step
        )
        self._s.done.append(period)
        self.periods.append(period)
        self._s.human_since, self._s.held = None, False
        self._released.set()
        self._notify("ended")
        return period

    def stop(self) -> None:
        """The run is stopping: end a takeover (recorded as handed back) and wake waiters."""
        if self._s.human_since is not None:
            self.hand_back("")
        self._s.stopped = True
        self._released.set()

    # --- the agent's side -----------------------------------------------------------------
    @property
    def turn_taken(self) -> bool:
        """True when a takeover began during the current step (its calls do not run)."""
        return self._s.turn_taken

    def begin_action(self) -> bool:
        """Take the lease for one agent action; False (nothing to run) when a takeover began
        during this step. Pair a True with :meth:`end_action`."""
        if self._s.turn_taken or self._s.human_since is not None:
            return False
        self._idle.clear()
        return True

    def end_action(self) -> None:
        """The agent's action has finished (a waiting :meth:`take_over` returns)."""
        self._idle.set()

    async def wait_released(self) -> None:
        """Return once no human holds or wants the lease (or the run stopped)."""
        await self._released.wait()

    async def after_step(
        self,
        conv: Conversation,
        computer: ComputerExecutor | None,
        writer: TrajectoryWriter | None,
    ) -> bool:
        """End of a step: when a takeover began during it, wait for the hand-back, add the
        takeover turn (text + fresh screenshot) to ``conv`` and record each takeover.

        Returns:
            True when a takeover turn was added (the run goes on even if the model had
            stopped calling tools).
        """
        if not self._s.turn_taken:
            return False
        await self._released.wait()
        periods, self._s.done = self._s.done, []
        self._s.turn_taken = False
        if not periods:
            return False
        image, rel = await self._fresh_screenshot(computer, writer)
        parts: list[Text | Image] = [Text(takeover_text(periods))]
        if image is not None:
            parts.append(image)
        last = conv.messages[-1] if conv.messages else None
        if last is not None and last.role == "user":  # after the tool results: one user turn
            conv.messages[-1] = Message("user", [*last.parts, *parts])
        else:
            conv.messages.append(Message("user", parts))
        if writer is not None:
            now = self._clock()
            for p in periods:
                await writer.write_line(
                    Takeover(
                        step=p.step,
                        start=round(max(0.0, writer.elapsed() - (now - p.started)), 6),
                        end=round(max(0.0, writer.elapsed() - (now - p.ended)), 6),
                        duration_s=round(p.duration_s, 6),
                        message=p.message,
                        screenshot=rel,
                    )
                )
        return True

    async def _fresh_screenshot(
        self, computer: ComputerExecutor | None, writer: TrajectoryWriter | None
    ) -> tuple[Image | None, str | None]:
        if computer is None:
            return None, None
        shot = await computer.execute(computer.screenshot_call("takeover_screenshot"))
        if shot.is_error or not shot.images:
            log.warning("The screenshot after the takeover failed: %s", shot.text)
            return None, None
        img = shot.images[0]
        rel = None
        if writer is not None:
            self._shots += 1
            name = f"{self.step:04d}-takeover-{self._shots}"
            rel = await writer.save_screenshot(name, img.data, img.media_type)
        return img, rel

    def _notify(self, state: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(state)
            except Exception:
                log.exception("A takeover listener raised; ignored.")
