"""Screen-settle detector: logic on scripted frames with a fake clock, then on real Xvfb."""

from __future__ import annotations

import asyncio
import time

import pytest

from deskpilot.desktop.settle import SettleConfig, Settler, changed_pixels
from deskpilot.errors import ConfigError

PIXELS = 4000
STEP = 0.01  # fake seconds per grab


class Scene:
    """Frames as a function of fake time; every grab advances the clock by STEP."""

    def __init__(self, events: list[tuple[float, int, int]]) -> None:
        # (at, n_pixels, value): from time `at`, the first n pixels have `value`
        self.events = events
        self.t = 0.0

    def clock(self) -> float:
        return self.t

    def grab(self) -> bytes:
        self.t = round(self.t + STEP, 6)
        frame = bytearray(PIXELS * 4)
        for at, n, value in self.events:
            if self.t >= at:
                frame[: n * 4] = bytes([value]) * (n * 4)
        return bytes(frame)


CFG = SettleConfig(poll_s=0, first_change_s=0.25, quiet_s=0.15, cap_s=2.0, min_changed_px=50)


def settler(scene: Scene) -> Settler:
    return Settler(scene.grab, CFG, clock=scene.clock)


def test_changed_pixels():
    a = bytes(400)
    b = bytearray(a)
    b[0] = 1  # pixel 0
    b[9] = 1  # pixel 2
    assert changed_pixels(a, a) == 0
    assert changed_pixels(a, bytes(b)) == 2


async def test_static_screen_returns_after_the_first_change_timeout():
    scene = Scene([])
    s = settler(scene)
    s.mark()
    waited = await s.wait()
    assert 0.2 <= waited <= 0.27
    assert not s.pending


async def test_after_a_change_waits_for_the_quiet_window():
    # a change at 0.05, more changes until 0.40, then nothing
    events = [(0.05 + 0.05 * i, 100 + 10 * i, 1 + i) for i in range(8)]
    scene = Scene(events)
    s = settler(scene)
    s.mark()
    waited = await s.wait()
    last_change = events[-1][0]
    assert last_change + 0.15 - STEP <= waited <= last_change + 0.15 + 3 * STEP


async def test_small_changes_like_caret_blinks_are_ignored():
    blinks = [(0.1 * i, 20, i % 2) for i in range(1, 30)]
    scene = Scene([(0.05, 500, 9), *blinks])
    s = settler(scene)
    s.mark()
    waited = await s.wait()
    assert 0.05 + 0.15 - STEP <= waited <= 0.05 + 0.15 + 3 * STEP


async def test_never_longer_than_the_cap_or_timeout():
    scene = Scene([(0.02 * i, 200, i % 250) for i in range(1, 400)])
    s = settler(scene)
    s.mark()
    assert await s.wait() == pytest.approx(2.0, abs=3 * STEP)
    s.mark()
    assert await s.wait(timeout_s=0.5) == pytest.approx(0.5, abs=3 * STEP)


async def test_without_a_pending_action_only_the_quiet_window_is_waited():
    scene = Scene([])
    s = settler(scene)
    assert not s.pending
    assert await s.wait() == pytest.approx(0.15, abs=2 * STEP)


async def test_change_before_wait_is_seen_through_the_baseline():
    # the action's change happened before wait() started: still detected (no timeout wait)
    scene = Scene([(0.02, 500, 3)])
    s = settler(scene)
    s.mark()
    scene.t = 0.1  # time passes before wait is called
    waited = await s.wait()
    assert waited == pytest.approx(0.15, abs=2 * STEP)


def test_config_validation():
    with pytest.raises(ConfigError):
        SettleConfig(quiet_s=-1)
    with pytest.raises(ConfigError):
        SettleConfig(min_changed_px=-5)


# ---------------------------------------------------------------- real Xvfb
@pytest.mark.desktop
async def test_real_static_screen_settles_quickly(desktop):
    await desktop.move(5, 5)
    waited = await desktop.wait_settled(timeout_s=3.0)
    assert waited < 1.5  # first-change timeout (0.1 s for moves) + polling; cap is 3 s


@pytest.mark.desktop
async def test_real_screen_change_is_waited_out(desktop):
    from Xlib import X, display

    from deskpilot.desktop.xauth import authority

    with authority(desktop.xauthority):
        d = display.Display(desktop.display)
    screen = d.screen()
    win = screen.root.create_window(
        50,
        50,
        300,
        300,
        0,
        screen.root_depth,
        X.InputOutput,
        X.CopyFromParent,
        background_pixel=0x000000,
        override_redirect=True,
    )
    win.map()
    d.sync()
    await desktop.wait_settled(timeout_s=1.0)
    last_change = 0.0

    async def animate() -> None:
        nonlocal last_change
        for i in range(6):
            await asyncio.sleep(0.06)
            win.change_attributes(background_pixel=0x202020 * (i + 1))
            win.clear_area(0, 0, 0, 0)
            d.sync()
            last_change = time.monotonic()

    await desktop.move(600, 600)  # an action: the settler takes its baseline
    task = asyncio.create_task(animate())
    await desktop.wait_settled(timeout_s=3.0)
    returned = time.monotonic()
    await task
    assert returned >= last_change  # it waited until the animation was over
    img = await desktop.screenshot()
    assert img.getpixel((100, 100)) == (0xC0, 0xC0, 0xC0)
    d.close()
