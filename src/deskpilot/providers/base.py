"""The seam between the client and a wire format: request options, requests, parsing.

A provider turns ``(ModelSpec, Conversation, RequestOptions)`` into an
:class:`~deskpilot.transport.HTTPRequest` (URL, headers, JSON bytes, encoded once),
:meth:`Provider.sign` s it per attempt when its API needs that (Bedrock SigV4), and turns an
HTTP answer into a :class:`ParsedResponse` or an :class:`ErrorInfo`. Body building and
parsing are pure functions of their inputs, tested without I/O; providers never send
anything (the client's :class:`~deskpilot.transport.Transport` does).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..computer_use.specs import ToolGroup
from ..models import ModelSpec
from ..prompt import Conversation, Message
from ..prompt.parts import JsonSafeText
from ..response import Usage
from ..transport import HTTPRequest

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _find_safe_text(obj: Any, found: list[tuple[Any, Any, JsonSafeText]]) -> None:
    """Every :class:`JsonSafeText` value in the dicts and lists of ``obj``, with its holder."""
    if type(obj) is dict:
        items: Any = obj.items()
    elif type(obj) is list:
        items = enumerate(obj)
    else:
        return
    for key, value in items:
        if type(value) is JsonSafeText:
            found.append((obj, key, value))
        elif type(value) is dict or type(value) is list:
            _find_safe_text(value, found)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (encoded once per request).

    :class:`~deskpilot.prompt.parts.JsonSafeText` values (images' base64) are not scanned by
    the encoder: each is replaced by a unique marker while encoding and copied in as bytes
    after. The bytes are the same as ``json.dumps`` gives; with screenshots in the history it
    is several times faster. ``obj`` is left as it was.
    """
    found: list[tuple[Any, Any, JsonSafeText]] = []
    _find_safe_text(obj, found)
    if not found:
        return _encode(obj)
    nonce = secrets.token_hex(8)  # a marker no other text in the body can contain
    try:
        for i, (holder, key, _value) in enumerate(found):
            holder[key] = f"\x00{nonce}:{i}\x00"
        text = _encode(obj)
    finally:
        for holder, key, value in found:
            holder[key] = value
    spots = sorted(
        (text.index(f"\\u0000{nonce}:{i}\\u0000".encode()), i) for i in range(len(found))
    )
    marker_len = len(f"\\u0000{nonce}:\\u0000".encode())
    pieces: list[bytes] = []
    pos = 0
    for at, i in spots:
        pieces += (text[pos:at], found[i][2].encode("ascii"))
        pos = at + marker_len + len(str(i))
    pieces.append(text[pos:])
    return b"".join(pieces)


@dataclass(slots=True, kw_only=True)
class RequestOptions:
    """Per-call options of ``process_prompts_async`` / ``start``.

    Attributes:
        computer_use: add the computer, editor and bash tools of the model's generation.
        display_width / display_height: the display size the model is told, in model-space
            pixels (default 1024x768).
        display_number: the X11 display number in the computer tool definition (optional).
        cache: prompt-cache modes (see :mod:`deskpilot.providers.caching`).
        tools: custom :class:`~deskpilot.tool.Tool` s and raw Anthropic tool dicts, sent
            after the computer-use tools.
        max_tokens: the response's ``max_tokens``.
        temperature: sampling temperature, or None to leave it out.
        system: a system prompt that replaces the conversation's system messages.
        thinking: the Messages API ``thinking`` object, passed through.
        tool_choice: the Messages API ``tool_choice`` object, passed through.
        extra_body: keys merged into the body last.
    """

    computer_use: bool = False
    display_width: int = 1024
    display_height: int = 768
    display_number: int | None = None
    cache: tuple[str, ...] = ()
    tools: tuple[Any, ...] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    system: str | None = None
    thinking: dict[str, Any] | None = None
    tool_choice: dict[str, Any] | None = None
    extra_body: Mapping[str, Any] | None = None


@dataclass(slots=True)
class ToolSet:
    """The Anthropic tool dicts of one request, the beta flags they need, the group of
    Anthropic-defined tools among them and its computer tool type (None without one)."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    custom: list[Any] = field(default_factory=list)
    betas: list[str] = field(default_factory=list)
    group: ToolGroup = field(default_factory=ToolGroup)
    computer_tool_type: str | None = None
    overhead_tokens: int = 0


@dataclass(slots=True)
class ParsedResponse:
    """A successful answer: the assistant message, stop reason, usage and request id."""

    content: Message
    stop_reason: str | None
    usage: Usage
    request_id: str | None = None


@dataclass(slots=True)
class ErrorInfo:
    """An error answer: the API error ``type`` and message."""

    error_type: str
    message: str


class Provider:
    """Base class of the wire formats. Subclasses override :meth:`build_body`,
    :meth:`url`, :meth:`headers`, :meth:`parse` and :meth:`parse_error`."""

    name: str = "base"

    def url(self, spec: ModelSpec) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def headers(self, betas: list[str]) -> dict[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_body(
        self, spec: ModelSpec, conv: Conversation, opts: RequestOptions, toolset: ToolSet
    ) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(
        self,
        spec: ModelSpec,
        conv: Conversation,
        opts: RequestOptions,
        toolset: ToolSet,
        timeout_s: float = 120.0,
    ) -> HTTPRequest:
        """The unsigned ``POST`` of one prompt: URL, headers and the body encoded once;
        ``timeout_s`` is the seconds one attempt may take."""
        body = self.build_body(spec, conv, opts, toolset)
        return HTTPRequest(
            "POST", self.url(spec), self.headers(toolset.betas), dumps(body), timeout_s
        )

    async def sign(self, request: HTTPRequest) -> HTTPRequest:
        """The request to send for one attempt: unchanged by default; providers whose
        signature covers the time (Bedrock SigV4) return a freshly signed copy.

        Raises:
            CredentialsError: no credentials, or their refresh failed.
        """
        return request

    def parse(
        self, data: dict[str, Any], headers: Mapping[str, str]
    ) -> ParsedResponse:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse_error(
        self, status: int, data: Any, headers: Mapping[str, str]
    ) -> ErrorInfo:  # pragma: no cover - abstract
        raise NotImplementedError

    def secrets(self) -> tuple[str, ...]:
        """The credential values this provider sends (API keys, AWS secrets), for
        redaction; never logged."""
        return ()

    async def close(self) -> None:
        """Release provider resources (none by default)."""


__all__ = [
    "EPHEMERAL",
    "ErrorInfo",
    "ParsedResponse",
    "Provider",
    "RequestOptions",
    "ToolSet",
    "dumps",
]
