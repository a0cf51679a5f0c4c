"""Wire shapes of the fake server: response builders, scripted replies, faults, error bodies.

Scripted responses are written once in the Messages API response format
(``{"id", "type": "message", "role": "assistant", "model", "content", "stop_reason",
"stop_sequence", "usage"}``) and converted here to what each endpoint really sends: verbatim on
``/v1/messages`` and Bedrock InvokeModel, OpenAI ``chat.completion`` on
``/v1/chat/completions`` (the gateway format). Error bodies follow each provider's documented shape: Messages API
``{"type": "error", "error": {"type", "message"}}`` ("Errors" page), Bedrock ``{"message"}`` +
``x-amzn-ErrorType`` (InvokeModel "Errors"), OpenAI ``{"error": {"message", "type", "code"}}``.

Usage convention: a response whose ``usage`` is missing, None or the string ``"auto"`` gets
its usage computed by the server from the request (input tokens by
:func:`~deskpilot.testing.tokens.count_request_tokens`, split by the simulated prompt cache;
output tokens from the content). A ``usage`` dict is served as given. ``id: None`` and
``model: None`` are filled in by the server.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

AUTO = "auto"


def message_response(
    content: list[dict[str, Any]],
    *,
    stop_reason: str | None = None,
    model: str | None = None,
    id: str | None = None,
    usage: dict[str, int] | str | None = AUTO,
) -> dict[str, Any]:
    """A Messages API response with the given content blocks.

    Args:
        content: content blocks (``text``, ``tool_use``, ``thinking``, ...), served as given.
        stop_reason: defaults to ``tool_use`` when a ``tool_use`` block is present, else
            ``end_turn``.
        model / id: None -> filled by the server (request's model, fresh ``msg_...`` id).
        usage: a ``usage`` dict served verbatim, or ``"auto"``/None (computed by the server).
    """
    if stop_reason is None:
        stop_reason = (
            "tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn"
        )
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage if usage is not None else AUTO,
    }


def _usage_from_kwargs(usage: dict[str, int]) -> dict[str, int] | str:
    if not usage:
        return AUTO
    out = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    for key, value in usage.items():
        if key not in out:
            raise ValueError(
                f"Unknown usage field {key!r}; use input_tokens, output_tokens, "
                "cache_creation_input_tokens or cache_read_input_tokens."
            )
        out[key] = int(value)
    return out


def text_response(text: str, **usage: int) -> dict[str, Any]:
    """A ``end_turn`` response holding one text block.

    ``usage`` keyword arguments (``input_tokens=``, ``output_tokens=``,
    ``cache_read_input_tokens=``, ``cache_creation_input_tokens=``) make the usage explicit
    (missing fields 0); without them the server computes it.
    """
    return message_response([{"type": "text", "text": text}], usage=_usage_from_kwargs(usage))


def tool_use_id() -> str:
    """A fresh id in the API's ``toolu_...`` form."""
    return "toolu_" + uuid.uuid4().hex[:24]


def tool_use_block(
    name: str,
    input: dict[str, Any],
    *,
    id: str | None = None,
    toolset_name: str | None = None,
) -> dict[str, Any]:
    """One ``tool_use`` content block (``toolset_name`` for computer_toolset members)."""
    block: dict[str, Any] = {
        "type": "tool_use",
        "id": id or tool_use_id(),
        "name": name,
        "input": input,
    }
    if toolset_name is not None:
        block["toolset_name"] = toolset_name
    return block


def tool_use_response(
    name: str,
    input: dict[str, Any],
    id: str | None = None,
    text: str | None = None,
    toolset_name: str | None = None,
    **usage: int,
) -> dict[str, Any]:
    """A ``tool_use`` response: optional leading text, then one ``tool_use`` block.

    Example: ``tool_use_response("computer", {"action": "screenshot"})``.
    """
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    content.append(tool_use_block(name, input, id=id, toolset_name=toolset_name))
    return message_response(content, stop_reason="tool_use", usage=_usage_from_kwargs(usage))


# --- scripted replies and faults -----------------------------------------------------------


@dataclass(slots=True)
class FakeReply:
    """A scripted HTTP answer (anything that is not a plain successful message).

    Attributes:
        status: HTTP status.
        body: a dict (JSON; a Messages response or an Anthropic error body, converted per
            endpoint), raw ``bytes``/``str`` (sent as is, e.g. malformed JSON), or None.
        headers: extra response headers (e.g. ``{"retry-after": "2"}``).
        delay_s: seconds to wait before answering (on top of the server's latency).
        hang: never answer; the handler waits until the client gives up (disconnects) or the
            server closes. Use it to provoke client timeouts.
        disconnect: close the connection without any answer (a connection error).
        stall_body: send the status, the headers and the first third of a successful
            Messages API body (``body``, a dict), then nothing more until the client gives
            up: a timeout while the body is being read.
    """

    status: int = 200
    body: dict[str, Any] | bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hang: bool = False
    disconnect: bool = False
    stall_body: bool = False


ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
    529: "overloaded_error",
}
"""Messages API error ``type`` per HTTP status ("Errors" page)."""

