"""Replay a recorded run: re-execute its actions on a fresh desktop and compare, or serve its
model turns back as Messages API responses.

:func:`replay_run` starts a new desktop of the recorded native size (and apps), builds the
recorded tool versions, runs every action that was executed in the original run, in order,
and compares each result with the record: ``is_error``, the result text, and the screenshot
(mean absolute pixel difference and the share of pixels that changed by more than
``pixel_threshold``). Where they differ it reports a :class:`Divergence` (step, action, what
differed). No model is called.

:func:`recorded_responses` turns the recorded assistant turns into Messages API response
bodies, in order, for :class:`deskpilot.testing.FakeModelServer` (``responses=``), so the
whole loop can run offline against a recorded model (``deskpilot run --replay DIR``).
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..prompt import Image, ToolCall, ToolResult
from .trajectory import Trajectory, read_trajectory

log = logging.getLogger("deskpilot.agent")


@dataclass(slots=True, frozen=True)
class Divergence:
    """One place where the replay differed from the record.

    Attributes:
        step: the step index (1-based; 0 = the initial screenshot).
        index: the tool call's index in the step (0-based; -1 for the initial screenshot).
        action: the tool name and action, e.g. ``"computer left_click"``.
        kind: ``"is_error"``, ``"text"``, ``"screenshot"``, ``"screenshot_size"``,
            ``"missing_screenshot"`` or ``"setup"``.
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


@dataclass(slots=True)
class ReplayReport:
    """What :func:`replay_run` found.

    Attributes:
        run_dir: the recorded run.
        actions_replayed: actions re-executed.
        screenshots_compared: screenshots compared.
        divergences: every difference, in order.
        max_changed_share / max_mean_abs_diff: the largest screenshot differences seen
            (also below the thresholds).
        duration_s: wall-clock seconds of the replay.
    """

    run_dir: Path
    actions_replayed: int = 0
    screenshots_compared: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    max_changed_share: float = 0.0
    max_mean_abs_diff: float = 0.0
    duration_s: float = 0.0

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
        if self.ok:
            return head + " No divergence."
        return "\n".join(
            [head, f"{len(self.divergences)} divergence(s):"] + [f"  {d}" for d in self.divergences]
        )


def _describe(action: dict[str, Any]) -> str:
    name = action.get("name", "?")
    inp = action.get("input") or {}
    if name == "computer" and "action" in inp:
        return f"computer {inp['action']}"
    if action.get("toolset_name"):
        return f"{action['toolset_name']} {name}"
    return str(name)


def compare_images(
    recorded: bytes, replayed: bytes, *, pixel_threshold: int = 32
) -> tuple[tuple[int, int], tuple[int, int], float, float]:
    """Compare two encoded images.

    Returns:
        ``(recorded size, replayed size, mean absolute difference per channel (0-255),
        share of pixels (0-1) whose largest channel difference exceeds pixel_threshold)``;
        the two numbers are ``inf``/``1.0`` when the sizes differ.
    """
    import numpy as np
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(recorded)) as a_img, PILImage.open(io.BytesIO(replayed)) as b_img:
        a = np.asarray(a_img.convert("RGB"), dtype=np.int16)
        b = np.asarray(b_img.convert("RGB"), dtype=np.int16)
        sa, sb = a_img.size, b_img.size
    if sa != sb:
        return sa, sb, float("inf"), 1.0
    diff = np.abs(a - b)
    mean = float(diff.mean())
    changed = float((diff.max(axis=2) > pixel_threshold).mean())
    return sa, sb, mean, changed


def _default_factory(**kwargs: Any) -> Any:
    from ..desktop.local import LocalDesktop

    return LocalDesktop(**kwargs)


def _normal_text(text: str | None) -> str:
    return "\n".join(line.rstrip() for line in (text or "").strip().splitlines())


