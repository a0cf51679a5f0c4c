"""The X keyboard map of one display: keysym -> keycode lookups and spare-keycode assignments.

XTEST sends keycodes, not keysyms. A keysym on level 1 of a keycode is pressed as is, one on
level 2 with Shift held (xdotool does the same: ``ctrl+A`` sends Control+Shift+a). Keysyms
that are not in the map (``é`` on a US map, ``U263A``, ``XF86AudioMute``) are mapped onto
keycodes that have no symbols (spares; Xvfb's default map has about 19).

Assignments are **kept** after use (least recently used first to be reassigned) instead of
being restored at once. Restoring right after typing is what makes ``xdotool type`` drop
characters: clients that read the key events after the restore translate them with the
restored map (``docs/desktop-backend.md``, "Typing"). A keycode is only reassigned after
the events that used it had time to be read (see ``deskpilot.desktop.text_input``), and every
assignment is undone when the backend closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from Xlib import XK, X

__all__ = ["Keymap", "KeymapState"]


@dataclass
class KeymapState:
    """The pure part of a keymap (no X connection; the planner works on this).

    Attributes:
        table: keysym -> (keycode, level) for the display's own map (level 0 or 1).
        spares: keycodes deskpilot may assign (empty in the display's own map).
        assigned: keysym -> spare keycode currently mapped to it.
        lru: spare keycodes, least recently used first.
        last_used: spare keycode -> monotonic time of its last keystroke.
    """

    table: dict[int, tuple[int, int]] = field(default_factory=dict)
    spares: list[int] = field(default_factory=list)
    assigned: dict[int, int] = field(default_factory=dict)
    lru: list[int] = field(default_factory=list)
    last_used: dict[int, float] = field(default_factory=dict)

    def lookup(self, keysym: int) -> tuple[int, bool] | None:
        """(keycode, needs_shift) for a keysym in the map or assigned to a spare, else None."""
        hit = self.table.get(keysym)
        if hit is not None:
            return hit[0], hit[1] == 1
        keycode = self.assigned.get(keysym)
        if keycode is not None:
            return keycode, False
        return None

    def touch(self, keycode: int) -> None:
        """Mark a spare keycode as most recently used (planning order)."""
        if keycode in self.lru:
            self.lru.remove(keycode)
            self.lru.append(keycode)

    def assign(self, keysym: int, exclude: set[int]) -> int | None:
        """Pick the least recently used spare not in ``exclude`` for ``keysym`` (updating
        ``assigned``); None when every spare is excluded."""
        for keycode in self.lru:
            if keycode in exclude:
                continue
            for sym, kc in list(self.assigned.items()):
                if kc == keycode:
                    del self.assigned[sym]
            self.assigned[keysym] = keycode
            self.touch(keycode)
            return keycode
        return None


class Keymap:
    """Cached core keyboard mapping of a display, with persistent spare-keycode assignments.

    Args:
        display: an open python-xlib display connection (used from one thread only).
    """

    def __init__(self, display: Any) -> None:
        self._d = display
        self.min_keycode = display.display.info.min_keycode
        self.max_keycode = display.display.info.max_keycode
        self.per_keycode = 1
        self.state = KeymapState()
        self._managed: list[int] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read the keyboard mapping from the server again (assignments are re-read too)."""
        count = self.max_keycode - self.min_keycode + 1
        mapping = self._d.get_keyboard_mapping(self.min_keycode, count)
        self.per_keycode = max((len(m) for m in mapping), default=1)
        empty = [self.min_keycode + i for i, syms in enumerate(mapping) if not any(syms)]
        if self._managed is None:
            # Highest first: low keycodes (8, ...) are special to some XKB setups.
            self._managed = sorted(empty, reverse=True)
        managed = set(self._managed)
        table: dict[int, tuple[int, int]] = {}
        assigned: dict[int, int] = {}
        for offset, syms in enumerate(mapping):
            keycode = self.min_keycode + offset
            if keycode in managed:
                if syms and syms[0]:
                    assigned[syms[0]] = keycode
                continue
            for level in (0, 1):
                if level < len(syms) and syms[level]:
                    sym = syms[level]
                    if sym not in table or table[sym][1] > level:
                        table[sym] = (keycode, level)
        old = self.state
        lru = [k for k in old.lru if k in managed] or list(self._managed)
        lru += [k for k in self._managed if k not in lru]
        self.state = KeymapState(
            table=table,
            spares=list(self._managed),
            assigned=assigned,
            lru=lru,
            last_used={k: v for k, v in old.last_used.items() if k in managed},
        )

    @property
    def spares(self) -> list[int]:
        """The spare keycodes deskpilot may assign."""
        return list(self.state.spares)

    def lookup(self, keysym: int) -> tuple[int, bool] | None:
        """(keycode, needs_shift) for a keysym in the map (or assigned), else None."""
        return self.state.lookup(keysym)

    def keycode(self, keysym_name: str) -> int:
        """The keycode of a named keysym that must be in the map (e.g. ``Shift_L``)."""
        hit = self.state.table.get(XK.string_to_keysym(keysym_name))
        if hit is None:
            raise LookupError(f"{keysym_name} is not in the keyboard map")
        return hit[0]

    def remap(self, assignments: dict[int, int]) -> None:
        """Map each spare keycode in ``assignments`` to its keysym on every level (no sync)."""
        for keycode, keysym in assignments.items():
            self._d.change_keyboard_mapping(keycode, [(keysym,) * self.per_keycode])

    def restore_all(self) -> None:
        """Give every assigned spare keycode back its empty mapping (no sync)."""
        for keycode in sorted(set(self.state.assigned.values())):
            self._d.change_keyboard_mapping(keycode, [(X.NoSymbol,) * self.per_keycode])
        self.state.assigned.clear()
