"""The files ``put_file`` and ``get_file`` reach: regular files only, never a kernel interface.

The computer server reads and writes a client's files in its own process, outside the
desktop's PID namespace, so a path the desktop's programs could not use would otherwise
reach the server itself: ``/proc/self/environ`` is the server's environment (an API key
exported in the shell that started ``deskpilot serve``), ``/proc/<pid>/environ`` the shell's,
``/proc/self/mem`` its memory. A loopback server without a token answers any local program,
the agent's own bash included, so these are refused.

:func:`pin` opens the file once (``O_PATH``: reads nothing, runs no driver code), checks
that descriptor (a regular file, not on ``/proc``, ``/sys`` or another kernel filesystem:
:func:`~deskpilot.computer_use.editor_files.pseudo_filesystem`), and the host then reads or
writes exactly that inode through ``/proc/self/fd/N``: a program swapping a symlink in
between the check and the use changes nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..computer_use.editor_files import pseudo_filesystem
from ..errors import DesktopError

__all__ = ["fd_path", "pin", "pin_dir"]

_O_PATH = getattr(os, "O_PATH", 0)


def fd_path(fd: int) -> str:
    """The path that reopens ``fd``'s inode (``/proc/self/fd/N``)."""
    return f"/proc/self/fd/{fd}"


def pin(path: str, *, create: bool = False, max_bytes: int | None = None) -> int:
    """An ``O_PATH`` descriptor of the regular file at ``path`` (absolute); the caller
    closes it.

    Args:
        path: the file (symlinks followed, as before).
        create: make the file (and its folders) when missing (``put_file``).
        max_bytes: refuse a larger file (``get_file``).

    Raises:
        DesktopError: no file there, not a regular file, on a kernel filesystem, larger than
            ``max_bytes``, or the system refused (a sentence naming ``path``).
    """
    try:
        if create:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, _O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                raise DesktopError(f"No file at {path}.") from None
            # a new file: O_EXCL and O_NOFOLLOW, so nothing planted meanwhile is written
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
            )
    except OSError as exc:
        raise DesktopError(f"Could not open {path}: {exc.strerror or exc}.") from exc
    try:
        kind = pseudo_filesystem(fd)
        if kind is not None:
            raise DesktopError(
                f"{path} is on {kind}, a kernel interface, not a stored file; the computer "
                "server neither reads nor writes it (it would show the server's own process)."
            )
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DesktopError(f"{path} is not a regular file.")
        if max_bytes is not None and info.st_size > max_bytes:
            raise DesktopError(
                f"{path} is {info.st_size} bytes, more than max_bytes ({max_bytes}); "
                "ask for a larger limit or a smaller file."
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def pin_dir(path: str) -> int | None:
    """An ``O_PATH`` descriptor of the folder at ``path`` (absolute) for ``run_command``'s
    ``cwd``, or None when there is no folder there; the caller closes it. The command is
    started in ``/proc/self/fd/N`` (:func:`fd_path`), exactly the folder checked here.

    A ``cwd`` is entered before the command's PID namespace exists, so ``/proc`` there is the
    server's own: ``cwd="/proc"`` would let a command read the environment of every process
    of the server's user (the shell that started it, with its API key). Refused.

    Raises:
        DesktopError: the folder is on a kernel filesystem.
    """
    try:
        fd = os.open(path, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    kind = pseudo_filesystem(fd)
    if kind is not None:
        os.close(fd)
        raise DesktopError(
            f"{path} is on {kind}, a kernel interface; commands of the computer server do not "
            "start there (it would be the server's /proc, not the desktop's)."
        )
    return fd
