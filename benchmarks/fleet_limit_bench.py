"""One rate limit for a fleet (issue 8 §5): 4 processes at 300 RPM, sharing the Ray limiter
actor vs each holding its own in-process limiter.

The fake model server runs in its own process (``python -m deskpilot.testing.fake_server``)
and records when each request arrives; the 4 client processes are Ray actors on a local Ray
(``ray.init(num_cpus=2)``), each an ``LLMClient`` sending short prompts as fast as its
limiter admits them (32 at a time) for ``--duration`` seconds. Reported per mode: requests
sent, the most requests in any window (the limit's window, 60 s) at the server, that as a
share of the limit, and the mean rate after the first window (requests per window; a short
run shows the first window's requests leaving it again as a burst).

Expected: shared -> the most in any window <= 300 and >= 95% of it; own limiters -> about
4 x 300 (LiteLLM's documented failure without a shared store).

``--window 6`` scales time by 1/10 (300 per 6 s; the same count) for a quick run.
:func:`measure` and :func:`summary_lines` are importable (``benchmarks/fleet_bench.py
--shared-limit`` calls the latter).

Usage: ``python benchmarks/fleet_limit_bench.py [--duration 80] [--window 60] [--rpm 300]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray

from deskpilot.fleet.limit import LimitConfig, RayLimiter, shared_limiter
from deskpilot.testing import most_in_window

MODEL = "claude-4-sonnet"


@ray.remote(num_cpus=0)
class ClientProcess:
    """One process of the fleet: its own LLMClient, on the shared limiter or its own."""

    async def run(
        self, url: str, duration_s: float, limiter: str | None, rpm: float, window_s: float
    ) -> dict[str, Any]:
        import asyncio

        from deskpilot import LLMClient

        kwargs: dict[str, Any] = {}
        if limiter is not None:
            kwargs["limiter"] = RayLimiter.connect(limiter)
        client = LLMClient(
            MODEL,
            base_url=url,
            api_key="sk-ant-bench-0000",
            progress="none",
            max_attempts=1,
            max_requests_per_minute=rpm,
            max_tokens_per_minute=None,
            rate_window_s=window_s,
            **kwargs,
        )
        sent = errors = 0
        deadline = time.monotonic() + duration_s

        async def worker() -> None:
            nonlocal sent, errors
            while time.monotonic() < deadline:
                r = await client.start("hi")
                sent += 1
                errors += int(r.is_error)

        async def bounded() -> None:
            tasks = [asyncio.ensure_future(worker()) for _ in range(32)]
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            await bounded()
        finally:
            await client.close()
        return {"sent": sent, "errors": errors, "pid": os.getpid()}


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_fake/stats", timeout=30) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def _reset(url: str) -> None:
    req = urllib.request.Request(url + "/_fake/reset", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=30).close()


def measure(
    url: str,
    *,
    shared: bool,
    processes: int = 4,
    rpm: float = 300,
    window_s: float = 60.0,
    duration_s: float = 80.0,
) -> dict[str, Any]:
    """Run ``processes`` client processes against the fake server at ``url`` for
    ``duration_s`` seconds (Ray must be initialised) and measure the server's arrivals.

    Returns:
        ``{"mode", "processes", "sent", "errors", "most_in_window", "limit",
        "share_of_limit", "steady_per_window", "window_s"}``.
    """
    _reset(url)
    name = None
    lim = None
    if shared:
        name = f"bench-limiter-{os.getpid()}"
        cfg = LimitConfig(
            requests_per_minute=rpm,
            input_tokens_per_minute=None,
            max_concurrent=None,
            window_s=window_s,
        )
        lim = shared_limiter(cfg, name=name)
    procs = [ClientProcess.remote() for _ in range(processes)]
    ray.get([p.__ray_ready__.remote() for p in procs])  # started before the clock runs
    outs = ray.get([p.run.remote(url, duration_s, name, rpm, window_s) for p in procs])
    for p in procs:
        ray.kill(p)
    if lim is not None:
        ray.kill(lim.actor)
    arrivals = sorted(_stats(url)["arrivals"])
    most = most_in_window(arrivals, window_s)
    after = [t for t in arrivals if t >= arrivals[0] + window_s] if arrivals else []
    steady = 0.0
    if len(after) > 1:
        steady = (len(after) - 1) / (after[-1] - after[0]) * window_s
    return {
        "mode": "shared Ray limiter" if shared else "own limiter each",
        "processes": len({o["pid"] for o in outs}),
        "sent": sum(o["sent"] for o in outs),
        "errors": sum(o["errors"] for o in outs),
        "most_in_window": most,
        "limit": rpm,
        "share_of_limit": most / rpm,
        "steady_per_window": steady,
        "window_s": window_s,
    }


def summary_lines(
    *,
    duration_s: float = 80.0,
    window_s: float = 60.0,
    rpm: float = 300.0,
    processes: int = 4,
    only: str | None = None,
) -> list[str]:
    """Both modes (or ``only`` ``"shared"`` / ``"own"``) from scratch: the fake server in its
    own process, a local Ray (``num_cpus=2``) unless one is connected; returns the table's
    lines, the last one the rows as JSON. ``benchmarks/fleet_bench.py --shared-limit`` calls
    this."""
    server = subprocess.Popen(
        [sys.executable, "-m", "deskpilot.testing.fake_server", "--no-record"],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = False
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip().split("=", 1)[1]
        if not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            started = True
        rows = [
            measure(
                url,
                shared=shared,
                processes=processes,
                rpm=rpm,
                window_s=window_s,
                duration_s=duration_s,
            )
            for shared in (True, False)
            if only is None or only == ("shared" if shared else "own")
        ]
    finally:
        if started:
            ray.shutdown()
        server.terminate()
        server.wait(10)
    w = f"{window_s:g} s"
    head = (
        f"{'mode':<20} {'procs':>5} {'sent':>6} {'errors':>6} {'most in ' + w:>14} "
        f"{'of limit':>8} {'mean/' + w:>10}"
    )
    lines = [
        f"shared limit: {processes} processes, limit {rpm:g} requests per {w}, {duration_s:g} s "
        f"per mode, fake server in its own process, {os.cpu_count()} CPUs",
        head,
        "-" * len(head),
    ]
    for r in rows:
        lines.append(
            f"{r['mode']:<20} {r['processes']:>5} {r['sent']:>6} {r['errors']:>6} "
            f"{r['most_in_window']:>14} {r['share_of_limit']:>8.1%} "
            f"{r['steady_per_window']:>10.1f}"
        )
    lines.append(json.dumps(rows))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=80.0, help="seconds per mode")
    parser.add_argument("--window", type=float, default=60.0, help="the limit's window, s")
    parser.add_argument("--rpm", type=float, default=300.0, help="requests per window")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--only", choices=("shared", "own"), default=None)
    args = parser.parse_args(argv)
    lines = summary_lines(
        duration_s=args.duration,
        window_s=args.window,
        rpm=args.rpm,
        processes=args.processes,
        only=args.only,
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
