"""The computer server's work: each protocol method run on one desktop and its host.

:class:`DesktopService` owns a started desktop (a ``LocalDesktop``, or an ``X11Display`` on
an existing display) and answers the methods of :mod:`deskpilot.remote.protocol` with the
real executors of :mod:`deskpilot.computer_use`: a ``tool`` call runs on a
:class:`~deskpilot.computer_use.computer.ComputerTool` (one per version and options, created
on first use), a :class:`~deskpilot.computer_use.bash.BashTool` or an
:class:`~deskpilot.computer_use.editor.EditorTool` (one per client ``session``), so a
remote result is exactly the local one. Computer input (tool calls and the Computer
methods) runs one at a time; ``health``, files and commands do not wait for it.

Failures become :class:`Refusal` (an error code of the protocol and a sentence); the
transport (:mod:`deskpilot.server.app`) turns them into error replies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .. import __version__
from ..computer_use.bash import BashTool
from ..computer_use.computer import ComputerTool
from ..computer_use.editor import EditorTool
from ..desktop.base import Computer
from ..errors import (
    ClosedError,
    ConfigError,
    DeskpilotError,
    DeskpilotTimeoutError,
    NotSupported,
    ToolError,
    ToolInputError,
)
from ..remote import frames
from ..remote import protocol as p

__all__ = ["DesktopService", "Refusal"]

log = logging.getLogger("deskpilot.server")

MAX_SESSIONS = 32
"""Bash shells / editor histories kept at once (the oldest idle one is closed first)."""

MAX_COMPUTER_TOOLS = 16
"""Computer executors (one per version and options) kept at once."""


class Refusal(Exception):
    """A request the server answers with an error: ``code`` (protocol) and a sentence."""

    def __init__(self, code: p.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: p.ErrorCode = code
        self.message = message


def refusal_of(exc: BaseException) -> Refusal:
    """The error reply for an exception raised while running a method."""
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, ValidationError):
        return Refusal("bad_params", "Bad params: " + _explain(exc))
    if isinstance(exc, ToolInputError | ConfigError):
        return Refusal("bad_params", str(exc))
    if isinstance(exc, NotSupported):
        return Refusal("not_supported", str(exc))
    if isinstance(exc, DeskpilotTimeoutError | TimeoutError):
        return Refusal("timeout", str(exc) or "The desktop did not answer in time.")
    if isinstance(exc, ToolError | ClosedError | DeskpilotError):
        return Refusal("desktop_error", str(exc))
    log.error("A request failed unexpectedly", exc_info=exc)
    return Refusal("internal", f"The server failed unexpectedly ({type(exc).__name__}: {exc}).")


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(x) for x in err["loc"]) or "params"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts) + "."


class _Session:
    """One client session's bash shell and editor (created on first use)."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.bash: BashTool | None = None
        self.editor: EditorTool | None = None
        self.used = time.monotonic()

    async def aclose(self) -> None:
        for tool in (self.bash, self.editor):
            if tool is not None:
                with contextlib.suppress(Exception):
                    await tool.aclose()
        self.bash = self.editor = None


