"""What a replay found: divergences from the record, and how screenshots are compared."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...prompt import Image
from ..imagefiles import UnreadableImage, decode_image, open_image
from ..trajectory import Run, Unreadable
from .plan import PlannedAction

log = logging.getLogger("deskpilot.agent")

__all__ = ["Divergence", "ReplayReport", "check_image", "compare_images", "unreadable_divergence"]


@dataclass(slots=True, frozen=True)
class Divergence:
    """One place where the replay differed from the record.

    Attributes:
        step: the step index (1-based; 0 = the initial screenshot or the run as a whole).
        index: the tool call's index in the step (0-based; -1 for the initial screenshot or
            a whole step).
        action: the tool name and action, e.g. ``"computer left_click"``.
        kind: ``"is_error"``, ``"text"``, ``"screenshot"``, ``"screenshot_size"``,
            ``"missing_screenshot"``, ``"setup"``, ``"unsupported"`` (the call reaches no
            executor: an unknown tool or toolset name; it was not run) or ``"unreadable"``
            (a line of the trajectory could not be read; its actions were not replayed).
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
        skipped: calls that need consent (bash, editor, keyboard input) not replayed
            because ``host_actions`` was False.
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
        machine = sum(p.reach == "machine" for p in self.skipped)
        keyboard = len(self.skipped) - machine
        if machine:
            head += (
                f" {machine} bash/editor action(s) were not replayed (host actions not allowed)."
            )
        if keyboard:
            head += (
                f" {keyboard} keyboard input(s) were not replayed (host actions not allowed: a "
                "terminal on the desktop would run them)."
            )
        if self.ok:
            return head + " No divergence."
        return "\n".join(
            [head, f"{len(self.divergences)} divergence(s):"] + [f"  {d}" for d in self.divergences]
        )


def unreadable_divergence(u: Unreadable) -> Divergence:
    """The divergence reported for a line of the trajectory that could not be read."""
    return Divergence(
        u.index if u.index is not None else 0,
        -1,
        "(unreadable line)",
        "unreadable",
        f"{u.sentence()} Its actions were not replayed.",
    )


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


def check_image(
    run: Run,
    report: ReplayReport,
    where: tuple[int, int, str],
    rel: str | None,
    img: Image | None,
    *,
    max_changed_share: float,
    pixel_threshold: int,
) -> None:
    """Compare the recorded screenshot ``rel`` (confined to the run directory) with the
    replay's ``img`` and add any divergence at ``where`` (step, index, label) to ``report``."""
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
            pixel_threshold,
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
