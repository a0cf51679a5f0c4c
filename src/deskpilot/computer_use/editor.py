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
``find`` with an unquoted path); ``allowed_roots`` confines every path (symlinks resolved);
the "multiple occurrences" error names lines for multi-line ``old_str`` too; ``insert`` at
the end of a file with a final newline does not add a blank line; only regular files are
read (a device such as ``/dev/zero`` or a FIFO is refused before it is opened, and the file is
opened non-blocking), and never more than :data:`MAX_FILE_BYTES`; a path with a NUL byte is
refused with a sentence saying so. Chosen behaviour: ``create`` makes missing parent
directories (the reference fails); it says so in its answer.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ToolInputError
from ..prompt import ToolCall, ToolResult
from .base import Executor
from .specs import editor_definition, editor_spec, versions

SNIPPET_LINES = 4
MAX_FILE_BYTES = 10 * 1024 * 1024
"""Most bytes the editor reads from one file (10 MiB). ``view`` of a longer file shows the
lines within the first 10 MiB with a note; ``str_replace``/``insert`` refuse it (they must
write the whole file back). Bounds memory and time whatever the path points at."""
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


@dataclass
class _Text:
    """A file's text and how to write it back."""

    text: str
    encoding: str = "utf-8"
    notes: list[str] = field(default_factory=list)


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


def _kind(mode: int) -> str:
    """What a non-regular file is, in words (for the refusal)."""
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