DEFAULT_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": (
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."
    ),
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}

PROMPT_TOO_LONG = "prompt is too long: 210000 tokens > 200000 maximum"


def anthropic_error_body(error_type: str, message: str) -> dict[str, Any]:
    """``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_" + uuid.uuid4().hex[:24],
    }


def error_reply(
    status: int,
    error_type: str | None = None,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> FakeReply:
    """An error answer in the Messages API shape (converted for Bedrock / OpenAI paths).

    Args:
        status: HTTP status (429, 529, 500, 400, 401, ...).
        error_type: defaults to the API's type for that status (:data:`ERROR_TYPES`).
        message: defaults to the API's usual text for that type.
        retry_after: seconds for a ``retry-after`` header (integer seconds, like the API).
    """
    etype = error_type or ERROR_TYPES.get(status, "api_error")
    h = dict(headers or {})
    if retry_after is not None:
        h["retry-after"] = str(max(0, round(retry_after)))
    return FakeReply(
        status=status,
        body=anthropic_error_body(etype, message or DEFAULT_MESSAGES.get(etype, "Error.")),
        headers=h,
    )


def fault(spec: FakeReply | str | int | dict[str, Any]) -> FakeReply:
    """Turn a fault spec into a :class:`FakeReply`.

    Names: ``"timeout"`` (hang), ``"stall_body"`` (200 and headers sent, the body never
    finished), ``"disconnect"``, ``"malformed_json"`` (200 with a cut-off JSON body), ``"server_error"`` (500 api_error), ``"overloaded"`` (529),
    ``"rate_limit"`` (429 with ``retry-after: 1``), ``"rate_limit_no_retry_after"``,
    ``"prompt_too_long"`` (400 ``prompt is too long: 210000 tokens > 200000 maximum``),
    ``"unauthorized"`` (401), ``"forbidden"`` (403), ``"not_found"`` (404). An int is an
    error status in the API's shape (429 gets ``retry-after: 1``). A dict is a scripted
    Messages API response.

    Raises:
        ValueError: an unknown fault name.
    """
    if isinstance(spec, FakeReply):
        return spec
    if isinstance(spec, dict):
        return FakeReply(status=200, body=spec)
    if isinstance(spec, int):
        return error_reply(spec, retry_after=1 if spec == 429 else None)
    named = {
        "timeout": lambda: FakeReply(hang=True),
        "stall_body": lambda: FakeReply(
            status=200, body=message_response([{"type": "text", "text": "cut"}]), stall_body=True
        ),
        "disconnect": lambda: FakeReply(disconnect=True),
        "malformed_json": lambda: FakeReply(
            status=200,
            body=b'{"id": "msg_01Trunc", "type": "message", "role": "assistant", "content": [{"ty',
            headers={"content-type": "application/json"},
        ),
        "server_error": lambda: error_reply(500),
        "overloaded": lambda: error_reply(529),
        "rate_limit": lambda: error_reply(429, retry_after=1),
        "rate_limit_no_retry_after": lambda: error_reply(429),
        "prompt_too_long": lambda: error_reply(400, "invalid_request_error", PROMPT_TOO_LONG),
        "unauthorized": lambda: error_reply(401),
        "forbidden": lambda: error_reply(403),
        "not_found": lambda: error_reply(404),
    }
    maker = named.get(spec)
    if maker is None:
        raise ValueError(
            f"Unknown fault {spec!r}; use one of {', '.join(sorted(named))}, an HTTP status "
            "int, a FakeReply or a response dict."
        )
    return maker()


# --- per-provider conversion --------------------------------------------------------------

BEDROCK_ERROR_TYPES: dict[int, tuple[int, str]] = {
    400: (400, "ValidationException"),
    401: (403, "UnrecognizedClientException"),
    403: (403, "AccessDeniedException"),
    404: (404, "ResourceNotFoundException"),
    413: (400, "ValidationException"),
    429: (429, "ThrottlingException"),
    500: (500, "InternalServerException"),
    503: (503, "ServiceUnavailableException"),
    529: (503, "ServiceUnavailableException"),
}
"""Bedrock status and ``x-amzn-ErrorType`` for an Anthropic-shaped error status.

