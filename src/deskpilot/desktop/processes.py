"""Processes and scratch directories that never outlive deskpilot, even after SIGKILL.

Three layers, because no single one covers every way the Python process can end:

1. **Parent-death signal.** Desktop processes and the bash tool's shell are started through
   ``setpriv --pdeathsig SIG --`` (util-linux; it calls ``prctl(PR_SET_PDEATHSIG)`` and then
   execs the program, so the pid is the program's own). The kernel signals the child when the
   thread that started it exits, SIGKILL of the whole process included. A ``preexec_fn`` would
   do the same without the extra exec, but is unsafe once threads exist (the X backend has
   one per display; https://docs.python.org/3/library/subprocess.html#subprocess.Popen).
   Not inherited by grandchildren (a shell's background jobs, a browser's helpers).
2. **A watcher process** (:class:`Reaper`, one per Python process, started on first use in
   its own session). deskpilot registers every process group it starts and every scratch
   directory it makes; when its pipe from the parent reaches end-of-file (the parent exited,
   however), it SIGKILLs the groups that are still registered (a shell's jobs, an app's
   helpers) and removes the directories. Normal shutdown unregisters them first.
3. **Stale scratch directories** are named ``deskpilot-<kind>-<owner pid>-<random>``; the
   first start of a desktop or shell in a process removes the ones (of this user) whose owner
   process is gone, in case both the parent and its watcher were killed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

__all__ = [
    "Reaper",
    "clean_stale_scratch_dirs",
    "make_scratch_dir",
    "process_alive",
    "reaper",
    "signal_group",
    "signal_name",
    "with_pdeathsig",
]

log = logging.getLogger(__name__)

_SCRATCH = re.compile(r"^deskpilot-(?:home|bash)-(\d+)-[A-Za-z0-9_]+$")


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (reads ``/proc``; no waitpid)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def signal_name(signum: int) -> str:
    """The name of signal ``signum`` (``9`` -> ``"SIGKILL"``), or ``"signal N"`` for a number
    Python does not know; for a child killed by a signal, asyncio's ``returncode`` is
    ``-signum``."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid`` (gone or not ours: ignored)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def with_pdeathsig(argv: list[str], sig: signal.Signals = signal.SIGKILL) -> list[str]:
    """``argv`` prefixed so the program gets ``sig`` when deskpilot's thread that starts it
    exits (``setpriv --pdeathsig``); unchanged where setpriv is missing (the watcher still
    covers it)."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", sig.name.removeprefix("SIG"), "--", *argv]


def make_scratch_dir(kind: str) -> Path:
    """A new private directory ``$TMPDIR/deskpilot-<kind>-<pid>-<random>`` (mode 0700),
    registered with the watcher; remove it with :func:`remove_scratch_dir`."""
    clean_stale_scratch_dirs()
    path = Path(tempfile.mkdtemp(prefix=f"deskpilot-{kind}-{os.getpid()}-"))
    reaper().watch_path(path)
    return path


def remove_scratch_dir(path: Path | str) -> None:
    """Remove a scratch directory and unregister it (missing: fine)."""
    shutil.rmtree(path, ignore_errors=True)
    reaper().unwatch_path(Path(path))


_cleaned = False
_cleaned_lock = threading.Lock()


def clean_stale_scratch_dirs(tmpdir: str | None = None, *, force: bool = False) -> list[Path]:
    """Remove this user's ``deskpilot-home-*``/``deskpilot-bash-*`` directories whose owner
    process is gone (once per process unless ``force``). Returns what was removed."""
    global _cleaned
    with _cleaned_lock:
        if _cleaned and not force:
            return []
        _cleaned = True
    root = Path(tmpdir or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        m = _SCRATCH.match(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        owner = int(m.group(1))
        if not entry.is_dir(follow_symlinks=False) or st.st_uid != uid or owner == os.getpid():
            continue
        if process_alive(owner):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    if removed:
        log.info("Removed %d stale deskpilot scratch director(ies) in %s", len(removed), root)
    return removed


# The watcher: plain Python, no imports from deskpilot (starts in ~20 ms, holds nothing).
_WATCHER = r"""
import os, shutil, signal, sys
groups, paths = set(), set()
for line in sys.stdin.buffer:
    op, _, arg = line.decode("utf-8", "surrogateescape").rstrip("\n").partition(" ")
    if op == "+g": groups.add(int(arg))
    elif op == "-g": groups.discard(int(arg))
    elif op == "+d": paths.add(arg)
    elif op == "-d": paths.discard(arg)
for g in groups:
    try: os.killpg(g, signal.SIGKILL)
    except OSError: pass
for p in paths:
    shutil.rmtree(p, ignore_errors=True)
"""


class Reaper:
    """Client of the watcher process (see the module docstring). Thread-safe; lazy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()

    @property
    def pid(self) -> int | None:
        """The watcher's pid once started."""
        return self._proc.pid if self._proc is not None else None

    def watch_group(self, pgid: int) -> None:
        """SIGKILL process group ``pgid`` if this process exits before :meth:`unwatch_group`."""
        self._send(f"+g {pgid}")

    def unwatch_group(self, pgid: int) -> None:
        self._send(f"-g {pgid}")

    def watch_path(self, path: Path) -> None:
        """Remove ``path`` if this process exits before :meth:`unwatch_path`."""
        self._send(f"+d {path}")

    def unwatch_path(self, path: Path) -> None:
        self._send(f"-d {path}")

    def _send(self, line: str) -> None:
        if "\n" in line:
            return
        with self._lock:
            proc = self._ensure()
            if proc is None or proc.stdin is None:
                return
            try:
                proc.stdin.write(line.encode("utf-8", "surrogateescape") + b"\n")
                proc.stdin.flush()
            except OSError:
                log.warning("The deskpilot watcher process is gone; leftovers are not guarded.")
                self._proc = None

    def _ensure(self) -> subprocess.Popen[bytes] | None:
        if self._pid != os.getpid():  # a forked child: its own watcher
            self._proc, self._pid = None, os.getpid()
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        from deskpilot.desktop.environment import child_env

        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _WATCHER],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C to the terminal's group must not end it
                close_fds=True,
                env=child_env(),
            )
        except OSError as exc:
            log.warning("Could not start the deskpilot watcher process: %s", exc)
            self._proc = None
        return self._proc

    def close(self) -> None:
        """End the watcher now (it then kills and removes whatever is still registered);
        called at interpreter exit."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None or self._pid != os.getpid():
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2.0)


_REAPER = Reaper()
atexit.register(_REAPER.close)


def reaper() -> Reaper:
    """The process-wide :class:`Reaper`."""
    return _REAPER
