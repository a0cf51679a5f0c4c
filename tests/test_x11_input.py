"""Every input primitive of the X11 backend, checked in an event-logging window at exact
native coordinates (real Xvfb + openbox)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskpilot.errors import ToolInputError
from event_window import CONTROL, MOD1, MOD4, SHIFT

pytestmark = pytest.mark.desktop

WX, WY = 100, 100  # the event window's top-left corner on the screen


async def test_left_click_at_exact_native_coordinates(desktop, event_window):
    win = await event_window(x=WX, y=WY)
    await desktop.click(150, 170)
    await win.wait_count("ButtonRelease", 1)
    press, release = win.of("ButtonPress")[0], win.of("ButtonRelease")[0]
    assert (press["button"], press["x"], press["y"]) == (1, 50, 70)
    assert (press["root_x"], press["root_y"]) == (150, 170)
    assert (release["button"], release["x"], release["y"]) == (1, 50, 70)
    assert await desktop.cursor_position() == (150, 170)


@pytest.mark.parametrize(("button", "number"), [("right", 3), ("middle", 2)])
async def test_other_buttons(desktop, event_window, button, number):
    win = await event_window()
    await desktop.click(300, 250, button=button)
    await win.wait_count("ButtonRelease", 1)
    press = win.of("ButtonPress")[0]
    assert (press["button"], press["x"], press["y"]) == (number, 200, 150)


@pytest.mark.parametrize("count", [2, 3])
async def test_double_and_triple_click(desktop, event_window, count):
    win = await event_window()
    await desktop.click(200, 200, count=count)
    presses = await win.wait_count("ButtonPress", count)
    await win.wait_count("ButtonRelease", count)
    await win.quiet(0.1)
    assert len(win.of("ButtonPress")) == count
    assert all((p["button"], p["x"], p["y"]) == (1, 100, 100) for p in presses)


async def test_click_with_modifiers_holds_them_during_the_click(desktop, event_window):
    win = await event_window()
    await desktop.click(120, 130, modifiers=["ctrl", "shift"])
    await win.wait_count("ButtonRelease", 1)
    await win.wait_count("KeyRelease", 2)
    press = win.of("ButtonPress")[0]
    assert press["state"] & CONTROL and press["state"] & SHIFT
    keys = [e["keysym"] for e in win.of("KeyPress")]
    assert keys == ["Control_L", "Shift_L"]
    # released afterwards: a later click carries no modifiers
    win.clear()
    await desktop.click(121, 131)
    await win.wait_count("ButtonPress", 1)
    assert win.of("ButtonPress")[0]["state"] & (CONTROL | SHIFT) == 0


async def test_click_without_coordinates_clicks_at_the_pointer(desktop, event_window):
    win = await event_window()
    await desktop.move(333, 222)
    await desktop.click()
    await win.wait_count("ButtonPress", 1)
    press = win.of("ButtonPress")[0]
    assert (press["x"], press["y"]) == (233, 122)


async def test_move_reports_motion_and_cursor_position(desktop, event_window):
    win = await event_window()
    await desktop.move(140, 160)
    await win.wait_for(lambda evs: any(e["type"] == "MotionNotify" for e in evs))
    last = win.of("MotionNotify")[-1]
    assert (last["x"], last["y"]) == (40, 60)
    assert await desktop.cursor_position() == (140, 160)


async def test_mouse_down_move_mouse_up(desktop, event_window):
    win = await event_window()
    await desktop.move(110, 120)
    await desktop.mouse_down()
    await desktop.move(300, 310)
    await desktop.mouse_up()
    await win.wait_count("ButtonRelease", 1)
    press, release = win.of("ButtonPress")[0], win.of("ButtonRelease")[0]
    assert (press["x"], press["y"]) == (10, 20)
    assert (release["x"], release["y"]) == (200, 210)
    motion_with_button = [e for e in win.of("MotionNotify") if e["state"] & 0x100]
    assert motion_with_button and (motion_with_button[-1]["x"], motion_with_button[-1]["y"]) == (
        200,
        210,
    )


async def test_drag_presses_at_start_moves_and_releases_at_end(desktop, event_window):
    win = await event_window()
    await desktop.drag((120, 140), (420, 340))
    await win.wait_count("ButtonRelease", 1)
    press, release = win.of("ButtonPress")[0], win.of("ButtonRelease")[0]
    assert (press["root_x"], press["root_y"]) == (120, 140)
    assert (release["root_x"], release["root_y"]) == (420, 340)
    moves = [e for e in win.of("MotionNotify") if e["state"] & 0x100]  # Button1 held
    assert len(moves) >= 5
    xs = [m["root_x"] for m in moves]
    assert xs == sorted(xs) and xs[-1] == 420


async def test_drag_with_modifier(desktop, event_window):
    win = await event_window()
    await desktop.drag((150, 150), (250, 250), modifiers=["shift"])
    await win.wait_count("ButtonRelease", 1)
    assert win.of("ButtonPress")[0]["state"] & SHIFT
    assert win.of("ButtonRelease")[0]["state"] & SHIFT


@pytest.mark.parametrize(
    ("direction", "button"), [("up", 4), ("down", 5), ("left", 6), ("right", 7)]
)
async def test_scroll_directions_and_amount(desktop, event_window, direction, button):
    win = await event_window()
    await desktop.scroll(direction, 3, x=200, y=210)
    presses = await win.wait_count("ButtonPress", 3)
    await win.quiet(0.1)
    assert len(win.of("ButtonPress")) == 3
    assert all((p["button"], p["x"], p["y"]) == (button, 100, 110) for p in presses)


async def test_scroll_with_modifier(desktop, event_window):
    win = await event_window()
    await desktop.scroll("down", 1, x=200, y=200, modifiers=["ctrl"])
    await win.wait_count("ButtonPress", 1)
    assert win.of("ButtonPress")[0]["state"] & CONTROL


def _press_syms(win):
    return [e["keysym"] for e in win.of("KeyPress")]


async def test_key_combo_ctrl_s(desktop, event_window):
    win = await event_window()
    await desktop.key("ctrl+s")
    await win.wait_count("KeyRelease", 2)
    presses = win.of("KeyPress")
    assert _press_syms(win) == ["Control_L", "s"]
    assert presses[1]["state"] & CONTROL


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("enter", "Return"),
        ("Return", "Return"),
        ("esc", "Escape"),
        ("pgdn", "Page_Down"),
        ("Page_Down", "Page_Down"),
        ("backspace", "BackSpace"),
        ("del", "Delete"),
        ("ArrowUp", "Up"),
        ("f5", "F5"),
        ("space", "space"),
        ("tab", "Tab"),
        ("home", "Home"),
    ],
)
async def test_key_aliases(desktop, event_window, alias, expected):
    win = await event_window()
    await desktop.key(alias)
    await win.wait_count("KeyRelease", 1)
    assert _press_syms(win) == [expected]


async def test_cmd_is_super_not_xdotool_meta(desktop, event_window):
    win = await event_window()
    await desktop.key("cmd+a")
    await win.wait_count("KeyRelease", 2)
    presses = win.of("KeyPress")
    assert presses[0]["keysym"] == "Super_L"
    assert presses[1]["keysym"] == "a" and presses[1]["state"] & MOD4
    assert not presses[1]["state"] & SHIFT


async def test_alt_and_uppercase_adds_shift(desktop, event_window):
    win = await event_window()
    await desktop.key("ctrl+alt+T")
    await win.wait_count("KeyPress", 4)
    last = win.of("KeyPress")[-1]
    assert last["keysym"] == "T"
    assert last["state"] & CONTROL and last["state"] & MOD1 and last["state"] & SHIFT


async def test_keys_outside_the_keymap_are_remapped(desktop, event_window):
    win = await event_window()
    await desktop.key("XF86AudioMute U263A KP_0")
    await win.wait_for(lambda evs: any(e.get("keysym") == "KP_0" for e in evs))
    presses = [e for e in win.of("KeyPress") if e["keysym"] != "Shift_L"]
    assert [e["sym"] for e in presses[:2]] == [0x1008FF12, 0x100263A]  # XF86AudioMute, U263A
    assert presses[2]["keysym"] == "KP_0"


async def test_key_sequence_and_repeat(desktop, event_window):
    win = await event_window()
    await desktop.key("a b", repeat=3)
    await win.wait_count("KeyRelease", 6)
    assert _press_syms(win) == ["a", "b"] * 3


async def test_hold_key_holds_for_the_duration(desktop, event_window):
    win = await event_window()
    await desktop.hold_key("shift", 0.4)
    await win.wait_count("KeyRelease", 1)
    press, release = win.of("KeyPress")[0], win.of("KeyRelease")[0]
    assert press["keysym"] == "Shift_L"
    held_ms = release["time"] - press["time"]  # X server timestamps
    assert 350 <= held_ms <= 3000


async def test_unknown_key_is_an_error_and_nothing_is_pressed(desktop, event_window):
    win = await event_window()
    with pytest.raises(ToolInputError, match="Unknown key name 'foo' in 'ctrl\\+foo'"):
        await desktop.key("a ctrl+foo")
    await win.quiet(0.2)
    assert win.of("KeyPress", "KeyRelease") == []


async def test_shell_injection_through_key_is_an_error(desktop, event_window, tmp_path: Path):
    """Reference bug §3.8.1: `Return; touch /tmp/x` as a key ran the shell command."""
    target = tmp_path / "x"
    win = await event_window()
    with pytest.raises(ToolInputError):
        await desktop.key(f"Return; touch {target}")
    await win.quiet(0.2)
    assert not target.exists()
    assert win.of("KeyPress") == []


async def test_bad_inputs_are_rejected_before_anything_happens(desktop, event_window):
    win = await event_window()
    with pytest.raises(ToolInputError, match="outside the 1280x800 display"):
        await desktop.click(1280, 10)
    with pytest.raises(ToolInputError):
        await desktop.click(10, 10, button="fourth")
    with pytest.raises(ToolInputError):
        await desktop.click(10, 10, modifiers=["hyperctrl"])
    with pytest.raises(ToolInputError):
        await desktop.scroll("sideways", 1)
    with pytest.raises(ToolInputError):
        await desktop.type_text(123)  # type: ignore[arg-type]
    await win.quiet(0.2)
    assert win.of("ButtonPress", "KeyPress") == []


async def test_type_text_ascii_with_newline_and_tab(desktop, event_window):
    win = await event_window()
    text = "Hi, you!\t\n"
    await desktop.type_text(text)
    await win.wait_for(lambda evs: any(e.get("keysym") == "Return" for e in evs))
    syms = _press_syms(win)
    letters = [s for s in syms if s not in ("Shift_L",)]
    assert letters == ["H", "i", "comma", "space", "y", "o", "u", "exclam", "Tab", "Return"]


async def test_type_text_unicode_keysyms(desktop, event_window):
    from deskpilot.desktop.keys import keysym_for_char

    win = await event_window()
    text = "é→日本ü€"
    await desktop.type_text(text)
    await win.wait_for(lambda evs: sum(e.get("sym") == 0x100672C for e in evs) >= 1)
    await win.wait_count("KeyRelease", len(text))
    syms = [e["sym"] for e in win.of("KeyPress") if e["keysym"] != "Shift_L"]
    assert syms == [keysym_for_char(c) for c in text]
