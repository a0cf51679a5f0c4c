"""Keeping deskpilot's own process out of reach of the programs it starts.

The bash tool's shell and the desktop's apps run code the model chooses, and a prompt-injected
model goes looking for credentials. Their *own* environment is clean
(:mod:`deskpilot.desktop.environment`), but deskpilot's process holds the API key: in its
initial environment block (``/proc/<pid>/environ``, which keeps the variables the process
started with) and in memory (``/proc/<pid>/mem``, a key passed only as ``api_key=``). A child
of the same user could read both through ``/proc/$PPID`` (adversarial probe #1, finding A).
Two layers close that:

1. **deskpilot's process is not dumpable** (:func:`protect_process`):
   ``prctl(PR_SET_DUMPABLE, 0)`` before the first desktop or shell starts. The kernel then
   refuses ``/proc/<pid>/environ``, ``mem``, ``fd``, ``maps`` and ``ptrace`` to every
   process without ``CAP_SYS_PTRACE``, i.e. to every non-root process of the same user
   (ptrace access mode checks: https://man7.org/linux/man-pages/man2/ptrace.2.html; the flag:
   https://man7.org/linux/man-pages/man2/PR_SET_DUMPABLE.2const.html). Side effects: the
   deskpilot process writes no core dump and a debugger or profiler (gdb, py-spy) cannot
   attach to it without root; set ``DESKPILOT_DUMPABLE=1`` to keep it dumpable while
   debugging. It does not stop root, which has ``CAP_SYS_PTRACE``.
2. **The programs run in their own PID and mount namespace** with a fresh ``/proc``
   (:func:`namespace_argv`, util-linux ``unshare --pid --fork --mount-proc --kill-child``:
   https://man7.org/linux/man-pages/man1/unshare.1.html): they see only the processes of
   their namespace, so deskpilot's process has no ``/proc`` entry they could open (their
   ``$PPID`` is 0), whoever they run as, root included. As root this needs nothing else; as
   another user an unprivileged user namespace is added (``--user --map-current-user``: the
   program keeps your uid). Where neither works (a container whose seccomp profile forbids
   ``unshare``, user namespaces switched off), layer 1 alone applies and the reason is logged
   once. Side effects: every program (each app, the bash tool's shell) is the first process
   (pid 1) of its own namespace, so its background jobs, even ``setsid`` ones, end with it
   (the kernel kills the rest of a namespace when its first process exits), and so does what
   a launched program starts before it exits (``launch("sh", "-c", "xterm &")`` shows no
   xterm: launch the program itself); a program cannot
   see or signal another app's processes (``pkill chromium`` from the bash tool finds
   nothing); and signals a program sends to itself by pid (``kill $$``) are ignored unless it
   handles them, as for any pid 1. The X server itself is started outside (it runs no code
   the model chooses, and its lock file records its pid, which would be 1 for every server).

Measured on a 2-core machine (``docs/desktop-backend.md``, "Process isolation"): a program
(the bash tool's shell, an app) takes 2-4 ms longer to start, the non-dumpable flag costs
nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import subprocess
import sys
import threading
import time

__all__ = [
    "DUMPABLE_ENV",
    "namespace_argv",
    "namespace_child",
    "namespace_prefix",
    "protect_process",
]

log = logging.getLogger(__name__)

#: Set to ``1`` to leave deskpilot's process dumpable (core dumps, gdb/py-spy attach).
DUMPABLE_ENV = "DESKPILOT_DUMPABLE"

_PR_SET_DUMPABLE = 4
_lock = threading.Lock()
_protected = False
_prefix: list[str] | None = None


def protect_process() -> bool:
    """Make this process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``), once; see layer 1 of
    the module docstring. Returns True when the flag is set (False: not Linux, or
    ``DESKPILOT_DUMPABLE=1``). Safe to call often and from any thread."""
    global _protected
    if _protected:
        return True
    if not sys.platform.startswith("linux") or os.environ.get(DUMPABLE_ENV) == "1":
        return False
    with _lock:
        if _protected:
            return True
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        except (OSError, AttributeError) as exc:  # pragma: no cover - prctl exists on Linux
            log.warning("Could not make the deskpilot process non-dumpable: %s", exc)
            return False
        _protected = True
        return True


def _candidates(unshare: str) -> list[list[str]]:
    ns = ["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"]
    if os.geteuid() == 0:
        return [[unshare, *ns, "--"]]
    return [
        [unshare, "--user", "--map-current-user", *ns, "--"],
        [unshare, "--user", "--map-root-user", *ns, "--"],  # util-linux before 2.38
    ]


def namespace_prefix() -> list[str]:
    """The argv prefix that starts a program in a new PID and mount namespace with a fresh
    ``/proc`` (layer 2 of the module docstring), or ``[]`` where that does not work here.
    Tried once per process (about 5 ms) and cached; the reason of a failure is logged once."""
    global _prefix
    if _prefix is not None:
        return _prefix
    with _lock:
        if _prefix is not None:
            return _prefix
        _prefix = _probe()
        return _prefix


def _probe() -> list[str]:
    from deskpilot.desktop.environment import child_env

    unshare = shutil.which("unshare") if sys.platform.startswith("linux") else None
    if unshare is None:
        log.warning(
            "util-linux 'unshare' was not found: the desktop's programs and the bash tool's "
            "shell run without their own process namespace (deskpilot's process is only "
            "protected by being non-dumpable, which does not stop root)."
        )
        return []
    error = ""
    for prefix in _candidates(unshare):
        try:
            done = subprocess.run(
                [*prefix, "true"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                env=child_env(),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
            continue
        if done.returncode == 0:
            return prefix
        error = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
    log.warning(
        "Cannot start programs in their own process namespace (%s: %s); the desktop's "
        "programs and the bash tool's shell can see deskpilot's process, which is only "
        "protected by being non-dumpable (that does not stop root). Allow unshare (user "
        "namespaces) or run in a container (docs/desktop-isolation.md).",
        " ".join(_candidates(unshare)[-1][1:-1]),
        error,
    )
    return []


def namespace_argv(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` to run in its own PID and mount namespace, and whether it is wrapped.

    Also makes this process non-dumpable first (:func:`protect_process`). The process that
    starts is ``unshare``; the program runs as its only child (pid 1 inside), in the same
    process group, and is SIGKILLed when ``unshare`` dies (``--kill-child``).
    """
    protect_process()
    prefix = namespace_prefix()
    return ([*prefix, *argv], True) if prefix else (list(argv), False)


async def namespace_child(wrapper_pid: int, timeout_s: float = 2.0) -> int | None:
    """The pid (as this process sees it) of the program ``unshare`` (``wrapper_pid``)
    started, read from ``/proc/<pid>/task/<pid>/children``; None if it did not appear within
    ``timeout_s`` seconds or the wrapper is gone."""
    path = f"/proc/{wrapper_pid}/task/{wrapper_pid}/children"
    deadline = time.monotonic() + timeout_s
    delay = 0.0005
    while True:
        try:
            with open(path, "rb") as f:  # noqa: ASYNC230 - a /proc file, never blocks
                kids = f.read().split()
        except OSError:
            return None
        if kids:
            return int(kids[0])
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.01)
