"""``run_many``: many agent runs at once over a pool of desktops, results in input order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..pool import DesktopPool
from ..prompt import Conversation
from ..response import Usage
from .loop import Agent, AgentResult

if TYPE_CHECKING:
    from ..client.core import LLMClient

log = logging.getLogger("deskpilot.agent")


def _default_desktop_factory() -> Any:
    from ..desktop.local import LocalDesktop

    return LocalDesktop()


def error_result(task: str | Conversation, message: str) -> AgentResult:
    """The result of a task that did not run to an end: ``stop_reason="error"``, ``error``
    set to ``message`` (a sentence saying why)."""
    conv = task.copy() if isinstance(task, Conversation) else Conversation().user(str(task))
    return AgentResult(
        final_text=None,
        steps=0,
        usage=Usage(),
        cost=0.0,
        stop_reason="error",
        trajectory_dir=None,
        conversation=conv,
        error=message,
    )


def own_pool(
    desktop_factory: Callable[[], Any] | None, desktops: int, fresh_desktop: bool, n: int
) -> DesktopPool[Any]:
    """The pool ``run_many`` builds when given none: ``desktops`` desktops, kept between
    tasks (state carries over) or closed after each one (``fresh_desktop``)."""
    return DesktopPool(
        desktop_factory or _default_desktop_factory,
        size=max(1, min(desktops, n)),
        between_tasks="fresh" if fresh_desktop else "keep",
        keep_warm=not fresh_desktop,
    )


async def run_many(
    tasks: Sequence[str | Conversation],
    *,
    client: LLMClient,
    desktops: int | None = None,
    desktop_factory: Callable[[], Any] | None = None,
    fresh_desktop: bool = False,
    pool: DesktopPool[Any] | None = None,
    show_progress: bool = True,
    processes: int = 1,
    **agent_kwargs: Any,
) -> list[AgentResult]:
    """Run many tasks at once over a pool of desktops; one :class:`AgentResult` per task, in
    input order.

    Every task runs on a desktop leased from a :class:`~deskpilot.DesktopPool`: ``pool=``
    when given (its ``between_tasks`` decides what the next task sees; a dead desktop is
    replaced), or one ``run_many`` builds from ``desktops``/``desktop_factory``/
    ``fresh_desktop`` and closes at the end.

    With ``processes=K`` (K > 1) the tasks and desktops are spread over K worker processes
    (``multiprocessing`` "spawn": one event loop and one pool each, the ``desktops`` split
    evenly, so one machine's desktops use its cores). Each worker rebuilds the client from
    ``client``'s models and settings (credentials from its inherited environment, or the
    ``api_key=`` given, sent through the spawn pipe, never written to disk) and admits
    every request from ``client``'s own limiter in this process, so RPM, input TPM, output
    TPM and concurrency hold across all workers (:mod:`deskpilot.agent.shard_link`).
    Tasks go to whichever worker has a free desktop; results come back as they finish and
    are returned in input order, trajectories in the same ``out_dir``. A worker that dies
    (killed, crashed) turns its unfinished tasks into error results saying so (they are not
    rerun: a half-run task may have acted on its desktop); its queued tasks go to the other
    workers. Cancelling ``run_many`` (Ctrl-C) stops the workers with SIGTERM: each closes
    its desktops and exits (SIGKILL after 30 s). Workers ignore SIGINT and exit when this
    process disappears. ``client.total_usage``/``total_cost`` add up the workers' usage.

    Args:
        tasks: task strings (or Conversations).
        client: the shared :class:`~deskpilot.LLMClient` (its rate limits pace all agents).
        desktops: how many agents run at the same time (>= 1); default 2, or the pool's
            size. Without ``pool``, also how many desktops are started.
        desktop_factory: (without ``pool``) a zero-argument callable returning a desktop
            (an async context manager such as ``LocalDesktop(1280, 800)``, or an awaitable
            of one); default ``LocalDesktop()``.
        fresh_desktop: (without ``pool``) False -> each desktop is started once and reused
            by task after task (state carries over; a dead one is replaced); True -> every
            task gets a new desktop that is closed after it.
        pool: a :class:`~deskpilot.DesktopPool` to lease from (started here if it is not;
            left open: the caller closes it). Typically ``between_tasks="reset"``, so each
            task starts on a fresh desktop without paying for a new X server.
        show_progress: a tqdm bar on stderr (tasks done, stop reasons, cost).
        processes: worker processes (>= 1; at most ``desktops`` and the task count are
            used). 1 (default): everything runs in this process and event loop. More:
            ``desktop_factory``, the tasks and ``agent_kwargs`` must be picklable (a
            module-level function or ``functools.partial(LocalDesktop, 1280, 800)``, not a
            lambda), ``pool=`` and the in-process callbacks ``on_step``, ``approve`` and
            ``control`` are refused (read each result's ``step_records`` instead).
        **agent_kwargs: passed to every :class:`Agent` (``max_turns``, ``out_dir``, ...).

    Returns:
        Results in input order. A task whose run raised, or for which no desktop could be
        started, gets ``AgentResult(stop_reason="error", error=...)``; nothing is raised.
        When not one desktop ever started and every slot failed, the remaining tasks are
        not tried (they get the start error).

    Raises:
        ConfigError: ``desktops`` or ``processes`` < 1, ``run_name`` in ``agent_kwargs`` (it
            would clash), ``pool`` together with ``desktop_factory``/``fresh_desktop``, or
            (``processes`` > 1) ``pool``, a callback, something unpicklable or a client that
            cannot be rebuilt in a worker (see
            :func:`~deskpilot.client.rebuild.rebuild_arguments`).
    """
    if desktops is not None and (
        isinstance(desktops, bool) or not isinstance(desktops, int) or desktops < 1
    ):
        raise ConfigError(f"desktops must be an integer >= 1, not {desktops!r}.")
    if "run_name" in agent_kwargs and len(tasks) > 1:
        raise ConfigError("run_many names each run itself; drop run_name= (use out_dir=).")
    if pool is not None and (desktop_factory is not None or fresh_desktop):
        raise ConfigError(
            "Pass either pool= or desktop_factory=/fresh_desktop=; the pool's factory and "
            "between_tasks= decide those."
        )
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError(f"processes must be an integer >= 1, not {processes!r}.")
    if processes > 1:
        from .shard import run_sharded

        return await run_sharded(
            tasks,
            client=client,
            processes=processes,
            desktops=desktops or 2,
            desktop_factory=desktop_factory,
            fresh_desktop=fresh_desktop,
            pool=pool,
            show_progress=show_progress,
            agent_kwargs=agent_kwargs,
        )
    from tqdm.auto import tqdm

    n = len(tasks)
    if n == 0:
        return []
    own = pool is None
    if pool is None:
        pool = own_pool(desktop_factory, desktops or 2, fresh_desktop, n)
    workers = min(desktops or pool.size, n)
    results: list[AgentResult | None] = [None] * n
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    bar = tqdm(total=n, desc="deskpilot", unit="task", disable=not show_progress, leave=True)
    totals = {"cost": 0.0, "ok": 0}

    def record(i: int, res: AgentResult) -> None:
        results[i] = res
        totals["cost"] += res.cost
        totals["ok"] += int(res.ok)
        bar.set_postfix(ok=totals["ok"], cost=f"${totals['cost']:.4f}", refresh=False)
        bar.update(1)

    async def run_one(i: int, desktop: Any) -> None:
        try:
            agent = Agent(client, computer=desktop, **agent_kwargs)
            res = await agent.run(tasks[i])
        except Exception as exc:
            log.warning("Task %d failed: %s: %s", i, type(exc).__name__, exc)
            res = error_result(tasks[i], f"{type(exc).__name__}: {exc}")
        record(i, res)

    async def worker(pool: DesktopPool[Any]) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            try:
                async with pool.lease() as desktop:
                    await run_one(i, desktop)
            except Exception as exc:
                log.warning("No desktop for task %d: %s: %s", i, type(exc).__name__, exc)
                message = f"No desktop for this task: {exc}"
                if results[i] is None:
                    record(i, error_result(tasks[i], message))
                health = pool.health()
                if health.starts == 0 and health.start_failures >= pool.size:
                    while not queue.empty():  # not one desktop ever started: stop trying
                        j = queue.get_nowait()
                        record(j, error_result(tasks[j], message))

    try:
        await pool.start(wait=False)
        await asyncio.gather(*(worker(pool) for _ in range(workers)))
    finally:
        bar.close()
        if own:
            await pool.close()
    return [
        r if r is not None else error_result(tasks[i], "The task did not run.")
        for i, r in enumerate(results)
    ]


__all__ = ["run_many"]
