"""A test window that logs the X events it receives, for checking input by its effect.

Run as a separate X client (a subprocess, like a real app):

    python tests/event_window.py DISPLAY X Y W H COLOUR

It opens an override-redirect window at exactly (X, Y) with size W x H (so its coordinates
do not depend on the window manager's decorations), filled with COLOUR (``rrggbb``), takes
the input focus, and prints one JSON object per line on stdout: ``{"type": "ready", ...}``
first, then ButtonPress/ButtonRelease/MotionNotify/KeyPress/KeyRelease events with the
coordinates relative to the window (``x``, ``y``) and to the screen (``root_x``,
``root_y``), the modifier ``state`` bits, and for keys the keysym name, translated at once
with the keymap current at that moment (the same as a real client). Commands on stdin, one
per line: ``focus``, ``raise``, ``quit``.

:class:`EventWindow` is the asyncio helper the tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# X modifier state bits (X11 protocol, KeyButMask).
SHIFT, LOCK, CONTROL, MOD1, MOD4 = 0x1, 0x2, 0x4, 0x8, 0x40

HERE = os.path.dirname(os.path.abspath(__file__))


_NAMES: dict[int, str] = {}


def _keysym_name(d: Any, keycode: int, state: int) -> str:
    from Xlib import XK

    if not _NAMES:
        for attr in sorted(dir(XK)):
            if attr.startswith("XK_"):
                name = attr[3:]
                name = "XF86" + name[5:] if name.startswith("XF86_") else name
                _NAMES.setdefault(getattr(XK, attr), name)
        for name in ("Return", "Escape", "Page_Down", "Page_Up", "BackSpace", "Super_L"):
            _NAMES[XK.string_to_keysym(name)] = name
    index = 1 if state & SHIFT else 0
    sym = d.keycode_to_keysym(keycode, index) or d.keycode_to_keysym(keycode, 0)
    if not sym:
        return ""
    if sym in _NAMES:
        return _NAMES[sym]
    if sym & 0xFF000000 == 0x01000000:
        return f"U{sym & 0xFFFFFF:04X}"
    return hex(sym)


def main(argv: list[str]) -> int:
    from Xlib import XK, X, display

    for group in ("xf86", "technical", "special", "publishing", "greek", "cyrillic"):
        XK.load_keysym_group(group)
    name, x, y, w, h, colour = argv[0], *map(int, argv[1:5]), int(argv[5], 16)
    d = display.Display(name)
    screen = d.screen()
    r, g, b = (colour >> 16) & 255, (colour >> 8) & 255, colour & 255
    pixel = screen.default_colormap.alloc_color(r * 257, g * 257, b * 257).pixel
    mask = (
        X.KeyPressMask
        | X.KeyReleaseMask
        | X.ButtonPressMask
        | X.ButtonReleaseMask
        | X.PointerMotionMask
        | X.StructureNotifyMask
        | X.ExposureMask
    )
    win = screen.root.create_window(
        x,
        y,
        w,
        h,
        0,
        screen.root_depth,
        X.InputOutput,
        X.CopyFromParent,
        background_pixel=pixel,
        override_redirect=True,
        event_mask=mask,
    )
    win.set_wm_name("deskpilot-event-window")
    win.map()
    d.sync()
    while True:
        ev = d.next_event()
        if ev.type == X.MapNotify:
            break
    win.set_input_focus(X.RevertToParent, X.CurrentTime)
    win.configure(stack_mode=X.Above)
    d.sync()
    out = sys.stdout

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    emit({"type": "ready", "window": win.id, "t": time.monotonic()})
    names = {
        X.ButtonPress: "ButtonPress",
        X.ButtonRelease: "ButtonRelease",
        X.MotionNotify: "MotionNotify",
        X.KeyPress: "KeyPress",
        X.KeyRelease: "KeyRelease",
    }
    stdin = sys.stdin.fileno()
    while True:
        while d.pending_events():
            ev = d.next_event()
            if ev.type == X.MappingNotify:
                d.refresh_keyboard_mapping(ev)
                continue
            if ev.type == X.DestroyNotify:
                return 0
            kind = names.get(ev.type)
            if kind is None:
                continue
            rec: dict[str, Any] = {
                "type": kind,
                "x": ev.event_x,
                "y": ev.event_y,
                "root_x": ev.root_x,
                "root_y": ev.root_y,
                "state": ev.state,
                "time": ev.time,
                "t": time.monotonic(),
            }
            if kind.startswith("Button"):
                rec["button"] = ev.detail
            elif kind.startswith("Key"):
                rec["keycode"] = ev.detail
                rec["keysym"] = _keysym_name(d, ev.detail, ev.state)
                rec["sym"] = d.keycode_to_keysym(ev.detail, 1 if ev.state & SHIFT else 0)
            emit(rec)
        ready, _, _ = select.select([d.fileno(), stdin], [], [], 0.5)
        if stdin in ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "quit":
                return 0
            if line.strip() == "focus":
                win.set_input_focus(X.RevertToParent, X.CurrentTime)
                win.configure(stack_mode=X.Above)
                d.sync()
                emit({"type": "focused", "t": time.monotonic()})
            elif line.strip() == "raise":
                win.configure(stack_mode=X.Above)
                d.sync()


@dataclass
class EventWindow:
    """Async handle on an event-logging window (see the module docstring).

    Attributes:
        display: X display name.
        x, y, width, height: the window's geometry in native screen pixels.
        colour: its fill colour as 0xRRGGBB.
        events: every event received so far (dicts; see the module docstring).
    """

    display: str
    x: int = 100
    y: int = 100
    width: int = 400
    height: int = 300
    colour: int = 0x20C040
    xauthority: str | None = None  # the desktop's cookie file (LocalDesktop.xauthority)
    events: list[dict[str, Any]] = field(default_factory=list)
    window: int = 0
    _proc: Any = None
    _reader: Any = None
    _changed: Any = None

    async def start(self, timeout_s: float = 10.0) -> EventWindow:
        self._changed = asyncio.Event()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            os.path.join(HERE, "event_window.py"),
            self.display,
            str(self.x),
            str(self.y),
            str(self.width),
            str(self.height),
            f"{self.colour:06x}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "XAUTHORITY": self.xauthority} if self.xauthority else None,
        )
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError("the event window exited before it was ready")
        self.window = json.loads(line)["window"]
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._proc is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                break
            self.events.append(json.loads(line))
            self._changed.set()

    async def command(self, cmd: str) -> None:
        self._proc.stdin.write(cmd.encode() + b"\n")
        await self._proc.stdin.drain()

    async def focus(self) -> None:
        """Give the window the input focus (and raise it) and wait until it did."""
        n = len(self.events)
        await self.command("focus")
        await self.wait_for(lambda evs: any(e["type"] == "focused" for e in evs[n:]))

    def clear(self) -> None:
        self.events.clear()

    def of(self, *types: str) -> list[dict[str, Any]]:
        """Events of the given types, in order."""
        return [e for e in self.events if e["type"] in types]

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until ``predicate(events)`` is true; returns the events. Raises TimeoutError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate(self.events):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"events never matched; got {self.events!r}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
        return self.events

    async def wait_count(self, kind: str, n: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` events of type ``kind`` arrived; returns them."""
        await self.wait_for(lambda evs: sum(e["type"] == kind for e in evs) >= n, timeout_s)
        return self.of(kind)

    async def quiet(self, seconds: float = 0.15) -> list[dict[str, Any]]:
        """Let ``seconds`` pass (for checking that NOTHING arrives); returns the events."""
        await asyncio.sleep(seconds)
        return self.events

    async def close(self) -> None:
        if self._proc is None:
            return
        if self._proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.command("quit")
            try:
                await asyncio.wait_for(self._proc.wait(), 3)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
