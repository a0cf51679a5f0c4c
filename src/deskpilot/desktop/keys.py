"""Key names: xdotool keysym syntax plus the aliases models use, resolved to X keysyms.

Rules (xdotool's ``key`` syntax, checked against ``xev``; ``docs/desktop-backend.md``,
"Input"):

* A key command is one or more *combos* separated by whitespace (``"ctrl+a Delete"``); a
  combo is key names joined by ``+`` (``"ctrl+shift+t"``). A trailing ``+`` means the plus
  key (``"ctrl++"``).
* A name is an X keysym name, matched case-sensitively first (``Return``, ``KP_0``,
  ``Page_Down``, ``XF86AudioMute``, ``a``, ``A``), a keysym number (``0x61``), a Unicode
  keysym (``U263A``), or a single character (``é``, ``/``).
* Then the aliases models send, case-insensitively: ``enter``/``return``, ``esc``,
  ``cmd``/``command``/``win``/``super``/``meta`` (all ``Super_L``; xdotool's own ``meta`` is
  Shift+Alt on Xvfb's keymap, which no model means), ``ctrl``/``control``, ``alt``/``option``,
  ``pgdn``/``pagedown``, ``pgup``, ``del``, ``backspace``, ``arrowup``..., ``f1``..``f24``.
* Then keysym names case-insensitively when that is unambiguous (``RETURN``, ``page_down``).

Anything else raises :class:`~deskpilot.errors.ToolInputError` *before* any key is pressed
(xdotool silently ignores unknown names and exits 0; the reference passed the text to a shell).
"""

from __future__ import annotations

import re
from functools import lru_cache

from Xlib import XK

from deskpilot.errors import ToolInputError

__all__ = [
    "KEY_HINT",
    "MODIFIER_KEYSYMS",
    "keysym_for_char",
    "keysym_for_name",
    "keysym_name",
    "parse_combo",
    "parse_keys",
]

KEY_HINT = "Use X keysym names such as Return, Escape, ctrl+s, Page_Down, KP_0."

for _group in ("xf86", "technical", "special", "publishing", "apl", "xkb", "greek", "cyrillic"):
    XK.load_keysym_group(_group)
for _group in ("latin2", "latin3", "latin4", "katakana", "arabic", "hebrew", "thai", "korean"):
    XK.load_keysym_group(_group)

_ALIASES: dict[str, str] = {
    "enter": "Return",
    "return": "Return",
    "ret": "Return",
    "esc": "Escape",
    "escape": "Escape",
    "cmd": "Super_L",
    "command": "Super_L",
    "win": "Super_L",
    "windows": "Super_L",
    "super": "Super_L",
    "meta": "Super_L",
    "ctrl": "Control_L",
    "control": "Control_L",
    "ctl": "Control_L",
    "alt": "Alt_L",
    "option": "Alt_L",
    "opt": "Alt_L",
    "shift": "Shift_L",
    "altgr": "ISO_Level3_Shift",
    "pgdn": "Page_Down",
    "pgdown": "Page_Down",
    "pagedown": "Page_Down",
    "page_down": "Page_Down",
    "pgup": "Page_Up",
    "pageup": "Page_Up",
    "page_up": "Page_Up",
    "del": "Delete",
    "delete": "Delete",
    "backspace": "BackSpace",
    "bksp": "BackSpace",
    "back_space": "BackSpace",
    "tab": "Tab",
    "space": "space",
    "spacebar": "space",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "arrowup": "Up",
    "arrowdown": "Down",
    "arrowleft": "Left",
    "arrowright": "Right",
    "arrow_up": "Up",
    "arrow_down": "Down",
    "arrow_left": "Left",
    "arrow_right": "Right",
    "uparrow": "Up",
    "downarrow": "Down",
    "leftarrow": "Left",
    "rightarrow": "Right",
    "home": "Home",
    "end": "End",
    "insert": "Insert",
    "ins": "Insert",
    "capslock": "Caps_Lock",
    "caps_lock": "Caps_Lock",
    "numlock": "Num_Lock",
    "scrolllock": "Scroll_Lock",
    "printscreen": "Print",
    "print_screen": "Print",
    "prtsc": "Print",
    "print": "Print",
    "pause": "Pause",
    "menu": "Menu",
    "apps": "Menu",
    "plus": "plus",
    "minus": "minus",
}
_ALIASES.update({f"f{i}": f"F{i}" for i in range(1, 25)})

# Keysyms that act as modifiers (held around the other keys of a combo).
MODIFIER_KEYSYMS: frozenset[int] = frozenset(
    XK.string_to_keysym(n)
    for n in (
        "Shift_L",
        "Shift_R",
        "Control_L",
        "Control_R",
        "Alt_L",
        "Alt_R",
        "Meta_L",
        "Meta_R",
        "Super_L",
        "Super_R",
        "Hyper_L",
        "Hyper_R",
        "ISO_Level3_Shift",
    )
)

