"""How the editor opens files: on file descriptors, beneath its roots, never a kernel interface.

Rules for :class:`deskpilot.computer_use.editor.EditorTool`, each decided on an opened file
descriptor, never on a path checked earlier (a concurrent process, e.g. a job of the bash
tool, could swap a directory for a symlink between a check and a use):

* **Confinement.** With ``allowed_roots``, a path is opened *relative to the root's
  directory fd* with ``openat2(2)`` and ``RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS``
  (https://man7.org/linux/man-pages/man2/openat2.2.html): the kernel refuses any
  resolution that leaves the root, through ``..``, an absolute symlink or a symlink that
  points outside, in the same step that opens the file. Relative symlinks that stay inside
  the root are followed. Where ``openat2`` is missing (kernels before 5.6, some seccomp
  profiles), the path is walked one component at a time with ``O_NOFOLLOW`` and ``..`` and
  every symlink are refused.
* **No side effects of opening.** A file is first opened with ``O_PATH`` (which reads
  nothing and runs no driver code), checked with ``fstat`` (regular file or directory), and
  only then reopened for reading or writing through ``/proc/self/fd/N``, which reopens
  exactly that inode. So ``/dev/watchdog``, a FIFO or a tape device swapped in by a
  concurrent process is never opened for real.
* **No kernel interfaces.** :func:`pseudo_filesystem` names the filesystem of an fd when its
  files are live kernel interfaces rather than stored text: ``/proc`` (``/proc/kmsg`` is
  consumed by reading it; ``/proc/self`` is deskpilot's own process, the editor running
  inside it), ``/sys``, debugfs, tracefs, cgroup, bpf and a few more; the editor neither
  reads nor writes them. The type comes from ``fstatfs(2)``
  (https://man7.org/linux/man-pages/man2/statfs.2.html lists the magic numbers).
* **create never overwrites**: ``O_CREAT | O_EXCL | O_NOFOLLOW`` in the parent's fd.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..desktop.host_files import PSEUDO_FILESYSTEMS, pseudo_filesystem
from ..errors import ToolInputError

__all__ = [
    "MAX_FILE_BYTES",
    "PSEUDO_FILESYSTEMS",
    "FileOpener",
    "FileText",
    "OutsideRoots",
    "encode_text",
    "file_kind",
    "pseudo_filesystem",
    "read_text",
    "write_all",
]

_O_PATH = getattr(os, "O_PATH", 0)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_SYS_OPENAT2 = 437  # the same number on every architecture that has it (x86_64, arm64, ...)

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


class OutsideRoots(OSError):
    """A path that is not, or does not stay, inside the editor's roots."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_openat2_works: bool | None = None if sys.platform.startswith("linux") else False


def _openat2(dirfd: int, rel: str, flags: int, mode: int) -> int | None:
    """``openat2(dirfd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)``, or None where
    the system call is not available (then the caller walks the path itself)."""
    global _openat2_works
    if _openat2_works is False:
        return None
    how = _OpenHow(
        flags | os.O_CLOEXEC,
        mode if flags & os.O_CREAT else 0,
        _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS,
    )
    libc = _c()
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(rel)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd >= 0:
        _openat2_works = True
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM) and _openat2_works is None:
        _openat2_works = False  # not on this kernel, or filtered out (seccomp)
        return None
    if err == errno.EXDEV:
        raise OutsideRoots(err, os.strerror(err), rel)
    raise OSError(err, os.strerror(err), rel)


