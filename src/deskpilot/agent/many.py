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


def _own_pool(
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
    **agent_kwargs: Any,
) -> list[AgentResult]:
    """Run many tasks at once over a pool of desktops; one :class:`AgentResult` per task, in
    input order.

    Every task runs on a desktop leased from a :class:`~deskpilot.DesktopPool`: ``pool=``
    when given (its ``between_tasks`` decides what the next task sees; a dead desktop is
    replaced), or one ``run_many`` builds from ``desktops``/``desktop_factory``/
    ``fresh_desktop`` and closes at the end.

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
        **agent_kwargs: passed to every :class:`Agent` (``max_turns``, ``out_dir``, ...).

    Returns:
        Results in input order. A task whose run raised, or for which no desktop could be
        started, gets ``AgentResult(stop_reason="error", error=...)``; nothing is raised.
        When not one desktop ever started and every slot failed, the remaining tasks are
        not tried (they get the start error).

    Raises:
        ConfigError: ``desktops`` < 1, ``run_name`` in ``agent_kwargs`` (it would clash),
            or ``pool`` together with ``desktop_factory``/``fresh_desktop``.
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
    from tqdm.auto import tqdm

    n = len(tasks)
    if n == 0:
        return []
    own = pool is None
    if pool is None:
        pool = _own_pool(desktop_factory, desktops or 2, fresh_desktop, n)
    workers = min(desktops or pool.size, n)
    results: list[AgentResult | None] = [None] * n
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    bar = tqdm(total=n, desc="deskpilot", unit="task", disable=not show_progress, leave=True)
    totals = {"cost": 0.0, "ok": 0}

    def error_result(task: str | Conversation, message: str) -> AgentResult:
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