class DesktopService:
    """Runs protocol methods on ``desktop`` (see the module docstring).

    Args:
        desktop: a started desktop implementing the Computer protocol; the DesktopHost
            methods (``run_command``, ``put_file``, ``get_file``, ``reset``, ``health``) are
            used when it has them and answered ``not_supported`` otherwise.
        max_message_bytes: advertised in ``hello`` (the transport enforces it).
    """

    def __init__(self, desktop: Computer, *, max_message_bytes: int = p.MAX_MESSAGE_BYTES) -> None:
        self.desktop = desktop
        self.max_message_bytes = max_message_bytes
        self.instance = secrets.token_hex(8)
        self._input = asyncio.Lock()
        self._computers: OrderedDict[tuple[str, p.ComputerOptions], ComputerTool] = OrderedDict()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, Callable[[Any], Awaitable[Any]]] = {
            "hello": self._hello,
            "health": self._health,
            "tool": self._tool,
            "screenshot": self._screenshot,
            "move": lambda q: self._input_call(self.desktop.move, q.x, q.y),
            "click": lambda q: self._input_call(
                self.desktop.click, q.x, q.y, button=q.button, count=q.count, modifiers=q.modifiers
            ),
            "mouse_down": lambda q: self._input_call(self.desktop.mouse_down, q.button),
            "mouse_up": lambda q: self._input_call(self.desktop.mouse_up, q.button),
            "drag": lambda q: self._input_call(
                self.desktop.drag, q.start, q.end, button=q.button, modifiers=q.modifiers
            ),
            "scroll": lambda q: self._input_call(
                self.desktop.scroll, q.direction, q.amount, x=q.x, y=q.y, modifiers=q.modifiers
            ),
            "key": lambda q: self._input_call(self.desktop.key, q.keys, repeat=q.repeat),
            "hold_key": lambda q: self._input_call(self.desktop.hold_key, q.keys, q.duration_s),
            "type_text": lambda q: self._input_call(self.desktop.type_text, q.text),
            "cursor_position": self._cursor_position,
            "wait_settled": self._wait_settled,
            "run_command": self._run_command,
            "put_file": self._put_file,
            "get_file": self._get_file,
            "reset": self._reset,
            "close_session": self._close_session,
        }
        assert set(self._handlers) == set(p.METHODS)

    # --- dispatch -------------------------------------------------------------------------
    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run ``method`` with ``params``; returns the result object (images in base64).

        Raises:
            Refusal: an unknown method, bad params, or the method failed (code + sentence).
        """
        result, blobs = await self.call_blobs(method, params)
        return frames.inline(p.Reply(id="", result=result), blobs).result or {}

    async def call_blobs(
        self, method: str, params: dict[str, Any]
    ) -> tuple[dict[str, Any], list[bytes]]:
        """Like :meth:`call`, but a tool result's images stay bytes: returns the result
        (image parts pointing into the list, :mod:`deskpilot.remote.frames`) and the bytes.

        Raises:
            Refusal: see :meth:`call`.
        """
        model = p.METHODS.get(method)
        if model is None:
            raise Refusal(
                "unknown_method",
                f"Unknown method {method!r}; the methods are {', '.join(sorted(p.METHODS))}.",
            )
        try:
            parsed = model.model_validate(params)
            result = await self._handlers[method](parsed)
        except Exception as exc:
            raise refusal_of(exc) from exc
        blobs: list[bytes] = []
        if isinstance(result, tuple):
            result, blobs = result
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json"), blobs
        return dict(result or {}), blobs

    # --- information ----------------------------------------------------------------------
    def hello_result(self) -> p.HelloResult:
        """What ``hello`` and ``reset`` answer: the desktop as it is now."""
        d: Any = self.desktop
        width, height = d.size
        env = dict(getattr(d, "env", None) or {})
        home = getattr(d, "home", None) or env.get("HOME")
        return p.HelloResult(
            protocol_version=p.PROTOCOL_VERSION,
            server_version=__version__,
            instance=self.instance,
            display=str(getattr(d, "display", "")),
            width=int(width),
            height=int(height),
            apps=[str(a) for a in getattr(d, "apps", ()) or ()],
            env=env,
            home=str(home) if home is not None else None,
            max_message_bytes=self.max_message_bytes,
            methods=sorted(p.METHODS),
        )

    async def _hello(self, q: p.HelloParams) -> p.HelloResult:
        if q.protocol_version != p.PROTOCOL_VERSION:
            raise Refusal(
                "version_mismatch",
                f"This server speaks computer-server protocol {p.PROTOCOL_VERSION}, not "
                f"{q.protocol_version}; use a deskpilot of the same protocol on both sides.",
            )
        return self.hello_result()

    async def _health(self, q: Any) -> p.HealthResult:
        d: Any = self.desktop
        if callable(getattr(d, "health", None)):
            return p.HealthResult.model_validate(await d.health())
        dead = bool(getattr(d, "dead", False))
        try:
            width, height = d.size
        except DeskpilotError as exc:
            return p.HealthResult(ok=False, display=str(getattr(d, "display", "")), detail=str(exc))
        return p.HealthResult(
            ok=not dead,
            display=str(getattr(d, "display", "")),
            width=width,
            height=height,
            detail="the X server is not answering" if dead else "",
        )

    # --- tool calls -----------------------------------------------------------------------
    def _computer_tool(self, version: str, options: p.ComputerOptions) -> ComputerTool:
        key = (version, options)
        tool = self._computers.get(key)
        if tool is None:
            tool = ComputerTool(
                self.desktop,
                version,
                image_tier=options.image_tier,
                target_size=options.target_size,
                enable_zoom=options.enable_zoom,
                screenshot_format=options.screenshot_format,
                screenshot_quality=options.screenshot_quality,
                screenshot_after_action=options.screenshot_after_action,
                settle=options.settle,
                settle_timeout_s=options.settle_timeout_s,
            )
            self._computers[key] = tool
            while len(self._computers) > MAX_COMPUTER_TOOLS:
                self._computers.popitem(last=False)
        self._computers.move_to_end(key)
        return tool

    def _session(self, name: str) -> _Session:
        session = self._sessions.get(name)
        if session is None:
            session = self._sessions[name] = _Session()
            idle = [k for k, s in self._sessions.items() if not s.lock.locked() and k != name]
            while len(self._sessions) > MAX_SESSIONS and idle:
                old = self._sessions.pop(idle.pop(0))
                closing = asyncio.get_running_loop().create_task(old.aclose())
                self._closing.add(closing)  # keep a reference until it is done
                closing.add_done_callback(self._closing.discard)
        self._sessions.move_to_end(name)
        session.used = time.monotonic()
        return session

    async def _tool(self, q: p.ToolParams) -> tuple[p.ToolResultWire, list[bytes]]:
        call = q.call.to_call()
        t0 = time.perf_counter()
        blobs: list[bytes] = []
        if q.kind == "computer":
            tool = self._computer_tool(q.version, q.options)
            async with self._input:
                result = await (tool.execute_quiet(call) if q.quiet else tool.execute(call))
                timings = dict(tool.last_timings)
            wire = p.ToolResultWire.of(result, timings, time.perf_counter() - t0, blobs)
            return wire.model_copy(update={"desktop_dead": self._dead()}), blobs
        session = self._session(q.session)
        async with session.lock:
            executor: BashTool | EditorTool
            if q.kind == "bash":
                if session.bash is None:
                    env: Any = getattr(self.desktop, "env", None)
                    session.bash = BashTool(version=q.version, env=dict(env) if env else None)
                elif session.bash.version != q.version:
                    session.bash = session.bash.with_version(q.version)
                executor = session.bash
            else:
                if session.editor is None:
                    session.editor = EditorTool(version=q.version)
                elif session.editor.version != q.version:
                    session.editor = session.editor.with_version(q.version)
                executor = session.editor
            result = await executor.execute(call)
        wire = p.ToolResultWire.of(result, None, time.perf_counter() - t0, blobs)
        return wire.model_copy(update={"desktop_dead": self._dead()}), blobs

    def _dead(self) -> bool:
        return bool(getattr(self.desktop, "dead", False))

    async def _close_session(self, q: p.CloseSessionParams) -> dict[str, Any]:
        session = self._sessions.pop(q.session, None)
        if session is not None:
            async with session.lock:
                await session.aclose()
        return {"closed": session is not None}

    # --- the Computer protocol ------------------------------------------------------------
    async def _screenshot(self, q: p.ScreenshotParams) -> p.ScreenshotResult:
        img = await self.desktop.screenshot()

        def encode() -> str:
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=q.compress_level)
            return base64.b64encode(buf.getvalue()).decode("ascii")

        return p.ScreenshotResult(
            data=await asyncio.to_thread(encode), width=img.width, height=img.height
        )

    async def _input_call(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
    ) -> dict[str, Any]:
        if "modifiers" in kw:
            kw["modifiers"] = tuple(kw["modifiers"])
        async with self._input:
            await fn(*args, **kw)
        return {}

    async def _cursor_position(self, q: Any) -> p.PointResult:
        x, y = await self.desktop.cursor_position()
        return p.PointResult(x=x, y=y)

    async def _wait_settled(self, q: p.WaitSettledParams) -> p.SettledResult:
        async with self._input:
            waited = await self.desktop.wait_settled(timeout_s=q.timeout_s)
        return p.SettledResult(waited_s=float(waited))

    # --- the desktop's host ---------------------------------------------------------------
    def _host(self, name: str) -> Callable[..., Any]:
        fn = getattr(self.desktop, name, None)
        if not callable(fn):
            raise Refusal(
                "not_supported",
                f"This server's desktop ({type(self.desktop).__name__}) has no {name}; serve a "
                "LocalDesktop (deskpilot serve without --display) for it.",
            )
        return fn

    async def _run_command(self, q: p.RunCommandParams) -> p.CommandResult:
        # A LocalDesktop refuses a cwd on /proc or another kernel filesystem itself
        # (desktop/host_files.py): this process's /proc is not the desktop's.
        fn = self._host("run_command")
        out = await fn(q.command, timeout_s=q.timeout_s, background=q.background, cwd=q.cwd)
        return p.CommandResult(
            returncode=out.returncode, stdout=out.stdout, stderr=out.stderr, timed_out=out.timed_out
        )

    async def _put_file(self, q: p.PutFileParams) -> p.FileResult:
        data = p.b64decode(q.data, "put_file data")
        if len(data) > p.MAX_FILE_BYTES:
            raise Refusal(
                "too_large",
                f"The file is {len(data)} bytes; put_file takes at most {p.MAX_FILE_BYTES}.",
            )
        # regular files only, never a kernel interface: LocalDesktop checks (desktop/host_files.py)
        fn = self._host("put_file")
        return p.FileResult(path=str(await fn(q.path, data)))

    async def _get_file(self, q: p.GetFileParams) -> p.FileResult:
        fn = self._host("get_file")
        resolve = getattr(self.desktop, "resolve_path", None)
        path = resolve(q.path) if callable(resolve) else str(Path(q.path))
        data = await fn(q.path, max_bytes=q.max_bytes)  # checked as put_file is
        return p.FileResult(path=path, data=base64.b64encode(data).decode("ascii"))

    async def _reset(self, q: Any) -> p.HelloResult:
        d: Any = self.desktop
        fn = getattr(d, "reset", None)
        if not callable(fn):
            fn = getattr(d, "restart", None)
        if not callable(fn):
            raise Refusal(
                "not_supported",
                f"This server's desktop ({type(d).__name__}) cannot be reset; serve a "
                "LocalDesktop (deskpilot serve without --display) for it.",
            )
        async with self._input:
            await self._close_sessions()
            self._computers.clear()
            await fn()
        return self.hello_result()

    async def _close_sessions(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), OrderedDict()
        for session in sessions:
            await session.aclose()

    async def aclose(self) -> None:
        """Close every bash shell and editor (the desktop is the caller's)."""
        await self._close_sessions()
        for tool in self._computers.values():
            with contextlib.suppress(Exception):
                await tool.aclose()
        self._computers.clear()
