"""One eval task on one desktop: set-up, the agent, the checker, the report (see
:mod:`deskpilot.eval.runner` for the whole run).

:class:`TaskRunner` holds one run's options, client and results writer; each of its
:meth:`~TaskRunner.worker` s takes :class:`Job` s (a task and a trial) from a shared queue
until it is empty, running each on a desktop leased from the run's
:class:`~deskpilot.pool.DesktopPool`. Nothing a task does raises out of a worker: a failing
set-up, agent run or checker becomes that task's ``error`` result with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..agent.loop import Agent
from ..agent.toolbox import Toolbox
from ..errors import DeskpilotError, DeskpilotTimeoutError
from .options import (
    DEFAULT_MAX_TURNS,
    DEFAULT_TIMEOUT_S,
    INFEASIBLE_RULE,
    RUNS_DIR,
    WORK_DIR,
    EvalOptions,
)
from .results import ResultsWriter, Status, TaskResult, Timings
from .task import Task

if TYPE_CHECKING:
    from ..agent.protocols import AgentClient
    from ..agent.result import AgentResult
    from ..desktop.local import LocalDesktop
    from ..pool import DesktopPool
    from .checker import CheckResult

log = logging.getLogger("deskpilot.eval")

HARD_LIMIT_GRACE_S = 60.0
"""Seconds a run may take to stop after its time limit interrupted it, before it is cancelled."""

__all__ = ["Job", "TaskRunner", "evidence_text", "fake_client_options", "now_iso", "run_name"]


def run_name(task_id: str, trial: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', task_id)[:100]}-t{trial}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _EvalAgent(Agent):
    """The agent with :data:`INFEASIBLE_RULE` after its default system prompt (kept across
    tool step-downs, which rebuild the prompt)."""

    def _default_prompt(self, tools: Toolbox) -> str:
        return super()._default_prompt(tools) + INFEASIBLE_RULE


@dataclass(slots=True)
class Job:
    task: Task
    trial: int
    order: int
    recorded: list[dict[str, Any]] | None = None
    """Replay: the model turns recorded in the earlier run."""
    recorded_home: str | None = None
    """Replay: the HOME of the earlier run's desktop (replaced by the new one's)."""
    missing: str | None = None
    """Why the job cannot run (replay without a trajectory)."""


class TaskRunner:
    """One :func:`run_suite` call's state: the options, the shared client, the writer."""

    def __init__(
        self,
        opts: EvalOptions,
        writer: ResultsWriter,
        on_result: Callable[[TaskResult], Any] | None = None,
        shared_client: AgentClient | None = None,
    ) -> None:
        self.opts = opts
        self.writer = writer
        self.on_result = on_result
        self.shared_client = shared_client
        self.results: list[TaskResult] = []
        self.runs_dir = opts.out / RUNS_DIR

    # --- clients ----------------------------------------------------------------------------
    def responses_for(self, job: Job, task: Task, home: str) -> list[dict[str, Any]] | None:
        """The model turns one job's fake server serves (oracle: the localized task's
        solution; replay: the recorded turns with the old HOME replaced), or None when the
        job uses the shared client."""
        if self.opts.mode == "oracle":
            return task.solution_responses()
        if self.opts.mode == "replay" and job.recorded is not None:
            old = job.recorded_home
            return _replace_text(job.recorded, old, home) if old else job.recorded
        return None

    @contextlib.asynccontextmanager
    async def client_for(self, responses: list[dict[str, Any]] | None) -> Any:
        """The client of one job: the shared one, or one of a fake server of ``responses``."""
        if responses is None:
            if self.shared_client is None:
                raise DeskpilotError("The eval runner has no client for this mode.")
            yield self.shared_client
            return
        from ..client.core import LLMClient
        from ..testing import FakeModelServer

        async with FakeModelServer(responses=responses) as server:
            client = LLMClient(self.opts.model_name, **fake_client_options(server.url))
            try:
                yield client
            finally:
                await client.close()

    # --- one task ---------------------------------------------------------------------------
    def skip_result(self, job: Job) -> TaskResult | None:
        """The result of a job that must not run (unsupported, nothing to replay), or None."""
        if job.task.unsupported is not None:
            return self._error(job, job.task.unsupported, status="unsupported")
        if job.missing is not None:
            return self._error(job, job.missing)
        return None

    async def run_job(self, job: Job, desktop: LocalDesktop, reset_s: float) -> TaskResult:
        """Run one task and trial on ``desktop`` (already fresh); never raises but
        CancelledError."""
        task = job.task
        timings = Timings(reset_s=reset_s)
        base: dict[str, Any] = {
            "id": task.id,
            "trial": job.trial,
            "instruction": task.instruction,
            "tags": list(task.tags),
            "started_at": now_iso(),
            "timings": timings,
        }

        def done(**fields: Any) -> TaskResult:
            timings.report_s = fields.pop("report_s", 0.0)
            total = timings.reset_s + timings.setup_s + timings.agent_s + timings.check_s
            return TaskResult(**base, **fields, duration_s=round(total + timings.report_s, 3))

        from .checker import check_task
        from .context import EvalContext
        from .setup import run_setup

        name = run_name(task.id, job.trial)
        try:
            home = desktop.resolve_path("~")
            base["home"] = home
            local = task.localized(home)
            ctx = await asyncio.to_thread(
                EvalContext.for_task,
                local,
                desktop,
                work_dir=self.opts.out / WORK_DIR / name,
                computer=desktop,
            )
            t = time.monotonic()
            try:
                await run_setup(ctx, local.config)
            finally:
                timings.setup_s = round(time.monotonic() - t, 3)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Set-up of %s failed", task.id, exc_info=True)
            return done(status="error", reason=f"Set-up failed: {_say(exc)}")

        t = time.monotonic()
        try:
            responses = self.responses_for(job, local, home)
            run = await self._agent_run(job, local, desktop, responses, name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("The agent run of %s failed", task.id, exc_info=True)
            timings.agent_s = round(time.monotonic() - t, 3)
            return done(status="error", reason=f"The agent run failed: {_say(exc)}")
        timings.agent_s = round(time.monotonic() - t, 3)
        traj = Path(run.trajectory_dir) if run.trajectory_dir is not None else None
        stats = {
            "steps": run.steps,
            "tokens": run.usage.total_tokens,
            "cost": round(run.cost, 6),
            "stop_reason": run.stop_reason,
            "final_text": run.final_text,
            "trajectory_dir": self._rel(traj),
        }
        if run.stop_reason == "interrupted":
            limit = task.timeout_s or DEFAULT_TIMEOUT_S
            stats["stop_reason"] = f"interrupted at the task's time limit ({limit:.0f} s)"
        if run.stop_reason in ("api_error", "error", "desktop_dead"):
            reason = f"The agent run stopped with {run.stop_reason}: {run.error or 'no detail'}"
            fields: dict[str, Any] = {"status": "error", "reason": reason, **stats}
        else:
            t = time.monotonic()
            try:
                ctx.final_text = run.final_text
                verdict = await check_task(local, ctx)
                score = max(0.0, min(1.0, float(verdict.score)))
                fields = {
                    "status": "pass" if score >= self.opts.pass_mark - 1e-9 else "fail",
                    "score": score,
                    "evidence": evidence_text(verdict),
                    **stats,
                }
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("The checker of %s failed", task.id, exc_info=True)
                fields = {"status": "error", "reason": f"The checker failed: {_say(exc)}", **stats}
            finally:
                timings.check_s = round(time.monotonic() - t, 3)
        report_s = 0.0
        if traj is not None:
            t = time.monotonic()
            fields["report"] = await self._write_report(traj, task, fields)
            report_s = round(time.monotonic() - t, 3)
        return done(report_s=report_s, **fields)

    async def _agent_run(
        self,
        job: Job,
        task: Task,
        desktop: LocalDesktop,
        responses: list[dict[str, Any]] | None,
        name: str,
    ) -> AgentResult:
        opts = self.opts
        max_turns = opts.max_turns or task.max_turns or DEFAULT_MAX_TURNS
        timeout_s = task.timeout_s or DEFAULT_TIMEOUT_S
        async with self.client_for(responses) as client:
            agent = _EvalAgent(
                client,
                computer=desktop,
                model=opts.model_name,
                max_turns=max_turns,
                out_dir=self.runs_dir,
                run_name=name,
            )
            loop = asyncio.get_running_loop()
            soft = loop.call_later(timeout_s, agent.interrupt)
            try:  # the hard limit: the run did not stop within a minute of its interrupt
                async with asyncio.timeout(timeout_s + HARD_LIMIT_GRACE_S):
                    return await agent.run(task.instruction)
            except TimeoutError:
                raise DeskpilotTimeoutError(
                    f"The agent's run did not stop within {HARD_LIMIT_GRACE_S:.0f} s of the "
                    f"task's time limit ({timeout_s:.0f} s) and was cancelled."
                ) from None
            finally:
                soft.cancel()

    def _rel(self, path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            return path.resolve().relative_to(self.opts.out.resolve()).as_posix()
        except ValueError:
            return str(path)

    async def _write_report(self, traj: Path, task: Task, fields: dict[str, Any]) -> str | None:
        """The verdict as the run's ``checks.json``, then its ``report.html``; returns the
        report's path relative to OUT (None when it could not be written)."""
        from ..agent.report import write_outputs
        from ..agent.trajectory import write_checks

        status = fields["status"]
        detail = fields.get("evidence") or fields.get("reason") or ""
        check = {
            "name": f"deskpilot eval: {task.id} {status} (score {fields.get('score', 0.0):.2f})",
            "ok": status == "pass",
            "detail": detail[:4000],
        }
        try:
            await asyncio.to_thread(write_checks, traj, [check])
            if not self.opts.report:
                return None
            out = await asyncio.to_thread(write_outputs, traj, animation=False)
        except (DeskpilotError, OSError) as exc:
            log.warning("The report of %s could not be written: %s", task.id, exc)
            return None
        return self._rel(out.report)

    # --- workers ----------------------------------------------------------------------------
    async def worker(self, jobs: asyncio.Queue[Job], pool: DesktopPool[LocalDesktop]) -> None:
        """Run jobs until the queue is empty, each on a desktop leased from ``pool`` (fresh:
        started, or reset in the background after its last task; a dead one replaced)."""
        while not jobs.empty():
            job = jobs.get_nowait()
            skip = self.skip_result(job)
            if skip is not None:
                self._record(skip)
                continue
            t = time.monotonic()
            result: TaskResult | None = None
            try:
                async with pool.lease() as desktop:
                    result = await self.run_job(job, desktop, round(time.monotonic() - t, 3))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the lease failed: no desktop could be started
                log.warning("No desktop for %s", job.task.id, exc_info=True)
                if result is None:
                    result = self._error(job, f"No fresh desktop: {_say(exc)}")
            self._record(result)

    def _error(self, job: Job, reason: str, status: Status = "error") -> TaskResult:
        t = job.task
        return TaskResult(
            id=t.id,
            trial=job.trial,
            status=status,
            reason=reason,
            instruction=t.instruction,
            tags=list(t.tags),
            started_at=now_iso(),
        )

    def _record(self, result: TaskResult) -> None:
        self.writer.write(result)
        self.results.append(result)
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:
                log.exception("The on_result callback raised; the run continues.")


def evidence_text(verdict: CheckResult) -> str:
    """The checker's verdict as text for results and reports: its summary, then what each
    metric compared."""
    lines = [verdict.summary]
    for e in verdict.evidence:
        if e.detail != verdict.summary:
            lines.append(f"{e.func} = {e.score:.2f}: {e.detail}")
        if e.result:
            lines.append(f"  result: {e.result}")
        if e.expected:
            lines.append(f"  expected: {e.expected}")
    return "\n".join(lines)


def _replace_text(value: Any, old: str, new: str) -> Any:
    """``value`` (JSON-like) with ``old`` replaced by ``new`` in every string."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replace_text(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _replace_text(v, old, new) for k, v in value.items()}
    return value


def _say(exc: BaseException) -> str:
    text = str(exc) or "(no message)"
    return text if isinstance(exc, DeskpilotError) else f"{type(exc).__name__}: {text}"


def fake_client_options(url: str) -> dict[str, Any]:
    return {
        "base_url": url,
        "api_key": "eval-fake-no-key",
        "provider": "anthropic",
        "max_requests_per_minute": 100_000,
        "max_tokens_per_minute": 1_000_000_000,
        "max_concurrent_requests": 16,
    }
