"""The bundled demo: its script is valid, and `deskpilot demo` really produces Hello, World!"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from deskpilot.agent.demo import DEMO_SCREEN, load_script
from deskpilot.computer_use.computer import ComputerTool
from deskpilot.desktop.apps import MENU_ENTRY_OFFSETS, MENU_SIZE
from deskpilot.desktop.fake import FakeComputer
from deskpilot.models import resolve_model
from deskpilot.prompt import ToolCall

MESSAGE_KEYS = {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"}


def test_script_is_in_the_messages_api_format(tmp_path: Path) -> None:
    raw = json.loads(
        (Path(__file__).parents[1] / "src/deskpilot/agent/demo/demo.json").read_text("utf-8")
    )
    ids = set()
    for i, resp in enumerate(raw["responses"], 1):
        assert set(resp) == MESSAGE_KEYS
        assert resp["type"] == "message" and resp["role"] == "assistant"
        assert resp["id"] == f"msg_demo_{i:02d}"
        assert set(resp["usage"]) >= {"input_tokens", "output_tokens"}
        uses = [b for b in resp["content"] if b["type"] == "tool_use"]
        assert resp["stop_reason"] == ("tool_use" if uses else "end_turn")
        for block in uses:
            assert block["id"].startswith("toolu_") and block["id"] not in ids
            ids.add(block["id"])
    assert raw["responses"][-1]["stop_reason"] == "end_turn"

    workdir = tmp_path / "run" / "workspace"
    script = load_script(workdir)
    text = json.dumps(script.responses) + script.task
    assert "{WORKDIR}" not in text and str(workdir.resolve()) in text
    assert all(r["usage"] == "auto" for r in script.responses)
    assert script.file == workdir.resolve() / "hello.py"
    assert script.screen == DEMO_SCREEN


def test_typed_script_is_a_python_hello_world(tmp_path: Path) -> None:
    script = load_script(tmp_path)
    typed = [
        b["input"]["text"]
        for r in script.responses
        for b in r["content"]
        if b["type"] == "tool_use" and b["input"].get("action") == "type"
    ]
    source = typed[0]
    path = tmp_path / "typed.py"
    path.write_text(source, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0 and out.stdout == "Hello, World!\n"
    assert "def main()" in source
    assert typed[1] == str(script.file)  # the path typed into the save dialog


async def test_every_computer_action_is_valid_for_the_demo_model(tmp_path: Path) -> None:
    script = load_script(tmp_path)
    version = resolve_model(script.model).tool_group("anthropic").computer
    fake = FakeComputer(*DEMO_SCREEN, image=Image.new("RGB", DEMO_SCREEN, (58, 110, 165)))
    tool = ComputerTool(fake, version=version, settle=False)
    assert tool.model_size == DEMO_SCREEN  # coordinates are native pixels too
    n = 0
    for resp in script.responses:
        for block in resp["content"]:
            if block["type"] == "tool_use" and block["name"] == "computer":
                if block["input"]["action"] == "wait":
                    continue  # a real 1 s sleep; its input is checked below
                result = await tool.execute(ToolCall(block["id"], "computer", block["input"]))
                assert not result.is_error, (block, result)
                n += 1
    assert n >= 6
    clicks = [c for c in fake.calls if c[0] == "click"]
    assert clicks, fake.calls
    # the second click lands on "Text Editor" of the root menu opened by the right-click
    # (the menu geometry the desktop publishes: top-left corner at the click, 20 px rows)
    (_, right), (_, left) = clicks[0], clicks[1]
    assert right.get("button") == "right"
    dx, dy = left["x"] - right["x"], left["y"] - right["y"]
    ex, ey = MENU_ENTRY_OFFSETS["Text Editor"]
    assert 5 <= dx <= MENU_SIZE[0] - 5 and abs(dy - ey) <= 5, (dx, dy, ex, ey)
    # and far enough from the screen edges that openbox does not shift the menu
    assert right["x"] + MENU_SIZE[0] < DEMO_SCREEN[0] - 100
    assert right["y"] + MENU_SIZE[1] < DEMO_SCREEN[1] - 70


@pytest.mark.desktop
@pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("Xvfb", "openbox", "mousepad")),
    reason="Xvfb, openbox and mousepad are needed (bash scripts/install-desktop-deps.sh)",
)
def test_deskpilot_demo_end_to_end(tmp_path: Path) -> None:
    """The real thing: `deskpilot demo` on a fresh desktop, then check every output."""
    from deskpilot.cli import main

    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Demo OK" in out and "Hello, World!" in out
    # progress: one line per action, e.g. "step   3  left_click (560, 330) ..."
    assert re.search(r"step +2 +right_click \(520, 300\)", out), out
    assert re.search(r"step +3 +left_click \(560, 330\)", out), out
    assert "file://" in out

    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("-demo-hello-world")]
    hello = run_dir / "workspace" / "hello.py"
    assert hello.is_file()
    ran = subprocess.run(
        [sys.executable, str(hello)], capture_output=True, text=True, timeout=30, check=False
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "Hello, World!"
    assert (
        hello.read_text(encoding="utf-8")
        == load_script(run_dir / "workspace").responses[4]["content"][1]["input"]["text"]
    )

    lines = [json.loads(line) for line in (run_dir / "trajectory.jsonl").read_text().splitlines()]
    steps = [line for line in lines if line["type"] == "step"]
    assert lines[-1]["type"] == "run_end" and lines[-1]["stop_reason"] == "end_turn"
    assert len(steps) == 10
    assert not any(a["is_error"] for s in steps for a in s["actions"])
    bash_check = steps[8]["actions"][0]
    assert bash_check["name"] == "bash" and "Hello, World!" in bash_check["text"]
    # the fake server computed real token counts from the requests (images included)
    usage = steps[-1]["cumulative"]["usage"]
    assert usage["input_tokens"] + usage["cache_read_tokens"] + usage["cache_write_tokens"] > 10_000

    page = (run_dir / "report.html").read_text(encoding="utf-8")
    check = "✓ Checked by deskpilot after the run: hello.py prints 'Hello, World!'"
    assert html.escape(check, quote=False).replace("'", "&#39;") in page
    assert 'id="step-10"' in page and 'data-x="560" data-y="330"' in page
    assert page.count("data:image/webp;base64,") >= 8
    assert page.count('<a class="full" href="screenshots/') >= 8
    assert len(page.encode()) < 250_000  # 499 KB with the PNGs inlined; 157 KB with previews
    with Image.open(run_dir / "run.gif") as gif:
        assert gif.n_frames >= 12


async def test_demo_without_mousepad_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deskpilot.agent.demo import run_demo
    from deskpilot.errors import MissingDependencyError

    monkeypatch.setenv("PATH", str(tmp_path))  # no mousepad (nor anything else) on PATH
    with pytest.raises(MissingDependencyError, match=r"deskpilot doctor --install"):
        await run_demo(out_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
