"""Writing files into a run directory without following a planted symlink.

A run directory is untrusted: whoever can write into it (a crafted run handed to
``deskpilot report``, or a prompt-injected agent that runs shell commands while its run is
recorded) can plant a symlink named like a file deskpilot is about to write
(``report.html.tmp``, ``run.gif``, ``screenshots/0003-0.png`` ...) and have deskpilot
overwrite the symlink's target (``~/.bashrc``). Every write into a run directory therefore
goes through this module:

- :func:`replace_file` writes a new file under a random temporary name created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a name that already exists, symlink or not, is never
  opened), then renames it over the final name with ``os.replace`` (rename(2) replaces a
  symlink at the destination; it never follows it:
  https://man7.org/linux/man-pages/man2/rename.2.html);
- :func:`append_line` appends with ``O_APPEND | O_NOFOLLOW`` (a symlink is refused with
  ``ELOOP``, https://man7.org/linux/man-pages/man2/open.2.html);
- subdirectories (``screenshots/``) are opened with ``O_DIRECTORY | O_NOFOLLOW`` and the file
  is created relative to that directory's descriptor, so swapping the directory for a symlink
  between two writes does not redirect them.

Screens can hold secrets, so run directories are created ``0700`` (:data:`DIR_MODE`) and files
``0600`` (:data:`FILE_MODE`): readable by their owner only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["DIR_MODE", "FILE_MODE", "append_line", "make_private_dir", "replace_file"]

DIR_MODE = 0o700
"""Mode of the directories deskpilot creates for a run (owner only)."""
FILE_MODE = 0o600
"""Mode of the files deskpilot writes into a run directory (owner only)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def make_private_dir(path: Path, *, exist_ok: bool = False) -> None:
    """Create ``path`` (mode :data:`DIR_MODE`; missing parents get the default mode).

    Raises:
        FileExistsError: it exists and ``exist_ok`` is False, or it exists as a symlink or
            a non-directory (a planted symlink is never accepted as the directory).
    """
    try:
        path.mkdir(mode=DIR_MODE)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not exist_ok or path.is_symlink() or not path.is_dir():
            raise


@contextlib.contextmanager
def _dir_fd(directory: Path, subdir: str | None) -> Iterator[int]:
    """A descriptor of ``directory`` (or of its child ``subdir``, opened without following a
    symlink), closed on exit."""
    fd = os.open(directory, _DIR_FLAGS)
    try:
        if subdir is not None:
            child = os.open(subdir, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def replace_file(
    directory: str | os.PathLike[str],
    name: str,
    data: bytes | Callable[[BinaryIO], object],
    *,
    subdir: str | None = None,
    fsync: bool = False,
) -> Path:
    """Write ``directory/[subdir/]name`` as a new file (mode :data:`FILE_MODE`) that
    atomically replaces whatever had that name, never writing through a symlink.

    Args:
        directory: the run directory (a symlink in its own path is followed: it is the
            caller's choice).
        name: a plain file name (no ``/``).
        data: the bytes, or ``write(fileobj)`` that writes them (e.g. Pillow's ``save``).
        subdir: a subdirectory of ``directory`` (``"screenshots"``); refused when it is a
            symlink.
        fsync: flush the file to disk before the rename.

    Returns:
        The path written.

    Raises:
        ValueError: ``name`` is not a plain file name.
        OSError: the write failed (``ELOOP``/``ENOTDIR``: ``subdir`` is a symlink or not a
            directory; ``EISDIR``: ``name`` is a directory); the temporary file is removed.
    """
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{name!r} is not a plain file name.")
    base = Path(directory)
    with _dir_fd(base, subdir) as dfd:
        while True:
            tmp = f".{name[:80]}.{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(tmp, _NEW_FLAGS, FILE_MODE, dir_fd=dfd)
                break
            except FileExistsError:  # 64 random bits: practically never
                continue
        try:
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, bytes | bytearray | memoryview):
                    fh.write(data)
                else:
                    data(fh)
                fh.flush()
                if fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
    return base / subdir / name if subdir is not None else base / name


def append_line(
    directory: str | os.PathLike[str], name: str, data: bytes, *, fsync: bool = True
) -> None:
    """Append ``data`` to ``directory/name`` (created with mode :data:`FILE_MODE`) with one
    ``write(2)`` (a short write is resumed), then fsync'd unless ``fsync`` is False; never
    through a symlink.

    Raises:
        OSError: the write failed; ``ELOOP`` when ``name`` is a symlink, ``EPERM`` when it
            is not a regular file or has another hard link (it could be someone's file).
    """
    with _dir_fd(Path(directory), None) as dfd:
        fd = os.open(
            name,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            FILE_MODE,
            dir_fd=dfd,
        )
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:  # a planted hard link
                raise OSError(errno.EPERM, f"{name} is not a regular file with one link; refused")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
