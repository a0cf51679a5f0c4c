"""The animation of a run: ``run.gif`` (Pillow) and ``run.mp4`` (ffmpeg, when on PATH).

Frames: the initial screen, then for each action the screen before it with the action drawn
(model-space marks, the same geometry as the page) and the screen after it, each with a
caption bar; a final frame with the answer. Screenshots are opened through
:func:`deskpilot.agent.imagefiles.open_image` (bounded size, decoded at once, within one
:class:`~deskpilot.agent.imagefiles.PixelBudget` per animation; consecutive frames of the
same file decode it once); one that cannot be read is left out with a warning. At most :data:`MAX_FRAMES` frames are made.
Frames are rendered one at a time (only the palette images of the GIF are kept in memory).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageDraw, ImageFont

from ...errors import DeskpilotError
from ..imagefiles import PixelBudget, UnreadableImage, file_key, open_image
from ..runfiles import replace_file
from ..trajectory import Run
from .marks import COLOURS, Mark, action_summary, short
from .scenes import scenes

log = logging.getLogger("deskpilot.report")

__all__ = ["MAX_FRAMES", "draw_marks", "drawable", "write_animation_of"]

MAX_FRAMES = 600
"""Most frames in one animation (a longer run keeps its first frames and its last one)."""
_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_PATHS:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def drawable(text: str) -> str:
    """``text`` safe to lay out with Pillow: characters that are not printable (newlines,
    carriage returns, control and format characters, which make the layout engine fail or
    hide text) become ``·``."""
    return "".join(c if c.isprintable() else "·" for c in text)


def draw_marks(
    img: Image.Image, marks: list[Mark], scale: tuple[float, float] = (1.0, 1.0)
) -> Image.Image:
    """Draw marks on a copy of ``img`` (RGB). The marks are in MODEL-space pixels; ``scale``
    is this image's pixels per model-space pixel (x, y): 1 for the screenshot itself, less
    for a copy already shrunk to the animation's size (drawing there is far cheaper)."""
    out = img.convert("RGB").copy()
    draw = ImageDraw.Draw(out, "RGBA")
    unit = max(out.size) / 640.0
    width = max(2, round(2.4 * unit))
    font = _font(max(12, round(11 * unit)))
    sx, sy = scale
    for mark in marks:
        mark = Mark(
            mark.kind, tuple((x * sx, y * sy) for x, y in mark.points), mark.label, mark.inferred
        )
        colour = COLOURS.get(mark.kind, COLOURS["point"])
        rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
        if mark.kind == "point":
            x, y = mark.points[0]
            r = 14 * unit
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(*rgb, 50), outline=rgb, width=width)
            d = 2.5 * unit
            draw.ellipse((x - d, y - d, x + d, y + d), fill=rgb)
        elif mark.kind in ("drag", "scroll"):
            (x1, y1), (x2, y2) = mark.points
            r = 6 * unit
            draw.ellipse((x1 - r, y1 - r, x1 + r, y1 + r), outline=rgb, width=width)
            draw.line((x1, y1, x2, y2), fill=rgb, width=width)
            ang = math.atan2(y2 - y1, x2 - x1)
            head = 10 * unit
            pts = [
                (x2, y2),
                (x2 - head * math.cos(ang - 0.45), y2 - head * math.sin(ang - 0.45)),
                (x2 - head * math.cos(ang + 0.45), y2 - head * math.sin(ang + 0.45)),
            ]
            draw.polygon(pts, fill=rgb)
        elif mark.kind == "zoom":
            (x1, y1), (x2, y2) = mark.points
            draw.rectangle(
                (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)),
                fill=(*rgb, 30),
                outline=rgb,
                width=width,
            )
        lx, ly = mark.points[0]
        draw.text(
            (lx + 18 * unit, ly - 16 * unit - 11 * unit),
            drawable(mark.label),
            fill=rgb,
            font=font,
            stroke_width=max(1, round(1.5 * unit)),
            stroke_fill="white",
        )
    return out


