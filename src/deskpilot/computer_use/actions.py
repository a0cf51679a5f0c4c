"""Validation of computer-tool input, per tool version, into one typed :data:`Action`.

The model's ``input`` dict is checked against the version's actions and parameters (the
computer use tool page, "Available actions" and "Earlier tool versions",
https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool) before
anything touches the desktop; every problem raises :class:`~deskpilot.errors.ToolInputError`
with a sentence the model can act on (the reference implementation's texts where they are
good: "coordinate is required for mouse_move", "Invalid action: foo", "scroll_direction=...
must be 'up', 'down', 'left', or 'right'"). Unknown or misplaced parameters are rejected,
``None`` values count as absent.

:data:`Action` is a tagged union (a pydantic discriminated union on ``action``): one frozen
model per action shape (:class:`Click`, :class:`Scroll`, :class:`Key`, ...), each holding
exactly the fields that action has, so the executor matches on the class and needs no
``None`` checks.

Differences from the reference (github.com/anthropics/anthropic-quickstarts,
``computer-use-demo/computer_use_demo/tools/computer.py``), on purpose: modifier keys for
clicks, scroll and drag come from ``text`` (what the model sends, the reference's issue #263;
``key`` is accepted too on the 2025 beta versions, as the reference read it); a non-string
``text`` is an error, not a ``TypeError`` crash; coordinates are range-checked later in
*model* space by :mod:`deskpilot.computer_use.scaling`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import ToolInputError
from .specs import ACTIONS_20251124, ComputerSpec, computer_spec

CLICKS: dict[str, tuple[Literal["left", "right", "middle"], int]] = {
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

Point = tuple[int, int]
"""(x, y) in MODEL-space pixels (range not yet checked)."""


class _Action(BaseModel):
    """Base of the action models: frozen, strict, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Screenshot(_Action):
    """``screenshot``: capture the screen."""

    action: Literal["screenshot"] = "screenshot"


class CursorPosition(_Action):
    """``cursor_position``: report the pointer position (model space)."""

    action: Literal["cursor_position"] = "cursor_position"


class MouseButton(_Action):
    """``left_mouse_down`` / ``left_mouse_up`` where the pointer is."""

    action: Literal["left_mouse_down", "left_mouse_up"]


class MouseMove(_Action):
    """``mouse_move`` to ``coordinate``."""

    action: Literal["mouse_move"] = "mouse_move"
    coordinate: Point


class Click(_Action):
    """A click action (:data:`CLICKS`) at ``coordinate`` or, when None, at the pointer,
    holding ``modifiers`` (key names such as ``"ctrl"``)."""

    action: Literal["left_click", "right_click", "middle_click", "double_click", "triple_click"]
    coordinate: Point | None = None
    modifiers: tuple[str, ...] = ()


class Drag(_Action):
    """``left_click_drag`` from ``start_coordinate`` (None: the pointer, computer_20241022)
    to ``coordinate``, holding ``modifiers``."""

    action: Literal["left_click_drag"] = "left_click_drag"
    coordinate: Point
    start_coordinate: Point | None = None
    modifiers: tuple[str, ...] = ()


class Scroll(_Action):
    """``scroll`` ``scroll_amount`` wheel clicks towards ``scroll_direction`` at
    ``coordinate`` (None: at the pointer), holding ``modifiers``."""

    action: Literal["scroll"] = "scroll"
    scroll_direction: Literal["up", "down", "left", "right"]
    scroll_amount: int = Field(ge=0, le=MAX_SCROLL_AMOUNT)
    coordinate: Point | None = None
    modifiers: tuple[str, ...] = ()


class Key(_Action):
    """``key``: press ``text`` (xdotool syntax) ``repeat`` times."""

    action: Literal["key"] = "key"
    text: str
    repeat: int = Field(default=1, ge=1, le=MAX_KEY_REPEAT)


class HoldKey(_Action):
    """``hold_key``: hold ``text`` down for ``duration`` seconds."""

    action: Literal["hold_key"] = "hold_key"
    text: str
    duration: float = Field(ge=0)


class TypeText(_Action):
    """``type``: type ``text``."""

    action: Literal["type"] = "type"
    text: str


class Wait(_Action):
    """``wait`` ``duration`` seconds."""

    action: Literal["wait"] = "wait"
    duration: float = Field(ge=0)


class Zoom(_Action):
    """``zoom`` into ``region`` (x0, y0, x1, y1) of the full screenshot (model space)."""

    action: Literal["zoom"] = "zoom"
    region: tuple[int, int, int, int]


Action = Annotated[
    Screenshot
    | CursorPosition
    | MouseButton
    | MouseMove
    | Click
    | Drag
    | Scroll
    | Key
    | HoldKey
    | TypeText
    | Wait
    | Zoom,
    Field(discriminator="action"),
]
"""One validated computer action: a union tagged by ``action``; coordinates in MODEL space."""

_ACTION: TypeAdapter[Action] = TypeAdapter(Action)


def _params_for(action: str, spec: ComputerSpec) -> tuple[set[str], set[str]]:
    """(required, optional) parameter names of ``action`` in ``spec`` (besides ``action``)."""
    legacy = spec.pointer_actions
    key = ("key",) if spec.key_modifiers else ()
    if action in ("screenshot", "cursor_position", "left_mouse_down", "left_mouse_up"):
        return set(), set()
    if action == "mouse_move":
        return {"coordinate"}, set()
    if action in CLICKS:
        if legacy:
            return set(), {"text"}
        return set(), {"coordinate", "text", *key}
    if action == "left_click_drag":
        if legacy:
            return {"coordinate"}, {"text"}
        return {"start_coordinate", "coordinate"}, {"text"}
    if action == "scroll":
        return {"scroll_direction", "scroll_amount"}, {"coordinate", "text", *key}
    if action == "hold_key":
        return {"text", "duration"}, set()
    if action == "wait":
        return {"duration"}, set()
    if action == "key":
        return {"text"}, ({"repeat"} if spec.key_repeat else set())
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
        The :data:`Action` (the model of its shape), coordinates in model space and not yet
        range-checked.

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
        if name == "coordinate" and action in CLICKS and spec.pointer_actions:
            hint = (
                f" in {spec.type} (it clicks where the pointer is; move it first with mouse_move)"
            )
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
    try:
        return _ACTION.validate_python({"action": action, **kw})
    except ValidationError as exc:  # pragma: no cover - the checks above come first
        raise ToolInputError(f"Invalid input for {action}: {exc.errors()[0]['msg']}.") from exc


__all__ = [
    "CLICKS",
    "MAX_KEY_REPEAT",
    "MAX_SCROLL_AMOUNT",
    "SCROLL_DIRECTIONS",
    "Action",
    "Click",
    "CursorPosition",
    "Drag",
    "HoldKey",
    "Key",
    "MouseButton",
    "MouseMove",
    "Point",
    "Screenshot",
    "Scroll",
    "TypeText",
    "Wait",
    "Zoom",
    "allowed_actions",
    "parse_action",
    "parse_modifiers",
]
