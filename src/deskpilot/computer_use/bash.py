"""BashTool: one persistent bash session for the ``bash`` tool, robust where the reference hangs.

How a command runs (bash-tool page: "one persistent shell ... a per-command timeout that
kills the process group and restarts the session",
https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/bash-tool; the reference's
``computer_use_demo/tools/bash.py`` in https://github.com/anthropics/claude-quickstarts polls
its output every 0.2 s and stalls on a full pipe, which this design avoids):

* bash is started once with ``create_subprocess_exec`` in its own process group, stderr
  merged into stdout (one interleaved stream, in order), reading commands from a pipe.
* The command text is written to a private temp file (mode 0600) and the shell is sent one
  fixed line that sources it with stdin ``/dev/null`` (so ``read`` returns at once) and then
  reports the status. Sourcing keeps state (``cd``, variables, functions) in the session; a
  syntax error stays inside the file. Nothing is ever built from model input except the
  command file, which *is* shell by design.
* The protocol depends on no name the session can redefine except ``.`` itself (invoked as
  ``\\.``, so aliases do not apply): no ``builtin``, ``command``, ``printf`` or ``echo``. The
  line sent per command clears a flag, sets the command's number, sources a driver file
  (written at start: it sets the flag and sources ``cmdN.sh`` with stdin ``/dev/null``) and
  reports the status with a failing redirection of a group that holds only an assignment,
  ``{ v=; } 2>&99 <"/__DP_<tag>_<n>:$?:<flag>:"``: bash's "No such file or directory" message
  *is* the sentinel (a group's redirections run in the shell itself; a bare redirection
  would fork, about 1 ms). fd 99 is a copy of the output pipe made when the shell starts, so
  ``exec >/dev/null`` or ``exec 2>&-`` in a command cannot hide it. An empty flag means ``.``
  no longer sources files (a function named ``.``): the shell is restarted and the result
  says why. The line is kept short because bash reads a pipe one byte per system call. Lines
  the shell echoes of this protocol under ``set -v`` or ``set -x`` are removed from the
  output.
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
import re
import resource
import shlex
import shutil
import signal
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..desktop.environment import child_env
from ..desktop.isolation import namespace_argv, namespace_child
from ..desktop.processes import (
    make_scratch_dir,
    reaper,
    remove_scratch_dir,
    signal_name,
    with_pdeathsig,
)
from ..errors import ConfigError, ToolError, ToolInputError
from ..prompt import ToolCall, ToolResult
from .base import Executor
from .bash_session import (
    MAX_OUTPUT_CHARS,
    N_VAR,
    OK_VAR,
    PREFIX_SCAN,
    SENTINEL_FD,
    X_VAR,
    Output,
    Sentinel,
    Session,
    ShellProtocol,
    sentinel,
    truncate_middle,
)
from .shell_limits import ShellLimits
from .specs import bash_definition, versions

logger = logging.getLogger(__name__)

RESTARTED_TEXT = "tool has been restarted."

_HANDSHAKE_TIMEOUT_S = 10.0
_CLOSED_CHECK_S = 0.25
"""Seconds without output after which a namespaced shell's descriptors are looked at."""


def _digits_generalised(text: bytes) -> bytes:
    """A regex source matching ``text`` with every run of digits standing for any number."""
    return rb"\d+".join(re.escape(part) for part in re.split(rb"\d+", text))


