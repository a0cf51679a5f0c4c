"""The fake model's request checks, as the real services make them (pure functions).

Authentication headers, the 32 MB size limit, required body fields, Bedrock's envelope,
Anthropic-defined tool types and the beta flag each needs (Messages API "Errors" page,
https://docs.anthropic.com/en/api/errors; Bedrock InvokeModel; computer use tool page), and
the 429 of an exhausted rate limit ("Rate limits" page,
https://docs.anthropic.com/en/api/rate-limits).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from ..computer_use.specs import beta_for_tool_type
from .limits import RateLimits
from .wire import FakeReply, error_reply

MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Messages API request size limit (32 MB, "Errors" page: 413 request_too_large)."""


def validate(
    api: str,
    headers: dict[str, str],
    raw: bytes,
    body: Any,
    model: str | None,
    *,
    api_key: str | None,
    gateway_api_key: str | None,
    reject_tool_types: Collection[str],
    auth_token: str | None = None,
) -> FakeReply | None:
    """The error the real API would answer ``body`` of ``api`` with, or None when valid.

    Order as the services check: authentication, size, JSON, required fields, tool types
    and their beta flags. ``api_key`` / ``gateway_api_key`` / ``auth_token``: the only
    ``x-api-key``, gateway bearer and Messages API bearer accepted (None: any non-empty
    one; the Messages API takes an ``x-api-key`` or, without one, ``Authorization: Bearer``);
    ``reject_tool_types``: types answered with the API's unsupported tool type 400.
    """
    if api in ("anthropic", "count_tokens"):
        key = headers.get("x-api-key")
        bearer = _bearer(headers)
        if key:
            if api_key is not None and key != api_key:
                return error_reply(401, message="invalid x-api-key")
        elif bearer:
            if auth_token is not None and bearer != auth_token:
                return error_reply(401, message="Invalid bearer token")
        else:
            return error_reply(401, message="x-api-key header is required")
        if "anthropic-version" not in headers:
            return error_reply(400, message="anthropic-version: header is required")
    elif api == "gateway":
        token = _bearer(headers)
        if not token:
            return error_reply(401, message="Missing bearer token in the Authorization header.")
        if gateway_api_key is not None and token != gateway_api_key:
            return error_reply(401, message="Incorrect API key provided.")
    if len(raw) > MAX_REQUEST_BYTES:
        return error_reply(413)
    if not isinstance(body, dict):
        return error_reply(400, message="There was an error parsing the body: not a JSON object.")
    if api == "bedrock":
        return validate_bedrock(body, model or "", reject_tool_types)
    if not isinstance(body.get("model"), str):
        return error_reply(400, message="model: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error_reply(400, message="messages: Field required (at least one message)")
    if api == "gateway":
        return check_tool_types(body, None, model or "", reject_tool_types)
    if api == "anthropic" and not isinstance(body.get("max_tokens"), int):
        return error_reply(400, message="max_tokens: Field required")
    if body.get("stream"):
        return error_reply(400, message="stream: the fake model server does not stream.")
    if api == "count_tokens":
        return None
    betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()]
    return check_tool_types(body, betas, model or "", reject_tool_types)


def _bearer(headers: dict[str, str]) -> str:
    """The token of an ``Authorization: Bearer <token>`` header ("" without one)."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def validate_bedrock(
    body: dict[str, Any], model: str, reject_tool_types: Collection[str] = ()
) -> FakeReply | None:
    """Bedrock InvokeModel's checks of an Anthropic body (model id in the URL,
    ``anthropic_version``, no ``model`` or ``stream`` key, ``anthropic_beta`` a list)."""
    if "anthropic." not in model:
        return error_reply(400, message="The provided model identifier is invalid.")
    for key in ("anthropic_version", "max_tokens", "messages"):
        if key not in body:
            return error_reply(
                400,
                message=f"Malformed input request: #: required key [{key}] not found, "
                "please reformat your input and try again.",
            )
    for key in ("model", "stream"):
        if key in body:
            return error_reply(
                400,
                message=f"Malformed input request: #: extraneous key [{key}] is not "
                "permitted, please reformat your input and try again.",
            )
    if body["anthropic_version"] != "bedrock-2023-05-31":
        return error_reply(
            400,
            message="Malformed input request: anthropic_version must be bedrock-2023-05-31.",
        )
    betas = body.get("anthropic_beta") or []
    if not isinstance(betas, list):
        return error_reply(
            400, message="Malformed input request: #/anthropic_beta: expected type: JSONArray."
        )
    return check_tool_types(body, [str(b) for b in betas], model, reject_tool_types)


def check_tool_types(
    body: dict[str, Any], betas: list[str] | None, model: str, reject_tool_types: Collection[str]
) -> FakeReply | None:
    """The 400 for a tool list that is not a list of dicts, a rejected tool type, or an
    Anthropic-defined type without its beta flag (``betas`` None: a gateway, no check)."""
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        return error_reply(400, message="tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return error_reply(400, message=f"tools.{i}: Input should be a valid dictionary")
        tool_type = tool.get("type")
        if not isinstance(tool_type, str) or tool_type in ("custom", "function"):
            continue
        if tool_type in reject_tool_types:
            return error_reply(400, message=f"'{model}' does not support tool types: {tool_type}.")
        if betas is None:
            continue  # a gateway adds the beta flag itself
        beta = beta_for_tool_type(tool_type)
        if beta is not None and beta not in betas:
            return error_reply(
                400,
                message=f"tools.{i}: tool type '{tool_type}' requires the beta flag "
                f"'{beta}' (anthropic-beta), which the request did not carry.",
            )
    return None


def rate_limit_reply(admission: Any, limits: RateLimits) -> FakeReply:
    """The API's 429 for a refused ``admission`` of ``limits`` (``retry-after`` in whole
    seconds, the wording of the real message)."""
    kind = {
        "requests": "requests",
        "input_tokens": "input tokens",
        "output_tokens": "output tokens",
    }[admission.limit_name]
    window = {
        "requests": limits.requests,
        "input_tokens": limits.input_tokens,
        "output_tokens": limits.output_tokens,
    }[admission.limit_name]
    limit = window.limit if window is not None else 0
    wait = admission.retry_after_s
    retry_after = 60 if math.isinf(wait) else max(1, math.ceil(wait))
    return error_reply(
        429,
        message=(
            f"This request would exceed the rate limit for your organization of {limit} "
            f"{kind} per minute. For details, refer to: "
            "https://docs.claude.com/en/api/rate-limits. You can see the response headers "
            "for current usage. Please reduce the prompt length or the maximum tokens "
            "requested, or try again later."
        ),
        retry_after=retry_after,
    )


__all__ = [
    "MAX_REQUEST_BYTES",
    "check_tool_types",
    "rate_limit_reply",
    "validate",
    "validate_bedrock",
]
