"""Content parts: the blocks of a message (text, image, tool call, tool result, thinking).

The shapes follow the Anthropic Messages API content blocks
(https://docs.anthropic.com/en/api/messages): ``text``, ``image``, ``tool_use``,
``tool_result``, ``thinking`` / ``redacted_thinking``. Serialising never mutates a part;
images keep their base64 text cached so a long agent history is not re-encoded on every
request.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # Pillow is a dependency, but importing it costs ~30 ms; do it lazily.
    from PIL.Image import Image as PILImage

__all__ = [
    "Image",
    "JsonSafeText",
    "Part",
    "ResultPart",
    "Text",
    "Thinking",
    "ToolCall",
    "ToolResult",
    "detect_media_type",
    "part_from_anthropic",
]

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def detect_media_type(data: bytes) -> str:
    """Return the image media type of ``data`` from its magic bytes.

    Raises:
        ConfigError: the bytes are not PNG, JPEG, GIF or WebP (the formats the API accepts).
    """
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ConfigError(
        "Image data is not PNG, JPEG, GIF or WebP; pass one of those (the formats the "
        "Messages API accepts) or give media_type= explicitly."
    )


@dataclass(slots=True)
class Text:
    """A text content block."""

    text: str

    def to_anthropic(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class JsonSafeText(str):
    """Text that JSON does not escape: ASCII without ``"``, ``\\`` or control characters
    (base64, and ``data:`` URLs of it). A request body's encoder copies such values in as
    bytes instead of scanning them (:func:`deskpilot.providers.base.dumps`): screenshots are
    most of a computer-use request."""

    __slots__ = ()


class Image:
    """An image content block: PNG, JPEG, GIF or WebP bytes with their media type.

    Args:
        data: raw bytes, a path to a file, a ``PIL.Image.Image`` (encoded as PNG), a
            ``data:`` URL or base64 text.
        media_type: e.g. ``"image/png"``; detected from the bytes when omitted.

    Raises:
        ConfigError: unreadable data or an unsupported format.
    """

    __slots__ = ("_b64", "_size", "data", "media_type")

    _size: tuple[int, int] | None

    def __init__(
        self, data: bytes | str | Path | PILImage | io.BytesIO, media_type: str | None = None
    ) -> None:
        raw: bytes
        b64: str | None = None
        if isinstance(data, bytes | bytearray | memoryview):
            raw = bytes(data)
        elif isinstance(data, io.BytesIO):
            raw = data.getvalue()
        elif isinstance(data, Path):
            raw = data.read_bytes()
        elif isinstance(data, str):
            if data.startswith("data:"):
                header, _, b64 = data.partition(",")
                media_type = media_type or header[5:].split(";")[0] or None
            elif len(data) < 4096 and Path(data).is_file():
                raw = Path(data).read_bytes()
            else:
                b64 = data
            if b64 is not None:
                try:
                    raw = base64.b64decode(b64, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise ConfigError(
                        "Image(str) must be a file path, a data: URL or base64 text."
                    ) from exc
        elif hasattr(data, "save") and hasattr(data, "size"):  # a PIL image
            buf = io.BytesIO()
            data.save(buf, format="PNG")
            raw = buf.getvalue()
            media_type = "image/png"
            width, height = data.size
            self._size = (width, height)
        else:
            raise ConfigError(
                f"Image() takes bytes, a path, a PIL image or base64 text, not {type(data).__name__}."
            )
        self.data = raw
        self.media_type = media_type or detect_media_type(raw)
        # b64decode(validate=True) accepted it: only the base64 alphabet and padding
        self._b64 = JsonSafeText(b64) if b64 is not None else None
        if not hasattr(self, "_size"):
            self._size = None

    @property
    def base64(self) -> str:
        """The data as base64 text (computed once; a :class:`JsonSafeText`)."""
        if self._b64 is None:
            self._b64 = JsonSafeText(base64.b64encode(self.data).decode("ascii"))
        return self._b64

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels of the encoded image."""
        if self._size is None and self.data[12:16] == b"IHDR" and self.data[:8] == _PNG_SIGNATURE:
            # a PNG states its size in its first chunk: no decoder needed (every screenshot)
            width, height = struct.unpack(">II", self.data[16:24])
            self._size = (width, height)
        if self._size is None:
            from PIL import Image as PILImageModule

            with PILImageModule.open(io.BytesIO(self.data)) as im:
                self._size = (im.width, im.height)
        return self._size

    def to_anthropic(self) -> dict[str, Any]:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": self.media_type, "data": self.base64},
        }

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "image_url",
            "image_url": {"url": self._data_url()},
        }

    def _data_url(self) -> str:
        url = f"data:{self.media_type};base64,{self.base64}"
        # a media type is short ASCII like image/png; anything else goes through the encoder
        mt = self.media_type
        safe = mt.isascii() and mt.isprintable() and '"' not in mt and "\\" not in mt
        return JsonSafeText(url) if safe else url

    @classmethod
    def from_anthropic(cls, block: dict[str, Any]) -> Image:
        src = block.get("source") or {}
        if src.get("type") != "base64":
            raise ConfigError("Only base64 image sources can be turned into Image parts.")
        return cls(src["data"], media_type=src.get("media_type"))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Image)
            and self.data == other.data
            and self.media_type == other.media_type
        )

    def __hash__(self) -> int:
        return hash((self.media_type, len(self.data)))

    def __repr__(self) -> str:
        return f"Image(media_type={self.media_type!r}, bytes={len(self.data)})"