class FileOpener:
    """Opens the editor's paths (see the module docstring).

    Args:
        roots: resolved directories every path must stay inside, or None (any path).
    """

    def __init__(self, roots: tuple[Path, ...] | None) -> None:
        self.roots = roots

    # --- where a path is -------------------------------------------------------------------
    def locate(self, path: Path) -> tuple[Path, tuple[str, ...]]:
        """(root, components below it) of absolute ``path``: the root it names literally,
        else the one its resolved form lies in (a root reached through a symlinked alias).

        Raises:
            OutsideRoots: it is under none of the roots.
        """
        if self.roots is None:
            return Path("/"), path.parts[1:]
        for candidate in (path, path.resolve()):
            for root in self.roots:
                if candidate.parts[: len(root.parts)] == root.parts:
                    return root, candidate.parts[len(root.parts) :]
        raise OutsideRoots(errno.EXDEV, "outside the allowed roots", str(path))

    @contextlib.contextmanager
    def _root_fd(self, root: Path) -> Iterator[int]:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    def _open_below(
        self, rootfd: int, parts: tuple[str, ...], flags: int, mode: int = 0o666
    ) -> int:
        """Open ``parts`` below ``rootfd`` with ``flags`` (confined when there are roots)."""
        rel = "/".join(parts) or "."
        if self.roots is None:
            return os.open(rel, flags | os.O_CLOEXEC, mode, dir_fd=rootfd)
        fd = _openat2(rootfd, rel, flags, mode)
        if fd is not None:
            return fd
        return self._walk(rootfd, parts, flags, mode)

    @staticmethod
    def _walk(rootfd: int, parts: tuple[str, ...], flags: int, mode: int) -> int:
        """Without openat2: one component at a time, no ``..``, no symlink followed."""
        if not parts:
            return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=rootfd)
        if ".." in parts:
            raise OutsideRoots(errno.EXDEV, "'..' is not followed", "/".join(parts))
        cur = os.dup(rootfd)
        try:
            for name in parts[:-1]:
                if name in ("", "."):
                    continue
                flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    nxt = os.open(name, flags_dir, dir_fd=cur)
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        raise OutsideRoots(errno.ELOOP, "symlinks are not followed", name) from exc
                    raise
                os.close(cur)
                cur = nxt
            try:
                fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=cur)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise OutsideRoots(errno.ELOOP, "symlinks are not followed", parts[-1]) from exc
                raise
            if stat.S_ISLNK(os.fstat(fd).st_mode):  # O_PATH | O_NOFOLLOW opens the link itself
                os.close(fd)
                raise OutsideRoots(errno.ELOOP, "symlinks are not followed", parts[-1])
            return fd
        finally:
            os.close(cur)

    # --- the editor's operations ------------------------------------------------------------
    def open_path(self, path: Path) -> int:
        """An ``O_PATH`` fd of ``path`` (reads nothing, opens no device); the caller closes it.

        Raises:
            OutsideRoots: the path leaves the roots.
            OSError: it does not exist, or another reason.
        """
        root, parts = self.locate(path)
        with self._root_fd(root) as rootfd:
            return self._open_below(rootfd, parts, _O_PATH or os.O_RDONLY | os.O_NONBLOCK)

    @staticmethod
    def reopen(pathfd: int, flags: int) -> int:
        """Reopen the inode of ``pathfd`` (from :meth:`open_path`) with ``flags``, through
        ``/proc/self/fd`` (the same inode, whatever happened to its path since)."""
        return os.open(f"/proc/self/fd/{pathfd}", flags | os.O_CLOEXEC | os.O_NOCTTY)

    def create(self, path: Path) -> tuple[int, bool]:
        """Create the new file ``path`` for writing (missing parent directories made).

        Returns:
            (fd opened ``O_WRONLY``, whether parent directories were made).

        Raises:
            FileExistsError: something exists there already.
            OutsideRoots / OSError: as :meth:`open_path`; ``IsADirectoryError`` for a
            parent that is a file.
        """
        root, parts = self.locate(path)
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        made = False
        with self._root_fd(root) as rootfd:
            for i in range(len(parts) - 1):
                try:
                    os.close(self._open_below(rootfd, parts[: i + 1], os.O_RDONLY | os.O_DIRECTORY))
                except FileNotFoundError:
                    parent = self._open_below(rootfd, parts[:i], os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        os.mkdir(parts[i], 0o777, dir_fd=parent)
                    except FileExistsError:
                        pass  # made meanwhile; opened again below
                    finally:
                        os.close(parent)
                    made = True
            parent = self._open_below(rootfd, parts[:-1], os.O_RDONLY | os.O_DIRECTORY)
            try:
                kind = pseudo_filesystem(parent)
                if kind is not None:
                    raise PermissionError(errno.EPERM, f"on {kind}", str(path))
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                return os.open(parts[-1], flags, 0o666, dir_fd=parent), made
            finally:
                os.close(parent)

    def unlink(self, path: Path) -> None:
        """Remove the file ``path`` (in its parent's fd; a directory is not removed)."""
        root, parts = self.locate(path)
        with self._root_fd(root) as rootfd:
            parent = self._open_below(rootfd, parts[:-1], os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.unlink(parts[-1], dir_fd=parent)
            finally:
                os.close(parent)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (for a refusal)."""
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


# --- reading and writing text --------------------------------------------------------------
MAX_FILE_BYTES = 10 * 1024 * 1024
"""Most bytes the editor reads from one file (10 MiB). ``view`` of a longer file shows the
lines within the first 10 MiB with a note; ``str_replace``/``insert`` refuse it (they must
write the whole file back). Bounds memory and time whatever the path points at."""


@dataclass
class FileText:
    """A file's text, how to write it back (its encoding) and notes for the model."""

    text: str
    encoding: str = "utf-8"
    notes: list[str] = field(default_factory=list)


def read_text(fd: int, path: Path, size: int, *, whole: bool = True) -> FileText:
    """Read regular file ``fd`` from its start, at most :data:`MAX_FILE_BYTES`
    (``whole``: refuse a longer one; else keep the whole lines within the cap, or the
    start of a first line longer than the cap, and add a note)."""
    notes: list[str] = []
    if whole and size > MAX_FILE_BYTES:
        raise ToolInputError(
            f"The file {path} is {size:,} bytes, more than the editor's limit of "
            f"{MAX_FILE_BYTES:,} bytes for an edit; edit it with the bash tool (e.g. "
            "`sed -i`)."
        )
    chunks: list[bytes] = []
    got = 0
    try:
        while got <= MAX_FILE_BYTES:
            chunk = os.pread(fd, MAX_FILE_BYTES + 1 - got, got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise ToolInputError(
            f"Ran into {exc.strerror or exc} while trying to read {path}."
        ) from exc
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:
        if whole:
            raise ToolInputError(
                f"The file {path} is longer than the editor's limit of {MAX_FILE_BYTES:,} "
                "bytes for an edit; edit it with the bash tool (e.g. `sed -i`)."
            )
        end = data.rfind(b"\n", 0, MAX_FILE_BYTES) + 1
        if end == 0:  # the first line alone is longer than the cap: keep its start
            end = MAX_FILE_BYTES
            while end > MAX_FILE_BYTES - 3 and data[end] & 0xC0 == 0x80:
                end -= 1  # not inside a UTF-8 character
            notes.append(
                f"(The file's first line is longer than the editor's limit of "
                f"{MAX_FILE_BYTES:,} bytes, so it was cut; view the file with the bash "
                "tool, e.g. `head -c 2000` or `fold -w 200 | head`.)"
            )
        else:
            notes.append(
                f"(Only the first {MAX_FILE_BYTES:,} bytes of this file were read; view the "
                "rest with the bash tool, e.g. `tail -n 50` or `sed -n 'START,ENDp'`.)"
            )
        data = data[:end]
    if b"\x00" in data[:8192]:
        raise ToolInputError(
            f"The file {path} appears to be a binary file ({len(data)} bytes); the editor "
            "only views and edits text. Inspect it with the bash tool (e.g. `file`, "
            "`xxd | head`) instead."
        )
    try:
        return FileText(data.decode("utf-8"), notes=notes)
    except UnicodeDecodeError:
        return FileText(
            data.decode("latin-1"),
            "latin-1",
            [
                *notes,
                "(The file is not valid UTF-8; it was read as Latin-1 and is written back as Latin-1.)",
            ],
        )


def encode_text(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ToolInputError(
            f"The new text cannot be written in the file's encoding ({encoding}); keep to "
            "characters that encoding can hold."
        ) from exc


def write_all(fd: int, path: Path, data: bytes) -> None:
    """Replace the contents of open file ``fd`` (in place: keeps its mode, owner, links)."""
    try:
        os.ftruncate(fd, 0)
        view = memoryview(data)
        written = 0
        while written < len(data):
            written += os.pwrite(fd, view[written:], written)
    except OSError as exc:
        raise ToolInputError(
            f"Ran into {exc.strerror or exc} while trying to write {path}."
        ) from exc
