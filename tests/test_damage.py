"""Settling from X DAMAGE notifications: the detector's logic on injected boxes, then on Xvfb
(nothing is grabbed while the screen does not change; changes are waited out)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from deskpilot.desktop.damage import DamageWatch, union
from deskpilot.desktop.settle import DamageSettler, SettleConfig

CFG = SettleConfig(poll_s=0.005, first_change_s=0.2, quiet_s=0.1, cap_s=1.0, min_changed_px=50)


class Screen:
    """A fake screen: ``pixels`` is what the X server shows, ``frame`` the settler's copy;
    ``draw`` changes pixels and reports their box like the DAMAGE hub does."""

    def __init__(self) -> None:
        self.pixels = np.zeros((100, 200), dtype=np.uint32)
        self.frame = self.pixels.copy()
        self.watch = DamageWatch(":99")
        self.watch.alive = True
        self.syncs = 0

    def sync_region(self, box: tuple[int, int, int, int], threshold: int) -> int:
        self.syncs += 1
        x0, y0, x1, y1 = box
        new, old = self.pixels[y0:y1, x0:x1], self.frame[y0:y1, x0:x1]
        changed = int(np.count_nonzero(new != old))
        if changed > threshold:
            old[...] = new
        return changed

    def draw(self, n_pixels: int, value: int, row: int = 0) -> None:
        self.pixels[row, :n_pixels] = value
        self.watch.add((0, row, max(1, n_pixels), row + 1))

    async def animate_until(self, stop: asyncio.Event) -> None:
        """Change 100 pixels every 10 ms until ``stop`` is set."""
        i = 0
        while not stop.is_set():
            i += 1
            self.draw(100, i)
            await asyncio.sleep(0.01)

    def settler(self) -> DamageSettler:
        self.jobs = 0

        async def run_blocking(fn, cap_s: float) -> float:  # the X thread's role
            self.jobs += 1
            return await asyncio.to_thread(fn)

        return DamageSettler(self.watch, self.sync_region, CFG, run_blocking=run_blocking)


def test_union_of_boxes():
    assert union(None, (1, 2, 3, 4)) == (1, 2, 3, 4)
    assert union((0, 5, 10, 6), (3, 1, 4, 20)) == (0, 1, 10, 20)


async def test_static_screen_returns_after_the_first_change_timeout_without_grabbing():
    screen = Screen()
    s = screen.settler()
    s.mark()
    t0 = time.monotonic()
    await s.wait()
    assert 0.18 <= time.monotonic() - t0 <= 0.5
    assert screen.syncs == 0  # nothing drawn: nothing grabbed
    assert not s.pending


async def test_a_change_is_waited_out_until_quiet():
    screen = Screen()
    s = screen.settler()
    s.mark()
    last = 0.0

    async def animate() -> None:
        nonlocal last
        for i in range(5):
            await asyncio.sleep(0.04)
            screen.draw(150, i + 1)
            last = time.monotonic()

    task = asyncio.create_task(animate())
    await s.wait()
    returned = time.monotonic()
    await task
    assert returned - last >= CFG.quiet_s * 0.9  # quiet after the last change
    assert (screen.frame == screen.pixels).all()  # the frame followed the screen
    assert screen.jobs == 1  # one job in the X thread: the loop is woken once


async def test_a_cancelled_wait_ends_its_job_in_the_thread_at_once():
    screen = Screen()
    s = screen.settler()
    s.mark()
    ended: list[float] = []
    real = s.wait_blocking

    def timed(cap_s, cancel=None):
        try:
            return real(cap_s, cancel)
        finally:
            ended.append(time.monotonic())

    s.wait_blocking = timed  # type: ignore[method-assign]
    stop = asyncio.Event()

    # the screen keeps changing: the wait would last cap_s
    animating = asyncio.create_task(screen.animate_until(stop))
    waiting = asyncio.create_task(s.wait())
    await asyncio.sleep(0.3)
    waiting.cancel()
    cancelled_at = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for _ in range(100):
        if ended:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await animating
    assert ended and ended[0] - cancelled_at < 0.1  # not the 1 s cap


async def test_a_wait_without_an_action_returns_after_quiet():
    screen = Screen()
    s = screen.settler()
    t0 = time.monotonic()
    await s.wait()
    assert CFG.quiet_s * 0.9 <= time.monotonic() - t0 < 0.5


async def test_small_changes_like_caret_blinks_are_ignored():
    screen = Screen()
    s = screen.settler()
    s.mark()

    async def blink() -> None:
        for i in range(20):
            await asyncio.sleep(0.02)
            screen.draw(20, i % 2 + 1, row=5)

    task = asyncio.create_task(blink())
    t0 = time.monotonic()
    await s.wait()
    waited = time.monotonic() - t0
    task.cancel()
    assert waited < 0.35  # the first-change timeout, not the cap: 20 px never count
    s.mark()  # the next action brings the frame up to date with the blinks
    assert (screen.frame[5] == screen.pixels[5]).all()


async def test_small_changes_add_up_since_the_action():
    screen = Screen()
    s = screen.settler()
    s.mark()

    async def grow() -> None:
        for n in (30, 40, 60, 80):  # each step alone is small; together 80 px changed
            await asyncio.sleep(0.02)
            screen.draw(n, 7)

    task = asyncio.create_task(grow())
    t0 = time.monotonic()
    await s.wait()
    await task
    assert time.monotonic() - t0 >= 0.1  # it saw a change and waited for quiet


async def test_never_longer_than_the_timeout():
    screen = Screen()
    s = screen.settler()
    s.mark()
    stop = asyncio.Event()

    task = asyncio.create_task(screen.animate_until(stop))
    t0 = time.monotonic()
    await s.wait(timeout_s=0.3)
    stop.set()
    await task
    assert 0.28 <= time.monotonic() - t0 <= 0.6


# ---------------------------------------------------------------- real Xvfb
@pytest.mark.desktop
async def test_real_desktop_settles_from_damage_and_grabs_nothing_when_static(desktop):
    from Xlib import X, display

    from deskpilot.desktop.xauth import authority

    backend = desktop._b()
    settler = backend._settler
    assert isinstance(settler, DamageSettler)
    capture = backend._capture
    grabs = 0
    real_region = capture.region

    def counting_region(box):
        nonlocal grabs
        grabs += 1
        return real_region(box)

    capture.region = counting_region
    await desktop.move(4, 4)  # the action brings the frame up to date with the start
    await desktop.wait_settled(timeout_s=3.0)
    grabs = 0
    await desktop.move(5, 5)
    waited = await desktop.wait_settled(timeout_s=3.0)
    assert waited < 0.5
    assert grabs == 0  # a static screen is never grabbed while settling

    with authority(desktop.xauthority):
        d = display.Display(desktop.display)
    screen = d.screen()
    win = screen.root.create_window(
        50, 50, 300, 300, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
        background_pixel=0x000000, override_redirect=True,
    )  # fmt: skip
    last_change = 0.0

    async def animate() -> None:
        nonlocal last_change
        await asyncio.sleep(0.05)
        win.map()
        d.sync()
        for i in range(6):
            await asyncio.sleep(0.06)
            win.change_attributes(background_pixel=0x202020 * (i + 1))
            win.clear_area(0, 0, 0, 0)
            d.sync()
            last_change = time.monotonic()

    await desktop.move(600, 600)
    task = asyncio.create_task(animate())
    await desktop.wait_settled(timeout_s=3.0)
    returned = time.monotonic()
    await task
    assert returned >= last_change  # waited until the animation was over
    assert 0 < grabs < 40  # only while the screen changed, at most every poll_s
    img = await desktop.screenshot()
    assert img.getpixel((100, 100)) == (0xC0, 0xC0, 0xC0)
    d.close()


@pytest.mark.desktop
async def test_an_action_settles_and_captures_in_one_job_of_the_x_thread(desktop):
    """ComputerTool on a native-size PNG display: after the input, one X-thread job waits for
    the screen to settle and captures it, so the event loop is woken once for both."""
    import io

    from PIL import Image

    from deskpilot import ComputerTool, ToolCall

    tool = ComputerTool(desktop, version="computer_20250124")
    assert tool.model_size == (1280, 800)
    thread = desktop._b()._thread
    jobs: list[str] = []
    real_submit = thread.submit

    def counting_submit(fn, *args):
        jobs.append(args[0] if args and isinstance(args[0], str) else getattr(fn, "__name__", "?"))
        return real_submit(fn, *args)

    thread.submit = counting_submit
    try:
        result = await tool.execute(
            ToolCall("t1", "computer", {"action": "left_click", "coordinate": [640, 400]})
        )
    finally:
        thread.submit = real_submit
    assert not result.is_error
    assert jobs == ["click", "capture the screen"]  # the input, then settle + capture
    timings = tool.last_timings
    assert 0.15 <= timings["settle_s"] <= 1.0  # the 0.2 s first-change window, at least
    assert 0 < timings["screenshot_s"] < 0.5
    shot = Image.open(io.BytesIO(result.images[0].data))
    assert shot.size == (1280, 800)
    assert shot.convert("RGB").tobytes() == (await desktop.screenshot()).tobytes()


@pytest.mark.desktop
async def test_prefetched_capture_falls_back_when_the_input_needs_a_remap_first(desktop):
    """A key that must be mapped to a spare keycode first takes two input jobs: the capture
    queued behind the first does nothing, and the screenshot is taken after the key."""
    import io

    from PIL import Image

    from deskpilot import ComputerTool, ToolCall

    tool = ComputerTool(desktop, version="computer_20250124")
    backend = desktop._b()
    jobs: list[str] = []
    real_submit = backend._thread.submit

    def counting_submit(fn, *args):
        jobs.append(args[0] if args and isinstance(args[0], str) else "?")
        return real_submit(fn, *args)

    backend._thread.submit = counting_submit
    try:
        result = await tool.execute(ToolCall("t1", "computer", {"action": "key", "text": "F33"}))
    finally:
        backend._thread.submit = real_submit
    assert not result.is_error, result.text
    assert jobs[0] == "press keys" and jobs[-1] == "capture the screen"
    assert jobs.count("capture the screen") == 2  # the queued one skipped, then its own
    assert backend._prefetch is None
    shot = Image.open(io.BytesIO(result.images[0].data)).convert("RGB")
    assert shot.tobytes() == (await desktop.screenshot()).tobytes()


@pytest.mark.desktop
async def test_a_failed_or_cancelled_action_leaves_no_capture_behind(desktop):
    from deskpilot import ComputerTool, ToolCall

    tool = ComputerTool(desktop, version="computer_20250124")
    backend = desktop._b()
    bad = await tool.execute(
        ToolCall("t1", "computer", {"action": "left_click", "coordinate": [5000, 10]})
    )
    assert bad.is_error and backend._prefetch is None  # refused before any X request

    # cancelled while the queued job waits for the screen to settle (a static screen: 0.2 s)
    task = asyncio.create_task(
        tool.execute(ToolCall("t2", "computer", {"action": "left_click", "coordinate": [9, 9]}))
    )
    await asyncio.sleep(0.08)
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    probe = await desktop._b()._call("probe", lambda: time.monotonic())
    assert probe - t0 < 0.1  # the X thread was free at once, not after the settle window
    assert backend._prefetch is None
    ok = await tool.execute(ToolCall("t3", "computer", {"action": "screenshot"}))
    assert not ok.is_error and ok.images
