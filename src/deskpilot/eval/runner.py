"""The eval runner: a suite's tasks and trials on N desktops, results, settings and the index.

:func:`run_suite` runs a suite's selected tasks (``K`` trials each) on ``N`` desktops at
once: ``N`` workers (:class:`~deskpilot.eval.worker.TaskRunner`) lease desktops from a
:class:`~deskpilot.pool.DesktopPool` of ``N`` :class:`~deskpilot.LocalDesktop` s (started at
the first lease, made fresh with :meth:`~deskpilot.desktop.base.DesktopHost.reset` in the
background after every task, replaced when dead or when the reset fails). Per task:

1. an ``unsupported`` task (:attr:`Task.unsupported <deskpilot.eval.task.Task.unsupported>`)
   is recorded as such, nothing of it run;
2. the task is localized to the desktop's HOME and its ``config`` steps run
   (:func:`deskpilot.eval.setup.run_setup`);
3. the agent (:class:`~deskpilot.Agent`) runs the instruction with the default system prompt
   plus :data:`~deskpilot.eval.options.INFEASIBLE_RULE`, recording its trajectory under
   ``OUT/runs/<id>-t<trial>/``; the task's ``timeout_s`` interrupts it;
4. the checker (:func:`deskpilot.eval.metrics.evaluate`) scores the desktop's state and the
   final answer: ``pass`` when the score reaches the pass mark (1.0), else ``fail``;
5. the verdict goes into the run's ``checks.json`` and ``report.html``, and one
   :class:`~deskpilot.eval.results.TaskResult` line is appended to ``OUT/results.jsonl``.

Nothing one task does stops the others (its failure is its ``error`` result). Models:
``model`` (a real model through :class:`~deskpilot.LLMClient`), ``oracle`` (each task's
``solution`` turns served in order by a :class:`~deskpilot.testing.FakeModelServer` on
loopback, through the real client, loop and desktop), ``noop`` (a model that answers "Done."
at once) and ``replay`` (the model turns recorded in an earlier run's trajectories, served
the same way with the old HOME mapped to the new one: re-scores that run, e.g. after a
checker changed). At the end (and when interrupted) ``OUT/index.html`` is written from every
result in ``results.jsonl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DeskpilotError
from ..pool import DesktopPool
from .index import write_index
from .options import DEFAULT_MAX_TURNS, INFEASIBLE_RULE, EvalOptions
from .results import (
    HarnessSettings,
    ResultsWriter,
    TaskResult,
    read_results,
    read_settings,
    results_path,
    write_settings,
)
from .task import Task, load_tasks
from .worker import Job, TaskRunner, fake_client_options, now_iso

log = logging.getLogger("deskpilot.eval")

__all__ = [
    "SuiteRun",
    "harness_settings",
    "run_suite",
    "select_tasks",
]


@dataclass(slots=True)
class SuiteRun:
    """What :func:`run_suite` did.

    Attributes:
        results: this run's new results, in the suite's order (task, then trial).
        all_results: every result in ``results.jsonl`` (latest per task and trial, suite
            order), including those skipped by ``--resume``.
        skipped: ``(id, trial)`` pairs skipped because a result existed.
        settings: the harness settings recorded; ``wall_s``: the run's wall time.
        index: the ``index.html`` written.
    """

    results: list[TaskResult]
    all_results: list[TaskResult]
    skipped: list[tuple[str, int]]
    settings: HarnessSettings
    wall_s: float
    index: Path | None = None


def select_tasks(tasks: Sequence[Task], pattern: str | None) -> list[Task]:
    """The tasks whose id or one of whose tags matches one of the comma-separated shell
    patterns of ``pattern`` (``fnmatch``: ``*``, ``?``, ``[...]``); all when None.

    Raises:
        ConfigError: the pattern selects nothing.
    """
    if not pattern:
        return list(tasks)
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    chosen = [
        t
        for t in tasks
        if any(fnmatch.fnmatchcase(name, p) for p in pats for name in (t.id, *t.tags))
    ]
    if not chosen:
        raise ConfigError(f"--tasks {pattern!r} selects no task of the suite's {len(tasks)}.")
    return chosen


def harness_settings(suite: str, opts: EvalOptions, tasks: int) -> HarnessSettings:
    """The :class:`HarnessSettings` of a run (model, tools, screen, limits, context policy).

    Raises:
        ConfigError: the model is unknown or has no computer-use tools.
    """
    from .. import __version__
    from ..agent.context import DEFAULT_CACHE_MODES
    from ..agent.loop import DEFAULT_PRUNE_INTERVAL
    from ..models import resolve_model

    spec = resolve_model(opts.model_name, opts.provider if opts.mode == "model" else "anthropic")
    return HarnessSettings(
        deskpilot_version=__version__,
        suite=suite,
        tasks=tasks,
        mode=opts.mode,
        model=opts.model_name,
        model_id=spec.model_id,
        provider=spec.provider,
        tool_types=list(spec.tool_group(spec.provider).types),
        screen=opts.screen,
        max_turns=opts.max_turns,
        default_max_turns=DEFAULT_MAX_TURNS,
        keep_screenshots=3,
        prune_interval=DEFAULT_PRUNE_INTERVAL,
        cache=list(DEFAULT_CACHE_MODES),
        system_prompt_suffix=INFEASIBLE_RULE,
        trials=opts.trials,
        desktops=opts.desktops,
        pass_mark=opts.pass_mark,
        started_at=now_iso(),
    )


def _check_out(opts: EvalOptions, settings: HarnessSettings) -> set[tuple[str, int]]:
    """Refuse to mix runs in one OUT; returns the ``(id, trial)`` pairs ``--resume`` skips."""
    path = results_path(opts.out)
    has_results = path.is_file() and path.stat().st_size > 0
    if not has_results:
        return set()
    if not opts.resume:
        raise ConfigError(
            f"{opts.out} already holds eval results; pass --resume to continue that run, or "
            "choose another --out."
        )
    prev = read_settings(opts.out)
    if prev is not None:
        diffs = [d for d in prev.differences(settings) if not d.startswith("max_turns")]
        if prev.suite != settings.suite:
            diffs.insert(0, f"suite: {prev.suite!r} -> {settings.suite!r}")
        if diffs:
            raise ConfigError(
                f"The results in {opts.out} were made with other settings ("
                + "; ".join(diffs)
                + "); resume with the same ones, or choose another --out."
            )
    return read_results(opts.out).done()


def _replay_sources(replay_dir: Path) -> dict[tuple[str, int], TaskResult]:
    """The earlier run's latest result per task and trial.

    Raises:
        ConfigError: it has no results.
    """
    rows = read_results(replay_dir).latest()
    if not rows:
        raise ConfigError(f"{replay_dir} has no result to replay.")
    return {r.key: r for r in rows}


def _replay_job(job: Job, source: TaskResult | None, replay_dir: Path) -> None:
    """Fill a replay job's recorded turns from the earlier run (or say why it cannot)."""
    from ..agent.replay import recorded_responses

    if source is None or not source.trajectory_dir:
        job.missing = f"{replay_dir} has no recorded trajectory of this task and trial."
        return
    traj = (replay_dir / source.trajectory_dir).resolve()
    if not traj.is_relative_to(replay_dir.resolve()):
        job.missing = f"The recorded trajectory {source.trajectory_dir!r} is outside {replay_dir}."
        return
    try:
        job.recorded = recorded_responses(traj)
    except DeskpilotError as exc:
        job.missing = f"The recorded trajectory could not be read: {exc}"
        return
    job.recorded_home = source.home


