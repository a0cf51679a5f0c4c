"""Re-executing a recorded run on a fresh desktop (:func:`replay_run`)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...prompt import Image, ToolCall, ToolResult
from ..records import ActionRecord, RunStart, ToolVersions
from ..trajectory import Run, Unreadable, read_run
from .compare import Divergence, ReplayReport, check_image, unreadable_divergence
from .plan import planned, replay_plan, route
from .tools import replay_sandbox, replay_tools

log = logging.getLogger("deskpilot.agent")

__all__ = ["MAX_REPLAY_PIXELS", "replay_run"]

MAX_REPLAY_PIXELS = 7680 * 4320
"""Largest desktop (width x height, pixels) a replay starts: 8K."""


def _default_factory(**kwargs: Any) -> Any:
    from ...desktop.local import LocalDesktop

    return LocalDesktop(**kwargs)


def _normal_text(text: str | None) -> str:
    return "\n".join(line.rstrip() for line in (text or "").strip().splitlines())


@dataclass(slots=True)
class _Options:
    max_changed_share: float
    pixel_threshold: int
    compare_text: bool
    stop_at_first: bool
    host_actions: bool
    sandbox_dir: Path | None


async def replay_run(
    run_dir: Run | str | os.PathLike[str],
    desktop_factory: Callable[..., Any] | None = None,
    *,
    max_changed_share: float = 0.005,
    pixel_threshold: int = 32,
    compare_text: bool = True,
    stop_at_first: bool = False,
    host_actions: bool = False,
    sandbox_dir: str | os.PathLike[str] | None = None,
) -> ReplayReport:
    """Re-execute a recorded run's actions on a fresh desktop and report divergences.

    Args:
        run_dir: a run directory written by :class:`~deskpilot.Agent`, or a :class:`Run`
            already read (:func:`~deskpilot.agent.trajectory.read_run`): pass the Run whose
            :func:`replay_plan` the user approved, so exactly that is replayed (the directory
            is not read again; its screenshots are, through ``Run.path``).
        desktop_factory: ``factory(width=, height=[, apps=])`` returning a desktop (an async
            context manager implementing the Computer protocol, or a plain Computer such
            as ``FakeComputer``); default ``LocalDesktop``. Called with the recorded native
            size (and apps when recorded).
        max_changed_share: a screenshot diverges when more than this share of its pixels
            (0-1) changed by more than ``pixel_threshold`` (0-255 per channel).
        pixel_threshold: per-channel difference below which a pixel counts as unchanged.
        compare_text: also compare result texts (whitespace at line ends ignored).
        stop_at_first: stop at the first divergence.
        host_actions: also re-execute the calls that need consent (see
            :mod:`~deskpilot.agent.replay.plan`): recorded bash and text-editor calls (they
            run on THIS machine) and keyboard input (a terminal on the desktop runs what is
            typed, on THIS machine); default False: they are listed in ``report.skipped``.
            Show the user :func:`replay_plan` and ask before passing True.
        sandbox_dir: the directory bash starts in and the editor is confined to; default the
            fresh desktop's scratch HOME (``LocalDesktop.home``), else a new temporary
            directory removed afterwards.

    Returns:
        A :class:`ReplayReport`; ``report.ok`` is True when nothing diverged. Content that
        cannot be replayed (an unreadable line, a run_start without the native size) is
        reported as a divergence, not raised.

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
    """
    t0 = time.perf_counter()
    run = run_dir if isinstance(run_dir, Run) else read_run(run_dir)
    report = ReplayReport(run_dir=run.run_dir)
    opts = _Options(
        max_changed_share,
        pixel_threshold,
        compare_text,
        stop_at_first,
        host_actions,
        Path(sandbox_dir) if sandbox_dir is not None else None,
    )
    start = run.start
    problem = _unusable(start)
    if problem is not None:
        report.divergences.append(Divergence(0, -1, "setup", "setup", problem))
    else:
        assert start is not None
        kwargs: dict[str, Any] = {}
        if start.native_size is not None:
            kwargs["width"], kwargs["height"] = start.native_size
        if start.apps:
            kwargs["apps"] = tuple(start.apps)
        factory = desktop_factory or _default_factory
        try:
            desktop_cm = factory(**kwargs)
        except (ConfigError, ValueError, TypeError) as exc:
            report.divergences.append(
                Divergence(0, -1, "setup", "setup", f"the recorded desktop is refused: {exc}")
            )
        else:
            async with _entered(desktop_cm) as desktop:
                await _replay_on(desktop, run, start, report, opts)
    report.duration_s = time.perf_counter() - t0
    return report


def _unusable(start: RunStart | None) -> str | None:
    if start is None:
        return (
            "the run has no readable run_start line; only runs recorded by deskpilot's Agent "
            "can be replayed."
        )
    if start.tool_versions.computer and start.native_size is None:
        return "run_start has no readable native_size, so the desktop cannot be recreated."
    if start.native_size is not None and start.native_size[0] * start.native_size[1] > (
        MAX_REPLAY_PIXELS
    ):
        w, h = start.native_size
        return f"the recorded desktop ({w}x{h}) is larger than {MAX_REPLAY_PIXELS:,} pixels."
    return None


@contextlib.asynccontextmanager
async def _entered(desktop_cm: Any) -> AsyncIterator[Any]:
    if hasattr(desktop_cm, "__aenter__"):
        async with desktop_cm as entered:
            yield entered if entered is not None else desktop_cm
    else:  # a plain Computer (e.g. FakeComputer): nothing to start or stop
        yield desktop_cm


async def _screenshot_of(computer: Any, toolset: bool) -> Image | None:
    call = (
        ToolCall("replay_screenshot", "screenshot", {}, toolset_name="computer")
        if toolset
        else ToolCall("replay_screenshot", "computer", {"action": "screenshot"})
    )
    result = await computer.execute(call)
    return result.images[0] if result.images else None


async def _replay_on(
    desktop: Any, run: Run, start: RunStart, report: ReplayReport, opts: _Options
) -> None:
    plan = replay_plan(run)
    needs_sandbox = opts.host_actions and any(p.reach == "machine" for p in plan)
    sandbox, owned = replay_sandbox(desktop, opts.sandbox_dir) if needs_sandbox else (None, False)
    report.sandbox = sandbox
    try:
        tools = replay_tools(desktop, start, sandbox)
    except (ConfigError, ValueError, TypeError) as exc:
        report.divergences.append(
            Divergence(0, -1, "setup", "setup", f"the recorded tools are refused: {exc}")
        )
        if owned and sandbox is not None:
            shutil.rmtree(sandbox, ignore_errors=True)
        return
    computer = tools.get("computer")
    toolset = bool(computer is not None and computer.toolset)
    try:
        if (
            computer is not None
            and start.model_size
            and tuple(computer.model_size) != tuple(start.model_size)
        ):
            report.divergences.append(
                Divergence(
                    0,
                    -1,
                    "setup",
                    "setup",
                    f"the replay's screenshots are {list(computer.model_size)} but the record's "
                    f"are {list(start.model_size)}.",
                )
            )
            return
        if computer is not None and start.initial_screenshot:
            check_image(
                run,
                report,
                (0, -1, "initial screenshot"),
                start.initial_screenshot,
                await _screenshot_of(computer, toolset),
                max_changed_share=opts.max_changed_share,
                pixel_threshold=opts.pixel_threshold,
            )
        for entry in run.steps:
            if opts.stop_at_first and report.divergences:
                return
            if isinstance(entry, Unreadable):
                report.divergences.append(unreadable_divergence(entry))
                continue
            for k, action in enumerate(entry.actions):
                if opts.stop_at_first and report.divergences:
                    return
                if not action.executed:
                    continue
                await _replay_action(
                    run, report, opts, tools, start.tool_versions, toolset, entry.index, k, action
                )
    finally:
        for t in tools.values():
            try:
                await t.aclose()
            except Exception:  # closing a tool must not hide the report
                log.debug("closing %s failed", t, exc_info=True)
        if owned and sandbox is not None:
            shutil.rmtree(sandbox, ignore_errors=True)


async def _replay_action(
    run: Run,
    report: ReplayReport,
    opts: _Options,
    tools: dict[str, Any],
    versions: ToolVersions,
    toolset: bool,
    n: int,
    k: int,
    action: ActionRecord,
) -> None:
    plan = planned(n, k, action, versions)
    label = plan.label
    if plan.needs_consent and not opts.host_actions:
        report.skipped.append(plan)
        return
    where = route(action.name, action.toolset_name, dict(action.input), versions)
    tool = tools.get(where.kind) if where.kind is not None else None
    if tool is None:
        detail = (
            f"not replayed: {where.reason}."
            if where.reach == "unsupported"
            else f"no executor for tool {action.name[:80]!r} (its version was not recorded)."
        )
        report.divergences.append(Divergence(n, k, label, "unsupported", detail))
        return
    computer = tools.get("computer")
    call = ToolCall(action.tool_use_id, action.name, dict(action.input), action.toolset_name)
    result: ToolResult = await tool.execute(call)
    report.actions_replayed += 1
    if bool(result.is_error) != action.is_error:
        report.divergences.append(
            Divergence(
                n,
                k,
                label,
                "is_error",
                f"recorded is_error={action.is_error}, replay "
                f"is_error={bool(result.is_error)} ({result.text[:200]!r}).",
            )
        )
    elif opts.compare_text and _normal_text(result.text) != _normal_text(action.text):
        report.divergences.append(
            Divergence(
                n,
                k,
                label,
                "text",
                f"recorded {action.text[:200]!r}, replay {result.text[:200]!r}.",
            )
        )
    if action.screenshot:
        img = result.images[0] if result.images else None
        if img is None and computer is not None:
            img = await _screenshot_of(computer, toolset)
        check_image(
            run,
            report,
            (n, k, label),
            action.screenshot,
            img,
            max_changed_share=opts.max_changed_share,
            pixel_threshold=opts.pixel_threshold,
        )
