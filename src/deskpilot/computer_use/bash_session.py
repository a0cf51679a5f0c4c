"""The bash tool's session plumbing: one shell process, its output buffer and its sentinel.

Used by :class:`deskpilot.computer_use.bash.BashTool` (the protocol is described there). Output
is read continuously by a reader task and kept bounded (head and tail, the middle counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal

from ..desktop.processes import reaper

__all__ = [
    "MAX_OUTPUT_CHARS",
    "N_VAR",
    "OK_VAR",
    "PREFIX_SCAN",
    "SENTINEL_FD",
    "X_VAR",
    "Output",
    "Sentinel",
    "Session",
    "ShellProtocol",
    "sentinel",
    "truncate_middle",
]

MAX_OUTPUT_CHARS = 30_000
"""Longest output returned to the model; longer output keeps its first and last halves."""

KEEP_BYTES = 4 * MAX_OUTPUT_CHARS
"""Bytes kept at each end of a command's output while it runs (bounds memory)."""

SENTINEL_FD = 99
"""The shell's private copy of its output pipe (the sentinel is written there)."""
OK_VAR = "_dpo"
X_VAR = "_dpx"
N_VAR = "_dpn"
PREFIX_SCAN = 512
"""Bytes before the sentinel searched for bash's error-message prefix."""


_TAIL = re.compile(rb"(\d+):(1?):")


class Sentinel:
    """The sentinel of one command: ``/__DP_<tag>_<n>:`` in bash's error message, followed
    by the expanded status and flag (digits: the unexpanded ``$?`` of a ``set -v`` echo of
    the protocol line never matches). A plain ``bytes.find`` plus one precompiled pattern,
    so nothing is compiled per command. ``kind="e"`` is the command's end marker
    (``/__DPe_<tag>_<n>:<status>::``, written at the end of its file)."""

    __slots__ = ("prefix",)

    def __init__(self, tag: str, n: int, kind: str = "") -> None:
        self.prefix = b"/__DP%s_%s_%d:" % (kind.encode(), tag.encode(), n)

    def search(self, buf: bytes) -> tuple[int, re.Match[bytes]] | None:
        """(start of the sentinel, match of ``status:flag:``) or None."""
        i = buf.find(self.prefix)
        while i >= 0:
            m = _TAIL.match(buf, i + len(self.prefix))
            if m is not None:
                return i, m
            i = buf.find(self.prefix, i + 1)
        return None


def sentinel(tag: str, n: int, kind: str = "") -> Sentinel:
    """The :class:`Sentinel` of command ``n`` of the session tagged ``tag`` (``kind="e"``:
    its end marker)."""
    return Sentinel(tag, n, kind)


