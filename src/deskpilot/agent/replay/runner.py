"""Re-executing a recorded run on a fresh desktop (:func:`replay_run`)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ...errors import ConfigError
from ...prompt import Image, ToolCall, ToolResult
from ..records import ActionRecord, RunStart
from ..report.marks import action_summary
from ..trajectory import Run, Unreadable, read_run
from .compare import Divergence, ReplayReport, check_image, unreadable_divergence
from .plan import PlannedAction, action_label, is_host, replay_plan

log = logging.getLogger("deskpilot.agent")

__all__ = ["MAX_REPLAY_PIXELS", "replay_run"]

MAX_REPLAY_PIXELS = 7680 * 4320
"""Largest desktop (width x height, pixels) a replay starts: 8K."""


def _default_factory(**kwargs: Any) -> Any:
    from ...desktop.local import LocalDesktop

    return LocalDesktop(**kwargs)


def _normal_text(text: str | None) -> str:
    return "\n".join(line.rstrip() for line in (text or "").strip().splitlines())


@runtime_checkable
class _HasHome(Protocol):
    """A desktop with a scratch HOME of its own (``LocalDesktop``)."""

    @property
    def home(self) -> Path | None: ...


@dataclass(slots=True)
class _Options:
    max_changed_share: float
    pixel_threshold: int
    compare_text: bool
    stop_at_first: bool
    host_actions: bool
    sandbox_dir: Path | None


async def replay_run(
    run_dir: str | os.PathLike[str],
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
        run_dir: a run directory written by :class:`~deskpilot.Agent`.
        desktop_factory: ``factory(width=, height=[, apps=])`` returning a desktop (an async
            context manager implementing the Computer protocol, or a plain Computer such
            as ``FakeComputer``); default ``LocalDesktop``. Called with the recorded native
            size (and apps when recorded).
        max_changed_share: a screenshot diverges when more than this share of its pixels
            (0-1) changed by more than ``pixel_threshold`` (0-255 per channel).
        pixel_threshold: per-channel difference below which a pixel counts as unchanged.
        compare_text: also compare result texts (whitespace at line ends ignored).
        stop_at_first: stop at the first divergence.
        host_actions: also re-execute recorded bash and text-editor actions (they run on
            THIS machine); default False: they are listed in ``report.skipped``. Show the
            user :func:`replay_plan` and ask before passing True.
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
    run = read_run(run_dir)
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


def _sandbox(desktop: Any, opts: _Options) -> tuple[Path, bool]:
    """(the sandbox directory, whether this replay created it and must remove it)."""
    if opts.sandbox_dir is not None:
        opts.sandbox_dir.mkdir(parents=True, exist_ok=True)
        return opts.sandbox_dir.resolve(), False
    if isinstance(desktop, _HasHome) and isinstance(desktop.home, Path):
        return desktop.home.resolve(), False
    return Path(tempfile.mkdtemp(prefix="deskpilot-replay-")).resolve(), True


def _build_tools(desktop: Any, start: RunStart, sandbox: Path | None) -> tuple[Any, dict[str, Any]]:
    from ...computer_use.computer import ComputerTool

    versions = start.tool_versions
    computer = None
    tools: dict[str, Any] = {}
    if versions.computer:
        kw: dict[str, Any] = {}
        if start.image_tier:
            kw["image_tier"] = start.image_tier
        if start.model_size:
            kw["target_size"] = tuple(start.model_size)
        computer = ComputerTool(desktop, versions.computer, **kw)
        tools[computer.name] = computer
    if sandbox is not None and versions.editor:
        from ...computer_use.editor import EditorTool

        editor = EditorTool(version=versions.editor, allowed_roots=[sandbox])
        tools[editor.name] = editor
    if sandbox is not None and versions.bash:
        from ...computer_use.bash import BashTool

        bash = BashTool(version=versions.bash, env=getattr(desktop, "env", None), cwd=sandbox)
        tools[bash.name] = bash
    return computer, tools


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
    needs_sandbox = opts.host_actions and any(p.host for p in plan)
    sandbox, owned = _sandbox(desktop, opts) if needs_sandbox else (None, False)
    report.sandbox = sandbox
    try:
        computer, tools = _build_tools(desktop, start, sandbox)
    except (ConfigError, ValueError, TypeError) as exc:
        report.divergences.append(
            Divergence(0, -1, "setup", "setup", f"the recorded tools are refused: {exc}")
        )
        if owned and sandbox is not None:
            shutil.rmtree(sandbox, ignore_errors=True)
        return
    toolset = bool(
        computer is not None and computer.definition.get("type", "").startswith("computer_toolset")
    )
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
                    run, report, opts, computer, tools, toolset, entry.index, k, action
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
    computer: Any,
    tools: dict[str, Any],
    toolset: bool,
    n: int,
    k: int,
    action: ActionRecord,
) -> None:
    label = action_label(action)
    if is_host(action) and not opts.host_actions:
        report.skipped.append(PlannedAction(n, k, label, action_summary(action), True))
        return
    call = ToolCall(action.tool_use_id, action.name, dict(action.input), action.toolset_name)
    tool = computer if call.toolset_name == "computer" else tools.get(call.name)
    if tool is None:
        report.divergences.append(
            Divergence(
                n,
                k,
                label,
                "setup",
                f"no executor for tool {call.name[:80]!r} (custom tools are not replayed).",
            )
        )
        return
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
