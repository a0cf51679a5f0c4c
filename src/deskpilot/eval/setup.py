"""Set-up and post-config steps of OSWorld tasks, run on a desktop through its DesktopHost.

The step types and their parameters are OSWorld's (https://github.com/xlang-ai/OSWorld,
desktop_env/controllers/setup.py, ``SetupController._<type>_setup``):

- ``command`` / ``execute``: ``{"command": str | [argv], "shell": bool}`` -- run to the end
  (:func:`~deskpilot.eval.context.normalize_command`); a non-zero exit fails the step. A
  ``python -c "import pyautogui; ..."`` one-liner is translated into desktop actions
  (:mod:`deskpilot.eval.pyautogui_compat`).
- ``launch``: ``{"command": str | [argv], "shell": bool}`` -- start a program in the
  background. ``gnome-terminal``/``xterm``/``terminal`` start deskpilot's xterm with a
  transcript (:data:`TERMINAL_LOG`, read by the ``vm_terminal_output`` getter);
  ``google-chrome``/``chromium`` start Debian's chromium with deskpilot's flags
  (``--remote-debugging-port`` dropped); ``gedit``/``mousepad``/``text_editor`` start
  mousepad. For these the step waits (up to :data:`WINDOW_TIMEOUT_S`) for their window.
- ``open``: ``{"path": ...}`` -- open a file with the app for its kind: web pages, PDFs and
  images in chromium, text files in mousepad (office documents are unsupported: no
  LibreOffice here).
- ``sleep``: ``{"seconds": number}`` (at most :data:`MAX_SLEEP_S`).
- ``upload_file``: ``{"files": [{"local_path", "path"}]}`` -- copy a suite file to the desktop.
- ``download``: ``{"files": [{"url", "path"}]}`` -- only ``file://`` URLs or plain local paths
  (suite files); http(s) URLs are "unsupported here" (no network), found at load.
- ``activate_window`` / ``close_window``: ``{"window_name", "strict": bool, "by_class":
  bool}`` -- find the window by title (or WM_CLASS) containing the name (equal to it when
  ``strict``) with ``xdotool search``; activate it, or end its client (``xdotool
  windowkill``: unsaved changes are lost, no dialog).

Paths on the desktop (``path``) are resolved by the host: ``~/x`` and relative paths are
under the desktop's HOME (OSWorld's ``/home/user`` is mapped there by
:meth:`Task.localized <deskpilot.eval.task.Task.localized>`).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

from ..desktop.apps import APPS
from ..errors import DeskpilotError
from . import pyautogui_compat
from .context import EvalContext, SetupError, normalize_command, tail

__all__ = [
    "HOME_FOLDERS",
    "MAX_SLEEP_S",
    "STEP_TYPES",
    "TERMINAL_LOG",
    "TERMINAL_PROGRAMS",
    "WINDOW_TIMEOUT_S",
    "check_step",
    "ere_escape",
    "run_setup",
    "run_step",
]

MAX_SLEEP_S = 60.0
WINDOW_TIMEOUT_S = 20.0
HOME_FOLDERS = ("Desktop", "Documents", "Downloads", "Music", "Pictures", "Videos")
"""Folders of OSWorld's user home that :func:`run_setup` creates before a task's config."""
TERMINAL_LOG = "~/.cache/deskpilot/terminal.log"
"""Where terminals started by ``launch`` record their transcript (``script -f``)."""

TERMINAL_PROGRAMS = frozenset({"gnome-terminal", "xterm", "terminal", "x-terminal-emulator"})
"""Programs a ``launch`` step starts as deskpilot's recorded xterm."""
_BROWSERS = {"google-chrome", "chromium", "chromium-browser", "chrome", "browser"}
_EDITORS = {"gedit", "mousepad", "text_editor", "editor"}
_BROWSER_SUFFIXES = {".html", ".htm", ".xhtml", ".svg", ".pdf", ".png", ".jpg", ".jpeg", ".gif"}
_OFFICE_SUFFIXES = {".docx", ".doc", ".odt", ".xlsx", ".xls", ".ods", ".pptx", ".ppt", ".odp"}
_NETWORK_SCHEMES = ("http://", "https://", "ftp://")


def _is_url(text: str) -> bool:
    return text.lower().startswith(_NETWORK_SCHEMES)


