"""The UI's run manager: one agent on one fresh desktop per run, at most N at once.

:class:`RunManager` starts each run (:meth:`RunManager.create`) as an asyncio task that waits
for one of ``desktops`` slots, starts a :class:`~deskpilot.LocalDesktop`, runs an
:class:`~deskpilot.Agent` with the run's :class:`~deskpilot.agent.control.RunControl` (takeover),
an approval callback that waits for the page's decision, and an ``on_step`` that publishes
each step record, then writes the report and closes the desktop. A run never depends on a
browser being connected: its events are kept (:class:`~deskpilot.ui.events.EventLog`) and
replayed to whoever connects. :meth:`RunManager.shutdown` stops every run validly (the
agent's interrupt: pending calls answered, ``run_end`` written), writes the reports and
closes every desktop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..agent.control import Declined, RunControl
from ..agent.records import StepRecord, TokenUsage
from ..agent.trajectory import slugify, utc_now_iso
from ..errors import ConfigError
from .events import EventLog
from .schema import ApprovalRequest, RunStatus, RunSummary, TakeoverState

if TYPE_CHECKING:
    from ..agent.loop import Agent
    from ..agent.protocols import AgentClient
    from ..agent.result import AgentResult
    from ..desktop.local import LocalDesktop
    from ..prompt import ToolCall

log = logging.getLogger("deskpilot.ui")

__all__ = ["ClientFactory", "RunManager", "StatusListener", "ToolsFactory", "UIConfig", "UIRun"]

ClientFactory = Callable[[str], AbstractAsyncContextManager["AgentClient"]]
"""``factory(model)`` -> an async context manager yielding the run's model client (an
:class:`~deskpilot.LLMClient` is one: closed when the run ends)."""
ToolsFactory = Callable[["LocalDesktop"], list[Any] | None]
"""``factory(desktop)`` -> the run's tools (None: the model's defaults); ``--replay`` confines
bash and the editor with it."""

StatusListener = Callable[["UIRun", str], object]
"""``listener(run, status)`` after every status change: ``starting`` (``run.desktop`` set
once its desktop is up: ``running``), ``stopping``, ``done``/``failed`` (desktop gone)."""

STOP_GRACE_S = 30.0
"""Seconds :meth:`RunManager.shutdown` waits for runs to stop after the action in flight
before cancelling them (the trajectory still ends with ``run_end``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UIConfig:
    """The server's settings (``deskpilot ui`` options).

    Attributes:
        model: default model of new runs (registry name).
        provider: force a provider, or None for the model's own.
        width / height: desktop size in native pixels.
        desktops: runs that may run at once (each on its own desktop), >= 1.
        out: where run directories are created.
        approve: default of new runs' "ask before each action".
        max_turns: model turns per run.
        apps: apps opened on each desktop at start.
        mode: ``"live"`` (a real API), ``"fake"`` or ``"replay"`` (scripted turns, no key).
    """

    model: str = "claude-sonnet-4-5"
    provider: str | None = None
    width: int = 1280
    height: int = 800
    desktops: int = 1
    out: Path = Path("deskpilot-runs")
    approve: bool = False
    max_turns: int = 50
    apps: tuple[str, ...] = ("terminal",)
    mode: Literal["live", "fake", "replay"] = "live"

    def __post_init__(self) -> None:
        if not isinstance(self.desktops, int) or self.desktops < 1:
            raise ConfigError(f"desktops must be an integer >= 1, not {self.desktops!r}.")
        if self.mode not in ("live", "fake", "replay"):
            raise ConfigError(f"mode must be 'live', 'fake' or 'replay', not {self.mode!r}.")


class UIRun:
    """One run of the UI: its settings, state, control, events, desktop and agent.

    Attributes:
        id: short random id (URL-safe).
        control: the takeover lease (:class:`~deskpilot.agent.control.RunControl`).
        events: the run's events (:class:`~deskpilot.ui.events.EventLog`).
        desktop: the run's desktop while it runs (for the live view), else None.
        agent: the agent while it runs.
        run_dir: the run directory (named at creation; written once the agent starts).
    """

    def __init__(
        self,
        *,
        task: str,
        model: str,
        approve: bool,
        out: Path,
        status_listeners: list[StatusListener] | None = None,
    ) -> None:
        self.id = secrets.token_hex(6)
        self.task = task
        self.model = model
        self.approve = approve
        self.status: RunStatus = "queued"
        self.created_at = utc_now_iso()
        self.control = RunControl()
        self.events = EventLog()
        self.desktop: LocalDesktop | None = None
        self.agent: Agent | None = None
        self.result: AgentResult | None = None
        self.error: str | None = None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.run_dir: Path = out / f"{stamp}-{slugify(task, 30)}-{self.id}"
        self.report: Path | None = None
        self.steps = 0
        self.usage = TokenUsage()
        self.cost = 0.0
        self.model_size: tuple[int, int] | None = None
        self.stop_requested = asyncio.Event()
        self._approvals: dict[str, tuple[ApprovalRequest, asyncio.Future[bool | Declined]]] = {}
        self._t0 = time.perf_counter()
        self._t_end: float | None = None
        self.control.listeners.append(self._on_takeover)
        self.status_listeners = status_listeners if status_listeners is not None else []

    # --- what the API shows -----------------------------------------------------------------
    def summary(self) -> RunSummary:
        """The run as ``GET /api/runs/{id}`` answers it."""
        ctl = self.control
        state: Literal["none", "requested", "held"] = (
            "held" if ctl.held else "requested" if ctl.requested else "none"
        )
        base = f"/api/runs/{self.id}"
        end = self.result
        return RunSummary(
            id=self.id,
            task=self.task,
            model=self.model,
            approve=self.approve,
            status=self.status,
            created_at=self.created_at,
            elapsed_s=round((self._t_end or time.perf_counter()) - self._t0, 3),
            steps=self.steps,
            usage=self.usage,
            cost=round(self.cost, 8),
            stop_reason=end.stop_reason if end is not None else None,
            final_text=end.final_text if end is not None else None,
            error=self.error,
            display=self.desktop.display if self.desktop is not None else None,
            takeover=TakeoverState(state=state, for_s=round(ctl.held_for_s(), 3)),
            pending_approvals=[req for req, _ in self._approvals.values()],
            events_url=f"{base}/events",
            screenshot_url=f"{base}/screenshot",
            report_url=f"/runs/{self.id}/report.html" if self.report is not None else None,
            run_dir=str(self.run_dir),
        )

    def publish(self, type: str, **data: Any) -> None:
        """Publish an event of this run (``data`` gets ``"run": id``)."""
        self.events.publish(type, {"run": self.id, **data})

    def set_status(self, status: RunStatus) -> None:
        """Change the status: a ``status`` event, then every status listener."""
        self.status = status
        self.publish("status", status=status, display=self.summary().display)
        for listener in list(self.status_listeners):
            try:
                listener(self, status)
            except Exception:
                log.exception("A run status listener raised; ignored.")

    # --- callbacks of the agent -----------------------------------------------------------
    async def approve_call(self, call: ToolCall) -> bool | Declined:
        """The agent's ``approve``: publish an ``approval`` event and wait for the decision
        (:meth:`decide`); a stop declines it."""
        if self.stop_requested.is_set():
            return Declined("the run is stopping")
        req = ApprovalRequest(
            call_id=call.id,
            step=self.steps + 1,
            name=call.name,
            input=dict(call.arguments),
            model_size=self.model_size,
            native_size=self.desktop.size if self.desktop is not None else None,
        )
        future: asyncio.Future[bool | Declined] = asyncio.get_running_loop().create_future()
        self._approvals[call.id] = (req, future)
        self.publish("approval", **req.model_dump(mode="json"))
        try:
            return await future
        finally:
            self._approvals.pop(call.id, None)

    def decide(self, call_id: str, approve: bool, reason: str | None = None) -> None:
        """The page's decision on a pending action.

        Raises:
            KeyError: no action with that id is waiting.
        """
        _, future = self._approvals[call_id]
        if not future.done():
            future.set_result(True if approve else Declined(reason or ""))
        self.publish("approval_done", call_id=call_id, approve=approve, reason=reason or "")

    async def on_step(self, record: StepRecord) -> None:
        """The agent's ``on_step``: totals, then a ``step`` event with the record."""
        self.steps = record.index
        self.usage = record.cumulative.usage
        self.cost = record.cumulative.cost
        self.publish("step", record=record.model_dump(mode="json"))

    def _on_takeover(self, state: str) -> None:
        extra: dict[str, Any] = {}
        if state == "ended" and self.control.periods:
            last = self.control.periods[-1]
            extra = {"duration_s": round(last.duration_s, 3), "message": last.message}
        self.publish("takeover", state=state, step=self.control.step, **extra)

    # --- stopping ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop after the action in flight (pending approvals are declined, a takeover
        ends, the agent is interrupted); the run then ends validly and writes its report."""
        if self.status in ("done", "failed"):
            return
        self.stop_requested.set()
        for _, future in list(self._approvals.values()):
            if not future.done():
                future.set_result(Declined("the run is stopping"))
        if self.agent is not None:
            self.agent.interrupt()
        self.control.stop()
        if self.status != "queued":
            self.set_status("stopping")

    def finish(self, status: RunStatus) -> None:
        """The run is over: last status, the ``end`` event, the log closed."""
        self._t_end = time.perf_counter()
        self.desktop = self.agent = None
        self.set_status(status)
        summary = self.summary().model_dump(mode="json")
        self.publish("end", summary=summary)
        self.events.close()


class RunManager:
    """Creates, tracks and stops the UI's runs (see the module docstring).

    Args:
        config: the server's settings.
        client_factory: the model client of each run (:data:`ClientFactory`).
        tools_factory: the tools of each run (:data:`ToolsFactory`), or None for the defaults.
        desktop_factory: makes each run's (unstarted) desktop; default
            ``LocalDesktop(width=..., height=..., apps=...)``.
        write_report: writes a run directory's report, returns its path (runs in a worker
            thread); default :func:`deskpilot.agent.report.write_report` (the HTML page;
            ``deskpilot report RUN_DIR`` adds the animation).
    """

    def __init__(
        self,
        config: UIConfig,
        client_factory: ClientFactory,
        *,
        tools_factory: ToolsFactory | None = None,
        desktop_factory: Callable[[], LocalDesktop] | None = None,
        write_report: Callable[[Path], Path] | None = None,
    ) -> None:
        self.config = config
        self.runs: dict[str, UIRun] = {}
        self.status_listeners: list[StatusListener] = []
        """Called for every run's status changes (:data:`StatusListener`; the live view)."""
        self._client_factory = client_factory
        self._tools_factory = tools_factory
        self._desktop_factory = desktop_factory or self._local_desktop
        self._write_report = write_report or _write_report
        self._slots = asyncio.Semaphore(config.desktops)
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def _local_desktop(self) -> LocalDesktop:
        from ..desktop.local import LocalDesktop

        c = self.config
        return LocalDesktop(width=c.width, height=c.height, apps=c.apps)

    def get(self, run_id: str) -> UIRun:
        """The run with that id.

        Raises:
            KeyError: no such run.
        """
        return self.runs[run_id]

    def create(self, task: str, *, model: str | None = None, approve: bool | None = None) -> UIRun:
        """Start a run (queued until a desktop slot is free); returns it at once.

        Raises:
            ConfigError: an empty task, an unknown model, or the server is shutting down.
        """
        if self.closed:
            raise ConfigError("The server is shutting down; no new run can start.")
        if not task.strip():
            raise ConfigError("The task is empty; say what Claude should do.")
        from ..models import resolve_model

        name = model or self.config.model
        resolve_model(name, self.config.provider)  # ModelNotFoundError (a ConfigError)
        run = UIRun(
            task=task,
            model=name,
            approve=self.config.approve if approve is None else approve,
            out=self.config.out,
            status_listeners=self.status_listeners,
        )
        self.runs[run.id] = run
        run.publish("status", status=run.status, display=None)
        task_ = asyncio.create_task(self._drive(run), name=f"deskpilot-ui-run-{run.id}")
        self._tasks.add(task_)
        task_.add_done_callback(self._tasks.discard)
        return run

    async def _wait_slot(self, run: UIRun) -> bool:
        """Wait for a desktop slot; False (no slot taken) when the run was stopped first."""
        acquire = asyncio.ensure_future(self._slots.acquire())
        stopped = asyncio.ensure_future(run.stop_requested.wait())
        try:
            await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not acquire.done():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
        got = acquire.done() and not acquire.cancelled()
        if got and run.stop_requested.is_set():
            self._slots.release()
            return False
        return got

    async def _drive(self, run: UIRun) -> None:
        if not await self._wait_slot(run):
            run.finish("done")
            return
        status: RunStatus = "failed"
        try:
            await self._run_agent(run)
            status = "done"
        except asyncio.CancelledError:
            run.error = run.error or "The run was cancelled (the server is shutting down)."
            raise
        except Exception as exc:
            log.exception("Run %s failed", run.id)
            run.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._slots.release()
            if (run.run_dir / "trajectory.jsonl").is_file():
                try:
                    run.report = await asyncio.to_thread(self._write_report, run.run_dir)
                except Exception as exc:  # the run stays; only its page is missing
                    log.warning("The report of run %s could not be written: %s", run.id, exc)
            run.finish(status)

    async def _run_agent(self, run: UIRun) -> None:
        from ..agent.loop import Agent

        run.set_status("starting")
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(self._client_factory(run.model))
            desktop = await stack.enter_async_context(self._desktop_factory())
            run.desktop = desktop
            tools = self._tools_factory(desktop) if self._tools_factory is not None else None
            for tool in tools or ():
                if hasattr(tool, "aclose"):
                    stack.push_async_callback(tool.aclose)
            agent = Agent(
                client,
                computer=desktop,
                model=run.model,
                tools=tools,
                max_turns=self.config.max_turns,
                approve=run.approve_call if run.approve else None,
                on_step=run.on_step,
                out_dir=run.run_dir.parent,
                run_name=run.run_dir.name,
                control=run.control,
            )
            run.agent = agent
            with contextlib.suppress(Exception):
                run.model_size = _model_size(client, run.model, desktop.size)
            run.set_status("stopping" if run.stop_requested.is_set() else "running")
            if run.stop_requested.is_set():
                agent.interrupt()
            run.result = await agent.run(run.task)
            if run.result.trajectory_dir is not None:
                run.run_dir = Path(run.result.trajectory_dir)
            run.error = run.result.error

    async def shutdown(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every run validly, wait up to ``grace_s`` seconds for them to end (reports
        written, desktops closed), then cancel what is left. No new run starts after it."""
        self.closed = True
        for run in list(self.runs.values()):
            run.stop()
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _model_size(client: AgentClient, model: str, native: tuple[int, int]) -> tuple[int, int]:
    """The size of the model's screenshots for ``native`` pixels (its coordinate space)."""
    from ..computer_use.scaling import model_size_for

    return model_size_for(native, tier=client.model_spec(model).image_tier)


def _write_report(run_dir: Path) -> Path:
    from ..agent.report import write_report

    return write_report(run_dir)
