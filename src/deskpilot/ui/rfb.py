"""The RFB (VNC) protocol pieces the live-view bridge needs: VNC password authentication,
the handshake on both sides, and a filter that drops input while the agent drives.

Protocol reference: RFC 6143 (The Remote Framebuffer Protocol), version 3.8. The bridge
(:mod:`deskpilot.ui.bridge`) authenticates to x11vnc itself with the full-control password
(§7.2.2 VNC Authentication, DES of the 16-byte challenge) and offers the browser security
type None (§7.2.1): the page's access token is the browser's only credential and no VNC
password ever leaves the server. Everything after the security handshake passes through,
except that :class:`InputFilter` cuts the client's KeyEvent, PointerEvent and ClientCutText
messages (§7.5.4-7.5.6) while input is not allowed (no human holds the takeover lease).

DES here is a plain implementation of FIPS 46-3 for one purpose, the VNC challenge; it is
checked against the standard's test vector and against a real x11vnc in the tests.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

__all__ = [
    "RFB_VERSION",
    "InputFilter",
    "ProtocolError",
    "des_encrypt_block",
    "vnc_auth_response",
]

#: The protocol version both sides of the bridge speak (RFC 6143 §7.1.1).
RFB_VERSION = b"RFB 003.008\n"


class ProtocolError(Exception):
    """The peer broke the RFB protocol (the message says how); the connection is closed."""


# ---------------------------------------------------------------------------- DES (FIPS 46-3)
# fmt: off
_IP = (58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
       62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
       57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
       61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7)
_FP = (40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31,
       38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13, 53, 21, 61, 29,
       36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
       34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25)
_E = (32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
      16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1)
_P = (16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25)
_PC1 = (57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
        10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
        63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
        14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4)
_PC2 = (14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8,
        16, 7, 27, 20, 13, 2, 41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
        44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32)
_SHIFTS = (1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1)
_S = (
    (14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13),
    (15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9),
    (10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12),
    (7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14),
    (2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3),
    (12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13),
    (4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12),
    (13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11),
)
# fmt: on


def _permute(value: int, table: tuple[int, ...], width: int) -> int:
    """Bit ``i`` of the result (from the most significant) is bit ``table[i]`` (1-based,
    from the most significant) of the ``width``-bit ``value``."""
    out = 0
    for pos in table:
        out = (out << 1) | ((value >> (width - pos)) & 1)
    return out


def _subkeys(key: bytes) -> list[int]:
    cd = _permute(int.from_bytes(key, "big"), _PC1, 64)
    c, d = cd >> 28, cd & 0x0FFFFFFF
    keys = []
    for shift in _SHIFTS:
        c = ((c << shift) | (c >> (28 - shift))) & 0x0FFFFFFF
        d = ((d << shift) | (d >> (28 - shift))) & 0x0FFFFFFF
        keys.append(_permute((c << 28) | d, _PC2, 56))
    return keys


def _feistel(right: int, subkey: int) -> int:
    x = _permute(right, _E, 32) ^ subkey
    out = 0
    for i in range(8):
        six = (x >> (42 - 6 * i)) & 0x3F
        row = ((six & 0x20) >> 4) | (six & 1)
        out = (out << 4) | _S[i][row * 16 + ((six >> 1) & 0xF)]
    return _permute(out, _P, 32)


def des_encrypt_block(key: bytes, block: bytes) -> bytes:
    """DES-encrypt one 8-byte ``block`` with the 8-byte ``key`` (FIPS 46-3, ECB, one block).

    Raises:
        ValueError: ``key`` or ``block`` is not 8 bytes.
    """
    if len(key) != 8 or len(block) != 8:
        raise ValueError("DES takes an 8-byte key and an 8-byte block.")
    bits = _permute(int.from_bytes(block, "big"), _IP, 64)
    left, right = bits >> 32, bits & 0xFFFFFFFF
    for subkey in _subkeys(key):
        left, right = right, left ^ _feistel(right, subkey)
    return _permute((right << 32) | left, _FP, 64).to_bytes(8, "big")


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """The 16-byte answer to a VNC Authentication ``challenge`` (RFC 6143 §7.2.2).

    The key is the password's first 8 bytes (latin-1, zero-padded), each byte's bits
    reversed, as every VNC server expects; each 8-byte half of the challenge is encrypted
    separately.

    Raises:
        ValueError: ``challenge`` is not 16 bytes.
    """
    if len(challenge) != 16:
        raise ValueError(f"A VNC challenge is 16 bytes, not {len(challenge)}.")
    raw = password.encode("latin-1", "replace")[:8].ljust(8, b"\0")
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in raw)
    return des_encrypt_block(key, challenge[:8]) + des_encrypt_block(key, challenge[8:])


# ---------------------------------------------------------------------------- client messages
#: Client-to-server message types the filter knows (RFC 6143 §7.5 and the registered
#: extensions noVNC sends), with how to find each one's length.
_SET_PIXEL_FORMAT, _SET_ENCODINGS, _UPDATE_REQUEST = 0, 2, 3
_KEY_EVENT, _POINTER_EVENT, _CUT_TEXT = 4, 5, 6
_CONTINUOUS_UPDATES, _FENCE, _SET_DESKTOP_SIZE, _QEMU = 150, 248, 251, 255
#: The messages that drive the desktop: dropped while input is not allowed.
INPUT_TYPES = frozenset({_KEY_EVENT, _POINTER_EVENT, _CUT_TEXT, _QEMU})
#: Most bytes one client message may take (a ClientCutText or a SetEncodings list).
MAX_MESSAGE_BYTES = 1 << 20


def _message_length(buf: bytes | bytearray) -> int | None:
    """The length of the client message at the start of ``buf``, or None if more bytes are
    needed to know it.

    Raises:
        ProtocolError: an unknown message type, or a length over MAX_MESSAGE_BYTES.
    """
    kind = buf[0]
    fixed = {
        _SET_PIXEL_FORMAT: 20,
        _UPDATE_REQUEST: 10,
        _KEY_EVENT: 8,
        _POINTER_EVENT: 6,
        _CONTINUOUS_UPDATES: 10,
        _QEMU: 12,
    }
    if kind in fixed:
        return fixed[kind]
    if kind == _SET_ENCODINGS:
        return None if len(buf) < 4 else 4 + 4 * struct.unpack_from(">H", buf, 2)[0]
    if kind == _CUT_TEXT:
        if len(buf) < 8:
            return None
        # A negative length is the Extended Clipboard form: abs(length) bytes follow.
        length = 8 + abs(struct.unpack_from(">i", buf, 4)[0])
        if length > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"A ClientCutText of {length - 8} bytes is out of range.")
        return length
    if kind == _FENCE:
        return None if len(buf) < 9 else 9 + buf[8]
    if kind == _SET_DESKTOP_SIZE:
        return None if len(buf) < 7 else 8 + 16 * buf[6]
    raise ProtocolError(f"Unknown RFB client message type {kind}.")


class InputFilter:
    """Splits the client's RFB byte stream into messages and drops the input ones (key,
    pointer, clipboard) while ``allowed()`` is False.

    Feed it the bytes after ClientInit, in order, in chunks of any size; :meth:`feed`
    returns the bytes to forward to the server. Whether a message passes is decided when its
    last byte arrives. A key or mouse button pressed while input was allowed is still
    released after it stops being allowed (the key's release passes; the first dropped
    pointer event is forwarded with no button down), so taking input away never leaves
    anything held down on the desktop.

    Args:
        allowed: called per input message; True lets it through (a human holds the
            takeover lease).
    """

    def __init__(self, allowed: Callable[[], bool]) -> None:
        self._allowed = allowed
        self._buf = bytearray()
        self._keys_down: set[int] = set()
        self._buttons = 0
        #: Input messages dropped so far.
        self.dropped = 0

    def feed(self, data: bytes) -> bytes:
        """Add ``data``; return the complete messages to forward (possibly empty).

        Raises:
            ProtocolError: an unknown or oversized message (close the connection).
        """
        self._buf += data
        out = bytearray()
        while self._buf:
            length = _message_length(self._buf)
            if length is None or len(self._buf) < length:
                if len(self._buf) > MAX_MESSAGE_BYTES:
                    raise ProtocolError("An RFB client message is too long.")
                break
            message = bytes(self._buf[:length])
            del self._buf[:length]
            forwarded = self._pass(message)
            if forwarded is None:
                self.dropped += 1
            else:
                out += forwarded
        return bytes(out)

    def _pass(self, message: bytes) -> bytes | None:
        kind = message[0]
        if kind not in INPUT_TYPES:
            return message
        allowed = self._allowed()
        if kind == _KEY_EVENT:
            down, key = message[1], struct.unpack_from(">I", message, 4)[0]
            if allowed:
                if down:
                    self._keys_down.add(key)
                else:
                    self._keys_down.discard(key)
                return message
            if not down and key in self._keys_down:
                self._keys_down.discard(key)
                return message
            return None
        if kind == _POINTER_EVENT:
            if allowed:
                self._buttons = message[1]
                return message
            if self._buttons:
                self._buttons = 0
                return b"\x05\x00" + message[2:6]
            return None
        return message if allowed else None
