"""RemoteDesktop: a desktop on another host, driven through ``deskpilot serve``.

One WebSocket carries every request (:mod:`deskpilot.remote.protocol`); several may be in
flight, each waiting for the reply with its id. A dropped connection is reconnected (with
backoff, for at most ``reconnect_timeout_s``) and every unanswered request is sent again
with the same id: the server runs each id once and answers it again from its reply cache,
so an action never runs twice. When the new connection reaches another server process
(the server restarted), the unanswered requests fail instead of running again.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..desktop.base import MAX_FILE_BYTES, CommandOutput, MouseButton, ScrollDirection
from ..errors import (
    ClosedError,
    ConfigError,
    DeskpilotTimeoutError,
    DesktopError,
    NotSupported,
    ToolInputError,
)
from . import frames
from . import protocol as p

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from ..computer_use.base import ToolExecutor
    from ..computer_use.scaling import ImageTier

__all__ = ["RemoteDesktop", "RemoteError"]

log = logging.getLogger("deskpilot.remote")


class RemoteError(DesktopError):
    """The computer server refused a request or could not be reached; ``code`` is the
    protocol's error code (``"connection"`` when no server answered)."""

    def __init__(self, message: str, code: str = "connection") -> None:
        super().__init__(message)
        self.code = code


class _Lost(Exception):
    """The connection a request was sent on closed before its reply came."""