def ere_escape(text: str) -> str:
    """``text`` as a POSIX extended regular expression matching itself (xdotool's syntax)."""
    return "".join("\\" + c if c in ".[]()*+?{}|^$\\" else c for c in text)


# --------------------------------------------------------------------------- static checks
def _check_command(p: dict[str, Any]) -> str | None:
    command = p.get("command")
    if not isinstance(command, str | list) or not command:
        return "needs a 'command' (a string or an argument list)"
    if p.get("until"):
        return "the 'until' retry condition is not supported here"
    if isinstance(command, list) and not p.get("shell"):
        argv = [str(a) for a in command]
        if pyautogui_compat.is_pyautogui(argv):
            try:
                pyautogui_compat.parse(argv[2])
            except ValueError as exc:
                return f"its pyautogui code cannot be done here: {exc}"
    return None


def _check_files(p: dict[str, Any], key: str) -> str | None:
    files = p.get("files")
    if not isinstance(files, list) or not files:
        return "needs a non-empty 'files' list"
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get(key), str) or not f.get("path"):
            return f"every file needs '{key}' and 'path'"
        if _is_url(f[key]):
            return f"unsupported here: {f[key][:80]} needs the network, which eval runs do not have"
    return None


def _check_open(p: dict[str, Any]) -> str | None:
    path = p.get("path")
    if not isinstance(path, str) or not path:
        return "needs a 'path'"
    if PurePosixPath(path).suffix.lower() in _OFFICE_SUFFIXES:
        return (
            f"no app here opens {PurePosixPath(path).suffix} files (LibreOffice is not installed)"
        )
    return None


def _check_sleep(p: dict[str, Any]) -> str | None:
    s = p.get("seconds")
    if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s <= MAX_SLEEP_S:
        return f"needs 'seconds' from 0 to {MAX_SLEEP_S:.0f}"
    return None


def _check_window(p: dict[str, Any]) -> str | None:
    if not isinstance(p.get("window_name"), str) or not p["window_name"]:
        return "needs a 'window_name'"
    return None


_CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "command": _check_command,
    "execute": _check_command,
    "launch": _check_command,
    "open": _check_open,
    "sleep": _check_sleep,
    "upload_file": lambda p: _check_files(p, "local_path"),
    "download": lambda p: _check_files(p, "url"),
    "activate_window": _check_window,
    "close_window": _check_window,
}
STEP_TYPES: tuple[str, ...] = tuple(_CHECKS)
"""The supported step types."""


def check_step(step_type: str, parameters: dict[str, Any]) -> str | None:
    """Why a step cannot run here (unknown type, bad or network-bound parameters), or None."""
    check = _CHECKS.get(step_type)
    if check is None:
        return f"the step type '{step_type}' is not supported here (supported: {', '.join(STEP_TYPES)})"
    return check(parameters)


# --------------------------------------------------------------------------- steps
async def _command(ctx: EvalContext, p: dict[str, Any]) -> str:
    command = normalize_command(
        p["command"], shell=bool(p.get("shell")), home=ctx.host.resolve_path("~")
    )
    if isinstance(command, list) and pyautogui_compat.is_pyautogui(command):
        if ctx.computer is None:
            raise SetupError("The step clicks or types (pyautogui) but no computer was given.")
        actions = pyautogui_compat.parse(command[2])
        await pyautogui_compat.perform(actions, ctx.computer)
        return f"did {len(actions)} pyautogui action(s) on the desktop"
    out = await ctx.host.run_command(command, timeout_s=ctx.command_timeout_s)
    shown = command if isinstance(command, str) else shlex.join(command)
    if out.timed_out:
        raise SetupError(
            f"`{tail(shown, 200)}` did not finish within {ctx.command_timeout_s:.0f} s."
        )
    if not out.ok:
        raise SetupError(
            f"`{tail(shown, 200)}` exited with {out.returncode}: {tail(out.stderr or out.stdout)}"
        )
    return f"ran `{tail(shown, 200)}`"


