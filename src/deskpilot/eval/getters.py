"""Getters: what an OSWorld evaluator reads from the desktop (or the task) before comparing.

A getter config is ``{"type": name, ...}``; the names and their parameters are OSWorld's
(https://github.com/xlang-ai/OSWorld, desktop_env/evaluators/getters/, e.g. general.py
``get_vm_command_line``, file.py ``get_vm_file``/``get_cloud_file``, misc.py ``get_rule``):

- ``vm_command_line``: ``{"command", "shell"}`` -> the command's stdout (str), run on the
  desktop like a set-up ``execute``; a non-zero exit still gives its stdout (OSWorld's
  server does too); a timeout gives None.
- ``vm_command_error``: the same, its stderr.
- ``vm_terminal_output``: the transcript of the terminal a ``launch`` step started
  (:data:`~deskpilot.eval.setup.TERMINAL_LOG`, control sequences removed, ``\\r\\n`` ->
  ``\\n``); the task must launch its terminal in ``config``/``postconfig``.
- ``vm_file``: ``{"path", "dest"}`` (or lists with ``"multi": true`` and ``"gives"``) ->
  the local path of a copy of the desktop's file in the run's work directory (metrics open
  it), None for a missing file.
- ``cloud_file``: the same for ``{"path": <local suite file or file:// URL>, "dest"}``;
  http(s) URLs are unsupported here (no network).
- ``rule``: ``{"rules": ...}`` -> the rules as written (the metric's expectation).

Every getter returns a :class:`Got`: the value and one line of evidence (what was read).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import DesktopError
from .context import EvalContext, SetupError, tail
from .setup import TERMINAL_LOG, TERMINAL_PROGRAMS

__all__ = ["GETTER_TYPES", "Got", "check_getter", "get_value", "strip_terminal"]

_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_NETWORK = ("http://", "https://", "ftp://")


@dataclass(frozen=True, slots=True)
class Got:
    """A getter's value (str, local path, rules, list for ``multi``; None: nothing there)
    and ``evidence``: one sentence about what was read."""

    value: Any
    evidence: str


def strip_terminal(text: str) -> str:
    """A terminal transcript as plain text: ANSI/OSC escape sequences removed, ``\\r\\n``
    and lone ``\\r`` made ``\\n`` (what a reader of the screen would copy)."""
    text = _ANSI_RE.sub("", text).replace("\r\n", "\n")
    return text.replace("\r", "\n")


def _paths(config: dict[str, Any]) -> tuple[list[str], list[str], list[int]]:
    """(paths, dests, gives) of a file getter, OSWorld's ``multi`` rule."""
    if config.get("multi"):
        paths, dests = list(config.get("path") or []), list(config.get("dest") or [])
        gives = list(config.get("gives") or [0])
    else:
        paths = [config["path"]]
        dests = [config.get("dest") or PurePosixPath(str(config["path"])).name]
        gives = [0]
    return [str(p) for p in paths], [str(d) for d in dests], [int(g) for g in gives]


def _dest(ctx: EvalContext, dest: str) -> Path:
    name = PurePosixPath(dest).name
    if not name or name in (".", ".."):
        raise SetupError(f"The getter's dest {dest!r} is not a file name.")
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    return ctx.work_dir / name


def check_getter(config: dict[str, Any], *, steps: Sequence[Any] = ()) -> str | None:
    """Why a getter cannot run here, or None.

    Args:
        config: the getter object (``{"type": ..., ...}``).
        steps: the task's config and postconfig steps (``vm_terminal_output`` needs one that
            launches a terminal).
    """
    kind = config.get("type")
    if not isinstance(kind, str) or not kind:
        return "the getter has no 'type'"
    if kind not in _GETTERS:
        return f"getter '{kind}' is not supported here (supported: {', '.join(GETTER_TYPES)})"
    if kind in ("vm_command_line", "vm_command_error"):
        cmd = config.get("command")
        if not isinstance(cmd, str | list) or not cmd:
            return f"{kind} needs a 'command'"
    elif kind in ("vm_file", "cloud_file"):
        if config.get("multi"):
            if not isinstance(config.get("path"), list) or not isinstance(config.get("dest"), list):
                return f"{kind} with multi needs 'path' and 'dest' lists"
            if len(config["path"]) != len(config["dest"]):
                return f"{kind} with multi needs 'path' and 'dest' of the same length"
        elif not isinstance(config.get("path"), str) or not config["path"]:
            return f"{kind} needs a 'path'"
        if kind == "cloud_file":
            for p in config["path"] if config.get("multi") else [config["path"]]:
                if str(p).lower().startswith(_NETWORK):
                    return f"cloud_file from {str(p)[:80]} is unsupported here: no network"
    elif kind == "rule":
        if "rules" not in config:
            return "the rule getter needs 'rules'"
    elif kind == "vm_terminal_output":
        launches = [
            s
            for s in steps
            if s.type == "launch"
            and isinstance(s.parameters.get("command"), list | str)
            and _first_word(s.parameters["command"]) in TERMINAL_PROGRAMS
        ]
        if not launches:
            return (
                "vm_terminal_output needs the task to launch its terminal in a config step "
                "(deskpilot records the transcript of terminals it starts)"
            )
    return None


