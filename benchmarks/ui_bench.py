"""UI benchmark: the live view's latency beside the stock noVNC chain, the step-event latency
and the takeover latency of ``deskpilot ui``, in one run.

1. **Live view**: a keystroke into an xterm on a real Xvfb desktop (XTEST, deskpilot's own X
   connection) -> the changed pixels visible in the browser's canvas, read back from the
   canvas in the page (Debian chromium, headless, via Playwright). The page checks the
   xterm's prompt line of the canvas after every WebSocket message and every animation frame;
   the time is the page's clock minus the time just before the key was sent (the two clocks
   are the same wall clock, offset measured). Both chains watch the same desktop, one at a
   time, in alternating blocks:

   * deskpilot: x11vnc started by :class:`deskpilot.ui.vnc.VncServer` -> the app's in-process
     ``/websockify`` bridge -> ``/vnc`` (noVNC 1.3 from Debian's novnc);
   * stock: ``x11vnc -localhost -rfbport N -passwd ... -forever -shared`` (its defaults) ->
     the ``websockify`` command (``--web /usr/share/novnc``) -> ``vnc_lite.html``.

2. **Step events**: ``deskpilot ui --fake``'s app (:func:`deskpilot.ui.app.create_app` with
   the fake model): time from a ``step`` line's write in ``trajectory.jsonl`` to its SSE event
   in the page (the record's own ``t`` against the page's clock).
3. **Takeover**: click "Take over" in the page while the agent runs -> the lease is held and
   the agent paused (the takeover POST answered and the page's state "held").

Usage::

    python benchmarks/ui_bench.py            # 40 keystrokes per chain
    python benchmarks/ui_bench.py --quick    # 12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aiohttp import web
from PIL import ImageChops

from deskpilot.agent.records import StepRecord
from deskpilot.agent.trajectory import TrajectoryWriter
from deskpilot.desktop.local import LocalDesktop, merged_env
from deskpilot.ui.app import create_app, start_site
from deskpilot.ui.auth import TOKEN_KEY
from deskpilot.ui.bridge import add_live_view
from deskpilot.ui.clients import fake_client_factory
from deskpilot.ui.runs import RunManager, UIConfig
from deskpilot.ui.vnc import VncServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NOVNC = Path("/usr/share/novnc")
STATIC = Path(__file__).resolve().parents[1] / "src" / "deskpilot" / "ui" / "static"

#: Injected in the main page: the arrival time of every step and takeover event.
EVENTS_JS = """
window.__ev = { step: {}, takeover: [], click: [] };
const __ES = window.EventSource;
window.EventSource = function (...args) {
  const es = new __ES(...args);
  const now = () => performance.timeOrigin + performance.now();
  es.addEventListener('step', (e) => { window.__ev.step[JSON.parse(e.data).record.index] = now(); });
  es.addEventListener('takeover', (e) => { window.__ev.takeover.push([JSON.parse(e.data).state, now()]); });
  return es;
};
window.EventSource.prototype = __ES.prototype;
document.addEventListener('click', (e) => {
  if (e.target && e.target.id === 'takeover') window.__ev.click.push(performance.timeOrigin + performance.now());
}, true);
"""

#: Injected in every page before its scripts: checks a region of the VNC canvas after every
#: WebSocket message (noVNC draws in its message handler, which runs first) and every frame.
WATCH_JS = """
window.__lv = { armed: false, sum: 0, t: 0, region: [0, 0, 1, 1] };
function __regionSum() {
  const c = document.querySelector('canvas');
  if (!c || !c.width) return null;
  const r = window.__lv.region;
  const d = c.getContext('2d').getImageData(r[0], r[1], r[2], r[3]).data;
  let s = 0;
  for (let i = 0; i < d.length; i += 4) s = (Math.imul(s, 31) + d[i] + d[i + 1] * 7 + d[i + 2] * 13) | 0;
  return s;
}
function __check() {
  const lv = window.__lv;
  if (!lv.armed) return;
  const s = __regionSum();
  if (s !== null && s !== lv.sum) { lv.armed = false; lv.t = performance.timeOrigin + performance.now(); }
}
const __WS = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new __WS(...args);
  ws.addEventListener('message', () => setTimeout(__check, 0));
  return ws;
};
window.WebSocket.prototype = __WS.prototype;
for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) window.WebSocket[k] = __WS[k];
(function loop() { __check(); requestAnimationFrame(loop); })();
window.__arm = (region) => { window.__lv.region = region; window.__lv.sum = __regionSum(); window.__lv.armed = true; };
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _View:
    def __init__(self, vnc: VncServer) -> None:
        self.vnc = vnc

    def input_allowed(self) -> bool:
        return False


