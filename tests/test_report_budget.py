"""A crafted run directory cannot make the report link a page, or cost unbounded work
(probe #1 findings J and O).

- J: a valid PNG named ``screenshots/0001-0.html`` was linked from the page and opened as
  HTML when clicked; a screenshot's name must now end in an image suffix.
- O: one large PNG named through N symlinks (or hard links) was decoded N times for the
  page and again for the animation; symlinked screenshots are refused, a file is decoded
  once per output, and every output decodes within one pixel budget.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from deskpilot.agent import imagefiles
from deskpilot.agent.report import write_animation, write_report
from deskpilot.agent.trajectory import read_run

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_run


def _lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "trajectory.jsonl").read_text().splitlines()]


def _write(run: Path, lines: list[dict]) -> None:
    (run / "trajectory.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _with_shots(run: Path, names: list[str]) -> None:
    """Step 1 gets one click action per screenshot name."""
    lines = _lines(run)
    first = lines[1]["actions"][0]
    lines[1]["actions"] = [
        {**first, "tool_use_id": f"u{k}", "screenshot": f"screenshots/{name}"}
        for k, name in enumerate(names)
    ]
    _write(run, lines)


class _Opens:
    """Counts this process's opens of paths ending in ``suffix`` (``open`` audit events)."""

    hooked = False
    counting: _Opens | None = None

    def __init__(self, *names: str) -> None:
        self.names = names
        self.count = 0

    def __enter__(self) -> _Opens:
        if not _Opens.hooked:
            sys.addaudithook(_Opens._hook)
            _Opens.hooked = True
        _Opens.counting = self
        return self

    def __exit__(self, *exc: object) -> None:
        _Opens.counting = None

    @staticmethod
    def _hook(event: str, args: tuple) -> None:
        me = _Opens.counting
        if event == "open" and me is not None and isinstance(args[0], str | Path):
            if os.path.basename(str(args[0])) in me.names:
                me.count += 1


def test_a_screenshot_not_named_like_an_image_is_refused(tmp_path: Path) -> None:
    """Regression (probe J): the page linked screenshots/0001-0.html (a PNG/HTML polyglot)."""
    run = make_run(tmp_path)
    (run / "screenshots/0001-0.png").rename(run / "screenshots/0001-0.html")
    lines = _lines(run)
    lines[1]["actions"][0]["screenshot"] = "screenshots/0001-0.html"
    _write(run, lines)
    page = write_report(run).read_text(encoding="utf-8")
    assert not re.search(r'(href|src)="[^"]*0001-0\.html', page)
    assert "is refused: a screenshot&#39;s name ends in .png, .jpg" in page
    (bad,) = read_run(run).unreadable
    assert bad.index == 1 and "screenshot name" in bad.reason
    # upper-case image suffixes are fine
    lines[1]["actions"][0]["screenshot"] = "screenshots/0001-0.PNG"
    _write(run, lines)
    assert not read_run(run).unreadable


def test_symlinked_screenshots_are_refused(tmp_path: Path) -> None:
    """Regression (probe O): N symlinks inside the run to one large image were each decoded."""
    run = make_run(tmp_path)
    (run / "screenshots/link.png").symlink_to("0001-0.png")
    (run / "screenshots/dir").symlink_to(".")
    loaded = read_run(run)
    assert loaded.path("screenshots/0001-0.png") is not None
    assert loaded.path("screenshots/link.png") is None
    assert loaded.path("screenshots/dir/0001-0.png") is None
    _with_shots(run, ["link.png"])
    page = write_report(run).read_text(encoding="utf-8")
    assert 'href="screenshots/link.png"' not in page


def test_a_file_named_many_times_is_decoded_once_per_output(tmp_path: Path) -> None:
    """Regression (probe O): every name of one file (hard links) was decoded again."""
    run = make_run(tmp_path)
    names = [f"same{k}.png" for k in range(6)]
    for name in names:
        os.link(run / "screenshots/0001-0.png", run / "screenshots" / name)
    _with_shots(run, names)
    with _Opens(*names) as opens:
        page = write_report(run).read_text(encoding="utf-8")
    assert opens.count == 2  # read once to compare screens, decoded once for its preview
    assert page.count('href="screenshots/same') >= 6  # each still shown and linked
    with _Opens(*names) as opens:
        write_animation(run, mp4=False)
    assert opens.count == 2  # the same: compared once, decoded once for all its frames


def test_decoding_stops_at_the_pixel_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression (probe O): the page and animation decoded any number of large images."""
    run = make_run(tmp_path)
    names = [f"big{k}.png" for k in range(4)]
    for k, name in enumerate(names):  # 4 different files of 2000x2000 = 4 MP each
        Image.new("RGB", (2000, 2000), (k * 40, 90, 90)).save(run / "screenshots" / name)
    _with_shots(run, names)
    # the page's other screenshots are small; three big ones fit in 13 MP, the fourth not
    monkeypatch.setattr(imagefiles, "MAX_DECODED_PIXELS", 13_000_000)
    page = write_report(run).read_text(encoding="utf-8")
    refused = re.findall(r"(big\d).png was not rendered: budget \(13,000,000 decoded pixels", page)
    assert len(set(refused)) == 1  # which one: the order two workers decode them in
    caplog.clear()
    write_animation(run, mp4=False)
    left_out = re.findall(r"(big\d).png was not rendered: budget", caplog.text)
    assert set(left_out) == {"big3"}
