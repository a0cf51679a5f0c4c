"""The HTML report and the GIF/MP4 animation of one recorded run.

Reads a run directory in the trajectory format (``trajectory.jsonl`` + ``screenshots/``, see
TRAJECTORY_FORMAT.md) and writes, next to it:

- ``report.html`` — one self-contained page (images as ``data:`` URIs, CSS inline, no script,
  no external fetch): the task, model, totals, then every step with the model's text, each
  action, the screenshot with the click / drag / scroll / zoom drawn on it as an SVG overlay
  in MODEL-space pixels (the screenshots are model-space images, so input coordinates land
  on them unchanged), timings, tokens and cost; the final answer; errors highlighted.
- ``run.gif`` (Pillow) and ``run.mp4`` (ffmpeg, when it is on PATH) — the run's screenshots
  with the same marks drawn, one caption line per frame.

A run that died has no ``run_end`` line (and maybe a half-written last line): the report
shows every complete step and says so.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from PIL import Image, ImageDraw, ImageFont

from ..errors import ConfigError, DeskpilotError

log = logging.getLogger("deskpilot.report")

__all__ = [
    "Mark",
    "RunRecord",
    "action_marks",
    "action_name",
    "action_summary",
    "draw_marks",
    "load_run",
    "write_animation",
    "write_checks",
    "write_report",
]

TRAJECTORY = "trajectory.jsonl"
CHECKS = "checks.json"
INITIAL_SCREENSHOT = "screenshots/0000-initial.png"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)
_POINT_ACTIONS = {
    "left_click",
    "right_click",
    "middle_click",
    "double_click",
    "triple_click",
    "mouse_move",
    "left_mouse_down",
    "left_mouse_up",
}


# --- reading ---------------------------------------------------------------------------------


@dataclass(slots=True)
class RunRecord:
    """One run directory, parsed leniently.

    Attributes:
        run_dir: the directory.
        start: the ``run_start`` line, or None if missing.
        steps: the ``step`` lines in file order.
        end: the ``run_end`` line, or None when the run died (or is still running).
        problems: sentences about lines that could not be read (e.g. a truncated last line).
        checks: outcome checks made after the run by its caller, from ``RUN_DIR/checks.json``
            (a list of ``{"name": str, "ok": bool, "detail": str}``; see :func:`write_checks`).
    """

    run_dir: Path
    start: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def initial_screenshot(self) -> str | None:
        """Relative path of the initial screenshot when the run saved one (``run_start``'s
        ``initial_screenshot``, else ``screenshots/0000-initial.png``)."""
        named = (self.start or {}).get("initial_screenshot")
        for rel in (named, INITIAL_SCREENSHOT):
            if _inside(self.run_dir, rel):
                return rel
        return None


def _inside(run_dir: Path, rel: Any) -> bool:
    """True when ``rel`` names an existing file inside ``run_dir`` (no ``..`` escapes)."""
    if not isinstance(rel, str) or not rel:
        return False
    base = run_dir.resolve()
    path = (base / rel).resolve()
    return path.is_relative_to(base) and path.is_file()


def load_run(run_dir: str | os.PathLike[str]) -> RunRecord:
    """Parse ``RUN_DIR/trajectory.jsonl`` without trusting it to be complete.

    Unreadable lines (a half-written last line of a run that died) are skipped and noted in
    :attr:`RunRecord.problems`; unknown line types are ignored.

    Raises:
        ConfigError: ``run_dir`` is not a directory or holds no ``trajectory.jsonl``.
    """
    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"{path} is not a directory; pass the run directory a deskpilot run wrote "
            "(e.g. deskpilot-runs/<timestamp>-<task>/)."
        )
    traj = path / TRAJECTORY
    if not traj.is_file():
        raise ConfigError(
            f"{path} has no {TRAJECTORY}, so it is not a deskpilot run directory; pass the "
            "directory a run wrote (e.g. deskpilot-runs/<timestamp>-<task>/)."
        )
    record = RunRecord(run_dir=path)
    with traj.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                record.problems.append(
                    f"Line {lineno} of {TRAJECTORY} is not valid JSON (cut short?); it was skipped."
                )
                continue
            if not isinstance(obj, dict):
                continue
            kind = obj.get("type")
            if kind == "run_start":
                record.start = obj
            elif kind == "step":
                record.steps.append(obj)
            elif kind == "run_end":
                record.end = obj
    checks_file = path / CHECKS
    if checks_file.is_file():
        try:
            checks = json.loads(checks_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            record.problems.append(f"{CHECKS} could not be read; it was ignored.")
        else:
            if isinstance(checks, list):
                record.checks = [c for c in checks if isinstance(c, dict) and "name" in c]
    return record


def write_checks(run_dir: str | os.PathLike[str], checks: list[dict[str, Any]]) -> Path:
    """Record outcome checks made after a run (``RUN_DIR/checks.json``) for the report.

    Args:
        run_dir: the run directory.
        checks: ``[{"name": str, "ok": bool, "detail": str}, ...]``, e.g. the demo's "the
            saved file prints Hello, World!".

    Returns:
        The path written.

    Raises:
        DeskpilotError: the file could not be written.
    """
    target = Path(run_dir) / CHECKS
    try:
        target.write_text(json.dumps(checks, indent=1, ensure_ascii=False) + "\n", "utf-8")
    except OSError as exc:
        raise DeskpilotError(f"Could not write {target}: {exc}.") from exc
    return target


# --- marks (what to draw for an action) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mark:
    """Something to draw on a screenshot, in MODEL-space pixels.

    Attributes:
        kind: ``"point"`` (click/move), ``"drag"`` (``points`` = start, end), ``"scroll"``
            (``points`` = position, arrow tip), or ``"zoom"`` (``points`` = two corners).
        points: ``(x, y)`` pairs.
        label: a short text (``"left_click"``, ``"scroll down ×3"``).
        inferred: True when the position is the cursor position inferred from earlier
            actions (the action itself carried no coordinate).
    """

    kind: str
    points: tuple[tuple[float, float], ...]
    label: str
    inferred: bool = False


def action_name(action: dict[str, Any]) -> str:
    """The action's display name: the computer ``action`` (also for toolset members) or the
    tool name (``bash``, ``str_replace_based_edit_tool``, custom tools)."""
    inp = action.get("input") or {}
    name = str(action.get("name") or "?")
    if action.get("toolset_name"):
        return name
    if name == "computer" and isinstance(inp, dict) and inp.get("action"):
        return str(inp["action"])
    return name


def _xy(value: Any) -> tuple[float, float] | None:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        return float(value[0]), float(value[1])
    return None


_SCROLL_VECTORS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}


def action_marks(action: dict[str, Any], cursor: tuple[float, float] | None = None) -> list[Mark]:
    """The marks to draw for one recorded action (MODEL-space pixels, as the model sent them).

    Args:
        action: an entry of a step's ``actions`` list (``name``, ``toolset_name``, ``input``).
        cursor: the pointer position after the previous actions, used for clicks without a
            ``coordinate`` (computer_20241022 clicks where the cursor is) and for its drag start.

    Returns:
        Zero or more :class:`Mark`; empty for actions without a position (type, key, bash...).
    """
    inp = action.get("input") or {}
    if not isinstance(inp, dict):
        return []
    name = action_name(action)
    coord = _xy(inp.get("coordinate"))
    if name in _POINT_ACTIONS:
        if coord is not None:
            return [Mark("point", (coord,), name)]
        if cursor is not None:
            return [Mark("point", (cursor,), f"{name} (at cursor)", inferred=True)]
        return []
    if name == "left_click_drag":
        start = _xy(inp.get("start_coordinate"))
        inferred = False
        if start is None and cursor is not None:
            start, inferred = cursor, True
        if start is not None and coord is not None:
            return [Mark("drag", (start, coord), "drag", inferred=inferred)]
        if coord is not None:
            return [Mark("point", (coord,), "drag end")]
        return []
    if name == "scroll":
        pos, inferred = coord, False
        if pos is None and cursor is not None:
            pos, inferred = cursor, True
        if pos is None:
            return []
        direction = str(inp.get("scroll_direction") or "down")
        amount = inp.get("scroll_amount")
        dx, dy = _SCROLL_VECTORS.get(direction, (0, 1))
        length = 40.0 + 8.0 * min(int(amount) if isinstance(amount, int) else 3, 10)
        tip = (pos[0] + dx * length, pos[1] + dy * length)
        label = f"scroll {direction}" + (f" ×{amount}" if amount is not None else "")
        return [Mark("scroll", (pos, tip), label, inferred=inferred)]
    if name == "zoom":
        region = inp.get("region")
        if isinstance(region, list | tuple) and len(region) == 4:
            a, b = _xy(region[:2]), _xy(region[2:])
            if a is not None and b is not None:
                return [Mark("zoom", (a, b), "zoom")]
    return []


def _cursor_after(action: dict[str, Any], cursor: tuple[float, float] | None):
    inp = action.get("input") or {}
    if isinstance(inp, dict):
        coord = _xy(inp.get("coordinate"))
        if coord is not None and action_name(action) not in ("zoom",):
            return coord
    return cursor


# --- walking a run ---------------------------------------------------------------------------


@dataclass(slots=True)
class _ActionView:
    step: dict[str, Any]
    action: dict[str, Any]
    name: str
    marks: list[Mark]
    before: str | None  # relative path of the latest screenshot before this action
    after: str | None  # the action's own screenshot
    unchanged: bool = False  # after is pixel-for-pixel the same file content as before


def _walk(run: RunRecord) -> Iterator[_ActionView]:
    """Every action of the run in order, with the screen before it and the marks to draw."""
    last_shot = run.initial_screenshot
    cursor: tuple[float, float] | None = None
    digests: dict[str, bytes] = {}

    def digest(rel: str) -> bytes:
        if rel not in digests:
            try:
                digests[rel] = hashlib.sha256((run.run_dir / rel).read_bytes()).digest()
            except OSError:
                digests[rel] = rel.encode()
        return digests[rel]

    for step in run.steps:
        for action in step.get("actions") or []:
            if not isinstance(action, dict):
                continue
            shot = action.get("screenshot")
            if not _inside(run.run_dir, shot):
                shot = None
            yield _ActionView(
                step=step,
                action=action,
                name=action_name(action),
                marks=action_marks(action, cursor),
                before=last_shot,
                after=shot,
                unchanged=bool(shot and last_shot and digest(shot) == digest(last_shot)),
            )
            cursor = _cursor_after(action, cursor)
            if shot is not None:
                last_shot = shot


# --- formatting helpers ----------------------------------------------------------------------


def _fmt_s(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def _fmt_cost(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def _fmt_int(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else "–"


def _usage_line(usage: dict[str, Any] | None) -> str:
    u = usage or {}
    parts = [
        f"in {_fmt_int(u.get('input_tokens', 0))}",
        f"out {_fmt_int(u.get('output_tokens', 0))}",
    ]
    if u.get("cache_read_tokens"):
        parts.append(f"cache read {_fmt_int(u['cache_read_tokens'])}")
    if u.get("cache_write_tokens"):
        parts.append(f"cache write {_fmt_int(u['cache_write_tokens'])}")
    return " · ".join(parts)


def _total_tokens(usage: dict[str, Any] | None) -> int:
    u = usage or {}
    return sum(
        int(u.get(k) or 0)
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    )


def _short(text: str, limit: int = 60) -> str:
    text = str(text).replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def action_summary(action: dict[str, Any]) -> str:
    """A one-line human description: ``left_click (412, 300)``, ``type 'def main…'``,
    ``bash: python3 hello.py``."""
    name = action_name(action)
    inp = action.get("input") or {}
    if not isinstance(inp, dict):
        return name
    coord = _xy(inp.get("coordinate"))
    if name == "left_click_drag":
        start = _xy(inp.get("start_coordinate"))
        a = f"({start[0]:.0f}, {start[1]:.0f}) → " if start else "→ "
        b = f"({coord[0]:.0f}, {coord[1]:.0f})" if coord else "?"
        return f"drag {a}{b}"
    if name in ("type", "key", "hold_key"):
        extra = f" for {inp['duration']} s" if name == "hold_key" and "duration" in inp else ""
        return f"{name} {_short(repr(inp.get('text', '')))}{extra}"
    if name == "scroll":
        where = f" at ({coord[0]:.0f}, {coord[1]:.0f})" if coord else ""
        return f"scroll {inp.get('scroll_direction', '?')} ×{inp.get('scroll_amount', '?')}{where}"
    if name == "wait":
        return f"wait {inp.get('duration', '?')} s"
    if name == "zoom":
        return f"zoom {inp.get('region')}"
    if coord is not None:
        mods = f" with {inp['text']}" if isinstance(inp.get("text"), str) and inp["text"] else ""
        return f"{name} ({coord[0]:.0f}, {coord[1]:.0f}){mods}"
    if name == "bash":
        if inp.get("restart"):
            return "bash: restart"
        return f"bash: {_short(inp.get('command', ''), 70)}"
    if "command" in inp and "path" in inp:
        return f"{name}: {inp['command']} {inp['path']}"
    if action.get("name") == "computer" or action.get("toolset_name"):
        return name
    return f"{name} {_short(json.dumps(inp, ensure_ascii=False), 70)}"


# --- SVG overlay -----------------------------------------------------------------------------

_COLOURS = {"point": "#ff2d55", "drag": "#ff9500", "scroll": "#34c759", "zoom": "#5ac8fa"}


def _svg_marks(
    marks: list[Mark],
    width: float,
    height: float,
    *,
    unit: float | None = None,
    labels: bool = True,
    origin: tuple[float, float] = (0.0, 0.0),
) -> str:
    """SVG elements for ``marks`` on an image (or a crop of it at ``origin``, ``width`` x
    ``height``); ``unit`` scales strokes and radii (default: the view's long side / 640)."""
    if unit is None:
        unit = max(width, height) / 640.0  # so marks look alike at any size
    out: list[str] = []
    for mark in marks:
        colour = _COLOURS.get(mark.kind, "#ff2d55")
        dash = f' stroke-dasharray="{4 * unit:.1f} {3 * unit:.1f}"' if mark.inferred else ""
        sw = f"{2.2 * unit:.1f}"
        if mark.kind == "point":
            (x, y) = mark.points[0]
            out.append(
                f'<g class="mark mark-point" data-x="{x:g}" data-y="{y:g}">'
                f'<circle cx="{x:g}" cy="{y:g}" r="{14 * unit:.1f}" fill="{colour}" '
                f'fill-opacity="0.18" stroke="{colour}" stroke-width="{sw}"{dash}/>'
                f'<circle cx="{x:g}" cy="{y:g}" r="{2.5 * unit:.1f}" fill="{colour}"/>'
                f"</g>"
            )
        elif mark.kind in ("drag", "scroll"):
            (x1, y1), (x2, y2) = mark.points
            out.append(
                f'<g class="mark mark-{mark.kind}" data-x1="{x1:g}" data-y1="{y1:g}" '
                f'data-x2="{x2:g}" data-y2="{y2:g}">'
                f'<circle cx="{x1:g}" cy="{y1:g}" r="{6 * unit:.1f}" fill="none" '
                f'stroke="{colour}" stroke-width="{sw}"/>'
                f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke="{colour}" '
                f'stroke-width="{sw}" marker-end="url(#arrow-{mark.kind})"{dash}/>'
                f"</g>"
            )
        elif mark.kind == "zoom":
            (x1, y1), (x2, y2) = mark.points
            out.append(
                f'<rect class="mark mark-zoom" x="{min(x1, x2):g}" y="{min(y1, y2):g}" '
                f'width="{abs(x2 - x1):g}" height="{abs(y2 - y1):g}" fill="{colour}" '
                f'fill-opacity="0.12" stroke="{colour}" stroke-width="{sw}"/>'
            )
        if not labels:
            continue
        # label near the first point, kept inside the view
        (lx, ly) = mark.points[0]
        fs = 14 * unit
        ox, oy = origin
        tx = min(max(lx + 18 * unit, ox + 2), ox + width - len(mark.label) * fs * 0.62 - 4)
        ty = min(max(ly - 16 * unit, oy + fs + 2), oy + height - 4)
        out.append(
            f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="{fs:.1f}" class="mark-label" '
            f'paint-order="stroke" stroke="#fff" stroke-width="{3 * unit:.1f}" '
            f'fill="{colour}">{html.escape(mark.label)}</text>'
        )
    return "".join(out)


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
:root { --fg:#1d1d1f; --muted:#6e6e73; --line:#d2d2d7; --bg:#f5f5f7; --card:#fff;
        --err:#d70015; --errbg:#fff0f1; --ok:#248a3d; --accent:#0066cc; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width:1240px; margin:0 auto; padding:24px 28px 60px; }
h1 { font-size:22px; margin:0 0 4px; }
h2 { font-size:17px; margin:28px 0 10px; }
.sub { color:var(--muted); margin-bottom:16px; }
.task { font-size:16px; background:var(--card); border:1px solid var(--line); border-radius:10px;
        padding:12px 16px; white-space:pre-wrap; }
.totals { display:grid; grid-template-columns:repeat(auto-fill,minmax(150px,1fr)); gap:10px;
          margin:14px 0; }
.total { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:8px 12px; }
.total b { display:block; font-size:18px; }
.total span { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.banner { border-radius:10px; padding:10px 14px; margin:12px 0; border:1px solid; }
.banner.warn { background:#fff8e6; border-color:#f5c451; }
.banner.err, .err-box { background:var(--errbg); border-color:var(--err); color:var(--err); }
.banner.ok { background:#effaf1; border-color:#8fd19e; }
.banner.answer { white-space:pre-wrap; font-size:15px; }
.film { display:flex; flex-wrap:wrap; gap:8px; padding:4px 0 10px; }
.film a { flex:0 0 118px; text-decoration:none; color:var(--muted); font-size:11px; text-align:center; }
.film a.bad svg { border:2px solid var(--err); }
.film a.bad { color:var(--err); }
.film svg { width:118px; height:auto; border:1px solid var(--line); border-radius:4px; display:block;
            background:#000; }
.step { background:var(--card); border:1px solid var(--line); border-radius:12px; margin:18px 0;
        padding:14px 18px; }
.step.error { border-color:var(--err); box-shadow:0 0 0 2px var(--errbg); }
.step-head { display:flex; flex-wrap:wrap; gap:6px 18px; align-items:baseline;
             border-bottom:1px solid var(--line); padding-bottom:8px; margin-bottom:10px; }
.step-head h3 { margin:0; font-size:16px; }
.meta { color:var(--muted); font-size:12.5px; }
.bar { display:flex; height:6px; width:180px; border-radius:3px; overflow:hidden; background:#eee;
       align-self:center; }
.bar i { display:block; height:100%; }
.bar .m { background:#8e8ef0; } .bar .a { background:#5ac8a0; } .bar .o { background:#f0b35a; }
.text { white-space:pre-wrap; margin:8px 0; }
details.thinking { color:var(--muted); margin:6px 0; }
.action { border-left:3px solid var(--accent); padding:6px 0 6px 12px; margin:12px 0; }
.action.error { border-left-color:var(--err); }
.action-head { display:flex; flex-wrap:wrap; gap:4px 14px; align-items:baseline; }
.action-head code { font-size:13.5px; font-weight:600; }
.raw { color:var(--muted); font-size:11.5px; margin:2px 0; word-break:break-all; }
.raw code { font-size:11.5px; }
.badge { font-size:11px; padding:1px 7px; border-radius:8px; background:#eee; color:#333; }
.badge.err { background:var(--err); color:#fff; } .badge.ok { background:#d9f2df; color:var(--ok); }
pre { background:#f6f6f8; border:1px solid #e6e6ea; border-radius:6px; padding:6px 9px; margin:6px 0;
      white-space:pre-wrap; word-break:break-word; font:12.5px/1.4 "DejaVu Sans Mono", monospace;
      max-height:320px; overflow:auto; }
.result.err { background:var(--errbg); border-color:#f3b7bd; color:var(--err); }
.shots { display:grid; grid-template-columns:1fr 1fr; gap:12px; margin-top:6px; }
.shots.small { grid-template-columns:minmax(0,240px); }
.shots.one { grid-template-columns:minmax(0,1fr) minmax(0,1fr); }
figure { margin:0; position:relative; }
figure svg.inset { position:absolute; width:38%; border:2px solid #ff2d55; border-radius:4px;
                   box-shadow:0 2px 10px rgba(0,0,0,.35); }
svg.inset-br { right:8px; bottom:28px; } svg.inset-bl { left:8px; bottom:28px; }
svg.inset-tr { right:8px; top:8px; } svg.inset-tl { left:8px; top:8px; }
figure svg { width:100%; height:auto; display:block; border:1px solid var(--line); border-radius:6px;
             background:#000; }
figcaption { color:var(--muted); font-size:12px; margin-top:3px; }
.final { font-size:15px; white-space:pre-wrap; }
.sys summary { cursor:pointer; color:var(--muted); }
footer { color:var(--muted); font-size:12px; margin-top:30px; }
"""


class _Images:
    """Each screenshot embedded ONCE (``<image id>`` in a hidden SVG) and shown with ``<use>``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.ids: dict[str, str] = {}
        self.sizes: dict[str, tuple[int, int]] = {}
        self.defs: list[str] = []

    def ref(self, rel: str) -> tuple[str, int, int] | None:
        if rel in self.ids:
            w, h = self.sizes[rel]
            return self.ids[rel], w, h
        path = self.run_dir / rel
        try:
            data = path.read_bytes()
            with Image.open(path) as im:
                w, h = im.size
        except (OSError, ValueError) as exc:
            log.warning("Screenshot %s could not be read: %s", path, exc)
            return None
        ident = f"shot{len(self.ids)}"
        mime = _MIME.get(path.suffix.lower(), "image/png")
        b64 = base64.b64encode(data).decode("ascii")
        self.defs.append(
            f'<image id="{ident}" width="{w}" height="{h}" href="data:{mime};base64,{b64}" '
            f'data-src="{html.escape(rel)}"/>'
        )
        self.ids[rel] = ident
        self.sizes[rel] = (w, h)
        return ident, w, h

    def svg(
        self, rel: str, marks: list[Mark] | None = None, css: str = "", *, inset: bool = False
    ) -> str:
        """The screenshot as an ``<svg>`` (the image by ``<use>``) with ``marks`` drawn; with
        ``inset``, also a magnified crop around the marks (same image, another viewBox)."""
        ref = self.ref(rel)
        if ref is None:
            return f'<div class="meta">(screenshot {html.escape(rel)} is missing)</div>'
        ident, w, h = ref
        overlay = _svg_marks(marks or [], w, h)
        main = (
            f'<svg class="{css}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{html.escape(rel)}">'
            f'<use href="#{ident}"/>{overlay}</svg>'
        )
        box = _zoom_box(marks or [], w, h) if inset else None
        if box is None or not self._has_detail(rel, box):
            return main
        x0, y0, zw, zh = box
        marks_in = _svg_marks(marks or [], zw, zh, unit=zw / 420.0, labels=False)
        # put the magnifier in the corner away from the marks so it never hides them
        side = "l" if x0 + zw / 2 > w / 2 else "r"
        edge = "t" if y0 + zh / 2 > h / 2 else "b"
        return main + (
            f'<svg class="inset inset-{edge}{side}" viewBox="{x0:.0f} {y0:.0f} {zw:.0f} {zh:.0f}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="magnified">'
            f'<use href="#{ident}"/>{marks_in}</svg>'
        )

    def _has_detail(self, rel: str, box: tuple[float, float, float, float]) -> bool:
        """False when the crop is one flat colour (a magnifier would show nothing)."""
        x0, y0, zw, zh = box
        try:
            with Image.open(self.run_dir / rel) as im:
                crop = im.convert("RGB").crop((int(x0), int(y0), int(x0 + zw), int(y0 + zh)))
        except (OSError, ValueError):
            return False
        # an RGB image: one (min, max) pair per band (Pillow types the one-band form too)
        extrema = cast("tuple[tuple[int, int], ...]", crop.getextrema())
        return any(lo != hi for lo, hi in extrema)

    def defs_html(self) -> str:
        unit = 2.0
        arrows = "".join(
            f'<marker id="arrow-{k}" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="{unit * 2}"'
            f' markerHeight="{unit * 2}" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"'
            f' fill="{_COLOURS[k]}"/></marker>'
            for k in ("drag", "scroll")
        )
        return (
            '<svg width="0" height="0" style="position:absolute" aria-hidden="true" '
            f'xmlns="http://www.w3.org/2000/svg"><defs>{arrows}{"".join(self.defs)}</defs></svg>'
        )


def _zoom_box(
    marks: list[Mark], width: int, height: int
) -> tuple[float, float, float, float] | None:
    """(x0, y0, w, h) of a crop around the marks with the image's aspect ratio, or None when
    it would not magnify (marks spread over most of the screen)."""
    pts = [p for m in marks if m.kind != "zoom" for p in m.points]
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    aspect = width / height
    zw = max(width / 6.0, (max(xs) - min(xs)) * 1.3 + 60)
    zh = max(zw / aspect, (max(ys) - min(ys)) * 1.3 + 60)
    zw = max(zw, zh * aspect)
    zh = zw / aspect
    if zw > width * 0.6:
        return None
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    x0 = min(max(cx - zw / 2, 0.0), width - zw)
    y0 = min(max(cy - zh / 2, 0.0), height - zh)
    return x0, y0, zw, zh


def _esc(text: Any) -> str:
    return html.escape(str(text))


def _outcome_class(end: dict[str, Any]) -> str:
    """CSS class of a run's outcome: ok (the model ended it), err (an error), warn (a limit,
    a budget or an interrupt stopped it)."""
    reason = end.get("stop_reason")
    if end.get("error") or reason in ("api_error", "error"):
        return "err"
    return "ok" if reason == "end_turn" else "warn"


def _stop_reason(run: RunRecord) -> str:
    if run.end is not None:
        return str(run.end.get("stop_reason") or "?")
    return "no run_end (the run died or is still running)"


def _render(run: RunRecord) -> str:
    images = _Images(run.run_dir)
    start = run.start or {}
    end = run.end
    last_step = run.steps[-1] if run.steps else {}
    cumulative = last_step.get("cumulative") or {}
    usage = (end or {}).get("usage") or cumulative.get("usage") or {}
    cost = (end or {}).get("cost", cumulative.get("cost"))
    elapsed = (end or {}).get("t", last_step.get("t"))
    n_actions = sum(len(s.get("actions") or []) for s in run.steps)
    task = start.get("task", "(no run_start line: the task is unknown)")
    body: list[str] = []

    body.append("<h1>deskpilot run report</h1>")
    sub = [
        f"model <b>{_esc(start.get('model', '?'))}</b>"
        + (f" ({_esc(start['model_id'])})" if start.get("model_id") else ""),
        f"provider {_esc(start.get('provider', '?'))}",
    ]
    if start.get("native_size"):
        ns, ms = start["native_size"], start.get("model_size")
        sub.append(f"screen {ns[0]}×{ns[1]}" + (f" (model sees {ms[0]}×{ms[1]})" if ms else ""))
    if start.get("started_at"):
        sub.append(f"started {_esc(start['started_at'])}")
    body.append(f'<div class="sub">{" · ".join(sub)}</div>')
    body.append(f'<div class="task">{_esc(task)}</div>')

    totals = [
        ("steps", str(len(run.steps))),
        ("actions", str(n_actions)),
        ("time", _fmt_s(elapsed)),
        ("tokens", _fmt_int(_total_tokens(usage))),
        ("cost", _fmt_cost(cost)),
        ("stop reason", _esc(end.get("stop_reason", "?") if end else "none")),
    ]
    body.append(
        '<div class="totals">'
        + "".join(f'<div class="total"><span>{k}</span><b>{v}</b></div>' for k, v in totals)
        + "</div>"
    )
    body.append(f'<div class="meta">Tokens: {_usage_line(usage)}</div>')
    if end is not None and end.get("final_text"):
        body.append(
            f'<div class="banner {_outcome_class(end)} answer"><b>Final answer:</b> '
            f"{_esc(end['final_text'])}</div>"
        )

    if end is None:
        body.append(
            '<div class="banner warn"><b>This run has no run_end record</b>: it died or is still '
            f"running. Showing the {len(run.steps)} step(s) that were completed.</div>"
        )
    elif end.get("error"):
        body.append(
            f'<div class="banner err"><b>The run stopped with an error '
            f"({_esc(end.get('stop_reason'))}):</b> {_esc(end['error'])}</div>"
        )
    for problem in run.problems:
        body.append(f'<div class="banner warn">{_esc(problem)}</div>')
    for check in run.checks:
        ok = check.get("ok") is True
        mark = "✓" if ok else "✗"
        body.append(
            f'<div class="banner {"ok" if ok else "err"} check"><b>{mark} {_esc(check["name"])}'
            f"</b>" + (f" — {_esc(check['detail'])}" if check.get("detail") else "") + "</div>"
        )

    anims = [n for n in ("run.gif", "run.mp4") if (run.run_dir / n).is_file()]
    if anims:
        links = " · ".join(f'<a href="{n}">{n}</a>' for n in anims)
        body.append(f'<div class="meta">Animation of the run (next to this file): {links}</div>')

    views = list(_walk(run))
    by_id: dict[int, list[_ActionView]] = {}
    for v in views:
        by_id.setdefault(id(v.step), []).append(v)

    # filmstrip: the last screen of every step
    film: list[str] = []
    if run.initial_screenshot:
        film.append(f'<a href="#step-1">{images.svg(run.initial_screenshot)}<div>start</div></a>')
    for step in run.steps:
        step_views = by_id.get(id(step), [])
        shots = [v.after for v in step_views if v.after]
        if shots:
            idx = step.get("index", "?")
            bad = (step.get("response") or {}).get("is_error") or any(
                v.action.get("is_error") for v in step_views
            )
            css = ' class="bad"' if bad else ""
            film.append(
                f'<a href="#step-{idx}"{css}>{images.svg(shots[-1])}<div>step {idx}</div></a>'
            )
    if film:
        body.append(f'<h2>Timeline</h2><div class="film">{"".join(film)}</div>')

    if start.get("system_prompt"):
        body.append(
            '<details class="sys"><summary>System prompt and tool versions</summary>'
            f"<pre>{_esc(start['system_prompt'])}</pre>"
            f"<pre>{_esc(json.dumps(start.get('tool_versions') or {}, indent=2))}</pre></details>"
        )

    body.append("<h2>Steps</h2>")
    for step in run.steps:
        body.append(_render_step(step, by_id.get(id(step), []), images))

    body.append("<h2>Result</h2>")
    if end is not None:
        cls = _outcome_class(end)
        final = end.get("final_text")
        body.append(
            f'<div class="banner {cls}"><b>Stop reason: {_esc(end.get("stop_reason"))}</b>'
            + (f" — {_esc(end['error'])}" if end.get("error") else "")
            + "</div>"
        )
        if final:
            body.append(f'<div class="task final">{_esc(final)}</div>')
    else:
        body.append(f'<div class="banner warn">{_esc(_stop_reason(run))}.</div>')
    last_screen = next((v.after for v in reversed(views) if v.after), None)
    if last_screen:
        body.append(
            '<div class="shots one"><figure>'
            f"{images.svg(last_screen)}<figcaption>The last screen.</figcaption></figure></div>"
        )
    version = start.get("deskpilot_version", "")
    body.append(
        f"<footer>Written by deskpilot {_esc(version)} from {_esc(run.run_dir.name)}/{TRAJECTORY}. "
        "Marks are drawn in model-space pixels on the screenshots the model received; dashed "
        "marks are at the cursor position inferred from earlier actions.</footer>"
    )
    title = f"deskpilot · {_short(str(task), 70)}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"{images.defs_html()}<main>{''.join(body)}</main></body></html>\n"
    )


def _timing_bar(timings: dict[str, Any]) -> str:
    total = timings.get("step_s") or 0
    if not isinstance(total, int | float) or total <= 0:
        return ""
    parts = []
    for key, cls in (("model_s", "m"), ("actions_s", "a"), ("overhead_s", "o")):
        val = timings.get(key) or 0
        if isinstance(val, int | float) and val > 0:
            parts.append(f'<i class="{cls}" style="width:{min(100, 100 * val / total):.1f}%"></i>')
    return f'<span class="bar" title="model / actions / overhead">{"".join(parts)}</span>'


def _render_step(step: dict[str, Any], views: list[_ActionView], images: _Images) -> str:
    idx = step.get("index", "?")
    resp = step.get("response") or {}
    timings = step.get("timings") or {}
    is_error = bool(resp.get("is_error"))
    any_action_error = any(v.action.get("is_error") for v in views)
    out = [f'<section class="step{" error" if is_error else ""}" id="step-{idx}">']
    meta = [
        f"t = {_fmt_s(step.get('t'))}",
        f"model {_fmt_s(timings.get('model_s'))}",
        f"actions {_fmt_s(timings.get('actions_s'))}",
        f"overhead {_fmt_s(timings.get('overhead_s'))}",
        _usage_line(resp.get("usage")),
        _fmt_cost(resp.get("cost")),
        f"stop {_esc(resp.get('stop_reason'))}",
    ]
    if isinstance(resp.get("images_in_request"), int):
        n = resp["images_in_request"]
        meta.append(f"{n} screenshot{'' if n == 1 else 's'} sent")
    if resp.get("attempts", 1) not in (1, None):
        meta.append(f"{resp['attempts']} attempts")
    out.append(
        f'<div class="step-head"><h3>Step {_esc(idx)}</h3>{_timing_bar(timings)}'
        f'<span class="meta">{" · ".join(meta)}</span>'
        + ('<span class="badge err">action error</span>' if any_action_error else "")
        + "</div>"
    )
    if is_error:
        out.append(
            f'<div class="banner err"><b>API error:</b> {_esc(resp.get("error_message"))}</div>'
        )
    views_by_id = {v.action.get("tool_use_id"): v for v in views}
    shown: set[int] = set()
    for block in resp.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            out.append(f'<div class="text">{_esc(block["text"])}</div>')
        elif kind == "thinking":
            out.append(
                '<details class="thinking"><summary>thinking</summary>'
                f"<pre>{_esc(block.get('thinking', ''))}</pre></details>"
            )
        elif kind == "tool_use":
            view = views_by_id.get(block.get("id"))
            if view is not None:
                out.append(_render_action(view, images))
                shown.add(id(view))
            else:
                out.append(
                    '<div class="action"><div class="action-head"><code>'
                    f'{_esc(block.get("name"))}</code><span class="badge">not executed</span>'
                    f"</div><pre>{_esc(json.dumps(block.get('input'), ensure_ascii=False))}</pre>"
                    "</div>"
                )
    for view in views:
        if id(view) not in shown:
            out.append(_render_action(view, images))
    out.append("</section>")
    return "".join(out)


def _render_action(view: _ActionView, images: _Images) -> str:
    action = view.action
    err = bool(action.get("is_error"))
    t = action.get("timings") or {}
    badges = []
    if err:
        badges.append('<span class="badge err">error</span>')
    if action.get("approved") is False:
        badges.append('<span class="badge err">declined by the user</span>')
    timing = " · ".join(
        f"{label} {_fmt_s(t.get(key))}"
        for key, label in (
            ("action_s", "action"),
            ("settle_s", "settle"),
            ("screenshot_s", "screenshot"),
            ("total_s", "total"),
        )
        if key in t
    )
    out = [
        f'<div class="action{" error" if err else ""}">'
        f'<div class="action-head"><code>{_esc(action_summary(action))}</code>{"".join(badges)}'
        f'<span class="meta">{timing}</span></div>'
    ]
    inp = action.get("input")
    if view.name == "bash" and isinstance(inp, dict) and isinstance(inp.get("command"), str):
        out.append(f'<pre class="cmd">$ {_esc(inp["command"])}</pre>')
    else:
        raw = _esc(json.dumps(inp, ensure_ascii=False))
        out.append(f'<div class="raw">{_esc(action.get("name"))} input: <code>{raw}</code></div>')
    if view.name == "type" and isinstance(inp, dict) and isinstance(inp.get("text"), str):
        out.append(f'<pre class="typed">{_esc(inp["text"])}</pre>')
    text = action.get("text")
    if text:
        out.append(
            f'<pre class="result{" err" if err else ""}" title="the tool result the model '
            f'received">{_esc(text)}</pre>'
        )
    figures = []
    if view.marks and view.before:
        figures.append(
            f'<figure class="before">{images.svg(view.before, view.marks, inset=True)}'
            "<figcaption>Before: where the action was aimed</figcaption></figure>"
        )
    if view.after and view.unchanged and not view.marks:
        figures.append(
            f'<figure class="small">{images.svg(view.after)}'
            "<figcaption>After: the screen did not change</figcaption></figure>"
        )
    elif view.after:
        caption = "After: no visible change" if view.unchanged else "After"
        figures.append(
            f"<figure>{images.svg(view.after)}<figcaption>{caption}</figcaption></figure>"
        )
    elif view.marks and not view.before:
        figures.append('<div class="meta">(no screenshot to draw the action on)</div>')
    if figures:
        css = "shots" if len(figures) == 2 else "shots one"
        if 'figure class="small"' in figures[0]:
            css = "shots small"
        out.append(f'<div class="{css}">{"".join(figures)}</div>')
    out.append("</div>")
    return "".join(out)


def write_report(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Write the self-contained HTML report of a run.

    Args:
        run_dir: a run directory (``trajectory.jsonl`` + ``screenshots/``); ``run_end`` may be
            missing.
        out: where to write; default ``RUN_DIR/report.html``.

    Returns:
        The path of the written HTML file (UTF-8; images inlined as base64 ``data:`` URIs,
        each screenshot once).

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
        DeskpilotError: the file could not be written (the message names it).
    """
    run = load_run(run_dir)
    page = _render(run)
    target = Path(out) if out is not None else run.run_dir / "report.html"
    try:
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise DeskpilotError(f"Could not write the report to {target}: {exc}.") from exc
    return target


# --- animation -------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_PATHS:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def draw_marks(img: Image.Image, marks: list[Mark]) -> Image.Image:
    """Draw marks (MODEL-space pixels = this image's pixels) on a copy of ``img`` (RGB)."""
    out = img.convert("RGB").copy()
    draw = ImageDraw.Draw(out, "RGBA")
    unit = max(out.size) / 640.0
    width = max(2, round(2.4 * unit))
    font = _font(max(12, round(11 * unit)))
    for mark in marks:
        colour = _COLOURS.get(mark.kind, "#ff2d55")
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
            mark.label,
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


def _frames(run: RunRecord) -> list[_Frame]:
    frames: list[_Frame] = []
    task = str((run.start or {}).get("task", ""))
    if run.initial_screenshot:
        frames.append(_Frame(run.initial_screenshot, [], f"Task: {_short(task, 90)}", 1500))
    last: str | None = run.initial_screenshot
    for view in _walk(run):
        label = f"Step {view.step.get('index', '?')}: {action_summary(view.action)}"
        if view.action.get("is_error"):
            label += "  [error]"
        if view.marks and view.before:
            frames.append(_Frame(view.before, view.marks, label, 1000))
            if view.after:
                frames.append(_Frame(view.after, [], label + " → done", 600))
        elif view.after:
            frames.append(_Frame(view.after, [], label, 900))
        elif last is not None:
            result = _short(str(view.action.get("text") or "").strip(), 50)
            frames.append(_Frame(last, [], label + (f" → {result}" if result else ""), 1400))
        if view.after:
            last = view.after
    if last is not None:
        end = run.end
        if end is not None:
            final = _short(str(end.get("final_text") or end.get("stop_reason") or ""), 90)
            caption = f"Done ({end.get('stop_reason')}): {final}"
        else:
            caption = "The run ended without a run_end record."
        frames.append(_Frame(last, [], caption, 2500))
    return frames


def _render_frames(
    run: RunRecord, frames: list[_Frame], max_width: int
) -> list[tuple[Image.Image, int]]:
    rendered: list[tuple[Image.Image, int]] = []
    size: tuple[int, int] | None = None
    cache: dict[str, Image.Image] = {}
    for frame in frames:
        if frame.image not in cache:
            with Image.open(run.run_dir / frame.image) as im:
                cache[frame.image] = im.convert("RGB")
        img = draw_marks(cache[frame.image], frame.marks) if frame.marks else cache[frame.image]
        if size is None:
            w, h = img.size
            scale = min(1.0, max_width / w)
            size = (max(2, round(w * scale)) // 2 * 2, max(2, round(h * scale)) // 2 * 2)
        img = img.resize(size, Image.Resampling.LANCZOS) if img.size != size else img.copy()
        bar_h = max(24, size[1] // 20) // 2 * 2
        canvas = Image.new("RGB", (size[0], size[1] + bar_h), (28, 28, 30))
        canvas.paste(img, (0, 0))
        draw = ImageDraw.Draw(canvas)
        font = _font(max(11, int(bar_h * 0.5)))
        caption = frame.caption
        while caption and draw.textlength(caption, font=font) > size[0] - 16:
            caption = caption[:-2] + "…" if len(caption) > 2 else ""
        draw.text((8, size[1] + bar_h / 2), caption, fill=(245, 245, 247), font=font, anchor="lm")
        rendered.append((canvas, frame.duration_ms))
    return rendered


def write_animation(
    run_dir: str | os.PathLike[str], *, max_width: int = 800, mp4: bool = True
) -> list[Path]:
    """Write ``RUN_DIR/run.gif`` (and ``RUN_DIR/run.mp4`` when ffmpeg is on PATH).

    Frames: the initial screen, then for each action the screen before it with the action
    drawn (model-space marks) and the screen after it, each with a caption bar; a final
    frame with the answer. Frames are scaled to at most ``max_width`` pixels wide.

    Returns:
        The written files (empty when the run has no screenshots).

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
        DeskpilotError: the GIF could not be written. A failing ffmpeg only logs a warning
            (the GIF is the portable result).
    """
    run = load_run(run_dir)
    frames = _frames(run)
    if not frames:
        return []
    rendered = _render_frames(run, frames, max_width)
    written: list[Path] = []
    gif = run.run_dir / "run.gif"
    palette_frames = [
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        for im, _ in rendered
    ]
    try:
        palette_frames[0].save(
            gif,
            save_all=True,
            append_images=palette_frames[1:],
            duration=[d for _, d in rendered],
            loop=0,
            disposal=1,
        )
    except OSError as exc:
        raise DeskpilotError(f"Could not write the animation {gif}: {exc}.") from exc
    written.append(gif)
    if mp4:
        video = _write_mp4(rendered, run.run_dir / "run.mp4")
        if video is not None:
            written.append(video)
    return written


def _write_mp4(rendered: list[tuple[Image.Image, int]], target: Path) -> Path | None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        log.info("ffmpeg is not on PATH; skipping %s (the GIF has the same frames).", target)
        return None
    with tempfile.TemporaryDirectory(prefix="deskpilot-mp4-") as tmp:
        lines = ["ffconcat version 1.0"]
        for i, (im, duration_ms) in enumerate(rendered):
            name = f"f{i:05d}.png"
            im.save(os.path.join(tmp, name), compress_level=1)
            lines += [f"file {name}", f"duration {duration_ms / 1000:.3f}"]
        lines.append(f"file f{len(rendered) - 1:05d}.png")  # concat demuxer: last frame twice
        listing = os.path.join(tmp, "frames.ffconcat")
        Path(listing).write_text("\n".join(lines) + "\n", encoding="utf-8")
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
                listing,
                "-vf",
                "fps=10,format=yuv420p",
                *codec,
                "-movflags",
                "+faststart",
                str(target),
            ]
            try:
                proc = subprocess.run(cmd, capture_output=True, timeout=180, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.warning("ffmpeg failed for %s: %s", target, exc)
                return None
            if proc.returncode == 0 and target.is_file():
                return target
            log.info("ffmpeg %s failed: %s", codec[1], proc.stderr.decode(errors="replace")[-300:])
    log.warning("ffmpeg could not write %s; only the GIF was written.", target)
    return None
