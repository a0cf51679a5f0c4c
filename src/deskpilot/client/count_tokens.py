"""Exact input-token counts: ``LLMClient.count_tokens`` and ``exact_token_counts=True``.

:meth:`CountTokensAPI.count_tokens` sends each prompt's request, built exactly as
``process_prompts_async`` would build it (tools, system prompt, images, tool results), to the
provider's count endpoint (:mod:`deskpilot.client.count_wire`: Anthropic
``/v1/messages/count_tokens``, Bedrock ``CountTokens``, Vertex AI
``count-tokens:rawPredict``; gateways raise
:class:`~deskpilot.errors.NotSupported`). A count request goes through the client's
:class:`~deskpilot.client.limiter.RateLimiter` like any other: it costs one request of the RPM
budget and a concurrency slot, no tokens (the API charges no tokens for counting), and it is
retried like a message (429 / 5xx / timeouts, ``retry-after``).

With ``LLMClient(..., exact_token_counts=True)`` the scheduler reserves each request's input
tokens from its count instead of the estimate of :mod:`deskpilot.client.tokens` (the
reservation is still reconciled with the answer's ``usage``). Counts are cached:

* **Cache key**: a chain of hashes over the request's content, one per message boundary:
  ``k0 = H(provider, model id, tools, system, tool_choice, thinking)`` and
  ``k(i) = H(k(i-1), message i)``, with ``cache_control`` marks removed (they move between
  turns and never change a count) and beta flags left out. The key of a request is the key
  of its last message; every conversation prefix at a message boundary has its own key.
* **Entries** come from count answers and, for free, from the ``usage`` of every answered
  request (input + cache reads + cache writes, what the request really counted).
* **Lookup**: a request whose key is cached costs no count request (a retry, a re-sent
  conversation, a batch sent after ``count_tokens()`` on it). Otherwise, when a cached
  prefix of it carries at least :data:`PREFIX_SHARE` of its tokens, the reservation is that
  exact prefix count plus the estimate of the messages after it (no count request): the
  agent's growing conversation (each turn's prefix is the previous turn's request, learnt
  from its usage) and a batch of prompts sharing a prefix (``process_prompts_async`` counts
  the shared prefix once, up front) do not re-count everything. Otherwise one count request
  is sent (concurrent requests for the same key share it).
* A model whose counts the API refuses (400/403/404, e.g. a Bedrock model without
  CountTokens support) falls back to estimates, with one warning on the
  ``deskpilot.client`` logger. ``count_tokens()`` itself never estimates: a cache hit or a
  count request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack

from ..errors import ConfigError, TokenCountError, TransportError, TransportTimeoutError
from ..models import ModelSpec
from ..prompt import Conversation, as_conversation
from ..providers.base import Provider, RequestOptions, ToolSet
from ..providers.tools import build_toolset
from ..response import ErrorKind, Usage
from .classify import Attempt, Retry, classify, kind_of_error, should_retry_header
from .count_wire import (
    COUNTING_PROVIDERS,
    count_fields,
    count_request,
    not_supported,
    parse_count,
    refused_betas,
)
from .exchange import note_rate_headers
from .options import CallOptions, check_prompt, prompt_items
from .retry import parse_retry_after
from .tokens import estimate_input_tokens

if TYPE_CHECKING:
    from .core import LLMClient

logger = logging.getLogger("deskpilot.client")

PREFIX_SHARE = 0.75
"""A cached prefix is used (with the rest estimated) when it holds at least this share of
the request's tokens; below it, the request is counted."""

MAX_ENTRIES = 20_000
"""Counts kept (least recently used dropped first)."""


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _digest(prev: bytes, obj: Any) -> bytes:
    h = hashlib.blake2b(prev, digest_size=16)
    h.update(json.dumps(_strip(obj), sort_keys=True, separators=(",", ":")).encode())
    return h.digest()


def prefix_keys(provider: str, fields: dict[str, Any]) -> list[bytes]:
    """The cache keys of a count body's prefixes: ``[k0, k1, ..., kn]`` for ``n`` messages
    (see the module docstring); ``keys[-1]`` is the request's key."""
    head = {k: fields.get(k) for k in ("model", "tools", "system", "tool_choice", "thinking")}
    keys = [_digest(provider.encode(), head)]
    for message in fields.get("messages") or ():
        keys.append(_digest(keys[-1], message))
    return keys


