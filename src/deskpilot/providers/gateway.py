"""OpenAI-compatible gateways (``POST {base}/chat/completions``), Model.box style (seed 003).

Request: ``Authorization: Bearer <key>``; body ``model``, ``messages``
(:meth:`Conversation.to_openai`: tool results as ``role: "tool"`` messages, their images in
a following user message), ``tools`` carrying the Anthropic-defined tool objects
**verbatim** (``{"type": "computer_20241022", "name": "computer", ...}``, as the gateway's
page shows) and custom tools in OpenAI function form, ``tool_choice: "auto"`` when tools are
present, ``max_tokens``. Response: ``choices[0].message`` (``content``, ``tool_calls`` with
JSON-string arguments), ``finish_reason`` mapped onto Anthropic stop reasons, ``usage``
``prompt_tokens`` / ``completion_tokens``. Prompt caching is not sent (gateways differ).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import ModelSpec
from ..prompt import Conversation, Message, Text, tool_call_from_openai
from ..response import Usage
from .anthropic import status_error_type
from .base import ErrorInfo, ParsedResponse, Provider, RequestOptions, ToolSet
from .tools import is_anthropic_defined

FINISH_REASONS: dict[str, str] = {
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def gateway_tools(toolset: ToolSet) -> list[dict[str, Any]]:
    """Anthropic-defined tools verbatim; custom tools (Tool objects or ``{name,
    input_schema}`` dicts) in OpenAI ``function`` form; OpenAI-form dicts unchanged."""
    out: list[dict[str, Any]] = []
    custom_names = {t.name for t in toolset.custom}
    for d in toolset.tools:
        if is_anthropic_defined(d) or d.get("type") == "function":
            out.append(d)
        elif d.get("name") in custom_names or "input_schema" in d:
            out.append(
                {
                    "type": "function",
                    "function": {
                        "name": d["name"],
                        "description": d.get("description", ""),
                        "parameters": d.get("input_schema") or {"type": "object", "properties": {}},
                    },
                }
            )
        else:
            out.append(d)
    return out


def parse_chat_completion(data: dict[str, Any], request_id: str | None) -> ParsedResponse:
    """A chat-completions body -> :class:`ParsedResponse` (tool_calls become ToolCalls).

    Raises:
        KeyError / IndexError / TypeError: not a chat-completions body (retried as malformed).
    """
    choice = data["choices"][0]
    msg = choice["message"]
    parts: list[Any] = []
    content = msg.get("content")
    if isinstance(content, str) and content:
        parts.append(Text(content))
    elif isinstance(content, list):
        parts.extend(Text(c.get("text", "")) for c in content if c.get("type") == "text")
    parts.extend(tool_call_from_openai(call) for call in msg.get("tool_calls") or [])
    finish = choice.get("finish_reason")
    stop = FINISH_REASONS.get(finish, finish) if finish else None
    return ParsedResponse(
        Message("assistant", parts),
        stop,
        Usage.from_openai(data.get("usage")),
        request_id or data.get("id"),
    )


class GatewayProvider(Provider):
    """An OpenAI-compatible chat-completions gateway.

    Args:
        base_url: the API base including ``/v1`` (e.g. ``https://api.model.box/v1``).
        api_key: sent as ``Authorization: Bearer``; never logged or shown in reprs.
    """

    name = "gateway"

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._url = f"{self.base_url}/chat/completions"
        self._api_key = api_key or ""
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    def __repr__(self) -> str:
        return f"GatewayProvider(base_url={self.base_url!r})"

    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def url(self, spec: ModelSpec) -> str:
        if spec.base_url:
            return f"{spec.base_url.rstrip('/')}/chat/completions"
        return self._url

    def headers(self, betas: list[str]) -> dict[str, str]:
        return self._headers

    def build_body(
        self, spec: ModelSpec, conv: Conversation, opts: RequestOptions, toolset: ToolSet
    ) -> dict[str, Any]:
        messages = conv.to_openai()
        if opts.system is not None:
            messages = [m for m in messages if m.get("role") != "system"]
            messages.insert(0, {"role": "system", "content": opts.system})
        body: dict[str, Any] = {"model": spec.model_id, "messages": messages}
        if toolset.tools:
            body["tools"] = gateway_tools(toolset)
            body["tool_choice"] = opts.tool_choice if opts.tool_choice is not None else "auto"
        body["max_tokens"] = opts.max_tokens
        if opts.temperature is not None:
            body["temperature"] = opts.temperature
        if opts.extra_body:
            body.update(opts.extra_body)
        return body

    def parse(self, data: dict[str, Any], headers: Mapping[str, str]) -> ParsedResponse:
        return parse_chat_completion(data, headers.get("x-request-id"))

    def parse_error(self, status: int, data: Any, headers: Mapping[str, str]) -> ErrorInfo:
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict):
                etype = err.get("type") or err.get("code") or status_error_type(status)
                return ErrorInfo(str(etype), str(err.get("message") or ""))
            if isinstance(err, str):
                return ErrorInfo(status_error_type(status), err)
            if "message" in data:
                return ErrorInfo(status_error_type(status), str(data["message"]))
        return ErrorInfo(status_error_type(status), data[:500] if isinstance(data, str) else "")


__all__ = ["FINISH_REASONS", "GatewayProvider", "gateway_tools", "parse_chat_completion"]