def _launch_argv(ctx: EvalContext, argv: list[str]) -> tuple[list[str], str | None]:
    """(argv to run, WM_CLASS to wait for) for a launch command."""
    home = ctx.host.resolve_path("~")
    name = PurePosixPath(argv[0]).name
    if name in TERMINAL_PROGRAMS:
        log = ctx.host.resolve_path(TERMINAL_LOG)
        spec = APPS["terminal"]
        return [*spec.argv(home), "-e", "script", "-q", "-f", "-a", "-c", "bash", log], "xterm"
    if name in _BROWSERS:
        spec = APPS["browser"]
        rest = [a for a in argv[1:] if not a.startswith("--remote-debugging")]
        return [*spec.argv(home), *rest], "chromium"
    if name in _EDITORS:
        return [*APPS["text_editor"].argv(home), *argv[1:]], "mousepad"
    return argv, None


_WAIT_WINDOW = (
    # xdotool's own --sync dies on BadWindow when a starting app (chromium) drops a window
    # while it searches, so the search is retried in one shell loop on the desktop.
    # $1: --class or --name, $2: the pattern, $3: seconds.
    'end=$((SECONDS + $3)); until xdotool search --onlyvisible "$1" "$2" 2>/dev/null; do '
    "[ $SECONDS -ge $end ] && exit 1; sleep 0.2; done"
)


_WAIT_PAGE = (
    # chromium shows its window before the page: wait until the title is the page's own.
    "end=$((SECONDS + $1)); while :; do "
    "t=$(xdotool search --onlyvisible --class chromium getwindowname %@ 2>/dev/null); "
    'case "$t" in ""|Chromium|*"Untitled - Chromium"*|*"about:blank"*) ;; *) exit 0;; esac; '
    "[ $SECONDS -ge $end ] && exit 1; sleep 0.2; done"
)


async def _wait_window(ctx: EvalContext, wm_class: str, title: str | None = None) -> None:
    """Wait for a window of ``wm_class`` (and, with ``title``, one whose title holds it)."""
    limit = int(WINDOW_TIMEOUT_S)
    how = ["--class", wm_class] if title is None else ["--name", ere_escape(title)]
    out = await ctx.host.run_command(
        ["bash", "-c", _WAIT_WINDOW, "bash", *how, str(limit)], timeout_s=limit + 5
    )
    if not out.ok:
        what = f" titled {title!r}" if title else ""
        raise SetupError(f"No {wm_class} window{what} appeared within {limit} s.")
    if wm_class == "chromium":
        page = await ctx.host.run_command(
            ["bash", "-c", _WAIT_PAGE, "bash", str(limit)], timeout_s=limit + 5
        )
        if not page.ok:
            raise SetupError(f"Chromium's window showed no page title within {limit} s.")


async def _start(ctx: EvalContext, argv: list[str], title: str | None = None) -> str:
    argv, wm_class = _launch_argv(ctx, argv)
    found = await ctx.host.run_command(
        ["bash", "-c", 'command -v -- "$1"', "bash", argv[0]], timeout_s=10
    )
    if not found.ok:
        raise SetupError(f"The program '{argv[0]}' is not installed on the desktop.")
    if wm_class == "xterm":
        await ctx.put_file(TERMINAL_LOG, b"")
    await ctx.host.run_command(argv, background=True)
    if wm_class is not None:
        await _wait_window(ctx, wm_class)
        if title is not None:  # a running mousepad opens the file in a new tab
            await _wait_window(ctx, wm_class, title)
    return f"started {shlex.join(argv[:3])}{' ...' if len(argv) > 3 else ''}"


async def _launch(ctx: EvalContext, p: dict[str, Any]) -> str:
    command = p["command"]
    if p.get("shell"):
        text = command if isinstance(command, str) else " ".join(command)
        await ctx.host.run_command(text, background=True)
        return f"started `{tail(text, 200)}` in the background"
    argv = normalize_command(command, shell=False, home=ctx.host.resolve_path("~"))
    assert isinstance(argv, list)
    return await _start(ctx, argv)


async def _open(ctx: EvalContext, p: dict[str, Any]) -> str:
    path = ctx.host.resolve_path(p["path"])
    exists = await ctx.host.run_command(["test", "-f", path], timeout_s=10)
    if not exists.ok:
        folder = await ctx.host.run_command(["test", "-d", path], timeout_s=10)
        if folder.ok:
            raise SetupError(f"{path} is a folder; no file manager here opens folders.")
        raise SetupError(f"No file at {path} to open.")
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in _BROWSER_SUFFIXES:
        return await _start(ctx, ["chromium", "file://" + path])
    return await _start(ctx, ["mousepad", path], title=PurePosixPath(path).name)


