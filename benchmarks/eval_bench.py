"""Eval benchmark: ``deskpilot eval --suite basic --oracle --desktops N`` wall time and the
harness's own per-task overhead.

Usage::

    python benchmarks/eval_bench.py                 # the bundled suite, 2 desktops
    python benchmarks/eval_bench.py --desktops 1 --suite PATH

Runs the suite under the oracle (each task's scripted solution served by the local fake model
server through the real client, agent loop and Xvfb desktops), then prints, from
``results.jsonl``: the wall time, the pass count, and the medians (and p90) of each phase of a
task: ``reset_s`` (a fresh desktop), ``setup_s`` (the task's config steps), ``agent_s`` (the
agent's run: model turns and actions), ``check_s`` (the checker) and ``report_s`` (the run's
report). The harness overhead beside the agent's own steps is ``setup_s + check_s``
(target: median <= 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deskpilot.eval import bundled_suite
from deskpilot.eval.options import EvalOptions
from deskpilot.eval.runner import run_suite


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(values):6.2f} s   p90 {p90:6.2f} s   max {ordered[-1]:6.2f} s"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default=None, help="a suite path (default: the bundled basic)")
    parser.add_argument("--desktops", type=int, default=2)
    args = parser.parse_args()
    suite = Path(args.suite) if args.suite else bundled_suite("basic")
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        opts = EvalOptions(out=Path(tmp) / "out", mode="oracle", desktops=args.desktops)
        t0 = time.monotonic()
        run = await run_suite(suite, opts, suite_label=str(suite))
        wall = time.monotonic() - t0
    ran = [r for r in run.results if r.status in ("pass", "fail")]
    passed = sum(r.status == "pass" for r in run.results)
    print(f"suite {suite}: {len(run.results)} tasks, {passed} pass, desktops {args.desktops}")
    print(f"wall time {wall:.1f} s ({wall / max(1, len(run.results)):.2f} s per task)")
    for name in ("reset_s", "setup_s", "agent_s", "check_s", "report_s"):
        print(f"  {name:<10} {_stats([getattr(r.timings, name) for r in ran])}")
    print(f"  {'setup+check':<10} {_stats([r.timings.overhead_s for r in ran])}")
    bad = [
        f"{r.id}: {r.status} {r.reason or r.evidence[:80]}"
        for r in run.results
        if r.status != "pass"
    ]
    for line in bad:
        print(f"  not passed: {line}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