class CountCache:
    """Token counts by prefix key (LRU, at most ``max_entries``)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> int | None:
        n = self._entries.get(key)
        if n is not None:
            self._entries.move_to_end(key)
        return n

    def put(self, key: bytes, tokens: int) -> None:
        self._entries[key] = tokens
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def longest_prefix(self, keys: Sequence[bytes]) -> tuple[int, int] | None:
        """``(messages, tokens)`` of the longest cached proper prefix (at least one
        message), or None."""
        for i in range(len(keys) - 2, 0, -1):
            n = self.get(keys[i])
            if n is not None:
                return i, n
        return None


@dataclass(slots=True)
class CountPlan:
    """One request to count: its provider, model, count body fields, beta flags, keys."""

    provider: Provider
    spec: ModelSpec
    fields: dict[str, Any]
    betas: tuple[str, ...]
    keys: list[bytes]

    @property
    def key(self) -> bytes:
        return self.keys[-1]


class TokenCounter:
    """The client's count requests and count cache (one per ``LLMClient``)."""

    def __init__(self, client: LLMClient) -> None:
        self._client = client
        self.cache = CountCache()
        self.requests_sent = 0
        self._refused: dict[tuple[str, str], set[str]] = {}
        self._uncountable: set[tuple[str, str]] = set()
        self._inflight: dict[bytes, asyncio.Future[int]] = {}

    # --- building -------------------------------------------------------------------------
    def plan(
        self, spec: ModelSpec, conv: Conversation, opts: RequestOptions, toolset: ToolSet
    ) -> CountPlan:
        """The count of ``conv`` with ``toolset`` on ``spec``.

        Raises:
            NotSupported: the model's provider has no count endpoint.
        """
        if spec.provider not in COUNTING_PROVIDERS:
            raise not_supported(spec)
        provider = self._client._provider_for(spec.provider)
        fields = count_fields(provider, spec, conv, opts, toolset)
        keys = prefix_keys(spec.provider, fields)
        return CountPlan(provider, spec, fields, tuple(toolset.betas), keys)

    def _plan_for(self, prompt: Any, opts: RequestOptions, spec: ModelSpec) -> CountPlan:
        conv = prompt if isinstance(prompt, Conversation) else as_conversation(prompt)
        rejected = self._client._rejected.get((spec.model_id, spec.provider), ())
        return self.plan(spec, conv, opts, build_toolset(spec, spec.provider, opts, rejected))

    # --- counting -------------------------------------------------------------------------
    async def exact(self, plan: CountPlan, opts: RequestOptions) -> int:
        """The exact count of ``plan``: cached, or one count request (shared by concurrent
        callers of the same key), then cached.

        Raises:
            TokenCountError: the count failed after the client's retries.
            CredentialsError: no usable AWS credentials (Bedrock).
        """
        hit = self.cache.get(plan.key)
        if hit is not None:
            return hit
        pending = self._inflight.get(plan.key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._inflight[plan.key] = fut
        try:
            n = await self._send(plan, opts)
        except BaseException as exc:
            if isinstance(exc, Exception):
                fut.set_exception(exc)
                fut.exception()  # retrieved: no "never retrieved" log when nobody waits
            else:
                fut.cancel()
            raise
        finally:
            del self._inflight[plan.key]
        self.cache.put(plan.key, n)
        fut.set_result(n)
        return n

    async def _send(self, plan: CountPlan, opts: RequestOptions) -> int:
        """One count with the client's limiter and retry policy (see the module docstring)."""
        c = self._client
        provider, spec = plan.provider, plan.spec
        refused = self._refused.setdefault((spec.provider, spec.model_id), set())
        max_pause_s = c.retry.max_retry_after_s
        attempts = beta_drops = 0
        while True:
            betas = [b for b in plan.betas if b not in refused]
            request = count_request(
                provider, spec, plan.fields, betas, opts, c.config.request_timeout
            )
            ticket = await c.limiter.acquire(0, 0)
            attempts += 1
            self.requests_sent += 1
            status: int | None = None
            headers: Any = None
            kind: ErrorKind | None = None
            error_type: str | None = None
            message = ""
            try:
                response = await c._transport.send(await provider.sign(request))
            except TransportTimeoutError:
                kind, message = ErrorKind.TIMEOUT, f"no answer within {request.timeout_s:g} s"
            except TransportError as exc:
                kind, message = ErrorKind.CONNECTION, str(exc)
            else:
                status, headers = response.status, response.headers
                try:
                    data: Any = json.loads(response.body) if response.body else None
                except ValueError:
                    data = None
                if 200 <= status < 300:
                    try:
                        return parse_count(provider.name, data)
                    except ValueError as exc:
                        kind, message = ErrorKind.MALFORMED, str(exc)
                else:
                    raw = data if data is not None else response.body.decode("utf-8", "replace")
                    try:
                        info = provider.parse_error(status, raw, headers)
                        error_type, message = info.error_type, info.message
                    except Exception:  # an error body of an unexpected shape
                        message = response.body[:300].decode("utf-8", "replace")
                    kind = kind_of_error(status, error_type)
                    named = [b for b in refused_betas(message) if b in betas]
                    if status == 400 and named and beta_drops < 3:
                        logger.info("the count endpoint refused beta flags %s; dropped", named)
                        refused.update(named)
                        beta_drops += 1
                        attempts -= 1  # a re-send without the flags is not a retry
                        continue
                    if status == 429:
                        after = parse_retry_after(headers)
                        if after is not None:
                            c.limiter.pause_for(min(after, max_pause_s))
                    note_rate_headers(c.limiter, headers, max_pause_s)
            finally:
                c.limiter.release(ticket, input_tokens=0, output_tokens=0)
            decision = classify(
                Attempt(
                    number=attempts,
                    status=status,
                    kind=kind,
                    message=message,
                    retry_after_s=parse_retry_after(headers) if headers is not None else None,
                    should_retry=should_retry_header(headers.get("x-should-retry"))
                    if headers is not None
                    else None,
                ),
                c.retry,
                random.uniform(1.0, 1.5),
            )
            if isinstance(decision, Retry):
                await asyncio.sleep(decision.after_s)
                continue
            where = f"HTTP {status}" if status is not None else "no answer"
            text = message.strip().rstrip(".") or "no error message"
            raise TokenCountError(
                c._redact().text(
                    f"Token count for {spec.name} failed after {attempts} attempt"
                    f"{'s' if attempts != 1 else ''} ({where}, {error_type or kind}): {text}."
                ),
                status_code=status,
                error_kind=kind.value if kind is not None else None,
                error_type=error_type,
            )

    # --- the scheduler's side (exact_token_counts=True) ---------------------------------------
    async def reserve(
        self,
        spec: ModelSpec,
        conv: Conversation,
        opts: RequestOptions,
        toolset: ToolSet,
        estimate: float,
    ) -> tuple[float, bytes | None]:
        """``(input tokens to reserve, cache key to learn the answer's usage under)`` for
        one request (see the module docstring); ``estimate`` when the model cannot be
        counted. Never raises for a failed count (the estimate is used)."""
        ident = (spec.provider, spec.model_id)
        if ident in self._uncountable:
            return estimate, None
        plan = self.plan(spec, conv, opts, toolset)
        hit = self.cache.get(plan.key)
        if hit is not None:
            return hit, plan.key
        prefix = self.cache.longest_prefix(plan.keys)
        if prefix is not None:
            done, tokens = prefix
            rest = Conversation.from_anthropic(plan.fields["messages"][done:])
            more = estimate_input_tokens(rest, tier=spec.image_tier, system="")
            if tokens >= PREFIX_SHARE * (tokens + more):
                return tokens + more, plan.key
        try:
            return await self.exact(plan, opts), plan.key
        except (TokenCountError, ConfigError) as exc:
            status = getattr(exc, "status_code", None)
            if status in (400, 403, 404):
                self._uncountable.add(ident)
                logger.warning("%s; estimating %s's input tokens from now on", exc, spec.name)
            else:
                logger.info("%s; this request's input tokens are estimated", exc)
            return estimate, plan.key

    def learn(self, key: bytes | None, usage: Usage) -> None:
        """Store what an answered request really counted (input + cache reads + writes)."""
        total = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        if key is not None and total > 0:
            self.cache.put(key, total)

    async def prime(self, items: list[Any], opts: RequestOptions, model: str | None) -> None:
        """Count once the message prefix every prompt of a batch shares (when there is one
        and it holds at least :data:`PREFIX_SHARE` of each prompt's estimate)."""
        if len(items) < 2:
            return
        convs = [p if isinstance(p, Conversation) else as_conversation(p) for p in items]
        first = convs[0]
        shared = min(len(c.messages) for c in convs) - 1  # at least one own message each
        for other in convs[1:]:
            i = 0
            while i < shared and other.messages[i] == first.messages[i]:
                i += 1
            shared = i
            if not shared:
                return
        head = Conversation(list(first.messages[:shared]))
        if head.messages[-1].role == convs[0].messages[shared].role:
            return  # the wire would merge the next turn into the prefix's last one
        c = self._client
        specs = [c.model_spec(model)] if model is not None else c.models
        for spec in specs:
            if spec.provider not in COUNTING_PROVIDERS or (
                (spec.provider, spec.model_id) in self._uncountable
            ):
                continue
            part = estimate_input_tokens(head, tier=spec.image_tier, system=opts.system)
            whole = max(estimate_input_tokens(x, tier=spec.image_tier) for x in convs)
            if part < PREFIX_SHARE * whole:
                continue
            try:
                await self.exact(self._plan_for(head, opts, spec), opts)
            except (TokenCountError, ConfigError) as exc:
                logger.info("counting the batch's shared prefix failed: %s", exc)

    # --- the public method --------------------------------------------------------------------
    async def count_prompts(
        self, prompts: Any, model: str | None, options: CallOptions
    ) -> list[int]:
        c = self._client
        c._check_open()
        items = prompt_items(prompts)
        for i, p in enumerate(items):
            check_prompt(p, i)
        opts = c._options(options, "count_tokens")
        plans = [self._plan_for(p, opts, c._next_model(model)) for p in items]
        results = await asyncio.gather(
            *(self.exact(pl, opts) for pl in plans), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [r for r in results if isinstance(r, int)]


def check_countable(models: Sequence[ModelSpec]) -> None:
    """Raise unless every model has a count endpoint (``exact_token_counts=True``).

    Raises:
        NotSupported: a gateway model.
    """
    for spec in models:
        if spec.provider not in COUNTING_PROVIDERS:
            raise not_supported(spec)


class CountTokensAPI:
    """``LLMClient.count_tokens`` (a mixin of :class:`~deskpilot.client.core.LLMClient`)."""

    _counter: TokenCounter

    async def count_tokens(
        self,
        prompts: Any,
        *,
        model: str | None = None,
        **options: Unpack[CallOptions],
    ) -> list[int]:
        """Exact input tokens of each prompt's request, from the provider's count endpoint.

        The request is built exactly as :meth:`process_prompts_async` builds it with the same
        options (``computer_use``, ``tools``, ``system``, images, ``thinking``...), so the
        count includes tool definitions and images. Each count costs one request of the
        client's RPM budget (no tokens) and is cached (see :mod:`deskpilot.client.count_tokens`
        for the cache key); counting a batch before sending it costs no extra requests.

        Args:
            prompts: a Conversation, Message, string or list of message dicts, or a
                sequence of those.
            model: count for this one of the client's models (default: round-robin, as
                the prompts would be sent).
            **options: the call options of :class:`~deskpilot.client.options.CallOptions`.

        Returns:
            one count (input tokens, cache reads and writes included) per prompt, in order.

        Raises:
            NotSupported: a prompt's model is on a gateway (no count endpoint).
            TokenCountError: a count failed after the client's retries (e.g. a 400).
            ConfigError: bad arguments. TypeError: an unknown option.
            ClosedError: the client is closed.
        """
        return await self._counter.count_prompts(prompts, model, options)


__all__ = [
    "MAX_ENTRIES",
    "PREFIX_SHARE",
    "CountCache",
    "CountPlan",
    "CountTokensAPI",
    "TokenCounter",
    "check_countable",
    "prefix_keys",
]
