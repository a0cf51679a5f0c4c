"""The event loop stays responsive whatever the desktop does (issue 7, defects 7 and 8).

A ticker task measures the loop's lag (how late a 10 ms sleep wakes up) while the desktop
types 100,000 characters, while its X server is SIGSTOPped, and while an X error is
translated. Real Xvfb, real xterm.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import pytest

from deskpilot.desktop.local import LocalDesktop
from deskpilot.desktop.text_input import MAX_TYPE_CHARS
from deskpilot.errors import DesktopError, DisplayDiedError, ToolInputError

# serial: the loop-lag bounds and xterm draining 100,000 keystrokes in time hold on a machine
# not also running another test file (make test-parallel runs these after the parallel part).
pytestmark = [pytest.mark.desktop, pytest.mark.serial]

MAX_LAG_S = 0.05


class Ticker:
    """Sleeps 10 ms in a loop and records how late each wake-up is."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            self.lags.append(now - last - 0.01)
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        n = len(self.lags)
        while len(self.lags) < n + 2:  # a stall just before exit is recorded too
            await asyncio.sleep(0.005)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def max_lag_s(self) -> float:
        return max(self.lags)


def lines(n: int) -> str:
    line = "the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXY\n"
    return (line * (n // len(line) + 1))[:n]


@pytest.fixture
async def terminal():
    async with LocalDesktop(800, 600, apps=("terminal",)) as d:
        # The keystrokes reach xterm and its pty; no echo and no line editing, so what is timed
        # is the typing itself, not xterm drawing 100,000 glyphs through the same X server.
        await d.type_text("stty -echo; cat > /dev/null\n")
        yield d


async def timed_type(desktop: LocalDesktop, n: int) -> tuple[float, float, float]:
    """(wall seconds, this process's CPU seconds, the loop's largest lag) of typing n chars."""
    async with Ticker() as ticker:
        t0, c0 = time.perf_counter(), time.process_time()
        await desktop.type_text(lines(n))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return elapsed, cpu, ticker.max_lag_s


@pytest.mark.slow
async def test_typing_100k_characters_is_linear_and_never_blocks_the_loop(terminal):
    small = [await timed_type(terminal, 10_000) for _ in range(2)]
    big = await timed_type(terminal, 100_000)
    small_s = sum(s[0] for s in small) / 2
    small_cpu = sum(s[1] for s in small) / 2
    print(
        f"type 10,000: {small_s:.2f} s ({small_cpu:.2f} s CPU); 100,000: {big[0]:.2f} s "
        f"({big[1]:.2f} s CPU): {big[0] / small_s:.1f}x wall, {big[1] / small_cpu:.1f}x CPU; "
        f"loop lag at most {max(big[2], *(s[2] for s in small)) * 1000:.1f} ms"
    )
    # Linear: 10x the work for 10x the text, and the per-character cost here is constant
    # (chunks of 256 keystrokes, one round trip each). On this shared 2-core machine both
    # ratios scatter around 10x (8-14x wall, 7.5-13.1x CPU over repeated runs, the last in a
    # full-suite run) with the load of the other processes. The old, quadratic code
    # (python-xlib's send buffer) took 128x the time for 6x the text (10k 0.5 s, 60k 64 s),
    # with the loop blocked throughout: 10x the text would be about 100x, so a 20x bound
    # still catches it five times over without failing on noise.
    assert big[1] <= 20 * small_cpu
    assert big[0] <= 20 * small_s
    assert max(big[2], *(s[2] for s in small)) <= MAX_LAG_S


async def test_typing_more_than_the_cap_is_refused_before_anything_is_typed(terminal):
    with pytest.raises(ToolInputError, match=f"at most {MAX_TYPE_CHARS:,}"):
        await terminal.type_text("x" * (MAX_TYPE_CHARS + 1))


async def test_typing_is_cancellable_and_leaves_no_key_pressed(terminal):
    task = asyncio.create_task(terminal.type_text(lines(MAX_TYPE_CHARS)))
    await asyncio.sleep(0.3)
    t0 = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - t0 < 0.5  # stops between two chunks
    out = terminal.home / "after-cancel.txt"
    await terminal.key("ctrl+c")
    await terminal.type_text(f"echo 'lower UPPER' > {out}\n")
    # xterm and bash first work through what was typed before the cancel; on a loaded
    # machine the file was missing after 6 s in about 1 run of 18 (cause not confirmed), so
    # wait up to 20 s: a key left held still fails the check below, however long it waits
    for _ in range(1000):
        if out.exists() and out.read_text().endswith("\n"):
            break
        await asyncio.sleep(0.02)
    assert out.read_text() == "lower UPPER\n"  # no Shift (or any key) left held


async def test_a_stopped_x_server_is_not_responding_and_the_loop_keeps_running():
    async with LocalDesktop(640, 480, response_timeout_s=1.0) as desktop:
        xvfb = desktop.pids[0]
        os.kill(xvfb, signal.SIGSTOP)
        try:
            async with Ticker() as ticker:
                t0 = time.perf_counter()
                with pytest.raises(DisplayDiedError, match="not responding"):
                    await desktop.screenshot()
                elapsed = time.perf_counter() - t0
                assert desktop.dead
                t1 = time.perf_counter()
                with pytest.raises(DisplayDiedError, match="not responding"):
                    await desktop.click(10, 10)
                assert time.perf_counter() - t1 < 0.1  # known dead: fails at once
            print(
                f"not responding after {elapsed:.2f} s; loop lag {ticker.max_lag_s * 1000:.1f} ms"
            )
            assert 1.0 <= elapsed < 2.0
            assert ticker.max_lag_s <= MAX_LAG_S
            t2 = time.perf_counter()
            await desktop.restart()  # kills the stopped server, starts a new one
            assert time.perf_counter() - t2 < 5.0
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(xvfb, signal.SIGCONT)
        assert not desktop.dead and desktop.pids[0] != xvfb
        assert (await desktop.screenshot()).size == (640, 480)


async def test_closing_a_desktop_whose_server_is_stopped_does_not_hang():
    desktop = LocalDesktop(640, 480, response_timeout_s=1.0)
    await desktop.start()
    xvfb = desktop.pids[0]
    os.kill(xvfb, signal.SIGSTOP)
    try:
        with pytest.raises(DisplayDiedError):
            await desktop.cursor_position()
        await asyncio.wait_for(desktop.close(), 6.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(xvfb, signal.SIGCONT)


async def test_an_x_error_is_translated_off_the_event_loop(desktop):
    """The liveness re-check after an X error (polls up to 0.3 s) runs in the X thread."""

    def bad_request(d):
        return d.create_resource_object("window", 0x3FFFFFF).get_geometry()

    async with Ticker() as ticker:
        for _ in range(3):
            with pytest.raises(DesktopError, match="refused to read a window"):
                await desktop.backend.run_x("read a window", bad_request)
    assert ticker.max_lag_s <= MAX_LAG_S
    assert not desktop.dead
    assert (await desktop.cursor_position()) is not None


async def test_a_cancel_that_meets_a_finished_x_call_is_not_lost(terminal):
    """Full-suite flake of test_typing_is_cancellable...: in Python 3.11 ``asyncio.wait_for``
    returns the result instead of raising when the cancellation arrives in the same loop
    pass as the inner future's result (the result wins, the cancel is lost), so a cancelled
    ``type`` went on typing. Reproduced deterministically: the X call finishes, then the
    task is cancelled before it runs again."""
    import threading

    backend = terminal.backend
    release = threading.Event()
    task = asyncio.create_task(backend._call("test", release.wait, 5.0))
    await asyncio.sleep(0.05)  # the call waits in the X thread
    release.set()
    time.sleep(0.1)  # the X thread posts the result to the loop (queued before the cancel)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_capture_on_a_server_that_just_died_reports_display_died():
    """Full-suite flake: mss's XCB backend checks its reply with ``assert``, so a screenshot
    (or the settle detector's baseline grab of a click) racing the X server's death raised a
    bare AssertionError, which the computer tool reported as an unexpected failure instead of
    a dead desktop (a LocalDesktop then confirms the death: DisplayDiedError)."""
    from deskpilot.desktop.display import X11Display

    async with LocalDesktop(320, 240, window_manager=None) as desktop:
        # an X11Display watches no process: the capture itself meets the dead server
        async with X11Display(
            desktop.display, settle=False, xauthority=desktop.xauthority
        ) as other:
            await other.screenshot()
            os.kill(desktop.pids[0], signal.SIGKILL)
            await asyncio.sleep(0.3)
            with pytest.raises(DesktopError, match="connection lost"):
                await other.screenshot()
