"""``LocalDesktop``'s side of the :class:`~deskpilot.desktop.base.DesktopHost` protocol.

Commands, files, reset and health on this machine, for evaluation set-up and checks
(``deskpilot eval``), desktop pools and the computer server (``deskpilot serve``). A command
runs like the desktop's own programs: the desktop's allow-listed environment (no credential of
deskpilot's, :mod:`deskpilot.desktop.environment`), its scratch HOME, its own process group, and
its own PID and mount namespace where the system allows (:mod:`deskpilot.desktop.isolation`).

:class:`LocalHost` is a mixin of :class:`~deskpilot.desktop.local.LocalDesktop`; it uses the
desktop's HOME, environment and process list. :meth:`LocalHost.reset` keeps the X server when
it can (a light reset, with :mod:`deskpilot.desktop.xreset`) and uses ``restart`` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DesktopError
from .base import MAX_FILE_BYTES, MAX_OUTPUT_BYTES, CommandOutput
from .host_files import fd_path, pin, pin_dir
from .isolation import namespace_argv
from .processes import process_alive, reaper, remove_scratch_dir, signal_group, with_pdeathsig
from .startlimit import starting
from .xauth import read_cookies, write_xauthority
from .xreset import XSnapshot, restore, snapshot

if TYPE_CHECKING:
    from typing import Self

    from .x11 import X11Computer

log = logging.getLogger(__name__)

_CHUNK = 65536


async def _drain(stream: asyncio.StreamReader | None, cap: int) -> str:
    """Everything ``stream`` says, keeping the first ``cap`` bytes (the rest is read and
    dropped, so the program never blocks on a full pipe)."""
    if stream is None:
        return ""
    kept = bytearray()
    dropped = 0
    while chunk := await stream.read(_CHUNK):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
        dropped += max(0, len(chunk) - max(room, 0))
    text = kept.decode("utf-8", errors="replace")
    if dropped:
        text += f"\n[... {dropped} more bytes not kept: output is cut at {cap} bytes]"
    return text


class LocalHost:
    """The :class:`~deskpilot.desktop.base.DesktopHost` methods of a ``LocalDesktop``."""

    #: The fresh X server's state and the desktop's X cookie, recorded at start.
    _fresh: tuple[XSnapshot, bytes] | None = None

    if TYPE_CHECKING:
        _home: Path | None
        _procs: list[tuple[str, asyncio.subprocess.Process]]
        _isolated: set[int]
        _started: bool
        _closed: bool
        _xvfb: asyncio.subprocess.Process | None
        _backend: X11Computer | None
        _xauthority: str | None
        _env: dict[str, str]
        _background: tuple[int, int, int]
        width: int
        height: int
        window_manager: str | None
        apps: tuple[str, ...]

        @property
        def dead(self) -> bool: ...

        def _b(self) -> X11Computer: ...

        def _make_backend(self) -> X11Computer: ...

        def _prepare_home(self) -> Path: ...

        async def _start_programs(self) -> None: ...

        async def _stop_proc(self, proc: asyncio.subprocess.Process) -> None: ...

        @property
        def display(self) -> str: ...

        def _full_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]: ...

        def _is_alive(self) -> bool: ...

        async def restart(self) -> Self: ...

        async def cursor_position(self) -> tuple[int, int]: ...

    def _running_home(self) -> Path:
        if not self._started or self._home is None or not self._is_alive():
            raise DesktopError(
                "The desktop is not running; start it (async with LocalDesktop(...)) or reset it."
            )
        return self._home

    def resolve_path(self, path: str) -> str:
        """The absolute path for ``path``: ``~`` and relative paths are under the desktop's
        HOME, absolute paths are this machine's own.

        Raises:
            DesktopError: the desktop is not running (it has no HOME) and ``path`` needs it.
        """
        if path.startswith("~"):
            if path != "~" and not path.startswith("~/"):
                raise DesktopError(f"{path!r}: only ~ and ~/... name the desktop's HOME.")
            return os.path.normpath(str(self._running_home()) + path[1:])
        if os.path.isabs(path):
            return os.path.normpath(path)
        return os.path.normpath(str(self._running_home() / path))

    async def run_command(
        self,
        command: str | Sequence[str],
        *,
        timeout_s: float = 60.0,
        background: bool = False,
        cwd: str | None = None,
    ) -> CommandOutput:
        """Run a command on this desktop (see
        :meth:`deskpilot.desktop.base.DesktopHost.run_command`)."""
        home = self._running_home()
        if isinstance(command, str):
            argv = ["bash", "-c", command]
        else:
            argv = [str(a) for a in command]
            if not argv:
                return CommandOutput(127, "", "The command is empty: give a program to run.")
        env = self._full_env()
        if shutil.which(argv[0], path=env.get("PATH")) is None:
            return CommandOutput(
                127, "", f"{argv[0]}: command not found on the desktop's PATH ({env.get('PATH')})."
            )
        workdir = self.resolve_path(cwd) if cwd is not None else str(home)
        # The folder is entered before the command's namespace exists: never a kernel
        # filesystem (cwd=/proc would show deskpilot's own processes), and exactly the folder
        # checked (desktop/host_files.py).
        dir_fd = await asyncio.to_thread(pin_dir, workdir)
        if dir_fd is None:
            return CommandOutput(127, "", f"Could not start {argv[0]}: no folder at {workdir}.")
        try:
            return await self._run_in(argv, env, fd_path(dir_fd), workdir, timeout_s, background)
        finally:
            os.close(dir_fd)

    async def _run_in(
        self,
        argv: list[str],
        env: dict[str, str],
        workdir: str,
        shown_dir: str,
        timeout_s: float,
        background: bool,
    ) -> CommandOutput:
        wrapped, isolated = namespace_argv(argv)
        out = asyncio.subprocess.DEVNULL if background else asyncio.subprocess.PIPE
        try:
            proc = await asyncio.create_subprocess_exec(
                *with_pdeathsig(wrapped, signal.SIGKILL if isolated else signal.SIGTERM),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                env=env,
                cwd=workdir,
            )
        except OSError as exc:  # the program was found above: the directory is the problem
            return CommandOutput(
                127, "", f"Could not start {argv[0]} in {shown_dir}: {exc.strerror or exc}."
            )
        reaper().watch_group(proc.pid)
        if background:
            self._procs.append((Path(argv[0]).name, proc))
            if isolated:
                self._isolated.add(proc.pid)
            log.info("started %s in the background (pid %d)", argv[0], proc.pid)
            return CommandOutput(None, "", "")
        drains = asyncio.gather(
            _drain(proc.stdout, MAX_OUTPUT_BYTES), _drain(proc.stderr, MAX_OUTPUT_BYTES)
        )
        timed_out = False
        try:
            stdout, stderr = await asyncio.wait_for(asyncio.shield(drains), timeout_s)
            await proc.wait()
        except TimeoutError:
            timed_out = True
            signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
            stdout, stderr = await drains
        finally:
            # What it left in its group goes with it (as the namespace's processes do).
            signal_group(proc.pid, signal.SIGKILL)
            reaper().unwatch_group(proc.pid)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if timed_out:
            return CommandOutput(
                None,
                stdout,
                stderr + f"\nThe command was killed after {timeout_s:g} s (timeout_s).",
                timed_out=True,
            )
        return CommandOutput(proc.returncode, stdout, stderr)

    async def put_file(self, path: str, data: bytes) -> str:
        """Write ``data`` to ``path`` (see :meth:`deskpilot.desktop.base.DesktopHost.put_file`)."""
        target = self.resolve_path(path)

        def write() -> None:
            fd = pin(target, create=True)  # a regular file, never a kernel interface
            try:
                with open(fd_path(fd), "wb") as f:
                    f.write(data)
            finally:
                os.close(fd)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise DesktopError(f"Could not write {target}: {exc.strerror or exc}.") from exc
        return target

    async def get_file(self, path: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The bytes at ``path`` (see :meth:`deskpilot.desktop.base.DesktopHost.get_file`)."""
        target = self.resolve_path(path)

        def read() -> bytes:
            # a regular file of at most max_bytes, never a kernel interface such as
            # /proc/self/environ (deskpilot's own environment): desktop/host_files.py
            fd = pin(target, max_bytes=max_bytes)
            try:
                with open(fd_path(fd), "rb") as f:
                    return f.read(max_bytes + 1)[:max_bytes]
            finally:
                os.close(fd)

        try:
            return await asyncio.to_thread(read)
        except OSError as exc:
            raise DesktopError(f"Could not read {target}: {exc.strerror or exc}.") from exc

    async def reset(self) -> None:
        """A fresh desktop (see :meth:`deskpilot.desktop.base.DesktopHost.reset`): no program,
        window or file of the previous task, a new empty HOME, the configured apps started
        again and the screen settled.

        Light path (measured in ``docs/desktop-backend.md``, "Resetting a desktop"): the X
        server stays. Every program the desktop started is stopped (the window manager too: it
        holds the old HOME), every other X client is disconnected, a new scratch HOME with
        the same skeleton and X cookie replaces the old one (removed), the X server's state
        is put back as it was at start (selections, focus, pointer position, root
        properties: :mod:`deskpilot.desktop.xreset`), then the window manager and the apps
        start again and the screen settles. The display name and the cookie stay the same.

        It falls back to a full restart (a new Xvfb, like :meth:`restart`; the display name
        may change) when the desktop is not running, its X server or window manager is
        gone, a program does not die, a client cannot be disconnected, or a program
        changed X server state the light path does not put back (keyboard map, Caps Lock,
        ``xhost``, ...). Either way the caller reads ``env`` and ``home`` again.

        Raises:
            DesktopError: it could not start again.
            ClosedError: the desktop was closed.
        """
        t0 = time.perf_counter()
        why = self._no_light_reset()
        if why is None:
            try:
                async with starting():  # relaunching apps is start work (desktop/startlimit)
                    await self._light_reset()
            except Exception as exc:
                why = f"the light reset failed ({type(exc).__name__}: {exc})"
                log.warning("restarting %s to reset it: %s", self.display, why)
            else:
                log.info(
                    "reset %s in %.2f s (same X server)", self.display, time.perf_counter() - t0
                )
                return
        else:
            log.info("restarting %s to reset it: %s", self.display or "the desktop", why)
        await self.restart()
        log.info("reset %s in %.2f s (restarted)", self.display, time.perf_counter() - t0)

    async def _remember_fresh_server(self) -> None:
        """At start, before any other program connects: record the X server's state and
        the desktop's cookie for :meth:`reset`."""
        self._fresh = None
        assert self._xauthority is not None
        cookies = await asyncio.to_thread(read_cookies, self._xauthority)
        state = await self._b().run_x("read the X server's settings", snapshot)
        self._fresh = (state, cookies[0][4])

    def _no_light_reset(self) -> str | None:
        """Why :meth:`reset` must restart the desktop, or None when a light reset may work."""
        if self._closed or not self._started or self._fresh is None or self._home is None:
            return "it is not running"
        if not self._is_alive() or self.dead:
            return "its X server is gone or does not answer"
        if self.window_manager is not None:
            wm = next((p for name, p in self._procs if name == self.window_manager), None)
            if wm is None or wm.returncode is not None or not process_alive(wm.pid):
                return f"its window manager ({self.window_manager}) is not running"
        return None

    async def _light_reset(self) -> None:
        """The light path of :meth:`reset`; raises on any failure (the caller restarts)."""
        assert self._fresh is not None and self._home is not None and self._xauthority
        fresh, cookie = self._fresh
        # 1. Every program of the desktop, at once.
        stopping = list(self._procs)
        await asyncio.gather(*(self._stop_proc(p) for _, p in stopping), return_exceptions=True)
        self._procs = [e for e in self._procs if e not in stopping or e[1].returncode is None]
        if self._procs:  # still tracked, so the restart stops them again
            pids = ", ".join(str(p.pid) for _, p in self._procs)
            raise DesktopError(f"process(es) {pids} did not end after SIGKILL")
        # 2. deskpilot's own connection: closed tidily (spare keycodes and buttons released).
        # Xvfb runs with -noreset: with no client left it keeps its state and cookie.
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.aclose()
        # 3. A new HOME with the same skeleton and cookie; the old one removed.
        old_home, auth_name = self._home, Path(self._xauthority).name

        def new_home() -> Path:
            home = self._prepare_home()
            try:
                write_xauthority(home / auth_name, cookie)
            except BaseException:
                remove_scratch_dir(home)
                raise
            return home

        home = await asyncio.to_thread(new_home)
        old = str(old_home)
        self._env = {
            k: str(home) + v[len(old) :] if v == old or v.startswith(old + "/") else v
            for k, v in self._env.items()
        }
        self._home, self._xauthority = home, str(home / auth_name)
        await asyncio.to_thread(remove_scratch_dir, old_home)
        # 4. Connect again; the X server as it was at start; the programs; a settled screen.
        backend = self._make_backend()
        try:
            await backend.start()
        except BaseException:
            await backend.aclose()
            raise
        self._backend = backend
        await backend.run_x("reset the X server", restore, fresh, self._background)
        await self._start_programs()
        if self.apps:  # their first frames drawn before the next task looks
            await backend.wait_settled(timeout_s=2.0)

    async def health(self) -> dict[str, Any]:
        """Whether the desktop runs and its X server answers (see
        :meth:`deskpilot.desktop.base.DesktopHost.health`)."""
        info: dict[str, Any] = {
            "ok": False,
            "display": self.display,
            "width": self.width,
            "height": self.height,
            "detail": "",
        }
        if not self._started or not self._is_alive():
            info["detail"] = "The desktop is not running."
            return info
        try:
            await asyncio.wait_for(self.cursor_position(), 5.0)
        except Exception as exc:
            info["detail"] = f"The X server does not answer: {type(exc).__name__}: {exc}"
            return info
        info["ok"] = True
        info["detail"] = "The desktop is running and its X server answers."
        return info


__all__ = ["LocalHost"]
