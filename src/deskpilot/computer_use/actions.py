"""Validation of computer-tool input, per tool version, into one typed :class:`Action`.

The model's ``input`` dict is checked against the version's actions and parameters
(shared/reference/peers.md §1.2, anthropic_reference.md §2.2) before anything touches the
desktop; every problem raises :class:`~deskpilot.errors.ToolInputError` with a sentence the
model can act on (the reference's texts where they are good: "coordinate is required for
mouse_move", "Invalid action: foo", "scroll_direction=... must be 'up', 'down', 'left', or
'right'"). Unknown or misplaced parameters are rejected, ``None`` values count as absent.

Differences from the reference, on purpose: modifier keys for clicks, scroll and drag come
from ``text`` (what the model sends, reference issue #263; ``key`` is accepted too on the
2025 beta versions, as the reference read it); a non-string ``text`` is an error, not a
``TypeError`` crash; coordinates are range-checked later in *model* space by
:mod:`deskpilot.computer_use.scaling`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ToolInputError
from .specs import ACTIONS_20251124, ComputerSpec, computer_spec

CLICKS: dict[str, tuple[str, int]] = {
    "left_click": ("left", 1),
    "right_click": ("right", 1),
    "middle_click": ("middle", 1),
    "double_click": ("left", 2),
    "triple_click": ("left", 3),
}
"""click action -> (mouse button, click count)."""

SCROLL_DIRECTIONS = ("up", "down", "left", "right")
MAX_SCROLL_AMOUNT = 100
MAX_KEY_REPEAT = 100


@dataclass(frozen=True, slots=True)
class Action:
    """One validated computer action; coordinates still in MODEL space (unchecked range).

    Attributes:
        name: the action (``left_click``, ``zoom``, ...).
        coordinate: (x, y) target, or None.
        start_coordinate: drag start (x, y), or None (20241022: from the pointer).
        text: text to type / keys to press or hold, or None.
        modifiers: modifier key names held during clicks, scroll and drags (``("ctrl",)``).
        scroll_direction / scroll_amount: for ``scroll`` (wheel clicks).
        duration: seconds, for ``hold_key`` and ``wait``.
        region: (x0, y0, x1, y1) for ``zoom``.
        repeat: times to press ``key`` (toolset ``repeat``; 1 otherwise).
    """

    name: str
    coordinate: tuple[int, int] | None = None
    start_coordinate: tuple[int, int] | None = None
    text: str | None = None
    modifiers: tuple[str, ...] = ()
    scroll_direction: str | None = None
    scroll_amount: int | None = None
    duration: float | None = None
    region: tuple[int, int, int, int] | None = None
    repeat: int = 1


def _params_for(action: str, spec: ComputerSpec) -> tuple[set[str], set[str]]:
    """(required, optional) parameter names of ``action`` in ``spec`` (besides ``action``)."""
    legacy = spec.type == "computer_20241022"
    beta_2025 = spec.type in ("computer_20250124", "computer_20251124")
    if action in ("screenshot", "cursor_position", "left_mouse_down", "left_mouse_up"):
        return set(), set()
    if action == "mouse_move":
        return {"coordinate"}, set()
    if action in CLICKS:
        if legacy:
            return set(), {"text"}
        return set(), {"coordinate", "text", *(("key",) if beta_2025 else ())}
    if action == "left_click_drag":
        if legacy:
            return {"coordinate"}, {"text"}
        return {"start_coordinate", "coordinate"}, {"text"}
    if action == "scroll":
        return {"scroll_direction", "scroll_amount"}, {
            "coordinate",
            "text",
            *(("key",) if beta_2025 else ()),
        }
    if action == "hold_key":
        return {"text", "duration"}, set()
    if action == "wait":
        return {"duration"}, set()
    if action == "key":
        return {"text"}, ({"repeat"} if spec.toolset else set())
    if action == "type":
        return {"text"}, set()
    if action == "zoom":
        return {"region"}, set()
    raise AssertionError(action)  # pragma: no cover - every action of the specs is handled


def _point(value: Any, name: str) -> tuple[int, int]:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ToolInputError(
        f"{name}={value!r} must be a list of two non-negative integers [x, y] in screenshot pixels."
    )


def _text(value: Any, action: str) -> str:
    if not isinstance(value, str):
        raise ToolInputError(
            f"text must be a string for {action}, not {type(value).__name__} ({value!r}); "
            'send it quoted, e.g. "text": "123".'
        )
    return value


_MODIFIER_SPLIT = re.compile(r"[+\s]+")


def parse_modifiers(value: Any, action: str) -> tuple[str, ...]:
    """Modifier keys from ``text`` (``"ctrl"``, ``"shift+alt"``, ``"ctrl shift"``)."""
    text = _text(value, action)
    parts = tuple(p for p in _MODIFIER_SPLIT.split(text.strip()) if p)
    if text.strip() and not parts:
        raise ToolInputError(
            f"text={value!r} names no modifier keys for {action}; send e.g. 'ctrl' or 'shift+alt'."
        )
    return parts


def _duration(value: Any, spec: ComputerSpec) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ToolInputError(f"duration={value!r} must be a non-negative number of seconds.")
    if value < 0:
        raise ToolInputError(f"duration={value!r} must be a non-negative number of seconds.")
    if value > spec.hold_cap_s:
        raise ToolInputError(
            f"duration={value} is too long; the maximum for {spec.type} is "
            f"{spec.hold_cap_s:g} seconds."
        )
    return float(value)


def allowed_actions(spec: ComputerSpec, *, enable_zoom: bool = True) -> tuple[str, ...]:
    """The actions the model may use with this version and zoom setting."""
    return tuple(a for a in spec.actions if a != "zoom" or (spec.zoom and enable_zoom))


def parse_action(
    action: Any,
    params: dict[str, Any],
    version: str,
    *,
    enable_zoom: bool = True,
) -> Action:
    """Validate one computer action for ``version``.

    Args:
        action: the action name (``input.action`` for beta versions, the tool_use ``name``
            for toolset members).
        params: the other input keys (``action`` removed); ``None`` values count as absent.
        version: a computer tool version of :data:`deskpilot.computer_use.specs.TOOL_VERSIONS`.
        enable_zoom: whether ``zoom`` is enabled (``computer_20251124`` and the toolset).

    Returns:
        The :class:`Action`, coordinates in model space and not yet range-checked.

    Raises:
        ToolInputError: unknown action, action not in this version, a missing, unexpected
            or malformed parameter, a duration over the version's cap.
    """
    spec = computer_spec(version)
    allowed = allowed_actions(spec, enable_zoom=enable_zoom)
    if action is None:
        raise ToolInputError(
            f"action is required; the {version} computer tool accepts: {', '.join(allowed)}."
        )
    if not isinstance(action, str) or action not in ACTIONS_20251124:
        raise ToolInputError(
            f"Invalid action: {action}. The {version} computer tool accepts: {', '.join(allowed)}."
        )
    if action not in allowed:
        why = (
            " (zoom is disabled for this tool)"
            if action == "zoom" and action in spec.actions
            else ""
        )
        raise ToolInputError(
            f"The action {action} is not available in {version}{why}; it accepts: "
            f"{', '.join(allowed)}."
        )
    given = {k: v for k, v in params.items() if v is not None}
    required, optional = _params_for(action, spec)
    for name in sorted(set(given) - required - optional):
        takes = ", ".join(sorted(required | optional)) or "no parameters"
        hint = ""
        if name == "coordinate" and action in CLICKS and spec.type == "computer_20241022":
            hint = " in computer_20241022 (it clicks where the pointer is; move it first with mouse_move)"
        elif name == "coordinate" and action in ("left_mouse_down", "left_mouse_up"):
            hint = " (move the pointer first with mouse_move)"
        raise ToolInputError(f"{name} is not accepted for {action}{hint}; it takes: {takes}.")
    for name in sorted(required):
        if name not in given:
            raise ToolInputError(f"{name} is required for {action}.")

    kw: dict[str, Any] = {}
    if "coordinate" in given:
        kw["coordinate"] = _point(given["coordinate"], "coordinate")
    if "start_coordinate" in given:
        kw["start_coordinate"] = _point(given["start_coordinate"], "start_coordinate")
    modifier_actions = (*CLICKS, "scroll", "left_click_drag")
    if action in modifier_actions:
        mods: tuple[str, ...] = ()
        for name in ("text", "key"):
            if name in given:
                mods += parse_modifiers(given[name], action)
        kw["modifiers"] = tuple(dict.fromkeys(mods))
    elif "text" in given:
        text = _text(given["text"], action)
        if action in ("key", "hold_key") and not text.strip():
            raise ToolInputError(f"text is required for {action} (e.g. 'Return' or 'ctrl+s').")
        kw["text"] = text
    if action == "scroll":
        direction = given["scroll_direction"]
        if direction not in SCROLL_DIRECTIONS:
            raise ToolInputError(
                f"scroll_direction={direction!r} must be 'up', 'down', 'left', or 'right'."
            )
        amount = given["scroll_amount"]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ToolInputError(f"scroll_amount={amount!r} must be a non-negative int.")
        if amount > MAX_SCROLL_AMOUNT:
            raise ToolInputError(
                f"scroll_amount={amount} is too large; scroll at most {MAX_SCROLL_AMOUNT} "
                "wheel clicks at a time."
            )
        kw["scroll_direction"] = direction
        kw["scroll_amount"] = amount
    if "duration" in given:
        kw["duration"] = _duration(given["duration"], spec)
    if "repeat" in given:
        rep = given["repeat"]
        if isinstance(rep, bool) or not isinstance(rep, int) or not 1 <= rep <= MAX_KEY_REPEAT:
            raise ToolInputError(f"repeat={rep!r} must be an integer from 1 to {MAX_KEY_REPEAT}.")
        kw["repeat"] = rep
    if "region" in given:
        region = given["region"]
        if not (isinstance(region, list | tuple) and len(region) == 4):
            raise ToolInputError(
                f"region={region!r} must be a list of 4 coordinates [x0, y0, x1, y1]."
            )
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in region):
            raise ToolInputError(
                f"region={region!r} must contain non-negative integers [x0, y0, x1, y1]."
            )
        kw["region"] = tuple(int(v) for v in region)
    return Action(action, **kw)


__all__ = [
    "CLICKS",
    "MAX_KEY_REPEAT",
    "MAX_SCROLL_AMOUNT",
    "SCROLL_DIRECTIONS",
    "Action",
    "allowed_actions",
    "parse_action",
    "parse_modifiers",
]
