"""The live view's routes: a WebSocket <-> RFB bridge in the app's own process, noVNC's
client files, and the ``/vnc`` page.

``GET /websockify?run=ID`` upgrades to a WebSocket (binary frames, noVNC's wire) and joins
it to the run's x11vnc (:class:`deskpilot.ui.vnc.VncServer`) over loopback TCP. No separate
websockify process and no port but the app's. The bridge answers the RFB handshake itself
on both sides (:mod:`deskpilot.ui.rfb`): it logs in to x11vnc with the full-control
password and offers the browser security type None, so the access token checked by the
app's middleware (and the WebSocket's ``Origin``) is the only credential and no VNC password
reaches a browser. After the handshake bytes pass through unchanged, except that the
client's key, pointer and clipboard messages are dropped unless the run's
``input_allowed()`` says a human holds the takeover lease (a button or key held down when
the lease ends is released, so nothing stays pressed).

noVNC's ES modules are served from the Debian ``novnc`` package (``/usr/share/novnc``,
MPL-2.0; read-only, never copied: ``GET /novnc/core/...`` and ``/novnc/vendor/...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Protocol

from aiohttp import WSMsgType, web

from deskpilot.errors import DeskpilotError
from deskpilot.ui.rfb import RFB_VERSION, InputFilter, ProtocolError, vnc_auth_response
from deskpilot.ui.vnc import VncServer

__all__ = [
    "CSP",
    "NOVNC_DIR",
    "LiveView",
    "add_live_view",
    "bridge_websocket",
]

log = logging.getLogger(__name__)

#: Where Debian's ``novnc`` package puts noVNC (1.3.0 on bookworm).
NOVNC_DIR = Path("/usr/share/novnc")
#: The Content-Security-Policy of every page: only the app's own scripts, styles and
#: sockets; screenshots and noVNC's cursor may be data:/blob: images.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; object-src 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


class LiveView(Protocol):
    """What the bridge needs of a run: its VNC server and whether a human may drive."""

    @property
    def vnc(self) -> VncServer | None:
        """The run's x11vnc (None while its desktop is not up)."""
        ...

    def input_allowed(self) -> bool:
        """True only while a human holds the run's takeover lease."""
        ...


#: Maps a run id (the ``run`` query parameter) to its live view, or None if unknown.
Lookup = Callable[[str], "LiveView | None"]


