"""The fake model's answers: success bodies with usage, error bodies per provider, headers.

A mixin of :class:`~deskpilot.testing.FakeModel` (it reads the fake's limits, cache plan and
counters): Messages API responses are served verbatim on ``/v1/messages`` and Bedrock, and
converted to OpenAI ``chat.completion`` for gateways; errors take each provider's shape
(:mod:`deskpilot.testing.wire`); usage is counted for the rate limits and statistics.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..transport import HTTPResponse
from .caching import CachePlan
from .limits import RateLimits
from .recorded import RecordedRequest
from .tokens import response_output_tokens
from .vertex_route import vertex_error
from .wire import (
    AUTO,
    FakeReply,
    bedrock_error,
    is_anthropic_error,
    openai_error,
    to_chat_completion,
)


def json_bytes(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":")).encode()


def json_http_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> HTTPResponse:
    """An :class:`HTTPResponse` with a JSON body."""
    return HTTPResponse(
        status, {"content-type": "application/json", **(headers or {})}, json_bytes(body)
    )


@dataclass(slots=True)
class Stats:
    """The fake's counters (see ``FakeModel.stats``)."""

    statuses: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    peak_in_flight: int = 0
    total: int = 0


class ReplyBuilder:
    """Builds the fake's answers (mixed into :class:`~deskpilot.testing.FakeModel`)."""

    limits: RateLimits
    latency_s: float
    served: list[tuple[float, int, int]]
    _stats: Stats
    _counter_msg: int
    _model_json: dict[str, str]
    _default_text_json: str
    _default_output: int
    default_text: str

    def _common_headers(self, api: str) -> dict[str, str]:
        if api == "bedrock":
            return {"x-amzn-requestid": str(uuid.uuid4())}
        h = {"request-id": "req_" + uuid.uuid4().hex[:24]}
        if api == "gateway":
            h["x-request-id"] = h["request-id"]
        if self.limits.enabled and api == "anthropic":
            h.update(self.limits.headers())
        return h

    def _bedrock_response(
        self, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> HTTPResponse:
        h = {"x-amzn-requestid": str(uuid.uuid4()), **headers}
        return json_http_response(body, status, h)

    def _error_response(self, api: str, rec: RecordedRequest, reply: FakeReply) -> HTTPResponse:
        body = reply.body
        status = reply.status
        headers = {**self._common_headers(api), **reply.headers}
        if is_anthropic_error(body):
            assert isinstance(body, dict)
            rec.error_type = body["error"].get("type")
            if api == "bedrock":
                status, body, extra = bedrock_error(status, body)
                headers.update(extra)
                headers.pop("retry-after", None)  # Bedrock sends no retry-after
                rec.error_type = extra["x-amzn-ErrorType"].split(":", 1)[0]
            elif api == "gateway":
                body = openai_error(status, body)
            elif api == "vertex":
                body = vertex_error(status, body)
                headers.pop("retry-after", None)  # Google's quota errors carry none
                if "status" in body["error"]:
                    rec.error_type = body["error"]["status"]
        rec.status = status
        if not rec.outcome:
            rec.outcome = "fault"
        if isinstance(body, (dict, list)):
            payload = json_bytes(body)
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body or b""
        headers.setdefault("content-type", "application/json")
        return HTTPResponse(status, headers, payload)

    def _account(self, usage: dict[str, int]) -> None:
        s = self._stats
        s.input_tokens += usage.get("input_tokens", 0)
        s.output_tokens += usage.get("output_tokens", 0)
        s.cache_read_input_tokens += usage.get("cache_read_input_tokens", 0)
        s.cache_creation_input_tokens += usage.get("cache_creation_input_tokens", 0)
        self.limits.charge_output(usage.get("output_tokens", 0))
        self.served.append(
            (
                time.monotonic(),
                usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0),
                usage.get("output_tokens", 0),
            )
        )

    def _model_field(self, api: str, model: str | None) -> str:
        name = model or "claude-fake"
        if api == "bedrock":  # Bedrock answers with the Anthropic model name
            name = name.split(".anthropic.", 1)[-1].removeprefix("anthropic.").split(":", 1)[0]
            name = name.rsplit("-v", 1)[0] if name.rsplit("-v", 1)[-1].isdigit() else name
        return name

    def _default_reply(
        self, api: str, rec: RecordedRequest, plan: CachePlan | None, input_tokens: int
    ) -> HTTPResponse:
        self._counter_msg += 1
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": plan.cache_creation_input_tokens if plan else 0,
            "cache_read_input_tokens": plan.cache_read_input_tokens if plan else 0,
            "output_tokens": self._default_output,
        }
        if plan is not None:
            plan.commit()
        self._account(usage)
        rec.status, rec.outcome, rec.usage = 200, "ok", usage
        model = self._model_field(api, rec.model)
        msg_id = f"msg_fake{self._counter_msg:016x}"
        if api == "gateway":
            body = json_bytes(
                to_chat_completion(
                    {
                        "id": msg_id,
                        "model": model,
                        "content": [{"type": "text", "text": self.default_text}],
                        "stop_reason": "end_turn",
                        "usage": usage,
                    }
                )
            )
        else:
            model_json = self._model_json.get(model)
            if model_json is None:
                model_json = self._model_json[model] = json.dumps(model)
            body = (
                f'{{"id":"{msg_id}","type":"message","role":"assistant","model":{model_json},'
                f'"content":{self._default_text_json},"stop_reason":"end_turn",'
                f'"stop_sequence":null,"usage":{{"input_tokens":{usage["input_tokens"]},'
                f'"cache_creation_input_tokens":{usage["cache_creation_input_tokens"]},'
                f'"cache_read_input_tokens":{usage["cache_read_input_tokens"]},'
                f'"output_tokens":{usage["output_tokens"]}}}}}'
            ).encode()
        return self._success(api, body, usage)

    def _success(self, api: str, body: bytes, usage: dict[str, int]) -> HTTPResponse:
        headers = self._common_headers(api)
        if api == "bedrock":
            headers["x-amzn-bedrock-input-token-count"] = str(
                usage["input_tokens"]
                + usage.get("cache_read_input_tokens", 0)
                + usage.get("cache_creation_input_tokens", 0)
            )
            headers["x-amzn-bedrock-output-token-count"] = str(usage["output_tokens"])
            headers["x-amzn-bedrock-invocation-latency"] = str(int(self.latency_s * 1000))
        headers["content-type"] = "application/json"
        return HTTPResponse(200, headers, body)

    def _message_reply(
        self,
        api: str,
        rec: RecordedRequest,
        message: dict[str, Any],
        plan: CachePlan | None,
        input_tokens: int,
        source: str,
    ) -> HTTPResponse:
        msg = dict(message)
        self._counter_msg += 1
        if not msg.get("id"):
            msg["id"] = f"msg_fake{self._counter_msg:016x}"
        if not msg.get("model"):
            msg["model"] = self._model_field(api, rec.model)
        msg.setdefault("type", "message")
        msg.setdefault("role", "assistant")
        msg.setdefault("content", [])
        msg.setdefault("stop_sequence", None)
        if msg.get("stop_reason") is None:
            has_tool = any(b.get("type") == "tool_use" for b in msg["content"])
            msg["stop_reason"] = "tool_use" if has_tool else "end_turn"
        usage = msg.get("usage")
        if usage is None or usage == AUTO:
            usage = {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": plan.cache_creation_input_tokens if plan else 0,
                "cache_read_input_tokens": plan.cache_read_input_tokens if plan else 0,
                "output_tokens": response_output_tokens(msg["content"]),
            }
            msg["usage"] = usage
        if plan is not None:
            plan.commit()
        self._account(usage)
        rec.status, rec.outcome, rec.usage = 200, "ok" if source != "fault" else "fault", usage
        payload = to_chat_completion(msg) if api == "gateway" else msg
        full_usage = {
            "input_tokens": int(usage.get("input_tokens", 0)),
            "output_tokens": int(usage.get("output_tokens", 0)),
            "cache_read_input_tokens": int(usage.get("cache_read_input_tokens", 0) or 0),
            "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens", 0) or 0),
        }
        return self._success(api, json_bytes(payload), full_usage)


__all__ = ["ReplyBuilder", "Stats", "json_bytes", "json_http_response"]