_UNICODE_RE = re.compile(r"^U([0-9A-Fa-f]{4,6})$")
_HEX_RE = re.compile(r"^0x([0-9A-Fa-f]{1,8})$")


@lru_cache(maxsize=1)
def _lowercase_names() -> dict[str, int]:
    """Keysym names (longer than one character) by lower case, when unambiguous."""
    table: dict[str, int] = {}
    ambiguous: set[str] = set()
    for attr in dir(XK):
        if not attr.startswith("XK_"):
            continue
        name = attr[3:]
        if len(name) < 2:
            continue
        value = getattr(XK, attr)
        low = name.lower()
        if low in table and table[low] != value:
            ambiguous.add(low)
        table[low] = value
    for low in ambiguous:
        del table[low]
    return table


@lru_cache(maxsize=1)
def _keysym_names() -> dict[int, str]:
    """Keysym number -> its X name (first name python-xlib defines; ``XF86_x`` -> ``XF86x``)."""
    names: dict[int, str] = {}
    for attr in sorted(dir(XK)):
        if attr.startswith("XK_"):
            name = attr[3:]
            if name.startswith("XF86_"):
                name = "XF86" + name[5:]
            names.setdefault(getattr(XK, attr), name)
    for name in ("Return", "Escape", "Page_Down", "Page_Up", "BackSpace", "Super_L", "Control_L"):
        names[XK.string_to_keysym(name)] = name
    return names


def keysym_for_char(char: str) -> int:
    """The X keysym of one Unicode character (Latin-1 keysyms equal the code point; others
    are ``0x01000000 + code point``, the X11 Unicode keysym rule)."""
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    if char == "\n":
        return XK.XK_Return
    if char == "\t":
        return XK.XK_Tab
    return 0x01000000 + code


def keysym_for_name(name: str) -> int | None:
    """Resolve one key name (keysym name, alias, ``0x61``, ``U263A`` or one character) to a
    keysym number; ``None`` when it is not a key name."""
    if not name:
        return None
    if len(name) == 1:
        return keysym_for_char(name)
    sym = XK.string_to_keysym(name)
    if sym:
        return sym
    if name.startswith("XF86") and not name.startswith("XF86_"):
        sym = XK.string_to_keysym("XF86_" + name[4:])
        if sym:
            return sym
    low = name.lower()
    alias = _ALIASES.get(low)
    if alias is not None:
        return XK.string_to_keysym(alias)
    m = _UNICODE_RE.match(name)
    if m:
        code = int(m.group(1), 16)
        if code > 0x10FFFF:
            return None
        return keysym_for_char(chr(code)) if code >= 0x20 else None
    m = _HEX_RE.match(name)
    if m:
        value = int(m.group(1), 16)
        return value if 0 < value <= 0x1FFFFFFF else None
    return _lowercase_names().get(low)


def keysym_name(keysym: int) -> str:
    """A readable name for a keysym (``Return``, ``a``, ``U263A``)."""
    name = _keysym_names().get(keysym)
    if name:
        return name
    if keysym & 0xFF000000 == 0x01000000:
        return f"U{keysym & 0xFFFFFF:04X}"
    return hex(keysym)


def parse_combo(combo: str) -> tuple[int, ...]:
    """Parse one ``+``-joined combo (``"ctrl+shift+t"``) into keysyms, in press order.

    Raises:
        ToolInputError: a name in the combo is not a key name.
    """
    if combo == "+":
        names = ["plus"]
    else:
        names = combo.split("+")
        if len(names) > 1 and names[-1] == "" and names[-2] == "":
            names = [*names[:-2], "plus"]
    out: list[int] = []
    for name in names:
        sym = keysym_for_name(name)
        if sym is None:
            shown = name if name else "(empty)"
            raise ToolInputError(f"Unknown key name '{shown}' in '{combo}'. {KEY_HINT}")
        out.append(sym)
    return tuple(out)


def parse_keys(keys: str) -> list[tuple[int, ...]]:
    """Parse a whole key command (combos separated by whitespace) into keysym tuples.

    Every name is validated before anything is returned, so a caller can reject the whole
    command before pressing any key.

    Raises:
        ToolInputError: the text is empty, not a string, or holds an unknown key name.
    """
    if not isinstance(keys, str):
        raise ToolInputError(
            f"The key text must be a string, not {type(keys).__name__}. {KEY_HINT}"
        )
    combos = keys.split()
    if not combos:
        raise ToolInputError(f"The key text is empty. {KEY_HINT}")
    return [parse_combo(c) for c in combos]