class _WsReader:
    """Exact-length reads over a WebSocket's binary messages (for the handshake)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.buf = bytearray()

    async def next_chunk(self) -> bytes | None:
        msg = await self.ws.receive()
        if msg.type == WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type == WSMsgType.TEXT:
            raise ProtocolError("The live view's WebSocket takes binary frames only.")
        return None  # closed

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await self.next_chunk()
            if chunk is None:
                raise ConnectionResetError("The browser closed the live view.")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


async def _server_login(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str
) -> None:
    """RFB 3.8 handshake with x11vnc up to SecurityResult, VNC Authentication."""
    version = await reader.readexactly(12)
    if not version.startswith(b"RFB 003."):
        raise ProtocolError(f"x11vnc sent {version!r}, not an RFB version.")
    writer.write(RFB_VERSION)
    count = (await reader.readexactly(1))[0]
    if count == 0:
        size = struct.unpack(">I", await reader.readexactly(4))[0]
        reason = (await reader.readexactly(min(size, 4096))).decode("utf-8", "replace")
        raise ProtocolError(f"x11vnc refused the connection: {reason}")
    types = await reader.readexactly(count)
    if 2 not in types:
        raise ProtocolError(f"x11vnc does not offer VNC Authentication (offers {list(types)}).")
    writer.write(b"\x02")
    challenge = await reader.readexactly(16)
    writer.write(vnc_auth_response(password, challenge))
    result = struct.unpack(">I", await reader.readexactly(4))[0]
    if result != 0:
        raise ProtocolError("x11vnc refused the live view's password.")


async def _client_handshake(ws: web.WebSocketResponse, rd: _WsReader) -> None:
    """RFB 3.8 handshake with the browser up to SecurityResult, security type None."""
    await ws.send_bytes(RFB_VERSION)
    version = await rd.read_exactly(12)
    if not version.startswith(b"RFB 003."):
        raise ProtocolError(f"The browser sent {version[:12]!r}, not an RFB version.")
    await ws.send_bytes(b"\x01\x01")  # one security type: None
    if await rd.read_exactly(1) != b"\x01":
        raise ProtocolError("The browser did not choose security type None.")
    await ws.send_bytes(b"\x00\x00\x00\x00")  # SecurityResult OK


async def bridge_websocket(request: web.Request, view: LiveView) -> web.WebSocketResponse:
    """Upgrade ``request`` and bridge it to ``view``'s x11vnc until either side closes.

    Returns:
        The closed WebSocketResponse (aiohttp's handler return value).

    Raises:
        web.HTTPServiceUnavailable: the run has no VNC server (its desktop is not up).
    """
    vnc = view.vnc
    if vnc is None:
        raise web.HTTPServiceUnavailable(text="This run's desktop has no live view yet.")
    ws = web.WebSocketResponse(compress=False, max_msg_size=4 * 2**20)
    await ws.prepare(request)
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer = await vnc.open_connection()
        rd = _WsReader(ws)
        await asyncio.gather(_server_login(reader, writer, vnc.password), _client_handshake(ws, rd))
        client_init = await rd.read_exactly(1)
        writer.write(b"\x01" if client_init else client_init)  # always shared
        filt = InputFilter(view.input_allowed)
        pending = filt.feed(bytes(rd.buf))
        rd.buf.clear()
        if pending:
            writer.write(pending)
        await _pump(ws, rd, reader, writer, filt)
    except (
        ProtocolError,
        ConnectionError,
        asyncio.IncompleteReadError,
        TimeoutError,
        DeskpilotError,
    ) as exc:
        log.info("live view closed: %s", exc)
        if not ws.closed:
            await ws.close(code=1011, message=str(exc)[:120].encode("utf-8", "replace"))
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if not ws.closed:
            await ws.close()
    return ws


async def _pump(
    ws: web.WebSocketResponse,
    rd: _WsReader,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    filt: InputFilter,
) -> None:
    async def upstream() -> None:  # browser -> x11vnc
        while (chunk := await rd.next_chunk()) is not None:
            data = filt.feed(chunk)
            if data:
                writer.write(data)
                await writer.drain()

    async def downstream() -> None:  # x11vnc -> browser
        while data := await reader.read(256 * 1024):
            await ws.send_bytes(data)

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # re-raise a protocol error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------- routes
def _static_dir() -> Path:
    return Path(str(resources.files("deskpilot.ui").joinpath("static")))


def _file_response(path: Path) -> web.FileResponse:
    content_type = _STATIC_TYPES.get(path.suffix, "application/octet-stream")
    response = web.FileResponse(path, headers={**_HEADERS, "Content-Type": content_type})
    return response


def _confined(root: Path, relative: str) -> Path:
    """``root / relative`` if it is a file inside ``root`` (after resolving links), else 404."""
    if not relative or "\0" in relative:
        raise web.HTTPNotFound()
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise web.HTTPNotFound()
    return path


def add_live_view(app: web.Application, lookup: Lookup, *, novnc_dir: Path = NOVNC_DIR) -> None:
    """Register the live view: ``GET /vnc?run=ID`` (a page with only the view),
    ``GET /websockify?run=ID`` (the bridge) and ``GET /novnc/{path}`` (noVNC's modules).

    Args:
        app: the aiohttp app (its middleware checks the token and the WebSocket Origin).
        lookup: run id -> :class:`LiveView`, or None for an unknown run (404).
        novnc_dir: where noVNC's ``core/`` and ``vendor/`` are.
    """

    def view_of(request: web.Request) -> LiveView:
        run_id = request.query.get("run", "")
        view = lookup(run_id) if run_id else None
        if view is None:
            raise web.HTTPNotFound(text=f"No run {run_id!r} with a live view.")
        return view

    async def websockify(request: web.Request) -> web.StreamResponse:
        return await bridge_websocket(request, view_of(request))

    async def vnc_page(request: web.Request) -> web.StreamResponse:
        view_of(request)
        return _file_response(_static_dir() / "vnc.html")

    async def novnc(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        if not relative.startswith(("core/", "vendor/")) or not relative.endswith(".js"):
            raise web.HTTPNotFound()
        if not await asyncio.to_thread(novnc_dir.is_dir):
            raise web.HTTPServiceUnavailable(
                text="noVNC is not installed: sudo apt-get install -y novnc "
                "(or deskpilot doctor --install)."
            )
        path = await asyncio.to_thread(_confined, novnc_dir, relative)
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "text/javascript",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "max-age=3600",
            },
        )

    app.router.add_get("/websockify", websockify)
    app.router.add_get("/vnc", vnc_page)
    app.router.add_get("/novnc/{path:.+}", novnc)
