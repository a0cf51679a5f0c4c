"""Replay a recorded run: re-execute its actions on a fresh desktop and compare, or serve its
model turns back as Messages API responses.

:func:`replay_run` starts a new desktop of the recorded native size (and apps), builds the
recorded tool versions, runs every action that was executed in the original run, in order,
and compares each result with the record: ``is_error``, the result text, and the screenshot
(mean absolute pixel difference and the share of pixels that changed by more than
``pixel_threshold``). Where they differ it reports a :class:`Divergence` (step, action, what
differed). No model is called.

A run directory is untrusted (``docs/trajectory-format.md``, "Reading"): it is read through
the one lenient reader (:func:`~deskpilot.agent.trajectory.read_run`; an unreadable step is a
divergence of kind ``"unreadable"``, never an exception), every screenshot path is confined
to the run directory, and recorded bash and text-editor actions (which run on THIS machine,
not on the desktop) are only re-executed when the caller allows it (``host_actions=True``;
``deskpilot replay`` shows :func:`replay_plan` first and asks, or takes ``--yes``), and then
only inside a sandbox directory: the fresh desktop's scratch HOME, or a new temporary
directory (the editor's ``allowed_roots`` is that directory; bash starts there).

:func:`recorded_responses` turns the recorded assistant turns into Messages API response
bodies, in order, for :class:`deskpilot.testing.FakeModelServer` (``responses=``), so the
whole loop can run offline against a recorded model (``deskpilot run --replay DIR``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..prompt import Image, ToolCall, ToolResult
from .imagefiles import UnreadableImage, decode_image, open_image
from .records import ActionRecord, RunStart
from .report.marks import action_summary
from .trajectory import Run, Unreadable, read_run

log = logging.getLogger("deskpilot.agent")

__all__ = [
    "HOST_TOOLS",
    "MAX_REPLAY_PIXELS",
    "Divergence",
    "PlannedAction",
    "ReplayReport",
    "compare_images",
    "format_plan",
    "recorded_responses",
    "replay_plan",
    "replay_run",
]

MAX_REPLAY_PIXELS = 7680 * 4320
"""Largest desktop (width x height, pixels) a replay starts: 8K."""
HOST_TOOLS = frozenset({"bash", "str_replace_editor", "str_replace_based_edit_tool"})
"""Tools whose actions run on this machine (not on the desktop) when replayed."""


@dataclass(slots=True, frozen=True)
class Divergence:
    """One place where the replay differed from the record.

    Attributes:
        step: the step index (1-based; 0 = the initial screenshot or the run as a whole).
        index: the tool call's index in the step (0-based; -1 for the initial screenshot or
            a whole step).
        action: the tool name and action, e.g. ``"computer left_click"``.
        kind: ``"is_error"``, ``"text"``, ``"screenshot"``, ``"screenshot_size"``,
            ``"missing_screenshot"``, ``"setup"`` or ``"unreadable"`` (a line of the
            trajectory could not be read; its actions were not replayed).
        detail: a sentence saying what differed.
        mean_abs_diff: mean absolute difference per channel, 0-255 (screenshots only).
        changed_share: share of pixels (0-1) changed by more than the threshold.
    """

    step: int
    index: int
    action: str
    kind: str
    detail: str
    mean_abs_diff: float | None = None
    changed_share: float | None = None

    def __str__(self) -> str:
        return f"step {self.step} action {self.index} ({self.action}): {self.kind}: {self.detail}"


@dataclass(slots=True, frozen=True)
class PlannedAction:
    """One action a replay would run.

    Attributes:
        step / index: where it is in the record (1-based step, 0-based call).
        label: the tool and action, e.g. ``"computer left_click"``, ``"bash"``.
        summary: a one-line description (``bash: rm -rf build``; shortened).
        host: True for bash and text-editor actions, which run on this machine (inside the
            sandbox directory), not on the desktop.
        detail: for host actions, what will run IN FULL: the bash command, or the editor
            command, path and text; empty for desktop actions.
    """

    step: int
    index: int
    label: str
    summary: str
    host: bool
    detail: str = ""


@dataclass(slots=True)
class ReplayReport:
    """What :func:`replay_run` found.

    Attributes:
        run_dir: the recorded run.
        actions_replayed: actions re-executed.
        screenshots_compared: screenshots compared.
        divergences: every difference, in order.
        skipped: host actions (bash, editor) not replayed because ``host_actions`` was False.
        max_changed_share / max_mean_abs_diff: the largest screenshot differences seen
            (also below the thresholds).
        duration_s: wall-clock seconds of the replay.
        sandbox: the directory bash and editor actions were confined to (None when none ran).
    """

    run_dir: Path
    actions_replayed: int = 0
    screenshots_compared: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    skipped: list[PlannedAction] = field(default_factory=list)
    max_changed_share: float = 0.0
    max_mean_abs_diff: float = 0.0
    duration_s: float = 0.0
    sandbox: Path | None = None

    @property
    def ok(self) -> bool:
        """True when nothing diverged."""
        return not self.divergences

    def format(self) -> str:
        """A short human-readable summary, one line per divergence."""
        head = (
            f"Replayed {self.actions_replayed} actions of {self.run_dir} in "
            f"{self.duration_s:.1f} s; compared {self.screenshots_compared} screenshots "
            f"(largest change {self.max_changed_share:.2%} of pixels)."
        )
        if self.skipped:
            head += (
                f" {len(self.skipped)} bash/editor action(s) were not replayed "
                "(host actions not allowed)."
            )
        if self.ok:
            return head + " No divergence."
        return "\n".join(
            [head, f"{len(self.divergences)} divergence(s):"] + [f"  {d}" for d in self.divergences]
        )


def _describe(action: ActionRecord) -> str:
    if action.name == "computer" and "action" in action.input:
        return f"computer {action.input['action']}"
    if action.toolset_name:
        return f"{action.toolset_name} {action.name}"
    return action.name


def _is_host(action: ActionRecord) -> bool:
    return action.toolset_name is None and action.name in HOST_TOOLS


def _unreadable(u: Unreadable) -> Divergence:
    return Divergence(
        u.index if u.index is not None else 0,
        -1,
        "(unreadable line)",
        "unreadable",
        f"{u.sentence()} Its actions were not replayed.",
    )


def _visible(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``), so a recorded command
    cannot hide itself from the terminal (ANSI sequences, carriage returns)."""
    return "".join(
        c
        if c.isprintable() or c in "\n\t"
        else f"\\x{ord(c):02x}"
        if ord(c) < 256
        else f"\\u{ord(c):04x}"
        for c in text
    )


