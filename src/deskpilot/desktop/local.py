"""``LocalDesktop``: a private virtual desktop (its own Xvfb + openbox + apps).

``LocalDesktop`` starts Xvfb on a free display picked by the server itself (``-displayfd``:
no fixed numbers, no stale lock files), openbox with a configuration that grabs no keys and
has a root menu, and optional apps; it waits for each (an app started before the window
manager is ready may never get focus). Xvfb accepts only clients holding the desktop's random
cookie (``-auth``, :mod:`deskpilot.desktop.xauth`). Every process gets a scratch ``HOME``, an allow-listed
environment (:mod:`deskpilot.desktop.environment`: no credential of deskpilot's) and its own
process group; :meth:`LocalDesktop.close` ends every group and removes the scratch directory,
and :mod:`deskpilot.desktop.processes` makes sure they go even if the Python process is
SIGKILLed (parent-death signal, a watcher process, stale-directory cleanup).

Each program but the X server runs in its own PID and mount namespace where the system allows
it, and deskpilot's process is non-dumpable (:mod:`deskpilot.desktop.isolation`), so a program
on the desktop cannot read deskpilot's ``/proc/PID/environ`` or memory. The desktop is still
**not a security boundary**: its programs run as your user, on your file system and network.
To isolate a run, use a container or VM (``docs/desktop-isolation.md``).

``X11Display`` (:mod:`deskpilot.desktop.display`, re-exported here) drives an existing display.
Both implement the :class:`deskpilot.desktop.base.Computer` protocol in native pixels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Self

from deskpilot.desktop.apps import app_spec, menu_xml
from deskpilot.desktop.display import X11Display
from deskpilot.desktop.environment import child_env
from deskpilot.desktop.host import LocalHost
from deskpilot.desktop.isolation import namespace_argv, namespace_child, protect_process
from deskpilot.desktop.processes import (
    make_scratch_dir,
    process_alive,
    reaper,
    remove_scratch_dir,
    signal_group,
    with_pdeathsig,
)
from deskpilot.desktop.settle import SettleConfig
from deskpilot.desktop.startlimit import starting
from deskpilot.desktop.x11 import DEFAULT_RESPONSE_TIMEOUT_S
from deskpilot.desktop.x11_windows import set_background, wm_ready
from deskpilot.desktop.xauth import new_cookie, write_xauthority
from deskpilot.errors import (
    ConfigError,
    DeskpilotTimeoutError,
    DesktopError,
    MissingDependencyError,
)

__all__ = ["LaunchedApp", "LocalDesktop", "X11Display"]

log = logging.getLogger(__name__)

INSTALL_HINT = "run: bash scripts/install-desktop-deps.sh (or sudo apt-get install -y --no-install-recommends {pkg})"
#: Allow-listed parent variables that must not reach a process on a deskpilot desktop (the
#: desktop sets its own DISPLAY and XAUTHORITY).
_DESKTOP_DROP = ("DISPLAY", "XAUTHORITY")
#: The desktop's Xauthority file, in its scratch HOME (deskpilot.desktop.xauth).
XAUTHORITY_NAME = ".Xauthority"


@dataclass(frozen=True)
class LaunchedApp:
    """A program started on a desktop.

    Attributes:
        pid: the id of the process deskpilot started, also the program's process-group id:
            the program itself, or the ``unshare`` whose only child it is when it runs in
            its own namespace (:mod:`deskpilot.desktop.isolation`; it ends with the program).
        window: the X id of its first top-level window, or None if not waited for.
        argv: the argument list it was started with.
    """

    pid: int
    window: int | None
    argv: tuple[str, ...]


def _parse_colour(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    if len(text) != 6:
        raise ConfigError(f"background must be a colour like '#3a6ea5', not {colour!r}.")
    try:
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except ValueError:
        raise ConfigError(f"background must be a colour like '#3a6ea5', not {colour!r}.") from None


def _read_displayfd(fd: int) -> bytes:
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = os.read(fd, 64)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data


# ---------------------------------------------------------------------- LocalDesktop
class LocalDesktop(LocalHost, X11Display):
    """A private virtual desktop: Xvfb + openbox (+ optional apps), torn down on close.

    Args:
        width: screen width in pixels.
        height: screen height in pixels.
        depth: colour depth (24 or 32; 24 is what mss and Pillow expect).
        apps: apps to start and wait for, by name: ``"terminal"`` (xterm), ``"text_editor"``
            (mousepad), ``"browser"`` (chromium); the last one started is focused.
        window_manager: ``"openbox"`` (default, with deskpilot's key-grab-free config and
            a root menu) or None for a bare X server.
        settle: True (default timing), False, or a :class:`SettleConfig`.
        background: the solid desktop background colour, ``"#rrggbb"``.
        start_timeout_s: limit for each start step (X server, WM, each app's window), in
            seconds.
        response_timeout_s: seconds one X round trip may take once started; a desktop that
            does not answer in time is reported dead ("not responding", :attr:`dead`) and
            must be restarted.
        env: extra environment variables for every process of the desktop (applied over
            the allow-listed ones; see below).

    Environment: the desktop's processes never inherit deskpilot's own environment. They
    get the allow-listed variables of :mod:`deskpilot.desktop.environment` (``PATH``,
    ``LANG``/``LC_*``, ...; never an API key or cloud credential), the desktop's own
    (``DISPLAY``, ``XAUTHORITY``, a scratch ``HOME``, ``XDG_*`` dirs, ``C.UTF-8`` locale)
    and ``env``.

    Host: commands, files, :meth:`reset` and :meth:`health` on this machine, the
    :class:`~deskpilot.desktop.base.DesktopHost` protocol (:mod:`deskpilot.desktop.host`).

    Access: Xvfb runs with ``-auth``; each start makes a new random cookie, kept in the
    scratch HOME (:mod:`deskpilot.desktop.xauth`). Only clients holding it (the desktop's
    programs, deskpilot's own connection, a program given :attr:`env`) can connect; other
    users of the machine cannot screenshot the desktop or type into it.

    Example::

        async with LocalDesktop(1280, 800, apps=("terminal",)) as desktop:
            await desktop.type_text("echo hi\\n")
            img = await desktop.screenshot()

    Raises (from :meth:`start`):
        MissingDependencyError: Xvfb/openbox/an app is not installed (message: the command).
        DesktopError: a process exited during start.
        DeskpilotTimeoutError: a step did not finish within ``start_timeout_s``.
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 800,
        *,
        depth: int = 24,
        apps: Sequence[str] = (),
        window_manager: str | None = "openbox",
        settle: bool | SettleConfig = True,
        background: str = "#3a6ea5",
        start_timeout_s: float = 15.0,
        env: Mapping[str, str] | None = None,
        response_timeout_s: float = DEFAULT_RESPONSE_TIMEOUT_S,
    ) -> None:
        for name, v, lo, hi in (("width", width, 64, 8192), ("height", height, 64, 8192)):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"{name} must be an integer from {lo} to {hi} pixels, not {v!r}.")
        if depth not in (24, 32):
            raise ConfigError(f"depth must be 24 or 32, not {depth!r}.")
        if window_manager not in ("openbox", None):
            raise ConfigError(f"window_manager must be 'openbox' or None, not {window_manager!r}.")
        if isinstance(apps, str):
            apps = (apps,)
        self._app_specs = [app_spec(a) for a in apps]  # validates names now
        super().__init__("", settle=settle, response_timeout_s=response_timeout_s)
        self.width = width
        self.height = height
        self.depth = depth
        self.window_manager = window_manager
        self.apps = tuple(apps)
        self._background = _parse_colour(background)
        self.start_timeout_s = start_timeout_s
        self._home: Path | None = None
        self._xvfb: asyncio.subprocess.Process | None = None
        self._procs: list[tuple[str, asyncio.subprocess.Process]] = []
        self._isolated: set[int] = set()  # pids of the unshare wrappers among _procs
        self._env: dict[str, str] = {}
        self._user_env = child_env(env, base={})  # validates: strings only

    @staticmethod
    def _check_display_name(display: str) -> None:
        if display != "":  # Xvfb picks the number at start
            raise ConfigError("A LocalDesktop picks its own display; do not pass one.")

    # ------------------------------------------------------------------ properties
    @property
    def display(self) -> str:
        """The X display name, e.g. ``":7"`` (empty before start; may change on restart)."""
        return self._display

    @property
    def home(self) -> Path | None:
        """The scratch HOME of the desktop's processes (removed on close)."""
        return self._home

    @property
    def env(self) -> dict[str, str]:
        """The variables that put a program on this desktop: DISPLAY, XAUTHORITY (the file
        with the desktop's cookie, without which the X server refuses a client), HOME (scratch), LANG,
        LC_ALL, GSETTINGS_BACKEND, XDG_* dirs, and what ``env=`` added. For a program of your
        own, spawn it with ``env=merged_env(desktop)`` (these over the allow-listed parent
        variables, no credentials)."""
        return {**self._env, **self._user_env}

    @property
    def pids(self) -> list[int]:
        """Process (and process-group) ids of the desktop's processes, Xvfb first."""
        out = [self._xvfb.pid] if self._xvfb is not None else []
        return out + [p.pid for _, p in self._procs]

    def _is_alive(self) -> bool:
        proc = self._xvfb
        return proc is not None and proc.returncode is None and process_alive(proc.pid)

    # ------------------------------------------------------------------ start/stop
    async def start(self) -> Self:
        """Start Xvfb, openbox and the apps, each waited for. Returns self."""
        self._ensure_open()
        if self._started:
            return self
        try:
            async with starting():  # at most MAX_STARTING desktops start at once
                await self._start_all()
        except BaseException:
            await self._stop_all()
            raise
        self._started = True
        return self

    def _full_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of the desktop's processes (:func:`child_env`: allow-listed
        parent variables, then the desktop's own, then ``env=``, then ``extra``)."""
        return child_env({**self._env, **self._user_env, **(extra or {})}, drop=_DESKTOP_DROP)

    def _prepare_home(self) -> Path:
        home = make_scratch_dir("home")
        for sub in (".config/openbox", ".cache", ".local/share", ".runtime"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        (home / ".runtime").chmod(0o700)
        (home / ".config/openbox/menu.xml").write_text(menu_xml(home), encoding="utf-8")
        rc = resources.files("deskpilot.desktop").joinpath("openbox-rc.xml").read_text("utf-8")
        (home / ".config/openbox/rc.xml").write_text(rc, encoding="utf-8")
        return home

    @staticmethod
    def _require(program: str, package: str) -> str:
        path = shutil.which(program)
        if path is None:
            raise MissingDependencyError(
                f"'{program}' is not installed; {INSTALL_HINT.format(pkg=package)}."
            )
        return path

    async def _start_all(self) -> None:
        xvfb = self._require("Xvfb", "xvfb")
        protect_process()  # before any program starts (deskpilot.desktop.isolation)
        if self.window_manager == "openbox":
            self._require("openbox", "openbox")
        self._home = await asyncio.to_thread(self._prepare_home)
        home = str(self._home)
        # A new random cookie: only clients holding it may connect (deskpilot.desktop.xauth).
        auth = str(write_xauthority(self._home / XAUTHORITY_NAME, new_cookie()))
        self._xauthority = auth
        self._env = {
            "HOME": home,
            "XAUTHORITY": auth,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "GSETTINGS_BACKEND": "memory",
            "NO_AT_BRIDGE": "1",
            "XDG_CONFIG_HOME": f"{home}/.config",
            "XDG_CACHE_HOME": f"{home}/.cache",
            "XDG_DATA_HOME": f"{home}/.local/share",
            "XDG_RUNTIME_DIR": f"{home}/.runtime",
        }
        # 1. Xvfb on a display number it picks itself.
        read_fd, write_fd = os.pipe()
        try:
            argv = [xvfb, "-displayfd", str(write_fd), "-screen", "0"]
            argv += [f"{self.width}x{self.height}x{self.depth}", "-nolisten", "tcp"]
            argv += ["-noreset", "-dpi", "96", "-auth", auth]
            # No GLX: it maps Mesa's software rasteriser (libLLVM, ~50 MB a desktop) into Xvfb;
            # the apps here draw without it (chromium runs with --disable-gpu).
            argv += ["-extension", "GLX"]
            self._xvfb = await asyncio.create_subprocess_exec(
                # SIGKILL: a stopped (SIGSTOP) Xvfb never acts on a SIGTERM; the lock file
                # it leaves is stale (its pid is gone) and the next Xvfb takes it over.
                *with_pdeathsig(argv, signal.SIGKILL),
                pass_fds=(write_fd,),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                env=self._full_env(),
                cwd=home,
            )
            reaper().watch_group(self._xvfb.pid)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        try:
            data = await asyncio.wait_for(
                asyncio.to_thread(_read_displayfd, read_fd), self.start_timeout_s
            )
        except TimeoutError:
            raise DeskpilotTimeoutError(
                f"Xvfb did not report a display within {self.start_timeout_s} s "
                "(start_timeout_s); check that Xvfb runs: Xvfb -displayfd 1."
            ) from None
        number = data.strip().decode("ascii", "replace")
        if not number.isdigit():
            rc = await self._reap(self._xvfb, 1.0)
            raise DesktopError(
                f"Xvfb exited (code {rc}) before reporting a display number; run "
                f"'Xvfb -displayfd 1 -screen 0 {self.width}x{self.height}x{self.depth}' to see why."
            )
        self._display = f":{number}"
        self._env["DISPLAY"] = self._display
        log.info(
            "Xvfb pid %d on %s (%dx%d)", self._xvfb.pid, self._display, self.width, self.height
        )
        # 2. Connect, paint the background.
        await super().start()
        backend = self._b()
        await backend.run_x("set the background", set_background, self._background)
        await self._remember_fresh_server()  # for a light reset (deskpilot.desktop.host)
        await self._start_programs()

    async def _start_programs(self) -> None:
        """On the running X server: the window manager, then the apps (each waited for)."""
        assert self._home is not None
        backend = self._b()
        # 3. Window manager, waited for.
        if self.window_manager == "openbox":
            rc_path = str(self._home / ".config/openbox/rc.xml")
            # openbox sets _NET_SUPPORTING_WM_CHECK early, before its mouse bindings (the
            # root menu) are live; --startup runs a command once initialisation is complete.
            ready = self._home / ".wm-ready"
            touch = shutil.which("touch") or "/usr/bin/touch"
            proc = await self._spawn(
                "openbox",
                [
                    "openbox",
                    "--config-file",
                    rc_path,
                    "--sm-disable",
                    "--startup",
                    shlex.join([touch, str(ready)]),
                ],
            )

            async def openbox_ready() -> bool:
                return ready.exists() and bool(await backend.run_x("read the WM check", wm_ready))

            await self._wait_for(openbox_ready, proc, "openbox to start (--startup, WM check)")
        # 4. Apps, each waited for and focused.
        for spec in self._app_specs:
            await self.launch(spec.name)

    async def _spawn(
        self, name: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        assert self._home is not None
        # Its own PID and mount namespace (deskpilot.desktop.isolation): the program cannot
        # see deskpilot's process. unshare blocks SIGTERM, so its parent-death signal is
        # SIGKILL; --kill-child then ends the program and the namespace with it.
        wrapped, isolated = namespace_argv(argv)
        try:
            proc = await asyncio.create_subprocess_exec(
                *with_pdeathsig(wrapped, signal.SIGKILL if isolated else signal.SIGTERM),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                env=self._full_env(env),
                cwd=str(self._home),
            )
            reaper().watch_group(proc.pid)
        except FileNotFoundError as exc:
            raise MissingDependencyError(
                f"'{argv[0]}' is not installed; {INSTALL_HINT.format(pkg=argv[0])}."
            ) from exc
        self._procs.append((name, proc))
        if isolated:
            self._isolated.add(proc.pid)
        log.info("started %s (pid %d) on %s", name, proc.pid, self._display)
        return proc

    async def _wait_for(self, probe, proc: asyncio.subprocess.Process, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout_s
        while True:
            result = await probe()
            if result:
                return result
            if proc.returncode is not None or not process_alive(proc.pid):
                rc = await self._reap(proc, 1.0)
                raise DesktopError(
                    f"{proc.pid} exited (code {rc}) while waiting for {what} on {self._display}."
                )
            if loop.time() > deadline:
                raise DeskpilotTimeoutError(
                    f"Timed out after {self.start_timeout_s} s (start_timeout_s) waiting for {what}."
                )
            await asyncio.sleep(0.01)

    async def launch(
        self,
        program: str,
        *args: str,
        wait_window: bool = True,
        activate: bool = True,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LaunchedApp:
        """Start a program on this desktop (its env, scratch HOME, own process group).

        A known app name with no args (``"terminal"``, ``"xterm"``, ``"text_editor"``,
        ``"mousepad"``, ``"browser"``, ``"chromium"``) uses deskpilot's command line for it.

        Args:
            program: executable name or path, or a known app name.
            args: its arguments (an argument list; never parsed by a shell).
            wait_window: wait until it shows a new top-level window.
            activate: then focus that window and wait until it is active.
            timeout_s: limit for the window in seconds (default ``start_timeout_s``).
            env: extra environment variables for this program only (over the desktop's;
                nothing else of deskpilot's environment is inherited).

        Returns:
            A :class:`LaunchedApp` with its pid and window id.

        Raises:
            MissingDependencyError: the program is not installed.
            DesktopError: it exited before showing a window.
            DeskpilotTimeoutError: no window within the limit.
        """
        backend = self._b()
        argv: list[str]
        if not args:
            try:
                spec = app_spec(program)
            except ConfigError:
                spec = None
            if spec is not None and shutil.which(program) in (None, shutil.which(spec.program)):
                self._require(spec.program, spec.package)
                assert self._home is not None
                argv = spec.argv(self._home)
            else:
                argv = [program]
        else:
            argv = [program, *args]
        if shutil.which(argv[0]) is None:
            raise MissingDependencyError(
                f"'{argv[0]}' was not found on PATH; install it (e.g. "
                f"{INSTALL_HINT.format(pkg=Path(argv[0]).name)})."
            )
        before = set(await self.client_windows()) if wait_window else set()
        proc = await self._spawn(Path(argv[0]).name, argv, env)
        window: int | None = None
        if wait_window:
            old_timeout = self.start_timeout_s
            if timeout_s is not None:
                self.start_timeout_s = timeout_s
            try:

                async def new_window() -> int | None:
                    fresh = [w for w in await self.client_windows() if w not in before]
                    return fresh[-1] if fresh else None

                window = await self._wait_for(new_window, proc, f"a window of {argv[0]}")
            finally:
                self.start_timeout_s = old_timeout
            if activate:
                await self.activate_window(window)
            await backend.settle_mark()
        return LaunchedApp(pid=proc.pid, window=window, argv=tuple(argv))

    async def _reap(self, proc: asyncio.subprocess.Process, timeout_s: float) -> int | None:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(proc.wait(), timeout_s)
        return proc.returncode

    async def _stop_proc(self, proc: asyncio.subprocess.Process) -> None:
        if proc.pid in self._isolated:
            # The program is pid 1 of its namespace: it ignores SIGTERM unless it handles it,
            # and its death ends every process of the namespace. Kill it, then reap unshare,
            # which returns only once the namespace is empty.
            self._isolated.discard(proc.pid)
            if proc.returncode is None:
                child = await namespace_child(proc.pid, 0.0)
                if child is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(child, signal.SIGKILL)
                # No child yet (just started): unshare itself goes, --kill-child ends the rest.
                if child is None or (
                    await self._reap(proc, 2.0) is None and proc.returncode is None
                ):
                    signal_group(proc.pid, signal.SIGKILL)
                    await self._reap(proc, 5.0)
            signal_group(proc.pid, signal.SIGKILL)
            reaper().unwatch_group(proc.pid)
            return
        if proc.returncode is None:
            signal_group(proc.pid, signal.SIGTERM)
            signal_group(proc.pid, signal.SIGCONT)  # a stopped process handles it now
            if await self._reap(proc, 2.0) is None and proc.returncode is None:
                signal_group(proc.pid, signal.SIGKILL)
                await self._reap(proc, 5.0)
        # Children that stayed in the group (e.g. a shell's jobs) go too.
        signal_group(proc.pid, signal.SIGKILL)
        reaper().unwatch_group(proc.pid)

    async def _stop_all(self) -> None:
        if self._backend is not None:  # the X server is about to go: no X requests
            backend, self._backend = self._backend, None
            backend.close()
        procs = [p for _, p in reversed(self._procs)]
        await asyncio.gather(*(self._stop_proc(p) for p in procs), return_exceptions=True)
        self._procs.clear()
        if self._xvfb is not None:
            await self._stop_proc(self._xvfb)
            self._xvfb = None
        if self._home is not None:
            home, self._home = self._home, None
            await asyncio.to_thread(remove_scratch_dir, home)  # the cookie file with it
        self._xauthority = None
        self._started = False

    async def close(self) -> None:
        """Stop every process group (apps, WM, then Xvfb), await them, remove the scratch
        HOME. Idempotent; afterwards every method raises ClosedError."""
        self._closed = True
        await self._stop_all()

    async def restart(self) -> Self:
        """Stop whatever is left of this desktop and start it again (e.g. after the X server
        died: actions raise DisplayDiedError until then). The display name may change.

        Raises:
            ClosedError: the desktop was closed.
        """
        self._ensure_open()
        await self._stop_all()
        self._display = ""
        return await self.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._started else "not started")
        return (
            f"LocalDesktop({self.width}x{self.height}, display={self._display or None!r}, {state})"
        )


def merged_env(
    desktop: LocalDesktop | X11Display, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a program of your own on ``desktop``: the allow-listed variables
    of ``base`` (default ``os.environ``; see :mod:`deskpilot.desktop.environment`, so no
    credential is copied) with the desktop's variables (``DISPLAY``, scratch ``HOME``, ...)
    applied."""
    return child_env(desktop.env, base=base, drop=_DESKTOP_DROP)