def _private_dir(path: str) -> bool:
    """True when ``path`` is a real directory of this user that only this user can use."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


class BashTool(Executor):
    """Executor of the Anthropic ``bash`` tool: one persistent shell session.

    Args:
        timeout_s: seconds one command may run before the process group is killed and the
            shell restarted (``timeout=`` is accepted as the same, the name of earlier
            releases).
        version: ``"bash_20250124"`` (default) or ``"bash_20241022"`` (same behaviour).
        env: variables for the shell (e.g. a desktop's ``DISPLAY`` and ``HOME``), applied
            over a clean environment: the shell never inherits deskpilot's own environment,
            only the allow-listed variables of :mod:`deskpilot.desktop.environment`
            (``PATH``, ``HOME``, ``LANG``/``LC_*``, ``TERM``, ...; never an API key or cloud
            credential, which ``env`` or ``cat /proc/self/environ`` would hand to the
            model). ``PAGER`` and ``GIT_PAGER`` are ``cat`` unless ``env`` sets them (a
            pager would wait for input until the timeout).
        cwd: the shell's start directory (default: the current directory).
        limits: optional :class:`ShellLimits` (process count, memory, file size) applied to
            the shell and inherited by everything it starts; default: none.

    The shell is not a sandbox: it runs as your user with your file system and network.
    ``limits`` guard against runaway commands (a fork bomb, a memory hog, a disk filler), not
    against a determined attacker; isolate untrusted runs in a container or VM
    (``docs/desktop-isolation.md``). The shell runs in its own PID and mount namespace where
    the system allows it (:mod:`deskpilot.desktop.isolation`): it cannot see deskpilot's
    process (``/proc/$PPID``), and its jobs, ``setsid`` ones included, end with it. The shell
    and its jobs never outlive the Python process: the shell gets a parent-death signal and
    its process group is killed by deskpilot's watcher process if Python dies
    (:mod:`deskpilot.desktop.processes`).

    Inputs (tool_use ``input``): ``command`` (str) and/or ``restart`` (bool). Results are
    described in the module docstring; ``restart`` answers ``"tool has been restarted."``;
    neither answers is_error ``"no command provided."``.

    Raises:
        ConfigError: an unknown version, a non-positive timeout, or ``limits`` on a platform
            without ``prlimit`` (Linux has it).
    """

    kind = "bash"
    name = "bash"

    def __init__(
        self,
        timeout_s: float = 120.0,
        version: str = "bash_20250124",
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        limits: ShellLimits | None = None,
        timeout: float | None = None,
    ) -> None:
        if timeout is not None:
            timeout_s = timeout
        if limits is not None and not isinstance(limits, ShellLimits):
            raise ConfigError(
                f"limits must be a ShellLimits(...) or None, not {type(limits).__name__}."
            )
        if limits is not None and not hasattr(resource, "prlimit"):
            raise ConfigError("Shell limits need resource.prlimit (Linux); pass limits=None.")
        if version not in versions("bash"):
            raise ConfigError(
                f"Unknown bash tool version {version!r}; use one of {versions('bash')}."
            )
        if not timeout_s or timeout_s <= 0:
            raise ConfigError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}.")
        self.version = version
        self.timeout_s = float(timeout_s)
        self.env = dict(env or {})
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.limits = limits
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        self._tmpdir: str | None = None
        self._counter = 0

    @property
    def timeout(self) -> float:
        """Same as :attr:`timeout_s` (seconds; the name of earlier releases)."""
        return self.timeout_s

    @property
    def definition(self) -> dict[str, Any]:
        """``{"type": version, "name": "bash"}``."""
        return bash_definition(self.version)

    # --- session lifecycle -------------------------------------------------------------

    async def _start(self) -> Session:
        env = child_env({"PAGER": "cat", "GIT_PAGER": "cat", **self.env})
        bash = shutil.which("bash") or "/bin/bash"
        loop = asyncio.get_running_loop()
        argv, isolated = namespace_argv([bash, "--noprofile", "--norc"])
        transport, protocol = await loop.subprocess_exec(
            lambda: ShellProtocol(limit=2**16, loop=loop),
            *with_pdeathsig(argv, signal.SIGKILL),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=self.cwd,
        )
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        reaper().watch_group(proc.pid)
        try:
            shell_pid = proc.pid
            if isolated:  # bash is unshare's child (pid 1 of its namespace)
                shell_pid = await namespace_child(proc.pid) or proc.pid
            if self.limits is not None:  # before the shell runs anything (setrlimit)
                self.limits.apply(shell_pid)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        session = Session(proc, protocol, transport, shell_pid=shell_pid, isolated=isolated)
        self._session = session
        try:
            await self._handshake(session)
        except BaseException:
            await self._stop()
            raise
        return session

    async def _handshake(self, session: Session) -> None:
        """Give the new shell its private copy of the output pipe (fd 99) and learn the
        prefix bash puts before its error messages (the sentinel is one of them)."""
        tmpdir = self._ensure_tmpdir()
        tag = session.tag
        session.driver = self._write_driver(tmpdir, tag)
        assert session.proc.stdin is not None
        # Command 0 is empty: its sentinel shows the prefix of bash's error messages.
        session.proc.stdin.write(f"exec {SENTINEL_FD}>&1; {self._line(session, 0)}".encode())
        await session.proc.stdin.drain()
        marker = sentinel(tag, 0)
        found = await asyncio.wait_for(self._wait(session, marker), _HANDSHAKE_TIMEOUT_S)
        if found is None:
            raise ToolError(
                "The bash shell exited as soon as it started; check that bash runs: "
                "bash --noprofile --norc."
            )
        before = found[0]
        prefix = before.rsplit(b"\n", 1)[-1]
        session.prefix = re.compile(_digits_generalised(prefix) + rb"$")
        rest = prefix.partition(b": ")[2]  # "line 1: " after the shell's name
        session.prefix_rest = re.compile(_digits_generalised(rest)) if rest else None
        session.take()  # nothing of the handshake reaches a result
        session.fds = session.fd_targets()
        session.pipe = session.fds[0] if session.fds else ""
        tmp = re.escape(tmpdir)
        session.echo = re.compile(
            rf"^[^\n]*(?:{OK_VAR}{tag}|{X_VAR}{tag}|{N_VAR}{tag}"
            rf"|\. '?{tmp}/(?:driver-{tag}|cmd\d+)\.sh)"
            r"[^\n]*(?:\n|$)",
            re.MULTILINE,
        )

    async def _stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.kill()

    async def restart(self) -> None:
        """Kill the shell's process group and start a fresh shell."""
        await self._stop()
        await self._start()

    async def follow_desktop(self, old_env: Mapping[str, str], new_env: Mapping[str, str]) -> None:
        """Move the shell to a restarted desktop: every variable of ``env`` that came from the
        old desktop (``DISPLAY``, ``HOME``, ``XDG_*``, ...) takes the new desktop's value, and
        the shell is restarted (its working directory and variables are reset), so it never
        drives a display number that another desktop may have taken since."""
        async with self._lock:
            for key, value in old_env.items():
                if self.env.get(key) == value and key in new_env:
                    self.env[key] = new_env[key]
            for key, value in new_env.items():
                self.env.setdefault(key, value)
            await self._stop()

    async def aclose(self) -> None:
        """Kill the shell's process group and remove the temp directory. Idempotent."""
        await super().aclose()
        await self._stop()
        if self._tmpdir is not None:
            remove_scratch_dir(self._tmpdir)
            self._tmpdir = None

    # --- execution ---------------------------------------------------------------------

    async def _execute(self, call: ToolCall) -> ToolResult:
        args = call.arguments
        if not isinstance(args, dict):
            raise ToolInputError(
                "The bash tool's input must be a JSON object such as "
                f'{{"command": "ls -l"}}, not {type(args).__name__}.'
            )
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

    def _ensure_tmpdir(self) -> str:
        """The private directory of the command files, recreated when a command removed it
        (``rm -rf /tmp/deskpilot-bash-*``): same path when it is free, else a new one."""
        path = self._tmpdir
        if path is None:
            self._tmpdir = path = str(make_scratch_dir("bash"))
            return path
        if _private_dir(path):
            return path
        try:
            os.mkdir(path, 0o700)
        except OSError:  # taken by something else (a file, a link, another user's directory)
            reaper().unwatch_path(Path(path))
            self._tmpdir = path = str(make_scratch_dir("bash"))
        logger.info("The bash tool's directory was removed; using %s", path)
        return path

    def _ensure_driver(self, session: Session) -> None:
        """Rewrite the session's driver file if a command removed it (with its directory)."""
        tmpdir = self._ensure_tmpdir()
        if Path(session.driver).parent != Path(tmpdir):
            session.driver = ""  # a new directory: the shell must be restarted
            return
        if not os.path.isfile(session.driver):
            self._write_driver(tmpdir, session.tag)

    @staticmethod
    def _write_driver(tmpdir: str, tag: str) -> str:
        """The file each command's line sources: sets the flag that proves ``.`` sources
        files, then sources ``cmd$N.sh`` with stdin ``/dev/null``."""
        Path(tmpdir, "cmd0.sh").write_bytes(b"")  # the handshake's (empty) command
        path = Path(tmpdir, f"driver-{tag}.sh")
        path.write_text(
            f'{OK_VAR}{tag}=1; \\. "{tmpdir}/cmd${{{N_VAR}{tag}}}.sh" </dev/null\n',
            encoding="utf-8",
        )
        return str(path)

    @staticmethod
    def _line(session: Session, n: int) -> str:
        """The line sent for command ``n``: only assignments, ``\\.`` and a redirection."""
        tag = session.tag
        return (
            f"{OK_VAR}{tag}=; {N_VAR}{tag}={n}; \\. {shlex.quote(session.driver)}; "
            f"{{ {X_VAR}{tag}=; }} 2>&{SENTINEL_FD} "
            f'<"/__DP_{tag}_{n}:$?:${{{OK_VAR}{tag}-}}:" || {X_VAR}{tag}=\n'
        )

    def _write_command(self, session: Session, command: str) -> str:
        """Write command ``self._counter`` into its file, followed by its end marker: a
        comment line (it absorbs a trailing backslash) and a failing redirection whose error
        message carries the command's status, ``/__DPe_<tag>_<n>:$?::``. What the shell
        prints between the end marker and the sentinel (a ``RETURN`` trap firing as the
        sourced files return) is not part of the command's output. A command that returns
        early, exits or leaves a quote or here-document open never reaches the marker; its
        result is then read from the sentinel alone."""
        path = Path(self._ensure_tmpdir(), f"cmd{self._counter}.sh")
        tag, n = session.tag, self._counter
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(command)
            if not command.endswith("\n"):
                f.write("\n")
            f.write(
                f"# {X_VAR}{tag}\n{{ {X_VAR}{tag}=; }} 2>&{SENTINEL_FD} "
                f'<"/__DPe_{tag}_{n}:$?::" || {X_VAR}{tag}=\n'
            )
        return str(path)

    async def _run(self, command: str) -> tuple[str, bool]:
        """Run one command; returns (result text, is_error)."""
        session = self._session
        if session is None or session.eof or session.proc.returncode is not None:
            if session is not None:
                await self._stop()
            session = await self._start()
        self._ensure_driver(session)
        moved_dir = None
        if not session.driver:  # the private directory had to move: a new shell uses it
            await self._stop()
            session = await self._start()
            moved_dir = (
                "[Note: this tool's private directory was removed and its name taken, so the "
                "shell was restarted in a new one; the working directory and variables were "
                "reset. Do not remove /tmp/deskpilot-bash-* directories.]"
            )
        leftover = session.take()  # background output that arrived between commands
        self._counter += 1
        tag = session.tag
        n = self._counter
        path = self._write_command(session, command)
        marker = sentinel(tag, n)
        line = self._line(session, n)
        try:
            assert session.proc.stdin is not None
            session.proc.stdin.write(line.encode())
            await session.proc.stdin.drain()
            found = await asyncio.wait_for(self._wait(session, marker), self.timeout_s)
        except TimeoutError:
            partial, dropped = session.output.text()
            fd99 = session.fd_target(SENTINEL_FD)
            await self._stop()
            shown = truncate_middle(
                self._clean(leftover.text()[0] + partial, session).rstrip("\n"),
                dropped_before=dropped,
            )
            if fd99 is not None and fd99 != session.pipe:
                note = (
                    f"The command pointed file descriptor {SENTINEL_FD} elsewhere (it now goes "
                    f"to {fd99}); this tool learns that a command has finished through fd "
                    f"{SENTINEL_FD}, so it could not tell and waited its whole timeout "
                    f"({self.timeout_s:g} seconds). The shell was restarted, so the working "
                    "directory, variables and background jobs were reset. Leave fd "
                    f"{SENTINEL_FD} alone (use another number, e.g. 3 to 9)."
                )
            else:
                note = (
                    f"Command timed out after {self.timeout_s:g} seconds; the shell was "
                    "restarted, so the working directory, variables and background jobs were "
                    "reset. Run long jobs in the background (e.g. `cmd > /tmp/out.log 2>&1 &`) "
                    "and check on them."
                )
            return (f"{shown}\n{note}" if shown else note), True
        except (BrokenPipeError, ConnectionResetError):
            found = None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if found is None:  # the shell exited (``exit N``, ``exec`` of something that quit)
            return await self._shell_gone(session, leftover)
        before, match, after = found
        code = int(match.group(1))
        end = sentinel(tag, n, "e").search(before)
        if end is not None:
            # The command ran to its end marker: its status is the marker's; what the shell
            # printed after it (a RETURN trap as the files return) is protocol, not output.
            code = int(end[1].group(1))
            before = self._cut_prefix(before[: end[0]], session, path)
        else:
            # ``before`` ends with bash's error prefix ("bash: line 7: "); cut it off.
            cut = max(0, len(before) - PREFIX_SCAN)
            prefix = session.prefix.search(before, cut) if session.prefix is not None else None
            if prefix is not None:
                before = before[: prefix.start()]
            else:  # the prefix changed (e.g. another locale): cut the sentinel's own line
                before = before[: before.rfind(b"\n") + 1]
        rest = after.split(b"\n", 1)[1] if b"\n" in after else b""
        taken = session.take()
        session.output.feed(rest)  # anything a background job printed after the sentinel
        raw = leftover.text()[0] + before.decode("utf-8", "replace")
        text = self._clean(raw, session).removesuffix("\n")
        text = truncate_middle(text, dropped_before=taken.dropped + leftover.dropped)
        if match.group(2) != b"1":
            await self._stop()
            note = (
                "The command was not run: the shell's `.` builtin, which this tool sources "
                "every command with, was redefined (e.g. a function named `.`) or disabled. "
                "The shell was restarted, so the working directory, variables and functions "
                "were reset; run the command again without redefining `.`."
            )
            return (f"{text}\n{note}" if text else note), True
        if code:
            text = f"{text}\n[exit code: {code}]" if text else f"[exit code: {code}]"
        for extra in (self._moved_output(session), moved_dir):
            if extra:
                text = f"{text}\n{extra}" if text else extra
        return text, False

    @staticmethod
    def _cut_prefix(before: bytes, session: Session, path: str) -> bytes:
        """``before`` without bash's error prefix of the end marker (``<file>: line 9: ``)."""
        name = path.encode() + b": "
        i = before.rfind(name, max(0, len(before) - PREFIX_SCAN - len(name)))
        if i >= 0 and (
            session.prefix_rest is None
            or session.prefix_rest.fullmatch(before, i + len(name)) is not None
        ):
            return before[:i]
        return before[: before.rfind(b"\n") + 1]

    @staticmethod
    def _clean(text: str, session: Session) -> str:
        """Remove the lines the shell echoed of the protocol itself (``set -v``/``set -x``)."""
        if session.tag not in text:
            return text
        return session.echo.sub("", text)

    @staticmethod
    def _moved_output(session: Session) -> str | None:
        """A note when the command pointed the shell's stdout/stderr somewhere else (or back)."""
        now = session.fd_targets()
        if now is None or now == session.fds:
            return None
        session.fds = now
        moved = [
            f"{name} now goes to {target}"
            for name, target in zip(("standard output", "standard error"), now, strict=True)
            if target != session.pipe
        ]
        if not moved:
            return "[Note: the shell's output comes to this tool again.]"
        return (
            f"[Note: the shell's {' and its '.join(moved)} (this command redirected it, e.g. "
            "with exec), so what later commands print there will not be shown. Redirect it "
            "back, or restart the tool (restart: true).]"
        )

    async def _shell_gone(self, session: Session, leftover: Output) -> tuple[str, bool]:
        """The result when the shell exited or closed its output during a command."""
        with contextlib.suppress(TimeoutError):  # EOF can come before the exit status
            await asyncio.wait_for(session.proc.wait(), 1.0)
        code = session.proc.returncode
        with contextlib.suppress(TimeoutError):  # collect what is still in the pipe
            await asyncio.wait_for(asyncio.shield(session.reader), 0.1)
        out = self._clean(leftover.text()[0] + session.output.text()[0], session)
        dropped = session.output.dropped
        await self._stop()
        text = truncate_middle(out.rstrip("\n"), dropped_before=dropped)
        reset = "a new shell starts with the next command, so the working directory and variables were reset"
        if code is None:
            note = (
                "[The shell closed its output (every copy of it, e.g. `exec >&- 2>&- 99>&-`), "
                f"so no result can be read from it any more; it was stopped and {reset}.]"
            )
        elif code < 0:
            note = f"[The shell was killed by {signal_name(-code)}; {reset}.]"
        else:
            note = f"[The shell exited with code {code}; {reset}.]"
        return (f"{text}\n{note}" if text else note), False

    @staticmethod
    async def _wait(
        session: Session, marker: Sentinel
    ) -> tuple[bytes, re.Match[bytes], bytes] | None:
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
            if not session.isolated:
                await session.changed.wait()
                continue
            # unshare, the shell's parent outside its namespace, holds the output pipe too:
            # no end-of-file when the shell closes every copy of it (``exec >&- 2>&-
            # 99>&-``), so look at the shell's descriptors when nothing arrives for a while.
            try:
                async with asyncio.timeout(_CLOSED_CHECK_S):
                    await session.changed.wait()
            except TimeoutError:
                if session.output_closed():
                    return None


__all__ = ["MAX_OUTPUT_CHARS", "RESTARTED_TEXT", "BashTool", "ShellLimits", "truncate_middle"]
