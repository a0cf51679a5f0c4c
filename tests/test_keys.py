"""Key-name parsing: xdotool keysym syntax, model aliases, validation (no X server needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from Xlib import XK

from deskpilot.desktop.keys import (
    KEY_HINT,
    keysym_for_char,
    keysym_for_name,
    keysym_name,
    parse_combo,
    parse_keys,
)
from deskpilot.errors import ToolInputError


def names(keys: str) -> list[list[str]]:
    return [[keysym_name(s) for s in combo] for combo in parse_keys(keys)]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("Return", [["Return"]]),
        ("ctrl+s", [["Control_L", "s"]]),
        ("ctrl+shift+t", [["Control_L", "Shift_L", "t"]]),
        ("ctrl+A", [["Control_L", "A"]]),
        ("KP_0", [["KP_0"]]),
        ("Page_Down", [["Page_Down"]]),
        ("Next", [["Page_Down"]]),  # the same keysym
        ("0x61", [["a"]]),
        ("U263A", [["U263A"]]),
        ("XF86AudioMute", [["XF86AudioMute"]]),
        ("shift+Insert", [["Shift_L", "Insert"]]),
        ("ctrl+a Delete", [["Control_L", "a"], ["Delete"]]),
        ("  a   b  ", [["a"], ["b"]]),
        ("ctrl++", [["Control_L", "plus"]]),
        ("+", [["plus"]]),
        ("ctrl+minus", [["Control_L", "minus"]]),
        ("é", [["eacute"]]),
        ("alt+F4", [["Alt_L", "F4"]]),
        ("super_l", [["Super_L"]]),  # case-insensitive keysym name fallback
    ],
)
def test_xdotool_syntax(keys, expected):
    assert names(keys) == expected


@pytest.mark.parametrize(
    ("alias", "keysym"),
    [
        ("enter", "Return"),
        ("ENTER", "Return"),
        ("return", "Return"),
        ("esc", "Escape"),
        ("Escape", "Escape"),
        ("cmd", "Super_L"),
        ("command", "Super_L"),
        ("win", "Super_L"),
        ("super", "Super_L"),
        ("meta", "Super_L"),  # NOT xdotool's meta (Shift+Alt on Xvfb)
        ("ctrl", "Control_L"),
        ("control", "Control_L"),
        ("alt", "Alt_L"),
        ("option", "Alt_L"),
        ("shift", "Shift_L"),
        ("pgdn", "Page_Down"),
        ("pagedown", "Page_Down"),
        ("page_down", "Page_Down"),
        ("pgup", "Page_Up"),
        ("del", "Delete"),
        ("delete", "Delete"),
        ("backspace", "BackSpace"),
        ("tab", "Tab"),
        ("space", "space"),
        ("up", "Up"),
        ("ArrowDown", "Down"),
        ("arrowleft", "Left"),
        ("right", "Right"),
        ("home", "Home"),
        ("end", "End"),
        ("insert", "Insert"),
        ("f1", "F1"),
        ("F12", "F12"),
        ("f24", "F24"),
    ],
)
def test_model_aliases(alias, keysym):
    assert keysym_for_name(alias) == XK.string_to_keysym(keysym)


@pytest.mark.parametrize(
    ("keys", "bad", "combo"),
    [
        ("ctrl+foo", "foo", "ctrl+foo"),
        ("Return; touch /tmp/x", "Return;", "Return;"),
        ("ctrl+", "(empty)", "ctrl+"),
        ("a $(reboot)", "$(reboot)", "$(reboot)"),
        ("f99", "f99", "f99"),
        ("U110000", "U110000", "U110000"),
        ("0x", "0x", "0x"),
    ],
)
def test_unknown_names_raise_with_the_exact_message(keys, bad, combo):
    with pytest.raises(ToolInputError) as info:
        parse_keys(keys)
    assert str(info.value) == f"Unknown key name '{bad}' in '{combo}'. {KEY_HINT}"
    assert isinstance(info.value, ValueError)


def test_whole_command_is_validated_before_returning():
    # the valid first combo must not "leak": parse_keys raises for the whole command
    with pytest.raises(ToolInputError):
        parse_keys("ctrl+a ctrl+nope")


@pytest.mark.parametrize("bad", ["", "   ", None, 5, ["ctrl", "s"]])
def test_empty_or_non_string(bad):
    with pytest.raises(ToolInputError):
        parse_keys(bad)


def test_case_sensitive_keysyms_keep_their_case():
    assert parse_combo("a") != parse_combo("A")
    assert keysym_for_name("Aacute") != keysym_for_name("aacute")


def test_unicode_keysym_rule():
    assert keysym_for_char("a") == 0x61
    assert keysym_for_char("é") == 0xE9  # Latin-1 keysyms equal the code point
    assert keysym_for_char("→") == 0x1002192
    assert keysym_for_char("日") == 0x10065E5
    assert keysym_for_char("😀") == 0x101F600
    assert keysym_for_name("U263A") == 0x100263A


@given(
    st.characters(min_codepoint=0x21, max_codepoint=0x10FFFF).filter(
        lambda c: c != "+" and not c.isspace()
    )
)
def test_any_single_character_is_a_key(char):
    assert parse_keys(char) == [(keysym_for_char(char),)]
