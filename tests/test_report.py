"""The HTML report and the animation, from hand-made run directories (docs/trajectory-format.md)."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from deskpilot.agent.report import (
    Mark,
    action_marks,
    write_animation,
    write_checks,
    write_report,
)
from deskpilot.agent.trajectory import read_run
from deskpilot.errors import ConfigError

W, H = 640, 400
CLICK = [412, 300]
DRAG_FROM, DRAG_TO = [100, 120], [500, 200]


def _shot(path: Path, colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> None:
    img = Image.new("RGB", (W, H), colour)
    img.paste((250, 250, 250), box)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _usage(i: int, o: int) -> dict:
    return {"input_tokens": i, "output_tokens": o, "cache_read_tokens": 0, "cache_write_tokens": 0}


def make_run(root: Path, *, with_end: bool = True, truncated_tail: bool = False) -> Path:
    """Two steps (a click, then a drag plus a bash call), screenshots, optional run_end."""
    run = root / "20261122T192000Z-demo"
    _shot(run / "screenshots/0000-initial.png", (30, 60, 90), (10, 10, 100, 60))
    _shot(run / "screenshots/0001-0.png", (40, 80, 40), (300, 250, 500, 350))
    _shot(run / "screenshots/0002-0.png", (90, 40, 40), (100, 120, 500, 200))
    lines = [
        {
            "type": "run_start",
            "t": 0.0,
            "task": "Click the button, then drag the slider <fast> & check",
            "model": "claude-sonnet-4-5",
            "model_id": "claude-sonnet-4-5-20250929",
            "provider": "anthropic",
            "native_size": [1280, 800],
            "model_size": [W, H],
            "tool_versions": {
                "computer": "computer_20250124",
                "editor": "text_editor_20250728",
                "bash": "bash_20250124",
            },
            "system_prompt": "You drive a Linux desktop.",
            "max_turns": 10,
            "started_at": "2026-11-22T19:20:00Z",
            "deskpilot_version": "0.1.0",
        },
        {
            "type": "step",
            "t": 1.5,
            "index": 1,
            "response": {
                "content": [
                    {"type": "text", "text": "I will click the button."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "computer",
                        "input": {"action": "left_click", "coordinate": CLICK},
                    },
                ],
                "stop_reason": "tool_use",
                "usage": _usage(1500, 40),
                "cost": 0.0051,
                "request_id": "req_1",
                "latency_s": 1.1,
                "attempts": 1,
                "images_in_request": 1,
                "is_error": False,
                "error_message": None,
            },
            "actions": [
                {
                    "tool_use_id": "toolu_01",
                    "name": "computer",
                    "toolset_name": None,
                    "input": {"action": "left_click", "coordinate": CLICK},
                    "approved": True,
                    "is_error": False,
                    "text": "",
                    "screenshot": "screenshots/0001-0.png",
                    "timings": {
                        "action_s": 0.002,
                        "settle_s": 0.21,
                        "screenshot_s": 0.015,
                        "total_s": 0.23,
                    },
                }
            ],
            "timings": {"model_s": 1.1, "actions_s": 0.23, "overhead_s": 0.004, "step_s": 1.334},
            "cumulative": {"usage": _usage(1500, 40), "cost": 0.0051},
        },
        {
            "type": "step",
            "t": 3.0,
            "index": 2,
            "response": {
                "content": [
                    {"type": "text", "text": "Now the drag, then a check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_02",
                        "name": "computer",
                        "input": {
                            "action": "left_click_drag",
                            "start_coordinate": DRAG_FROM,
                            "coordinate": DRAG_TO,
                        },
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_03",
                        "name": "bash",
                        "input": {"command": "cat /nonexistent"},
                    },
                ],
                "stop_reason": "tool_use",
                "usage": _usage(3100, 60),
                "cost": 0.0102,
                "request_id": "req_2",
                "latency_s": 1.2,
                "attempts": 1,
                "images_in_request": 2,
                "is_error": False,
                "error_message": None,
            },
            "actions": [
                {
                    "tool_use_id": "toolu_02",
                    "name": "computer",
                    "toolset_name": None,
                    "input": {
                        "action": "left_click_drag",
                        "start_coordinate": DRAG_FROM,
                        "coordinate": DRAG_TO,
                    },
                    "approved": True,
                    "is_error": False,
                    "text": "",
                    "screenshot": "screenshots/0002-0.png",
                    "timings": {
                        "action_s": 0.05,
                        "settle_s": 0.2,
                        "screenshot_s": 0.014,
                        "total_s": 0.27,
                    },
                },
                {
                    "tool_use_id": "toolu_03",
                    "name": "bash",
                    "toolset_name": None,
                    "input": {"command": "cat /nonexistent"},
                    "approved": True,
                    "is_error": True,
                    "text": "cat: /nonexistent: No such file or directory\n[exit code: 1]",
                    "screenshot": None,
                    "timings": {"action_s": 0.01, "total_s": 0.01},
                },
            ],
            "timings": {"model_s": 1.2, "actions_s": 0.28, "overhead_s": 0.003, "step_s": 1.483},
            "cumulative": {"usage": _usage(4600, 100), "cost": 0.0153},
        },
    ]
    if with_end:
        lines.append(
            {
                "type": "run_end",
                "t": 4.2,
                "stop_reason": "end_turn",
                "final_text": "Done: the slider moved.",
                "steps": 2,
                "usage": _usage(4600, 130),
                "cost": 0.0158,
                "ended_at": "2026-11-22T19:20:04Z",
                "error": None,
            }
        )
    text = "".join(json.dumps(line) + "\n" for line in lines)
    if truncated_tail:
        text += '{"type": "step", "t": 5.0, "index": 3, "respo'
    (run / "trajectory.jsonl").write_text(text, encoding="utf-8")
    return run


def _data_uris(page: str) -> list[bytes]:
    """The embedded screenshot previews (WebP) of a page."""
    return [base64.b64decode(m) for m in re.findall(r'href="data:image/webp;base64,([^"]+)"', page)]


def _previews(page: str) -> dict[str, Image.Image]:
    """Embedded previews by the screenshot path they show (``data-src``), decoded."""
    found = re.findall(
        r'<image id="shot\d+"[^>]*href="data:image/webp;base64,([^"]+)" data-src="([^"]+)"', page
    )
    out = {}
    for b64, rel in found:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            out[rel] = im.convert("RGB")
    return out


def _close(a: Image.Image, b: Image.Image) -> bool:
    """Same size and nearly the same pixels (a lossy re-encoding)."""
    from PIL import ImageChops, ImageStat

    if a.size != b.size:
        return False
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean) < 4


def test_report_has_every_step_inline_images_and_marks(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    path = write_report(run)
    assert path == run / "report.html"
    page = path.read_text(encoding="utf-8")
    assert 'id="step-1"' in page and 'id="step-2"' in page
    assert "Click the button, then drag the slider &lt;fast&gt; &amp; check" in page
    assert "I will click the button." in page and "Done: the slider moved." in page
    # every screenshot embedded exactly once, as a preview showing the file's pixels, and
    # linked to the full-size PNG beside the page
    previews = _previews(page)
    files = sorted((run / "screenshots").glob("*.png"))
    assert len(_data_uris(page)) == len(files)
    assert sorted(previews) == [f"screenshots/{f.name}" for f in files]
    for f in files:
        with Image.open(f) as im:
            assert _close(previews[f"screenshots/{f.name}"], im.convert("RGB")), f
        assert f'<a class="full" href="screenshots/{f.name}"' in page
    # a Content-Security-Policy that allows no script and no fetch
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp is not None
    policy = html.unescape(csp.group(1))
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "img-src data:;" in policy and "'unsafe-inline'" not in policy
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page
    # the click drawn at the model-space coordinate, on the screen BEFORE the click
    assert f'data-x="{CLICK[0]}" data-y="{CLICK[1]}"' in page
    assert f'<circle cx="{CLICK[0]}" cy="{CLICK[1]}"' in page
    # the drag from start to end
    assert (
        f'data-x1="{DRAG_FROM[0]}" data-y1="{DRAG_FROM[1]}" '
        f'data-x2="{DRAG_TO[0]}" data-y2="{DRAG_TO[1]}"' in page
    )
    # the viewBox of overlays is the screenshot size, so coordinates need no conversion
    assert f'viewBox="0 0 {W} {H}"' in page
    # the failed bash call is highlighted with its output; totals are shown
    assert 'class="action error"' in page
    assert "No such file or directory" in page
    assert "$0.0158" in page and "end_turn" in page
    assert "no run_end record" not in page


def test_click_mark_uses_the_screen_before_the_action(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    page = write_report(run).read_text(encoding="utf-8")
    ids = dict(re.findall(r'<image id="(shot\d+)"[^>]*data-src="([^"]+)"', page))
    by_src = {v: k for k, v in ids.items()}
    # the svg that carries the click mark shows the initial screenshot
    svg = re.search(r'<svg[^>]*><use href="#(shot\d+)"/><g class="mark mark-point"', page)
    assert svg is not None
    assert svg.group(1) == by_src["screenshots/0000-initial.png"]
    drag = re.search(r'<svg[^>]*><use href="#(shot\d+)"/><g class="mark mark-drag"', page)
    assert drag is not None
    assert drag.group(1) == by_src["screenshots/0001-0.png"]


def test_report_of_a_run_that_died(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_end=False, truncated_tail=True)
    record = read_run(run)
    assert record.end is None and len(record.readable_steps) == 2 and record.truncated
    assert record.problems and "line 4" in record.problems[0].lower()
    page = write_report(run).read_text(encoding="utf-8")
    assert "no run_end record" in page
    assert 'id="step-2"' in page and 'id="step-3"' not in page
    assert "not valid JSON" in page
    # the cut-short step is shown where it was, as unreadable
    assert '<section class="step unreadable" id="line-4">' in page
    # totals fall back to the last step's cumulative usage and cost
    assert "$0.0153" in page


def test_gif_has_one_frame_per_scene_with_marks_drawn(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    paths = write_animation(run, mp4=False)
    assert paths == [run / "run.gif"]
    with Image.open(run / "run.gif") as gif:
        # initial, click (before + after), drag (before + after), bash (caption on last
        # screen), final
        assert gif.n_frames == 7
        assert gif.info.get("loop") == 0
        gif.seek(1)  # the click frame: the initial screen with the mark
        frame = gif.convert("RGB")
        assert frame.width == W and frame.height > H  # caption bar below the screenshot
        r, g, b = frame.getpixel((CLICK[0], CLICK[1]))
        assert r > 200 and g < 100 and b < 130, (r, g, b)  # the mark's centre dot
        gif.seek(0)
        r, g, b = gif.convert("RGB").getpixel((CLICK[0], CLICK[1]))
        assert (r, g, b) != frame.getpixel((CLICK[0], CLICK[1]))


def test_gif_scales_down_to_max_width(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_end=False)
    write_animation(run, max_width=320, mp4=False)
    with Image.open(run / "run.gif") as gif:
        assert gif.width == 320
        assert gif.n_frames == 7  # the last frame says the run ended without run_end


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_mp4_written_with_ffmpeg(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    paths = write_animation(run, max_width=320)
    assert run / "run.mp4" in paths
    head = (run / "run.mp4").read_bytes()[:12]
    assert head[4:8] == b"ftyp"
    # the report links the animation files that exist
    page = write_report(run).read_text(encoding="utf-8")
    assert 'href="run.gif"' in page and 'href="run.mp4"' in page


def test_bad_directories_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        write_report(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"no trajectory\.jsonl"):
        write_report(tmp_path)


def test_marks_for_each_kind_of_action() -> None:
    click = {"name": "computer", "input": {"action": "double_click", "coordinate": [5, 6]}}
    assert action_marks(click) == [Mark("point", ((5.0, 6.0),), "double_click")]
    # toolset member: the tool name is the action
    member = {"name": "right_click", "toolset_name": "computer", "input": {"coordinate": [7, 8]}}
    assert action_marks(member)[0].points == ((7.0, 8.0),)
    # computer_20241022 clicks where the cursor is
    bare = {"name": "computer", "input": {"action": "left_click"}}
    assert action_marks(bare) == []
    inferred = action_marks(bare, cursor=(40.0, 50.0))
    assert inferred[0].inferred and inferred[0].points == ((40.0, 50.0),)
    # 20241022 drag starts at the cursor
    drag = {"name": "computer", "input": {"action": "left_click_drag", "coordinate": [90, 10]}}
    assert action_marks(drag, cursor=(1.0, 2.0))[0].points == ((1.0, 2.0), (90.0, 10.0))
    scroll = {
        "name": "computer",
        "input": {
            "action": "scroll",
            "coordinate": [100, 100],
            "scroll_direction": "up",
            "scroll_amount": 2,
        },
    }
    (mark,) = action_marks(scroll)
    (x0, y0), (x1, y1) = mark.points
    assert (x0, y0) == (100, 100) and x1 == 100 and y1 < 100 and "×2" in mark.label
    zoom = {"name": "computer", "input": {"action": "zoom", "region": [10, 20, 110, 80]}}
    assert action_marks(zoom)[0].points == ((10.0, 20.0), (110.0, 80.0))
    for no_pos in (
        {"name": "computer", "input": {"action": "type", "text": "hi"}},
        {"name": "bash", "input": {"command": "ls"}},
        {"name": "computer", "input": {"action": "left_click", "coordinate": ["a", 1]}},
    ):
        assert action_marks(no_pos) == []


def test_report_png_is_decodable_from_the_page(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    page = write_report(run).read_text(encoding="utf-8")
    for blob in _data_uris(page):
        with Image.open(io.BytesIO(blob)) as im:
            assert im.size == (W, H)


def test_unchanged_screen_and_magnifier(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    # step 1's screenshot is byte-identical to the initial one: "did not change"
    shutil.copy(run / "screenshots/0000-initial.png", run / "screenshots/0001-0.png")
    lines = (run / "trajectory.jsonl").read_text().splitlines()
    step1 = json.loads(lines[1])
    step1["actions"][0]["input"]["coordinate"] = [100, 40]  # on the edge of the white box
    step1["response"]["content"][1]["input"]["coordinate"] = [100, 40]
    lines[1] = json.dumps(step1)
    (run / "trajectory.jsonl").write_text("\n".join(lines) + "\n")
    page = write_report(run).read_text(encoding="utf-8")
    assert "After: no visible change" in page
    # a magnified crop around the click (same embedded image, another viewBox)
    inset = re.search(
        r'<svg class="inset inset-(\w\w)" viewBox="([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)"', page
    )
    assert inset is not None
    x0, y0, zw, zh = (float(v) for v in inset.groups()[1:])
    assert x0 <= 100 <= x0 + zw and y0 <= 40 <= y0 + zh and zw < W / 2
    assert inset.group(1) == "br"  # away from the top-left click
    # the drag's span is too wide to magnify; the flat-coloured click area gets no inset
    assert page.count('class="inset ') == 1


def test_api_error_step_is_highlighted(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_end=False)
    error_step = {
        "type": "step",
        "t": 5.0,
        "index": 3,
        "response": {
            "content": [],
            "stop_reason": None,
            "usage": _usage(0, 0),
            "cost": 0.0,
            "request_id": None,
            "latency_s": 30.0,
            "attempts": 5,
            "images_in_request": 3,
            "is_error": True,
            "error_message": "529 overloaded_error: Overloaded (after 5 attempts).",
        },
        "actions": [],
        "timings": {"model_s": 30.0, "actions_s": 0.0, "overhead_s": 0.001, "step_s": 30.0},
        "cumulative": {"usage": _usage(4600, 100), "cost": 0.0153},
    }
    end = {
        "type": "run_end",
        "t": 35.0,
        "stop_reason": "api_error",
        "final_text": None,
        "steps": 3,
        "usage": _usage(4600, 100),
        "cost": 0.0153,
        "ended_at": "2026-11-22T19:20:35Z",
        "error": "529 overloaded_error: Overloaded (after 5 attempts).",
    }
    with (run / "trajectory.jsonl").open("a") as fh:
        fh.write(json.dumps(error_step) + "\n" + json.dumps(end) + "\n")
    page = write_report(run).read_text(encoding="utf-8")
    assert '<section class="step error" id="step-3">' in page
    assert "API error:</b> 529 overloaded_error" in page
    assert "The run stopped with an error (api_error)" in page
    assert "5 attempts" in page


def test_screenshot_paths_cannot_leave_the_run_directory(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    outside = tmp_path / "outside.png"
    _shot(outside, (1, 2, 3), (0, 0, 1, 1))
    text = (
        (run / "trajectory.jsonl")
        .read_text()
        .replace("screenshots/0002-0.png", "../../outside.png")
    )
    (run / "trajectory.jsonl").write_text(text)
    page = write_report(run).read_text(encoding="utf-8")
    assert "outside.png" not in "".join(_previews(page))
    assert len(_data_uris(page)) == 2  # initial + step 1
    # the step that names the path is shown as unreadable, with the reason
    assert "Unreadable step 2 (line 3 of trajectory.jsonl)" in page
    assert "the path &#39;../../outside.png&#39; is refused" in page
    # a symlink leading out of the run directory is refused as well
    (run / "screenshots/0001-0.png").unlink()
    (run / "screenshots/0001-0.png").symlink_to(outside)
    page = write_report(run).read_text(encoding="utf-8")
    assert list(_previews(page)) == ["screenshots/0000-initial.png"]


def test_outcome_checks_are_shown(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    write_checks(
        run,
        [
            {"name": "slider at 50%", "ok": True, "detail": "read back <50>"},
            {"name": "file saved", "ok": False, "detail": "no such file"},
        ],
    )
    assert read_run(run).checks[1].ok is False
    page = write_report(run).read_text(encoding="utf-8")
    assert '<div class="banner ok check"><b>✓ slider at 50%</b> — read back &lt;50&gt;' in page
    assert '<div class="banner err check"><b>✗ file saved</b> — no such file' in page
    (run / "checks.json").write_text("{not json")
    page = write_report(run).read_text(encoding="utf-8")
    assert "checks.json could not be read" in page


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The page as a browser draws it: the screenshots (shown through SVG <use>) and the
    click mark are really painted."""
    import subprocess

    run = make_run(tmp_path / "runs")
    page = write_report(run)
    shot = tmp_path / "page.png"
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1280,3000",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file(), proc.stderr.decode(errors="replace")[-500:]
    with Image.open(shot) as im:
        colours = {c for _, c in im.convert("RGB").getcolors(1 << 20) or []}
    # the stylesheet passed the page's Content-Security-Policy: the page background is painted
    assert (245, 245, 247) in colours
    # the fixture's screenshot backgrounds (initial, after click, after drag) are painted
    for bg in ((30, 60, 90), (40, 80, 40), (90, 40, 40)):
        assert bg in colours, bg
    # and the overlay: the click mark's colour (#ff2d55) appears
    assert any(abs(r - 255) < 8 and abs(g - 45) < 20 and abs(b - 85) < 20 for r, g, b in colours)


