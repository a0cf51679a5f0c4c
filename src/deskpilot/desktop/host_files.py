"""The files a desktop's host reads and writes for a client or a checker: regular files only,
never a kernel interface.

``LocalDesktop``'s ``get_file``/``put_file`` (and a ``run_command``'s ``cwd``) act in the
calling process, outside the desktop's PID namespace, so a path the desktop's programs could
not use would otherwise reach deskpilot itself: ``/proc/self/environ`` is deskpilot's
environment (an API key), ``/proc/<pid>/environ`` its shell's, ``/proc/self/mem`` its memory.
The agent can plant such a path (a symlink where a checker reads its answer) or, on a
loopback computer server without a token, ask for it. ``LocalDesktop``'s own ``get_file``,
``put_file`` and ``run_command`` (:mod:`deskpilot.desktop.host`) use these helpers, so the
computer server (``deskpilot serve``), the eval harness and every other caller are covered;
the editor tool refuses the same kernel filesystems (:data:`PSEUDO_FILESYSTEMS`).

:func:`pin` opens the file once (``O_PATH``: reads nothing, runs no driver code), checks
that descriptor (a regular file, not on ``/proc``, ``/sys`` or another kernel filesystem:
:func:`pseudo_filesystem`), and the host then reads or
writes exactly that inode through ``/proc/self/fd/N`` (:func:`fd_path`): a program swapping a
symlink in between the check and the use changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import stat
import struct
import sys
from pathlib import Path

from ..errors import DesktopError

__all__ = ["PSEUDO_FILESYSTEMS", "fd_path", "pin", "pin_dir", "pseudo_filesystem"]

_O_PATH = getattr(os, "O_PATH", 0)

#: ``f_type`` of ``fstatfs`` -> name, for the filesystems the editor refuses (linux/magic.h).
PSEUDO_FILESYSTEMS: dict[int, str] = {
    0x9FA0: "procfs (/proc)",
    0x62656572: "sysfs (/sys)",
    0x64626720: "debugfs",
    0x74726163: "tracefs",
    0x73636673: "securityfs",
    0x27E0EB: "cgroupfs",
    0x63677270: "cgroup2",
    0xCAFE4A11: "bpffs",
    0x62656570: "configfs",
    0xDE5E81E4: "efivarfs",
    0x6165676C: "pstorefs",
    0xF97CFF8C: "selinuxfs",
}

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


def _fstatfs_type(fd: int) -> int | None:
    """``f_type`` of the filesystem ``fd`` is on, or None where it cannot be asked."""
    if not sys.platform.startswith("linux"):
        return None
    buf = ctypes.create_string_buffer(512)  # struct statfs is 120 bytes on 64-bit Linux
    if _c().fstatfs(fd, buf) != 0:
        return None
    # f_type is the first member: a long (an unsigned int on s390x)
    (value,) = struct.unpack_from("I" if os.uname().machine == "s390x" else "l", buf)
    return int(value) & 0xFFFFFFFF


def pseudo_filesystem(fd: int) -> str | None:
    """The name of the kernel-interface filesystem ``fd`` lies on (see the module
    docstring), or None for an ordinary one."""
    kind = _fstatfs_type(fd)
    return PSEUDO_FILESYSTEMS.get(kind) if kind is not None else None


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
                f"{path} is on {kind}, a kernel interface, not a stored file; the desktop's "
                "host neither reads nor writes it here (it would be deskpilot's own process)."
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

    A ``cwd`` is entered before the command's PID namespace exists, so ``/proc`` there is
    deskpilot's own: ``cwd="/proc"`` would let a command read the environment of every
    process of deskpilot's user (the shell that started it, with its API key). Refused.

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
            f"{path} is on {kind}, a kernel interface; commands do not start there (it would "
            "be deskpilot's /proc, not the desktop's)."
        )
    return fd
