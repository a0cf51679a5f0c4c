"""The editor under attack (adversarial probe #1): a symlink flipped while it works, a first
line longer than its read cap, kernel interfaces under /proc and /sys."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from deskpilot import EditorTool, ToolCall
from deskpilot.computer_use import editor_files


def ed(command: str, path, **kw) -> ToolCall:
    return ToolCall(
        "tu_e", "str_replace_based_edit_tool", {"command": command, "path": str(path), **kw}
    )


@pytest.fixture(params=["openat2", "walk"])
def opener_mode(request, monkeypatch):
    """Both ways of staying inside the roots: the kernel's openat2(RESOLVE_BENEATH) and the
    component-by-component walk used where openat2 is missing."""
    if request.param == "walk":
        monkeypatch.setattr(editor_files, "_openat2_works", False)
    return request.param


@pytest.fixture
def flipping(tmp_path):
    """ROOT/d flips between a directory inside ROOT and a symlink to OUTSIDE, as fast as a
    shell can rename (the probe's f15_editor_toctou.py)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "real").mkdir()
    (root / "d").symlink_to("real")
    (outside / "victim.txt").write_text("original secret-ish content\n")
    (root / "real" / "victim.txt").write_text("decoy inside the root\n")
    loop = (
        f"cd {root}; while :; do ln -sfnT real d.tmp && mv -T d.tmp d; "
        f"ln -sfnT {outside} d.tmp && mv -T d.tmp d; done"
    )
    flipper = subprocess.Popen(["bash", "-c", loop])
    try:
        yield root, outside
    finally:
        flipper.kill()
        flipper.wait()


async def test_a_flipping_symlink_never_leads_out_of_the_roots(flipping, opener_mode):
    """Probe finding L: the path was checked, then opened by name; with a symlink flipper,
    create landed outside 2/300 times and view read outside 3/300 times."""
    root, outside = flipping
    tool = EditorTool(allowed_roots=[root])
    created = 0
    for i in range(300):
        r = await tool.execute(ed("create", f"{root}/d/f{i}.txt", file_text="via race\n"))
        created += not r.is_error
        if r.is_error:
            assert "outside" in r.text or "symlink" in r.text, r.text
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    # openat2 follows the link while it points inside; the walk follows no symlink at all
    assert created > 0 if opener_mode == "openat2" else created == 0
    shown = 0
    for _ in range(300):
        r = await tool.execute(ed("view", f"{root}/d/victim.txt"))
        assert "secret-ish" not in r.text
        shown += "decoy inside" in r.text
    assert shown > 0 or opener_mode == "walk"
    for _ in range(100):  # edits and undo go through the same opener
        r = await tool.execute(
            ed("str_replace", f"{root}/d/victim.txt", old_str="decoy", new_str="x")
        )
        if not r.is_error:
            await tool.execute(
                ed("str_replace", f"{root}/d/victim.txt", old_str="x", new_str="decoy")
            )
    assert (outside / "victim.txt").read_text() == "original secret-ish content\n"


async def test_symlinks_inside_the_root_and_dotdot(tmp_path, opener_mode):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("CONTENT-IN\n")
    (tmp_path / "out.txt").write_text("outside\n")
    (root / "rel").symlink_to("sub/a.txt")
    (root / "abs").symlink_to(root / "sub" / "a.txt")
    (root / "up").symlink_to("../out.txt")
    tool = EditorTool(allowed_roots=[root])
    r = await tool.execute(ed("view", root / "rel"))
    assert ("CONTENT-IN" in r.text) == (opener_mode == "openat2"), r.text
    for escaping in (root / "abs", root / "up", root / "sub" / ".." / ".." / "out.txt"):
        r = await tool.execute(ed("view", escaping))
        assert r.is_error and "outside the directories this editor may use" in r.text
    r = await tool.execute(ed("view", root / "sub" / ".." / "sub" / "a.txt"))
    assert ("CONTENT-IN" in r.text) == (opener_mode == "openat2")
    r = await tool.execute(ed("create", root / "new" / "deep" / "b.txt", file_text="hi"))
    assert not r.is_error and "missing parent directories were created" in r.text
    assert (root / "new" / "deep" / "b.txt").read_text() == "hi"


async def test_view_of_a_first_line_longer_than_the_cap_shows_its_start(tmp_path):
    """Probe: a file whose first line is over 10 MiB was shown as empty."""
    from deskpilot.computer_use.editor import MAX_FILE_BYTES, MAX_VIEW_CHARS

    big = tmp_path / "one-line.json"
    big.write_bytes(b"[" + "é".encode() * (MAX_FILE_BYTES // 2 + 10) + b"]\n")
    r = await EditorTool().execute(ed("view", big))
    assert not r.is_error
    first = r.text.split("\n")[1]
    assert first.startswith("     1\t[éé") and len(first) > MAX_VIEW_CHARS // 2
    assert "line 1 is longer than" in r.text and "was cut" in r.text
    assert "first line is longer than the editor's limit" in r.text
    assert "Latin-1" not in r.text  # cut on a UTF-8 character boundary
    one = tmp_path / "long-line.txt"  # under the byte cap, over the view cap
    one.write_text("y" * 50_000 + "\nsecond\n")
    r = await EditorTool().execute(ed("view", one))
    assert r.text.split("\n")[1].startswith("     1\tyyyy") and "line 1 is longer" in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/proc/kmsg",
        "/proc/self/status",
        "/proc/self/environ",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ],
)
async def test_kernel_interfaces_are_refused(path):
    """Probe: viewing /proc/kmsg as root consumed the kernel log; /proc/self is deskpilot's
    own process (the editor runs in it)."""
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    r = await EditorTool().execute(ed("view", path))
    assert r.is_error and "kernel interface" in r.text, r.text
    r = await EditorTool().execute(ed("str_replace", path, old_str="a", new_str="b"))
    assert r.is_error and "kernel interface" in r.text
    r = await EditorTool().execute(ed("create", "/proc/self/new-file", file_text="x"))
    assert r.is_error and not Path("/proc/self/new-file").exists()


async def test_create_never_overwrites_and_undo_removes_only_its_file(tmp_path):
    tool = EditorTool(version="text_editor_20250124", allowed_roots=[tmp_path])
    target = tmp_path / "a.txt"
    r = await tool.execute(ed("create", target, file_text="one\n"))
    assert not r.is_error
    r = await tool.execute(ed("create", target, file_text="two\n"))
    assert r.is_error and "File already exists" in r.text and target.read_text() == "one\n"
    os.unlink(target)
    target.symlink_to(tmp_path / "elsewhere.txt")  # a dangling link: create must not follow it
    r = await tool.execute(ed("create", target, file_text="three\n"))
    assert r.is_error and not (tmp_path / "elsewhere.txt").exists()
    os.unlink(target)
    target.write_text("replaced by someone\n")
    r = await tool.execute(ed("undo_edit", target))
    assert not r.is_error and not target.exists()
