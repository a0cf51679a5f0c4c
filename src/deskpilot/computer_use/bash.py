"""BashTool: one persistent bash session for the ``bash`` tool, robust where the reference hangs.

How a command runs (bash-tool page: "one persistent shell ... a per-command timeout that
kills the process group and restarts the session"; reference bugs in
shared/reference/anthropic_reference.md §3.3 and §3.8 #6):

* bash is started once with ``create_subprocess_exec`` in its own process group, stderr
  merged into stdout (one interleaved stream, in order), reading commands from a pipe.
* The command text is written to a private temp file (mode 0600) and the shell is sent one
  fixed line: ``{ . FILE ; } </dev/null`` followed by ``printf`` of a random per-command
  sentinel and ``$?``. Sourcing keeps state (``cd``, variables, functions) in the session;
  a syntax error stays inside the file; stdin is ``/dev/null`` so ``read`` returns at once.
  Nothing is ever built from model input except the command file, which *is* shell by design.
* A reader task drains the output continuously (no 64-128 KiB pipe stall) and wakes the
  waiting command on every chunk (no polling); memory is bounded to the kept head and tail.

Result text: the output (stdout+stderr, one trailing newline removed); a non-zero exit
status adds a last line ``[exit code: N]``; output over :data:`MAX_OUTPUT_CHARS` keeps the
first and last halves with a ``[... N characters truncated ...]`` note in between. A
command that runs past ``timeout`` kills the whole process group and answers
``is_error`` "Command timed out after N seconds; the shell was restarted ...". ``exit N``
ends the shell: the result says so and a new shell starts with the next command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..desktop.environment import child_env
from ..errors import ConfigError, ToolInputError
from ..prompt import ToolCall, ToolResult
from .base import Executor
from .specs import bash_definition, versions

logger = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 30_000
"""Longest output returned to the model; longer output keeps its first and last halves."""

_KEEP_BYTES = 4 * MAX_OUTPUT_CHARS
"""Bytes kept at each end of a command's output while it runs (bounds memory)."""

RESTARTED_TEXT = "tool has been restarted."


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