@contextlib.asynccontextmanager
async def deskpilot_chain(desktop: LocalDesktop) -> AsyncIterator[str]:
    """deskpilot's live view on ``desktop``; yields the page URL."""
    async with VncServer(desktop) as vnc:
        app = web.Application()
        add_live_view(app, {"bench": _View(vnc)}.get)
        app.router.add_static("/static", STATIC)  # what the app serves at /static (no token here)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            yield f"http://127.0.0.1:{port}/vnc?run=bench"
        finally:
            await runner.cleanup()


async def _spawn(argv: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )


async def _end(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 3)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def _wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def stock_chain(desktop: LocalDesktop) -> AsyncIterator[str]:
    """x11vnc (defaults) + the websockify command + vnc_lite.html; yields the page URL."""
    websockify = shutil.which("websockify")
    if websockify is None:
        raise SystemExit("the stock chain needs the websockify command: apt-get install websockify")
    password = secrets.token_urlsafe(6)
    vnc_port, ws_port = free_port(), free_port()
    env = merged_env(desktop)
    x11vnc = await _spawn(
        [
            *("x11vnc", "-display", desktop.display, "-localhost", "-rfbport", str(vnc_port)),
            *("-passwd", password, "-forever", "-shared", "-quiet"),
        ],
        env,
    )
    try:
        await _wait_port(vnc_port)
        proxy = await _spawn(
            [websockify, "--web", str(NOVNC), str(ws_port), f"127.0.0.1:{vnc_port}"], env
        )
        try:
            await _wait_port(ws_port)
            yield (
                f"http://127.0.0.1:{ws_port}/vnc_lite.html?host=127.0.0.1&port={ws_port}"
                f"&password={password}"
            )
        finally:
            await _end(proxy)
    finally:
        await _end(x11vnc)


async def prompt_region(desktop: LocalDesktop) -> list[int]:
    """The canvas region ([x, y, w, h], native pixels) where typing into the xterm shows."""
    before = await desktop.screenshot()
    await desktop.key("x")
    await asyncio.sleep(0.3)
    after = await desktop.screenshot()
    await desktop.key("BackSpace")
    await asyncio.sleep(0.3)
    box = ImageChops.difference(before.convert("RGB"), after.convert("RGB")).getbbox()
    if box is None:
        raise SystemExit("typing into the xterm changed no pixels; is the terminal focused?")
    x0, y0, x1, y1 = box
    return [max(0, x0 - 20), max(0, y0 - 4), x1 - x0 + 200, y1 - y0 + 8]


async def clock_offset_ms(page: Any) -> float:
    """The page's clock minus Python's wall clock, in ms."""
    samples = []
    for _ in range(5):
        t0 = time.time() * 1000
        js = await page.evaluate("performance.timeOrigin + performance.now()")
        t1 = time.time() * 1000
        samples.append((t1 - t0, js - (t0 + t1) / 2))
    return min(samples)[1]


async def measure_keys(page: Any, desktop: LocalDesktop, region: list[int], n: int) -> list[float]:
    """n keystrokes (a letter, then BackSpace, ...); each one's latency in ms."""
    offset = await clock_offset_ms(page)
    out: list[float] = []
    for i in range(n):
        await page.evaluate("(r) => window.__arm(r)", region)
        key = "BackSpace" if i % 2 else "a"
        t0 = time.time() * 1000
        await desktop.key(key)
        await page.wait_for_function("!window.__lv.armed", timeout=5000, polling=20)
        t_page = await page.evaluate("window.__lv.t")
        out.append(t_page - offset - t0)
        await asyncio.sleep(0.15)  # let the screen and both ends go quiet
    return out


async def live_view(args: argparse.Namespace, browser: Any) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"deskpilot": [], "stock": []}
    async with LocalDesktop(1280, 800, apps=("terminal",)) as desktop:
        region = await prompt_region(desktop)
        chains = {"deskpilot": deskpilot_chain, "stock": stock_chain}
        for _round in range(args.rounds):
            for name, chain in chains.items():
                async with chain(desktop) as url:
                    context = await browser.new_context(
                        viewport={"width": 1400, "height": 900}, bypass_csp=True
                    )
                    await context.add_init_script(WATCH_JS)
                    page = await context.new_page()
                    page.on("pageerror", lambda e: print("page error:", e))
                    await page.goto(url)
                    await page.wait_for_function(
                        "(() => { const c = document.querySelector('canvas'); return c && c.width > 0; })()",
                        timeout=15000,
                    )
                    await asyncio.sleep(0.8)  # the first full update
                    results[name] += await measure_keys(
                        page, desktop, region, args.n // args.rounds
                    )
                    await context.close()
    return results