def truncate_middle(text: str, limit: int = MAX_OUTPUT_CHARS, *, dropped_before: int = 0) -> str:
    """Keep the first and last ``limit // 2`` characters of ``text`` with a note between.

    ``dropped_before`` counts characters already dropped from the middle upstream.
    """
    if len(text) <= limit and not dropped_before:
        return text
    half = limit // 2
    if len(text) <= limit:
        head, tail, cut = text[: len(text) // 2], text[len(text) // 2 :], dropped_before
    else:
        head, tail, cut = text[:half], text[-half:], len(text) - 2 * half + dropped_before
    return (
        f"{head}\n[... {cut} characters truncated; redirect long output to a file and "
        f"read parts of it with head, tail or grep ...]\n{tail}"
    )


class Output:
    """A command's output as it arrives: head and tail kept, the middle counted."""

    __slots__ = ("dropped", "head", "tail")

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        if len(self.head) < KEEP_BYTES:
            take = KEEP_BYTES - len(self.head)
            self.head += data[:take]
            data = data[take:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * KEEP_BYTES:
                cut = len(self.tail) - KEEP_BYTES
                del self.tail[:cut]
                self.dropped += cut

    def find(self, marker: Sentinel) -> tuple[bytes, re.Match[bytes], bytes] | None:
        """(output before ``marker``, the ``status:flag:`` match, bytes after it) once the
        marker has arrived."""
        if not self.dropped:
            whole = bytes(self.head + self.tail)
            hit = marker.search(whole)
            if hit is None:
                return None
            return whole[: hit[0]], hit[1], whole[hit[1].end() :]
        tail = bytes(self.tail)
        hit = marker.search(tail)
        if hit is None:
            return None
        return bytes(self.head) + tail[: hit[0]], hit[1], tail[hit[1].end() :]

    def text(self) -> tuple[str, int]:
        """(decoded output, bytes dropped from the middle)."""
        return bytes(self.head + self.tail).decode("utf-8", "replace"), self.dropped


class ShellProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Reports the shell's exit at once: before Python 3.12, ``Process.wait()`` returns only
    when every pipe is closed, which a background job holding stdout delays forever."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.on_exit: asyncio.Event | None = None

    def process_exited(self) -> None:
        super().process_exited()
        if self.on_exit is not None:
            self.on_exit.set()


class Session:
    """One bash process plus its reader task.

    ``proc`` is the process deskpilot started (bash itself, or the ``unshare`` that runs
    it in its own process namespace: the process group is the same); ``shell_pid`` is bash's
    own pid as deskpilot sees it (for ``/proc/PID/fd`` and limits).
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        protocol: ShellProtocol,
        transport: asyncio.SubprocessTransport | None = None,
        *,
        shell_pid: int | None = None,
        isolated: bool = False,
    ) -> None:
        self.proc = proc
        self.shell_pid = proc.pid if shell_pid is None else shell_pid
        #: bash runs in its own namespace, as the child of ``proc`` (``unshare``).
        self.isolated = isolated and self.shell_pid != proc.pid
        self.transport = transport
        self.output = Output()
        self.changed = asyncio.Event()
        self.eof = False
        protocol.on_exit = self.changed
        self.reader = asyncio.create_task(self._read(), name=f"bash-reader-{proc.pid}")
        self.tag = secrets.token_hex(4)
        self.driver = ""
        self.prefix: re.Pattern[bytes] | None = None
        self.echo: re.Pattern[str] = re.compile(r"(?!)")
        self.pipe = ""
        self.fds: tuple[str, str] | None = None
        #: bash's error prefix after the shell's name ("line 7: "), digits generalised: the
        #: prefix of an error inside a sourced file is "<file>: " followed by it.
        self.prefix_rest: re.Pattern[bytes] | None = None

    def fd_target(self, fd: int) -> str | None:
        """Where the shell's ``fd`` points (``/proc/PID/fd``; ``"nowhere (closed)"``), or
        None where /proc cannot tell (not Linux, the shell is gone)."""
        if not os.path.isdir(f"/proc/{self.shell_pid}/fd"):
            return None
        try:
            return os.readlink(f"/proc/{self.shell_pid}/fd/{fd}")
        except FileNotFoundError:
            return "nowhere (closed)"
        except OSError:
            return None

    def fd_targets(self) -> tuple[str, str] | None:
        """Where the shell's fds 1 and 2 point (see :meth:`fd_target`), or None."""
        out, err = self.fd_target(1), self.fd_target(2)
        if out is None or err is None:
            return None
        return out, err

    def output_closed(self) -> bool:
        """True when none of the shell's fds 1, 2 and 99 is the output pipe any more (it
        closed or moved every copy; False where /proc cannot tell)."""
        if not self.pipe:
            return False
        targets = [self.fd_target(fd) for fd in (1, 2, SENTINEL_FD)]
        return None not in targets and self.pipe not in targets

    @property
    def exited(self) -> bool:
        return self.proc.returncode is not None

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                data = await self.proc.stdout.read(65536)
                if not data:
                    break
                self.output.feed(data)
                self.changed.set()
        finally:
            self.eof = True
            self.changed.set()

    def take(self) -> Output:
        out, self.output = self.output, Output()
        return out

    async def kill(self) -> None:
        """SIGKILL the whole process group and reap bash (no zombies)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # bash and every job it started
        except ProcessLookupError:
            pass  # the group is already gone
        except PermissionError:  # pragma: no cover - should not happen for our own child
            if self.proc.returncode is None:
                self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 5.0)
        reaper().unwatch_group(self.proc.pid)
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.transport is not None:  # no "Event loop is closed" from its __del__ later
            self.transport.close()