def _detail(action: ActionRecord) -> str:
    inp = action.input
    if action.name == "bash":
        return "(restart the shell)" if inp.get("restart") else str(inp.get("command", ""))
    parts = [f"{key}: {inp[key]}" for key in ("command", "path") if key in inp]
    parts += [f"{key}:\n{inp[key]}" for key in sorted(inp) if key not in ("command", "path")]
    return "\n".join(parts)


def replay_plan(run: Run) -> list[PlannedAction]:
    """The actions :func:`replay_run` would execute for ``run``, in order (the actions that
    were executed in the original run; declined, interrupted and halted ones are left out)."""
    return [
        PlannedAction(
            step.index,
            k,
            _describe(a),
            action_summary(a),
            _is_host(a),
            _detail(a) if _is_host(a) else "",
        )
        for step in run.readable_steps
        for k, a in enumerate(step.actions)
        if a.executed
    ]


def format_plan(plan: list[PlannedAction], limit: int = 200, detail_chars: int = 4000) -> str:
    """The plan as text for a terminal: one line per action (at most ``limit`` desktop
    actions; EVERY host action), each host action flagged and followed by what it runs, in
    full up to ``detail_chars`` characters, control characters made visible."""
    lines: list[str] = []
    hidden = 0
    for n, p in enumerate(plan):
        if not p.host and n >= limit:
            hidden += 1
            continue
        summary = _visible(p.summary.replace("\n", " "))[:100]
        if not p.host:
            lines.append(f"  step {p.step:>3}.{p.index}  {summary}")
            continue
        lines.append(f"  step {p.step:>3}.{p.index}  {summary}   [runs on THIS machine]")
        text = _visible(p.detail)
        if len(text) > detail_chars:
            text = text[:detail_chars] + f"\n... ({len(text) - detail_chars} more characters)"
        lines.extend(f"      | {line}" for line in text.split("\n"))
    if hidden:
        lines.append(f"  ... and {hidden} more desktop action(s)")
    return "\n".join(lines)


