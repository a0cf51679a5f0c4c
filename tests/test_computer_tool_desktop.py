"""Every action of every computer tool version on a REAL Xvfb desktop, checked by its effect.

The desktop is 1920x1080 and the tool uses the legacy image tier, so the model sees
1456x819 screenshots: model (728, 409) is native (960, 540) and model (1455, 818) is native
(1919, 1079). A full-screen event window logs what X delivers (tests/event_window.py).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable

import pytest
from PIL import Image as PILImage
from PIL import ImageChops, ImageStat

from deskpilot import ComputerTool, ToolCall
from deskpilot.computer_use.specs import computer_spec, versions
from deskpilot.prompt import ToolResult
from event_window import CONTROL, SHIFT, EventWindow

pytestmark = pytest.mark.desktop

VERSIONS = versions("computer")
W, H = 1920, 1080
MODEL = (1456, 819)
GREEN = (0x20, 0xC0, 0x40)


@pytest.fixture
async def desk1080():
    from conftest import HAVE_XVFB, SKIP_REASON

    if not HAVE_XVFB:
        pytest.skip(SKIP_REASON)
    from deskpilot.desktop.local import LocalDesktop

    async with LocalDesktop(width=W, height=H) as d:
        yield d


@pytest.fixture
async def screen_window(desk1080):
    win = EventWindow(desk1080.display, 0, 0, W, H, 0x20C040, desk1080.xauthority)
    await win.start()
    yield win
    await win.close()


class Runner:
    """Sends actions in the wire shape of one version and returns the result."""

    def __init__(self, tool: ComputerTool, win: EventWindow, desktop) -> None:
        self.tool, self.win, self.desktop = tool, win, desktop
        self.toolset = computer_spec(tool.version).toolset
        self.n = 0

    async def __call__(self, action: str, **params) -> ToolResult:
        self.n += 1
        if self.toolset:
            call = ToolCall(f"tu_{self.n}", action, params, toolset_name="computer")
        else:
            call = ToolCall(f"tu_{self.n}", "computer", {"action": action, **params})
        result = await self.tool.execute(call)
        assert not result.is_error, (action, params, result.text)
        if self.toolset:
            assert result.toolset_name == "computer"
        return result

    @property
    def legacy(self) -> bool:
        return self.tool.version == "computer_20241022"


def presses(win: EventWindow, kind: str = "ButtonPress") -> list[tuple[int, int, int, int]]:
    return [(e["button"], e["root_x"], e["root_y"], e["state"]) for e in win.of(kind)]


def key_syms(win: EventWindow, kind: str = "KeyPress") -> list[str]:
    return [e["keysym"] for e in win.of(kind)]


def decode(result: ToolResult) -> PILImage.Image:
    return PILImage.open(io.BytesIO(result.images[0].data)).convert("RGB")


# --- one scenario per action: perform it through the tool, check the effect ------------------


async def s_screenshot(run: Runner) -> None:
    r = await run("screenshot")
    img = decode(r)
    assert img.size == MODEL
    px = img.getpixel((700, 400))
    assert all(abs(a - b) <= 8 for a, b in zip(px, GREEN, strict=True)), px


async def s_cursor_position(run: Runner) -> None:
    await run.desktop.move(1919, 1079)
    assert (await run("cursor_position")).text == "X=1455, Y=818"
    await run.desktop.move(960, 540)
    assert (await run("cursor_position")).text == "X=728, Y=409"


async def s_mouse_move(run: Runner) -> None:
    r = await run("mouse_move", coordinate=[728, 409])
    assert decode(r).size == MODEL
    await run.win.wait_for(
        lambda evs: any(
            e["type"] == "MotionNotify" and e["root_x"] == 960 and e["root_y"] == 540 for e in evs
        )
    )
    assert await run.desktop.cursor_position() == (960, 540)


async def _click(run: Runner, action: str, button: int, count: int) -> None:
    if run.legacy:  # 20241022 clicks where the pointer is
        await run("mouse_move", coordinate=[1455, 818])
        run.win.clear()
        await run(action)
    else:
        await run(action, coordinate=[1455, 818], text="shift")
    evs = await run.win.wait_count("ButtonRelease", count)
    got = presses(run.win)
    assert [(b, x, y) for b, x, y, _ in got] == [(button, 1919, 1079)] * count
    if not run.legacy:
        assert all(state & SHIFT for *_, state in got), got  # modifier from `text` held
    assert len(evs) == count


async def s_left_click(run: Runner) -> None:
    await _click(run, "left_click", 1, 1)


async def s_right_click(run: Runner) -> None:
    await _click(run, "right_click", 3, 1)


async def s_middle_click(run: Runner) -> None:
    await _click(run, "middle_click", 2, 1)


async def s_double_click(run: Runner) -> None:
    await _click(run, "double_click", 1, 2)


async def s_triple_click(run: Runner) -> None:
    await _click(run, "triple_click", 1, 3)


async def s_left_click_drag(run: Runner) -> None:
    if run.legacy:  # from the pointer to `coordinate`
        await run("mouse_move", coordinate=[100, 100])
        run.win.clear()
        await run("left_click_drag", coordinate=[728, 409])
        start = (132, 132)
    else:
        await run(
            "left_click_drag", start_coordinate=[100, 100], coordinate=[728, 409], text="ctrl"
        )
        start = (132, 132)
    await run.win.wait_count("ButtonRelease", 1)
    ((b, x, y, state),) = presses(run.win)
    assert (b, x, y) == (1, *start)
    ((rb, rx, ry, rstate),) = presses(run.win, "ButtonRelease")
    assert (rb, rx, ry) == (1, 960, 540)
    moves = [(e["root_x"], e["root_y"]) for e in run.win.of("MotionNotify")]
    assert len(moves) >= 3 and moves[-1] == (960, 540)  # moved in steps while pressed
    if not run.legacy:
        assert state & CONTROL and rstate & CONTROL


async def s_left_mouse_down(run: Runner) -> None:
    await run("mouse_move", coordinate=[364, 204])
    run.win.clear()
    await run("left_mouse_down")
    await run.win.wait_count("ButtonPress", 1)
    assert run.win.of("ButtonRelease") == []
    assert presses(run.win)[0][:3] == (1, 480, 269)
    await run("mouse_move", coordinate=[728, 409])
    await run("left_mouse_up")
    await run.win.wait_count("ButtonRelease", 1)
    assert presses(run.win, "ButtonRelease")[0][:3] == (1, 960, 540)


async def s_left_mouse_up(run: Runner) -> None:
    await run.desktop.move(960, 540)
    await run.desktop.mouse_down("left")
    await run.win.wait_count("ButtonPress", 1)
    run.win.clear()
    await run("left_mouse_up")
    await run.win.wait_count("ButtonRelease", 1)
    assert run.win.of("ButtonPress") == []


async def s_scroll(run: Runner) -> None:
    expected = {"up": 4, "down": 5, "left": 6, "right": 7}
    for direction, button in expected.items():
        run.win.clear()
        await run(
            "scroll",
            scroll_direction=direction,
            scroll_amount=3,
            coordinate=[728, 409],
            text="ctrl",
        )
        await run.win.wait_count("ButtonRelease", 3)
        got = presses(run.win)
        assert [(b, x, y) for b, x, y, _ in got] == [(button, 960, 540)] * 3, direction
        assert all(s & CONTROL for *_, s in got)


async def s_key(run: Runner) -> None:
    await run("key", text="Return")
    await run.win.wait_count("KeyRelease", 1)
    assert key_syms(run.win) == ["Return"]
    run.win.clear()
    await run("key", text="ctrl+a")
    await run.win.wait_count("KeyRelease", 2)
    assert key_syms(run.win) == ["Control_L", "a"]
    a_press = next(e for e in run.win.of("KeyPress") if e["keysym"] == "a")
    assert a_press["state"] & CONTROL
    if run.toolset:
        run.win.clear()
        await run("key", text="Down", repeat=4)
        await run.win.wait_count("KeyRelease", 4)
        assert key_syms(run.win) == ["Down"] * 4


async def s_type(run: Runner) -> None:
    await run("type", text="Hi é\n")
    await run.win.wait_count("KeyRelease", 5)
    syms = [s for s in key_syms(run.win) if not s.startswith("Shift")]
    assert syms == ["H", "i", "space", "eacute", "Return"], syms


async def s_hold_key(run: Runner) -> None:
    await run("hold_key", text="shift", duration=0.4)
    await run.win.wait_count("KeyRelease", 1)
    (press,), (release,) = run.win.of("KeyPress"), run.win.of("KeyRelease")
    assert press["keysym"] == release["keysym"] == "Shift_L"
    assert release["time"] - press["time"] >= 380  # X server ms: held for the duration


async def s_wait(run: Runner) -> None:
    t0 = time.monotonic()
    r = await run("wait", duration=0.3)
    assert time.monotonic() - t0 >= 0.3
    assert decode(r).size == MODEL


async def s_zoom(run: Runner) -> None:
    # Stripes of 2 native px: the downscaled screenshot blurs them, a native crop does not.
    stripes = [
        EventWindow(
            run.desktop.display,
            480 + 2 * i,
            300,
            2,
            80,
            0xFFFFFF if i % 2 else 0,
            run.desktop.xauthority,
        )
        for i in range(8)
    ]
    await asyncio.gather(*(win.start() for win in stripes))
    try:
        await run.desktop.wait_settled(timeout_s=1.0)
        region = [360, 220, 380, 240]  # model space; native about [474, 290, 501, 317]
        r = await run("zoom", region=region)
        assert "still refer to the full 1456x819 screenshot" in r.text
        zoomed = decode(r)
        box = run.tool.scaler.region_to_native(tuple(region))
        native = (await run.desktop.screenshot()).convert("RGB").crop(box)
        assert zoomed.size[0] == 1456 or zoomed.size[1] == 819
        expected = native.resize(zoomed.size, PILImage.Resampling.LANCZOS)
        diff = ImageStat.Stat(ImageChops.difference(zoomed, expected)).mean
        assert max(diff) < 4, diff  # it IS the native crop, enlarged
        shot = decode(await run("screenshot"))
        from_shot = shot.crop(tuple(region)).resize(zoomed.size, PILImage.Resampling.LANCZOS)
        blur = ImageStat.Stat(ImageChops.difference(zoomed, from_shot)).mean
        assert max(blur) > max(diff) + 5, (blur, diff)  # and not the downscaled screenshot
    finally:
        for win in stripes:
            await win.close()


SCENARIOS: dict[str, Callable[[Runner], Awaitable[None]]] = {
    name[2:]: fn for name, fn in globals().items() if name.startswith("s_")
}


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_action_has_its_effect_on_the_real_desktop(desk1080, screen_window, version):
    tool = ComputerTool(desk1080, version, image_tier="legacy")
    assert tool.model_size == MODEL
    run = Runner(tool, screen_window, desk1080)
    assert set(tool.actions) <= set(SCENARIOS)
    for action in tool.actions:
        screen_window.clear()
        await screen_window.focus()
        screen_window.clear()
        await SCENARIOS[action](run)


async def test_bad_key_or_modifier_presses_nothing(desk1080, screen_window):
    tool = ComputerTool(desk1080, "computer_20250124", image_tier="legacy")
    for call in (
        {"action": "key", "text": "ctrl+a Return; touch /tmp/x"},
        {"action": "left_click", "coordinate": [5, 5], "text": "ctrl+nosuchkey"},
        {"action": "hold_key", "text": "shift+bogus", "duration": 0.1},
    ):
        r = await tool.execute(ToolCall("t", "computer", call))
        assert r.is_error, call
    evs = await screen_window.quiet(0.2)
    assert [e for e in evs if e["type"] in ("KeyPress", "ButtonPress")] == []


async def test_out_of_model_bounds_clicks_nothing(desk1080, screen_window):
    tool = ComputerTool(desk1080, "computer_20250124", image_tier="legacy")
    r = await tool.execute(
        ToolCall("t", "computer", {"action": "left_click", "coordinate": [1800, 100]})
    )
    assert r.is_error and "x must be 0-1455 and y must be 0-818" in r.text
    evs = await screen_window.quiet(0.2)
    assert [e for e in evs if e["type"] == "ButtonPress"] == []


async def test_toolset_batch_on_the_real_desktop(desk1080, screen_window):
    tool = ComputerTool(desk1080, "computer_toolset_20260801", image_tier="legacy")
    calls = [
        ToolCall("a", "left_click", {"coordinate": [728, 409]}, toolset_name="computer"),
        ToolCall("b", "key", {"text": "nosuchkey"}, toolset_name="computer"),
        ToolCall("c", "left_click", {"coordinate": [0, 0]}, toolset_name="computer"),
    ]
    results = await tool.execute_batch(calls)
    assert [r.is_error for r in results] == [False, True, True]
    assert results[2].text == "Not executed: an earlier computer action in this turn failed."
    assert len(results[0].images) == 1
    await screen_window.wait_count("ButtonRelease", 1)
    await asyncio.sleep(0.1)
    assert [(b, x, y) for b, x, y, _ in presses(screen_window)] == [(1, 960, 540)]


async def test_dead_x_server_is_an_is_error_result(desk1080):
    import os
    import signal

    tool = ComputerTool(desk1080, "computer_20251124", image_tier="legacy")
    os.kill(desk1080.pids[0], signal.SIGKILL)  # Xvfb
    for args in ({"action": "screenshot"}, {"action": "left_click", "coordinate": [5, 5]}):
        r = await tool.execute(ToolCall("t", "computer", args))
        assert r.is_error and "no longer running" in r.text


async def test_typed_unicode_text_is_read_back_from_a_real_app(desk1080, tmp_path):
    import sys

    out = tmp_path / "typed.txt"
    script = "import sys; open(sys.argv[1], 'w', encoding='utf-8').write(sys.stdin.readline())"
    await desk1080.launch("xterm", "-e", sys.executable, "-c", script, str(out))
    tool = ComputerTool(desk1080, "computer_20251124", image_tier="legacy")
    text = "Héllo wörld — ✓ 日本 ñ ß €; echo $HOME \"q\" 'a'\n"
    r = await tool.execute(ToolCall("t", "computer", {"action": "type", "text": text}))
    assert not r.is_error and r.text == f"Typed {len(text)} characters."
    for _ in range(100):
        if out.exists() and out.read_text(encoding="utf-8"):
            break
        await asyncio.sleep(0.05)
    assert out.read_text(encoding="utf-8") == text


async def test_bash_tool_with_the_desktop_env_reaches_the_display(desk1080):
    from deskpilot import BashTool

    async with BashTool(env=desk1080.env) as bash:
        r = await bash.execute(ToolCall("b", "bash", {"command": "xdpyinfo | grep dimensions"}))
        assert "1920x1080 pixels" in r.text, r.text