def _first_word(command: list[Any] | str) -> str:
    first = command[0] if isinstance(command, list) and command else command
    words = str(first).split()
    return PurePosixPath(words[0]).name if words else ""


async def _command_line(ctx: EvalContext, config: dict[str, Any], stream: str) -> Got:
    out = await ctx.run(config["command"], shell=bool(config.get("shell")))
    if out.timed_out:
        return Got(None, f"the command timed out after {ctx.command_timeout_s:.0f} s")
    value = out.stdout if stream == "stdout" else out.stderr
    return Got(value, f"the command exited with {out.returncode}; {stream}: {tail(value, 300)!r}")


async def _vm_command_line(ctx: EvalContext, config: dict[str, Any]) -> Got:
    return await _command_line(ctx, config, "stdout")


async def _vm_command_error(ctx: EvalContext, config: dict[str, Any]) -> Got:
    return await _command_line(ctx, config, "stderr")


async def _vm_terminal_output(ctx: EvalContext, config: dict[str, Any]) -> Got:
    try:
        raw = await ctx.get_file(TERMINAL_LOG)
    except DesktopError as exc:
        return Got(None, f"no terminal transcript: {exc}")
    text = strip_terminal(raw.decode("utf-8", errors="replace"))
    return Got(text, f"the terminal transcript ({len(text)} characters): {tail(text, 300)!r}")


async def _fetch(
    ctx: EvalContext, config: dict[str, Any], read: Callable[[str], Awaitable[bytes | None]]
) -> Got:
    paths, dests, gives = _paths(config)
    got: list[str | None] = []
    notes = []
    for i, (path, dest) in enumerate(zip(paths, dests, strict=False)):
        data = await read(path)
        if data is None:
            notes.append(f"no file at {path}")
            if i in gives:
                got.append(None)
            continue
        local = _dest(ctx, dest)
        await asyncio.to_thread(local.write_bytes, data)
        notes.append(f"{path} ({len(data)} bytes)")
        if i in gives:
            got.append(str(local))
    value: Any = got[0] if len(got) == 1 else got
    return Got(value, "read " + "; ".join(notes))


async def _vm_file(ctx: EvalContext, config: dict[str, Any]) -> Got:
    async def read(path: str) -> bytes | None:
        try:
            return await ctx.get_file(path)
        except DesktopError:
            return None

    return await _fetch(ctx, config, read)


async def _cloud_file(ctx: EvalContext, config: dict[str, Any]) -> Got:
    async def read(path: str) -> bytes | None:
        try:
            local = ctx.local_path(path)
        except SetupError:
            return None
        return await asyncio.to_thread(local.read_bytes)

    return await _fetch(ctx, config, read)


async def _rule(ctx: EvalContext, config: dict[str, Any]) -> Got:
    return Got(config["rules"], f"the rules {tail(repr(config['rules']), 300)}")


_GETTERS: dict[str, Callable[[EvalContext, dict[str, Any]], Awaitable[Got]]] = {
    "vm_command_line": _vm_command_line,
    "vm_command_error": _vm_command_error,
    "vm_terminal_output": _vm_terminal_output,
    "vm_file": _vm_file,
    "cloud_file": _cloud_file,
    "rule": _rule,
}
GETTER_TYPES: tuple[str, ...] = tuple(_GETTERS)
"""The supported getter types."""


async def get_value(ctx: EvalContext, config: dict[str, Any]) -> Got:
    """Run one getter.

    Returns:
        A :class:`Got`; missing files and timed-out commands give ``value`` None (the metric
        then scores 0, OSWorld's rule) with the reason in ``evidence``.

    Raises:
        SetupError: the getter is unsupported (see :func:`check_getter`) or its command
            could not be run (e.g. an empty command).
    """
    reason = check_getter(config, steps=())
    if reason and config.get("type") != "vm_terminal_output":
        raise SetupError(f"The getter cannot run here: {reason}.")
    return await _GETTERS[str(config["type"])](ctx, config)
