"""Token-count requests on the wire, per provider: URL, headers, body, answer (pure functions).

* **Anthropic API**: ``POST {base}/v1/messages/count_tokens`` with the Messages API headers
  (``x-api-key``, ``anthropic-version``, ``anthropic-beta``) and the fields of a Messages
  body that the endpoint takes: ``model``, ``messages``, ``system``, ``tools``,
  ``tool_choice``, ``thinking`` (no ``max_tokens``, ``temperature`` or other sampling keys);
  answer ``{"input_tokens": N}`` ("Count tokens in a Message",
  https://docs.anthropic.com/en/api/messages-count-tokens; "Token counting",
  https://docs.anthropic.com/en/docs/build-with-claude/token-counting).
* **Bedrock**: ``POST {endpoint}/model/{modelId}/count-tokens`` signed with SigV4 like
  InvokeModel, body ``{"input": {"invokeModel": {"body": "<base64 of the InvokeModel
  body>"}}}``; answer ``{"inputTokens": N}`` (AWS "CountTokens" API reference,
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_CountTokens.html).
  CountTokens takes a foundation-model id: the cross-region inference-profile prefix
  (``us.``, ``eu.``, ``apac.``, ``global.``, ...) is removed (:func:`base_model_id`).
* **Vertex AI**: ``POST {base}/projects/{project}/locations/{region}/publishers/anthropic/
  models/count-tokens:rawPredict`` with the bearer token of the Messages route, a body of
  ``anthropic_version: "vertex-2023-10-16"``, ``model`` (Vertex's id, e.g.
  ``claude-sonnet-4@20250514``: the URL names no model) and the fields above; answer
  ``{"input_tokens": N}`` (Google Cloud "Count tokens for Claude models",
  https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/count-tokens;
  the Anthropic SDK's Vertex client rewrites ``/v1/messages/count_tokens`` to this URL).
* **Gateways** (OpenAI chat completions) have no count endpoint: :class:`NotSupported`.

Beta flags: a count request carries only the flags its tools need (the endpoint parses the
tool definitions; no other beta changes a count). When the endpoint still refuses some
(``400 Unexpected value(s) `x` for the `anthropic-beta` header``, the API's wording, e.g. on
Vertex's count-tokens route: https://github.com/BerriAI/litellm/pull/39597), the client
drops the flags named (:func:`refused_betas`) and sends the count again.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

from ..errors import NotSupported
from ..models import ModelSpec
from ..prompt import Conversation
from ..providers.base import Provider, RequestOptions, ToolSet, dumps
from ..transport import HTTPRequest

COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
"""The Messages body fields a count request keeps (the endpoint's request body)."""

COUNTING_PROVIDERS = frozenset({"anthropic", "bedrock", "vertex"})
"""Providers with a token-count endpoint deskpilot speaks."""

_GEO_PREFIX = re.compile(r"^(?:us|eu|apac|global|jp|au|ca|us-gov)\.(?=anthropic\.)")
_BETA_REFUSAL = re.compile(r"[Uu]nexpected value\(s\)\s+(.+?)\s+for the\s+`?anthropic-beta`?")
_BACKTICKED = re.compile(r"`([^`]+)`")


def base_model_id(model_id: str) -> str:
    """The foundation-model id of a Bedrock model id (``us.anthropic.claude-...`` ->
    ``anthropic.claude-...``); other ids (foundation ids, ARNs) unchanged."""
    return _GEO_PREFIX.sub("", model_id)


def not_supported(spec: ModelSpec) -> NotSupported:
    """The error for a model whose provider has no count endpoint."""
    return NotSupported(
        f"{spec.name} is served through {spec.provider!r}, which has no token-count endpoint "
        "(the Anthropic API, Bedrock and Vertex AI have one); use "
        "deskpilot.client.tokens.estimate_input_tokens for an estimate, or a model on the "
        "Anthropic API, Bedrock or Vertex AI."
    )


def refused_betas(message: str) -> tuple[str, ...]:
    """The beta flags an ``Unexpected value(s) `a`, `b` for the `anthropic-beta` header``
    message names, in order (empty for any other message)."""
    m = _BETA_REFUSAL.search(message or "")
    return tuple(_BACKTICKED.findall(m.group(1))) if m else ()


def count_fields(
    provider: Provider, spec: ModelSpec, conv: Conversation, opts: RequestOptions, toolset: ToolSet
) -> dict[str, Any]:
    """The Messages body fields of the request ``provider`` would send, restricted to
    :data:`COUNT_FIELDS` (``model`` included; the caller's objects are not modified)."""
    from ..providers.anthropic import build_messages_body

    body = build_messages_body(conv, opts, toolset)
    out: dict[str, Any] = {"model": spec.model_id}
    out.update((k, body[k]) for k in COUNT_FIELDS if k in body and k != "model")
    return out


def count_request(
    provider: Provider,
    spec: ModelSpec,
    fields: dict[str, Any],
    betas: Collection[str],
    opts: RequestOptions,
    timeout_s: float,
) -> HTTPRequest:
    """The unsigned count request of ``fields`` (from :func:`count_fields`) with ``betas``.

    Args:
        provider: the model's provider (its URL base, headers and key).
        spec: the model.
        fields: the count body fields, ``model`` included.
        betas: the beta flags to send (already filtered).
        opts: the call's options (Bedrock's InvokeModel body needs ``max_tokens``).
        timeout_s: seconds one attempt may take.

    Raises:
        NotSupported: the provider has no count endpoint (gateways).
    """
    name = provider.name
    if name == "anthropic":
        url = provider.url(spec) + "/count_tokens"  # {base}/v1/messages/count_tokens
        return HTTPRequest("POST", url, provider.headers(list(betas)), dumps(fields), timeout_s)
    if name == "bedrock":
        from ..providers.bedrock import BEDROCK_ANTHROPIC_VERSION

        inner: dict[str, Any] = {"anthropic_version": BEDROCK_ANTHROPIC_VERSION}
        if betas:
            inner["anthropic_beta"] = list(betas)
        inner["max_tokens"] = min(opts.max_tokens, spec.max_output_tokens)
        inner.update((k, v) for k, v in fields.items() if k != "model")
        body = {"input": {"invokeModel": {"body": base64.b64encode(dumps(inner)).decode()}}}
        endpoint = str(spec.base_url or getattr(provider, "endpoint_url", "")).rstrip("/")
        url = f"{endpoint}/model/{quote(base_model_id(spec.model_id), safe='')}/count-tokens"
        return HTTPRequest("POST", url, provider.headers([]), dumps(body), timeout_s)
    if name == "vertex":
        from ..providers.vertex import (
            PROJECT_PENDING,
            VERTEX_ANTHROPIC_VERSION,
            VertexProvider,
            predict_url,
        )

        assert isinstance(provider, VertexProvider)
        vbody: dict[str, Any] = {"anthropic_version": VERTEX_ANTHROPIC_VERSION, **fields}
        in_body = [b for b in betas if b in provider.body_betas]
        if in_body:
            vbody["anthropic_beta"] = in_body
        base = spec.base_url or provider.base_url
        project = provider.project_id or PROJECT_PENDING  # filled in by sign()
        url = predict_url(base, project, provider.region, "count-tokens")
        return HTTPRequest("POST", url, provider.headers(list(betas)), dumps(vbody), timeout_s)
    raise not_supported(spec)


def parse_count(provider_name: str, data: Any) -> int:
    """The token count of a 2xx count answer: Anthropic and Vertex ``{"input_tokens": N}``,
    Bedrock ``{"inputTokens": N}``.

    Raises:
        ValueError: the answer has no non-negative integer count.
    """
    key = "inputTokens" if provider_name == "bedrock" else "input_tokens"
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"the count answer has no integer {key!r}")
    return value


__all__ = [
    "COUNTING_PROVIDERS",
    "COUNT_FIELDS",
    "base_model_id",
    "count_fields",
    "count_request",
    "not_supported",
    "parse_count",
    "refused_betas",
]