async def replay_run(
    run_dir: str | os.PathLike[str],
    desktop_factory: Callable[..., Any] | None = None,
    *,
    max_changed_share: float = 0.005,
    pixel_threshold: int = 32,
    compare_text: bool = True,
    stop_at_first: bool = False,
) -> ReplayReport:
    """Re-execute a recorded run's actions on a fresh desktop and report divergences.

    Args:
        run_dir: a run directory written by :class:`~deskpilot.Agent`.
        desktop_factory: ``factory(width=, height=[, apps=])`` returning a desktop (an async
            context manager implementing the Computer protocol, or a plain Computer such
            as ``FakeComputer``); default ``LocalDesktop``.
            Called with the recorded native size (and apps when recorded).
        max_changed_share: a screenshot diverges when more than this share of its pixels
            (0-1) changed by more than ``pixel_threshold`` (0-255 per channel).
        pixel_threshold: per-channel difference below which a pixel counts as unchanged.
        compare_text: also compare result texts (whitespace at line ends ignored).
        stop_at_first: stop at the first divergence.

    Returns:
        A :class:`ReplayReport`; ``report.ok`` is True when nothing diverged. Actions that
        were not executed in the original run (declined, interrupted, halted) are skipped.

    Raises:
        ConfigError: ``run_dir`` is not a run directory, or its ``run_start`` lacks the
            native size or tool versions.
    """
    t0 = time.perf_counter()
    traj = read_trajectory(run_dir)
    start = traj.start
    if not start or not start.get("native_size") or not start.get("tool_versions"):
        raise ConfigError(
            f"{traj.run_dir} has no usable run_start line (native_size, tool_versions); "
            "only runs recorded by deskpilot's Agent can be replayed."
        )
    report = ReplayReport(run_dir=traj.run_dir)
    w, h = (int(v) for v in start["native_size"])
    kwargs: dict[str, Any] = {"width": w, "height": h}
    if start.get("apps"):
        kwargs["apps"] = tuple(start["apps"])
    factory = desktop_factory or _default_factory
    desktop_cm = factory(**kwargs)
    if hasattr(desktop_cm, "__aenter__"):
        async with desktop_cm as entered:
            desktop = entered if entered is not None else desktop_cm
            await _replay_on(
                desktop,
                traj,
                report,
                max_changed_share,
                pixel_threshold,
                compare_text,
                stop_at_first,
            )
    else:  # a plain Computer (e.g. FakeComputer): nothing to start or stop
        await _replay_on(
            desktop_cm,
            traj,
            report,
            max_changed_share,
            pixel_threshold,
            compare_text,
            stop_at_first,
        )
    report.duration_s = time.perf_counter() - t0
    return report


