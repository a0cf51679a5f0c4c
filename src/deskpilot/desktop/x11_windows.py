"""X11 window queries for a desktop: EWMH properties, activation, the root background.

Plain functions of an open python-xlib ``Display`` (``d``), meant to run in the backend's X
thread through :meth:`deskpilot.desktop.x11_connection.X11Connection.run_x`, e.g.
``await backend.run_x("list windows", client_list)``. The window-manager hints are those of
the Extended Window Manager Hints spec (https://specifications.freedesktop.org/wm-spec/latest/):
``_NET_SUPPORTING_WM_CHECK``, ``_NET_CLIENT_LIST``, ``_NET_ACTIVE_WINDOW`` (a client message with
source indication 2, "pager", so openbox honours it).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "activate",
    "active_window",
    "atom",
    "client_list",
    "set_background",
    "window_prop",
    "wm_ready",
]


def atom(d: Any, name: str) -> int:
    """The atom id of ``name`` (interned if new)."""
    return d.intern_atom(name)


def window_prop(d: Any, name: str) -> list[int]:
    """The values of the root window's property ``name`` (empty when unset)."""
    from Xlib import X

    prop = d.screen().root.get_full_property(atom(d, name), X.AnyPropertyType)
    return list(prop.value) if prop is not None else []


def wm_ready(d: Any) -> bool:
    """True once a window manager has set ``_NET_SUPPORTING_WM_CHECK`` on the root."""
    return bool(window_prop(d, "_NET_SUPPORTING_WM_CHECK"))


def client_list(d: Any) -> list[int]:
    """X ids of the managed top-level windows (``_NET_CLIENT_LIST``, mapping order)."""
    return window_prop(d, "_NET_CLIENT_LIST")


def active_window(d: Any) -> int | None:
    """The X id of the active window (``_NET_ACTIVE_WINDOW``), or None."""
    value = window_prop(d, "_NET_ACTIVE_WINDOW")
    return int(value[0]) if value and value[0] else None


def activate(d: Any, wid: int) -> None:
    """Ask the window manager to activate window ``wid`` (does not wait for it)."""
    from Xlib import X
    from Xlib.protocol import event

    root = d.screen().root
    ev = event.ClientMessage(
        window=d.create_resource_object("window", wid),
        client_type=atom(d, "_NET_ACTIVE_WINDOW"),
        data=(32, [2, X.CurrentTime, 0, 0, 0]),
    )
    root.send_event(ev, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
    d.sync()


def set_background(d: Any, rgb: tuple[int, int, int]) -> None:
    """Paint the root window a solid colour (0-255 per channel)."""
    screen = d.screen()
    r, g, b = rgb
    pixel = screen.default_colormap.alloc_color(r * 257, g * 257, b * 257).pixel
    screen.root.change_attributes(background_pixel=pixel)
    screen.root.clear_area(0, 0, 0, 0)
    d.sync()