class EditorTool(Executor):
    """Executor of the Anthropic text-editor tool on the local file system.

    Args:
        version: ``text_editor_20241022``, ``text_editor_20250124`` (both with
            ``undo_edit``; name ``str_replace_editor``), ``text_editor_20250429`` or
            ``text_editor_20250728`` (name ``str_replace_based_edit_tool``; the latter takes
            ``insert_text`` and ``max_characters``).
        allowed_roots: directories every path must resolve into (symlinks followed); None
            allows any absolute path.
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
        path = self._validate_path(command, raw_path)
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

    def _validate_path(self, command: str, raw: str) -> Path:
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
        if self.allowed_roots is not None:
            resolved = path.resolve()
            if not any(resolved == r or resolved.is_relative_to(r) for r in self.allowed_roots):
                roots = ", ".join(str(r) for r in self.allowed_roots)
                raise ToolInputError(
                    f"The path {raw} is outside the directories this editor may use ({roots}); "
                    "use a path inside one of them."
                )
        if command == "create":
            if path.exists():
                raise ToolInputError(
                    f"File already exists at: {raw}. Cannot overwrite files using command `create`."
                )
            return path
        if not path.exists():
            raise ToolInputError(f"The path {raw} does not exist. Please provide a valid path.")
        if path.is_dir() and command != "view":
            raise ToolInputError(
                f"The path {raw} is a directory and only the `view` command can be used on "
                "directories"
            )
        return path

    # --- file I/O -------------------------------------------------------------------------

    @staticmethod
    def _read(path: Path, *, whole: bool = True) -> _Text:
        """Read a regular file, at most :data:`MAX_FILE_BYTES` (``whole``: refuse a longer
        one; else keep the whole lines within the cap and add a note)."""
        notes: list[str] = []
        try:
            # O_NONBLOCK: a FIFO swapped in after a check must not block the open.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise ToolInputError(
                f"Ran into {exc.strerror or exc} while trying to read {path}."
            ) from exc
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ToolInputError(
                    f"The path {path} is not a regular file ({_kind(info.st_mode)}); the editor "
                    "only reads regular files. Use the bash tool for devices, pipes and sockets "
                    "(e.g. `head -c 1000 PATH`)."
                )
            if whole and info.st_size > MAX_FILE_BYTES:
                raise ToolInputError(
                    f"The file {path} is {info.st_size:,} bytes, more than the editor's limit of "
                    f"{MAX_FILE_BYTES:,} bytes for an edit; edit it with the bash tool (e.g. "
                    "`sed -i`)."
                )
            try:
                data = f.read(MAX_FILE_BYTES + 1)
            except OSError as exc:
                raise ToolInputError(
                    f"Ran into {exc.strerror or exc} while trying to read {path}."
                ) from exc
        if len(data) > MAX_FILE_BYTES:
            if whole:
                raise ToolInputError(
                    f"The file {path} is longer than the editor's limit of {MAX_FILE_BYTES:,} "
                    "bytes for an edit; edit it with the bash tool (e.g. `sed -i`)."
                )
            data = data[: data.rfind(b"\n", 0, MAX_FILE_BYTES) + 1]
            notes.append(
                f"(Only the first {MAX_FILE_BYTES:,} bytes of this file were read; view the rest "
                "with the bash tool, e.g. `tail -n 50` or `sed -n 'START,ENDp'`.)"
            )
        if b"\x00" in data[:8192]:
            raise ToolInputError(
                f"The file {path} appears to be a binary file ({len(data)} bytes); the editor "
                "only views and edits text. Inspect it with the bash tool (e.g. `file`, "
                "`xxd | head`) instead."
            )
        try:
            return _Text(data.decode("utf-8"), notes=notes)
        except UnicodeDecodeError:
            return _Text(
                data.decode("latin-1"),
                "latin-1",
                [
                    *notes,
                    "(The file is not valid UTF-8; it was read as Latin-1 and is written back as Latin-1.)",
                ],
            )

    @staticmethod
    def _write(path: Path, text: str, encoding: str = "utf-8") -> None:
        try:
            data = text.encode(encoding)
        except UnicodeEncodeError as exc:
            raise ToolInputError(
                f"The new text cannot be written in the file's encoding ({encoding}); keep to "
                "characters that encoding can hold."
            ) from exc
        try:
            with open(path, "wb") as f:  # in place: keeps the file's mode, owner and links
                f.write(data)
        except OSError as exc:
            raise ToolInputError(
                f"Ran into {exc.strerror or exc} while trying to write {path}."
            ) from exc

    def _push(self, path: Path, old: str | None, encoding: str = "utf-8") -> None:
        self._history.setdefault(path, []).append((old, encoding))

    # --- commands -------------------------------------------------------------------------

    def _view(self, path: Path, view_range: Any) -> str:
        if path.is_dir():
            if view_range:
                raise ToolInputError(
                    "The `view_range` parameter is not allowed when `path` points to a directory."
                )
            return self._view_dir(path)
        content = self._read(path, whole=False)
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
            out = out[: max(cut + 1, header_end)] + TRUNCATED_NOTE
        if content.notes:
            out += "\n" + "\n".join(content.notes)
        return out

    def _view_dir(self, root: Path) -> str:
        entries: list[str] = [str(root)]
        truncated = False

        def visible(p: Path) -> bool:
            return not p.name.startswith(".")

        try:
            level1 = sorted((p for p in root.iterdir() if visible(p)), key=lambda p: p.name)
        except OSError as exc:
            raise ToolInputError(f"Ran into {exc.strerror or exc} while listing {root}.") from exc
        for p in level1:
            if len(entries) >= MAX_DIR_ENTRIES:
                truncated = True
                break
            entries.append(str(p) + ("/" if p.is_dir() else ""))
            if p.is_dir() and not p.is_symlink():
                try:
                    children = sorted((c for c in p.iterdir() if visible(c)), key=lambda c: c.name)
                except OSError:
                    continue
                for c in children:
                    if len(entries) >= MAX_DIR_ENTRIES:
                        truncated = True
                        break
                    entries.append(str(c) + ("/" if c.is_dir() else ""))
        out = (
            f"Here's the files and directories up to 2 levels deep in {root}, excluding hidden "
            "items:\n" + "\n".join(entries) + "\n"
        )
        if truncated:
            out += f"[Listing cut at {MAX_DIR_ENTRIES} entries; view a subdirectory for more.]\n"
        return out

    def _create(self, path: Path, file_text: Any) -> str:
        if file_text is None:
            raise ToolInputError("Parameter `file_text` is required for command: create")
        if not isinstance(file_text, str):
            raise ToolInputError("Parameter `file_text` must be a string.")
        made = not path.parent.exists()
        if made:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ToolInputError(
                    f"Could not create the directory {path.parent}: {exc.strerror or exc}."
                ) from exc
        self._write(path, file_text)
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
        new_str = new_str or ""
        content = self._read(path)
        text = content.text
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
                f"No replacement was performed. Multiple occurrences of old_str `{old_str}` in "
                f"lines {sorted(set(lines))}. Please ensure it is unique"
            )
        new_text = text.replace(old_str, new_str, 1)
        self._write(path, new_text, content.encoding)
        self._push(path, text, content.encoding)
        replaced_at = text.split(old_str)[0].count("\n")
        start = max(0, replaced_at - SNIPPET_LINES)
        end = replaced_at + SNIPPET_LINES + new_str.count("\n")
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
        content = self._read(path)
        text = content.text
        lines, final_newline = _split_lines(text)
        n = len(lines)
        if (
            isinstance(insert_line, bool)
            or not isinstance(insert_line, int)
            or not 0 <= insert_line <= n
        ):
            raise ToolInputError(
                f"Invalid `insert_line` parameter: {insert_line}. It should be within the range "
                f"of lines of the file: [0, {n}]"
            )
        new_lines = new_text_in.removesuffix("\n").split("\n")
        result_lines = lines[:insert_line] + new_lines + lines[insert_line:]
        new_text = "\n".join(result_lines)
        if final_newline or (n == 0 and new_text_in.endswith("\n")):
            new_text += "\n"
        self._write(path, new_text, content.encoding)
        self._push(path, text, content.encoding)
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
        old, encoding = history.pop()
        if old is None:  # the last edit created the file
            try:
                path.unlink()
            except OSError as exc:
                raise ToolInputError(f"Could not remove {path}: {exc.strerror or exc}.") from exc
            return f"Last edit to {path} undone successfully. The file was removed (it had been created by the editor)."
        self._write(path, old, encoding)
        return f"Last edit to {path} undone successfully. " + numbered(
            old.removesuffix("\n"), str(path)
        )


__all__ = ["MAX_VIEW_CHARS", "SNIPPET_LINES", "TRUNCATED_NOTE", "EditorTool", "numbered"]
