"""What an action looks like on a screenshot: its marks (geometry in MODEL-space pixels) and
its one-line description.

The screenshots of a run are the model-space images the model received, so the coordinates
in a recorded tool input land on them unchanged (computer-use tool page, "Coordinate
scaling": https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/computer-use-tool).
Inputs are untrusted: a coordinate that is not a pair of finite numbers within
:data:`MAX_COORD` draws nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..records import ActionRecord

__all__ = [
    "COLOURS",
    "MAX_COORD",
    "Mark",
    "Shape",
    "action_marks",
    "action_name",
    "action_summary",
    "cursor_after",
    "shapes",
    "short",
    "zoom_box",
]

MAX_COORD = 1_000_000.0
"""Largest coordinate (absolute value, pixels) drawn; larger or non-finite values draw nothing."""

COLOURS = {"point": "#ff2d55", "drag": "#ff9500", "scroll": "#34c759", "zoom": "#5ac8fa"}

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
_SCROLL_VECTORS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}

ActionLike = ActionRecord | Mapping[str, Any]
"""An :class:`~deskpilot.agent.records.ActionRecord`, or a mapping with ``name``,
``toolset_name`` and ``input`` (e.g. built from a ``ToolCall`` before it runs)."""


@dataclass(frozen=True, slots=True)
class Mark:
    """Something to draw on a screenshot, in MODEL-space pixels.

    Attributes:
        kind: ``"point"`` (click/move), ``"drag"`` (``points`` = start, end), ``"scroll"``
            (``points`` = position, arrow tip), or ``"zoom"`` (``points`` = two corners).
        points: ``(x, y)`` pairs, finite and within :data:`MAX_COORD`.
        label: a short text (``"left_click"``, ``"scroll down ×3"``).
        inferred: True when the position is the cursor position inferred from earlier
            actions (the action itself carried no coordinate).
    """

    kind: str
    points: tuple[tuple[float, float], ...]
    label: str
    inferred: bool = False


def _parts(action: ActionLike) -> tuple[str, str | None, dict[str, Any]]:
    if isinstance(action, ActionRecord):
        return action.name, action.toolset_name, dict(action.input)
    name = action.get("name")
    toolset = action.get("toolset_name")
    inp = action.get("input")
    return (
        str(name) if name is not None else "?",
        str(toolset) if isinstance(toolset, str) and toolset else None,
        dict(inp) if isinstance(inp, Mapping) else {},
    )


def action_name(action: ActionLike) -> str:
    """The action's display name: the computer ``action`` (also for toolset members) or the
    tool name (``bash``, ``str_replace_based_edit_tool``, custom tools)."""
    name, toolset, inp = _parts(action)
    if toolset:
        return name
    if name == "computer" and inp.get("action"):
        return str(inp["action"])
    return name


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return f if math.isfinite(f) and abs(f) <= MAX_COORD else None


def _xy(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        x, y = _num(value[0]), _num(value[1])
        if x is not None and y is not None:
            return x, y
    return None


def action_marks(action: ActionLike, cursor: tuple[float, float] | None = None) -> list[Mark]:
    """The marks to draw for one recorded action (MODEL-space pixels, as the model sent them).

    Args:
        action: a recorded action (``name``, ``toolset_name``, ``input``).
        cursor: the pointer position after the previous actions, used for clicks without a
            ``coordinate`` (computer_20241022 clicks where the cursor is) and for its drag start.

    Returns:
        Zero or more :class:`Mark`; empty for actions without a usable position (type, key,
        bash, a coordinate that is not two finite numbers...).
    """
    _, _, inp = _parts(action)
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
        direction = inp.get("scroll_direction")
        direction = direction if direction in _SCROLL_VECTORS else "down"
        amount = inp.get("scroll_amount")
        amount = amount if isinstance(amount, int) and not isinstance(amount, bool) else None
        dx, dy = _SCROLL_VECTORS[direction]
        length = 40.0 + 8.0 * max(0, min(amount if amount is not None else 3, 10))
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


def cursor_after(
    action: ActionLike, cursor: tuple[float, float] | None
) -> tuple[float, float] | None:
    """The pointer position after ``action`` (its ``coordinate``, except for zoom)."""
    _, _, inp = _parts(action)
    coord = _xy(inp.get("coordinate"))
    if coord is not None and action_name(action) != "zoom":
        return coord
    return cursor


def short(text: str, limit: int = 60) -> str:
    """``text`` on one line (newlines as ⏎), cut to ``limit`` characters with an ellipsis."""
    text = str(text).replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def action_summary(action: ActionLike) -> str:
    """A one-line human description: ``left_click (412, 300)``, ``type 'def main…'``,
    ``bash: python3 hello.py``. Plain text (escape it before putting it in HTML)."""
    raw_name, toolset, inp = _parts(action)
    name = action_name(action)
    coord = _xy(inp.get("coordinate"))
    if name == "left_click_drag":
        start = _xy(inp.get("start_coordinate"))
        a = f"({start[0]:.0f}, {start[1]:.0f}) → " if start else "→ "
        b = f"({coord[0]:.0f}, {coord[1]:.0f})" if coord else "?"
        return f"drag {a}{b}"
    if name in ("type", "key", "hold_key"):
        extra = (
            f" for {short(str(inp['duration']), 20)} s"
            if name == "hold_key" and "duration" in inp
            else ""
        )
        return f"{name} {short(repr(inp.get('text', '')))}{extra}"
    if name == "scroll":
        where = f" at ({coord[0]:.0f}, {coord[1]:.0f})" if coord else ""
        direction = short(str(inp.get("scroll_direction", "?")), 20)
        amount = short(str(inp.get("scroll_amount", "?")), 20)
        return f"scroll {direction} ×{amount}{where}"
    if name == "wait":
        return f"wait {short(str(inp.get('duration', '?')), 20)} s"
    if name == "zoom":
        return f"zoom {short(_json(inp.get('region')), 60)}"
    if coord is not None:
        mods = (
            f" with {short(inp['text'], 30)}"
            if isinstance(inp.get("text"), str) and inp["text"]
            else ""
        )
        return f"{short(name, 40)} ({coord[0]:.0f}, {coord[1]:.0f}){mods}"
    if name == "bash":
        if inp.get("restart"):
            return "bash: restart"
        return f"bash: {short(str(inp.get('command', '')), 70)}"
    if "command" in inp and "path" in inp:
        return f"{short(name, 40)}: {short(str(inp['command']), 20)} {short(str(inp['path']), 80)}"
    if raw_name == "computer" or toolset:
        return short(name, 60)
    return f"{short(name, 40)} {short(_json(inp), 70)}"


def zoom_box(
    marks: list[Mark], width: float, height: float
) -> tuple[float, float, float, float] | None:
    """(x0, y0, w, h) of a crop around the marks with the image's aspect ratio, or None when
    it would not magnify (marks spread over most of the screen)."""
    pts = [p for m in marks if m.kind != "zoom" for p in m.points]
    if not pts or width <= 0 or height <= 0:
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


# --- SVG geometry (laid out by the template) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """One mark as SVG geometry: every number already formatted (``attrs``), for the template.

    Attributes:
        kind: the mark kind (``point``, ``drag``, ``scroll``, ``zoom``) or ``label``.
        colour: the stroke/fill colour (``#rrggbb``).
        attrs: numbers by name: point ``x y r dot``; drag/scroll ``x1 y1 x2 y2 r``; zoom
            ``x y w h``; label ``x y size halo``; plus ``sw`` (stroke width) and ``dash``
            (a stroke-dasharray, empty when solid).
        text: the label text (labels only).
    """

    kind: str
    colour: str
    attrs: dict[str, str]
    text: str = ""


def _g(v: float) -> str:
    return f"{v:g}"


def _f1(v: float) -> str:
    return f"{v:.1f}"


def shapes(
    marks: list[Mark],
    width: float,
    height: float,
    *,
    unit: float | None = None,
    labels: bool = True,
    origin: tuple[float, float] = (0.0, 0.0),
) -> list[Shape]:
    """The SVG geometry of ``marks`` on an image (or a crop of it at ``origin``, ``width`` x
    ``height``); ``unit`` scales strokes and radii (default: the view's long side / 640)."""
    if unit is None:
        unit = max(width, height) / 640.0  # so marks look alike at any size
    out: list[Shape] = []
    for mark in marks:
        colour = COLOURS.get(mark.kind, COLOURS["point"])
        common = {
            "sw": _f1(2.2 * unit),
            "dash": f"{4 * unit:.1f} {3 * unit:.1f}" if mark.inferred else "",
        }
        if mark.kind == "point":
            (x, y) = mark.points[0]
            attrs = {"x": _g(x), "y": _g(y), "r": _f1(14 * unit), "dot": _f1(2.5 * unit)}
        elif mark.kind in ("drag", "scroll"):
            (x1, y1), (x2, y2) = mark.points
            attrs = {"x1": _g(x1), "y1": _g(y1), "x2": _g(x2), "y2": _g(y2), "r": _f1(6 * unit)}
        else:  # zoom
            (x1, y1), (x2, y2) = mark.points
            attrs = {
                "x": _g(min(x1, x2)),
                "y": _g(min(y1, y2)),
                "w": _g(abs(x2 - x1)),
                "h": _g(abs(y2 - y1)),
            }
        out.append(Shape(mark.kind, colour, {**attrs, **common}))
        if not labels:
            continue
        # label near the first point, kept inside the view
        (lx, ly) = mark.points[0]
        fs = 14 * unit
        ox, oy = origin
        tx = min(max(lx + 18 * unit, ox + 2), ox + width - len(mark.label) * fs * 0.62 - 4)
        ty = min(max(ly - 16 * unit, oy + fs + 2), oy + height - 4)
        out.append(
            Shape(
                "label",
                colour,
                {"x": _f1(tx), "y": _f1(ty), "size": _f1(fs), "halo": _f1(3 * unit)},
                mark.label,
            )
        )
    return out
