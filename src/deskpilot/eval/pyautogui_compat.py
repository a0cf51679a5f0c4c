"""OSWorld's ``python -c "import pyautogui; ..."`` set-up one-liners, done without Python.

Many OSWorld tasks (https://github.com/xlang-ai/OSWorld/tree/main/evaluation_examples) click
the screen centre or press a hotkey in their set-up with a pyautogui one-liner run inside the
VM by its ``execute`` step (e.g. ``import pyautogui; import time;
pyautogui.click(960, 540); time.sleep(0.5);``). The desktop here has no pyautogui, so the
code is *parsed* (never executed: :mod:`ast`), and a small whitelist of calls becomes
:class:`~deskpilot.desktop.base.Computer` actions:

- ``pyautogui.click(x, y)`` / ``click()``, ``doubleClick``, ``rightClick`` (coordinates in
  OSWorld's 1920x1080 screen, scaled to the desktop's size),
- ``pyautogui.hotkey('ctrl', 'alt', 't')``, ``pyautogui.press('enter')``,
- ``pyautogui.write('text')`` / ``typewrite``,
- ``time.sleep(seconds)`` (at most 10 s each),
- ``import pyautogui`` / ``import time``.

Anything else makes the step unsupported (:func:`parse`'s error names the construct).
"""

from __future__ import annotations

import ast
import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .context import OSWORLD_SCREEN

if TYPE_CHECKING:
    from ..desktop.base import Computer

__all__ = ["PyAction", "is_pyautogui", "parse", "perform"]

MAX_SLEEP_S = 10.0
_CLICKS = {"click": ("left", 1), "doubleClick": ("left", 2), "rightClick": ("right", 1)}


@dataclass(frozen=True, slots=True)
class PyAction:
    """One translated call: ``kind`` is ``click``, ``key``, ``type`` or ``sleep``.

    ``x``/``y`` are OSWorld-screen pixels (None: where the pointer is), ``button``/``count``
    for clicks, ``text`` the key combination (xdotool syntax) or the text, ``seconds`` the
    sleep.
    """

    kind: str
    x: int | None = None
    y: int | None = None
    button: str = "left"
    count: int = 1
    text: str = ""
    seconds: float = 0.0


def is_pyautogui(argv: list[str]) -> bool:
    """True for ``["python"|"python3", "-c", code]`` whose code imports pyautogui."""
    return (
        len(argv) == 3
        and argv[0].rsplit("/", 1)[-1] in ("python", "python3")
        and argv[1] == "-c"
        and "pyautogui" in argv[2]
    )


def _value(node: ast.expr, what: str) -> object:
    if isinstance(node, ast.Constant) and not isinstance(node.value, bool):
        return node.value
    raise ValueError(f"{what} must be a literal")


def _int(node: ast.expr, what: str) -> int:
    value = _value(node, what)
    if not isinstance(value, int):
        raise ValueError(f"{what} must be an integer literal")
    return value


def _num(node: ast.expr, what: str) -> float:
    value = _value(node, what)
    if not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number literal")
    return float(value)


def _str(node: ast.expr, what: str) -> str:
    value = _value(node, what)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string literal")
    return value


def _call(call: ast.Call) -> PyAction:
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        raise ValueError("only pyautogui.<name>(...) and time.sleep(...) calls are supported")
    owner, name = func.value.id, func.attr
    if call.keywords:
        raise ValueError(f"{owner}.{name}() with keyword arguments is not supported")
    args = call.args
    if owner == "time" and name == "sleep" and len(args) == 1:
        seconds = _num(args[0], "time.sleep's argument")
        return PyAction("sleep", seconds=min(max(seconds, 0.0), MAX_SLEEP_S))
    if owner != "pyautogui":
        raise ValueError(f"{owner}.{name}() is not supported")
    if name in _CLICKS and len(args) in (0, 2):
        button, count = _CLICKS[name]
        if not args:
            return PyAction("click", button=button, count=count)
        x, y = _int(args[0], "the x coordinate"), _int(args[1], "the y coordinate")
        return PyAction("click", x=x, y=y, button=button, count=count)
    if name == "hotkey" and args:
        keys = [_str(a, "a hotkey key") for a in args]
        return PyAction("key", text="+".join(keys))
    if name == "press" and len(args) == 1:
        return PyAction("key", text=_str(args[0], "press's key"))
    if name in ("write", "typewrite") and len(args) == 1:
        return PyAction("type", text=_str(args[0], f"{name}'s text"))
    raise ValueError(f"pyautogui.{name}() with {len(args)} arguments is not supported")


def parse(code: str) -> list[PyAction]:
    """Translate a pyautogui one-liner into actions (nothing is executed).

    Raises:
        ValueError: the code does not parse or uses anything outside the whitelist (the
            message names it).
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ValueError(f"the Python code does not parse: {exc.msg}") from exc
    actions: list[PyAction] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name not in ("pyautogui", "time") or alias.asname:
                    raise ValueError(f"'import {alias.name}' is not supported")
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            actions.append(_call(stmt.value))
            continue
        raise ValueError(f"the statement {ast.unparse(stmt)!r} is not supported")
    return actions


async def perform(actions: list[PyAction], computer: Computer) -> None:
    """Do ``actions`` on ``computer`` (coordinates scaled from OSWorld's 1920x1080 screen).

    Raises:
        DesktopError / ToolInputError: from the computer (e.g. an unknown key name).
    """
    width, height = computer.size
    for act in actions:
        if act.kind == "sleep":
            await asyncio.sleep(act.seconds)
        elif act.kind == "click":
            x = y = None
            if act.x is not None and act.y is not None:
                x = min(width - 1, max(0, round(act.x * width / OSWORLD_SCREEN[0])))
                y = min(height - 1, max(0, round(act.y * height / OSWORLD_SCREEN[1])))
            if act.button == "right":
                await computer.click(x, y, button="right", count=act.count)
            else:
                await computer.click(x, y, count=act.count)
        elif act.kind == "key":
            await computer.key(act.text)
        else:
            await computer.type_text(act.text)
