"""The page of ``deskpilot ui`` in a real browser (Debian's chromium driven by Playwright
through ``executable_path``; nothing downloaded), end to end against the app, the fake model
server and a real desktop with a real x11vnc.

One run with approvals on: the page loads with the token; a task starts from the task box;
step events appear; the live view's canvas shows the desktop and changes when the agent
types; one action is approved and one declined (its reason reaches the model); the page is
reloaded mid-run and resumes; the user takes over, types into the xterm through the VNC view
(the command runs on the desktop) and hands back with a message; the conversation sent to
the model then answers every tool_use and carries the takeover turn. Model text and tool
inputs holding ``<script>`` are shown as text. Set ``DESKPILOT_UPDATE_DOCS=1`` to write the
mid-run screenshot to ``docs/ui.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import psutil
import pytest

from deskpilot.testing import RecordedRequest, message_response, tool_use_block
from ui_helpers import answered_everything, served

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_SHOT = Path(__file__).resolve().parents[1] / "docs" / "ui.png"
SCRIPT = "<script>window.__pwned = 1</script>"

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (
            Path(CHROMIUM).exists() and shutil.which("x11vnc") and Path("/usr/share/novnc").is_dir()
        ),
        reason="needs chromium, x11vnc and novnc (deskpilot doctor --install)",
    ),
]

CANVAS_SUM = """() => {
  const c = document.querySelector('#screen canvas');
  if (!c || !c.width) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let lit = 0, sum = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i] | d[i + 1] | d[i + 2]) lit++;
    sum = (Math.imul(sum, 31) + d[i] + 3 * d[i + 1] + 7 * d[i + 2]) | 0;
  }
  return { lit, sum, total: d.length / 4, width: c.width, height: c.height };
}"""


class Script:
    """The fake model: turn k of the conversation gets reply k; turn 2 waits for ``gate``."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def __call__(self, request: RecordedRequest) -> dict[str, Any]:
        step = sum(1 for m in request.messages if m.get("role") == "assistant")
        computer = next(t for t in request.tools if str(t.get("type", "")).startswith("computer"))
        name = str(computer["name"])
        w, h = int(computer["display_width_px"]), int(computer["display_height_px"])
        if step == 0:
            return message_response(
                [
                    {"type": "text", "text": f"{SCRIPT} I will type into the terminal."},
                    tool_use_block(name, {"action": "left_click", "coordinate": [w // 2, h // 2]}),
                    tool_use_block(
                        name, {"action": "type", "text": "echo 'agent <b>was</b> here'\n"}
                    ),
                ]
            )
        if step == 1:
            return message_response(
                [
                    {"type": "text", "text": "Now the corner."},
                    tool_use_block(name, {"action": "left_click", "coordinate": [w - 40, 30]}),
                ]
            )
        if step == 2:
            await self.gate.wait()  # the test takes over while this model call is in flight
            return message_response(
                [
                    {"type": "text", "text": "One more click."},
                    tool_use_block(name, {"action": "left_click", "coordinate": [10, 10]}),
                ]
            )
        return message_response([{"type": "text", "text": "Done."}])


async def canvas(page: Any) -> dict[str, int] | None:
    result: dict[str, int] | None = await page.evaluate(CANVAS_SUM)
    return result


async def until(probe: Any, timeout_s: float = 20.0, what: str = "") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or probe}")
        await asyncio.sleep(0.1)


async def test_the_page_end_to_end(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    script = Script()
    async with (
        served(tmp_path, handler=script, apps=("terminal",), approve=False) as ui,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1500, "height": 900})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{ui.base}/?token={ui.token}")
            assert "token=" not in page.url  # the token went into a cookie

            # Start a task from the task box, approvals on.
            await page.fill("#task", f"Type in the terminal {SCRIPT}")
            await page.check("#approve")
            await page.click("#run-button")
            run_id = (await until(lambda: ui.get("/api/runs"), what="a run"))[1]["runs"][0]["id"]
            approval = page.locator("#approval")

            # The live view shows the desktop.
            first = await until(lambda: canvas(page), what="the live view's canvas")
            shown = await until(
                lambda: _lit(page, first["total"] // 4), what="the desktop in the canvas"
            )

            # Step 1: approve the click (its mark is drawn on the current screen) and the typing.
            await expect(approval).to_be_visible(timeout=20000)
            await expect(page.locator("#approval-shot .mark")).to_have_count(1)
            await page.click("#approve-button")
            await expect(page.locator("#approval-action")).to_contain_text("type", timeout=20000)
            await expect(approval).to_be_visible()
            await page.click("#approve-button")
            await expect(page.locator("li.ev-step")).to_have_count(1, timeout=20000)
            await expect(page.locator("li.ev-step .shot .mark")).to_have_count(1)  # the click
            await expect(page.locator("#run-steps")).to_have_text("1")
            assert int(await page.locator("#run-tokens").text_content() or "0") > 0
            # The agent's typing changed the pixels of the live view.
            await until(
                lambda: _changed(page, shown["sum"]), what="the canvas to change after typing"
            )

            # Model text and tool inputs with markup are text, never HTML.
            text = page.locator("li.ev-step .model-text").first
            await expect(text).to_have_text(f"{SCRIPT} I will type into the terminal.")
            await expect(page.locator("li.ev-step pre.input").nth(1)).to_contain_text("<b>was</b>")
            assert await page.locator("#events script, #events b").count() == 0
            assert await page.evaluate("window.__pwned") is None

            # Step 2: decline, with a reason.
            await expect(page.locator("#approval-action")).to_contain_text(
                "left_click", timeout=20000
            )
            await page.fill("#decline-reason", "not that corner")
            await page.click("#decline-button")
            await expect(page.locator("li.ev-step")).to_have_count(2, timeout=20000)
            await expect(page.locator("li.ev-step .action.declined")).to_have_count(1)

            # Reload mid-run (the model call of step 3 is in flight): the page resumes.
            await page.reload()
            await expect(page.locator("li.ev-step")).to_have_count(2, timeout=20000)
            await expect(page.locator("#run-status")).to_have_text("running")
            await until(lambda: _lit(page, first["total"] // 4), what="the live view after reload")
            # x11vnc dies: it is started again and the view reconnects; the run goes on.
            [x11vnc] = _x11vnc_processes()
            x11vnc.kill()
            await until(
                lambda: _replaced(x11vnc.pid), what="x11vnc to be started again", timeout_s=20
            )
            await expect(page.locator("#live-status")).to_have_text(
                "Live (view only)", timeout=20000
            )
            await until(lambda: _lit(page, first["total"] // 4), what="the view after the restart")
            await page.screenshot(path=str(tmp_path / "ui.png"))
            if os.environ.get("DESKPILOT_UPDATE_DOCS") == "1":
                shutil.copyfile(tmp_path / "ui.png", DOCS_SHOT)

            # Take over; type into the xterm through the VNC view; hand back with a message.
            await page.click("#takeover")
            await expect(page.locator("#handback")).to_be_enabled(timeout=5000)
            summary = (await ui.get(f"/api/runs/{run_id}"))[1]
            assert summary["takeover"]["state"] == "held"
            box = await page.locator("#screen canvas").bounding_box()
            size = await canvas(page)
            assert box is not None and size is not None
            await page.mouse.click(
                box["x"] + box["width"] * 300 / size["width"],
                box["y"] + box["height"] * 300 / size["height"],
            )
            await page.keyboard.type("touch humanfile\n", delay=20)
            home = ui.manager.get(run_id).desktop.home
            await until(
                lambda: _exists(home / "humanfile"),
                what="the human's command to run on the desktop",
            )
            script.gate.set()
            await page.fill("#handback-message", "I made a file")
            await page.click("#handback")
            await expect(page.locator("li.ev-end")).to_have_count(1, timeout=30000)
            await expect(page.locator("li.ev-takeover").last).to_contain_text("I made a file")
            await expect(page.locator("#run-report")).to_be_visible()  # the report's link
            await expect(page.locator("#run-list a")).to_have_count(1)
            assert errors == []
        finally:
            await browser.close()
        await until(_no_x11vnc, what="the run's x11vnc to stop with the run")

    requests = ui.fake.requests
    declined = requests[2].messages[-1]["content"]
    assert any("not that corner" in str(b.get("content")) for b in declined)
    last = requests[-1].messages
    assert answered_everything(last)
    flat = str(last)
    assert "Not executed: the user took over." in flat
    assert "took control" in flat and "I made a file" in flat


async def _lit(page: Any, at_least: int) -> dict[str, int] | None:
    got = await canvas(page)
    return got if got is not None and got["lit"] >= at_least else None


async def _changed(page: Any, before: int) -> bool:
    got = await canvas(page)
    return got is not None and got["sum"] != before


def _x11vnc_processes() -> list[psutil.Process]:
    """The live x11vnc processes under this one (a child that exits while it is listed,
    such as the killed x11vnc, is left out rather than raising NoSuchProcess)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.name() == "x11vnc" and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
    return found


async def _no_x11vnc() -> bool:
    return not _x11vnc_processes()


async def _replaced(pid: int) -> bool:
    return any(p.pid != pid for p in _x11vnc_processes())


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)
