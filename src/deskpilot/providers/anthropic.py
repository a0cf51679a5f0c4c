"""The Anthropic Messages API wire format (``POST {base}/v1/messages``).

Request: headers ``x-api-key`` and/or ``Authorization: Bearer`` (an auth token, as the
Anthropic SDK's ``auth_token`` / ``ANTHROPIC_AUTH_TOKEN``), ``anthropic-version: 2023-06-01``, ``content-type:
application/json`` and, for beta tools, ``anthropic-beta`` (comma-joined); body ``model``,
``max_tokens``, ``messages``, optional ``system``, ``tools``, ``tool_choice``,
``temperature``, ``thinking``. Response: ``content`` blocks, ``stop_reason``, ``usage``;
errors ``{"type": "error", "error": {"type", "message"}}``
(https://docs.anthropic.com/en/api/messages, https://docs.anthropic.com/en/api/errors).

:func:`build_messages_body` is shared with Bedrock, whose body differs only in the
envelope (no ``model``; ``anthropic_version`` and ``anthropic_beta`` in the body).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import ModelSpec
from ..prompt import Conversation, Message, part_from_anthropic
from ..response import Usage
from .base import ErrorInfo, ParsedResponse, Provider, RequestOptions, ToolSet
from .caching import apply_cache

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"

_STATUS_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def status_error_type(status: int) -> str:
    """The Anthropic error ``type`` conventionally paired with an HTTP status."""
    return _STATUS_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def build_messages_body(
    conv: Conversation,
    opts: RequestOptions,
    toolset: ToolSet,
    *,
    cache: bool = True,
) -> dict[str, Any]:
    """The Messages API fields shared by Anthropic and Bedrock (``max_tokens``,
    ``messages``, ``system``, ``tools``, ``tool_choice``, ``temperature``, ``thinking``),
    with cache breakpoints for ``opts.cache`` when ``cache`` is True. Never mutates ``conv``."""
    system_text, messages = conv.to_anthropic()
    system: str | list[dict[str, Any]] | None = (
        opts.system if opts.system is not None else system_text
    )
    tools = toolset.tools
    if cache and opts.cache:
        tools, system, messages = apply_cache(opts.cache, tools, system, messages)
    body: dict[str, Any] = {"max_tokens": opts.max_tokens, "messages": messages}
    if system:
        body["system"] = system
    if tools:
        body["tools"] = tools
    if opts.tool_choice is not None:
        body["tool_choice"] = opts.tool_choice
    if opts.temperature is not None:
        body["temperature"] = opts.temperature
    if opts.thinking is not None:
        body["thinking"] = opts.thinking
    if opts.extra_body:
        body.update(opts.extra_body)
    return body


def parse_messages_response(data: dict[str, Any], request_id: str | None) -> ParsedResponse:
    """A Messages API response body -> :class:`ParsedResponse`.

    Raises:
        KeyError / TypeError / ValueError: the body is not a Messages API response (the
            client treats this as a malformed answer and retries).
    """
    blocks = data["content"]
    parts = [part_from_anthropic(b) for b in blocks]
    return ParsedResponse(
        Message("assistant", parts),
        data.get("stop_reason"),
        Usage.from_anthropic(data.get("usage")),
        request_id or data.get("id"),
    )


def parse_anthropic_error(status: int, data: Any) -> ErrorInfo:
    """``{"type": "error", "error": {"type", "message"}}`` -> :class:`ErrorInfo` (falls
    back to the status's conventional type and the raw text)."""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return ErrorInfo(
                str(err.get("type") or status_error_type(status)), str(err.get("message") or "")
            )
        if "message" in data:
            return ErrorInfo(status_error_type(status), str(data["message"]))
    text = data if isinstance(data, str) else ""
    return ErrorInfo(status_error_type(status), text[:500])


class AnthropicProvider(Provider):
    """The Anthropic Messages API.

    Args:
        base_url: the API origin without ``/v1`` (e.g. ``https://api.anthropic.com`` or a
            fake server's ``http://127.0.0.1:PORT``).
        api_key: sent as ``x-api-key`` (no such header without one); never logged or
            shown in reprs.
        auth_token: sent as ``Authorization: Bearer`` (both headers go when both are given,
            as the Anthropic SDK's ``auth_headers`` does); never logged or shown in reprs.
    """

    name = "anthropic"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        auth_token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or ""
        self._auth_token = auth_token or ""
        self._url = f"{self.base_url}/v1/messages"
        self._headers: dict[str, str] = {}
        if self._api_key:
            self._headers["x-api-key"] = self._api_key
        if self._auth_token:
            self._headers["authorization"] = f"Bearer {self._auth_token}"
        self._headers["anthropic-version"] = ANTHROPIC_VERSION
        self._headers["content-type"] = "application/json"
        self._beta_headers: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"AnthropicProvider(base_url={self.base_url!r})"

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (self._api_key, self._auth_token) if v)

    def url(self, spec: ModelSpec) -> str:
        if spec.base_url:
            return f"{spec.base_url.rstrip('/')}/v1/messages"
        return self._url

    def headers(self, betas: list[str]) -> dict[str, str]:
        if not betas:
            return self._headers
        key = ",".join(betas)
        h = self._beta_headers.get(key)
        if h is None:
            h = {**self._headers, "anthropic-beta": key}
            self._beta_headers[key] = h
        return h

    def build_body(
        self, spec: ModelSpec, conv: Conversation, opts: RequestOptions, toolset: ToolSet
    ) -> dict[str, Any]:
        body = {"model": spec.model_id}
        body.update(build_messages_body(conv, opts, toolset))
        return body

    def parse(self, data: dict[str, Any], headers: Mapping[str, str]) -> ParsedResponse:
        return parse_messages_response(data, headers.get("request-id"))

    def parse_error(self, status: int, data: Any, headers: Mapping[str, str]) -> ErrorInfo:
        return parse_anthropic_error(status, data)


__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "AnthropicProvider",
    "build_messages_body",
    "parse_anthropic_error",
    "parse_messages_response",
    "status_error_type",
]
