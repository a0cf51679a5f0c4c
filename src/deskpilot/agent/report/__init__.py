"""The HTML report and the GIF/MP4 animation of one recorded run.

Reads a run directory through the one reader (:func:`deskpilot.agent.trajectory.read_run`,
format: ``docs/trajectory-format.md``) and writes, next to it:

- ``report.html`` — one self-contained page (screenshot previews as ``data:`` URIs linking
  to the PNG files beside it, CSS inline, no script, no external fetch, a
  Content-Security-Policy): the task, model, totals, then every step with the model's text,
  each action, the screenshot with the click / drag / scroll / zoom drawn on it in
  MODEL-space pixels, timings, tokens and cost; the final answer; errors highlighted; lines
  that could not be read shown as "unreadable step" with the reason
  (:mod:`~deskpilot.agent.report.page`, template ``templates/report.html.j2``);
- ``run.gif`` (Pillow) and ``run.mp4`` (ffmpeg, when on PATH) — the screenshots with the
  same marks drawn, one caption line per frame (:mod:`~deskpilot.agent.report.animation`).

:func:`write_outputs` writes the HTML FIRST and the animation after it, so a failing
animation never costs the page. Every file is written as a new file (mode ``0600``) renamed
over its name (:mod:`deskpilot.agent.runfiles`), so a symlink planted in the run directory
(``report.html``, ``run.gif``, ``run.mp4``) is replaced, never written through. Modules: ``marks`` (geometry and descriptions), ``scenes``
(walking a run), ``previews`` (embedded images), ``page`` (HTML), ``animation``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DeskpilotError
from ..runfiles import replace_file
from ..trajectory import Run, read_run, write_checks
from .animation import draw_marks, write_animation_of
from .marks import Mark, action_marks, action_name, action_summary
from .page import Page, build_page, render_page

log = logging.getLogger("deskpilot.report")

__all__ = [
    "ANIMATION_FILES",
    "REPORT_FILE",
    "Mark",
    "Outputs",
    "action_marks",
    "action_name",
    "action_summary",
    "draw_marks",
    "write_animation",
    "write_checks",
    "write_outputs",
    "write_report",
]

REPORT_FILE = "report.html"
ANIMATION_FILES = ("run.gif", "run.mp4")


@dataclass(slots=True)
class Outputs:
    """What :func:`write_outputs` wrote.

    Attributes:
        report: the HTML file.
        animations: the animation files written (``run.gif``, ``run.mp4``).
        animation_error: why the animation failed (a sentence), or None.
        page_bytes: size of the HTML file in bytes.
    """

    report: Path
    animations: list[Path] = field(default_factory=list)
    animation_error: str | None = None
    page_bytes: int = 0


def _as_run(run_dir: str | os.PathLike[str] | Run) -> Run:
    return run_dir if isinstance(run_dir, Run) else read_run(run_dir)


def _write_page(page: Page, run: Run, target: Path) -> int:
    page.animations = [n for n in ANIMATION_FILES if run.path(n) is not None]
    data = render_page(page).encode("utf-8")
    try:  # a new file renamed over the target: a planted symlink is replaced, not followed
        replace_file(target.parent, target.name, data)
    except (OSError, ValueError) as exc:
        raise DeskpilotError(f"Could not write the report to {target}: {exc}.") from exc
    return len(data)


def write_report(
    run_dir: str | os.PathLike[str] | Run, out: str | os.PathLike[str] | None = None
) -> Path:
    """Write the self-contained HTML report of a run.

    Args:
        run_dir: a run directory (``trajectory.jsonl`` + ``screenshots/``; ``run_end`` may
            be missing, lines may be unreadable), or a :class:`~deskpilot.agent.trajectory.Run`.
        out: where to write; default ``RUN_DIR/report.html``.

    Returns:
        The path of the written HTML file (UTF-8).

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
        DeskpilotError: the file could not be written (the message names it).
    """
    run = _as_run(run_dir)
    target = Path(out) if out is not None else run.run_dir / REPORT_FILE
    _write_page(build_page(run), run, target)
    return target


def write_animation(
    run_dir: str | os.PathLike[str] | Run, *, max_width: int = 800, mp4: bool = True
) -> list[Path]:
    """Write ``RUN_DIR/run.gif`` (and ``RUN_DIR/run.mp4`` when ffmpeg is on PATH).

    Frames: the initial screen, then for each action the screen before it with the action
    drawn (model-space marks) and the screen after it, each with a caption bar; a final
    frame with the answer. Frames are scaled to at most ``max_width`` pixels wide;
    unreadable screenshots are left out.

    Returns:
        The written files (empty when the run has no readable screenshot).

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
        DeskpilotError: the GIF could not be written. A failing ffmpeg only logs a warning.
    """
    return write_animation_of(_as_run(run_dir), max_width=max_width, mp4=mp4)


def write_outputs(
    run_dir: str | os.PathLike[str] | Run,
    *,
    animation: bool = True,
    mp4: bool = True,
    max_width: int = 800,
) -> Outputs:
    """Write ``report.html``, then ``run.gif``/``run.mp4``; the page links the animation.

    The HTML is written first; the animation after it can fail (a disk error, ffmpeg,
    anything unexpected) without costing the page: the failure is returned in
    :attr:`Outputs.animation_error`. When animation files were written, the page is
    rendered again (from the same computed data) to link them.

    Args:
        run_dir: a run directory or a :class:`~deskpilot.agent.trajectory.Run`.
        animation: also write the animation.
        mp4 / max_width: as for :func:`write_animation`.

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
        DeskpilotError: the HTML could not be written.
    """
    run = _as_run(run_dir)
    target = run.run_dir / REPORT_FILE
    page = build_page(run)
    out = Outputs(report=target, page_bytes=_write_page(page, run, target))
    if not animation:
        return out
    linked = list(page.animations)
    try:
        out.animations = write_animation_of(run, max_width=max_width, mp4=mp4)
    except Exception as exc:  # the page is written; an animation failure must not lose it
        log.warning("The animation of %s failed", run.run_dir, exc_info=True)
        out.animation_error = f"The animation could not be written: {type(exc).__name__}: {exc}"
    if [n for n in ANIMATION_FILES if run.path(n) is not None] != linked:
        out.page_bytes = _write_page(page, run, target)
    return out