def _busy_run(root: Path, steps: int) -> Path:
    """A run of ``steps`` clicks whose screenshots are text-heavy 1280x800 screens (like a
    terminal full of output), each different: what makes real reports large."""
    from PIL import ImageDraw, ImageFont

    run = root / "busy"
    (run / "screenshots").mkdir(parents=True)
    font = ImageFont.truetype("DejaVuSansMono.ttf", 13)
    page = Image.new("RGB", (1180, 800 + 15 * steps), "white")
    draw = ImageDraw.Draw(page)
    for row in range(page.height // 15):
        words = " ".join(f"{row * k:x}" for k in range(1, 4 + (row * 7) % 11))
        draw.text((4, row * 15), f"{row:5d}  {words}", "black", font)
    lines = [
        {"type": "run_start", "task": "busy", "native_size": [1280, 800], "model_size": [1280, 800]}
    ]
    for i in range(1, steps + 1):
        shot = Image.new("RGB", (1280, 800), (40, 90, 160))
        shot.paste(page.crop((0, 15 * i, 1180, 15 * i + 700)), (50, 50))
        shot.save(run / f"screenshots/{i:04d}-0.png")
        action = {"action": "left_click", "coordinate": [100 + i, 200]}
        lines.append(
            {
                "type": "step",
                "index": i,
                "response": {
                    "content": [
                        {"type": "tool_use", "id": f"t{i}", "name": "computer", "input": action}
                    ]
                },
                "actions": [
                    {
                        "tool_use_id": f"t{i}",
                        "name": "computer",
                        "input": action,
                        "screenshot": f"screenshots/{i:04d}-0.png",
                    }
                ],
            }
        )
    (run / "trajectory.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run


@pytest.mark.slow
def test_a_50_step_report_stays_under_2_mb(tmp_path: Path) -> None:
    """Regression: the page inlined every PNG (a 50-step run of busy screens: over 2 MB);
    the previews share a budget and link to the PNG files."""
    run = _busy_run(tmp_path, 50)
    pngs = sum(p.stat().st_size for p in (run / "screenshots").iterdir())
    assert pngs * 4 / 3 > 2_000_000  # inlined as base64, these screenshots alone exceed 2 MB
    page = write_report(run)
    size = page.stat().st_size
    assert size < 2_000_000, size
    text = page.read_text(encoding="utf-8")
    # 49 befores (step 1 has no earlier screen), 50 afters, the last screen
    assert len(_data_uris(text)) == 50 and text.count('<a class="full" href="screenshots/') == 100
