"""Pool benchmark: what a warm desktop saves, on real Xvfb desktops.

Usage::

    python benchmarks/pool_bench.py                     # 2 desktops, 12 tasks, xterm on each
    python benchmarks/pool_bench.py --desktops 4 --tasks 24 --apps ""

(1) Start: K desktops started by a DesktopPool (at most 4 at once), seconds per start.
(2) Warm lease: ``async with pool.lease()`` on an idle desktop (``between_tasks="keep"``),
    its health check (one X round trip) included, in ms: p50 / p95 over 50 leases.
(3) Reset: ``LocalDesktop.reset()`` between tasks (``between_tasks="reset"``), seconds.
(4) run_many: N one-step tasks (a bash command, then an answer) against the fake model
    server with zero latency, over K desktops, three ways: ``keep`` (state carries over),
    ``reset`` (a pool of K resetting between tasks), ``reset+1`` (a pool of K + 1 for K
    agents: a reset runs while the other desktops work) and ``fresh`` (a new desktop per
    task): wall seconds and tasks per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deskpilot import DesktopPool, LLMClient, LocalDesktop
from deskpilot.agent.many import run_many
from deskpilot.testing import FakeModelServer
from deskpilot.testing.wire import message_response, text_response, tool_use_block


def handler(req):
    if len(req.body["messages"]) == 1:
        block = tool_use_block("bash", {"command": "ls -A ~ | wc -l"}, id=f"b{req.index}")
        return message_response([block])
    return text_response("done")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def main(desktops: int, tasks: int, apps: tuple[str, ...]) -> None:
    def factory() -> LocalDesktop:
        return LocalDesktop(1280, 800, apps=apps)

    t0 = time.perf_counter()
    async with DesktopPool(factory, size=desktops, between_tasks="keep") as pool:
        warm_s = time.perf_counter() - t0
        h = pool.health()
        print(
            f"start: {desktops} desktops warm in {warm_s:.2f} s, "
            f"{h.start_s_mean:.2f} s per start (apps={list(apps)})"
        )
        leases = []
        for _ in range(50):
            t = time.perf_counter()
            async with pool.lease():
                leases.append((time.perf_counter() - t) * 1000)
            await pool.wait_recycled()
        print(f"warm lease: p50 {pct(leases, 50):.1f} ms, p95 {pct(leases, 95):.1f} ms")
    async with DesktopPool(factory, size=1) as pool:
        for _ in range(5):
            async with pool.lease():
                pass
        h = await pool.wait_recycled()
        print(f"reset: {h.reset_s_mean:.2f} s mean over {h.resets} resets")

    async with FakeModelServer() as server:
        server.handler = handler
        async with LLMClient(
            "claude-4-sonnet", base_url=server.url, api_key="sk-ant-bench-0000", progress="none"
        ) as client:
            names = [f"task {i}" for i in range(tasks)]
            for mode in ("keep", "reset", "reset+1", "fresh"):
                with tempfile.TemporaryDirectory() as out:
                    t = time.perf_counter()
                    if mode.startswith("reset"):
                        size = desktops + (mode == "reset+1")
                        async with DesktopPool(factory, size=size) as pool:
                            results = await run_many(
                                names,
                                client=client,
                                pool=pool,
                                desktops=desktops,
                                show_progress=False,
                                out_dir=out,
                            )
                    else:
                        results = await run_many(
                            names,
                            client=client,
                            desktops=desktops,
                            desktop_factory=factory,
                            fresh_desktop=mode == "fresh",
                            show_progress=False,
                            out_dir=out,
                        )
                    wall = time.perf_counter() - t
                ok = sum(r.ok for r in results)
                print(
                    f"run_many {mode:<7}: {tasks} tasks ({ok} ok) over {desktops} desktops in "
                    f"{wall:.2f} s = {60 * tasks / wall:.0f} tasks/min"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desktops", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--apps", default="terminal", help="comma-separated, '' for none")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    apps = tuple(a for a in args.apps.split(",") if a)
    asyncio.run(main(args.desktops, args.tasks, apps))
