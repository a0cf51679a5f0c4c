"""A crafted or damaged run directory cannot script the report, stop it, or exhaust memory.

Regression tests for the security issue's defects 3 (unescaped fields, no CSP) and 5 (the
report stops at the first malformed value and writes nothing because the GIF came first).
They use only the public entry points that existed before the fix (``write_report``,
``write_animation`` and ``deskpilot report``).
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from deskpilot.agent.report import write_animation, write_report
from deskpilot.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from html_audit import audit_html
from test_report import make_run

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def _write_lines(run: Path, lines: list) -> None:
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    (run / "trajectory.jsonl").write_text(text, encoding="utf-8")


def _lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "trajectory.jsonl").read_text().splitlines()]


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims width x height pixels (a decompression bomb's header), ~60 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_fields_that_escaped_before_are_escaped(tmp_path: Path) -> None:
    """Regression: native_size/model_size, the step index (timeline and section ids) and
    attempts were written into the page unescaped."""
    run = make_run(tmp_path)
    lines = _lines(run)
    lines[0]["native_size"] = [XSS, 800]
    lines[0]["model_size"] = [640, XSS]
    lines[1]["index"] = XSS
    lines[2]["response"]["attempts"] = XSS
    _write_lines(run, lines)
    page = write_report(run).read_text(encoding="utf-8")
    assert audit_html(page) == []
    assert "<script>alert(1)" not in page and "onerror=alert(2)>" not in page
    # the rest of the run is still shown
    assert "Click the button" in page and "Done: the slider moved." in page
    assert "Unreadable step 2 (line 3 of trajectory.jsonl)" in page


def test_every_string_field_is_escaped(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    lines = _lines(run)
    for key in ("task", "model", "model_id", "provider", "started_at", "system_prompt"):
        lines[0][key] = f"{key} {XSS}"
    lines[0]["tool_versions"]["bash"] = XSS
    step = lines[2]
    step["response"]["content"][0]["text"] = XSS
    step["response"]["content"].append({"type": "thinking", "thinking": XSS})
    step["response"]["content"].append({"type": "tool_use", "id": XSS, "name": XSS, "input": {}})
    step["response"]["stop_reason"] = XSS
    step["actions"][1]["input"] = {"command": XSS}
    step["actions"][1]["text"] = XSS
    step["actions"][1]["tool_use_id"] = XSS
    step["actions"][0]["input"]["action"] = XSS
    lines[-1]["final_text"] = XSS
    lines[-1]["error"] = XSS
    lines[-1]["stop_reason"] = XSS
    _write_lines(run, lines)
    (run / "checks.json").write_text(json.dumps([{"name": XSS, "ok": False, "detail": XSS}]))
    page = write_report(run).read_text(encoding="utf-8")
    assert audit_html(page) == []
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 15


def test_the_page_has_a_content_security_policy_without_script(tmp_path: Path) -> None:
    page = write_report(make_run(tmp_path)).read_text(encoding="utf-8")
    assert audit_html(page) == []
    assert "<script" not in page


def test_report_survives_malformed_values(tmp_path: Path) -> None:
    """Regression: `deskpilot report` stopped at the first malformed value and wrote no
    report.html (usage "lots", NaN and 1e308 coordinates, a short native_size, a truncated
    PNG, a 30000x30000 image, a corrupted and a truncated line)."""
    run = make_run(tmp_path, with_end=False)
    lines = _lines(run)
    lines[0]["native_size"] = [1280]  # short
    lines[1]["response"]["usage"]["input_tokens"] = "lots"
    lines[2]["actions"][0]["input"]["coordinate"] = [1e308, 1e308]
    lines[2]["actions"][0]["input"]["start_coordinate"] = [float("nan"), 5]
    extra = {
        "type": "step",
        "index": 3,
        "response": {"content": [], "usage": {"input_tokens": 1, "output_tokens": 1}},
        "actions": [
            {
                "tool_use_id": "z1",
                "name": "computer",
                "input": {"action": "left_click", "coordinate": [float("nan"), 3]},
                "screenshot": "screenshots/0003-0.png",
            },
            {
                "tool_use_id": "z2",
                "name": "computer",
                "input": {"action": "scroll", "coordinate": [5, 5], "scroll_amount": 10**400},
                "screenshot": "screenshots/0003-1.png",
            },
        ],
        "timings": {"model_s": 1e308},
    }
    extra_ok = {**extra, "index": 4, "timings": {}}
    _write_lines(run, [*lines, extra, "{corrupted", extra_ok, '{"type": "step", "ind'])
    # a truncated PNG and a decompression bomb (header of a 30000 x 30000 image)
    whole = (run / "screenshots/0002-0.png").read_bytes()
    (run / "screenshots/0003-0.png").write_bytes(whole[: len(whole) // 2])
    _png_header_only(run / "screenshots/0003-1.png", 30000, 30000)
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text(encoding="utf-8")
    assert audit_html(page) == []
    # the bad step is shown as unreadable with the reason; the others are there
    assert "Unreadable step 1 (line 2 of trajectory.jsonl)" in page
    assert "response.usage.input_tokens: Input should be a valid integer" in page
    assert "Unreadable step 3 (line 4 of trajectory.jsonl)" in page and "timings.model_s" in page
    assert 'id="step-2"' in page and 'id="step-4"' in page
    assert "Line 5 of trajectory.jsonl could not be read: not valid JSON" in page
    assert 'id="line-7"' in page  # the cut-short last line, a step
    assert "native_size could not be read" in page
    # the broken images are named, not drawn
    assert "0003-0.png is not a readable image" in page
    assert "over the 40,000,000-pixel limit" in page
    assert (run / "run.gif").is_file()
    with Image.open(run / "run.gif") as gif:
        assert gif.n_frames >= 3


def test_the_html_is_written_before_the_animation(tmp_path: Path) -> None:
    """Regression: the GIF was written first, so a failing animation left no report.html."""
    run = make_run(tmp_path)
    (run / "run.gif").mkdir()  # the GIF cannot be written
    result = CliRunner().invoke(main, ["report", str(run)])
    assert (run / "report.html").is_file()
    assert result.exit_code == 0, result.output
    assert "Warning: The animation could not be written" in result.output


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    _png_header_only(run / "screenshots/0001-0.png", 30000, 30000)
    page = write_report(run).read_text(encoding="utf-8")
    assert "0001-0.png is over the 40,000,000-pixel limit" in page
    assert write_animation(run, mp4=False) == [run / "run.gif"]
