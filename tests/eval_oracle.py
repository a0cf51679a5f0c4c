"""Run eval tasks end to end without a model: the real client, agent loop and desktop, with
the fake model server serving either the task's ``solution`` (oracle) or one "Done." answer
(a do-nothing model), then the task's checker.

Used by tests/test_eval_suite.py, and from a shell to try tasks while writing them::

    .venv/bin/python tests/eval_oracle.py src/deskpilot/eval/suites/basic [ID_SUBSTRING ...]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from deskpilot import Agent, LLMClient, LocalDesktop
from deskpilot.agent.prompts import default_system_prompt
from deskpilot.eval import INFEASIBLE_PROMPT, EvalContext, Task, check_task, load_tasks, run_setup
from deskpilot.eval.context import SetupError
from deskpilot.testing import FakeModelServer, text_response

SCREEN = (1280, 800)


@dataclass
class Outcome:
    task_id: str
    mode: str
    passed: bool
    score: float
    summary: str
    steps: int
    setup_s: float
    agent_s: float
    check_s: float


async def run_one(task: Task, desktop: LocalDesktop, mode: str, work: Path) -> Outcome:
    """Reset the desktop, set the task up, run the agent (``mode``: ``oracle`` or ``nothing``),
    check; every failure becomes a failed outcome with the reason."""
    await desktop.reset()
    t0 = time.perf_counter()
    local = task.localized(desktop.resolve_path("~"))
    ctx = EvalContext.for_task(
        local, desktop, work_dir=work / f"{task.id}-{mode}", computer=desktop
    )
    try:
        await run_setup(ctx, local.config)
    except SetupError as exc:
        return Outcome(task.id, mode, False, 0.0, f"setup: {exc}", 0, 0, 0, 0)
    t1 = time.perf_counter()
    responses = local.solution_responses() if mode == "oracle" else [text_response("Done.")]
    prompt = default_system_prompt(*SCREEN) + "\n" + INFEASIBLE_PROMPT
    async with FakeModelServer(responses=responses) as server:
        client = LLMClient(
            "claude-sonnet-4-5",
            base_url=server.url,
            api_key="oracle-key-not-a-secret",
            max_requests_per_minute=6000,
            max_tokens_per_minute=100_000_000,
        )
        try:
            agent = Agent(
                client,
                computer=desktop,
                max_turns=len(responses) + 1,
                out_dir=os.environ.get("EVAL_ORACLE_RUNS") or None,
                run_name=f"{task.id}-{mode}" if os.environ.get("EVAL_ORACLE_RUNS") else None,
                system_prompt=prompt,
            )
            result = await agent.run(local.instruction)
        finally:
            await client.close()
    t2 = time.perf_counter()
    ctx.final_text = result.final_text
    if result.stop_reason != "end_turn":
        note = f"agent stopped with {result.stop_reason}: {result.error}"
    else:
        note = ""
    try:
        verdict = await check_task(local, ctx)
    except SetupError as exc:
        return Outcome(
            task.id, mode, False, 0.0, f"check: {exc} {note}", result.steps, t1 - t0, t2 - t1, 0
        )
    t3 = time.perf_counter()
    return Outcome(
        task.id,
        mode,
        verdict.passed,
        verdict.score,
        (note + " " + verdict.summary).strip(),
        result.steps,
        t1 - t0,
        t2 - t1,
        t3 - t2,
    )


async def run_suite(path: str | Path, patterns: list[str], modes: tuple[str, ...]) -> list[Outcome]:
    tasks = [t for t in load_tasks(path) if not patterns or any(p in t.id for p in patterns)]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="deskpilot-oracle-") as tmp:
        async with LocalDesktop(*SCREEN) as desktop:
            for task in tasks:
                for mode in modes:
                    o = await run_one(task, desktop, mode, Path(tmp))
                    outcomes.append(o)
                    print(
                        f"{'PASS' if o.passed else 'fail'} {mode:7s} {o.task_id:32s} steps={o.steps:2d} "
                        f"setup={o.setup_s:.2f}s agent={o.agent_s:.2f}s check={o.check_s:.2f}s  {o.summary[:150]}",
                        flush=True,
                    )
    return outcomes


if __name__ == "__main__":
    args = sys.argv[1:]
    modes: tuple[str, ...] = ("oracle", "nothing")
    if args and args[0] in ("--oracle", "--nothing"):
        modes = (args.pop(0)[2:],)
    asyncio.run(run_suite(args[0], args[1:], modes))
