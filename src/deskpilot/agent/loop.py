"""The agent loop: Agent and AgentResult (model call -> tool calls -> results, recorded).

One :class:`Agent` run:

1. builds the first user turn (the task text, then an initial screenshot: instruction text
   before images);
2. calls the model through the client (an :class:`~deskpilot.agent.protocols.AgentClient`
   such as :class:`~deskpilot.LLMClient`: providers, rate limits and retries apply) with the
   tools' definitions (:class:`~deskpilot.agent.toolbox.Toolbox`), the pruned
   conversation (:mod:`deskpilot.agent.context`) and cache breakpoints on system+tools and the
   three most recent user turns (never more than 4);
   When the API answers 400 naming tool types it does not support, the agent steps its
   executors down with the one step-down function (the client's for ``computer_use=True``),
   records it (a ``tool_step_down`` line) and sends the turn again;
3. appends the assistant message, runs its tool calls **in order**
   (:class:`~deskpilot.agent.turn.TurnRunner`: each after the approval callback, toolset
   members under the halt rule of :func:`deskpilot.computer_use.batch.run_turn`) and appends
   ONE user turn with every tool_result;
4. records the step (``trajectory.jsonl`` + screenshot files, ``docs/trajectory-format.md``;
   the typed records of :mod:`deskpilot.agent.records`) and calls ``on_step``;
5. repeats until a response has no tool call, ``max_turns`` model calls, a token or dollar
   budget (checked after each response), :meth:`Agent.interrupt`, or an API error response.
   A human takeover (``control=``, :mod:`deskpilot.agent.control`) pauses it between actions
   and adds a takeover turn after the hand-back.

Whatever stops it, the conversation stays valid: every ``tool_use`` of the last assistant turn
has a ``tool_result`` (``is_error`` with "Not executed: ..." for the ones that did not run),
unlike the interrupt of Anthropic's reference loop (github.com/anthropics/anthropic-quickstarts,
``computer-use-demo``, its PRs #155/#174).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..computer_use.base import ComputerExecutor, ToolExecutor
from ..computer_use.batch import CallOutcome
from ..computer_use.specs import versions
from ..errors import ConfigError
from ..prompt import Conversation, Message, Text, ToolCall, ToolResult
from ..response import APIResponse, Usage
from ..tool import Tool
from .context import (
    DEFAULT_CACHE_MODES,
    count_images,
    prune_images,
    validate_policy,
)
from .control import RunControl
from .desktop_recovery import DesktopRecovery
from .prompts import default_system_prompt
from .protocols import AgentClient, DesktopExtras
from .records import (
    ActionRecord,
    RunEnd,
    RunStart,
    StepRecord,
    action_record,
    response_record,
    run_end_record,
    run_start_record,
    step_record,
    tool_step_down_record,
)
from .result import AgentResult
from .toolbox import Toolbox
from .trajectory import TrajectoryWriter, new_run_dir, utc_now_iso
from .turn import (
    INTERRUPTED_TEXT,
    ApproveFn,
    TurnRunner,
    add_initial_screenshot,
    close_pending,
    first_conversation,
    maybe_await,
    not_run,
    unless_woken,
)

if TYPE_CHECKING:
    from ..desktop.base import Computer
    from ..models import ImageTier, ModelSpec

log = logging.getLogger("deskpilot.agent")

DEFAULT_PRUNE_INTERVAL = 8
"""Images removed at once when pruning (see :mod:`deskpilot.agent.context`): with 3 kept, a
request carries 3 to 10 screenshots and the cached prefix changes once every ~8 turns. Chosen
by ``benchmarks/agent_bench.py --sweep``: over a 40-step run the cost-weighted input is lowest
for intervals 8-10 (0.68x the reference policy; 1 -> 1.31x, 25 -> 0.79x)."""

StepFn = Callable[[StepRecord], Any]


@dataclass(slots=True)
class _RunState:
    """The mutable state of one run (shared by :meth:`Agent._run` and :meth:`Agent._step`)."""

    conv: Conversation
    tools: Toolbox
    writer: TrajectoryWriter | None = None
    system: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    step: int = 0
    final_text: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    records: list[StepRecord] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    """Tool types the API rejected during this run (every step-down skips them all)."""

    def end_record(self) -> RunEnd:
        """The ``run_end`` record (``docs/trajectory-format.md``)."""
        return run_end_record(
            stop_reason=self.stop_reason,
            final_text=self.final_text,
            steps=self.step,
            usage=self.usage,
            cost=self.cost,
            ended_at=utc_now_iso(),
            error=self.error,
        )


class Agent:
    """Runs a task on a computer with Claude until it stops calling tools.

    Args:
        client: an :class:`~deskpilot.LLMClient` or any
            :class:`~deskpilot.agent.protocols.AgentClient` (its limits and retries apply to
            every turn).
        computer: the desktop to drive (a :class:`~deskpilot.desktop.base.Computer`, e.g.
            ``LocalDesktop``), or None for bash/editor/custom tools only.
        model: the registry name to use (default: the client's first model).
        tools: None -> a ComputerTool, an EditorTool and a BashTool of the model's tool group
            on its platform (what ``computer_use=True`` sends; image tier from the model; the
            bash shell gets ``computer.env`` when the desktop has one). A list may hold
            executors (:class:`~deskpilot.computer_use.base.ToolExecutor`: ComputerTool,
            EditorTool, BashTool, one per tool) and custom :class:`~deskpilot.Tool` s; if it
            holds no executor, the three default executors are added first (the seed's rule:
            custom tools go after the computer-use tools). Executors passed in are not
            closed by the agent; after a step-down the agent uses copies of them.
        system_prompt: the system prompt (default: :func:`deskpilot.agent.prompts.default_system_prompt`
            describing the desktop at the model-space size).
        max_turns: most model calls per run (>= 1).
        max_tokens: ``max_tokens`` of each model call (output tokens).
        keep_screenshots: screenshots kept in each request (>= 1), or None to never prune.
        prune_interval: images removed at once when pruning (>= 1); a request carries at most
            ``keep_screenshots + prune_interval - 1`` images.
        approve: ``approve(call) -> bool`` (or awaitable) asked before each action; False
            answers the model with an is_error result "The user declined this action: ...".
            An exception in it counts as a refusal.
        on_step: ``on_step(record)`` (sync or async) after each step is recorded, with the
            step's :class:`~deskpilot.agent.records.StepRecord`.
        budget_tokens: stop once the run's total tokens (input incl. cache reads and writes,
            plus output) reach this.
        budget_usd: stop once the run's cost in US dollars reaches this.
        out_dir: where run directories are created; None disables recording.
        run_name: the run directory's name (default ``<UTC timestamp>-<task slug>``).
        image_tier: ``"legacy"`` or ``"2576"`` for the default ComputerTool (default: the
            model's tier).
        initial_screenshot: put a screenshot after the task text in the first user turn.
        cache: the client's ``cache=`` modes (default system+tools and the last 3 user
            turns: 4 breakpoints), or None for no caching.
        computer_version: force a computer tool type (e.g. ``"computer_20250124"``) for the
            default ComputerTool instead of the model's.
        thinking: passed through to the request body (e.g. ``{"type": "enabled",
            "budget_tokens": 2048}``).
        control: the input lease a human can take over and hand back
            (:class:`~deskpilot.agent.control.RunControl`, one per run), or None.

    Raises:
        ConfigError: invalid limits, pruning policy or tools.
    """

    def __init__(
        self,
        client: AgentClient,
        computer: Computer | None = None,
        *,
        model: str | None = None,
        tools: Sequence[ToolExecutor | Tool] | None = None,
        system_prompt: str | None = None,
        max_turns: int = 50,
        max_tokens: int = 4096,
        keep_screenshots: int | None = 3,
        prune_interval: int = DEFAULT_PRUNE_INTERVAL,
        approve: ApproveFn | None = None,
        on_step: StepFn | None = None,
        budget_tokens: int | None = None,
        budget_usd: float | None = None,
        out_dir: str | Path | None = "deskpilot-runs",
        run_name: str | None = None,
        image_tier: ImageTier | None = None,
        initial_screenshot: bool = True,
        cache: Sequence[str] | str | None = DEFAULT_CACHE_MODES,
        computer_version: str | None = None,
        thinking: dict[str, Any] | None = None,
        control: RunControl | None = None,
    ) -> None:
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ConfigError(f"max_turns must be an integer >= 1, not {max_turns!r}.")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"max_tokens must be an integer >= 1, not {max_tokens!r}.")
        validate_policy(keep_screenshots, prune_interval)
        if budget_tokens is not None and budget_tokens <= 0:
            raise ConfigError("budget_tokens must be a positive number of tokens or None.")
        if budget_usd is not None and budget_usd <= 0:
            raise ConfigError("budget_usd must be a positive amount of US dollars or None.")
        if computer_version is not None and computer_version not in versions("computer"):
            raise ConfigError(
                f"computer_version {computer_version!r} is unknown; use one of "
                f"{versions('computer')}."
            )
        self.client = client
        self.computer = computer
        self.model = model
        self.tools = list(tools) if tools is not None else None
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.keep_screenshots = keep_screenshots
        self.prune_interval = prune_interval
        self.approve = approve
        self.on_step = on_step
        self.budget_tokens = budget_tokens
        self.budget_usd = budget_usd
        self.out_dir = out_dir
        self.run_name = run_name
        self.image_tier = image_tier
        self.initial_screenshot = initial_screenshot
        self.cache = [cache] if isinstance(cache, str) else (list(cache) if cache else None)
        self.computer_version = computer_version
        self.thinking = thinking
        self.control = control
        self._interrupt = threading.Event()
        self._wake: asyncio.Event | None = None  # set (in the run's loop) by interrupt()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._recovery: DesktopRecovery | None = None
        self._clock = time.perf_counter

    # --- control ------------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Ask the running :meth:`run` to stop after the action in progress.

        Safe from any thread or task (a ``threading.Event``, and the run's event loop is
        woken with ``call_soon_threadsafe``). The action in progress finishes; the actions
        not yet run get is_error results "Not executed: the run was interrupted by the
        user." and the run ends with ``stop_reason="interrupted"``. A model call in flight
        is abandoned (cancelled; the conversation then ends with the last tool results and
        that turn is not counted). Cleared when a run starts.
        """
        self._interrupt.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
                loop.call_soon_threadsafe(wake.set)
                if self.control is not None:  # a takeover ends; its waiters wake
                    loop.call_soon_threadsafe(self.control.stop)

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    # --- set-up -------------------------------------------------------------------------------
    def _toolbox(self, spec: ModelSpec) -> Toolbox:
        """The run's tools (the client's remembered rejections already applied)."""
        extras = self.computer if isinstance(self.computer, DesktopExtras) else None
        return Toolbox.for_run(
            self.tools,
            spec=spec,
            platform=spec.provider,
            computer=self.computer,
            rejected=self.client.unsupported_tool_types(self.model),
            computer_version=self.computer_version,
            image_tier=self.image_tier,
            bash_env=dict(extras.env) if extras is not None else None,
        )

    # --- the loop -----------------------------------------------------------------------------
    async def run(self, task: str | Conversation) -> AgentResult:
        """Run ``task`` to the end (see the module docstring for the stop rules).

        Args:
            task: the instruction, or a Conversation ending with the user's turn (copied,
                never modified).

        Returns:
            An :class:`AgentResult`; API errors end the run with ``stop_reason="api_error"``
            instead of raising.

        Raises:
            ConfigError: a bad task, bad tools, or the agent is already running.
            Exception: an unexpected failure inside the loop is recorded in the trajectory
                (``run_end`` with ``stop_reason="error"``) and re-raised.
        """
        if self._running:
            raise ConfigError(
                "This Agent is already running a task; create one Agent per concurrent run "
                "(run_many does)."
            )
        conv = first_conversation(task)
        task_text = conv.messages[-1].completion or "" if isinstance(task, Conversation) else task
        self._running = True
        self._interrupt.clear()
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            return await self._run(task_text, conv)
        finally:
            self._running = False
            self._loop = self._wake = None

    async def _run(self, task_text: str, conv: Conversation) -> AgentResult:
        t_run = self._clock()
        spec = self.client.model_spec(self.model)
        platform = spec.provider
        st = _RunState(conv=conv, tools=self._toolbox(spec))
        try:
            if self.out_dir is not None:
                st.writer = TrajectoryWriter(
                    new_run_dir(self.out_dir, task_text, self.run_name),
                    secrets=self.client.credential_values,  # asked again at every line
                )
            st.system = self.system_prompt or self._default_prompt(st.tools)
            initial_rel = None
            computer_tool = st.tools.computer
            if self.initial_screenshot and computer_tool is not None:
                initial_rel = await add_initial_screenshot(conv, computer_tool, st.writer)
            if st.writer is not None:
                await st.writer.write_line(
                    self._run_start(
                        task_text, spec, platform, st.tools, computer_tool, st.system, initial_rel
                    )
                )
            while st.stop_reason is None:
                if self._interrupt.is_set():
                    st.stop_reason = "interrupted"
                elif st.step >= self.max_turns:
                    st.stop_reason = "max_turns"
                else:
                    st.stop_reason = await self._step(st)
        except asyncio.CancelledError:
            st.stop_reason, st.error = "interrupted", "The run was cancelled."
            close_pending(st.conv, INTERRUPTED_TEXT)
            if st.writer is not None:  # no awaiting while cancelled: write synchronously
                with contextlib.suppress(Exception):
                    st.writer.write_line_sync(st.end_record())
            raise
        except Exception as exc:
            st.stop_reason, st.error = "error", f"{type(exc).__name__}: {exc}"
            log.exception("The agent loop failed at step %d", st.step)
            close_pending(st.conv, f"Not executed: the run failed ({st.error}).")
            if st.writer is not None:
                with contextlib.suppress(Exception):
                    await st.writer.write_line(st.end_record())
            raise
        finally:
            await st.tools.aclose()
        if st.writer is not None:
            await st.writer.write_line(st.end_record())
        return AgentResult(
            final_text=st.final_text,
            steps=st.step,
            usage=st.usage,
            cost=st.cost,
            stop_reason=st.stop_reason,
            trajectory_dir=st.writer.run_dir if st.writer is not None else None,
            conversation=st.conv,
            error=st.error,
            duration_s=self._clock() - t_run,
            step_records=st.records,
        )

    async def _step(self, st: _RunState) -> str | None:
        """One model turn and its actions, recorded; returns a stop reason or None."""
        clock = self._clock
        st.step += 1
        if self.control is not None:
            self.control.step = st.step
        t_step = clock()
        # Pruning is monotonic (the oldest images go, in chunks, and never come back), so the
        # agent keeps only the pruned conversation: requests are identical to pruning the
        # full history every turn, and memory stays bounded to keep + interval images.
        st.conv = request = prune_images(st.conv, self.keep_screenshots, self.prune_interval)
        n_images = count_images(request)
        t_model = clock()
        response = await self._call_model(request, st)
        while response is not None and await self._stepped_down(response, st):
            response = await self._call_model(request, st)  # the same turn, older tools
        if response is None:  # interrupted while waiting for the model: drop this turn
            st.step -= 1
            return "interrupted"
        model_s = clock() - t_model
        st.usage = st.usage + response.usage
        st.cost += response.cost or 0.0
        if response.completion is not None:
            st.final_text = response.completion
        actions: list[ActionRecord] = []
        actions_s = 0.0
        end: str | None = None
        if response.is_error or response.content is None:
            end = "api_error"
            st.error = response.error_message or "The model API returned no content."
        else:
            # the API rejects empty text blocks when they are sent back
            parts = [p for p in response.content.parts if not (isinstance(p, Text) and not p.text)]
            calls = [p for p in parts if isinstance(p, ToolCall)]
            if parts:
                st.conv.messages.append(Message("assistant", parts))
            budget = self._budget_hit(st.usage, st.cost)
            if not calls:
                end = response.stop_reason or "end_turn"
            elif budget:
                end = budget
                kind = "token" if budget == "budget_tokens" else "dollar"
                note = f"Not executed: the run stopped because its {kind} budget was reached."
                results = [not_run(c, note) for c in calls]
                actions = [
                    action_record(c, r, approved=False) for c, r in zip(calls, results, strict=True)
                ]
                st.conv.messages.append(Message("user", results))
            else:
                results, actions, actions_s = await self._run_calls(st, calls)
                # A dead desktop is restarted once, then the run stops (desktop_recovery.py).
                results, dead, dead_error = await self._desktop_recovery(st).after_turn(
                    results, st.writer, step=st.step
                )
                if results and actions:
                    actions[-1].text = results[-1].text
                st.conv.messages.append(Message("user", results))
                if dead:
                    end, st.error = dead, dead_error
                elif self._interrupt.is_set():
                    end = "interrupted"
        record = step_record(
            index=st.step,
            response=response_record(response, n_images),
            actions=actions,
            model_s=model_s,
            actions_s=actions_s,
            step_s=clock() - t_step,
            usage=st.usage,
            cost=st.cost,
        )
        st.records.append(record)
        if st.writer is not None:
            await st.writer.write_line(record)
        await self._call_on_step(record)
        ctl = self.control  # after a takeover the model is asked again, even if it had ended
        if ctl is not None and await ctl.after_step(st.conv, st.tools.computer, st.writer):
            end = None if end == (response.stop_reason or "end_turn") else end
        return end

    def _desktop_recovery(self, st: _RunState) -> DesktopRecovery:
        """The run's dead-desktop watch (one per run: restart once, then stop)."""
        if self._recovery is None or self._recovery.tools is not st.tools.items:
            self._recovery = DesktopRecovery(self.computer, st.tools.items)
        return self._recovery

    async def _call_model(self, request: Conversation, st: _RunState) -> APIResponse | None:
        """``client.start`` raced against :meth:`interrupt`; None when interrupted first."""
        kw: dict[str, Any] = {"system": st.system, "max_tokens": self.max_tokens}
        kw.update(cache=self.cache, **st.tools.request_options())
        if self.model is not None:
            kw["model"] = self.model
        if self.thinking is not None:
            kw["thinking"] = self.thinking
        return await unless_woken(self.client.start(request, **kw), self._wake)

    async def _stepped_down(self, response: APIResponse, st: _RunState) -> bool:
        """After a 400 naming unsupported tool types: move the executors to the next group
        (:meth:`Toolbox.step_down`), record it, and say whether to send the turn again."""
        rejected = set(response.rejected_tool_types) if response.is_error else set()
        if not rejected:
            return False
        st.rejected |= rejected
        change = st.tools.step_down(st.rejected)
        if change is None:
            return False
        before, after = change
        if self.system_prompt is None:  # the editor's name may have changed
            st.system = self._default_prompt(st.tools)
        if st.writer is not None:
            await st.writer.write_line(
                tool_step_down_record(step=st.step, rejected=rejected, before=before, after=after)
            )
        return True

    # --- pieces of a step ---------------------------------------------------------------------
    def _apps(self) -> tuple[str, ...]:
        return tuple(self.computer.apps) if isinstance(self.computer, DesktopExtras) else ()

    def _default_prompt(self, tools: Toolbox) -> str:
        w, h = tools.computer.model_size if tools.computer is not None else (0, 0)
        return default_system_prompt(
            w,
            h,
            apps=self._apps(),
            bash_tool=tools.name_of("bash"),
            editor_tool=tools.name_of("editor"),
        )

    def _budget_hit(self, usage: Usage, cost: float) -> str | None:
        if self.budget_tokens is not None and usage.total_tokens >= self.budget_tokens:
            return "budget_tokens"
        if self.budget_usd is not None and cost >= self.budget_usd:
            return "budget_usd"
        return None

    async def _run_calls(
        self, st: _RunState, calls: list[ToolCall]
    ) -> tuple[list[ToolResult], list[ActionRecord], float]:
        """Run one turn's calls (:class:`~deskpilot.agent.turn.TurnRunner`); returns
        (results, action records, action seconds)."""
        runner = TurnRunner(
            st.tools,
            approve=self.approve,
            interrupted=self._interrupt.is_set,
            clock=self._clock,
            control=self.control,
        )
        outcomes = await runner.run(calls)
        results = [o.result for o in outcomes]
        actions = [self._outcome_record(c, o) for c, o in zip(calls, outcomes, strict=True)]
        actions_s = sum(o.timings.get("total_s", 0.0) for o in outcomes if o.executed)
        w = st.writer
        if w is not None:  # each result's screenshot, written with the step's line
            for k, r in enumerate(results):
                if r.images:
                    name = w.screenshot_name(st.step, k)
                    actions[k].screenshot = w.stage_screenshot(
                        name, r.images[0].data, r.images[0].media_type
                    )
        return results, actions, actions_s

    @staticmethod
    def _outcome_record(call: ToolCall, o: CallOutcome) -> ActionRecord:
        timings = o.timings if o.executed else None
        return action_record(call, o.result, approved=o.approved, timings=timings)

    async def _call_on_step(self, record: StepRecord) -> None:
        if self.on_step is None:
            return
        try:
            await maybe_await(self.on_step(record))
        except Exception:
            log.exception("The on_step callback raised; the run continues.")

    def _run_start(
        self,
        task: str,
        spec: ModelSpec,
        platform: str,
        tools: Toolbox,
        computer_tool: ComputerExecutor | None,
        system: str,
        initial_screenshot: str | None,
    ) -> RunStart:
        from .. import __version__

        return run_start_record(
            task=task,
            model=spec.name or self.model,
            model_id=spec.model_id,
            provider=platform,
            native_size=self.computer.size if self.computer is not None else None,
            model_size=computer_tool.model_size if computer_tool is not None else None,
            image_tier=computer_tool.image_tier if computer_tool is not None else None,
            tool_types=tools.group.types,
            custom_tools=[t.name for t in tools.custom],
            system_prompt=system,
            max_turns=self.max_turns,
            keep_screenshots=self.keep_screenshots,
            prune_interval=self.prune_interval,
            apps=self._apps(),
            started_at=utc_now_iso(),
            deskpilot_version=__version__,
            initial_screenshot=initial_screenshot,
        )


__all__ = ["DEFAULT_PRUNE_INTERVAL", "INTERRUPTED_TEXT", "Agent", "AgentResult"]
