"""Binary frames of the computer-server protocol: tool results with their images as bytes.

A WebSocket client that says ``hello`` with ``binary: true`` gets each reply that carries
images (a ``tool`` result with a screenshot) as one binary frame instead of a text frame::

    b"DPB1" | JSON length (4 bytes, big-endian) | the reply's JSON (UTF-8) | image bytes...

In that JSON an image part is ``{"type": "image", "media_type": ..., "blob": [offset,
length]}``: its bytes are ``length`` bytes at ``offset`` after the JSON. Replies without
images stay text frames. This saves the server's base64 encoding and the client's decoding
(~15 ms per MB on a slow core) and a third of the bytes; a text frame, HTTP and a client
without ``binary`` get the same reply with base64 ``data`` (:func:`inline`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from .protocol import Reply, encode_reply

__all__ = ["MAGIC", "decode_binary", "encode_binary", "inline"]

MAGIC = b"DPB1"
"""The first four bytes of a binary reply (format version 1)."""


def _image_parts(reply: Reply) -> list[dict[str, Any]]:
    content = (reply.result or {}).get("content")
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, dict) and p.get("type") == "image"]


def encode_binary(reply: Reply, blobs: Sequence[bytes]) -> bytes:
    """One binary frame: the reply (image parts pointing into ``blobs``) and the bytes."""
    head = encode_reply(reply).encode("utf-8")
    return b"".join((MAGIC, len(head).to_bytes(4, "big"), head, *blobs))


def decode_binary(frame: bytes) -> Reply:
    """The reply in a binary frame, each image part given its bytes as ``raw``.

    Raises:
        ValueError: not a binary reply (wrong magic, bad lengths or JSON).
    """
    if frame[:4] != MAGIC or len(frame) < 8:
        raise ValueError("not a deskpilot binary reply")
    size = int.from_bytes(frame[4:8], "big")
    start = 8 + size
    reply = Reply.model_validate_json(frame[8:start])
    data = memoryview(frame)[start:]
    for part in _image_parts(reply):
        offset, length = part.pop("blob")
        if not (0 <= offset and 0 <= length and offset + length <= len(data)):
            raise ValueError("an image part points outside the binary reply")
        part["raw"] = bytes(data[offset : offset + length])
    return reply


def inline(reply: Reply, blobs: Sequence[bytes]) -> Reply:
    """``reply`` for a text frame or HTTP: image parts get their bytes as base64 ``data``."""
    if not blobs:
        return reply
    result = dict(reply.result or {})
    content = []
    joined = b"".join(blobs) if len(blobs) > 1 else blobs[0]
    for part in result.get("content") or []:
        if isinstance(part, dict) and part.get("type") == "image" and "blob" in part:
            offset, length = part["blob"]
            data = base64.b64encode(joined[offset : offset + length]).decode("ascii")
            part = {"type": "image", "media_type": part["media_type"], "data": data}
        content.append(part)
    result["content"] = content
    return Reply(id=reply.id, result=result)
