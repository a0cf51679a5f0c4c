"""Typing any Unicode text through XTEST: plan keystrokes, remap spare keycodes in batches.

``xdotool type`` remaps one keycode per non-keymap character and restores it at once, so
clients often read the keymap after it was restored and drop characters (0/23 correct in
xterm at ``--delay 0``). Here every keysym a stretch of text needs is mapped onto spare
keycodes *before* typing, followed by a short settle (probe: 10 ms -> 30/30, 20 ms -> 90/90),
and the stretch is typed without delays (``shared/reference/desktop_probe.md`` §4). The
assignments stay in place afterwards (see ``deskpilot.desktop.keymap``): a spare keycode is
reassigned only after the app has read the keystrokes that used it. ``\\n`` is Return and ``\\t`` is Tab.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from deskpilot.desktop.keymap import KeymapState
from deskpilot.desktop.keys import keysym_for_char, keysym_name
from deskpilot.errors import ToolInputError

__all__ = ["REMAP_SETTLE_S", "REUSE_GRACE_S", "Segment", "plan_keysyms", "plan_typing"]

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
    """``\\r\\n`` and ``\\r`` become ``\\n``; other control characters raise ToolInputError."""
    if not isinstance(text, str):
        raise ToolInputError(f"The text to type must be a string, not {type(text).__name__}.")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for ch in text:
        if (ord(ch) < 0x20 and ch not in "\n\t") or 0x7F <= ord(ch) < 0xA0:
            raise ToolInputError(
                f"The text contains the control character U+{ord(ch):04X}, which cannot be "
                "typed; use the key action for special keys (e.g. BackSpace, Escape)."
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


async def type_segments(
    segments: list[Segment],
    state: KeymapState,
    *,
    press: Callable[[int], None],
    release: Callable[[int], None],
    shift_keycode: int,
    remap: Callable[[dict[int, int]], None],
    sync: Callable[[], None],
    before_reuse: Callable[[], Awaitable[None]] | None = None,
    settle_s: float = REMAP_SETTLE_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Type planned segments with the given X primitives.

    Before a segment remaps a spare keycode that was pressed less than ``REUSE_GRACE_S`` ago,
    ``before_reuse`` is awaited (the X backend waits for the screen to settle, i.e. for the
    app to have read the earlier keystrokes); then the remap, ``settle_s`` for clients to
    see it, and the keystrokes without delays.
    """
    for seg in segments:
        if seg.remap:
            recent = max((state.last_used.get(kc, -1e9) for kc in seg.remap), default=-1e9)
            if clock() - recent < REUSE_GRACE_S:
                if before_reuse is not None:
                    await before_reuse()
                wait = REUSE_MIN_S - (clock() - recent)
                if wait > 0:
                    await asyncio.sleep(wait)
            remap(seg.remap)
            sync()
            await asyncio.sleep(settle_s)
        spare = set(state.spares)
        for keycode, shifted in seg.strokes:
            if shifted:
                press(shift_keycode)
            press(keycode)
            release(keycode)
            if shifted:
                release(shift_keycode)
            if keycode in spare:
                state.last_used[keycode] = clock()
        sync()