async def app_latencies(
    args: argparse.Namespace, browser: Any, out: Path
) -> dict[str, list[float]]:
    """Step-event and takeover latencies of ``deskpilot ui --fake``'s app, in the page."""
    written: dict[int, float] = {}  # step index -> wall clock ms (the current run)
    original = TrajectoryWriter.write_line

    async def timed(self: TrajectoryWriter, record: Any) -> None:
        await original(self, record)
        if isinstance(record, StepRecord):
            written[record.index] = time.time() * 1000

    TrajectoryWriter.write_line = timed
    config = UIConfig(model="claude-4-sonnet", out=out, apps=("terminal",), mode="fake")
    manager = RunManager(config, fake_client_factory())
    app = create_app(manager)
    runner, port = await start_site(app, "127.0.0.1", 0)
    results: dict[str, list[float]] = {"step": [], "held": [], "page_held": []}
    try:
        context = await browser.new_context(
            viewport={"width": 1500, "height": 900}, bypass_csp=True
        )
        await context.add_init_script(EVENTS_JS)
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/?token={app[TOKEN_KEY]}")
        for k in range(args.runs):
            await page.goto(f"http://127.0.0.1:{port}/")  # a fresh page per run
            offset = await clock_offset_ms(page)
            written.clear()
            await page.fill("#task", f"Benchmark run {k + 1}")
            await page.click("#run-button")
            await page.wait_for_selector("li.ev-step", timeout=30000)
            run = list(manager.runs.values())[-1]
            held: list[float] = []
            run.control.listeners.append(
                lambda state, held=held: (
                    held.append(time.time() * 1000) if state == "held" else None
                )
            )
            for _ in range(args.takeovers):
                # Right after a step event the agent is waiting for the model (0.8 s).
                steps = await page.locator("li.ev-step").count()
                await page.wait_for_function(
                    f"document.querySelectorAll('li.ev-step').length > {steps - 1}"
                )
                await page.click("#takeover")
                await page.wait_for_selector("#handback:not([disabled])", timeout=10000)
                clicks = await page.evaluate("window.__ev.click")
                events = await page.evaluate("window.__ev.takeover")
                page_held = [t for state, t in events if state == "held"][-1]
                results["held"].append(held[-1] - (clicks[-1] - offset))
                results["page_held"].append(page_held - clicks[-1])
                await page.click("#handback")
                await page.wait_for_selector("#takeover:not([disabled])", timeout=10000)
                await page.wait_for_function(
                    f"document.querySelectorAll('li.ev-step').length > {steps}", timeout=30000
                )
            await page.wait_for_selector("li.ev-end", timeout=60000)
            arrived = await page.evaluate("window.__ev.step")
            for index, t_page in arrived.items():
                t_written = written.get(int(index))
                if t_written is not None:
                    results["step"].append(t_page - offset - t_written)
        await context.close()
    finally:
        await runner.cleanup()
        TrajectoryWriter.write_line = original
    return results


def report_latencies(title: str, values: list[float]) -> str:
    return (
        f"{title:<34} median {statistics.median(values):6.1f} ms   p90 {pct(values, 0.9):6.1f} ms"
        f"   min {min(values):6.1f}   max {max(values):6.1f}   (n={len(values)})"
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=40, help="keystrokes per chain")
    ap.add_argument("--rounds", type=int, default=2, help="alternating blocks per chain")
    ap.add_argument("--runs", type=int, default=2, help="deskpilot ui --fake runs")
    ap.add_argument("--takeovers", type=int, default=2, help="takeovers per run")
    ap.add_argument("--quick", action="store_true", help="12 keystrokes per chain, one run")
    args = ap.parse_args()
    if args.quick:
        args.n, args.runs = 12, 1
    from playwright.async_api import async_playwright

    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            lv = await live_view(args, browser)
            with tempfile.TemporaryDirectory(prefix="ui-bench-") as out:
                app = await app_latencies(args, browser, Path(out))
        finally:
            await browser.close()
    print("Live view: keystroke into an xterm -> changed pixels in the browser's canvas")
    print(report_latencies("  deskpilot (bridge, /vnc)", lv["deskpilot"]))
    print(report_latencies("  stock (websockify, vnc_lite)", lv["stock"]))
    ratio = statistics.median(lv["deskpilot"]) / statistics.median(lv["stock"])
    print(f"  deskpilot / stock (median): {ratio:.2f}")
    print("Step events: step record written -> SSE event received in the page")
    print(report_latencies("  deskpilot ui --fake", app["step"]))
    print('Takeover: click "Take over" in the page (model call in flight) ->')
    print(report_latencies("  lease held, agent paused", app["held"]))
    print(report_latencies("  page shows it (SSE held)", app["page_held"]))


if __name__ == "__main__":
    asyncio.run(main())