def _ws_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise ConfigError(
            f"RemoteDesktop url must look like ws://host:8766 (or wss://, http://), not {url!r}."
        )
    path = parts.path if parts.path not in ("", "/") else "/v1/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class RemoteDesktop:
    """A desktop served by ``deskpilot serve`` on another host (or this one).

    Implements the :class:`~deskpilot.desktop.base.Computer` protocol (native pixels) and
    :class:`~deskpilot.desktop.base.DesktopHost`, and supplies the agent's executors
    (:meth:`tool_executors`): each computer, bash or editor call goes to the server whole, in
    one round trip, and the server settles and takes the screenshot before it answers, so
    ``Agent(client, computer=RemoteDesktop(url))`` runs every tool on the server's host.

    Args:
        url: ``ws://host:8766`` (``/v1/ws`` is added when the path is empty), ``wss://``,
            or ``http(s)://`` (the same server).
        token: the server's bearer token; default the ``DESKPILOT_SERVER_TOKEN`` variable.
        connect_timeout_s: seconds to open the connection (each attempt).
        request_timeout_s: seconds one request may take (a bash command may run long).
        reconnect_timeout_s: seconds to keep trying to reconnect after a drop.

    Use as ``async with RemoteDesktop("ws://host:8766") as desktop: ...``.

    Raises (from :meth:`start`):
        RemoteError: no server answered, it refused the token, or it speaks another
            protocol version.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 600.0,
        reconnect_timeout_s: float = 30.0,
    ) -> None:
        self.url = _ws_url(url)
        self._token = token if token is not None else os.environ.get(p.TOKEN_ENV) or None
        for name, value in (
            ("connect_timeout_s", connect_timeout_s),
            ("request_timeout_s", request_timeout_s),
            ("reconnect_timeout_s", reconnect_timeout_s),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}.")
        self.connect_timeout_s = float(connect_timeout_s)
        self.request_timeout_s = float(request_timeout_s)
        self.reconnect_timeout_s = float(reconnect_timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[asyncio.Future[p.Reply], object]] = {}
        self._connect_lock = asyncio.Lock()
        self._hello: p.HelloResult | None = None
        self._closed = False
        self.reconnects = 0
        self.dead = False
        """True when the last tool call found the server's X server gone or not answering
        (then the agent restarts it: :meth:`restart`, as it does a dead LocalDesktop)."""

    def __repr__(self) -> str:
        return f"RemoteDesktop({self.url!r}, display={self.display!r})"

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> Self:
        """Connect and say hello (learn the display, its size, apps and environment)."""
        if self._closed:
            raise ClosedError("This RemoteDesktop was closed; create a new one.")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        await self._ensure_connected()
        return self

    async def close(self) -> None:
        """Close the connection (the server and its desktop keep running). Idempotent."""
        self._closed = True
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the connection ---------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        try:
            return await self._session.ws_connect(
                self.url,
                headers=self._headers(),
                max_msg_size=2 * p.MAX_MESSAGE_BYTES,
                heartbeat=30.0,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                autoping=True,
                compress=0,  # the server's choice too: see deskpilot.server.app
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise RemoteError(
                    f"The computer server at {self.url} refused the connection: missing or "
                    f"wrong token (pass token= or set {p.TOKEN_ENV}).",
                    "unauthorized",
                ) from exc
            raise RemoteError(
                f"{self.url} is not a computer server (HTTP {exc.status}).", "connection"
            ) from exc

    async def _ensure_connected(self) -> aiohttp.ClientWebSocketResponse:
        async with self._connect_lock:
            if self._ws is not None and not self._ws.closed:
                return self._ws
            if self._closed or self._session is None:
                raise ClosedError("This RemoteDesktop is not started (or was closed).")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + (
                self.reconnect_timeout_s if self._hello is not None else self.connect_timeout_s
            )
            delay, last = 0.05, "no attempt"
            while True:
                try:
                    async with asyncio.timeout(self.connect_timeout_s):
                        ws = await self._open()
                    break
                except RemoteError:
                    raise
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if loop.time() + delay > deadline:
                    raise RemoteError(
                        f"Cannot reach the computer server at {self.url} ({last}); is "
                        "`deskpilot serve` running there?"
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            self._ws = ws
            self._reader = loop.create_task(self._read(ws))
            previous = self._hello
            hello = p.HelloResult.model_validate(
                await self._roundtrip(ws, "hello", p.HelloParams(binary=True).model_dump(), 30.0)
            )
            if previous is not None:
                self.reconnects += 1
            self._hello = hello
            return ws

    async def _roundtrip(
        self, ws: aiohttp.ClientWebSocketResponse, method: str, params: dict[str, Any], t: float
    ) -> dict[str, Any]:
        rid = uuid.uuid4().hex
        fut: asyncio.Future[p.Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (fut, ws)
        try:
            await ws.send_str(json.dumps({"id": rid, "method": method, "params": params}))
            async with asyncio.timeout(t):
                reply = await fut
        except (_Lost, ConnectionError, aiohttp.ClientError) as exc:
            raise RemoteError(f"The computer server at {self.url} closed the connection.") from exc
        finally:
            self._pending.pop(rid, None)
        return self._result(reply)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                try:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        reply = p.Reply.model_validate_json(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        reply = frames.decode_binary(msg.data)
                    else:
                        continue
                except ValueError:
                    log.warning("The computer server sent an unreadable reply; ignored.")
                    continue
                found = self._pending.get(reply.id or "")
                if found is not None and not found[0].done():
                    found[0].set_result(reply)
        finally:
            for fut, on in list(self._pending.values()):
                if on is ws and not fut.done():
                    fut.set_exception(_Lost())
            if self._ws is ws:
                self._ws = None

    def _result(self, reply: p.Reply) -> dict[str, Any]:
        if reply.error is None:
            return reply.result or {}
        code, message = reply.error.code, reply.error.message
        if code == "bad_params":
            raise ToolInputError(message)
        if code == "timeout":
            raise DeskpilotTimeoutError(message)
        if code == "not_supported":
            raise NotSupported(message)
        raise RemoteError(message if code == "desktop_error" else f"{message} ({code})", code)

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its result object (sent again with the same id on
        a new connection if the connection drops; never run twice).

        Raises:
            RemoteError: the server refused it (``code``), or could not be reached again.
            ToolInputError / DeskpilotTimeoutError / NotSupported: the server's
                ``bad_params`` / ``timeout`` / ``not_supported``.
        """
        rid = uuid.uuid4().hex
        text = json.dumps({"id": rid, "method": method, "params": dict(params or {})})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_s or self.request_timeout_s)
        instance: str | None = None
        while True:
            ws = await self._ensure_connected()
            if instance is None:
                instance = self.hello.instance
            elif self.hello.instance != instance:
                raise RemoteError(
                    f"The computer server at {self.url} restarted while {method} was "
                    "unanswered; its result is lost (the desktop there is a new one)."
                )
            fut: asyncio.Future[p.Reply] = loop.create_future()
            self._pending[rid] = (fut, ws)
            try:
                try:
                    await ws.send_str(text)
                except (ConnectionError, aiohttp.ClientError, RuntimeError):
                    await self._drop(ws)
                    continue
                async with asyncio.timeout_at(deadline):
                    reply = await fut
            except _Lost:
                continue
            except TimeoutError as exc:
                raise DeskpilotTimeoutError(
                    f"The computer server at {self.url} did not answer {method} within "
                    f"{timeout_s or self.request_timeout_s:g} s (request_timeout_s)."
                ) from exc
            finally:
                self._pending.pop(rid, None)
            return self._result(reply)

    async def _drop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        if self._ws is ws:
            self._ws = None
        await ws.close()

    # --- what the server said ---------------------------------------------------------------
    @property
    def hello(self) -> p.HelloResult:
        """The server's last ``hello`` (or ``reset``) answer.

        Raises:
            ClosedError: not started.
        """
        if self._hello is None:
            raise ClosedError("This RemoteDesktop is not started; use `async with` or start().")
        return self._hello

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the remote display in native pixels."""
        return self.hello.width, self.hello.height

    @property
    def display(self) -> str:
        """The remote X display name (empty before start)."""
        return self._hello.display if self._hello is not None else ""

    @property
    def env(self) -> dict[str, str]:
        """The environment of the remote desktop's programs (on the server's host)."""
        return dict(self.hello.env)

    @property
    def apps(self) -> tuple[str, ...]:
        """The apps the remote desktop opened at start."""
        return tuple(self.hello.apps)

    # --- the Computer protocol --------------------------------------------------------------
    async def screenshot(self) -> PILImage:
        """The whole remote display as an RGB image of :attr:`size` (a PNG on the wire)."""
        result = p.ScreenshotResult.model_validate(await self.call("screenshot"))
        data = p.b64decode(result.data, "The screenshot")

        def decode() -> PILImage:
            from PIL import Image as PILImageModule

            with PILImageModule.open(io.BytesIO(data)) as im:
                return im.convert("RGB")

        return await asyncio.to_thread(decode)

    async def move(self, x: int, y: int) -> None:
        await self.call("move", {"x": x, "y": y})

    async def click(
        self,
        x: int | None = None,
        y: int | None = None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        params = {"x": x, "y": y, "button": button, "count": count, "modifiers": list(modifiers)}
        await self.call("click", params)

    async def mouse_down(self, button: MouseButton = "left") -> None:
        await self.call("mouse_down", {"button": button})

    async def mouse_up(self, button: MouseButton = "left") -> None:
        await self.call("mouse_up", {"button": button})

    async def drag(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        *,
        button: MouseButton = "left",
        modifiers: Sequence[str] = (),
    ) -> None:
        params = {"start": start, "end": end, "button": button, "modifiers": list(modifiers)}
        await self.call("drag", params)

    async def scroll(
        self,
        direction: ScrollDirection,
        amount: int,
        *,
        x: int | None = None,
        y: int | None = None,
        modifiers: Sequence[str] = (),
    ) -> None:
        params = {"direction": direction, "amount": amount, "x": x, "y": y}
        await self.call("scroll", {**params, "modifiers": list(modifiers)})

    async def key(self, keys: str, *, repeat: int = 1) -> None:
        await self.call("key", {"keys": keys, "repeat": repeat})

    async def hold_key(self, keys: str, duration_s: float) -> None:
        await self.call("hold_key", {"keys": keys, "duration_s": duration_s})

    async def type_text(self, text: str) -> None:
        await self.call("type_text", {"text": text})

    async def cursor_position(self) -> tuple[int, int]:
        found = p.PointResult.model_validate(await self.call("cursor_position"))
        return found.x, found.y

    async def wait_settled(self, *, timeout_s: float = 2.0) -> float:
        return p.SettledResult.model_validate(
            await self.call("wait_settled", {"timeout_s": timeout_s})
        ).waited_s

    # --- DesktopHost ------------------------------------------------------------------------
    async def run_command(
        self,
        command: str | Sequence[str],
        *,
        timeout_s: float = 60.0,
        background: bool = False,
        cwd: str | None = None,
    ) -> CommandOutput:
        """Run ``command`` on the server's host like the desktop's programs
        (:meth:`deskpilot.desktop.base.DesktopHost.run_command`)."""
        params = p.RunCommandParams(
            command=command if isinstance(command, str) else list(command),
            timeout_s=timeout_s,
            background=background,
            cwd=cwd,
        )
        out = p.CommandResult.model_validate(
            await self.call("run_command", params.model_dump(), timeout_s=timeout_s + 30.0)
        )
        return CommandOutput(out.returncode, out.stdout, out.stderr, out.timed_out)

    async def put_file(self, path: str, data: bytes) -> str:
        """Write ``data`` to ``path`` on the server's host; returns the absolute path."""
        params = {"path": path, "data": base64.b64encode(bytes(data)).decode("ascii")}
        return p.FileResult.model_validate(await self.call("put_file", params)).path

    async def get_file(self, path: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The bytes of the file at ``path`` on the server's host (at most ``max_bytes``)."""
        result = p.FileResult.model_validate(
            await self.call("get_file", {"path": path, "max_bytes": max_bytes})
        )
        return p.b64decode(result.data or "", "The file data")

    def resolve_path(self, path: str) -> str:
        """The absolute path on the server's host that ``path`` names (``~`` and relative
        paths under the desktop's HOME)."""
        home = self.hello.home or "/"
        if path == "~":
            return home
        if path.startswith("~/"):
            path = path[2:]
        return os.path.normpath(path if path.startswith("/") else os.path.join(home, path))

    async def reset(self) -> None:
        """A fresh desktop on the server (every program and window gone, a new HOME, the
        apps started again); the server's bash shells and editors start over too."""
        self._hello = p.HelloResult.model_validate(await self.call("reset"))

    async def restart(self) -> Self:
        """:meth:`reset` (for the agent's recovery of a dead desktop); returns self."""
        await self.reset()
        self.dead = False
        return self

    async def health(self) -> dict[str, Any]:
        """The server's desktop health ``{"ok", "display", "width", "height", "detail"}``;
        ``ok`` False (with the reason) when the server cannot be reached. Never raises."""
        try:
            return p.HealthResult.model_validate(
                await self.call("health", timeout_s=30.0)
            ).model_dump()
        except Exception as exc:
            return {
                "ok": False,
                "display": self.display,
                "width": 0,
                "height": 0,
                "detail": str(exc),
            }

    # --- the agent's executors --------------------------------------------------------------
    def tool_executors(
        self,
        *,
        computer: str | None,
        editor: str | None,
        bash: str | None,
        image_tier: ImageTier | None = None,
    ) -> list[ToolExecutor]:
        """Executors that run each call on the server in one round trip: a computer tool
        of version ``computer`` (screenshots at ``image_tier``), an editor and a bash tool
        (None: leave that kind out). Each bash/editor gets its own server-side session."""
        from .executors import RemoteBashTool, RemoteComputerTool, RemoteEditorTool

        out: list[ToolExecutor] = []
        if computer is not None:
            out.append(RemoteComputerTool(self, computer, image_tier=image_tier))
        if editor is not None:
            out.append(RemoteEditorTool(self, editor))
        if bash is not None:
            out.append(RemoteBashTool(self, bash))
        return out
