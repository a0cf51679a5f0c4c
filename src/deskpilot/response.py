"""Results of a model call: :class:`Usage`, :class:`APIResponse` and :class:`ErrorKind`.

``usage`` follows the Messages API ``usage`` object (input_tokens, output_tokens,
cache_read_input_tokens, cache_creation_input_tokens); OpenAI ``prompt_tokens`` /
``completion_tokens`` map onto the same fields. Error kinds follow the API's error types
("Errors" page, https://docs.anthropic.com/en/api/errors) plus the ones only a client sees
(timeout, connection, malformed answer, configuration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .prompt import Message, ToolCall


class ErrorKind(StrEnum):
    """What went wrong with a request, as one of a closed set (the client decides retries
    and step-downs on these, never on message text). Values are the Messages API error
    ``type`` where the API has one, so ``kind == "rate_limit_error"`` also holds."""

    INVALID_REQUEST = "invalid_request_error"
    """400 (and other unlisted 4xx): the request is wrong; not retried."""
    AUTHENTICATION = "authentication_error"
    """401: the key is missing or wrong; not retried."""
    PERMISSION = "permission_error"
    """403: the key may not use this model or feature; not retried."""
    NOT_FOUND = "not_found_error"
    """404: unknown model or path; not retried."""
    REQUEST_TOO_LARGE = "request_too_large"
    """413: the body exceeds the API's size limit; not retried."""
    RATE_LIMITED = "rate_limit_error"
    """429: over a rate limit; retried after ``retry-after`` or backoff."""
    OVERLOADED = "overloaded_error"
    """529 (Bedrock: 503 ServiceUnavailable): the API is overloaded; retried."""
    SERVER_ERROR = "api_error"
    """5xx: the API failed; retried."""
    TIMEOUT = "timeout"
    """No complete answer within ``request_timeout`` (or a 408); retried."""
    CONNECTION = "connection_error"
    """No answer: refused, reset, or the body was cut off; retried."""
    MALFORMED = "malformed_response"
    """A 2xx whose body is not the API's response shape; retried."""
    CONFIGURATION = "configuration_error"
    """Nothing could be sent (e.g. no AWS credentials); not retried."""
    CLIENT = "client_error"
    """A deskpilot bug or an unusable prompt, caught so the batch goes on; not retried."""


@dataclass(slots=True)
class Usage:
    """Token counts of one response. ``input_tokens`` excludes cache reads and writes
    (as the Anthropic API reports it); :attr:`total_input_tokens` adds them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.total_input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @classmethod
    def from_anthropic(cls, usage: dict[str, Any] | None) -> Usage:
        u = usage or {}
        return cls(
            int(u.get("input_tokens") or 0),
            int(u.get("output_tokens") or 0),
            int(u.get("cache_read_input_tokens") or 0),
            int(u.get("cache_creation_input_tokens") or 0),
        )

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage:
        u = usage or {}
        cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        return cls(
            int(u.get("prompt_tokens") or 0) - cached,
            int(u.get("completion_tokens") or 0),
            cached,
            0,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }


@dataclass(slots=True, kw_only=True)
class APIResponse:
    """One prompt's outcome. Errors are responses too (``is_error=True``), never raised.

    Attributes:
        model: the registry name asked for (e.g. ``"claude-4-sonnet"``).
        model_id: the API model id actually sent (e.g. ``"claude-sonnet-4-20250514"``).
        provider: ``"anthropic"``, ``"bedrock"``, ``"vertex"`` or ``"gateway"``.
        content: the assistant :class:`~deskpilot.prompt.Message` (None on error).
        stop_reason: ``end_turn``, ``tool_use``, ``max_tokens``, ... (OpenAI
            ``finish_reason`` mapped onto these names).
        usage: token counts; ``cost`` in US dollars from the registry prices.
        status_code: the final HTTP status (None when no answer arrived, e.g. timeout).
        error_type: the error ``type`` the API sent (``rate_limit_error``,
            ``overloaded_error``, ``invalid_request_error``, a gateway's own code, ...) or,
            when it sent none, the :class:`ErrorKind` value (``timeout``, ...).
        error_kind: the :class:`ErrorKind` the client classified the failure as.
        attempts: how many HTTP attempts were made.
        latency_s: seconds from the first attempt's send to the final answer.
        request_id: the provider's request id (``request-id`` / ``x-amzn-requestid`` header
            or the body ``id``).
        raw: the decoded JSON body of the final answer (for debugging).
        computer_tool_type: the computer tool ``type`` the request carried (after any
            step-down on a 400 naming an unsupported tool type), or None.
        tool_types: the wire types of the Anthropic-defined tools the final request carried
            (computer, editor, bash; after any step-down of the client's own
            ``computer_use=True`` group), e.g. ``("computer_20251124",
            "text_editor_20250728", "bash_20250124")``; empty without any.
            ``ToolGroup.of_types(response.tool_types)`` is the group.
        rejected_tool_types: the tool types a 400 named as unsupported when the client
            could not step down itself (they were in the caller's ``tools=``, which it never
            rewrites, or no older version is left); the caller steps down (with
            :func:`deskpilot.computer_use.specs.step_down`) and calls again.

    Error messages and ``raw`` error bodies never contain a credential the client holds
    (API keys, AWS secrets): they are redacted before the response is built.
    """

    model: str
    model_id: str = ""
    provider: str = ""
    content: Message | None = None
    stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    is_error: bool = False
    error_message: str | None = None
    error_type: str | None = None
    error_kind: ErrorKind | None = None
    status_code: int | None = None
    attempts: int = 0
    latency_s: float = 0.0
    request_id: str | None = None
    raw: dict[str, Any] | None = None
    computer_tool_type: str | None = None
    tool_types: tuple[str, ...] = ()
    rejected_tool_types: tuple[str, ...] = ()

    @property
    def completion(self) -> str | None:
        """The text of all text blocks of the answer, joined by newlines."""
        return self.content.completion if self.content is not None else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.content.tool_calls if self.content is not None else []

    @property
    def input_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens

    @property
    def cache_read_tokens(self) -> int:
        return self.usage.cache_read_tokens

    @property
    def cache_write_tokens(self) -> int:
        return self.usage.cache_write_tokens

    def __repr__(self) -> str:
        if self.is_error:
            return (
                f"APIResponse(model={self.model!r}, is_error=True, status_code={self.status_code}, "
                f"error_type={self.error_type!r}, error_message={self.error_message!r})"
            )
        text = self.completion or ""
        return (
            f"APIResponse(model={self.model!r}, stop_reason={self.stop_reason!r}, "
            f"completion={text[:60]!r}, tool_calls={len(self.tool_calls)}, cost={self.cost:.6f})"
        )


__all__ = ["APIResponse", "ErrorKind", "Usage"]