def _jobs(
    tasks: Sequence[Task], opts: EvalOptions, done: set[tuple[str, int]]
) -> tuple[list[Job], list[tuple[str, int]]]:
    sources = _replay_sources(opts.replay_dir) if opts.replay_dir is not None else {}
    jobs: list[Job] = []
    skipped: list[tuple[str, int]] = []
    for trial in range(1, opts.trials + 1):
        for order, task in enumerate(tasks):
            if (task.id, trial) in done:
                skipped.append((task.id, trial))
                continue
            job = Job(task=task, trial=trial, order=order)
            if opts.mode == "oracle" and not task.solution and task.unsupported is None:
                job.missing = "The task has no solution, so --oracle cannot run it."
            if opts.mode == "replay" and opts.replay_dir is not None:
                _replay_job(job, sources.get((task.id, trial)), opts.replay_dir)
            jobs.append(job)
    return jobs, skipped


def _require_credentials(opts: EvalOptions, client_options: dict[str, Any]) -> None:
    """Fail before any desktop starts when the Anthropic API or a gateway has no key (the
    other platforms' credential chains are checked by their first request).

    Raises:
        ConfigError: the key is missing.
    """
    from ..client.config import read_environment
    from ..models import resolve_model

    if "api_key" in client_options or "auth_token" in client_options:
        return
    provider = resolve_model(opts.model_name, opts.provider).provider
    env = read_environment()
    if provider == "anthropic" and not (env.anthropic_api_key or env.anthropic_auth_token):
        raise ConfigError(
            "ANTHROPIC_API_KEY is not set; export it (or ANTHROPIC_AUTH_TOKEN), or run the "
            "suite without a model: --oracle (the tasks' solutions) or --noop."
        )
    if provider == "gateway" and not env.openai_api_key:
        raise ConfigError("OPENAI_API_KEY is not set (the gateway provider sends it); export it.")