@dataclass(slots=True)
class _Frame:
    image: str  # relative screenshot path
    marks: list[Mark]
    caption: str
    duration_ms: int


def _frames(run: Run) -> list[_Frame]:
    frames: list[_Frame] = []
    task = run.start.task if run.start is not None else ""
    if run.initial_screenshot:
        frames.append(_Frame(run.initial_screenshot, [], f"Task: {short(task, 90)}", 1500))
    last: str | None = run.initial_screenshot
    for scene in scenes(run):
        label = f"Step {scene.step.index}: {action_summary(scene.action)}"
        if scene.action.is_error:
            label += "  [error]"
        if scene.marks and scene.before:
            frames.append(_Frame(scene.before, scene.marks, label, 1000))
            if scene.after:
                frames.append(_Frame(scene.after, [], label + " → done", 600))
        elif scene.after:
            frames.append(_Frame(scene.after, [], label, 900))
        elif last is not None:
            result = short(scene.action.text.strip(), 50)
            frames.append(_Frame(last, [], label + (f" → {result}" if result else ""), 1400))
        if scene.after:
            last = scene.after
    if last is not None:
        end = run.end
        if end is not None:
            final = short(end.final_text or end.stop_reason or "", 90)
            caption = f"Done ({end.stop_reason}): {final}"
        else:
            caption = "The run ended without a run_end record."
        frames.append(_Frame(last, [], caption, 2500))
    if len(frames) > MAX_FRAMES:
        log.info("The run has %d frames; the animation keeps %d.", len(frames), MAX_FRAMES)
        frames = [*frames[: MAX_FRAMES - 1], frames[-1]]
    return frames


