"""EditorTool on real files: reference output formats per version, and the fixed behaviours."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskpilot import EditorTool, ToolCall
from deskpilot.errors import ConfigError

ALL = (
    "text_editor_20241022",
    "text_editor_20250124",
    "text_editor_20250429",
    "text_editor_20250728",
)
WITH_UNDO = ("text_editor_20241022", "text_editor_20250124")


def ed(command: str, path, **kw) -> ToolCall:
    return ToolCall(
        "tu_e", "str_replace_based_edit_tool", {"command": command, "path": str(path), **kw}
    )


def insert_key(version: str) -> str:
    return "insert_text" if version == "text_editor_20250728" else "new_str"


@pytest.fixture
def f(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Line 1\nLine 2\nLine 3\nLine 4\n")
    return p


# --- definitions ---------------------------------------------------------------------------


def test_definitions_and_names():
    assert EditorTool("text_editor_20241022").definition == {
        "type": "text_editor_20241022",
        "name": "str_replace_editor",
    }
    assert EditorTool("text_editor_20250124").name == "str_replace_editor"
    assert EditorTool("text_editor_20250429").name == "str_replace_based_edit_tool"
    assert EditorTool("text_editor_20250728", max_characters=5000).definition == {
        "type": "text_editor_20250728",
        "name": "str_replace_based_edit_tool",
        "max_characters": 5000,
    }
    assert "max_characters" not in EditorTool("text_editor_20250429", max_characters=5).definition
    with pytest.raises(ConfigError):
        EditorTool("text_editor_2099")
    with pytest.raises(ConfigError):
        EditorTool(max_characters=0)


# --- view ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL)
async def test_view_file_cat_n_format(version, f):
    r = await EditorTool(version).execute(ed("view", f))
    assert not r.is_error
    assert r.text == (
        f"Here's the result of running `cat -n` on {f}:\n"
        "     1\tLine 1\n     2\tLine 2\n     3\tLine 3\n     4\tLine 4\n"
    )


async def test_view_range(f):
    e = EditorTool()
    r = await e.execute(ed("view", f, view_range=[2, 3]))
    assert "\n     2\tLine 2\n     3\tLine 3\n" in r.text and "Line 4" not in r.text
    r = await e.execute(ed("view", f, view_range=[3, -1]))
    assert r.text.endswith("     3\tLine 3\n     4\tLine 4\n")
    for bad, msg in [
        ([3, 2], "should be larger or equal than its first"),
        ([0, 2], "should be within the range of lines of the file: [1, 4]"),
        ([1, 9], "should be smaller than the number of lines in the file: `4`"),
        ([1], "Invalid `view_range`. It should be a list of two integers."),
        (["1", 2], "Invalid `view_range`"),
    ]:
        r = await e.execute(ed("view", f, view_range=bad))
        assert r.is_error and msg in r.text, (bad, r.text)


async def test_view_directory_two_levels_no_hidden_no_shell(tmp_path):
    (tmp_path / "d1" / "d2" / "d3").mkdir(parents=True)
    (tmp_path / "d1" / "d2" / "deep.txt").write_text("x")
    (tmp_path / "d1" / "f.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.txt").write_text("x")
    weird = tmp_path / "name with spaces; touch pwned"
    weird.mkdir()
    r = await EditorTool().execute(ed("view", tmp_path))
    assert r.text.startswith(
        f"Here's the files and directories up to 2 levels deep in {tmp_path}, excluding hidden items:\n"
    )
    assert f"{tmp_path}/d1/" in r.text and f"{tmp_path}/d1/f.txt" in r.text
    assert f"{tmp_path}/d1/d2/" in r.text and "deep.txt" not in r.text
    assert ".hidden" not in r.text and "h.txt" not in r.text
    assert str(weird) in r.text and not (tmp_path / "pwned").exists()
    r = await EditorTool().execute(ed("view", tmp_path, view_range=[1, 2]))
    assert r.is_error and "not allowed when `path` points to a directory" in r.text


async def test_view_truncates_with_max_characters(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("\n".join(f"line {i}" for i in range(5000)))
    r = await EditorTool(max_characters=100).execute(ed("view", p))
    assert "<response clipped>" in r.text and "line 4999" not in r.text
    assert len(r.text) < 100 + 400
    r = await EditorTool().execute(ed("view", p))  # default cap 16,000 characters
    assert "<response clipped>" in r.text and len(r.text) < 16_000 + 400


# --- create ---------------------------------------------------------------------------------


async def test_create_refuses_existing_and_needs_file_text(tmp_path, f):
    e = EditorTool()
    p = tmp_path / "new.py"
    r = await e.execute(ed("create", p, file_text="print(1)\n"))
    assert r.text == f"File created successfully at: {p}" and p.read_text() == "print(1)\n"
    r = await e.execute(ed("create", f, file_text="x"))
    assert r.is_error and r.text == (
        f"File already exists at: {f}. Cannot overwrite files using command `create`."
    )
    r = await e.execute(ed("create", tmp_path / "x.txt"))
    assert r.is_error and "Parameter `file_text` is required for command: create" in r.text


async def test_create_makes_missing_parent_directories(tmp_path):
    p = tmp_path / "a" / "b" / "c.txt"
    r = await EditorTool().execute(ed("create", p, file_text="hi"))
    assert not r.is_error and p.read_text() == "hi"
    assert "missing parent directories were created" in r.text


# --- str_replace ---------------------------------------------------------------------------


async def test_str_replace_success_snippet_and_message(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("".join(f"l{i}\n" for i in range(1, 21)))
    r = await EditorTool().execute(ed("str_replace", p, old_str="l10\n", new_str="TEN\nTEN2\n"))
    assert not r.is_error
    assert r.text.startswith(
        f"The file {p} has been edited. Here's the result of running `cat -n` on a snippet of {p}:\n"
    )
    assert "     6\tl6\n" in r.text and "    10\tTEN\n    11\tTEN2\n" in r.text
    assert "     5\tl5" not in r.text
    assert r.text.endswith(
        "Review the changes and make sure they are as expected. Edit the file again if necessary."
    )
    assert "l9\nTEN\nTEN2\nl11\n" in p.read_text()


async def test_str_replace_errors(f):
    e = EditorTool()
    r = await e.execute(ed("str_replace", f, old_str="nope", new_str="x"))
    assert r.is_error and r.text == (
        f"No replacement was performed, old_str `nope` did not appear verbatim in {f}."
    )
    r = await e.execute(ed("str_replace", f, old_str="Line", new_str="x"))
    assert r.is_error and "Multiple occurrences of old_str `Line` in lines [1, 2, 3, 4]" in r.text
    r = await e.execute(ed("str_replace", f, old_str=""))
    assert r.is_error and "must not be empty" in r.text
    r = await e.execute(ed("str_replace", f, new_str="x"))
    assert r.is_error and "Parameter `old_str` is required" in r.text
    assert f.read_text() == "Line 1\nLine 2\nLine 3\nLine 4\n"


async def test_multiline_duplicate_names_its_lines(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("a\nb\nc\na\nb\n")
    r = await EditorTool().execute(ed("str_replace", p, old_str="a\nb", new_str="z"))
    assert r.is_error and "in lines [1, 4]" in r.text


async def test_str_replace_deletes_when_new_str_missing(f):
    r = await EditorTool().execute(ed("str_replace", f, old_str="Line 2\n"))
    assert not r.is_error and f.read_text() == "Line 1\nLine 3\nLine 4\n"


# --- insert -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL)
async def test_insert_at_top_middle_end(version, tmp_path):
    e = EditorTool(version)
    key = insert_key(version)
    p = tmp_path / "i.txt"
    for line, expected in [
        (0, "new\nL1\nL2\n"),
        (1, "L1\nnew\nL2\n"),
        (2, "L1\nL2\nnew\n"),  # no blank line appended at the end
    ]:
        p.write_text("L1\nL2\n")
        r = await e.execute(ed("insert", p, insert_line=line, **{key: "new"}))
        assert not r.is_error, r.text
        assert p.read_text() == expected
        assert r.text.startswith(
            f"The file {p} has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n"
        )
        assert r.text.endswith(
            "Review the changes and make sure they are as expected (correct indentation, no "
            "duplicate lines, etc). Edit the file again if necessary."
        )
    r = await e.execute(ed("insert", p, insert_line=5, **{key: "x"}))
    assert r.is_error and r.text == (
        "Invalid `insert_line` parameter: 5. It should be within the range of lines of the file: [0, 3]"
    )
    r = await e.execute(ed("insert", p, insert_line=1))
    assert r.is_error and f"Parameter `{key}` is required for command: insert" in r.text


async def test_insert_accepts_the_other_spelling(tmp_path):
    p = tmp_path / "i.txt"
    p.write_text("a\n")
    r = await EditorTool("text_editor_20250728").execute(
        ed("insert", p, insert_line=1, new_str="b")
    )
    assert not r.is_error and p.read_text() == "a\nb\n"


async def test_insert_into_empty_file(tmp_path):
    p = tmp_path / "e.txt"
    p.write_text("")
    r = await EditorTool().execute(ed("insert", p, insert_line=0, insert_text="x\ny\n"))
    assert not r.is_error and p.read_text() == "x\ny\n"


# --- undo -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", WITH_UNDO)
async def test_undo_edit(version, tmp_path, f):
    e = EditorTool(version)
    r = await e.execute(ed("undo_edit", f))
    assert r.is_error and r.text == f"No edit history found for {f}."
    await e.execute(ed("str_replace", f, old_str="Line 1", new_str="First"))
    await e.execute(ed("insert", f, insert_line=0, new_str="Top"))
    r = await e.execute(ed("undo_edit", f))
    assert r.text.startswith(
        f"Last edit to {f} undone successfully. Here's the result of running `cat -n` on {f}:\n"
    )
    assert f.read_text() == "First\nLine 2\nLine 3\nLine 4\n"
    await e.execute(ed("undo_edit", f))
    assert f.read_text() == "Line 1\nLine 2\nLine 3\nLine 4\n"
    p = tmp_path / "created.txt"
    await e.execute(ed("create", p, file_text="x"))
    r = await e.execute(ed("undo_edit", p))
    assert not r.is_error and not p.exists()


@pytest.mark.parametrize("version", ["text_editor_20250429", "text_editor_20250728"])
async def test_undo_not_in_newer_versions(version, f):
    r = await EditorTool(version).execute(ed("undo_edit", f))
    assert r.is_error and r.text == (
        "Unrecognized command undo_edit. The allowed commands for the str_replace_based_edit_tool "
        "tool are: view, create, str_replace, insert"
    )


# --- paths and fixes ----------------------------------------------------------------------------


async def test_path_validation(tmp_path, f):
    e = EditorTool()
    r = await e.execute(ed("view", "relative/file.txt"))
    assert r.is_error and "is not an absolute path, it should start with `/`" in r.text
    assert f"{os.getcwd()}/relative/file.txt" in r.text
    r = await e.execute(ed("view", tmp_path / "missing"))
    assert r.is_error and "does not exist. Please provide a valid path." in r.text
    r = await e.execute(ed("str_replace", tmp_path, old_str="a", new_str="b"))
    assert (
        r.is_error
        and "is a directory and only the `view` command can be used on directories" in r.text
    )
    r = await e.execute(ToolCall("x", "str_replace_based_edit_tool", {"command": "view"}))
    assert r.is_error and "Parameter `path` is required" in r.text
    r = await e.execute(ed("view", f, bogus=1))
    assert r.is_error and "bogus" in r.text


async def test_allowed_roots_confine_paths_and_resolve_symlinks(tmp_path):
    inside = tmp_path / "work"
    inside.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    (inside / "link.txt").symlink_to(outside)
    e = EditorTool(allowed_roots=[inside])
    r = await e.execute(ed("view", outside))
    assert r.is_error and "outside the directories this editor may use" in r.text
    assert str(inside) in r.text
    r = await e.execute(ed("view", inside / "link.txt"))
    assert r.is_error and "outside" in r.text
    r = await e.execute(ed("view", inside / ".." / "secret.txt"))
    assert r.is_error
    r = await e.execute(ed("create", inside / "ok.txt", file_text="fine"))
    assert not r.is_error
    r = await e.execute(ed("view", "ok.txt"))
    assert r.is_error and f"Maybe you meant {inside}/ok.txt?" in r.text


async def test_binary_file_refused(tmp_path):
    p = tmp_path / "b.bin"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    r = await EditorTool().execute(ed("view", p))
    assert r.is_error and "appears to be a binary file" in r.text
    r = await EditorTool().execute(ed("str_replace", p, old_str="PNG", new_str="x"))
    assert r.is_error and p.read_bytes().startswith(b"\x89PNG")


async def test_non_utf8_file_round_trips_its_bytes(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("café = 1\nnaïve\n".encode("latin-1"))
    e = EditorTool()
    r = await e.execute(ed("view", p))
    assert "café = 1" in r.text and "Latin-1" in r.text
    r = await e.execute(ed("str_replace", p, old_str="1", new_str="2"))
    assert not r.is_error
    assert p.read_bytes() == "café = 2\nnaïve\n".encode("latin-1")


async def test_tabs_and_crlf_are_preserved(tmp_path):
    p = tmp_path / "t.py"
    p.write_bytes(b"def f():\r\n\treturn 1\r\n")
    e = EditorTool()
    r = await e.execute(ed("view", p))
    assert "     2\t\treturn 1\r" in r.text  # the tab is shown as a tab (old_str can match it)
    await e.execute(ed("str_replace", p, old_str="\treturn 1", new_str="\treturn 2"))
    assert p.read_bytes() == b"def f():\r\n\treturn 2\r\n"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(ALL),
    st.sampled_from(["view", "create", "str_replace", "insert", "undo_edit", "nope", None, 3]),
    st.dictionaries(
        st.sampled_from(
            ["file_text", "view_range", "old_str", "new_str", "insert_line", "insert_text"]
        ),
        st.none()
        | st.integers(-3, 10)
        | st.text(max_size=6)
        | st.lists(st.integers(-3, 10) | st.text(max_size=2), max_size=3),
        max_size=4,
    ),
    st.sampled_from(["a.txt", "new.txt", "dir", "", "rel"]),
)
async def test_arbitrary_editor_input_never_fails_unexpectedly(
    tmp_path, version, command, params, name
):
    root = tmp_path / "fuzz"
    root.mkdir(exist_ok=True)
    (root / "a.txt").write_text("one\ntwo\nthree\n")
    (root / "dir").mkdir(exist_ok=True)
    (root / "new.txt").unlink(missing_ok=True)
    path = name if name in ("", "rel") else str(root / name)
    r = await EditorTool(version).execute(
        ToolCall("f", "x", {"command": command, "path": path, **params})
    )
    assert "failed unexpectedly" not in r.text, r.text


# --- hangs and clear errors (issue 7, defects 6 and 11) -------------------------------------
async def _within(coro, seconds: float = 5.0):
    import asyncio

    return await asyncio.wait_for(coro, seconds)


@pytest.mark.parametrize("command", ["view", "str_replace", "insert"])
async def test_devices_are_refused_not_read_forever(command):
    tool = EditorTool()
    kw = {"old_str": "a", "new_str": "b"} if command == "str_replace" else {}
    if command == "insert":
        kw = {"insert_line": 0, "insert_text": "x"}
    r = await _within(tool.execute(ed(command, "/dev/zero", **kw)))
    assert r.is_error and "not a regular file (a character device)" in r.text


async def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = await _within(EditorTool().execute(ed("view", fifo)))
    assert r.is_error and "named pipe (FIFO)" in r.text


async def test_view_reads_at_most_the_byte_cap(tmp_path):
    from deskpilot.computer_use.editor import MAX_FILE_BYTES

    big = tmp_path / "big.log"
    line = b"x" * 99 + b"\n"
    big.write_bytes(line * (MAX_FILE_BYTES // len(line) + 5000))
    tool = EditorTool()
    r = await _within(tool.execute(ed("view", big)))
    assert not r.is_error and f"Only the first {MAX_FILE_BYTES:,} bytes" in r.text
    n = MAX_FILE_BYTES // len(line)
    r = await _within(tool.execute(ed("view", big, view_range=[n, n])))
    assert not r.is_error and f"{n:6}\t" in r.text
    r = await _within(tool.execute(ed("view", big, view_range=[n + 1, n + 1])))
    assert r.is_error  # beyond what was read
    r = await _within(tool.execute(ed("str_replace", big, old_str="y", new_str="z")))
    assert r.is_error and "limit" in r.text and "sed" in r.text


async def test_a_nul_byte_in_the_path_says_what_is_wrong(tmp_path):
    r = await EditorTool().execute(ed("view", f"{tmp_path}/a\x00b"))
    assert r.is_error and "NUL byte" in r.text and "unexpectedly" not in r.text
    r = await EditorTool(allowed_roots=[tmp_path]).execute(ed("create", "/x\x00", file_text="t"))
    assert r.is_error and "NUL byte" in r.text


async def test_input_that_is_not_an_object_says_so():
    from deskpilot import BashTool

    r = await EditorTool().execute(ToolCall("t", "str_replace_based_edit_tool", ["view"]))  # type: ignore[arg-type]
    assert r.is_error and "must be a JSON object" in r.text
    async with BashTool() as bash:
        r = await bash.execute(ToolCall("t", "bash", "ls"))  # type: ignore[arg-type]
    assert r.is_error and "must be a JSON object" in r.text
