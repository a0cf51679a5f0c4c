"""The X cookie of a ``LocalDesktop``: only programs that hold it may use its display.

An X server started without ``-auth`` accepts every local client, so any user of the machine
could take screenshots of the agent's desktop and type into its terminal (adversarial probe
#1, finding E). Each :class:`~deskpilot.desktop.local.LocalDesktop` therefore makes a random
16-byte ``MIT-MAGIC-COOKIE-1`` (:func:`new_cookie`), writes it to ``.Xauthority`` in its
private scratch ``HOME`` (mode 0600, :func:`write_xauthority`), starts Xvfb with
``-auth FILE`` and gives its programs ``XAUTHORITY=FILE``. A client without the cookie is
refused ("Authorization required"). The cookie protects the desktop from other users; it is
not secret from the desktop's own programs (they need it), nor from other processes of the
same user, who can read the file.

deskpilot's own connections (python-xlib for input and windows, mss/libxcb for capture) read
``XAUTHORITY`` from the environment when they connect; :func:`authority` sets it for that
moment only, under one process-wide lock (``os.environ`` is shared by every thread).

The file holds Xauthority records (libXau's format, written by ``XauWriteAuth``:
https://gitlab.freedesktop.org/xorg/lib/libxau/-/blob/master/AuWrite.c): family (2 bytes,
big-endian), then address, display number, auth name and data, each a 2-byte big-endian
length and its bytes. Two records carry the same cookie with an empty display number (which
matches any display, so the file can be written before Xvfb picks its number): one of family
``FamilyLocal`` (256) with this host's name, which libXau and python-xlib look up for a
local connection, and one of ``FamilyWild`` (65535), which libXau matches for any address.
The X server adds every cookie of its ``-auth`` file whatever the record's address.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["COOKIE_NAME", "authority", "new_cookie", "read_cookies", "write_xauthority"]

COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"
_FAMILY_LOCAL = 256
_FAMILY_WILD = 65535
_ENV_LOCK = threading.Lock()


def new_cookie() -> bytes:
    """16 random bytes from the operating system's CSPRNG (``secrets``)."""
    return secrets.token_bytes(16)


def _field(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _record(family: int, address: bytes, cookie: bytes) -> bytes:
    return (
        struct.pack(">H", family)
        + _field(address)
        + _field(b"")
        + _field(COOKIE_NAME)
        + _field(cookie)
    )


def write_xauthority(path: str | os.PathLike[str], cookie: bytes) -> Path:
    """Write a new Xauthority file holding ``cookie`` for any display of this host.

    The file is created with mode 0600 and never through a symlink or over an existing file.

    Raises:
        FileExistsError: ``path`` exists already.
        ValueError: ``cookie`` is not 16 bytes.
    """
    if len(cookie) != 16:
        raise ValueError("An MIT-MAGIC-COOKIE-1 is 16 bytes.")
    host = socket.gethostname().encode()
    data = _record(_FAMILY_LOCAL, host, cookie) + _record(_FAMILY_WILD, b"", cookie)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(path)


def read_cookies(path: str | os.PathLike[str]) -> list[tuple[int, bytes, bytes, bytes, bytes]]:
    """The records of an Xauthority file: (family, address, number, name, data)."""
    raw = Path(path).read_bytes()
    out, i = [], 0
    while i + 2 <= len(raw):
        (family,) = struct.unpack_from(">H", raw, i)
        i += 2
        fields = []
        for _ in range(4):
            (n,) = struct.unpack_from(">H", raw, i)
            fields.append(raw[i + 2 : i + 2 + n])
            i += 2 + n
        out.append((family, *fields))
    return out


@contextlib.contextmanager
def authority(path: str | None) -> Iterator[None]:
    """``XAUTHORITY=path`` in this process's environment while an X connection is opened
    (python-xlib and libxcb read it then); restored afterwards. ``None``: unchanged."""
    if path is None:
        yield
        return
    with _ENV_LOCK:
        old = os.environ.get("XAUTHORITY")
        os.environ["XAUTHORITY"] = path
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("XAUTHORITY", None)
            else:
                os.environ["XAUTHORITY"] = old