def compare_images(
    recorded: bytes, replayed: bytes, *, pixel_threshold: int = 32
) -> tuple[tuple[int, int], tuple[int, int], float, float]:
    """Compare two encoded images (each bounded as in :mod:`deskpilot.agent.imagefiles`).

    Returns:
        ``(recorded size, replayed size, mean absolute difference per channel (0-255),
        share of pixels (0-1) whose largest channel difference exceeds pixel_threshold)``;
        the two numbers are ``inf``/``1.0`` when the sizes differ.

    Raises:
        UnreadableImage: an image is over the size limits or not decodable.
    """
    return _compare(
        decode_image(recorded, "the recorded screenshot"),
        decode_image(replayed, "the replayed screenshot"),
        pixel_threshold,
    )


def _compare(
    a_img: Any, b_img: Any, pixel_threshold: int
) -> tuple[tuple[int, int], tuple[int, int], float, float]:
    import numpy as np

    sa, sb = a_img.size, b_img.size
    if sa != sb:
        return sa, sb, float("inf"), 1.0
    a = np.asarray(a_img, dtype=np.int16)
    b = np.asarray(b_img, dtype=np.int16)
    diff = np.abs(a - b)
    mean = float(diff.mean())
    changed = float((diff.max(axis=2) > pixel_threshold).mean())
    return sa, sb, mean, changed


def _default_factory(**kwargs: Any) -> Any:
    from ..desktop.local import LocalDesktop

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
    from ..computer_use.computer import ComputerTool

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
        from ..computer_use.editor import EditorTool

        editor = EditorTool(version=versions.editor, allowed_roots=[sandbox])
        tools[editor.name] = editor
    if sandbox is not None and versions.bash:
        from ..computer_use.bash import BashTool

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


def _check_image(
    run: Run,
    report: ReplayReport,
    opts: _Options,
    where: tuple[int, int, str],
    rel: str | None,
    img: Image | None,
) -> None:
    step, index, label = where
    if not rel:
        return
    path = run.path(rel)
    if path is None:
        log.warning("Recorded screenshot %s is missing or outside the run; not compared.", rel)
        return
    if img is None:
        report.divergences.append(
            Divergence(
                step, index, label, "missing_screenshot", "the replay produced no screenshot."
            )
        )
        return
    try:
        sa, sb, mean, changed = _compare(
            open_image(path),
            decode_image(img.data, "the replayed screenshot"),
            opts.pixel_threshold,
        )
    except UnreadableImage as exc:
        report.divergences.append(Divergence(step, index, label, "screenshot", str(exc)))
        return
    report.screenshots_compared += 1
    if sa != sb:
        report.divergences.append(
            Divergence(
                step,
                index,
                label,
                "screenshot_size",
                f"the recorded screenshot is {sa[0]}x{sa[1]}, the replay's {sb[0]}x{sb[1]}.",
            )
        )
        return
    report.max_changed_share = max(report.max_changed_share, changed)
    report.max_mean_abs_diff = max(report.max_mean_abs_diff, mean)
    if changed > opts.max_changed_share:
        report.divergences.append(
            Divergence(
                step,
                index,
                label,
                "screenshot",
                f"{changed:.2%} of the pixels differ (mean difference {mean:.1f}/255); "
                f"the limit is {opts.max_changed_share:.2%}.",
                mean,
                changed,
            )
        )


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
            _check_image(
                run,
                report,
                opts,
                (0, -1, "initial screenshot"),
                start.initial_screenshot,
                await _screenshot_of(computer, toolset),
            )
        for entry in run.steps:
            if opts.stop_at_first and report.divergences:
                return
            if isinstance(entry, Unreadable):
                report.divergences.append(_unreadable(entry))
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
    label = _describe(action)
    if _is_host(action) and not opts.host_actions:
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
        _check_image(run, report, opts, (n, k, label), action.screenshot, img)


def recorded_responses(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The recorded assistant turns as Messages API response bodies, in order.

    Each is ``{"id", "type": "message", "role": "assistant", "model", "content",
    "stop_reason", "stop_sequence": None, "usage": {"input_tokens", "output_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens"}}``; steps whose call failed
    (API errors) and unreadable steps are left out. Feed them to
    ``FakeModelServer(responses=...)`` to replay the model offline.

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
    """
    run = read_run(run_dir)
    start = run.start
    model = (start.model_id or start.model if start else None) or "replay"
    out: list[dict[str, Any]] = []
    for step in run.readable_steps:
        resp = step.response
        if resp.is_error or not resp.content:
            continue
        usage = resp.usage
        out.append(
            {
                "id": f"msg_replay_{step.index:04d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": resp.content,
                "stop_reason": resp.stop_reason or "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cache_read_input_tokens": usage.cache_read_tokens,
                    "cache_creation_input_tokens": usage.cache_write_tokens,
                },
            }
        )
    return out