class _Output:
    """A command's output as it arrives: head and tail kept, the middle counted."""

    __slots__ = ("dropped", "head", "tail")

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        if len(self.head) < _KEEP_BYTES:
            take = _KEEP_BYTES - len(self.head)
            self.head += data[:take]
            data = data[take:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * _KEEP_BYTES:
                cut = len(self.tail) - _KEEP_BYTES
                del self.tail[:cut]
                self.dropped += cut

    def find(self, marker: bytes) -> tuple[bytes, bytes] | None:
        """(output before ``marker``, bytes after it) if the marker has arrived."""
        if not self.dropped:
            whole = bytes(self.head + self.tail)
            i = whole.find(marker)
            return None if i < 0 else (whole[:i], whole[i + len(marker) :])
        i = self.tail.find(marker)
        if i < 0:
            return None
        return bytes(self.head) + bytes(self.tail[:i]), bytes(self.tail[i + len(marker) :])

    def text(self) -> tuple[str, int]:
        """(decoded output, bytes dropped from the middle)."""
        return bytes(self.head + self.tail).decode("utf-8", "replace"), self.dropped


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Reports the shell's exit at once: before Python 3.12, ``Process.wait()`` returns only
    when every pipe is closed, which a background job holding stdout delays forever."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.on_exit: asyncio.Event | None = None

    def process_exited(self) -> None:
        super().process_exited()
        if self.on_exit is not None:
            self.on_exit.set()


class _Session:
    """One bash process plus its reader task."""

    def __init__(self, proc: asyncio.subprocess.Process, protocol: _Protocol) -> None:
        self.proc = proc
        self.output = _Output()
        self.changed = asyncio.Event()
        self.eof = False
        protocol.on_exit = self.changed
        self.reader = asyncio.create_task(self._read(), name=f"bash-reader-{proc.pid}")

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

    def take(self) -> _Output:
        out, self.output = self.output, _Output()
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
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
        if self.proc.stdin is not None:
            self.proc.stdin.close()


class BashTool(Executor):
    """Executor of the Anthropic ``bash`` tool: one persistent shell session.

    Args:
        timeout: seconds one command may run before the process group is killed and the
            shell restarted.
        version: ``"bash_20250124"`` (default) or ``"bash_20241022"`` (same behaviour).
        env: variables for the shell (e.g. a desktop's ``DISPLAY`` and ``HOME``), applied
            over a clean environment: the shell never inherits deskpilot's own environment,
            only the allow-listed variables of :mod:`deskpilot.desktop.environment`
            (``PATH``, ``HOME``, ``LANG``/``LC_*``, ``TERM``, ...; never an API key or cloud
            credential, which ``env`` or ``cat /proc/self/environ`` would hand to the
            model). ``PAGER`` and ``GIT_PAGER`` are ``cat`` unless ``env`` sets them (a
            pager would wait for input until the timeout).
        cwd: the shell's start directory (default: the current directory).

    Inputs (tool_use ``input``): ``command`` (str) and/or ``restart`` (bool). Results are
    described in the module docstring; ``restart`` answers ``"tool has been restarted."``;
    neither answers is_error ``"no command provided."``.

    Raises:
        ConfigError: an unknown version or a non-positive timeout.
    """

    name = "bash"

    def __init__(
        self,
        timeout: float = 120.0,
        version: str = "bash_20250124",
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        if version not in versions("bash"):
            raise ConfigError(
                f"Unknown bash tool version {version!r}; use one of {versions('bash')}."
            )
        if not timeout or timeout <= 0:
            raise ConfigError(f"timeout must be a positive number of seconds, not {timeout!r}.")
        self.version = version
        self.timeout = float(timeout)
        self.env = dict(env or {})
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self._session: _Session | None = None
        self._lock = asyncio.Lock()
        self._tmpdir: str | None = None
        self._counter = 0

    @property
    def definition(self) -> dict[str, Any]:
        """``{"type": version, "name": "bash"}``."""
        return bash_definition(self.version)

    # --- session lifecycle -------------------------------------------------------------

    async def _start(self) -> _Session:
        env = child_env({"PAGER": "cat", "GIT_PAGER": "cat", **self.env})
        bash = shutil.which("bash") or "/bin/bash"
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(limit=2**16, loop=loop),
            bash,
            "--noprofile",
            "--norc",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=self.cwd,
        )
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._session = _Session(proc, protocol)
        return self._session

    async def _stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.kill()

    async def restart(self) -> None:
        """Kill the shell's process group and start a fresh shell."""
        await self._stop()
        await self._start()

    async def aclose(self) -> None:
        """Kill the shell's process group and remove the temp directory. Idempotent."""
        await super().aclose()
        await self._stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # --- execution ---------------------------------------------------------------------

    async def _execute(self, call: ToolCall) -> ToolResult:
        args = call.arguments if isinstance(call.arguments, dict) else {}
        unknown = sorted(set(args) - {"command", "restart"})
        if unknown:
            raise ToolInputError(
                f"Unexpected parameter(s) {', '.join(unknown)} for bash; it takes command "
                "(a string) or restart: true."
            )
        command = args.get("command")
        restart = args.get("restart") is True
        if command is not None and not isinstance(command, str):
            raise ToolInputError(
                f"command must be a string of shell code, not {type(command).__name__}."
            )
        async with self._lock:
            if restart:
                await self.restart()
                if not command:
                    return ToolResult(call.id, RESTARTED_TEXT)
                text, is_error = await self._run(command)
                return ToolResult(call.id, f"{RESTARTED_TEXT}\n{text}", is_error=is_error)
            if command is None or not command.strip():
                raise ToolInputError("no command provided.")
            text, is_error = await self._run(command)
            return ToolResult(call.id, text, is_error=is_error)

    def _write_command(self, command: str) -> str:
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="deskpilot-bash-")
        self._counter += 1
        path = Path(self._tmpdir, f"cmd{self._counter}.sh")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(command)
            if not command.endswith("\n"):
                f.write("\n")
        return str(path)

    async def _run(self, command: str) -> tuple[str, bool]:
        """Run one command; returns (result text, is_error)."""
        session = self._session
        if session is None or session.eof or session.proc.returncode is not None:
            if session is not None:
                await self._stop()
            session = await self._start()
        leftover = session.take()  # background output that arrived between commands
        path = self._write_command(command)
        token = secrets.token_hex(16)
        marker = f"\n__DESKPILOT_{token}__:".encode()
        # ``builtin`` so a command that defines a function named ``printf`` or ``.`` cannot
        # break the protocol; the status is captured before anything else runs.
        line = (
            f"{{ builtin . {shlex.quote(path)} ; }} </dev/null; "
            f"builtin printf '\\n__DESKPILOT_%s__:%d\\n' {token} \"$?\"\n"
        )
        try:
            assert session.proc.stdin is not None
            session.proc.stdin.write(line.encode())
            await session.proc.stdin.drain()
            found = await asyncio.wait_for(self._wait(session, marker), self.timeout)
        except TimeoutError:
            partial, dropped = session.output.text()
            await self._stop()
            shown = truncate_middle(partial.rstrip("\n"), dropped_before=dropped)
            note = (
                f"Command timed out after {self.timeout:g} seconds; the shell was restarted, "
                "so the working directory, variables and background jobs were reset. Run long "
                "jobs in the background (e.g. `cmd > /tmp/out.log 2>&1 &`) and check on them."
            )
            return (f"{shown}\n{note}" if shown else note), True
        except (BrokenPipeError, ConnectionResetError):
            found = None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if found is None:  # the shell exited (``exit N``, ``exec`` of something that quit)
            with contextlib.suppress(TimeoutError):  # EOF can come before the exit status
                await asyncio.wait_for(session.proc.wait(), 1.0)
            code = session.proc.returncode
            with contextlib.suppress(TimeoutError):  # collect what is still in the pipe
                await asyncio.wait_for(asyncio.shield(session.reader), 0.1)
            out = leftover.text()[0] + session.output.text()[0]
            dropped = session.output.dropped
            await self._stop()
            text = truncate_middle(out.rstrip("\n"), dropped_before=dropped)
            note = (
                f"[The shell exited with code {code}; a new shell starts with the next "
                "command, so the working directory and variables were reset.]"
            )
            return (f"{text}\n{note}" if text else note), False
        before, after = found
        code_text = after.split(b"\n", 1)[0]
        rest = after[len(code_text) + 1 :]
        taken = session.take()
        session.output.feed(rest)  # anything a background job printed after the sentinel
        text = (leftover.text()[0] + before.decode("utf-8", "replace")).removesuffix("\n")
        text = truncate_middle(text, dropped_before=taken.dropped + leftover.dropped)
        try:
            code = int(code_text)
        except ValueError:
            code = 0
        if code:
            text = f"{text}\n[exit code: {code}]" if text else f"[exit code: {code}]"
        return text, False

    @staticmethod
    async def _wait(session: _Session, marker: bytes) -> tuple[bytes, bytes] | None:
        while True:
            found = session.output.find(marker)
            if found is not None:
                return found
            if session.eof or session.exited:
                if session.exited and not session.eof:
                    # bash is gone; drain the pipe briefly for the marker (a background
                    # job may hold the pipe open, so do not wait for EOF).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(session.reader), 0.1)
                    found = session.output.find(marker)
                return found
            session.changed.clear()
            await session.changed.wait()


__all__ = ["MAX_OUTPUT_CHARS", "RESTARTED_TEXT", "BashTool", "truncate_middle"]