class _Renderer:
    """Renders frames one at a time at one output size (set by the first readable frame)."""

    def __init__(self, run: Run, max_width: int) -> None:
        self.run = run
        self.max_width = max(16, max_width)
        self.size: tuple[int, int] | None = None
        self.pixels = PixelBudget()
        self._cache: dict[
            tuple[int, int] | str, tuple[Image.Image, tuple[float, float]] | None
        ] = {}

    def _image(self, rel: str) -> tuple[Image.Image, tuple[float, float]] | None:
        """The screenshot ``rel`` shrunk to the output size (set by the first readable one),
        and the scale from its model-space pixels; each file is decoded and shrunk once for
        a run of frames that show it."""
        path = self.run.path(rel)
        key = file_key(path) if path is not None else None
        ident: tuple[int, int] | str = key if key is not None else rel
        if ident not in self._cache:  # frames reuse the previous image (the same file) only
            try:
                if path is None:
                    raise UnreadableImage(
                        f"{rel} is missing, outside the run directory or reached through a symlink."
                    )
                img = open_image(path, self.pixels)
            except UnreadableImage as exc:
                log.warning("Animation frame left out: %s", exc)
                self._cache = {ident: None}
                return None
            w, h = img.size
            if self.size is None:
                scale = min(1.0, self.max_width / w)
                self.size = (max(2, round(w * scale)) // 2 * 2, max(2, round(h * scale)) // 2 * 2)
            if img.size != self.size:
                img = img.resize(self.size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            self._cache = {ident: (img, (self.size[0] / w, self.size[1] / h))}
        return self._cache[ident]

    def render(self, frame: _Frame) -> Image.Image | None:
        shown = self._image(frame.image)
        if shown is None or self.size is None:
            return None
        base, scale = shown
        img = draw_marks(base, frame.marks, scale) if frame.marks else base
        size = self.size
        bar_h = max(24, size[1] // 20) // 2 * 2
        canvas = Image.new("RGB", (size[0], size[1] + bar_h), (28, 28, 30))
        canvas.paste(img, (0, 0))
        draw = ImageDraw.Draw(canvas)
        font = _font(max(11, int(bar_h * 0.5)))
        caption = drawable(frame.caption)[:300]
        while caption and draw.textlength(caption, font=font) > size[0] - 16:
            caption = caption[:-2] + "…" if len(caption) > 2 else ""
        draw.text((8, size[1] + bar_h / 2), caption, fill=(245, 245, 247), font=font, anchor="lm")
        return canvas


def write_animation_of(run: Run, *, max_width: int = 800, mp4: bool = True) -> list[Path]:
    """Write ``run.gif`` (and ``run.mp4`` with ffmpeg) into ``run.run_dir``.

    Args:
        run: a run read by :func:`~deskpilot.agent.trajectory.read_run`.
        max_width: frames are scaled down to at most this many pixels wide.
        mp4: also write the MP4 when ffmpeg is on PATH.

    Returns:
        The written files (empty when no screenshot of the run could be read).

    Raises:
        DeskpilotError: the GIF could not be written. A failing ffmpeg only logs a warning
            (the GIF is the portable result).
    """
    renderer = _Renderer(run, max_width)
    palette: list[Image.Image] = []
    durations: list[int] = []
    with tempfile.TemporaryDirectory(prefix="deskpilot-frames-") as tmp:
        listing = ["ffconcat version 1.0"]
        for frame in _frames(run):
            try:
                canvas = renderer.render(frame)
            except (RuntimeError, ValueError, OSError) as exc:  # Pillow's layout or drawing
                log.warning("Animation frame %r left out: %s", frame.caption[:80], exc)
                continue
            if canvas is None:
                continue
            palette.append(
                canvas.quantize(
                    colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
                )
            )
            durations.append(frame.duration_ms)
            if mp4:
                name = f"f{len(palette) - 1:05d}.png"
                canvas.save(os.path.join(tmp, name), compress_level=1)
                listing += [f"file {name}", f"duration {frame.duration_ms / 1000:.3f}"]
        if not palette:
            return []
        gif = run.run_dir / "run.gif"

        def save_gif(fh: BinaryIO) -> None:
            palette[0].save(
                fh,
                format="GIF",
                save_all=True,
                append_images=palette[1:],
                duration=durations,
                loop=0,
                disposal=1,
            )

        try:
            replace_file(run.run_dir, gif.name, save_gif)
        except (OSError, ValueError) as exc:
            raise DeskpilotError(f"Could not write the animation {gif}: {exc}.") from exc
        written = [gif]
        if mp4:
            listing.append(f"file f{len(palette) - 1:05d}.png")  # concat demuxer: last frame twice
            video = _write_mp4(Path(tmp), listing, run.run_dir / "run.mp4")
            if video is not None:
                written.append(video)
    return written


_FFMPEG_ENV = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}
"""ffmpeg gets this environment only (no credential reaches a subprocess)."""


def _write_mp4(tmp: Path, listing: list[str], target: Path) -> Path | None:
    """ffmpeg writes into the private frame directory ``tmp``; the result is copied into the
    run directory as a new file renamed over ``target`` (never through a symlink)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        log.info("ffmpeg is not on PATH; skipping %s (the GIF has the same frames).", target)
        return None
    concat = tmp / "frames.ffconcat"
    made = tmp / "run.mp4"
    concat.write_text("\n".join(listing) + "\n", encoding="utf-8")
    for codec in (["-c:v", "libx264", "-preset", "veryfast", "-crf", "26"], ["-c:v", "mpeg4"]):
        cmd = [
            ffmpeg,
            "-y",
            "-loglevel",
            "error",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(concat),
            "-vf",
            "fps=10,format=yuv420p",
            *codec,
            "-movflags",
            "+faststart",
            str(made),
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, timeout=180, check=False, env=_FFMPEG_ENV, cwd=tmp
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("ffmpeg failed for %s: %s", target, exc)
            return None
        if proc.returncode == 0 and made.is_file():
            try:
                with made.open("rb") as src:
                    replace_file(
                        target.parent, target.name, lambda dst: shutil.copyfileobj(src, dst)
                    )
            except OSError as exc:
                log.warning("Could not write %s: %s", target, exc)
                return None
            return target
        log.info("ffmpeg %s failed: %s", codec[1], proc.stderr.decode(errors="replace")[-300:])
    log.warning("ffmpeg could not write %s; only the GIF was written.", target)
    return None