@contextlib.asynccontextmanager
async def _shared_client(opts: EvalOptions) -> Any:
    """The client every task shares (model and noop modes), or None."""
    from ..client.core import LLMClient

    if opts.mode == "model":
        kw: dict[str, Any] = dict(opts.client_options)
        if opts.provider is not None:
            kw.setdefault("provider", opts.provider)
        client = LLMClient(opts.model_name, **kw)
        try:
            yield client
        finally:
            await client.close()
    elif opts.mode == "noop":
        from ..testing import FakeModelServer

        async with FakeModelServer() as server:  # no script: every answer is "Done."
            client = LLMClient(opts.model_name, **fake_client_options(server.url))
            try:
                yield client
            finally:
                await client.close()
    else:
        yield None


def _ordered(results: list[TaskResult], tasks: Sequence[Task]) -> list[TaskResult]:
    rank = {t.id: i for i, t in enumerate(tasks)}
    return sorted(results, key=lambda r: (rank.get(r.id, len(rank)), r.id, r.trial))


async def run_suite(
    suite: str | Path,
    opts: EvalOptions,
    *,
    suite_label: str | None = None,
    on_result: Callable[[TaskResult], Any] | None = None,
    progress: bool = False,
) -> SuiteRun:
    """Run a suite (a directory of task ``*.json`` files or a ``.jsonl``) as ``opts`` say.

    Args:
        suite: the suite's path.
        opts: the run's :class:`~deskpilot.eval.options.EvalOptions`.
        suite_label: what ``settings.json`` calls the suite (default: its path).
        on_result: called with each :class:`TaskResult` as soon as it is written.
        progress: show a tqdm progress bar on stderr.

    Returns:
        A :class:`SuiteRun`.

    Raises:
        ConfigError: the suite cannot be loaded, ``--tasks`` selects nothing, OUT holds
            another run's results (without ``--resume``, or with other settings), or the
            model is unknown.
        DeskpilotError: ``results.jsonl`` or ``settings.json`` cannot be written.
    """
    t0 = time.monotonic()
    if opts.mode == "replay" and opts.model is None and opts.replay_dir is not None:
        recorded = read_settings(opts.replay_dir)  # the recorded run's model and tools
        if recorded is not None and recorded.model:
            opts = dataclasses.replace(opts, model=recorded.model)
    tasks = select_tasks(await asyncio.to_thread(load_tasks, suite), opts.pattern)
    label = suite_label or str(suite)
    settings = harness_settings(label, opts, len(tasks))
    if opts.mode == "model":
        _require_credentials(opts, opts.client_options)
    done = await asyncio.to_thread(_check_out, opts, settings)
    jobs, skipped = _jobs(tasks, opts, done)
    await asyncio.to_thread(write_settings, opts.out, settings)
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), disable=not progress, unit="task", file=sys.stderr, leave=False)

    def seen(result: TaskResult) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{result.id}: {result.status}", refresh=False)
        if on_result is not None:
            on_result(result)

    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    index = None
    with ResultsWriter(opts.out) as writer:
        runner = TaskRunner(opts, writer, on_result=seen)
        try:
            async with _shared_client(opts) as client:
                runner.shared_client = client
                workers = min(opts.desktops, max(1, len(jobs)))
                pool = DesktopPool.local(size=workers, width=opts.screen[0], height=opts.screen[1])
                try:  # desktops start at the first lease (none when no task can run)
                    async with asyncio.TaskGroup() as group:
                        for _ in range(workers):
                            group.create_task(runner.worker(queue, pool))
                finally:
                    await pool.close()
        finally:
            bar.close()
            everything = _ordered(read_results(opts.out).latest(), tasks)
            with contextlib.suppress(DeskpilotError):
                index = await asyncio.to_thread(write_index, opts.out, everything, settings)
    return SuiteRun(
        results=_ordered(runner.results, tasks),
        all_results=everything,
        skipped=skipped,
        settings=settings,
        wall_s=time.monotonic() - t0,
        index=index,
    )
