"""The agent's default system prompt (deskpilot's own wording for its local X11 desktop)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date as _date

APP_MENU_LABELS = {"terminal": "Terminal", "text_editor": "Text Editor", "browser": "Web Browser"}
"""Entries of the desktop's right-click (openbox root) menu, by LocalDesktop app name."""


def _label(app: str) -> str:
    try:
        from ..desktop.apps import app_spec

        return app_spec(app).label
    except Exception:  # an unknown or custom app: show its name
        return APP_MENU_LABELS.get(app, app)


def default_system_prompt(
    width: int,
    height: int,
    *,
    apps: Iterable[str] = (),
    today: _date | None = None,
    bash_tool: str | None = "bash",
    editor_tool: str | None = "str_replace_based_edit_tool",
) -> str:
    """The system prompt the agent sends when none is given.

    Args:
        width / height: the screenshot size the model sees (model-space pixels; its
            coordinates refer to this size).
        apps: LocalDesktop app names already open (``"terminal"``, ``"text_editor"``,
            ``"browser"``); mentioned so the model does not open them twice.
        today: the date to state (default: today, local time).
        bash_tool / editor_tool: the wire names of those tools, or None when absent.

    Returns:
        A short prompt: the machine, its apps and menu, the screen size, no internet, how to
        handle files, the date, and to check results with screenshots.
    """
    day = (today or _date.today()).strftime("%A, %B %d, %Y").replace(" 0", " ")
    open_apps = [_label(a) for a in apps]
    lines = [
        "<SYSTEM_CAPABILITY>",
        f"* You control a local Linux desktop (X11, openbox window manager) through the computer "
        f"tool. The screen is {width}x{height} pixels; your coordinates refer to that size.",
        "* Right-click the empty desktop background to open the application menu: "
        "Terminal, Text Editor (mousepad), Web Browser (chromium). There is no taskbar; "
        "windows are moved and closed with the mouse.",
    ]
    if open_apps:
        lines.append(f"* Already open: {', '.join(open_apps)}.")
    lines.append("* The machine has no internet access; do not try to download anything.")
    if bash_tool:
        files = f" or the {editor_tool} tool" if editor_tool else ""
        lines.append(
            f"* Use the {bash_tool} tool{files} to read, write and check files and to run "
            "programs; it is faster and more reliable than the GUI for that. Redirect long "
            "output to a file and look at parts of it. GUI programs started from it appear on "
            "this desktop; start them in the background (`mousepad > /dev/null 2>&1 &`)."
        )
    lines += [
        f"* Today is {day}.",
        "</SYSTEM_CAPABILITY>",
        "<IMPORTANT>",
        "* After each GUI action, look at the screenshot to check that it did what you "
        "intended before going on; if it did not, try another way.",
        "* Several computer actions may be sent in one turn when you are sure of their "
        "effect; each returns a screenshot.",
        "* When the task is done, reply with a short summary and no tool call.",
        "</IMPORTANT>",
    ]
    return "\n".join(lines)


__all__ = ["APP_MENU_LABELS", "default_system_prompt"]
