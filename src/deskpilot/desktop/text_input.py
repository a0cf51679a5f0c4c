"""Typing any Unicode text through XTEST: the keystroke planner (pure; no X connection).

``xdotool type`` remaps one keycode per non-keymap character and restores it at once, so
clients often read the keymap after it was restored and drop characters (0/23 correct in
xterm at ``--delay 0``). Here every keysym a stretch of text needs is mapped onto spare
keycodes *before* typing, followed by a short settle (10 ms -> 30/30 correct, 20 ms -> 90/90),
and the stretch is typed without delays (measurements in ``docs/desktop-backend.md``,
"Typing"). The assignments stay in place afterwards (see ``deskpilot.desktop.keymap``): a spare
keycode is reassigned only after the app has read the keystrokes that used it. ``\\n`` is
Return and ``\\t`` is Tab. The X backend (``deskpilot.desktop.x11``) executes the plan in
chunks of :data:`TYPE_CHUNK_STROKES` keystrokes.

(This module was ``deskpilot.desktop.typing``; renamed so it no longer shadows the standard
library's ``typing``.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from deskpilot.desktop.keymap import KeymapState
from deskpilot.desktop.keys import keysym_for_char, keysym_name
from deskpilot.errors import ToolInputError

__all__ = [
    "MAX_TYPE_CHARS",
    "REMAP_SETTLE_S",
    "REUSE_GRACE_S",
    "REUSE_MIN_S",
    "TYPE_CHUNK_STROKES",
    "Segment",
    "normalise_text",
    "plan_keysyms",
    "plan_typing",
]

#: Most characters one ``type`` action may hold (after ``\\r\\n`` -> ``\\n``). Typing runs at
#: roughly 10,000 characters per second on Xvfb, so this is about ten seconds of typing; longer
#: text is refused with a sentence saying to split it or to write a file with the editor tool.
MAX_TYPE_CHARS = 100_000
#: Keystrokes sent per X round trip (each chunk ends with a sync, so the X request buffer and
#: the server's queue stay small and the time per character stays constant).
TYPE_CHUNK_STROKES = 256

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

#: Seconds to let clients read a changed keymap before typing remapped keys (probe: 20 ms
#: gave 90/90).
REMAP_SETTLE_S = 0.02
#: A spare keycode pressed less than this many seconds ago is only reassigned after the
#: screen settled (the app has read those keystrokes) ...
REUSE_GRACE_S = 1.0
#: ... and never sooner than this after its last keystroke.
REUSE_MIN_S = 0.1


@dataclass
class Segment:
    """A stretch of text typed with one keymap state.

    Attributes:
        remap: spare keycode -> keysym to map before typing (empty for keymap-only text).
        strokes: (keycode, with_shift) in order.
    """

    remap: dict[int, int] = field(default_factory=dict)
    strokes: list[tuple[int, bool]] = field(default_factory=list)


def normalise_text(text: str) -> str:
    """``\\r\\n`` and ``\\r`` become ``\\n``; other control characters raise ToolInputError.

    Raises:
        ToolInputError: ``text`` is not a string, holds a control character other than
            ``\\n`` and ``\\t``, or is longer than :data:`MAX_TYPE_CHARS` characters.
    """
    if not isinstance(text, str):
        raise ToolInputError(f"The text to type must be a string, not {type(text).__name__}.")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    bad = _CONTROL.search(text)
    if bad is not None:
        raise ToolInputError(
            f"The text contains the control character U+{ord(bad.group()):04X}, which cannot be "
            "typed; use the key action for special keys (e.g. BackSpace, Escape)."
        )
    if len(text) > MAX_TYPE_CHARS:
        raise ToolInputError(
            f"The text is {len(text):,} characters long; one type action takes at most "
            f"{MAX_TYPE_CHARS:,}. Split it into several type actions, or write the text to a "
            "file with the text editor tool."
        )
    return text


def plan_keysyms(keysyms: list[int], state: KeymapState) -> list[Segment]:
    """Plan keystrokes for keysyms, assigning spare keycodes to keysyms not in the map.

    A spare already used earlier in the same segment is never reassigned within it; when
    none is left, a new segment starts (it is typed after a remap). ``state`` is updated
    (assignments and LRU order) as if the plan had been executed.

    Raises:
        ToolInputError: a keysym needs a spare keycode but the display has none.
    """
    segments: list[Segment] = [Segment()]
    used: set[int] = set()
    for sym in keysyms:
        hit = state.lookup(sym)
        if hit is not None:
            keycode = hit[0]
            if keycode in state.spares:
                state.touch(keycode)
                used.add(keycode)
            segments[-1].strokes.append(hit)
            continue
        if not state.spares:
            raise ToolInputError(
                f"Cannot type {keysym_name(sym)}: the display's keyboard map has no spare "
                "keycodes to map it to."
            )
        spare = state.assign(sym, used)
        if spare is None:
            segments.append(Segment())
            used = set()
            spare = state.assign(sym, used)
            assert spare is not None, "a fresh segment excludes no spare keycode"
        segments[-1].remap[spare] = sym
        segments[-1].strokes.append((spare, False))
        used.add(spare)
    return [s for s in segments if s.strokes]


def plan_typing(text: str, state: KeymapState) -> list[Segment]:
    """:func:`plan_keysyms` for normalised text (``\n`` -> Return, ``\t`` -> Tab)."""
    return plan_keysyms([keysym_for_char(ch) for ch in text], state)
