"""Prompts: Conversation, Message and the content parts, with Anthropic and OpenAI round-trips.

The shapes follow the Anthropic Messages API content blocks
(https://docs.anthropic.com/en/api/messages): ``text``, ``image``, ``tool_use``,
``tool_result``, ``thinking`` / ``redacted_thinking``; and OpenAI chat completions for
gateways (``tool_calls`` on assistant messages, ``role: "tool"`` results).

Serialising never mutates a part; images keep their base64 text cached so a long agent
history is not re-encoded on every request.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError

if TYPE_CHECKING:  # Pillow is a dependency, but importing it costs ~30 ms; do it lazily.
    from PIL.Image import Image as PILImage

Role = Literal["system", "user", "assistant"]

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
        self._b64 = b64
        if not hasattr(self, "_size"):
            self._size = None

    @property
    def base64(self) -> str:
        """The data as base64 text (computed once)."""
        if self._b64 is None:
            self._b64 = base64.b64encode(self.data).decode("ascii")
        return self._b64

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels of the encoded image."""
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
            "image_url": {"url": f"data:{self.media_type};base64,{self.base64}"},
        }

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


@dataclass(slots=True)
class Message:
    """One turn: ``role`` ("system", "user" or "assistant") and a list of parts.

    ``Message("user", [ToolResult(call.id, result)])`` is the seed's positional form.
    """

    role: Role
    parts: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role == "tool":  # OpenAI naming; the Messages API puts results in user turns
            self.role = "user"
        if self.role not in ("system", "user", "assistant"):
            raise ConfigError(
                f"Message role must be 'system', 'user' or 'assistant', not {self.role!r}."
            )
        if isinstance(self.parts, str):
            self.parts = [Text(self.parts)]
        else:
            self.parts = list(self.parts)

    # --- views -----------------------------------------------------------------------------
    @property
    def completion(self) -> str | None:
        """All text blocks joined with newlines, or None when there is no text."""
        texts = [p.text for p in self.parts if isinstance(p, Text)]
        return "\n".join(texts) if texts else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [p for p in self.parts if isinstance(p, ToolCall)]

    @property
    def tool_results(self) -> list[ToolResult]:
        return [p for p in self.parts if isinstance(p, ToolResult)]

    @property
    def images(self) -> list[Image]:
        return [p for p in self.parts if isinstance(p, Image)]

    @property
    def thinking_parts(self) -> list[Thinking]:
        return [p for p in self.parts if isinstance(p, Thinking)]

    # --- builders --------------------------------------------------------------------------
    @classmethod
    def user(cls, text: str | None = None, image: Any = None) -> Message:
        parts: list[Any] = []
        if text is not None:
            parts.append(Text(text))
        for img in _as_list(image):
            parts.append(img if isinstance(img, Image) else Image(img))
        return cls("user", parts)

    @classmethod
    def ai(cls, text: str) -> Message:
        return cls("assistant", [Text(text)])

    @classmethod
    def system_message(cls, text: str) -> Message:
        return cls("system", [Text(text)])

    # --- Anthropic --------------------------------------------------------------------------
    def to_anthropic(self) -> dict[str, Any]:
        """``{"role", "content": [blocks]}``; a system message raises (it goes in ``system``)."""
        if self.role == "system":
            raise ConfigError("System messages go in the request's `system` field, not messages.")
        return {
            "role": self.role,
            "content": [p if isinstance(p, dict) else p.to_anthropic() for p in self.parts],
        }

    @classmethod
    def from_anthropic(cls, message: dict[str, Any]) -> Message:
        content = message.get("content", "")
        if isinstance(content, str):
            parts: list[Any] = [Text(content)]
        else:
            parts = [part_from_anthropic(b) for b in content]
        return cls(message["role"], parts)

    # --- OpenAI chat completions ----------------------------------------------------------
    def to_openai(self) -> list[dict[str, Any]]:
        """OpenAI chat messages for this turn (one turn can become several messages).

        Tool results become ``role: "tool"`` messages holding their text; their images
        follow in one ``user`` message, since most gateways do not accept images in
        ``tool`` messages.
        """
        if self.role == "system":
            return [{"role": "system", "content": self.completion or ""}]
        if self.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": self.completion}
            calls = self.tool_calls
            if calls:
                msg["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in calls
                ]
            return [msg]
        out: list[dict[str, Any]] = []
        pending_images: list[dict[str, Any]] = []
        content: list[dict[str, Any]] = []
        for p in self.parts:
            if isinstance(p, ToolResult):
                text = p.text or ("(image)" if p.images else "")
                if p.is_error:
                    text = f"Error: {text}"
                out.append({"role": "tool", "tool_call_id": p.tool_call_id, "content": text})
                pending_images.extend(img.to_openai() for img in p.images)
            elif isinstance(p, Text):
                content.append({"type": "text", "text": p.text})
            elif isinstance(p, Image):
                content.append(p.to_openai())
        if pending_images:
            out.append({"role": "user", "content": pending_images})
        if content:
            if len(content) == 1 and content[0]["type"] == "text":
                out.append({"role": "user", "content": content[0]["text"]})
            else:
                out.append({"role": "user", "content": content})
        return out

    @classmethod
    def from_openai(cls, message: dict[str, Any]) -> Message:
        role = message["role"]
        if role == "tool":
            return cls(
                "user", [ToolResult(message["tool_call_id"], _openai_content(message["content"]))]
            )
        parts: list[Any] = []
        content = message.get("content")
        if content:
            parts.extend(_openai_content_parts(content))
        parts.extend(tool_call_from_openai(call) for call in message.get("tool_calls") or [])
        if role == "developer":
            role = "system"
        return cls(role, parts)

    def __repr__(self) -> str:
        return f"Message(role={self.role!r}, parts={self.parts!r})"


