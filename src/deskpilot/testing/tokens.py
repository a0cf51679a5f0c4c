"""Deterministic token counting for request bodies, shared by the fake server and benchmarks.

The real APIs count tokens with a tokenizer we do not have; the fake server needs numbers that
are stable, cheap and realistic in size, so that rate-limit and caching tests see the same
magnitudes as production. The rule (documented here, used everywhere in ``deskpilot.testing``):

- text (user/assistant text, system text, tool_result text, thinking, tool_use input JSON,
  custom tool name + description + input_schema JSON): ``ceil(characters / 4)``;
- images: the Messages API vision rule for models before Opus 4.7 ("Images" page): an image
  whose long edge exceeds 1,568 px is first scaled down to 1,568 px, then
  ``tokens = ceil(width * height / 750)``, capped at 1,600. The size is read from the image
  header (PNG, JPEG, GIF, WebP) inside the base64 data; URL images and unreadable data count
  as 1,600;
- Anthropic-defined tool definitions: a fixed overhead per type, from the computer-use tool
  page ("Pricing"): ``computer_2024*/2025*`` 735, ``computer_toolset_*`` 4,500,
  ``text_editor_*`` 700, ``bash_*`` 245; any other typed server tool 100;
- nothing per message or per request beyond that.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from typing import Any

IMAGE_MAX_EDGE_PX = 1568
IMAGE_MAX_TOKENS = 1600
IMAGE_UNKNOWN_TOKENS = 1600

TOOL_TYPE_OVERHEAD: dict[str, int] = {
    "computer_toolset": 4500,
    "computer": 735,
    "text_editor": 700,
    "bash": 245,
}
"""Input tokens per Anthropic-defined tool definition, by ``type`` prefix (longest first)."""

OTHER_TYPED_TOOL_TOKENS = 100


def text_tokens(text: str) -> int:
    """``ceil(len(text) / 4)`` tokens for a string (0 for the empty string)."""
    return (len(text) + 3) // 4


def image_tokens(width: int, height: int) -> int:
    """Input tokens of one image of ``width`` x ``height`` pixels (the image's own pixels).

    Follows the Messages API vision rule for pre-Opus-4.7 models: long edge scaled down to
    at most 1,568 px (aspect kept), then ``ceil(w * h / 750)``, capped at 1,600.
    """
    if width <= 0 or height <= 0:
        return 0
    long_edge = max(width, height)
    if long_edge > IMAGE_MAX_EDGE_PX:
        scale = IMAGE_MAX_EDGE_PX / long_edge
        width = max(1, int(width * scale))
        height = max(1, int(height * scale))
    return min(IMAGE_MAX_TOKENS, math.ceil(width * height / 750))


def image_size_from_bytes(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` in pixels from a PNG, JPEG, GIF or WebP header, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            w = 1 + int.from_bytes(data[24:27], "little")
            h = 1 + int.from_bytes(data[27:30], "little")
            return w, h
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        return None
    if data[:2] == b"\xff\xd8":
        i = 2
        n = len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg_len = int.from_bytes(data[i + 2 : i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + seg_len
    return None


def _b64_image_tokens(data: str) -> int:
    """Tokens of a base64 image; decodes only the header unless it is a JPEG."""
    try:
        head = base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=False)
        if head[:2] == b"\xff\xd8":  # JPEG: the size marker can be anywhere
            head = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return IMAGE_UNKNOWN_TOKENS
    size = image_size_from_bytes(head)
    return image_tokens(*size) if size else IMAGE_UNKNOWN_TOKENS


def _data_url_tokens(url: str) -> int:
    if url.startswith("data:") and "," in url:
        return _b64_image_tokens(url.split(",", 1)[1])
    return IMAGE_UNKNOWN_TOKENS


def _json_tokens(value: Any) -> int:
    return text_tokens(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def tool_definition_tokens(tool: dict[str, Any]) -> int:
    """Input tokens of one ``tools`` entry (Anthropic-defined, custom, or OpenAI function)."""
    tool_type = tool.get("type")
    if isinstance(tool_type, str) and tool_type not in ("custom", "function"):
        for prefix, cost in TOOL_TYPE_OVERHEAD.items():
            if tool_type.startswith(prefix):
                return cost
        return OTHER_TYPED_TOOL_TOKENS
    if tool_type == "function" and isinstance(tool.get("function"), dict):
        tool = tool["function"]
    schema = tool.get("input_schema", tool.get("parameters", {}))
    return (
        text_tokens(str(tool.get("name", "")))
        + text_tokens(str(tool.get("description", "")))
        + _json_tokens(schema)
    )


def block_tokens(block: Any) -> int:
    """Input tokens of one Messages API content block (or a bare string)."""
    if isinstance(block, str):
        return text_tokens(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        return text_tokens(block.get("text", ""))
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            return _b64_image_tokens(source.get("data", ""))
        return IMAGE_UNKNOWN_TOKENS
    if kind == "tool_use":
        return text_tokens(block.get("name", "")) + _json_tokens(block.get("input", {}))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return sum(block_tokens(b) for b in content)
        return text_tokens(str(content))
    if kind == "thinking":
        return text_tokens(block.get("thinking", ""))
    if kind == "redacted_thinking":
        return text_tokens(block.get("data", ""))
    if kind == "image_url":  # OpenAI content part
        return _data_url_tokens((block.get("image_url") or {}).get("url", ""))
    if kind == "document":
        source = block.get("source") or {}
        return text_tokens(str(source.get("data", "")))
    return _json_tokens(block)


def content_tokens(content: Any) -> int:
    """Input tokens of a message ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        return sum(block_tokens(b) for b in content)
    return 0


def count_request_tokens(body: dict[str, Any]) -> int:
    """Total input tokens of a request body, by the rule in this module's docstring.

    Accepts a Messages API / Bedrock InvokeModel body (``tools``, ``system``, ``messages``)
    or an OpenAI chat-completions body (``tools``, ``messages`` with ``tool_calls``,
    ``image_url`` parts). Returns an int >= 0; never raises on odd shapes (unknown blocks
    count as their JSON text).
    """
    total = 0
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            total += tool_definition_tokens(tool)
    system = body.get("system")
    if system is not None:
        total += content_tokens(system)
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        total += content_tokens(message.get("content"))
        for call in message.get("tool_calls") or ():  # OpenAI assistant turn
            fn = call.get("function") or {}
            total += text_tokens(str(fn.get("name", ""))) + text_tokens(
                str(fn.get("arguments", ""))
            )
    return total


def response_output_tokens(content: list[dict[str, Any]]) -> int:
    """Output tokens of a Messages API response ``content`` (same rule, at least 1)."""
    return max(1, sum(block_tokens(b) for b in content))


__all__ = [
    "IMAGE_MAX_EDGE_PX",
    "IMAGE_MAX_TOKENS",
    "TOOL_TYPE_OVERHEAD",
    "block_tokens",
    "content_tokens",
    "count_request_tokens",
    "image_size_from_bytes",
    "image_tokens",
    "response_output_tokens",
    "text_tokens",
    "tool_definition_tokens",
]
