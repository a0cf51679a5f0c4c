"""The fake model's records: a request as received (:class:`Incoming`), how it is answered
(an :class:`~deskpilot.transport.HTTPResponse`, :class:`Hang` or :class:`Disconnect`), and
what tests inspect afterwards (:class:`RecordedRequest`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..transport import HTTPResponse


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake model received it, and what it answered.

    Attributes:
        index: arrival order, from 0.
        api: ``"anthropic"``, ``"bedrock"``, ``"vertex"``, ``"gateway"`` (OpenAI chat completions),
            ``"count_tokens"`` or ``"other"``.
        method / path / raw_path: HTTP method, decoded path, path as sent (percent-encoded).
        headers: received headers with lower-case names.
        body: the decoded JSON body (None if it was not JSON).
        raw_body: the body bytes.
        received_at: ``time.monotonic()`` at arrival, seconds.
        model: the model from the body (or from the Bedrock or Vertex URL).
        status: the HTTP status answered (None while pending or if the client went away).
        outcome: ``"ok"``, ``"fault"``, ``"rate_limited"``, ``"auth"``, ``"invalid"``,
            ``"hang"``, ``"disconnect"``.
        usage: the ``usage`` served with a successful message.
        error_type: the error ``type`` (or Bedrock error type) of an error answer.
    """

    index: int
    api: str
    method: str
    path: str
    raw_path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    received_at: float
    model: str | None = None
    status: int | None = None
    outcome: str = ""
    usage: dict[str, int] | None = None
    error_type: str | None = None

    @property
    def betas(self) -> list[str]:
        """Beta flags: the ``anthropic-beta`` header, or Bedrock's body ``anthropic_beta``
        (Vertex: the header's, then the body's)."""
        in_body = self.body.get("anthropic_beta") if isinstance(self.body, dict) else None
        if self.api == "bedrock":
            return list(in_body or [])
        header = self.headers.get("anthropic-beta", "")
        betas = [b.strip() for b in header.split(",") if b.strip()]
        return betas + list(in_body or []) if self.api == "vertex" else betas

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or []) if isinstance(self.body, dict) else []

    @property
    def tool_types(self) -> list[str | None]:
        """``type`` of each tool in order (None for custom tools without a type)."""
        return [t.get("type") for t in self.tools]

    @property
    def tool_names(self) -> list[str | None]:
        return [
            t.get("name") if t.get("type") != "function" else t["function"].get("name")
            for t in self.tools
        ]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def prompt_text(self) -> str | None:
        """The first text of the first user message (handy to group retries per prompt)."""
        for message in self.messages:
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                return content
            for block in content or ():
                if isinstance(block, dict) and block.get("type") == "text":
                    return block.get("text")
            return None
        return None

    def cache_control_locations(self) -> list[str]:
        """Where ``cache_control`` appears, e.g. ``["tools[2]", "messages[0].content[1]"]``."""
        if not isinstance(self.body, dict):
            return []
        out: list[str] = []
        if "cache_control" in self.body:
            out.append("body")
        for i, t in enumerate(self.body.get("tools") or ()):
            if isinstance(t, dict) and "cache_control" in t:
                out.append(f"tools[{i}]")
        system = self.body.get("system")
        if isinstance(system, list):
            for i, b in enumerate(system):
                if isinstance(b, dict) and "cache_control" in b:
                    out.append(f"system[{i}]")
        for i, m in enumerate(self.body.get("messages") or ()):
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):
                for j, b in enumerate(content):
                    if isinstance(b, dict) and "cache_control" in b:
                        out.append(f"messages[{i}].content[{j}]")
        return out


@dataclass(slots=True)
class Incoming:
    """One request as received, whatever carried it (a socket or a MockTransport)."""

    method: str
    path: str
    raw_path: str
    headers: dict[str, str]
    body: bytes
    host: str


@dataclass(slots=True)
class Hang:
    """Answer nothing until the fake closes (the client times out). With ``head``, the
    status and headers of ``head`` are sent first and its body is cut short (a body-read
    timeout)."""

    head: HTTPResponse | None = None


@dataclass(slots=True)
class Disconnect:
    """Close the connection without an answer."""


Outcome = HTTPResponse | Hang | Disconnect


__all__ = ["Disconnect", "Hang", "Incoming", "Outcome", "RecordedRequest"]
