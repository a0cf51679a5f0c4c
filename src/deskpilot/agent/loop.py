"""The agent loop: Agent, AgentResult and run_many (model call -> tool calls -> results, recorded).

One :class:`Agent` run:

1. builds the first user turn (the task text, then an initial screenshot: instruction text
   before images);
2. calls the model through :class:`~deskpilot.client.core.LLMClient` (so providers, rate
   limits, retries and the 400 step-down apply) with the executors' definitions, the pruned
   conversation (:mod:`deskpilot.agent.context`) and cache breakpoints on system+tools and the
   three most recent user turns (never more than 4);
3. appends the assistant message, runs its tool calls **in order** (each after the approval
   callback, toolset members under the halt rule of the computer-use page, "Batch actions":
   after the first failure every later member answers exactly
   :data:`~deskpilot.computer_use.specs.TOOLSET_HALT_TEXT`) and appends ONE user turn with
   every tool_result;
4. records the step (``trajectory.jsonl`` + screenshot files, ``docs/trajectory-format.md``;
   the typed records of :mod:`deskpilot.agent.records`) and calls ``on_step``;
5. repeats until a response has no tool call, ``max_turns`` model calls, a token or dollar
   budget (checked after each response), :meth:`Agent.interrupt`, or an API error response.

Whatever stops it, the conversation stays valid: every ``tool_use`` of the last assistant turn
has a ``tool_result`` (``is_error`` with "Not executed: ..." for the ones that did not run),
unlike the reference loop's interrupt (anthropic_reference.md §3.6, its PRs #155/#174).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..computer_use.specs import TOOL_VERSIONS, TOOLSET_HALT_TEXT, ComputerSpec, versions
from ..errors import ConfigError
from ..prompt import Conversation, Image, Message, Text, ToolCall, ToolResult
from ..response import APIResponse, Usage
from .context import (
    DEFAULT_CACHE_MODES,
    count_images,
    prune_images,
    text_before_images,
    validate_policy,
)
from .desktop_recovery import DESKTOP_DEAD, DesktopRecovery
from .prompts import default_system_prompt
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
)
from .trajectory import TrajectoryWriter, new_run_dir, utc_now_iso

if TYPE_CHECKING:
    from ..client.core import LLMClient
    from ..desktop.base import Computer
    from ..models import ImageTier

log = logging.getLogger("deskpilot.agent")

DEFAULT_PRUNE_INTERVAL = 8
"""Images removed at once when pruning (see :mod:`deskpilot.agent.context`): with 3 kept, a
request carries 3 to 10 screenshots and the cached prefix changes once every ~8 turns. Chosen
by ``benchmarks/agent_bench.py --sweep``: over a 40-step run the cost-weighted input is lowest
for intervals 8-10 (0.68x the reference policy; 1 -> 1.31x, 25 -> 0.79x)."""

INTERRUPTED_TEXT = "Not executed: the run was interrupted by the user."
DECLINED_PREFIX = "The user declined this action: "

ApproveFn = Callable[[ToolCall], bool | Awaitable[bool]]
StepFn = Callable[[StepRecord], Any]


@dataclass(slots=True, kw_only=True, repr=False)
class AgentResult:
    """The outcome of :meth:`Agent.run`.

    Attributes:
        final_text: the text of the last model response that had text (None if none had).
        steps: model turns taken.
        usage: summed token usage over all turns; ``cost`` in US dollars.
        stop_reason: the last response's stop reason when the model ended the run
            (``"end_turn"``, ``"max_tokens"``, ...), else ``"max_turns"``, ``"budget_tokens"``,
            ``"budget_usd"``, ``"interrupted"``, ``"api_error"``, ``"error"`` or
            ``"desktop_dead"`` (the desktop died again after the agent restarted it once).
        trajectory_dir: the run directory, or None when recording was off (``out_dir=None``).
        conversation: the agent's conversation as last sent to the model (valid: every
            tool_use answered; with pruning on, older screenshots are the placeholder text
            so a long run holds at most ``keep_screenshots + prune_interval`` images in
            memory; every screenshot is in the trajectory directory). The caller's own
            objects are never modified.
        error: the API error message or exception text when ``stop_reason`` is
            ``"api_error"``/``"error"``.
        duration_s: wall-clock seconds of the run.
        step_records: the step records (:class:`~deskpilot.agent.records.StepRecord`) as
            written to ``trajectory.jsonl`` (``t`` set when recording was on);
            ``record.model_dump(mode="json")`` is the line's JSON object.
    """

    final_text: str | None
    steps: int
    usage: Usage
    cost: float
    stop_reason: str
    trajectory_dir: Path | None
    conversation: Conversation
    error: str | None = None
    duration_s: float = 0.0
    step_records: list[StepRecord] = field(default_factory=list)

    def __repr__(self) -> str:
        text = (self.final_text or "")[:60]
        return (
            f"AgentResult(stop_reason={self.stop_reason!r}, steps={self.steps}, "
            f"final_text={text!r}, cost={self.cost:.6f}, tokens={self.usage.total_tokens}, "
            f"trajectory_dir={str(self.trajectory_dir) if self.trajectory_dir else None!r}"
            + (f", error={self.error!r}" if self.error else "")
            + ")"
        )

    @property
    def ok(self) -> bool:
        """True when the model ended the run itself (no limit, interrupt or error)."""
        return self.stop_reason not in (
            "max_turns",
            "budget_tokens",
            "budget_usd",
            "interrupted",
            "api_error",
            "error",
            DESKTOP_DEAD,
        )


def _describe(call: ToolCall, limit: int = 200) -> str:
    args = json.dumps(call.arguments, ensure_ascii=False, default=repr)
    if len(args) > limit:
        args = args[: limit - 3] + "..."
    return f"{call.name} {args}"


def _is_executor(obj: Any) -> bool:
    return hasattr(obj, "execute") and hasattr(obj, "definition") and hasattr(obj, "name")


def _is_computer(obj: Any) -> bool:
    return _is_executor(obj) and hasattr(obj, "model_size")


def _tool_type(executor: Any) -> str | None:
    try:
        return executor.definition.get("type")
    except Exception:  # a definition property that fails is reported by the client later
        return None


def _screenshot_call(computer_tool: Any, call_id: str) -> ToolCall:
    """A screenshot call in the wire shape of the computer tool's version."""
    spec = TOOL_VERSIONS.get(_tool_type(computer_tool) or "")
    if isinstance(spec, ComputerSpec) and spec.toolset:
        return ToolCall(call_id, "screenshot", {}, toolset_name="computer")
    return ToolCall(call_id, "computer", {"action": "screenshot"})


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(slots=True)
class _RunState:
    """The mutable state of one run (shared by :meth:`Agent._run` and :meth:`Agent._step`)."""

    conv: Conversation
    tools: list[Any]
    computer_tool: Any = None
    writer: TrajectoryWriter | None = None
    system: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    step: int = 0
    final_text: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    records: list[StepRecord] = field(default_factory=list)

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
        client: an :class:`~deskpilot.LLMClient` (its limits and retries apply to every turn).
        computer: the desktop to drive (a :class:`~deskpilot.desktop.base.Computer`, e.g.
            ``LocalDesktop``), or None for bash/editor/custom tools only.
        model: the registry name to use (default: the client's first model).
        tools: None -> a ComputerTool (version from the model's generation on the client's
            platform, image tier from the model), an EditorTool and a BashTool (with
            ``computer.env`` when the desktop has one). A list may hold executors (anything
            with ``name``, ``definition`` and ``async execute(call)``) and custom
            :class:`~deskpilot.Tool` s; if it holds no executor, the three default executors
            are added first (the seed's rule: custom tools go after the computer-use tools).
            Executors passed in are not closed by the agent.
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

    Raises:
        ConfigError: invalid limits or pruning policy.
    """

    def __init__(
        self,
        client: LLMClient,
        computer: Computer | None = None,
        *,
        model: str | None = None,
        tools: Sequence[Any] | None = None,
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
        self._interrupt = threading.Event()
        self._wake: asyncio.Event | None = None  # set (in the run's loop) by interrupt()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._clock = time.perf_counter
        self._recovery: DesktopRecovery | None = None

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

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    # --- set-up -------------------------------------------------------------------------------
    def _model_spec(self) -> Any:
        fn = getattr(self.client, "model_spec", None)
        if fn is None:
            return None
        return fn(self.model) if self.model is not None else fn()

    def _platform(self, spec: Any) -> str:
        platform: str | None = getattr(self.client, "platform", None)
        if platform:
            return platform
        provider: str = getattr(spec, "provider", "anthropic")
        return provider

    def _build_tools(self, spec: Any, platform: str) -> tuple[list[Any], list[Any]]:
        """(tools in request order, executors we created and must close)."""
        given = list(self.tools or [])
        if any(_is_executor(t) for t in given):
            return given, []
        from ..computer_use.bash import BashTool
        from ..computer_use.editor import EditorTool

        if spec is None:
            raise ConfigError(
                "The client has no model_spec(); pass tools=[ComputerTool(...), EditorTool(...), "
                "BashTool(...)] explicitly."
            )
        gen = spec.tool_group(platform)
        assert gen.computer and gen.editor and gen.bash  # a named group has every kind
        created: list[Any] = []
        if self.computer is not None:
            from ..computer_use.computer import ComputerTool

            spec_tier: ImageTier = getattr(spec, "image_tier", "legacy")
            created.append(
                ComputerTool(
                    self.computer,
                    version=self.computer_version or gen.computer,
                    image_tier=self.image_tier or spec_tier,
                )
            )
        created.append(EditorTool(version=gen.editor))
        created.append(BashTool(version=gen.bash, env=getattr(self.computer, "env", None)))
        return [*created, *given], created

    @staticmethod
    def _first_conversation(task: str | Conversation) -> Conversation:
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
            ConfigError: a bad task, or the agent is already running.
            Exception: an unexpected failure inside the loop is recorded in the trajectory
                (``run_end`` with ``stop_reason="error"``) and re-raised.
        """
        if self._running:
            raise ConfigError(
                "This Agent is already running a task; create one Agent per concurrent run "
                "(run_many does)."
            )
        conv = self._first_conversation(task)
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
        spec = self._model_spec()
        platform = self._platform(spec)
        tools, owned = self._build_tools(spec, platform)
        st = _RunState(conv=conv, tools=tools)
        st.computer_tool = next((t for t in tools if _is_computer(t)), None)
        try:
            if self.out_dir is not None:
                st.writer = TrajectoryWriter(
                    new_run_dir(self.out_dir, task_text, self.run_name),
                    secrets=self.client.credential_values,  # asked again at every line
                )
            st.system = self.system_prompt or self._default_prompt(tools, st.computer_tool)
            initial_rel = None
            if self.initial_screenshot and st.computer_tool is not None:
                initial_rel = await self._add_initial_screenshot(conv, st.computer_tool, st.writer)
            if st.writer is not None:
                await st.writer.write_line(
                    self._run_start(
                        task_text, spec, platform, tools, st.computer_tool, st.system, initial_rel
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
            self._close_pending(st.conv, INTERRUPTED_TEXT)
            if st.writer is not None:  # no awaiting while cancelled: write synchronously
                with contextlib.suppress(Exception):
                    st.writer.write_line_sync(st.end_record())
            raise
        except Exception as exc:
            st.stop_reason, st.error = "error", f"{type(exc).__name__}: {exc}"
            log.exception("The agent loop failed at step %d", st.step)
            self._close_pending(st.conv, f"Not executed: the run failed ({st.error}).")
            if st.writer is not None:
                with contextlib.suppress(Exception):
                    await st.writer.write_line(st.end_record())
            raise
        finally:
            for ex in owned:
                with contextlib.suppress(Exception):
                    await ex.aclose()
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
        t_step = clock()
        # Pruning is monotonic (the oldest images go, in chunks, and never come back), so the
        # agent keeps only the pruned conversation: requests are identical to pruning the
        # full history every turn, and memory stays bounded to keep + interval images.
        st.conv = request = prune_images(st.conv, self.keep_screenshots, self.prune_interval)
        n_images = count_images(request)
        t_model = clock()
        response = await self._call_model(request, st)
        if response is None:  # interrupted while waiting for the model: drop this turn
            st.step -= 1
            return "interrupted"
        model_s = clock() - t_model
        st.usage = st.usage + response.usage
        st.cost += response.cost or 0.0
        if response.completion is not None:
            st.final_text = response.completion
        st.computer_tool = self._follow_step_down(response, st.tools, st.computer_tool)
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
                results = [self._synthetic(c, note) for c in calls]
                actions = [
                    action_record(c, r, approved=False) for c, r in zip(calls, results, strict=True)
                ]
                st.conv.messages.append(Message("user", results))
            else:
                results, actions, actions_s = await self._run_calls(
                    st.step, calls, st.tools, st.computer_tool, st.writer
                )
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
        return end

    def _desktop_recovery(self, st: _RunState) -> DesktopRecovery:
        """The run's dead-desktop watch (one per run: restart once, then stop)."""
        if self._recovery is None or self._recovery.tools is not st.tools:
            self._recovery = DesktopRecovery(self.computer, st.tools)
        return self._recovery

    async def _call_model(self, request: Conversation, st: _RunState) -> APIResponse | None:
        """``client.start`` raced against :meth:`interrupt`; None when interrupted first."""
        call = asyncio.ensure_future(
            self.client.start(
                request, **self._request_kwargs(st.tools, st.computer_tool, st.system)
            )
        )
        wake = asyncio.ensure_future(self._wake.wait()) if self._wake is not None else None
        try:
            await asyncio.wait(
                [f for f in (call, wake) if f is not None], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if wake is not None:
                wake.cancel()
            if not call.done():
                call.cancel()
        if call.cancelled() or not call.done():
            await asyncio.gather(call, return_exceptions=True)
            return None
        return call.result()

    # --- pieces of a step ---------------------------------------------------------------------
    def _request_kwargs(self, tools: list[Any], computer_tool: Any, system: str) -> dict[str, Any]:
        defs = [t.definition if _is_executor(t) else t for t in tools]
        kw: dict[str, Any] = {
            "tools": defs,
            "system": system,
            "max_tokens": self.max_tokens,
            "cache": self.cache,
        }
        if self.model is not None:
            kw["model"] = self.model
        if computer_tool is not None:
            w, h = computer_tool.model_size
            kw["display_width"], kw["display_height"] = int(w), int(h)
        if self.thinking is not None:
            kw["thinking"] = self.thinking
        return kw

    def _default_prompt(self, tools: list[Any], computer_tool: Any) -> str:
        names = {getattr(t, "name", None) for t in tools if _is_executor(t)}
        w, h = computer_tool.model_size if computer_tool is not None else (0, 0)
        editor = next(
            (n for n in names if n in ("str_replace_editor", "str_replace_based_edit_tool")), None
        )
        return default_system_prompt(
            int(w),
            int(h),
            apps=getattr(self.computer, "apps", ()) or (),
            bash_tool="bash" if "bash" in names else None,
            editor_tool=editor,
        )

    def _follow_step_down(self, response: APIResponse, tools: list[Any], computer_tool: Any) -> Any:
        """Switch the computer executor to the version the client actually sent after a 400
        step-down, so the model's calls are parsed with the matching action set."""
        new = response.computer_tool_type
        if not new or computer_tool is None or new == _tool_type(computer_tool):
            return computer_tool
        log.info("The client stepped the computer tool down to %s; following it.", new)
        if hasattr(computer_tool, "with_version"):
            replacement = computer_tool.with_version(new)
            if replacement is not None and replacement is not computer_tool:
                tools[tools.index(computer_tool)] = replacement
                return replacement
            return computer_tool
        computer_tool.version = new
        return computer_tool

    def _budget_hit(self, usage: Usage, cost: float) -> str | None:
        if self.budget_tokens is not None and usage.total_tokens >= self.budget_tokens:
            return "budget_tokens"
        if self.budget_usd is not None and cost >= self.budget_usd:
            return "budget_usd"
        return None

    @staticmethod
    def _synthetic(call: ToolCall, text: str) -> ToolResult:
        return ToolResult(call.id, text, is_error=True, toolset_name=call.toolset_name)

    def _dispatch(self, call: ToolCall, tools: list[Any], computer_tool: Any) -> Any:
        if call.toolset_name:
            if computer_tool is not None and call.toolset_name == "computer":
                return computer_tool
        for t in tools:
            if getattr(t, "name", None) == call.name:
                return t
        return None

    async def _ask(self, call: ToolCall) -> tuple[bool, str | None]:
        if self.approve is None:
            return True, None
        try:
            ok = bool(await _maybe_await(self.approve(call)))
        except Exception as exc:
            log.warning(
                "The approve callback raised %s: %s; treating it as a refusal.",
                type(exc).__name__,
                exc,
            )
            return False, f"the approval check failed ({type(exc).__name__}: {exc})"
        return ok, None

    async def _execute(self, call: ToolCall, tool: Any, *, quiet: bool = False) -> ToolResult:
        if tool is None:
            names = sorted(
                {str(getattr(t, "name", "")) for t in self.tools or []} | {"computer", "bash"}
            )
            return self._synthetic(
                call, f"Unknown tool {call.name!r}; the tools available are {', '.join(names)}."
            )
        if _is_executor(tool):
            run_quiet = getattr(tool, "execute_quiet", None) if quiet else None
            result = await (run_quiet(call) if run_quiet is not None else tool.execute(call))
        else:  # a custom Tool
            try:
                value = await tool.acall(**call.arguments)
            except Exception as exc:
                return self._synthetic(
                    call, f"Tool {call.name!r} failed: {type(exc).__name__}: {exc}"
                )
            result = self._as_result(call, value)
        if not isinstance(result.result, str):
            ordered = text_before_images(result.result)
            if ordered != result.result:
                result = ToolResult(
                    result.tool_call_id, ordered, result.is_error, result.toolset_name
                )
        if call.toolset_name and not result.toolset_name:
            result.toolset_name = call.toolset_name
        return result

    @staticmethod
    def _as_result(call: ToolCall, value: Any) -> ToolResult:
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

    async def _run_calls(
        self,
        step: int,
        calls: list[ToolCall],
        tools: list[Any],
        computer_tool: Any,
        writer: TrajectoryWriter | None,
    ) -> tuple[list[ToolResult], list[ActionRecord], float]:
        """Run one turn's calls in order; returns (results, action records, action seconds).

        Toolset members (``toolset_name`` set) form the turn's batch (computer-use page,
        "Batch actions"): members before the last one run without their own screenshot,
        the first failure (or refusal) halts the rest with TOOLSET_HALT_TEXT, and if the
        last successful member's result has no image one screenshot is attached to it.
        """
        clock = self._clock
        results: list[ToolResult] = []
        actions: list[ActionRecord] = []
        toolset_failed = False
        actions_s = 0.0
        last_member = max((i for i, c in enumerate(calls) if c.toolset_name), default=-1)
        for k, call in enumerate(calls):
            if self._interrupt.is_set():
                result = self._synthetic(call, INTERRUPTED_TEXT)
                results.append(result)
                actions.append(action_record(call, result, approved=False))
                continue
            if call.toolset_name and toolset_failed:
                result = self._synthetic(call, TOOLSET_HALT_TEXT)
                results.append(result)
                actions.append(action_record(call, result, approved=False))
                continue
            approved, why = await self._ask(call)
            timings = {"action_s": 0.0, "settle_s": 0.0, "screenshot_s": 0.0, "total_s": 0.0}
            if not approved:
                reason = f" ({why})" if why else ""
                result = self._synthetic(
                    call,
                    f"{DECLINED_PREFIX}{_describe(call)}{reason}. It was not executed; do not "
                    "retry it unchanged: continue another way, or say what you need.",
                )
            else:
                tool = self._dispatch(call, tools, computer_tool)
                quiet = bool(call.toolset_name) and k < last_member and tool is computer_tool
                t0 = clock()
                result = await self._execute(call, tool, quiet=quiet)
                total = clock() - t0
                actions_s += total
                timings = self._timings(tool, computer_tool, total)
            if call.toolset_name and result.is_error:
                toolset_failed = True
            results.append(result)
            actions.append(action_record(call, result, approved=approved, timings=timings))
        if last_member >= 0 and computer_tool is not None:
            actions_s += await self._finish_batch(calls, results, actions, computer_tool)
        if writer is not None:
            saves = [
                (
                    rec,
                    writer.save_screenshot(
                        writer.screenshot_name(step, k), r.images[0].data, r.images[0].media_type
                    ),
                )
                for k, (rec, r) in enumerate(zip(actions, results, strict=True))
                if r.images
            ]
            if saves:
                paths = await asyncio.gather(*(s for _, s in saves))
                for (rec, _), rel in zip(saves, paths, strict=True):
                    rec.screenshot = rel
        return results, actions, actions_s

    async def _finish_batch(
        self,
        calls: list[ToolCall],
        results: list[ToolResult],
        actions: list[ActionRecord],
        computer_tool: Any,
    ) -> float:
        """Attach a screenshot to the last successful toolset member if it has none."""
        ok = [
            i
            for i, (c, r) in enumerate(zip(calls, results, strict=True))
            if c.toolset_name and actions[i].executed and not r.is_error
        ]
        if not ok or results[ok[-1]].images:
            return 0.0
        i = ok[-1]
        t0 = self._clock()
        shot = await computer_tool.execute(_screenshot_call(computer_tool, f"{calls[i].id}_shot"))
        spent = self._clock() - t0
        if shot.is_error or not shot.images:
            log.warning("Could not attach the end-of-batch screenshot: %s", shot.text)
            return spent
        r = results[i]
        parts = (
            [Text(r.result)]
            if isinstance(r.result, str) and r.result
            else ([] if isinstance(r.result, str) else list(r.result))
        )
        results[i] = ToolResult(
            r.tool_call_id, text_before_images([*parts, *shot.images]), r.is_error, r.toolset_name
        )
        timings = actions[i].timings
        timings.screenshot_s = round(timings.screenshot_s + spent, 6)
        timings.total_s = round(timings.total_s + spent, 6)
        return spent

    @staticmethod
    def _timings(tool: Any, computer_tool: Any, total: float) -> dict[str, float]:
        out = {"action_s": total, "settle_s": 0.0, "screenshot_s": 0.0, "total_s": total}
        if tool is not None and tool is computer_tool:
            last = getattr(tool, "last_timings", None) or {}
            for key in ("action_s", "settle_s", "screenshot_s"):
                if isinstance(last.get(key), int | float):
                    out[key] = float(last[key])
        return {k: round(v, 6) for k, v in out.items()}

    async def _call_on_step(self, record: StepRecord) -> None:
        if self.on_step is None:
            return
        try:
            await _maybe_await(self.on_step(record))
        except Exception:
            log.exception("The on_step callback raised; the run continues.")

    @staticmethod
    def _close_pending(conv: Conversation, text: str) -> None:
        """Answer every unanswered tool_use of the last assistant turn (keeps ``conv`` valid)."""
        if not conv.messages or conv.messages[-1].role != "assistant":
            return
        calls = conv.messages[-1].tool_calls
        if calls:
            conv.messages.append(
                Message(
                    "user",
                    [
                        ToolResult(c.id, text, is_error=True, toolset_name=c.toolset_name)
                        for c in calls
                    ],
                )
            )

    async def _add_initial_screenshot(
        self, conv: Conversation, computer_tool: Any, writer: TrajectoryWriter | None
    ) -> str | None:
        result = await computer_tool.execute(_screenshot_call(computer_tool, "initial_screenshot"))
        if result.is_error or not result.images:
            log.warning("The initial screenshot failed: %s", result.text)
            return None
        img = result.images[0]
        last = conv.messages[-1]
        conv.messages[-1] = Message(last.role, text_before_images([*last.parts, img]))
        if writer is None:
            return None
        return await writer.save_screenshot("0000-initial", img.data, img.media_type)

    def _run_start(
        self,
        task: str,
        spec: Any,
        platform: str,
        tools: list[Any],
        computer_tool: Any,
        system: str,
        initial_screenshot: str | None,
    ) -> RunStart:
        from .. import __version__

        return run_start_record(
            task=task,
            model=getattr(spec, "name", None) or self.model,
            model_id=getattr(spec, "model_id", None),
            provider=platform,
            native_size=self.computer.size if self.computer is not None else None,
            model_size=computer_tool.model_size if computer_tool is not None else None,
            image_tier=getattr(computer_tool, "image_tier", None),
            tool_types=[_tool_type(t) or "" for t in tools if _is_executor(t)],
            custom_tools=[
                str(getattr(t, "name", None) or "?") for t in tools if not _is_executor(t)
            ],
            system_prompt=system,
            max_turns=self.max_turns,
            keep_screenshots=self.keep_screenshots,
            prune_interval=self.prune_interval,
            apps=getattr(self.computer, "apps", ()) or (),
            started_at=utc_now_iso(),
            deskpilot_version=__version__,
            initial_screenshot=initial_screenshot,
        )


__all__ = ["DEFAULT_PRUNE_INTERVAL", "INTERRUPTED_TEXT", "Agent", "AgentResult"]
