"""``run_many``: many agent runs at once over a pool of desktops, results in input order."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..prompt import Conversation
from ..response import Usage
from .loop import Agent, AgentResult

if TYPE_CHECKING:
    from ..client.core import LLMClient

log = logging.getLogger("deskpilot.agent")


def _default_desktop_factory() -> Any:
    from ..desktop.local import LocalDesktop

    return LocalDesktop()


@contextlib.asynccontextmanager
async def _entered(factory: Callable[[], Any]) -> AsyncIterator[Any]:
    obj = factory()
    if inspect.isawaitable(obj):
        obj = await obj
    if isinstance(obj, contextlib.AbstractAsyncContextManager):
        async with obj as desktop:
            yield desktop if desktop is not None else obj
    else:
        yield obj


async def run_many(
    tasks: Sequence[str | Conversation],
    *,
    client: LLMClient,
    desktops: int = 2,
    desktop_factory: Callable[[], Any] | None = None,
    fresh_desktop: bool = False,
    show_progress: bool = True,
    **agent_kwargs: Any,
) -> list[AgentResult]:
    """Run many tasks at once over a pool of desktops; one :class:`AgentResult` per task, in
    input order.

    Args:
        tasks: task strings (or Conversations).
        client: the shared :class:`~deskpilot.LLMClient` (its rate limits pace all agents).
        desktops: how many desktops (and so agents) run at the same time (>= 1).
        desktop_factory: a zero-argument callable returning a desktop (an async context
            manager such as ``LocalDesktop(1280, 800)``, or an awaitable of one); default
            ``LocalDesktop()``.
        fresh_desktop: False -> each of the ``desktops`` desktops is started once and reused
            by task after task (state carries over); True -> every task gets a new desktop
            that is closed after it.
        show_progress: a tqdm bar on stderr (tasks done, stop reasons, cost).
        **agent_kwargs: passed to every :class:`Agent` (``max_turns``, ``out_dir``, ...).

    Returns:
        Results in input order. A task whose run raised, or whose desktop could not start,
        gets ``AgentResult(stop_reason="error", error=...)``; nothing is raised.

    Raises:
        ConfigError: ``desktops`` < 1 or ``run_name`` in ``agent_kwargs`` (it would clash).
    """
    if not isinstance(desktops, int) or desktops < 1:
        raise ConfigError(f"desktops must be an integer >= 1, not {desktops!r}.")
    if "run_name" in agent_kwargs and len(tasks) > 1:
        raise ConfigError("run_many names each run itself; drop run_name= (use out_dir=).")
    from tqdm.auto import tqdm

    factory = desktop_factory or _default_desktop_factory
    n = len(tasks)
    results: list[AgentResult | None] = [None] * n
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    bar = tqdm(total=n, desc="deskpilot", unit="task", disable=not show_progress, leave=True)
    totals = {"cost": 0.0, "ok": 0}
    startup_errors: list[str] = []

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

    async def run_one(i: int, desktop: Any) -> None:
        try:
            agent = Agent(client, computer=desktop, **agent_kwargs)
            res = await agent.run(tasks[i])
        except Exception as exc:
            log.warning("Task %d failed: %s: %s", i, type(exc).__name__, exc)
            res = error_result(tasks[i], f"{type(exc).__name__}: {exc}")
        results[i] = res
        totals["cost"] += res.cost
        totals["ok"] += int(res.ok)
        bar.set_postfix(ok=totals["ok"], cost=f"${totals['cost']:.4f}", refresh=False)
        bar.update(1)

    async def worker() -> None:
        if fresh_desktop:
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    async with _entered(factory) as desktop:
                        await run_one(i, desktop)
                except Exception as exc:
                    if results[i] is None:
                        results[i] = error_result(
                            tasks[i], f"The desktop could not start: {type(exc).__name__}: {exc}"
                        )
                        bar.update(1)
            return
        try:
            async with _entered(factory) as desktop:
                while not queue.empty():
                    await run_one(queue.get_nowait(), desktop)
        except Exception as exc:
            log.warning("A desktop of run_many failed: %s: %s", type(exc).__name__, exc)
            startup_errors.append(f"{type(exc).__name__}: {exc}")

    try:
        await asyncio.gather(*(worker() for _ in range(min(desktops, n))))
    finally:
        bar.close()
    detail = startup_errors[-1] if startup_errors else "it was never run"
    return [
        r if r is not None else error_result(tasks[i], f"The task did not run: {detail}.")
        for i, r in enumerate(results)
    ]


__all__ = ["run_many"]