@dataclass(slots=True)
class ToolCall:
    """A ``tool_use`` block: the model asks to run tool ``name`` with ``arguments``.

    ``toolset_name`` is set for members of ``computer_toolset_20260801`` (the member is the
    ``name``) and must be echoed on the matching :class:`ToolResult`.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    toolset_name: str | None = None

    def to_anthropic(self) -> dict[str, Any]:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": self.id,
            "name": self.name,
            "input": self.arguments,
        }
        if self.toolset_name:
            block["toolset_name"] = self.toolset_name
        return block


ResultPart = Text | Image


def _normalise_result(result: Any) -> str | list[ResultPart | dict[str, Any]]:
    if isinstance(result, str):
        return result
    if isinstance(result, Text | Image):
        return [result]
    if isinstance(result, dict):
        result = [result]
    if isinstance(result, Sequence):
        out: list[ResultPart | dict[str, Any]] = []
        for item in result:
            if isinstance(item, Text | Image):
                out.append(item)
            elif isinstance(item, str):
                out.append(Text(item))
            elif isinstance(item, dict) and item.get("type") == "text":
                out.append(Text(item.get("text", "")))
            elif (
                isinstance(item, dict)
                and item.get("type") == "image"
                and (item.get("source") or {}).get("type") == "base64"
            ):
                out.append(Image.from_anthropic(item))
            elif isinstance(item, dict):
                out.append(dict(item))  # another Anthropic block (e.g. document): pass through
            else:
                raise ConfigError(
                    "ToolResult.result items must be Text, Image, str or Anthropic block "
                    f"dicts, not {type(item).__name__}."
                )
        return out
    raise ConfigError(
        "ToolResult.result must be a string, a list of Text/Image parts or Anthropic block "
        f"dicts, not {type(result).__name__}."
    )


@dataclass(slots=True)
class ToolResult:
    """A ``tool_result`` block answering the ToolCall whose id is ``tool_call_id``.

    ``result`` is a string, a list of :class:`Text`/:class:`Image` parts, or Anthropic block
    dicts (``{"type": "image", "source": {...}}``) as in the seed's example; it is normalised
    to parts. ``is_error`` marks a failed tool run (the model sees the text and can react).
    """

    tool_call_id: str
    result: Any
    is_error: bool = False
    toolset_name: str | None = None

    def __post_init__(self) -> None:
        self.result = _normalise_result(self.result)

    @property
    def text(self) -> str:
        """The text of the result (image parts skipped)."""
        if isinstance(self.result, str):
            return self.result
        return "\n".join(p.text for p in self.result if isinstance(p, Text))

    @property
    def images(self) -> list[Image]:
        if isinstance(self.result, str):
            return []
        return [p for p in self.result if isinstance(p, Image)]

    def to_anthropic(self) -> dict[str, Any]:
        content: Any
        if isinstance(self.result, str):
            content = self.result
        else:
            content = [p if isinstance(p, dict) else p.to_anthropic() for p in self.result]
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": self.tool_call_id,
            "content": content,
        }
        if self.is_error:
            block["is_error"] = True
        if self.toolset_name:
            block["toolset_name"] = self.toolset_name
        return block


@dataclass(slots=True)
class Thinking:
    """A ``thinking`` block (``signature`` must be sent back unchanged) or, with
    ``redacted=True``, a ``redacted_thinking`` block whose opaque payload is ``content``."""

    content: str
    signature: str | None = None
    redacted: bool = False

    def to_anthropic(self) -> dict[str, Any]:
        if self.redacted:
            return {"type": "redacted_thinking", "data": self.content}
        block: dict[str, Any] = {"type": "thinking", "thinking": self.content}
        if self.signature is not None:
            block["signature"] = self.signature
        return block


Part = Text | Image | ToolCall | ToolResult | Thinking


def part_from_anthropic(block: dict[str, Any]) -> Part | dict[str, Any]:
    """Turn one Anthropic content block into a part (unknown blocks are kept as dicts)."""
    kind = block.get("type")
    if kind == "text":
        return Text(block.get("text", ""))
    if kind == "image":
        return Image.from_anthropic(block)
    if kind == "tool_use":
        return ToolCall(
            block["id"], block["name"], dict(block.get("input") or {}), block.get("toolset_name")
        )
    if kind == "tool_result":
        content = block.get("content", "")
        return ToolResult(
            block["tool_use_id"],
            content if content is not None else "",
            bool(block.get("is_error", False)),
            block.get("toolset_name"),
        )
    if kind == "thinking":
        return Thinking(block.get("thinking", ""), block.get("signature"))
    if kind == "redacted_thinking":
        return Thinking(block.get("data", ""), redacted=True)
    return dict(block)
