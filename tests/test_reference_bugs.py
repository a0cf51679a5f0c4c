"""One regression test per bug of Anthropic's reference (shared/reference/anthropic_reference.md §3.8).

Each test reproduces the reference's failing input and checks that deskpilot does the right
thing instead. Item 9 (image pruning disabled on the first-party API) belongs to the agent
loop and is tested there.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

from deskpilot import BashTool, ComputerTool, EditorTool, ToolCall
from deskpilot.desktop.fake import FakeComputer


def computer_call(**args) -> ToolCall:
    return ToolCall("tu", "computer", args)


# 1. Shell injection via `key` (and click/scroll modifiers, editor directory paths) ----------


@pytest.mark.desktop
async def test_1_no_shell_injection_through_key_or_modifiers(desktop, tmp_path):
    tool = ComputerTool(desktop, "computer_20250124")
    marker = tmp_path / "pwned"
    for args in (
        {"action": "key", "text": f"Return; touch {marker}"},
        {"action": "key", "text": f"$(touch {marker})"},
        {"action": "left_click", "coordinate": [5, 5], "text": f"ctrl; touch {marker}"},
        {
            "action": "scroll",
            "scroll_direction": "down",
            "scroll_amount": 1,
            "text": f"shift`touch {marker}`",
        },
    ):
        r = await tool.execute(computer_call(**args))
        assert r.is_error, args
        assert "key" in r.text.lower()
    await asyncio.sleep(0.1)
    assert not marker.exists()


async def test_1_no_shell_injection_through_editor_directory_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the reference's `find {path}` would touch ./pwned here
    marker = tmp_path / "pwned"
    evil = tmp_path / "x; touch pwned"
    evil.mkdir()
    r = await EditorTool().execute(
        ToolCall("e", "str_replace_based_edit_tool", {"command": "view", "path": str(evil)})
    )
    assert not r.is_error and str(evil) in r.text
    assert not marker.exists()


# 2. zoom cropped in the wrong coordinate space -----------------------------------------------


async def test_2_zoom_crops_model_space_region_from_the_native_capture():
    fake = FakeComputer(1920, 1080)  # pixel (x, y) has colour (x % 256, y % 256, ...)
    tool = ComputerTool(fake, "computer_20251124", image_tier="legacy")
    mw, mh = tool.model_size  # 1456x819
    r = await tool.execute(computer_call(action="zoom", region=[0, 0, 400, 300]))
    img = PILImage.open(io.BytesIO(r.images[0].data)).convert("RGB")
    # the reference returned a 562x422 crop of the downscaled screenshot; here: the region
    # [0,0,400,300] of the model screenshot = native [0,0,528,396], enlarged to fit 1456x819
    x1, y1 = tool.scaler.region_to_native((0, 0, 400, 300))[2:]
    assert (x1, y1) == (528, 396)
    assert img.size[1] == mh and abs(img.size[0] / img.size[1] - x1 / y1) < 0.01
    r_, g_, _ = img.getpixel((img.size[0] - 1, img.size[1] - 1))
    assert abs(r_ - (x1 - 1) % 256) <= 3 and abs(g_ - (y1 - 1) % 256) <= 3
    # the region the reference turned into a 1x1 image
    r = await tool.execute(computer_call(action="zoom", region=[1000, 500, 1366, 768]))
    img = PILImage.open(io.BytesIO(r.images[0].data))
    assert not r.is_error and (img.size[0] == mw or img.size[1] == mh)


# 3. bounds checked against the native size -------------------------------------------------


async def test_3_bounds_are_checked_in_model_space():
    fake = FakeComputer(1920, 1080)
    tool = ComputerTool(fake, "computer_20250124", image_tier="legacy")
    r = await tool.execute(computer_call(action="left_click", coordinate=[1800, 100]))
    assert r.is_error and "x must be 0-1455 and y must be 0-818" in r.text
    assert fake.actions() == []  # the reference clicked at native (2530, 141)


# 4. TypeError on non-string text; exceptions that escaped the tool ------------------------------


async def test_4_non_string_text_and_foreign_exceptions_become_is_error():
    fake = FakeComputer(1280, 800)
    tool = ComputerTool(fake, "computer_20250124")
    r = await tool.execute(computer_call(action="type", text=123))
    assert r.is_error and "text must be a string" in r.text
    fake.fail["key"] = TimeoutError("xdotool took too long")
    r = await tool.execute(computer_call(action="key", text="a"))
    assert r.is_error and "TimeoutError" in r.text
    assert fake.typed == []


# 5. click/scroll/drag modifiers in `text` were refused (issue #263) ----------------------------


async def test_5_modifiers_in_text_are_honoured():
    fake = FakeComputer(1280, 800)
    tool = ComputerTool(fake, "computer_20250124")
    for args in (
        {"action": "left_click", "coordinate": [10, 10], "text": "ctrl"},
        {"action": "scroll", "scroll_direction": "up", "scroll_amount": 1, "text": "shift+alt"},
        {
            "action": "left_click_drag",
            "start_coordinate": [0, 0],
            "coordinate": [100, 100],
            "text": "ctrl",
        },
    ):
        r = await tool.execute(computer_call(**args))
        assert not r.is_error, r.text
    mods = [kw["modifiers"] for _, kw in fake.actions()]
    assert mods == [("ctrl",), ("shift", "alt"), ("ctrl",)]
    assert fake.actions()[2][1]["start"] == (0, 0)  # start_coordinate honoured too


# 6. bash hangs: >128 KiB output, `read`, `exit` --------------------------------------------------


async def test_6_bash_large_output_read_and_exit_return_promptly():
    async with BashTool(timeout=10) as bash:
        t0 = time.monotonic()
        r = await bash.execute(ToolCall("b", "bash", {"command": "printf 'x%.0s' $(seq 300000)"}))
        assert time.monotonic() - t0 < 5 and not r.is_error
        assert len(r.text) < 31_000 and "characters truncated" in r.text
        r = await asyncio.wait_for(bash.execute(ToolCall("b", "bash", {"command": "read x"})), 4)
        assert r.text == "[exit code: 1]"
        r = await asyncio.wait_for(bash.execute(ToolCall("b", "bash", {"command": "exit 3"})), 4)
        assert "exited with code 3" in r.text
        r = await bash.execute(ToolCall("b", "bash", {"command": "echo alive"}))
        assert r.text == "alive"


# 7. str_replace / insert rewrote every tab as spaces ----------------------------------------------


@pytest.mark.parametrize("version", ["text_editor_20250124", "text_editor_20250728"])
async def test_7_tabs_are_preserved_by_str_replace_and_insert(tmp_path, version):
    p = tmp_path / "Makefile"
    p.write_text("all:\n\techo one\n\techo two\n")
    editor = EditorTool(version)
    r = await editor.execute(
        ToolCall(
            "e",
            editor.name,
            {"command": "str_replace", "path": str(p), "old_str": "one", "new_str": "1"},
        )
    )
    assert not r.is_error
    key = "insert_text" if version == "text_editor_20250728" else "new_str"
    r = await editor.execute(
        ToolCall(
            "e",
            editor.name,
            {"command": "insert", "path": str(p), "insert_line": 3, key: "\techo three"},
        )
    )
    assert not r.is_error
    assert p.read_text() == "all:\n\techo 1\n\techo two\n\techo three\n"


# 8. screenshots written to /tmp/outputs forever, PNG only --------------------------------------


async def test_8_screenshots_stay_in_memory_and_other_formats_work():
    outputs = Path("/tmp/outputs")
    before = set(outputs.glob("screenshot_*")) if outputs.exists() else set()
    fake = FakeComputer(1024, 768)
    for fmt, magic in (("png", b"\x89PNG"), ("jpeg", b"\xff\xd8\xff"), ("webp", b"RIFF")):
        tool = ComputerTool(fake, screenshot_format=fmt)
        r = await tool.execute(computer_call(action="screenshot"))
        assert r.images[0].data.startswith(magic)
    after = set(outputs.glob("screenshot_*")) if outputs.exists() else set()
    assert after == before