def tool_call_from_openai(call: dict[str, Any]) -> ToolCall:
    """One chat-completions ``tool_calls`` entry -> :class:`ToolCall`.

    ``function.arguments`` is a JSON string (OpenAI chat completions); text that is not a JSON
    object is kept under ``"_raw_arguments"`` so the executor can report it instead of crashing.
    """
    fn = call.get("function") or {}
    args = fn.get("arguments") or "{}"
    try:
        arguments = json.loads(args) if isinstance(args, str) else dict(args)
    except (json.JSONDecodeError, TypeError, ValueError):
        arguments = {"_raw_arguments": args}
    if not isinstance(arguments, dict):
        arguments = {"_raw_arguments": arguments}
    return ToolCall(str(call.get("id", "")), str(fn.get("name", "")), arguments)


def _openai_content_parts(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Any] = []
    for item in content:
        if item.get("type") == "text":
            parts.append(Text(item.get("text", "")))
        elif item.get("type") == "image_url":
            url = (item.get("image_url") or {}).get("url", "")
            parts.append(Image(url))
    return parts


def _openai_content(content: Any) -> Any:
    return content if isinstance(content, str) else _openai_content_parts(content)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


class Conversation:
    """An ordered list of :class:`Message` s, built fluently.

    ``Conversation().system("...").user("Take a screenshot")``; ``.messages`` is a plain
    public list (the seed appends to it directly).
    """

    __slots__ = ("messages",)

    def __init__(self, messages: Iterable[Message] | None = None) -> None:
        self.messages: list[Message] = list(messages or [])

    def system(self, text: str) -> Conversation:
        self.messages.append(Message("system", [Text(text)]))
        return self

    def user(self, text: str | None = None, image: Any = None) -> Conversation:
        """Append a user turn with ``text`` and optional image(s) (bytes, path or PIL image)."""
        self.messages.append(Message.user(text, image=image))
        return self

    def ai(self, text: str) -> Conversation:
        self.messages.append(Message.ai(text))
        return self

    def add(self, message: Message) -> Conversation:
        if not isinstance(message, Message):
            raise ConfigError(f"Conversation.add() takes a Message, not {type(message).__name__}.")
        self.messages.append(message)
        return self

    def copy(self) -> Conversation:
        """A shallow copy: a new list and new Message objects sharing the (immutable) parts."""
        return Conversation(Message(m.role, list(m.parts)) for m in self.messages)

    def deepcopy(self) -> Conversation:
        return copy.deepcopy(self)

    @property
    def system_text(self) -> str | None:
        """All system messages' text, joined with blank lines (none are dropped)."""
        texts = [m.completion or "" for m in self.messages if m.role == "system"]
        return "\n\n".join(texts) if texts else None

    def to_anthropic(self) -> tuple[str | None, list[dict[str, Any]]]:
        """``(system, messages)`` for the Messages API; consecutive same-role turns merged."""
        out: list[dict[str, Any]] = []
        for m in self.messages:
            if m.role == "system":
                continue
            wire = m.to_anthropic()
            if out and out[-1]["role"] == wire["role"]:
                out[-1] = {"role": wire["role"], "content": out[-1]["content"] + wire["content"]}
            else:
                out.append(wire)
        return self.system_text, out

    def to_openai(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        sys_text = self.system_text
        if sys_text is not None:
            out.append({"role": "system", "content": sys_text})
        for m in self.messages:
            if m.role != "system":
                out.extend(m.to_openai())
        return out

    @classmethod
    def from_anthropic(
        cls, messages: Iterable[dict[str, Any]], system: str | list[dict[str, Any]] | None = None
    ) -> Conversation:
        conv = cls()
        if isinstance(system, str):
            conv.system(system)
        elif system:
            conv.system("\n".join(b.get("text", "") for b in system))
        for m in messages:
            conv.add(Message.from_anthropic(m))
        return conv

    @classmethod
    def from_openai(cls, messages: Iterable[dict[str, Any]]) -> Conversation:
        conv = cls()
        for m in messages:
            msg = Message.from_openai(m)
            prev = conv.messages[-1] if conv.messages else None
            # tool messages (each its own turn in OpenAI) merge into one user turn
            if prev is not None and prev.role == msg.role == "user" and msg.tool_results:
                prev.parts.extend(msg.parts)
            else:
                conv.add(msg)
        return conv

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"Conversation({len(self.messages)} messages)"


def _system_text(content: Any) -> str:
    """A system message's text: a string, or the text of a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def as_conversation(prompt: Any) -> Conversation:
    """Accept a Conversation, a Message, a string, or a list of Anthropic/OpenAI message dicts.

    Raises:
        ConfigError: for anything else.
    """
    if isinstance(prompt, Conversation):
        return prompt
    if isinstance(prompt, Message):
        return Conversation([prompt])
    if isinstance(prompt, str):
        return Conversation().user(prompt)
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        is_openai = any(
            m.get("role") in ("tool", "developer") or "tool_calls" in m for m in prompt
        ) or any(
            isinstance(m.get("content"), list)
            and any(c.get("type") == "image_url" for c in m["content"])
            for m in prompt
        )
        return (
            Conversation.from_openai(prompt)
            if is_openai
            else Conversation.from_anthropic(
                [m for m in prompt if m.get("role") != "system"],
                system="\n\n".join(
                    _system_text(m.get("content")) for m in prompt if m.get("role") == "system"
                )
                or None,
            )
        )
    raise ConfigError(
        "A prompt must be a Conversation, a Message, a string or a list of message dicts, "
        f"not {type(prompt).__name__}."
    )


__all__ = [
    "Conversation",
    "Image",
    "Message",
    "Part",
    "Text",
    "Thinking",
    "ToolCall",
    "ToolResult",
    "as_conversation",
    "detect_media_type",
    "part_from_anthropic",
    "tool_call_from_openai",
]
