"""The fake model's token-count endpoints, with the SAME counter its ``usage`` comes from.

* ``POST /v1/messages/count_tokens`` (Anthropic, "Count tokens in a Message",
  https://docs.anthropic.com/en/api/messages-count-tokens): the Messages API headers
  (``x-api-key``, ``anthropic-version``), a body of ``model``, ``messages`` and optionally
  ``system``, ``tools``, ``tool_choice``, ``thinking`` (any other key, e.g. ``max_tokens``,
  is a 400 ``Extra inputs are not permitted``, as the API answers a ``max_tokens``:
  https://github.com/Wei-Shaw/sub2api/pull/4913); answer ``{"input_tokens": N}``. Beta flags in
  :attr:`FakeModel.count_tokens_refused_betas` are refused with the API's 400 ``Unexpected
  value(s) `...` for the `anthropic-beta` header`` (the wording Vertex's count route sends,
  https://github.com/BerriAI/litellm/pull/39597), to test that clients drop them.
* ``POST /model/{modelId}/count-tokens`` (Bedrock "CountTokens",
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_CountTokens.html):
  SigV4 checked like InvokeModel, body ``{"input": {"invokeModel": {"body": "<base64>"}}}``
  whose decoded body passes the InvokeModel checks; answer ``{"inputTokens": N}``. A
  cross-region inference-profile id (``us.anthropic...``) is refused with the
  ``ValidationException`` CountTokens gives ("The provided model doesn't support counting
  tokens."): it takes foundation-model ids.

* ``POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/count-tokens:rawPredict``
  (Vertex AI, "Count tokens for Claude models",
  https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/count-tokens):
  the bearer token of the Vertex route, a body of ``anthropic_version:
  "vertex-2023-10-16"``, ``model`` and the Anthropic count fields (``anthropic_beta`` too);
  refused beta flags as above (header or body); answer ``{"input_tokens": N}``.

``N`` is :func:`~deskpilot.testing.tokens.count_request_tokens` of the (decoded) body, the
rule the fake's ``usage`` is split from, so a count equals the answered request's
``input + cache_read + cache_creation`` tokens. Count requests are recorded (``api``
``"count_tokens"`` / ``"bedrock_count_tokens"`` / ``"vertex_count_tokens"``), take injected faults, and do not touch the
Messages rate-limit windows (the API limits token counting separately, "Token counting").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..transport import HTTPResponse
from .fake_checks import validate, validate_bedrock
from .fake_replies import json_http_response
from .recorded import Disconnect, Hang, Incoming, Outcome, RecordedRequest
from .tokens import count_request_tokens
from .wire import FakeReply, error_reply

if TYPE_CHECKING:
    from .fake_model import FakeModel

COUNT_KEYS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})
"""Top-level keys the Anthropic count endpoint accepts (plus a few it ignores here)."""

_EXTRA_OK = frozenset({"mcp_servers", "context_management", "output_config", "output_format"})

ANTHROPIC_PATH = "/v1/messages/count_tokens"
VERTEX_COUNT_PATH = re.compile(
    r"^/v1/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/count-tokens:rawPredict$"
)


def is_count_path(path: str) -> bool:
    """True for the count endpoints' paths (Anthropic and Bedrock)."""
    return (
        path == ANTHROPIC_PATH
        or (path.startswith("/model/") and path.endswith("/count-tokens"))
        or VERTEX_COUNT_PATH.match(path) is not None
    )


def _record(fake: FakeModel, request: Incoming, api: str, body: Any, model: Any, now: float) -> Any:
    rec = RecordedRequest(
        index=fake._counter,
        api=api,
        method=request.method,
        path=request.path,
        raw_path=request.raw_path,
        headers=request.headers,
        body=body,
        raw_body=request.body,
        received_at=now,
        model=model if isinstance(model, str) else None,
    )
    fake._counter += 1
    if fake.record:
        fake.requests.append(rec)
    return rec


def _fault(fake: FakeModel, rec: RecordedRequest, shape: str) -> Outcome | None:
    """An injected fault for this count request, or None (a 200 reply is ignored: the
    count is answered)."""
    reply = fake._take_fault(rec)
    if not isinstance(reply, FakeReply):
        return None
    if reply.hang:
        rec.outcome = "hang"
        return Hang()
    if reply.disconnect:
        rec.outcome = "disconnect"
        return Disconnect()
    if reply.status == 200:
        return None
    rec.outcome = "fault"
    return fake._error_response(shape, rec, reply)


def serve_anthropic_count(fake: FakeModel, request: Incoming, now: float) -> Outcome:
    """``POST /v1/messages/count_tokens`` (see the module docstring)."""
    try:
        body: Any = json.loads(request.body) if request.body else None
    except ValueError:
        body = None
    model = body.get("model") if isinstance(body, dict) else None
    rec = _record(fake, request, "count_tokens", body, model, now)
    problem = validate(
        "count_tokens",
        request.headers,
        request.body,
        body,
        model if isinstance(model, str) else None,
        api_key=fake.api_key,
        gateway_api_key=None,
        reject_tool_types=fake.reject_tool_types,
        auth_token=fake.auth_token,
    )
    if problem is None:
        extra = sorted(set(body) - COUNT_KEYS - _EXTRA_OK)
        if extra:
            problem = error_reply(400, message=f"{extra[0]}: Extra inputs are not permitted")
    if problem is None:
        problem = _refused(fake, request.headers, ())
    if problem is not None:
        rec.outcome = "auth" if problem.status in (401, 403) else "invalid"
        return fake._error_response("anthropic", rec, problem)
    faulted = _fault(fake, rec, "anthropic")
    if faulted is not None:
        return faulted
    rec.status, rec.outcome = 200, "ok"
    return json_http_response(
        {"input_tokens": count_request_tokens(body)}, headers=fake._common_headers("count")
    )


