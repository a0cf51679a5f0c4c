"""Message and Conversation, with Anthropic and OpenAI chat-completions round-trips.

Anthropic Messages API turns (https://docs.anthropic.com/en/api/messages) and OpenAI chat
completions for gateways (https://platform.openai.com/docs/api-reference/chat: ``tool_calls``
on assistant messages, ``role: "tool"`` results).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from .parts import Image, Text, Thinking, ToolCall, ToolResult, part_from_anthropic

__all__ = ["Conversation", "Message", "Role", "as_conversation", "tool_call_from_openai"]

Role = Literal["system", "user", "assistant"]


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
