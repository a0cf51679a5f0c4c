"""The eval harness against an agent that plants symlinks where a checker or a post-config
step reads and writes (a REAL desktop): getters and file steps run in deskpilot's process,
so a link to /proc/self/environ would copy deskpilot's own environment (the API key) into
the run's work folder and the evidence of results.jsonl and index.html."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskpilot.desktop.local import LocalDesktop
from deskpilot.errors import DesktopError
from deskpilot.eval import EvalContext, SetupError
from deskpilot.eval.getters import get_value
from deskpilot.eval.setup import TERMINAL_LOG, run_step

pytestmark = pytest.mark.desktop


@pytest.fixture
async def ctx(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "asset.txt").write_text("asset\n")
    async with LocalDesktop(640, 400) as desktop:
        yield EvalContext(
            host=desktop,
            work_dir=tmp_path / "work",
            computer=desktop,
            base_dir=suite,
            root_dir=suite,
            command_timeout_s=5,
        )


async def test_getters_do_not_follow_the_agents_links_into_proc(ctx, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-probe-SECRET")
    home = Path(ctx.host.resolve_path("~"))
    (home / "answer.txt").symlink_to("/proc/self/environ")
    log = Path(ctx.host.resolve_path(TERMINAL_LOG))
    log.parent.mkdir(parents=True, exist_ok=True)
    log.symlink_to("/proc/self/environ")
    got = await get_value(ctx, {"type": "vm_file", "path": "~/answer.txt", "dest": "a.txt"})
    assert got.value is None and "no file at ~/answer.txt" in got.evidence
    term = await get_value(ctx, {"type": "vm_terminal_output"})
    assert term.value is None and "kernel interface" in term.evidence
    for path in ctx.work_dir.rglob("*"):
        assert b"SECRET" not in path.read_bytes(), path
    assert "SECRET" not in got.evidence + term.evidence
    with pytest.raises(DesktopError, match="kernel interface"):
        await ctx.get_file("~/answer.txt")
    # an ordinary file through an ordinary link is still read
    (home / "real.txt").write_text("fine")
    (home / "link.txt").symlink_to(home / "real.txt")
    ok = await get_value(ctx, {"type": "vm_file", "path": "~/link.txt", "dest": "l.txt"})
    assert Path(ok.value).read_text() == "fine"


async def test_file_steps_do_not_write_through_the_agents_links_into_proc(ctx):
    home = Path(ctx.host.resolve_path("~"))
    (home / "comm").symlink_to("/proc/self/comm")
    before = Path("/proc/self/comm").read_text()
    with pytest.raises(SetupError, match="kernel interface"):
        await run_step(
            ctx, "upload_file", {"files": [{"local_path": "asset.txt", "path": "~/comm"}]}
        )
    assert Path("/proc/self/comm").read_text() == before
    written = await run_step(
        ctx, "upload_file", {"files": [{"local_path": "asset.txt", "path": "~/new/a.txt"}]}
    )
    assert str(home / "new/a.txt") in written
    assert (home / "new/a.txt").read_text() == "asset\n"