def _build_tools(desktop: Any, start: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from ..computer_use.computer import ComputerTool

    versions = start.get("tool_versions") or {}
    computer = None
    tools: dict[str, Any] = {}
    if versions.get("computer"):
        kw: dict[str, Any] = {}
        if start.get("image_tier"):
            kw["image_tier"] = start["image_tier"]
        if start.get("model_size"):
            kw["target_size"] = tuple(start["model_size"])
        computer = ComputerTool(desktop, versions["computer"], **kw)
        tools[computer.name] = computer
    if versions.get("editor"):
        from ..computer_use.editor import EditorTool

        editor = EditorTool(version=versions["editor"])
        tools[editor.name] = editor
    if versions.get("bash"):
        from ..computer_use.bash import BashTool

        bash = BashTool(version=versions["bash"], env=getattr(desktop, "env", None))
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
    desktop: Any,
    traj: Trajectory,
    report: ReplayReport,
    max_changed_share: float,
    pixel_threshold: int,
    compare_text: bool,
    stop_at_first: bool,
) -> None:
    start = traj.start or {}
    computer, tools = _build_tools(desktop, start)
    toolset = bool(
        computer is not None and computer.definition.get("type", "").startswith("computer_toolset")
    )
    try:
        if (
            computer is not None
            and start.get("model_size")
            and list(computer.model_size) != list(start["model_size"])
        ):
            report.divergences.append(
                Divergence(
                    0,
                    -1,
                    "setup",
                    "setup",
                    f"the replay's screenshots are {list(computer.model_size)} but the record's "
                    f"are {start['model_size']}.",
                )
            )
            return

        def check_image(
            step: int, index: int, label: str, rel: str | None, img: Image | None
        ) -> None:
            if not rel:
                return
            path = traj.run_dir / rel
            if not path.is_file():
                log.warning("Recorded screenshot %s is missing; not compared.", path)
                return
            if img is None:
                report.divergences.append(
                    Divergence(
                        step,
                        index,
                        label,
                        "missing_screenshot",
                        "the replay produced no screenshot.",
                    )
                )
                return
            sa, sb, mean, changed = compare_images(
                path.read_bytes(), img.data, pixel_threshold=pixel_threshold
            )
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
            if changed > max_changed_share:
                report.divergences.append(
                    Divergence(
                        step,
                        index,
                        label,
                        "screenshot",
                        f"{changed:.2%} of the pixels differ (mean difference {mean:.1f}/255); "
                        f"the limit is {max_changed_share:.2%}.",
                        mean,
                        changed,
                    )
                )

        if computer is not None and start.get("initial_screenshot"):
            check_image(
                0,
                -1,
                "initial screenshot",
                start["initial_screenshot"],
                await _screenshot_of(computer, toolset),
            )
        for step in traj.steps:
            n = int(step.get("index", 0))
            for k, action in enumerate(step.get("actions") or []):
                if stop_at_first and report.divergences:
                    return
                if not action.get("executed", action.get("approved", False)):
                    continue
                label = _describe(action)
                call = ToolCall(
                    action.get("tool_use_id") or f"replay_{n}_{k}",
                    action.get("name", ""),
                    dict(action.get("input") or {}),
                    action.get("toolset_name"),
                )
                tool = computer if call.toolset_name == "computer" else tools.get(call.name)
                if tool is None:
                    report.divergences.append(
                        Divergence(
                            n,
                            k,
                            label,
                            "setup",
                            f"no executor for tool {call.name!r} (custom tools are not replayed).",
                        )
                    )
                    continue
                result: ToolResult = await tool.execute(call)
                report.actions_replayed += 1
                if bool(result.is_error) != bool(action.get("is_error")):
                    report.divergences.append(
                        Divergence(
                            n,
                            k,
                            label,
                            "is_error",
                            f"recorded is_error={bool(action.get('is_error'))}, replay "
                            f"is_error={bool(result.is_error)} ({result.text[:200]!r}).",
                        )
                    )
                elif compare_text and _normal_text(result.text) != _normal_text(action.get("text")):
                    report.divergences.append(
                        Divergence(
                            n,
                            k,
                            label,
                            "text",
                            f"recorded {str(action.get('text'))[:200]!r}, replay {result.text[:200]!r}.",
                        )
                    )
                if action.get("screenshot"):
                    img = result.images[0] if result.images else None
                    if img is None and computer is not None:
                        img = await _screenshot_of(computer, toolset)
                    check_image(n, k, label, action["screenshot"], img)
    finally:
        for t in tools.values():
            try:
                await t.aclose()
            except Exception:  # closing a tool must not hide the report
                log.debug("closing %s failed", t, exc_info=True)


def recorded_responses(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The recorded assistant turns as Messages API response bodies, in order.

    Each is ``{"id", "type": "message", "role": "assistant", "model", "content",
    "stop_reason", "stop_sequence": None, "usage": {"input_tokens", "output_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens"}}``; steps whose call failed
    (API errors) are left out. Feed them to ``FakeModelServer(responses=...)`` to replay the
    model offline.

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
    """
    traj = read_trajectory(run_dir)
    model = (traj.start or {}).get("model_id") or (traj.start or {}).get("model") or "replay"
    out: list[dict[str, Any]] = []
    for step in traj.steps:
        resp = step.get("response") or {}
        if resp.get("is_error") or not resp.get("content"):
            continue
        usage = resp.get("usage") or {}
        out.append(
            {
                "id": f"msg_replay_{int(step.get('index', len(out) + 1)):04d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": resp["content"],
                "stop_reason": resp.get("stop_reason") or "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": int(usage.get("input_tokens", 0)),
                    "output_tokens": int(usage.get("output_tokens", 0)),
                    "cache_read_input_tokens": int(usage.get("cache_read_tokens", 0)),
                    "cache_creation_input_tokens": int(usage.get("cache_write_tokens", 0)),
                },
            }
        )
    return out


__all__ = ["Divergence", "ReplayReport", "compare_images", "recorded_responses", "replay_run"]
