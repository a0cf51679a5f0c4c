"""``deskpilot eval`` as a user runs it: a subprocess killed mid-suite and resumed, the exit
status, usage errors, and index.html in headless Debian chromium (sorting works, nothing from
the results runs as script)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskpilot.cli import main
from deskpilot.eval.index import write_index
from deskpilot.eval.results import HarnessSettings, Status, TaskResult, Timings, read_results

TINY = Path(__file__).parent / "data" / "eval_tiny"
CHROMIUM = shutil.which("chromium")
XSS = '<script>window.__xss = 1; alert("x")</script><img src=x onerror="window.__xss=2">'


def _eval(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "deskpilot", "eval", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.mark.desktop
def test_a_killed_run_resumes_without_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = out / "results.jsonl"
    proc = _eval(str(TINY), "--oracle", "--out", str(out))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    before = read_results(out).results
    assert 1 <= len(before) < 4
    # without --resume the directory is refused
    again = _eval(str(TINY), "--oracle", "--out", str(out))
    text, _ = again.communicate(timeout=60)
    assert again.returncode == 1 and "pass --resume to continue" in text
    resumed = _eval(str(TINY), "--oracle", "--out", str(out), "--resume")
    text, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, text
    assert f"Skipped {len(before)} task runs already in results.jsonl" in text
    got = read_results(out)
    counts = Counter(r.key for r in got.results)
    assert set(counts.values()) == {1}, counts  # nothing ran twice
    assert {r.id: r.status for r in got.results} == {
        "tiny-bash-file": "pass",
        "tiny-gui-terminal": "pass",
        "tiny-infeasible": "pass",
        "tiny-unsupported": "unsupported",
    }
    assert [r.key for r in got.results[: len(before)]] == [r.key for r in before]
    assert "4 tasks: 3 pass, 0 fail, 1 unsupported, 0 error" in text
    assert (out / "index.html").is_file() and (out / "settings.json").is_file()


@pytest.mark.desktop
def test_sigterm_stops_the_run_and_keeps_the_finished_tasks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _eval(str(TINY), "--oracle", "--out", str(out))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "results.jsonl").is_file() and (out / "results.jsonl").read_text():
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, text
    assert "SIGTERM: stopped; finished tasks are in" in text and "--resume" in text
    finished = read_results(out).results
    assert finished and all(r.status != "error" for r in finished)
    assert (out / "index.html").is_file()  # written for the finished tasks


@pytest.mark.desktop
def test_exit_status_and_terminal_summary(tmp_path: Path) -> None:
    """The do-nothing model fails tasks (exit 0: every task got a verdict); under --oracle a
    task that does not pass is exit 1."""
    noop = _eval(str(TINY), "--noop", "--tasks", "tiny-infeasible", "--out", str(tmp_path / "a"))
    text, _ = noop.communicate(timeout=120)
    assert noop.returncode == 0, text
    assert "fail        tiny-infeasible (trial 1): score 0.00, 1 steps" in text
    assert "Harness settings (also in settings.json):" in text
    assert "mode               noop" in text
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(TINY / "bash-file.json", suite / "t.json")
    broken = (suite / "t.json").read_text().replace("'hello eval' >", "'hello oops' >")
    (suite / "t.json").write_text(broken)
    oracle = _eval(str(suite), "--oracle", "--out", str(tmp_path / "b"))
    text, _ = oracle.communicate(timeout=120)
    assert oracle.returncode == 1, text
    assert "fail        tiny-bash-file" in text and "missing ['hello eval']" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Give a SUITE path or --suite NAME"),
        (["--suite", "nope"], "No bundled suite named 'nope'"),
        ([str(TINY), "--oracle", "--noop"], "Choose one of --oracle, --noop and --replay"),
        ([str(TINY), "--tasks", "zzz*", "--noop"], "selects no task"),
    ],
)
def test_usage_errors_are_one_sentence(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code in (1, 2), result.output
    assert message in result.output


def test_model_mode_needs_a_key_before_any_desktop_starts(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": None, "ANTHROPIC_AUTH_TOKEN": None}
    result = CliRunner().invoke(main, ["eval", str(TINY), "--out", str(tmp_path / "o")], env=env)
    assert result.exit_code == 1
    assert "ANTHROPIC_API_KEY is not set" in result.output and "--oracle" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.desktop
def test_model_mode_talks_to_the_configured_endpoint(tmp_path: Path) -> None:
    """A real model run: the client reads ANTHROPIC_BASE_URL and the key like `deskpilot
    run` (here the fake server, whose default answer is "Done.")."""
    from deskpilot.testing import FakeModelServer

    with FakeModelServer(api_key="sk-ant-eval-test-key-0123456789") as server:
        env = {
            "ANTHROPIC_BASE_URL": server.url,
            "ANTHROPIC_API_KEY": "sk-ant-eval-test-key-0123456789",
        }
        args = ["eval", str(TINY), "--tasks", "tiny-infeasible", "--out", str(tmp_path / "o")]
        result = CliRunner().invoke(main, [*args, "--model", "claude-sonnet-4-5"], env=env)
        assert len(server.requests) == 1
        system = server.requests[0].body["system"]
    assert result.exit_code == 0, result.output
    assert "fail        tiny-infeasible" in result.output
    assert "INFEASIBLE" in json.dumps(system)
    assert "mode               model" in result.output


def test_help_lists_the_options_and_compare() -> None:
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0
    for option in ("--desktops", "--trials", "--resume", "--replay", "--oracle", "--tasks"):
        assert option in result.output
    assert "compare" in result.output
    assert "eval" in CliRunner().invoke(main, ["--help"]).output


# --- index.html ------------------------------------------------------------------------------


def _hostile_results() -> list[TaskResult]:
    rows = []
    kinds: list[tuple[Status, float, int]] = [
        ("pass", 0.30, 4),
        ("error", 0.10, 9),
        ("fail", 0.90, 1),
        ("unsupported", 0.0, 0),
    ]
    for k, (status, cost, steps) in enumerate(kinds):
        rows.append(
            TaskResult(
                id=f"task-{k}{XSS if k == 1 else ''}",
                status=status,
                score=1.0 if status == "pass" else 0.0,
                evidence=f"compared {XSS}",
                reason=XSS if status == "error" else None,
                instruction=f"Do {XSS}",
                steps=steps,
                cost=cost,
                duration_s=1.5 * k,
                timings=Timings(setup_s=0.1, check_s=0.2),
                report="javascript:alert(1)" if k == 2 else f"runs/t{k}/report.html",
            )
        )
    return rows


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
            self._in_script = False


def test_index_escapes_untrusted_results(tmp_path: Path) -> None:
    settings = HarnessSettings(suite=f"s{XSS}", model=XSS, mode="model")
    page = write_index(tmp_path, _hostile_results(), settings).read_text()
    parsed = _Tags()
    parsed.feed(page)
    assert parsed.tags.count("script") == 1 and "img" not in parsed.tags
    assert not [a for a in parsed.attrs if a[1].startswith("on")]
    hrefs = [v for t, k, v in parsed.attrs if k == "href"]
    assert hrefs == ["runs/t0/report.html", "runs/t1/report.html", "runs/t3/report.html"]
    csp = next(v for t, k, v in parsed.attrs if k == "content" and v and "default-src" in v)
    digest = base64.b64encode(hashlib.sha256(parsed.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "&lt;script&gt;window.__xss" in page


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
async def test_index_in_headless_chromium_sorts_and_runs_no_injected_script(
    tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright

    index = write_index(tmp_path, _hostile_results(), HarnessSettings(model=XSS))
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            dialogs: list[str] = []
            errors: list[str] = []
            page.on("dialog", lambda d: dialogs.append(d.message))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(index.as_uri())

            async def order() -> list[str]:
                return await page.eval_on_selector_all(
                    "#results tbody tr", "rows => rows.map(r => r.dataset.status)"
                )

            assert await order() == ["pass", "error", "fail", "unsupported"]
            await page.click("th button[data-sort=cost]")  # the page's own script runs
            assert await order() == ["unsupported", "error", "pass", "fail"]
            await page.click("th button[data-sort=cost]")
            assert await order() == ["fail", "pass", "error", "unsupported"]
            await page.click("th button[data-sort=status]")
            assert await order() == ["error", "fail", "unsupported", "pass"]
            await page.click("th button[data-sort=steps]")
            assert (await order())[0] == "unsupported"
            assert await page.evaluate("window.__xss") is None
            assert dialogs == []
            assert not [e for e in errors if "Content Security Policy" in e and "style" in e]
            bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert bg == "rgb(245, 245, 247)"  # the stylesheet passed the CSP
        finally:
            await browser.close()


def test_outputs_never_write_through_a_planted_symlink(tmp_path: Path) -> None:
    from deskpilot.errors import DeskpilotError
    from deskpilot.eval.results import ResultsWriter, write_settings

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("index.html", "settings.json"):
        (out / name).symlink_to(victim)
    write_index(out, _hostile_results(), None)
    write_settings(out, HarnessSettings())
    assert victim.read_text() == "keep"
    assert not (out / "index.html").is_symlink() and not (out / "settings.json").is_symlink()
    (out / "results.jsonl").symlink_to(victim)
    with pytest.raises(DeskpilotError, match="symbolic link"):
        ResultsWriter(out)
    assert victim.read_text() == "keep"