Bedrock never sends 529 (overload is ``ServiceUnavailableException`` 503) nor 401 (bad
credentials are ``UnrecognizedClientException`` 403)."""

BEDROCK_THROTTLE_TEXT = "Too many requests, please wait before trying again."


def is_anthropic_error(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body.get("type") == "error"
        and isinstance(body.get("error"), dict)
    )


def bedrock_error(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Convert an Anthropic error answer to Bedrock's status, body and headers."""
    err = body["error"]
    new_status, amzn_type = BEDROCK_ERROR_TYPES.get(
        status, (status, "InternalServerException" if status >= 500 else "ValidationException")
    )
    message = err.get("message", "")
    if new_status == 429:
        message = BEDROCK_THROTTLE_TEXT
    return (
        new_status,
        {"message": message},
        {"x-amzn-ErrorType": f"{amzn_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def openai_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Convert an Anthropic error body to the OpenAI ``{"error": {...}}`` shape.

    The Anthropic ``type`` is kept (gateways forward it) and the status goes in ``code``.
    """
    err = body["error"]
    return {
        "error": {
            "message": err.get("message", ""),
            "type": err.get("type", "api_error"),
            "param": None,
            "code": status,
        }
    }


FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def to_chat_completion(message: dict[str, Any]) -> dict[str, Any]:
    """Convert a Messages API response to an OpenAI ``chat.completion`` object.

    Text blocks are joined into ``message.content`` (None when there is none); ``tool_use``
    blocks become ``message.tool_calls`` with JSON-string ``arguments``; thinking blocks are
    dropped; ``stop_reason`` maps by :data:`FINISH_REASONS`; usage becomes
    ``prompt_tokens`` (input + cache read + cache write), ``completion_tokens``, and
    ``prompt_tokens_details.cached_tokens`` (cache read).
    """
    texts = [b.get("text", "") for b in message.get("content", ()) if b.get("type") == "text"]
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input", {}))},
        }
        for b in message.get("content", ())
        if b.get("type") == "tool_use"
    ]
    msg: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    usage = message.get("usage") or {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = (
        int(usage.get("input_tokens") or 0)
        + cached
        + int(usage.get("cache_creation_input_tokens") or 0)
    )
    completion = int(usage.get("output_tokens") or 0)
    mid = str(message.get("id") or "")
    return {
        "id": "chatcmpl-" + (mid[4:] if mid.startswith("msg_") else mid or uuid.uuid4().hex),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": msg,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(str(message.get("stop_reason")), "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


__all__ = [
    "AUTO",
    "DEFAULT_MESSAGES",
    "ERROR_TYPES",
    "PROMPT_TOO_LONG",
    "FakeReply",
    "anthropic_error_body",
    "bedrock_error",
    "error_reply",
    "fault",
    "message_response",
    "openai_error",
    "text_response",
    "to_chat_completion",
    "tool_use_block",
    "tool_use_response",
]
