"""The X server's part of a light ``LocalDesktop.reset()``: what a fresh server looked like,
and putting it back without restarting Xvfb.

:func:`snapshot` records, right after Xvfb starts (before the window manager and the apps),
the server state a program of a task can change and that would reach the next task: the
keyboard, modifier and pointer mappings, keyboard and pointer controls, screen saver, access
control list, font path, root window properties, screen size and pointer position.
:func:`restore` then, once the desktop's own programs are stopped:

1. closes every X client that is not deskpilot's (``KillClient`` on each of their top-level
   windows; a program the desktop did not start, such as one the agent's shell left behind,
   loses its connection as it would when Xvfb stops). Clients are told apart by process id
   (the X-Resource extension's ``QueryClientIds``);
2. removes root properties a task added (``RESOURCE_MANAGER`` from ``xrdb``, cut buffers,
   the window manager's ``_NET_*``) and puts changed ones back;
3. clears the selections (PRIMARY, SECONDARY, CLIPBOARD), the input focus (PointerRoot, the
   server's default), the screen saver, and moves the pointer back to where it started;
4. checks everything else against the snapshot and raises :class:`~deskpilot.errors.DesktopError`
   (naming what differs) when something it does not put back was changed — a remapped
   keyboard (``xmodmap``, ``setxkbmap``), swapped buttons, Caps Lock left on, ``xhost +``,
   a screen saver or font path set with ``xset``, another screen size, or a client that is
   still connected without a window. The caller then restarts the whole desktop.

Every function here runs in the backend's X thread with a python-xlib ``Display``.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from deskpilot.desktop.x11_windows import set_background
from deskpilot.errors import DesktopError

__all__ = ["XSnapshot", "restore", "snapshot"]

_SELECTIONS = ("PRIMARY", "SECONDARY", "CLIPBOARD")


@dataclass(frozen=True)
class XSnapshot:
    """The state of a freshly started X server (see the module docstring).

    Attributes:
        size: (width, height) of screen 0 in pixels.
        pointer: the pointer position (x, y) in native pixels.
        settings: name -> value of each setting compared at reset (keyboard, modifier and
            pointer mappings, keyboard and pointer controls, screen saver, access control,
            font path); values are plain tuples, comparable with ``==``.
        root_props: atom -> (type atom, format, value) of each root window property.
    """

    size: tuple[int, int]
    pointer: tuple[int, int]
    settings: dict[str, object]
    root_props: dict[int, tuple[int, int, object]]


def _keysyms(syms: Any) -> tuple[int, ...]:
    """One keycode's keysyms without trailing NoSymbol (the server may pad a row)."""
    out = list(syms)
    while out and not out[-1]:
        out.pop()
    return tuple(out)


def _settings(d: Any) -> dict[str, object]:
    info = d.display.info
    count = info.max_keycode - info.min_keycode + 1
    kbd = d.get_keyboard_control()
    ptr = d.get_pointer_control()
    saver = d.get_screen_saver()
    hosts = d.list_hosts()
    return {
        "the keyboard mapping": tuple(
            _keysyms(s) for s in d.get_keyboard_mapping(info.min_keycode, count)
        ),
        "the modifier mapping": tuple(tuple(m) for m in d.get_modifier_mapping()),
        "the pointer button mapping": tuple(d.get_pointer_mapping()),
        "the keyboard controls (auto-repeat, bell, LEDs such as Caps Lock)": (
            kbd.global_auto_repeat,
            tuple(kbd.auto_repeats),
            kbd.led_mask,
            kbd.key_click_percent,
            kbd.bell_percent,
            kbd.bell_pitch,
            kbd.bell_duration,
        ),
        "the pointer acceleration": (ptr.accel_num, ptr.accel_denom, ptr.threshold),
        "the screen saver": (
            saver.timeout,
            saver.interval,
            saver.prefer_blanking,
            saver.allow_exposures,
        ),
        "the access control list (xhost)": (
            hosts.mode,
            tuple((h.family, bytes(h.name)) for h in hosts.hosts),
        ),
        "the font path": tuple(d.get_font_path()),
    }


def _prop_value(prop: Any) -> object:
    value = prop.value
    if prop.format == 8:
        return value.encode("latin-1") if isinstance(value, str) else bytes(value)
    return tuple(value)


def _root_props(d: Any) -> dict[int, tuple[int, int, object]]:
    from Xlib import X

    root = d.screen().root
    out: dict[int, tuple[int, int, object]] = {}
    for atom in root.list_properties():
        prop = root.get_full_property(atom, X.AnyPropertyType)
        if prop is not None:
            out[atom] = (prop.property_type, prop.format, _prop_value(prop))
    return out


