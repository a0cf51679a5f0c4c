"""EditorTool: the Anthropic text-editor tool (every version) on real files, reference formats.

Model-facing output follows Anthropic's reference implementation
(``computer-use-demo/computer_use_demo/tools/edit.py`` in
https://github.com/anthropics/claude-quickstarts): ``cat -n`` numbering ``f"{n:6}\\t{line}"``
after "Here's the result of running `cat -n` on {path}:", the same view_range rules, create /
str_replace / insert / undo_edit messages and ±4-line snippets. Versions and commands come
from the table :data:`deskpilot.computer_use.specs.TOOL_VERSIONS` (``undo_edit`` only in
``text_editor_20241022``/``20250124``; ``insert_text`` and ``max_characters`` in ``20250728``).

Fixed on purpose (the reference's bugs): tabs are never rewritten (no ``expandtabs``);
binary files are refused with a clear sentence; non-UTF-8 text is read as Latin-1 and written
back in the same encoding (bytes preserved); directories are listed in Python (no shell
``find`` with an unquoted path); the "multiple occurrences" error names lines for multi-line
``old_str`` too; ``insert`` at the end of a file with a final newline does not add a blank
line; a path with a NUL byte is refused with a sentence saying so.

Files are opened on descriptors (:mod:`deskpilot.computer_use.editor_files`): with
``allowed_roots``, every path is opened beneath its root by the kernel (``openat2`` with
``RESOLVE_BENEATH``), so a symlink swapped in by a concurrent process cannot lead out; a file
is opened ``O_PATH`` first and read or written only if it is a regular file (a device such as
``/dev/zero``, a FIFO or a socket is never really opened); files on ``/proc``, ``/sys`` and
other kernel-interface filesystems are refused (reading ``/proc/kmsg`` consumes it); edits
write back into the inode that was read; ``create`` never overwrites (``O_EXCL``). At most
:data:`MAX_FILE_BYTES` are read from a file. Chosen behaviour: ``create`` makes missing parent
directories (the reference fails); it says so in its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ToolInputError
from ..prompt import ToolCall, ToolResult
from .base import Executor
from .editor_files import (
    MAX_FILE_BYTES,
    FileOpener,
    FileText,
    OutsideRoots,
    encode_text,
    file_kind,
    pseudo_filesystem,
    read_text,
    write_all,
)
from .specs import editor_definition, editor_spec, versions

SNIPPET_LINES = 4
MAX_VIEW_CHARS = 16_000
"""Default cap of ``view`` output characters (the reference's ``MAX_RESPONSE_LEN``)."""
MAX_DIR_ENTRIES = 1_000

TRUNCATED_NOTE = (
    "<response clipped><NOTE>To save on context only part of this file has been shown to you. "
    "You should retry this tool after you have searched inside the file with `grep -n` in "
    "order to find the line numbers of what you are looking for, then view that part with "
    "`view_range`.</NOTE>"
)

_PARAMS = {"command", "path", "file_text", "view_range", "old_str", "new_str", "insert_line"}


def numbered(text: str, descriptor: str, start_line: int = 1) -> str:
    """The reference's ``cat -n`` block: header line, ``f"{n:6}\\t{line}"`` lines, final newline."""
    lines = text.split("\n")
    body = "\n".join(f"{i + start_line:6}\t{line}" for i, line in enumerate(lines))
    return f"Here's the result of running `cat -n` on {descriptor}:\n{body}\n"


def _split_lines(text: str) -> tuple[list[str], bool]:
    """(lines, had a final newline); ``""`` is zero lines."""
    if text == "":
        return [], False
    final = text.endswith("\n")
    return (text[:-1] if final else text).split("\n"), final


class EditorTool(Executor):
    """Executor of the Anthropic text-editor tool on the local file system.

    Args:
        version: ``text_editor_20241022``, ``text_editor_20250124`` (both with
            ``undo_edit``; name ``str_replace_editor``), ``text_editor_20250429`` or
            ``text_editor_20250728`` (name ``str_replace_based_edit_tool``; the latter takes
            ``insert_text`` and ``max_characters``).
        allowed_roots: directories every path must stay inside, checked by the kernel as
            the file is opened (``..`` and symlinks may not lead out; an absolute symlink is
            refused even when it points inside); None allows any absolute path.
        max_characters: cap on the characters of a ``view`` answer's numbered lines (sent in
            the 20250728 definition); default 16,000 like the reference. The answer is cut at
            the last whole line within the cap and ends with a note.

    Commands: ``view`` (file or directory, ``view_range`` [start, end] 1-based inclusive,
    end -1 = to the end), ``create`` (``file_text``), ``str_replace`` (``old_str`` must occur
    exactly once, ``new_str`` defaults to ""), ``insert`` (after ``insert_line``, 0 = top),
    ``undo_edit`` where the version has it. Every failure is an is_error result.

    Raises:
        ConfigError: an unknown version or a bad ``max_characters``/``allowed_roots``.
    """

    kind = "editor"

    def __init__(
        self,
        version: str = "text_editor_20250728",
        *,
        allowed_roots: Iterable[str | os.PathLike[str]] | None = None,
        max_characters: int | None = None,
    ) -> None:
        if version not in versions("editor"):
            raise ConfigError(
                f"Unknown text editor version {version!r}; use one of {versions('editor')}."
            )
        if max_characters is not None and (
            isinstance(max_characters, bool)
            or not isinstance(max_characters, int)
            or max_characters < 1
        ):
            raise ConfigError(f"max_characters must be a positive int, not {max_characters!r}.")
        self._use_version(version)
        self.max_characters = max_characters
        self.allowed_roots: tuple[Path, ...] | None = None
        if allowed_roots is not None:
            roots = tuple(Path(r).expanduser().resolve() for r in allowed_roots)
            if not roots:
                raise ConfigError("allowed_roots is empty; pass None to allow every path.")
            self.allowed_roots = roots
        self._files = FileOpener(self.allowed_roots)
        self._history: dict[Path, list[tuple[str | None, str]]] = {}

    def _use_version(self, version: str) -> None:
        self.version, self.spec = version, editor_spec(version)
        self.name = self.spec.name

    @property
    def definition(self) -> dict[str, Any]:
        """``{"type": version, "name": ...}`` (+ ``max_characters`` on 20250728)."""
        return editor_definition(self.version, max_characters=self.max_characters)

    @property
    def view_limit(self) -> int:
        return self.max_characters or MAX_VIEW_CHARS

    # --- dispatch -------------------------------------------------------------------------

    async def _execute(self, call: ToolCall) -> ToolResult:
        args = call.arguments
        if not isinstance(args, dict):
            raise ToolInputError(
                f"The {self.name} tool's input must be a JSON object such as "
                f'{{"command": "view", "path": "/tmp"}}, not {type(args).__name__}.'
            )
        text = await asyncio.to_thread(self._run, args)
        return ToolResult(call.id, text)

    def _run(self, args: dict[str, Any]) -> str:
        command = args.get("command")
        commands = self.spec.commands
        if command not in commands:
            raise ToolInputError(
                f"Unrecognized command {command}. The allowed commands for the {self.name} "
                f"tool are: {', '.join(commands)}"
            )
        allowed = _PARAMS | {"insert_text"}
        unknown = sorted(k for k in args if k not in allowed)
        if unknown:
            raise ToolInputError(
                f"Unexpected parameter(s) {', '.join(unknown)} for {self.name}; it takes: "
                f"{', '.join(sorted(allowed))}."
            )
        raw_path = args.get("path")
        if not isinstance(raw_path, str) or not raw_path:
            raise ToolInputError(f"Parameter `path` is required for command: {command}")
        path = self._validate_path(raw_path)
        if command == "view":
            return self._view(path, args.get("view_range"))
        if command == "create":
            return self._create(path, args.get("file_text"))
        if command == "str_replace":
            return self._str_replace(path, args.get("old_str"), args.get("new_str"))
        if command == "insert":
            name = self.spec.insert_param
            other = "new_str" if name == "insert_text" else "insert_text"
            value = args.get(name)
            if value is None:
                value = args.get(other)  # accept the other spelling (SDK issue #1155)
            if value is None:
                raise ToolInputError(f"Parameter `{name}` is required for command: insert")
            return self._insert(path, args.get("insert_line"), value, name)
        return self._undo(path)

    # --- paths ----------------------------------------------------------------------------

    def _validate_path(self, raw: str) -> Path:
        if "\x00" in raw:
            raise ToolInputError(
                f"The path {raw!r} contains a NUL byte (\\x00), which no file name can hold; "
                "send the path as plain text without control characters."
            )
        path = Path(raw)
        if not path.is_absolute():
            base = self.allowed_roots[0] if self.allowed_roots else Path.cwd()
            raise ToolInputError(
                f"The path {raw} is not an absolute path, it should start with `/`. Maybe you "
                f"meant {base / raw}?"
            )
        try:
            self._files.locate(path)
        except OutsideRoots:
            raise ToolInputError(self._outside(path)) from None
        return path

    def _outside(self, path: Path) -> str:
        roots = ", ".join(str(r) for r in self.allowed_roots or ())
        return (
            f"The path {path} is outside the directories this editor may use ({roots}), or "
            "leads out of them through `..` or a symlink; use a path inside one of them."
        )

    @contextlib.contextmanager
    def _opened(self, path: Path, command: str) -> Iterator[tuple[int, os.stat_result]]:
        """An ``O_PATH`` fd of an existing ``path`` and its ``fstat`` (see
        :mod:`deskpilot.computer_use.editor_files`); kernel interfaces are refused."""
        try:
            fd = self._files.open_path(path)
        except OutsideRoots:
            raise ToolInputError(self._outside(path)) from None
        except (FileNotFoundError, NotADirectoryError):
            raise ToolInputError(
                f"The path {path} does not exist. Please provide a valid path."
            ) from None
        except OSError as exc:
            raise ToolInputError(
                f"Ran into {exc.strerror or exc} while trying to open {path}."
            ) from exc
        try:
            info = os.fstat(fd)
            kind = pseudo_filesystem(fd)
            if kind is not None:
                raise ToolInputError(
                    f"The path {path} is on {kind}, whose files are live kernel interfaces "
                    "(reading one can consume it, e.g. /proc/kmsg), not text files; the editor "
                    "does not open them. Use the bash tool instead (e.g. `head -c 2000 PATH`)."
                )
            if stat.S_ISDIR(info.st_mode) and command != "view":
                raise ToolInputError(
                    f"The path {path} is a directory and only the `view` command can be used "
                    "on directories"
                )
            if not stat.S_ISDIR(info.st_mode) and not stat.S_ISREG(info.st_mode):
                raise ToolInputError(
                    f"The path {path} is not a regular file ({file_kind(info.st_mode)}); the "
                    "editor only reads regular files. Use the bash tool for devices, pipes and "
                    "sockets (e.g. `head -c 1000 PATH`)."
                )
            yield fd, info
        finally:
            os.close(fd)

    # --- file I/O -------------------------------------------------------------------------

    @staticmethod
    def _reopen(pathfd: int, path: Path, flags: int) -> int:
        try:
            return FileOpener.reopen(pathfd, flags)
        except OSError as exc:
            raise ToolInputError(
                f"Ran into {exc.strerror or exc} while trying to open {path}."
            ) from exc

    def _write_back(self, pathfd: int, path: Path, text: str, encoding: str) -> None:
        """Write ``text`` into the inode of ``pathfd`` (reopened for writing)."""
        data = encode_text(text, encoding)
        fd = self._reopen(pathfd, path, os.O_WRONLY)
        try:
            write_all(fd, path, data)
        finally:
            os.close(fd)

    def _read_path(self, pathfd: int, path: Path, size: int, *, whole: bool = True) -> FileText:
        fd = self._reopen(pathfd, path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            return read_text(fd, path, size, whole=whole)
        finally:
            os.close(fd)

    def _push(self, path: Path, old: str | None, encoding: str = "utf-8") -> None:
        self._history.setdefault(path, []).append((old, encoding))

    # --- commands -------------------------------------------------------------------------

    def _view(self, path: Path, view_range: Any) -> str:
        with self._opened(path, "view") as (pathfd, info):
            if stat.S_ISDIR(info.st_mode):
                if view_range:
                    raise ToolInputError(
                        "The `view_range` parameter is not allowed when `path` points to a "
                        "directory."
                    )
                return self._view_dir(path, pathfd)
            content = self._read_path(pathfd, path, info.st_size, whole=False)
        text = content.text
        start = 1
        if view_range:
            if not (
                isinstance(view_range, list | tuple)
                and len(view_range) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in view_range)
            ):
                raise ToolInputError("Invalid `view_range`. It should be a list of two integers.")
            lines, _ = _split_lines(text)
            n = len(lines)
            start, end = view_range
            if start < 1 or start > n:
                raise ToolInputError(
                    f"Invalid `view_range`: {list(view_range)}. Its first element `{start}` "
                    f"should be within the range of lines of the file: [1, {n}]"
                )
            if end > n:
                raise ToolInputError(
                    f"Invalid `view_range`: {list(view_range)}. Its second element `{end}` "
                    f"should be smaller than the number of lines in the file: `{n}`"
                )
            if end != -1 and end < start:
                raise ToolInputError(
                    f"Invalid `view_range`: {list(view_range)}. Its second element `{end}` "
                    f"should be larger or equal than its first `{start}`"
                )
            text = "\n".join(lines[start - 1 :] if end == -1 else lines[start - 1 : end])
        elif text.endswith("\n"):
            text = text[:-1]
        out = numbered(text, str(path), start)
        if len(out) > self.view_limit:  # cut at the last whole line within the cap
            cut = out.rfind("\n", 0, self.view_limit)
            header_end = out.find("\n") + 1
            if cut + 1 > header_end:
                out = out[: cut + 1] + TRUNCATED_NOTE
            else:  # the first line shown is longer than the cap: show its start
                out = (
                    out[: self.view_limit]
                    + f"\n[line {start} is longer than {self.view_limit:,} characters and was cut]\n"
                    + TRUNCATED_NOTE
                )
        if content.notes:
            out += "\n" + "\n".join(content.notes)
        return out

    def _view_dir(self, root: Path, pathfd: int) -> str:
        """Two levels of ``root`` (opened as ``pathfd``), hidden entries left out; the second
        level is listed through the first level's fds, never through a symlink."""
        entries: list[str] = [str(root)]
        truncated = False

        def listing(fd: int) -> list[os.DirEntry[str]]:
            with os.scandir(fd) as it:
                return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)

        def is_dir(entry: os.DirEntry[str]) -> bool:
            try:
                return entry.is_dir()
            except OSError:
                return False

        try:
            dirfd = self._reopen(pathfd, root, os.O_RDONLY | os.O_DIRECTORY)
        except ToolInputError as exc:
            raise ToolInputError(str(exc).replace("open", "list", 1)) from None
        try:
            try:
                level1 = listing(dirfd)
            except OSError as exc:
                raise ToolInputError(
                    f"Ran into {exc.strerror or exc} while listing {root}."
                ) from exc
            for entry in level1:
                if len(entries) >= MAX_DIR_ENTRIES:
                    truncated = True
                    break
                sub = root / entry.name
                entries.append(str(sub) + ("/" if is_dir(entry) else ""))
                if not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    subfd = os.open(
                        entry.name,
                        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                        dir_fd=dirfd,
                    )
                except OSError:
                    continue
                try:
                    children = listing(subfd)
                except OSError:
                    children = []
                finally:
                    os.close(subfd)
                for child in children:
                    if len(entries) >= MAX_DIR_ENTRIES:
                        truncated = True
                        break
                    entries.append(str(sub / child.name) + ("/" if is_dir(child) else ""))
        finally:
            os.close(dirfd)
        out = (
            f"Here's the files and directories up to 2 levels deep in {root}, excluding hidden "
            "items:\n" + "\n".join(entries) + "\n"
        )
        if truncated:
            out += f"[Listing cut at {MAX_DIR_ENTRIES} entries; view a subdirectory for more.]\n"
        return out

    def _edit(self, path: Path, command: str, change: Callable[[str], str]) -> tuple[str, str]:
        """Read ``path``, apply ``change`` to its text and write the result into the same
        inode; returns (old text, new text). The edit is pushed on the undo history."""
        with self._opened(path, command) as (pathfd, info):
            content = self._read_path(pathfd, path, info.st_size)
            new_text = change(content.text)
            self._write_back(pathfd, path, new_text, content.encoding)
        self._push(path, content.text, content.encoding)
        return content.text, new_text

    def _create(self, path: Path, file_text: Any) -> str:
        if file_text is None:
            raise ToolInputError("Parameter `file_text` is required for command: create")
        if not isinstance(file_text, str):
            raise ToolInputError("Parameter `file_text` must be a string.")
        data = encode_text(file_text, "utf-8")
        try:
            fd, made = self._files.create(path)
        except OutsideRoots:
            raise ToolInputError(self._outside(path)) from None
        except FileExistsError:
            raise ToolInputError(
                f"File already exists at: {path}. Cannot overwrite files using command `create`."
            ) from None
        except PermissionError as exc:
            raise ToolInputError(
                f"Could not create {path}: {exc.strerror or exc}"
                + (" (a kernel interface, not a text file)." if "on " in str(exc.strerror) else ".")
            ) from exc
        except OSError as exc:
            raise ToolInputError(
                f"Could not create {path} (or its parent directories): {exc.strerror or exc}."
            ) from exc
        try:
            write_all(fd, path, data)
        finally:
            os.close(fd)
        self._push(path, None)
        extra = " (missing parent directories were created)" if made else ""
        return f"File created successfully at: {path}{extra}"

    def _str_replace(self, path: Path, old_str: Any, new_str: Any) -> str:
        if old_str is None:
            raise ToolInputError("Parameter `old_str` is required for command: str_replace")
        if not isinstance(old_str, str) or (new_str is not None and not isinstance(new_str, str)):
            raise ToolInputError("Parameters `old_str` and `new_str` must be strings.")
        if old_str == "":
            raise ToolInputError(
                "Parameter `old_str` must not be empty; give the exact text to replace "
                "(use `insert` to add text)."
            )
        replacement = new_str or ""

        def change(text: str) -> str:
            count = text.count(old_str)
            if count == 0:
                raise ToolInputError(
                    f"No replacement was performed, old_str `{old_str}` did not appear verbatim in {path}."
                )
            if count > 1:
                lines, pos = [], text.find(old_str)
                while pos >= 0:
                    lines.append(text.count("\n", 0, pos) + 1)
                    pos = text.find(old_str, pos + 1)
                raise ToolInputError(
                    f"No replacement was performed. Multiple occurrences of old_str `{old_str}` "
                    f"in lines {sorted(set(lines))}. Please ensure it is unique"
                )
            return text.replace(old_str, replacement, 1)

        text, new_text = self._edit(path, "str_replace", change)
        replaced_at = text.split(old_str)[0].count("\n")
        start = max(0, replaced_at - SNIPPET_LINES)
        end = replaced_at + SNIPPET_LINES + replacement.count("\n")
        snippet = "\n".join(new_text.split("\n")[start : end + 1])
        return (
            f"The file {path} has been edited. "
            + numbered(snippet, f"a snippet of {path}", start + 1)
            + "Review the changes and make sure they are as expected. Edit the file again if "
            "necessary."
        )

    def _insert(self, path: Path, insert_line: Any, new_text_in: Any, name: str) -> str:
        if insert_line is None:
            raise ToolInputError("Parameter `insert_line` is required for command: insert")
        if not isinstance(new_text_in, str):
            raise ToolInputError(f"Parameter `{name}` must be a string.")
        new_lines = new_text_in.removesuffix("\n").split("\n")

        def change(text: str) -> str:
            lines, final_newline = _split_lines(text)
            n = len(lines)
            if (
                isinstance(insert_line, bool)
                or not isinstance(insert_line, int)
                or not 0 <= insert_line <= n
            ):
                raise ToolInputError(
                    f"Invalid `insert_line` parameter: {insert_line}. It should be within the "
                    f"range of lines of the file: [0, {n}]"
                )
            new_text = "\n".join(lines[:insert_line] + new_lines + lines[insert_line:])
            if final_newline or (n == 0 and new_text_in.endswith("\n")):
                new_text += "\n"
            return new_text

        _, new_text = self._edit(path, "insert", change)
        result_lines, _ = _split_lines(new_text)
        start = max(0, insert_line - SNIPPET_LINES)
        snippet = "\n".join(result_lines[start : insert_line + len(new_lines) + SNIPPET_LINES])
        return (
            f"The file {path} has been edited. "
            + numbered(snippet, "a snippet of the edited file", start + 1)
            + "Review the changes and make sure they are as expected (correct indentation, no "
            "duplicate lines, etc). Edit the file again if necessary."
        )

    def _undo(self, path: Path) -> str:
        history = self._history.get(path)
        if not history:
            raise ToolInputError(f"No edit history found for {path}.")
        old, encoding = history[-1]
        if old is None:  # the last edit created the file
            with self._opened(path, "undo_edit"):
                pass  # it is still a regular file inside the roots
            try:
                self._files.unlink(path)
            except OutsideRoots:
                raise ToolInputError(self._outside(path)) from None
            except OSError as exc:
                raise ToolInputError(f"Could not remove {path}: {exc.strerror or exc}.") from exc
            history.pop()
            return f"Last edit to {path} undone successfully. The file was removed (it had been created by the editor)."
        with self._opened(path, "undo_edit") as (pathfd, _):
            self._write_back(pathfd, path, old, encoding)
        history.pop()
        return f"Last edit to {path} undone successfully. " + numbered(
            old.removesuffix("\n"), str(path)
        )


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_VIEW_CHARS",
    "SNIPPET_LINES",
    "TRUNCATED_NOTE",
    "EditorTool",
    "numbered",
]