def _refused(fake: FakeModel, headers: dict[str, str], in_body: Any) -> FakeReply | None:
    """The API's 400 for beta flags (header or body) the count endpoints refuse, or None."""
    betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",")]
    betas += [str(b) for b in in_body] if isinstance(in_body, list) else []
    refused = [b for b in betas if b and b in fake.count_tokens_refused_betas]
    if not refused:
        return None
    names = ", ".join(f"`{b}`" for b in refused)
    return error_reply(
        400,
        message=f"Unexpected value(s) {names} for the `anthropic-beta` header. Please consult "
        "our documentation at platform.claude.com/docs or try again without the header.",
    )


def serve_vertex_count(fake: FakeModel, request: Incoming, now: float) -> Outcome:
    """``POST .../models/count-tokens:rawPredict`` on Vertex AI (see the module docstring)."""
    from .vertex_route import VERTEX_VERSION

    try:
        body: Any = json.loads(request.body) if request.body else None
    except ValueError:
        body = None
    model = body.get("model") if isinstance(body, dict) else None
    rec = _record(fake, request, "vertex_count_tokens", body, model, now)
    problem = fake.vertex.check_bearer(request.headers)
    if problem is None:
        if not isinstance(body, dict):
            problem = error_reply(400, message="There was an error parsing the body.")
        elif body.get("anthropic_version") != VERTEX_VERSION:
            problem = error_reply(
                400, message=f"anthropic_version: Input should be '{VERTEX_VERSION}'"
            )
        elif not isinstance(model, str):
            problem = error_reply(400, message="model: Field required")
        elif not isinstance(body.get("messages"), list) or not body["messages"]:
            problem = error_reply(400, message="messages: Field required (at least one message)")
        else:
            allowed = COUNT_KEYS | _EXTRA_OK | {"anthropic_version", "anthropic_beta"}
            extra = sorted(set(body) - allowed)
            if extra:
                problem = error_reply(400, message=f"{extra[0]}: Extra inputs are not permitted")
            else:
                problem = _refused(fake, request.headers, body.get("anthropic_beta"))
    if problem is not None:
        rec.outcome = "auth" if problem.status in (401, 403) else "invalid"
        return fake._error_response("vertex", rec, problem)
    faulted = _fault(fake, rec, "vertex")
    if faulted is not None:
        return faulted
    rec.status, rec.outcome = 200, "ok"
    return json_http_response(
        {"input_tokens": count_request_tokens(body)}, headers=fake._common_headers("count")
    )


def _bedrock_error(fake: FakeModel, rec: RecordedRequest, message: str) -> HTTPResponse:
    rec.outcome = "invalid"
    return fake._error_response("bedrock", rec, error_reply(400, message=message))


def serve_bedrock_count(fake: FakeModel, request: Incoming, now: float) -> Outcome:
    """``POST /model/{modelId}/count-tokens`` (see the module docstring)."""
    model = unquote(request.raw_path.split("?", 1)[0][len("/model/") : -len("/count-tokens")])
    try:
        outer: Any = json.loads(request.body) if request.body else None
    except ValueError:
        outer = None
    rec = _record(fake, request, "bedrock_count_tokens", outer, model, now)
    refused = fake._bedrock_auth_failure(request, rec)
    if refused is not None:
        return refused
    if model.split(".", 1)[0] in ("us", "eu", "apac", "global", "jp", "au", "ca", "us-gov"):
        return _bedrock_error(fake, rec, "The provided model doesn't support counting tokens.")
    invoke = outer.get("input", {}).get("invokeModel") if isinstance(outer, dict) else None
    if not isinstance(invoke, dict) or not isinstance(invoke.get("body"), str):
        return _bedrock_error(
            fake,
            rec,
            "1 validation error detected: Value at 'input' failed to satisfy "
            "constraint: the fake model server counts input.invokeModel.body only.",
        )
    try:
        inner = json.loads(base64.b64decode(invoke["body"], validate=True))
    except (binascii.Error, ValueError):
        return _bedrock_error(fake, rec, "input.invokeModel.body is not base64 of a JSON body.")
    if not isinstance(inner, dict):
        return _bedrock_error(fake, rec, "input.invokeModel.body is not a JSON object.")
    problem = validate_bedrock(inner, model, fake.reject_tool_types)
    if problem is not None:
        rec.outcome = "invalid"
        return fake._error_response("bedrock", rec, problem)
    faulted = _fault(fake, rec, "bedrock")
    if faulted is not None:
        return faulted
    rec.status, rec.outcome = 200, "ok"
    return json_http_response(
        {"inputTokens": count_request_tokens(inner)}, headers=fake._common_headers("bedrock")
    )


def serve_count(fake: FakeModel, request: Incoming, now: float) -> Outcome:
    """Route a count request (the path passed :func:`is_count_path`)."""
    if request.path == ANTHROPIC_PATH:
        return serve_anthropic_count(fake, request, now)
    if VERTEX_COUNT_PATH.match(request.path):
        return serve_vertex_count(fake, request, now)
    return serve_bedrock_count(fake, request, now)


__all__ = [
    "ANTHROPIC_PATH",
    "COUNT_KEYS",
    "is_count_path",
    "serve_anthropic_count",
    "serve_bedrock_count",
    "serve_count",
    "serve_vertex_count",
]