def snapshot(d: Any) -> XSnapshot:
    """The current state of the server ``d`` is connected to (a fresh one: call it right
    after the X server starts)."""
    screen = d.screen()
    pointer = screen.root.query_pointer()
    return XSnapshot(
        size=(screen.width_in_pixels, screen.height_in_pixels),
        pointer=(int(pointer.root_x), int(pointer.root_y)),
        settings=_settings(d),
        root_props=_root_props(d),
    )


def _clients(d: Any) -> dict[int, int | None]:
    """Resource base -> process id (None: unknown) of every client but the server."""
    from Xlib.ext import res

    bases = [c.resource_base for c in d.res_query_clients().clients if c.resource_base]
    specs = [{"client": b, "mask": res.LocalClientPIDMask} for b in bases]
    pids: dict[int, int | None] = dict.fromkeys(bases)
    for item in d.res_query_client_ids(specs).ids if specs else ():
        if item.value:
            pids[item.spec.client] = int(item.value[0])
    return pids


def close_foreign_clients(d: Any, keep_pids: Collection[int]) -> int:
    """Close every X client whose process is not in ``keep_pids``: ``KillClient`` on each
    top-level window of theirs, and of clients that left windows behind (close-down mode
    ``RetainPermanent``). Returns how many windows it closed.

    Raises:
        DesktopError: the server has no X-Resource extension, or a client that is not kept
            is still connected (it has no window to close it by).
    """
    from Xlib import X

    if not d.has_extension("X-Resource"):
        raise DesktopError("The X server has no X-Resource extension to tell its clients apart.")
    mask = d.display.info.resource_id_mask
    root = d.screen().root
    closed = 0
    for _ in range(3):  # a killed client's windows may have held another client's windows
        kept = {b for b, pid in _clients(d).items() if pid in keep_pids}
        foreign = [w for w in root.query_tree().children if (w.id & ~mask) not in kept]
        for window in foreign:
            window.kill_client()
        d.create_resource_object("window", X.AllTemporary).kill_client()
        d.sync()
        closed += len(foreign)
        if not foreign:
            break
    left = [b for b, pid in _clients(d).items() if pid not in keep_pids]
    if left:
        raise DesktopError(
            f"{len(left)} X client(s) not started by deskpilot are still connected "
            "without a window to close them by."
        )
    return closed


def restore(
    d: Any,
    fresh: XSnapshot,
    background: tuple[int, int, int],
    keep_pids: Collection[int] = (),
) -> None:
    """Put the server ``d`` is connected to back to ``fresh`` (see the module docstring),
    keeping the clients of ``keep_pids`` (this process always) and painting the root
    window ``background`` (0-255 per channel).

    Raises:
        DesktopError: a client could not be closed, or a setting that is not put back
            differs from ``fresh`` (the message names it); restart the X server then.
    """
    from Xlib import X
    from Xlib.protocol import request

    close_foreign_clients(d, {os.getpid(), *keep_pids})
    screen = d.screen()
    root = screen.root
    size = (screen.width_in_pixels, screen.height_in_pixels)
    if size != fresh.size:
        raise DesktopError(f"The screen is {size[0]}x{size[1]} now, not {fresh.size}.")
    now = _settings(d)
    changed = [name for name, value in fresh.settings.items() if now.get(name) != value]
    if changed:
        raise DesktopError(f"A program changed {', '.join(changed)}.")
    for atom, (kind, fmt, value) in _root_props(d).items():
        if atom not in fresh.root_props:
            root.delete_property(atom)
        elif fresh.root_props[atom] != (kind, fmt, value):
            old_kind, old_fmt, old_value = fresh.root_props[atom]
            root.change_property(atom, old_kind, old_fmt, old_value)
    for name in _SELECTIONS:
        request.SetSelectionOwner(
            display=d.display, window=X.NONE, selection=d.intern_atom(name), time=X.CurrentTime
        )
    d.set_input_focus(X.PointerRoot, X.RevertToPointerRoot, X.CurrentTime)
    d.force_screen_saver(X.ScreenSaverReset)
    root.warp_pointer(*fresh.pointer)
    set_background(d, background)  # syncs
    pointer = root.query_pointer()
    if pointer.mask:
        raise DesktopError(
            f"Modifier or button state {pointer.mask:#x} is still set (a key or lock left on)."
        )
