"""The checker: run a task's post-config, getters and metrics; one score and its evidence.

The combination rule is OSWorld's ``DesktopEnv.evaluate``
(https://github.com/xlang-ai/OSWorld, desktop_env/desktop_env.py): the ``postconfig`` steps
run first; a single metric's score is the task's score; with a list of metrics and ``conj``
``"and"`` the first 0 ends the check with 0 and otherwise the score is the mean, with
``"or"`` the first 1 ends it with 1 and otherwise the score is the maximum. A task *passes*
when its score is 1.0.

Infeasible tasks: OSWorld's ``infeasible`` metric scores 1 only when the agent gave up with
``FAIL``; here the agent declares a task infeasible with a final answer starting with
``INFEASIBLE`` (:data:`INFEASIBLE_PROMPT` says so in the eval runs' system prompt). A task
whose checker is not ``infeasible`` scores 0 when the agent declared it infeasible,
whatever its metrics say.

Typical use by a runner, after the agent's run::

    ctx = EvalContext.for_task(task, desktop, work_dir=out / task.id, computer=desktop,
                               final_text=result.final_text)
    verdict = await check_task(task, ctx)
    verdict.passed, verdict.score, verdict.evidence
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from .context import INFEASIBLE_MARK, EvalContext, EvalError, tail
from .getters import get_value
from .metrics import call_metric
from .setup import run_setup
from .task import Task

__all__ = ["INFEASIBLE_PROMPT", "CheckResult", "Evidence", "check_task"]

INFEASIBLE_PROMPT = (
    "If the task cannot be done on this computer (it is impossible, or it needs something "
    "that is not available here), do not try to work around it: reply with a final answer "
    f"that starts with the word {INFEASIBLE_MARK}, followed by the reason."
)
"""The sentence eval runs add to the system prompt: how to declare a task infeasible."""


class Evidence(BaseModel):
    """What one metric compared: its name, score, and what each getter read."""

    func: str
    score: float
    detail: str
    result: str = ""
    expected: str = ""


class CheckResult(BaseModel):
    """The checker's verdict on one task run.

    Attributes:
        score: 0.0-1.0 (see the module doc for the combination rule).
        passed: ``score`` is 1.0.
        evidence: one entry per metric that ran, in order.
        summary: one sentence for tables and reports.
        declared_infeasible: the agent's final answer started with ``INFEASIBLE``.
    """

    score: float
    passed: bool
    evidence: list[Evidence] = Field(default_factory=list)
    summary: str
    declared_infeasible: bool = False


def _verdict(score: float, evidence: list[Evidence], summary: str, declared: bool) -> CheckResult:
    score = min(1.0, max(0.0, score))
    return CheckResult(
        score=score,
        passed=score >= 1.0 - 1e-9,
        evidence=evidence,
        summary=summary,
        declared_infeasible=declared,
    )


async def check_task(task: Task, ctx: EvalContext) -> CheckResult:
    """Check the desktop after the agent's run of ``task`` (already localized to the
    desktop's HOME, see :meth:`Task.localized <deskpilot.eval.task.Task.localized>`).

    Args:
        task: the task (must be runnable: :attr:`Task.unsupported` None).
        ctx: the run's context, with ``final_text`` set to the agent's final answer.

    Returns:
        A :class:`CheckResult`.

    Raises:
        EvalError: the task is unsupported or has no evaluator.
        SetupError: a post-config step or a getter's command could not run (the runner
            reports the task as ``error``, not ``fail``).
    """
    if task.unsupported or task.evaluator is None:
        raise EvalError(
            f"Task {task.id} cannot be checked here: {task.unsupported or 'no evaluator'}."
        )
    declared = ctx.declared_infeasible
    ev = task.evaluator
    if ev.func == "infeasible":
        ok = declared
        note = (
            f"the agent declared the task infeasible: {tail(ctx.final_text or '', 200)!r}"
            if ok
            else f"the task is infeasible but the final answer {tail(ctx.final_text or '', 200)!r} "
            f"does not start with {INFEASIBLE_MARK}"
        )
        only = [Evidence(func="infeasible", score=float(ok), detail=note)]
        return _verdict(float(ok), only, note, declared)
    if declared:
        note = f"the agent declared a feasible task infeasible: {tail(ctx.final_text or '', 200)!r}"
        return _verdict(0.0, [Evidence(func="infeasible", score=0.0, detail=note)], note, declared)
    if ev.postconfig:
        await run_setup(ctx, ev.postconfig, where="postconfig")
    checks = ev.checks()
    scores: list[float] = []
    evidence: list[Evidence] = []
    for check in checks:
        if check.func == "infeasible":
            raise EvalError("The infeasible metric cannot be combined with others.")
        assert check.result is not None  # classify() guarantees it
        got = await get_value(ctx, check.result)
        expected: Any = None
        expected_note = ""
        if check.expected is not None:
            want = await get_value(ctx, check.expected)
            expected, expected_note = want.value, want.evidence
        score = await asyncio.to_thread(
            call_metric,
            check.func,
            got.value,
            expected,
            check.options,
            has_expected=check.expected is not None,
        )
        evidence.append(
            Evidence(
                func=check.func,
                score=score.value,
                detail=score.evidence,
                result=got.evidence,
                expected=expected_note,
            )
        )
        scores.append(score.value)
        if len(checks) > 1 and ev.conj == "and" and score.value == 0.0:
            return _verdict(0.0, evidence, f"{check.func} scored 0: {score.evidence}", declared)
        if len(checks) > 1 and ev.conj == "or" and score.value >= 1.0:
            return _verdict(1.0, evidence, f"{check.func} scored 1: {score.evidence}", declared)
    total = sum(scores) / len(scores) if ev.conj == "and" else max(scores)
    summary = (
        evidence[0].detail
        if len(evidence) == 1
        else (
            f"{len(evidence)} metrics ({ev.conj}): "
            + ", ".join(f"{e.func}={e.score:.2f}" for e in evidence)
        )
    )
    return _verdict(total, evidence, summary, declared)