async def _sleep(ctx: EvalContext, p: dict[str, Any]) -> str:
    await asyncio.sleep(float(p["seconds"]))
    return f"slept {float(p['seconds']):g} s"


async def _copy_files(ctx: EvalContext, p: dict[str, Any], key: str) -> str:
    written = []
    for f in p["files"]:
        local = ctx.local_path(f[key])
        data = await asyncio.to_thread(local.read_bytes)
        written.append(await ctx.put_file(f["path"], data))
    return "wrote " + ", ".join(written)


async def _find_window(ctx: EvalContext, p: dict[str, Any]) -> str:
    name = p["window_name"]
    pattern = ere_escape(name)
    if p.get("strict"):
        pattern = f"^{pattern}$"
    by = "--class" if p.get("by_class") else "--name"
    out = await ctx.host.run_command(
        ["xdotool", "search", "--onlyvisible", by, pattern], timeout_s=10
    )
    ids = out.stdout.split()
    if not ids:
        what = "class" if p.get("by_class") else "title"
        raise SetupError(
            f"No window whose {what} {'is' if p.get('strict') else 'contains'} {name!r}."
        )
    return ids[0]


async def _activate_window(ctx: EvalContext, p: dict[str, Any]) -> str:
    wid = await _find_window(ctx, p)
    out = await ctx.host.run_command(["xdotool", "windowactivate", "--sync", wid], timeout_s=10)
    if not out.ok:
        raise SetupError(f"Window {p['window_name']!r} could not be activated: {tail(out.stderr)}")
    return f"activated {p['window_name']!r}"


async def _close_window(ctx: EvalContext, p: dict[str, Any]) -> str:
    wid = await _find_window(ctx, p)
    out = await ctx.host.run_command(["xdotool", "windowkill", wid], timeout_s=10)
    if not out.ok:
        raise SetupError(f"Window {p['window_name']!r} could not be closed: {tail(out.stderr)}")
    return f"closed {p['window_name']!r}"


_STEPS = {
    "command": _command,
    "execute": _command,
    "launch": _launch,
    "open": _open,
    "sleep": _sleep,
    "upload_file": lambda ctx, p: _copy_files(ctx, p, "local_path"),
    "download": lambda ctx, p: _copy_files(ctx, p, "url"),
    "activate_window": _activate_window,
    "close_window": _close_window,
}


async def run_step(ctx: EvalContext, step_type: str, parameters: dict[str, Any]) -> str:
    """Run one step; returns what it did (one line, for the run's log).

    Raises:
        SetupError: the step is unsupported or failed (a sentence saying why); desktop
            errors (:class:`~deskpilot.errors.DeskpilotError`) are wrapped in it.
    """
    reason = check_step(step_type, parameters)
    if reason:
        raise SetupError(f"The '{step_type}' step cannot run here: {reason}.")
    try:
        return await _STEPS[step_type](ctx, parameters)
    except SetupError:
        raise
    except (DeskpilotError, OSError) as exc:
        raise SetupError(f"The '{step_type}' step failed: {exc}") from exc


async def run_setup(ctx: EvalContext, steps: Sequence[Any], *, where: str = "config") -> list[str]:
    """Run ``steps`` (:class:`~deskpilot.eval.task.SetupStep` s) in order, stopping at the
    first failure. Before a task's ``config`` steps, the home folders OSWorld's VM has
    (:data:`HOME_FOLDERS`: ``~/Desktop``, ``~/Documents``, ...) are created in the desktop's
    fresh HOME, since OSWorld's tasks take them for granted.

    Returns:
        One line per step saying what it did.

    Raises:
        SetupError: ``"config step 2 (launch): ..."`` -- the first step that failed.
    """
    done: list[str] = []
    if where == "config":
        home = ctx.host.resolve_path("~")
        out = await ctx.host.run_command(
            ["mkdir", "-p", *(f"{home}/{d}" for d in HOME_FOLDERS)], timeout_s=10
        )
        if not out.ok:
            raise SetupError(f"The home folders could not be created: {tail(out.stderr)}")
    for number, step in enumerate(steps, 1):
        try:
            done.append(await run_step(ctx, step.type, step.parameters))
        except SetupError as exc:
            raise SetupError(f"{where} step {number} ({step.type}): {exc}") from exc
    return done
