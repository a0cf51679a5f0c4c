"""Unicode typing: the keystroke planner (pure) and text read back from a real xterm."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path

import pytest

from deskpilot.desktop.keymap import KeymapState
from deskpilot.desktop.keys import keysym_for_char
from deskpilot.desktop.local import LocalDesktop
from deskpilot.desktop.text_input import normalise_text, plan_typing
from deskpilot.errors import ToolInputError

NON_ASCII = "éüñßøåçλπΩЖж€→✓☺日本語中文한국어¿½°"
ASCII = (
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_=+*/()[]{}<>@#$%^&|~`"'
)


def mixed_text(seed: int, n: int = 200) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(NON_ASCII if rng.random() < 0.4 else ASCII) for _ in range(n))


# ---------------------------------------------------------------- planner (no X server)
def state(spares=(200, 201)) -> KeymapState:
    table = {keysym_for_char(c): (10 + i, 0) for i, c in enumerate("abc \n\t")}
    table[keysym_for_char("A")] = (10, 1)
    return KeymapState(table=table, spares=list(spares), lru=list(spares))


def replay(segments) -> list[int]:
    """What the keystrokes would produce: keysym per stroke, following the remaps."""
    mapping: dict[int, int] = {}
    out = []
    for seg in segments:
        mapping.update(seg.remap)
        for keycode, shifted in seg.strokes:
            out.append(mapping.get(keycode, (keycode, shifted)))
    return out


def expected(text: str, st: KeymapState) -> list:
    out: list = []
    for c in text:
        sym = keysym_for_char(c)
        hit = st.table.get(sym)
        out.append((hit[0], hit[1] == 1) if hit else sym)
    return out


def test_plan_uses_the_keymap_and_shift():
    st = state()
    segs = plan_typing("aA b", st)
    assert len(segs) == 1 and segs[0].remap == {}
    assert segs[0].strokes == [(10, False), (10, True), (13, False), (11, False)]


def test_plan_assigns_spares_and_reuses_them():
    st = state()
    segs = plan_typing("aéé→a", st)
    assert len(segs) == 1
    assert segs[0].remap == {200: keysym_for_char("é"), 201: keysym_for_char("→")}
    assert segs[0].strokes == [(10, False), (200, False), (200, False), (201, False), (10, False)]
    assert st.assigned == {keysym_for_char("é"): 200, keysym_for_char("→"): 201}


def test_assignments_persist_across_calls_without_remapping():
    st = state()
    plan_typing("é→", st)
    segs = plan_typing("→é→", st)
    assert [s.remap for s in segs] == [{}]
    assert segs[0].strokes == [(201, False), (200, False), (201, False)]


def test_plan_splits_when_spares_run_out_and_keeps_order():
    st = state()
    text = "é→日本a語→"
    segs = plan_typing(text, st)
    assert [len(s.remap) for s in segs] == [2, 2, 2]
    assert replay(segs) == expected(text, state())


def test_least_recently_used_spare_is_reassigned_first():
    st = state()
    plan_typing("é→", st)  # é -> 200, → -> 201
    plan_typing("é", st)  # é used again: 201 is now the least recently used
    segs = plan_typing("日", st)
    assert segs[0].remap == {201: keysym_for_char("日")}
    assert st.lookup(keysym_for_char("é")) == (200, False)
    assert st.lookup(keysym_for_char("→")) is None


def test_plan_without_spares_is_a_clear_error():
    with pytest.raises(ToolInputError, match="no spare keycodes"):
        plan_typing("é", state(spares=()))


def test_normalise_text():
    assert normalise_text("a\r\nb\rc\td") == "a\nb\nc\td"
    with pytest.raises(ToolInputError, match="U\\+0007"):
        normalise_text("bell\a")
    with pytest.raises(ToolInputError, match="must be a string"):
        normalise_text(123)  # type: ignore[arg-type]


# ---------------------------------------------------------------- real xterm
async def _read_when_complete(path: Path, expected_len: int, timeout_s: float = 5.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    text = ""
    while loop.time() < deadline:
        if path.exists():
            text = path.read_text(encoding="utf-8")
            if len(text) >= expected_len:
                return text
        await asyncio.sleep(0.01)
    return text


@pytest.fixture
async def terminal():
    async with LocalDesktop(1024, 768, apps=("terminal",)) as d:
        yield d


@pytest.mark.desktop
async def test_mixed_unicode_text_is_read_back_exactly_from_xterm(terminal):
    out = terminal.home / "out"
    out.mkdir()
    for trial in range(5):
        text = mixed_text(trial)
        assert "'" not in text and len(text) == 200
        target = out / f"t{trial}.txt"
        await terminal.type_text(f"printf '%s' '{text}' > {target}\n")
        got = await _read_when_complete(target, len(text))
        assert got == text, f"trial {trial}"


@pytest.mark.desktop
async def test_newline_and_tab_reach_the_app_as_return_and_tab(terminal):
    target = terminal.home / "cat.txt"
    await terminal.type_text(f"cat > {target}\n")
    body = "col1\tcol2 é\nline two\t→ 日本\n"
    await terminal.type_text(body)
    await terminal.key("ctrl+d")
    assert await _read_when_complete(target, len(body)) == body


@pytest.mark.desktop
async def test_assigned_keycodes_are_released_when_the_backend_closes(terminal):
    from Xlib import display

    from deskpilot.desktop.local import X11Display
    from deskpilot.desktop.xauth import authority

    async with X11Display(terminal.display, xauthority=terminal.xauthority) as other:
        spares = other.backend._keymap.spares
        await other.type_text("日本語 ☺ é\n")
        assert (
            len(other.backend._keymap.state.assigned) == 5
        )  # 日 本 語 ☺ é (none is in Xvfb's US map)
    with authority(terminal.xauthority):
        d = display.Display(terminal.display)
    try:
        lo = min(spares)
        mapping = d.get_keyboard_mapping(lo, max(spares) - lo + 1)
        assert all(not any(mapping[k - lo]) for k in spares)
    finally:
        d.close()


@pytest.mark.desktop
@pytest.mark.skipif(
    shutil.which("mousepad") is None or shutil.which("xclip") is None,
    reason="mousepad/xclip not installed; run: bash scripts/install-desktop-deps.sh",
)
async def test_mixed_unicode_text_in_a_gtk_editor():
    """GTK reads the keymap through XKB: the same text must arrive intact in mousepad."""
    from deskpilot.desktop.local import merged_env

    async with LocalDesktop(1024, 768, apps=("text_editor",)) as d:
        for trial in range(2):
            text = mixed_text(100 + trial) + "\nline2\tend"
            await d.type_text(text)
            await d.wait_settled()
            await d.key("ctrl+a")
            await d.key("ctrl+c")
            got = ""
            for _ in range(50):
                proc = await asyncio.create_subprocess_exec(
                    "xclip",
                    "-o",
                    "-selection",
                    "clipboard",
                    env=merged_env(d),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                out, _ = await proc.communicate()
                got = out.decode("utf-8", "replace")
                if got == text:
                    break
                await asyncio.sleep(0.05)
            assert got == text, f"trial {trial}"
            await d.key("ctrl+a")
            await d.key("Delete")


@pytest.mark.desktop
async def test_two_backends_on_one_display_do_not_type_each_others_characters(terminal):
    """Another client remapping the spare keycodes: the keymap is re-read (MappingNotify)."""
    from deskpilot.desktop.local import X11Display

    out = terminal.home / "two"
    out.mkdir()
    async with X11Display(terminal.display, xauthority=terminal.xauthority) as other:
        for i, (who, text) in enumerate(
            [(terminal, "é→日"), (other, "本語☺"), (terminal, "é→日本"), (other, "ж€é")]
        ):
            target = out / f"{i}.txt"
            await who.type_text(f"printf '%s' '{text}' > {target}\n")
            assert await _read_when_complete(target, len(text)) == text, i
