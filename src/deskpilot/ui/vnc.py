"""``VncServer``: a supervised x11vnc on a desktop's display, for the live view.

x11vnc (Debian ``x11vnc``) serves the desktop over RFB on ``127.0.0.1`` only (``-localhost``,
no IPv6), on a free port, with two passwords generated per server: a full-control one (used
by :mod:`deskpilot.ui.bridge`, which authenticates itself and never hands it to a browser)
and a view-only one (for a read-only viewer of your own). The passwords go to x11vnc in a
file in a private (0700) scratch directory that x11vnc deletes once read (``-passwdfile
rm:...``), never on a command line. The process runs in its own process group with a
parent-death signal and is registered with deskpilot's watcher, so it never outlives the
Python process.

If x11vnc exits while the server is running (a crash, a kill), it is started again after a
short back-off (0.2 s, doubling up to 5 s) on the desktop's current display; the run that
owns the desktop does not notice. :meth:`VncServer.stop` ends it and removes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
from functools import partial
from pathlib import Path
from typing import Self

from deskpilot.desktop.display import X11Display
from deskpilot.desktop.local import merged_env
from deskpilot.desktop.processes import (
    make_scratch_dir,
    process_alive,
    reaper,
    remove_scratch_dir,
    signal_group,
    with_pdeathsig,
)
from deskpilot.errors import (
    ClosedError,
    DeskpilotError,
    DeskpilotTimeoutError,
    DesktopError,
    MissingDependencyError,
)

__all__ = ["VncServer"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: x11vnc's latency options: check for changes every 5 ms, send them 5 ms after the first
#: (the defaults, 20/20 ms... 30 ms, add a frame of delay to every update).
LATENCY_ARGS = ("-defer", "5", "-wait", "5")
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _password() -> str:
    # VNC Authentication uses 8 bytes of the password (RFC 6143 §7.2.2): 8 random
    # characters from a 64-symbol alphabet, 48 bits.
    return secrets.token_urlsafe(6)


class VncServer:
    """x11vnc on ``desktop``'s display, supervised (see the module docstring).

    Args:
        desktop: a started :class:`~deskpilot.desktop.local.LocalDesktop` (or another
            :class:`~deskpilot.desktop.display.X11Display` with ``env``); its ``env`` gives
            ``DISPLAY`` and ``XAUTHORITY``, read again at each (re)start.
        start_timeout_s: seconds x11vnc may take to start listening.

    Attributes:
        password: the full-control password (8 characters).
        view_password: the view-only password (8 characters).
        restarts: how many times x11vnc was started again after it exited.

    Example::

        async with LocalDesktop() as desktop, VncServer(desktop) as vnc:
            reader, writer = await vnc.open_connection()

    Raises (from :meth:`start`):
        MissingDependencyError: x11vnc is not installed.
        DesktopError: x11vnc exited before listening (the message has its last log line).
        DeskpilotTimeoutError: it did not listen within ``start_timeout_s``.
    """

    def __init__(self, desktop: X11Display, *, start_timeout_s: float = 10.0) -> None:
        self.desktop = desktop
        self.start_timeout_s = start_timeout_s
        self.password = _password()
        self.view_password = _password()
        while self.view_password[:8] == self.password[:8]:
            self.view_password = _password()
        self.restarts = 0
        self._dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._port: int | None = None
        self._ready = asyncio.Event()
        self._launched = asyncio.Condition()
        self._generation = 0  # launches so far
        self._supervisor: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False

    # ------------------------------------------------------------------ state
    @property
    def port(self) -> int | None:
        """The TCP port x11vnc listens on (on 127.0.0.1), or None while it is not up."""
        return self._port if self._ready.is_set() else None

    @property
    def pid(self) -> int | None:
        """The process id of the current x11vnc (None when not running)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._supervisor is not None and not self._supervisor.done()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Self:
        """Start x11vnc and its supervisor; return once it listens. Idempotent.

        Raises: see the class docstring; ClosedError after :meth:`stop`.
        """
        if self._closed:
            raise ClosedError("This VncServer was stopped; make a new one.")
        if self.running:
            return self
        if shutil.which("x11vnc") is None:
            raise MissingDependencyError(
                "'x11vnc' is not installed; the live view needs it: "
                "sudo apt-get install -y --no-install-recommends x11vnc "
                "(or deskpilot doctor --install)."
            )
        self._dir = await asyncio.to_thread(make_scratch_dir, "vnc")
        try:
            await self._launch()
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="x11vnc supervisor")
        return self

    async def stop(self) -> None:
        """Stop the supervisor and x11vnc (SIGTERM, then SIGKILL after 2 s), await it and
        remove the private directory. Idempotent; afterwards :meth:`start` raises."""
        self._closed = True
        self._stopping = True
        self._ready.clear()
        async with self._launched:
            self._launched.notify_all()
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._kill()
        if self._dir is not None:
            directory, self._dir = self._dir, None
            await asyncio.to_thread(remove_scratch_dir, directory)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def open_connection(
        self, timeout_s: float = 10.0
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to x11vnc, waiting up to ``timeout_s`` seconds while it is being
        restarted.

        Raises:
            ClosedError: the server was stopped.
            DeskpilotTimeoutError: x11vnc did not come back within ``timeout_s``.
            ConnectionError: the connection was refused.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self._closed:
                raise ClosedError("The live view's VNC server was stopped.")
            try:
                await asyncio.wait_for(self._ready.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise DeskpilotTimeoutError(
                    f"The desktop's VNC server (x11vnc) was not up within {timeout_s} s."
                ) from None
            generation, proc, port = self._generation, self._proc, self._port
            assert port is not None
            try:
                return await asyncio.open_connection(HOST, port)
            except OSError:
                if proc is not None and proc.returncode is None and process_alive(proc.pid):
                    raise  # x11vnc runs but refused: a real error
            # It died and the supervisor has not noticed yet: wait for the next launch.
            async with self._launched:
                try:
                    await asyncio.wait_for(
                        self._launched.wait_for(partial(self._moved_on, generation)),
                        max(0.0, deadline - loop.time()),
                    )
                except TimeoutError:
                    raise DeskpilotTimeoutError(
                        f"The desktop's VNC server (x11vnc) was not up within {timeout_s} s."
                    ) from None

    # ------------------------------------------------------------------ internals
    def _moved_on(self, generation: int) -> bool:
        return self._generation > generation or self._closed

    def _desktop_up(self) -> bool:
        """True while the desktop's X server is up (started, not closed, answering)."""
        try:
            self.desktop.backend  # noqa: B018 - raises before start and after close
        except DeskpilotError:
            return False
        return bool(self.desktop.display) and not self.desktop.dead

    def _argv(self, port: int, passwd_file: Path) -> list[str]:
        display = self.desktop.display
        if not display:
            raise DesktopError("The desktop has no display yet; start it before the VNC server.")
        return [
            "x11vnc",
            "-display",
            display,
            "-localhost",
            "-noipv6",
            "-rfbport",
            str(port),
            "-passwdfile",
            f"rm:{passwd_file}",
            "-forever",
            "-shared",
            "-norc",
            "-nobell",
            "-xkb",
            "-noxrecord",
            "-nossl",
            "-nocmds",
            *LATENCY_ARGS,
        ]

    async def _launch(self) -> None:
        assert self._dir is not None
        last_error = ""
        for _attempt in range(3):  # a port taken between picking and binding: pick another
            port = _free_port()
            passwd_file = self._dir / "passwd"
            text = f"{self.password}\n__BEGIN_VIEWONLY__\n{self.view_password}\n"
            await asyncio.to_thread(_write_private, passwd_file, text)
            log_path = self._dir / "x11vnc.log"
            with open(log_path, "ab") as log_file:  # noqa: ASYNC230 - opening a local file
                proc = await asyncio.create_subprocess_exec(
                    *with_pdeathsig(self._argv(port, passwd_file), signal.SIGTERM),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log_file,
                    start_new_session=True,
                    env=merged_env(self.desktop),
                    cwd=str(self._dir),
                )
            reaper().watch_group(proc.pid)
            self._proc = proc
            found = await self._read_port(proc)
            if found is not None:
                self._port = found
                self._generation += 1
                self._ready.set()
                async with self._launched:
                    self._launched.notify_all()
                log.info("x11vnc pid %d on %s, 127.0.0.1:%d", proc.pid, self.desktop.display, found)
                return
            await self._kill()
            last_error = await asyncio.to_thread(_last_line, log_path)
        raise DesktopError(
            f"x11vnc did not start on {self.desktop.display}: {last_error or 'no log output'}"
        )

    async def _read_port(self, proc: asyncio.subprocess.Process) -> int | None:
        assert proc.stdout is not None
        stdout = proc.stdout

        async def scan() -> int | None:
            while True:
                line = await stdout.readline()
                if not line:
                    return None
                if line.startswith(b"PORT="):
                    value = line[5:].strip()
                    return int(value) if value.isdigit() and int(value) > 0 else None

        try:
            port = await asyncio.wait_for(scan(), self.start_timeout_s)
        except TimeoutError:
            await self._kill()
            raise DeskpilotTimeoutError(
                f"x11vnc did not listen within {self.start_timeout_s} s (start_timeout_s)."
            ) from None
        # Keep draining stdout so x11vnc never blocks on a full pipe.
        self._drain = asyncio.create_task(_drain(stdout), name="x11vnc stdout")
        return port

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 5.0)
        signal_group(proc.pid, signal.SIGKILL)
        reaper().unwatch_group(proc.pid)
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            proc = self._proc
            if proc is not None:
                await proc.wait()
                if self._stopping:
                    return
                if self._desktop_up():
                    log.warning(
                        "x11vnc (pid %d) exited with code %s; starting it again",
                        proc.pid,
                        proc.returncode,
                    )
                await self._kill()
            self._ready.clear()
            await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
            if not self._desktop_up():
                # The desktop is closed or being restarted (a new display): wait for it,
                # quietly; the run's end stops this server.
                failures = min(failures + 1, len(_BACKOFF_S) - 1)
                continue
            try:
                await self._launch()
            except (DesktopError, DeskpilotTimeoutError, OSError) as exc:
                failures += 1
                log.warning("x11vnc did not start again: %s", exc)
                continue
            failures = 0
            self.restarts += 1

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.running else "not started")
        return f"VncServer(display={self.desktop.display!r}, port={self.port}, {state})"


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.read(65536):
            pass
