"""The live view without a browser: x11vnc supervision, VNC authentication, the in-process
WebSocket bridge and its input filter, against a real Xvfb desktop and a real x11vnc."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import struct
from dataclasses import dataclass

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from deskpilot.desktop.processes import process_alive
from deskpilot.errors import ClosedError
from deskpilot.ui.bridge import CSP, add_live_view
from deskpilot.ui.rfb import InputFilter, ProtocolError, des_encrypt_block, vnc_auth_response
from deskpilot.ui.vnc import VncServer

needs_x11vnc = pytest.mark.skipif(
    shutil.which("x11vnc") is None or shutil.which("Xvfb") is None,
    reason="needs x11vnc and Xvfb (deskpilot doctor --install)",
)


# ---------------------------------------------------------------------------- pure parts
def test_des_matches_the_fips_test_vector() -> None:
    key, plain = bytes.fromhex("133457799BBCDFF1"), bytes.fromhex("0123456789ABCDEF")
    assert des_encrypt_block(key, plain).hex() == "85e813540f0ab405"
    with pytest.raises(ValueError, match="8-byte"):
        des_encrypt_block(key[:7], plain)
    with pytest.raises(ValueError, match="16 bytes"):
        vnc_auth_response("pw", b"x" * 15)


def _key(down: bool, keysym: int) -> bytes:
    return struct.pack(">BBxxI", 4, int(down), keysym)


def _pointer(mask: int, x: int, y: int) -> bytes:
    return struct.pack(">BBHH", 5, mask, x, y)


def test_filter_drops_input_unless_allowed_and_never_leaves_a_key_or_button_down() -> None:
    allowed = [False]
    filt = InputFilter(lambda: allowed[0])
    update = struct.pack(">BBHHHH", 3, 1, 0, 0, 640, 400)
    encodings = struct.pack(">BxHii", 2, 2, 0, -223)
    # Messages split at every byte still come out whole; input is dropped.
    stream = update + _key(True, 0x61) + encodings + _pointer(1, 5, 5)
    out = b"".join(filt.feed(stream[i : i + 1]) for i in range(len(stream)))
    assert out == update + encodings and filt.dropped == 2
    allowed[0] = True
    assert filt.feed(_key(True, 0x61) + _pointer(1, 9, 9)) == _key(True, 0x61) + _pointer(1, 9, 9)
    allowed[0] = False  # the lease ends with "a" and the button held: both are released
    assert filt.feed(_key(False, 0x61)) == _key(False, 0x61)
    assert filt.feed(_pointer(1, 10, 10)) == _pointer(0, 10, 10)
    assert filt.feed(_pointer(1, 11, 11) + _key(False, 0x62)) == b""
    cut = struct.pack(">BxxxI", 6, 3) + b"abc"
    extended = struct.pack(">Bxxxi", 6, -4) + b"\0\0\0\x01"  # Extended Clipboard form
    assert filt.feed(cut + extended + update) == update
    allowed[0] = True
    assert filt.feed(extended) == extended
    with pytest.raises(ProtocolError, match="Unknown RFB client message type 77"):
        filt.feed(b"\x4d" + b"\0" * 10)


# ---------------------------------------------------------------------------- x11vnc
@dataclass
class _View:
    vnc: VncServer | None
    allowed: bool = False

    def input_allowed(self) -> bool:
        return self.allowed


@pytest.fixture
async def small_desktop():
    from deskpilot.desktop.local import LocalDesktop

    async with LocalDesktop(320, 200, apps=("terminal",)) as d:
        yield d


@needs_x11vnc
@pytest.mark.desktop
async def test_x11vnc_is_restarted_after_a_crash_and_gone_after_stop(small_desktop) -> None:
    vnc = VncServer(small_desktop)
    async with vnc:
        first, port = vnc.pid, vnc.port
        assert first is not None and port is not None
        cmdline = open(f"/proc/{first}/cmdline", "rb").read().split(b"\0")
        assert vnc.password.encode() not in b" ".join(cmdline)  # never on the command line
        assert b"-localhost" in cmdline and b"-forever" in cmdline
        os.kill(first, signal.SIGKILL)
        while process_alive(first):  # the kill is asynchronous
            await asyncio.sleep(0.01)
        reader, writer = await vnc.open_connection(timeout_s=10)  # waits for the restart
        assert await reader.readexactly(12) == b"RFB 003.008\n"
        writer.close()
        assert vnc.restarts == 1 and vnc.pid not in (None, first)
        second = vnc.pid
        directory = vnc._dir
        assert directory is not None and not (directory / "passwd").exists()  # read, deleted
    assert second is not None and not os.path.exists(f"/proc/{second}")
    assert directory is not None and not directory.exists()
    with pytest.raises(ClosedError):
        await vnc.start()


async def _rfb_client(ws) -> tuple[int, int]:
    """Browser side of the handshake; returns the framebuffer size."""
    buf = bytearray()

    async def read(n: int) -> bytes:
        while len(buf) < n:
            msg = await ws.receive(timeout=10)
            assert msg.type == WSMsgType.BINARY, msg
            buf.extend(msg.data)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    assert await read(12) == b"RFB 003.008\n"
    await ws.send_bytes(b"RFB 003.008\n")
    assert await read(2) == b"\x01\x01"  # security type None only: no password in the browser
    await ws.send_bytes(b"\x01")
    assert await read(4) == b"\0\0\0\0"
    await ws.send_bytes(b"\x01")  # ClientInit
    width, height = struct.unpack(">HH", await read(4))
    await read(16)
    (name_len,) = struct.unpack(">I", await read(4))
    await read(name_len)
    return width, height


@needs_x11vnc
@pytest.mark.desktop
async def test_bridge_shows_the_desktop_and_passes_input_only_during_takeover(
    small_desktop,
) -> None:
    async with VncServer(small_desktop) as vnc:
        view = _View(vnc)
        app = web.Application()
        add_live_view(app, {"r1": view}.get)
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/websockify?run=nope")).status == 404
            page = await client.get("/vnc?run=r1")
            assert page.status == 200 and page.headers["Content-Security-Policy"] == CSP
            rfb = await client.get("/novnc/core/rfb.js")
            assert rfb.status == 200 and "export default class RFB" in await rfb.text()
            assert (await client.get("/novnc/../../etc/passwd")).status == 404
            assert (await client.get("/novnc/core/../vnc.html")).status == 404
            ws = await client.ws_connect("/websockify?run=r1")
            assert await _rfb_client(ws) == (320, 200)
            # A full update arrives (the desktop's pixels).
            await ws.send_bytes(struct.pack(">BBHHHH", 3, 0, 0, 0, 320, 200))
            msg = await ws.receive(timeout=10)
            assert msg.type == WSMsgType.BINARY and msg.data[0] == 0
            # Input while the agent drives is dropped; during takeover it reaches the desktop.
            before = await small_desktop.cursor_position()
            await ws.send_bytes(_pointer(0, 17, 23))
            await asyncio.sleep(0.5)
            assert await small_desktop.cursor_position() == before
            view.allowed = True
            await ws.send_bytes(_pointer(0, 17, 23))
            for _ in range(50):
                if await small_desktop.cursor_position() == (17, 23):
                    break
                await asyncio.sleep(0.05)
            assert await small_desktop.cursor_position() == (17, 23)
            await ws.close()
