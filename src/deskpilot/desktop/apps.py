"""The optional desktop apps (terminal, text editor, browser): their command lines and menu.

Command lines follow ``docs/desktop-backend.md`` ("Starting a desktop"): xterm with a DejaVu
font in a UTF-8 locale, mousepad with ``GSETTINGS_BACKEND=memory`` (set in the desktop's
environment), chromium with the flags that work without a GPU and without network. Chromium's
own sandbox stays on unless deskpilot runs as root, where chromium refuses to start without
``--no-sandbox`` (plus ``--test-type`` to hide the warning bar that flag shows). Profiles live
under the desktop's scratch ``HOME``.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from deskpilot.errors import ConfigError

__all__ = [
    "APPS",
    "CHROMIUM_FLAGS",
    "CHROMIUM_ROOT_FLAGS",
    "MENU_ENTRY_OFFSETS",
    "MENU_SIZE",
    "AppSpec",
    "app_spec",
    "menu_xml",
]


@dataclass(frozen=True)
class AppSpec:
    """One known app.

    Attributes:
        name: canonical name (``"terminal"``, ``"text_editor"``, ``"browser"``).
        label: its root-menu label.
        program: the executable looked up on PATH.
        package: the Debian package that provides it.
        args: extra arguments; ``{home}`` is replaced by the desktop's scratch HOME.
        wm_class: substring of WM_CLASS used to recognise its window.
        root_args: arguments added only when the app runs as root.
    """

    name: str
    label: str
    program: str
    package: str
    args: tuple[str, ...] = ()
    wm_class: str = ""
    root_args: tuple[str, ...] = ()

    def argv(self, home: str | Path, *, as_root: bool | None = None) -> list[str]:
        """The full argument list for a desktop whose HOME is ``home``; ``as_root``
        (default: whether this process's effective uid is 0) adds :attr:`root_args`."""
        if as_root is None:
            as_root = os.geteuid() == 0
        extra = self.root_args if as_root else ()
        return [self.program, *extra, *(a.replace("{home}", str(home)) for a in self.args)]


#: Chromium's flags when it runs as root (it refuses to start as root with its sandbox on).
CHROMIUM_ROOT_FLAGS: tuple[str, ...] = ("--no-sandbox", "--test-type")
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--password-store=basic",
    "--user-data-dir={home}/.chromium-profile",
    "--start-maximized",
)

APPS: dict[str, AppSpec] = {
    "terminal": AppSpec(
        "terminal",
        "Terminal",
        "xterm",
        "xterm",
        ("-fa", "DejaVu Sans Mono", "-fs", "11", "-geometry", "100x30+40+40", "-title", "Terminal"),
        "xterm",
    ),
    "text_editor": AppSpec("text_editor", "Text Editor", "mousepad", "mousepad", (), "mousepad"),
    "browser": AppSpec(
        "browser",
        "Web Browser",
        "chromium",
        "chromium",
        CHROMIUM_FLAGS,
        "chromium",
        CHROMIUM_ROOT_FLAGS,
    ),
}

#: Centre of each root-menu entry relative to the right-click point, in native pixels,
#: measured on a LocalDesktop screenshot (openbox 3.6 Clearlooks theme, DejaVu Sans 10 pt at
#: 96 dpi). Openbox puts the menu's top-left corner at the click point; each entry is 20 px
#: high (rows +1..+20, +21..+40, +41..+60) and the menu 96 px wide. Near the right or bottom
#: screen edge openbox shifts the menu to stay on screen, so click at least 100 px (x) and
#: 70 px (y) away from those edges.
MENU_ENTRY_OFFSETS: dict[str, tuple[int, int]] = {
    "Terminal": (30, 10),
    "Text Editor": (30, 30),
    "Web Browser": (30, 50),
}
#: (width, height) of the root menu in native pixels, border included.
MENU_SIZE = (96, 62)

_ALIASES = {
    "xterm": "terminal",
    "term": "terminal",
    "editor": "text_editor",
    "text-editor": "text_editor",
    "texteditor": "text_editor",
    "mousepad": "text_editor",
    "chromium": "browser",
    "web_browser": "browser",
    "chrome": "browser",
}


def app_spec(name: str) -> AppSpec:
    """The spec of a known app by name or alias (``"terminal"``, ``"xterm"``, ``"editor"``...).

    Raises:
        ConfigError: an unknown app name.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    try:
        return APPS[key]
    except KeyError:
        raise ConfigError(
            f"Unknown desktop app {name!r}; use one of {sorted(APPS)} or call "
            "desktop.launch(program, *args) for any other program."
        ) from None


def menu_xml(home: str | Path) -> str:
    """The openbox root menu: Terminal, Text Editor, Web Browser (in that order)."""
    items = []
    for spec in APPS.values():
        command = shlex.join(spec.argv(home))
        items.append(
            f"    <item label={quoteattr(spec.label)}>\n"
            f'      <action name="Execute"><command>{_xml_text(command)}</command></action>\n'
            "    </item>"
        )
    body = "\n".join(items)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<openbox_menu xmlns="http://openbox.org/3.4/menu">\n'
        '  <menu id="root-menu" label="Desktop">\n'
        f"{body}\n"
        "  </menu>\n"
        "</openbox_menu>\n"
    )


def _xml_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
