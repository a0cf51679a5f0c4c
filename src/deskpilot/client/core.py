"""``LLMClient``: the seed's batch client on the real wire formats, with a shared scheduler.

One client owns one aiohttp session, one :class:`~deskpilot.client.limiter.RateLimiter`
(RPM, input TPM, output TPM, concurrency; FIFO), the step-down memory of unsupported
computer tool types per (model, provider), and one wire-format object per provider. Every
``process_prompts_async`` / ``start`` call on the client shares them, so an agent running
many ``start`` calls at once stays inside the same limits.

API errors never raise: each prompt gets exactly one :class:`APIResponse`, in input order,
with ``is_error=True`` and ``status_code`` / ``error_type`` / ``error_message`` when it
failed. Only bad arguments raise (:class:`~deskpilot.errors.ConfigError`, a ValueError), at
call time. Diagnostics go to ``logging.getLogger("deskpilot.client")``; nothing is printed
unless ``show_progress=True`` (a tqdm bar on stderr).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import time
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Any

import aiohttp
from yarl import URL

from ..errors import ClosedError, ConfigError
from ..models import REGISTRY, ModelRegistry, ModelSpec
from ..prompt import Conversation, Message, as_conversation
from ..providers.anthropic import DEFAULT_BASE_URL, AnthropicProvider
from ..providers.base import Provider, RequestOptions
from ..providers.caching import normalise_cache
from ..providers.tools import build_toolset, unsupported_tool_types
from ..response import APIResponse, Usage
from ..tool import Tool
from .config import ClientConfig, Environment, read_environment
from .limiter import RateLimiter
from .progress import Progress
from .retry import RetryPolicy, is_retryable, parse_retry_after, rate_limit_reset_in
from .tokens import estimate_input_tokens

logger = logging.getLogger("deskpilot.client")

# aiohttp warns (ResourceWarning) that a bytes body over 1 MiB "might lock the event loop" and
# asks for a file-like object; screenshot-heavy agent requests pass that size routinely.
_LARGE_BODY_BYTES = 1 << 20


def _body_payload(body: bytes) -> bytes | io.BytesIO:
    """The request body as aiohttp wants it: small bodies as bytes, large ones as a fresh
    ``io.BytesIO`` (one per attempt, since a stream is consumed by sending it)."""
    return io.BytesIO(body) if len(body) > _LARGE_BODY_BYTES else body


_PROVIDER_LABEL = {"anthropic": "Anthropic API", "bedrock": "Bedrock", "gateway": "Gateway"}


async def _session_guard(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


def _is_single_prompt(prompts: Any) -> bool:
    if isinstance(prompts, Conversation | Message | str):
        return True
    return (
        isinstance(prompts, list)
        and bool(prompts)
        and all(isinstance(m, dict) and "role" in m for m in prompts)
    )


def _check_prompt(prompt: Any, index: int) -> None:
    if not isinstance(prompt, Conversation | Message | str | list):
        raise ConfigError(
            f"Prompt {index} is a {type(prompt).__name__}; pass a Conversation, a Message, a "
            "string or a list of message dicts (or a list of those)."
        )


class LLMClient:
    """A rate-limited client for Claude on the Anthropic API, Bedrock or an OpenAI gateway.

    Args:
        model_names: a registry name, a :class:`~deskpilot.models.ModelSpec`, or a list of
            them (prompts are spread round-robin over several models).
        max_requests_per_minute: RPM limit: never more requests in any 60 s window.
        max_tokens_per_minute: input tokens per minute (ITPM), estimated before sending and
            reconciled with the response's ``usage`` (cache reads excluded, as the API counts).
        max_concurrent_requests: requests in flight at once.
        max_attempts: total HTTP attempts per prompt.
        request_timeout: seconds allowed for one attempt.
        max_output_tokens_per_minute: output tokens per minute (OTPM), or None.
        max_new_tokens: default ``max_tokens`` per request (capped by the model's maximum).
        temperature: default temperature, or None for the API's default.
        burst_s: seconds of quota that may go out at once (default 1 s, min. one request).
        retry_base_s / retry_cap_s: first and largest backoff between attempts, seconds.
        provider: force ``"anthropic"``, ``"bedrock"`` or ``"gateway"`` for every model.
        base_url / api_key: Anthropic API origin (without ``/v1``) or gateway base (with
            ``/v1``) and key; win over ``ANTHROPIC_*`` / ``OPENAI_*`` variables.
        endpoint_url / region: Bedrock runtime endpoint and region (win over
            ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` / ``AWS_REGION``).
        registry: a :class:`~deskpilot.models.ModelRegistry` to resolve names in (default
            the global one; pass ``REGISTRY.copy()`` after adding models to keep them local).
        progress: ``"tqdm"`` or ``"none"`` (what ``show_progress=True`` draws).
        aws_credentials: a botocore ``Credentials`` object (default: the standard chain).
        environ: a mapping used instead of ``os.environ`` (tests).
        **settings: any other :class:`~deskpilot.client.config.ClientConfig` field.

    Raises:
        ModelNotFoundError: an unknown model name (with close matches).
        ConfigError: an invalid setting, or a gateway model with no base URL.
        MissingDependencyError: a Bedrock model without botocore installed.
    """

    def __init__(
        self,
        model_names: str | ModelSpec | Sequence[str | ModelSpec] = "claude-4-sonnet",
        max_requests_per_minute: float = 1_000,
        max_tokens_per_minute: float | None = 500_000,
        max_concurrent_requests: int = 225,
        max_attempts: int = 5,
        request_timeout: float = 120.0,
        *,
        registry: ModelRegistry | None = None,
        aws_credentials: Any = None,
        environ: dict[str, str] | None = None,
        **settings: Any,
    ) -> None:
        try:
            self.config = ClientConfig(
                max_requests_per_minute=max_requests_per_minute,
                max_tokens_per_minute=max_tokens_per_minute,
                max_concurrent_requests=max_concurrent_requests,
                max_attempts=max_attempts,
                request_timeout=request_timeout,
                **settings,
            )
        except TypeError as exc:
            raise ConfigError(f"LLMClient() got an unknown setting: {exc}.") from exc
        cfg = self.config
        self._env: Environment = read_environment(environ)
        self._registry = registry or REGISTRY
        names = [model_names] if isinstance(model_names, str | ModelSpec) else list(model_names)
        if not names:
            raise ConfigError("LLMClient needs at least one model name, e.g. 'claude-4-sonnet'.")
        self._models: list[ModelSpec] = [self._registry.resolve(n, cfg.provider) for n in names]
        self._providers: dict[str, Provider] = {}
        for spec in self._models:
            if spec.provider not in self._providers:
                self._providers[spec.provider] = self._make_provider(spec.provider, aws_credentials)
        self.limiter = RateLimiter(
            requests_per_minute=cfg.max_requests_per_minute,
            input_tokens_per_minute=cfg.max_tokens_per_minute,
            output_tokens_per_minute=cfg.max_output_tokens_per_minute,
            max_concurrent=cfg.max_concurrent_requests,
            burst_s=cfg.burst_s,
            window_s=cfg.rate_window_s,
            safety_s=cfg.rate_safety_s,
        )
        self.retry = RetryPolicy(
            max_attempts=cfg.max_attempts, base_s=cfg.retry_base_s, cap_s=cfg.retry_cap_s
        )
        self._unsupported: dict[tuple[str, str], set[str]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._timeout = aiohttp.ClientTimeout(total=cfg.request_timeout)
        self._urls: dict[str, URL] = {}
        self._rr = itertools.cycle(range(len(self._models)))
        self._closed = False
        self.total_usage = Usage()
        self.total_cost = 0.0

    # --- construction helpers -------------------------------------------------------------
    def _make_provider(self, name: str, aws_credentials: Any) -> Provider:
        cfg, env = self.config, self._env
        if name == "anthropic":
            base = cfg.base_url or env.anthropic_base_url or DEFAULT_BASE_URL
            return AnthropicProvider(base, cfg.api_key or env.anthropic_api_key)
        if name == "bedrock":
            from ..providers.bedrock import BedrockProvider

            region = cfg.region or env.aws_region or "us-east-1"
            endpoint = cfg.endpoint_url or env.bedrock_endpoint_url
            return BedrockProvider(region, endpoint, aws_credentials)
        from ..providers.gateway import GatewayProvider

        gateway_url = cfg.base_url or env.openai_base_url
        if not gateway_url:
            raise ConfigError(
                "A gateway model needs a base URL: pass base_url='https://api.model.box/v1' "
                "or set OPENAI_BASE_URL."
            )
        return GatewayProvider(gateway_url, cfg.api_key or env.openai_api_key)

    def __repr__(self) -> str:
        models = [m.name for m in self._models]
        c = self.config
        return (
            f"LLMClient(models={models}, max_requests_per_minute={c.max_requests_per_minute}, "
            f"max_tokens_per_minute={c.max_tokens_per_minute}, "
            f"max_concurrent_requests={c.max_concurrent_requests}, closed={self._closed})"
        )

    # --- introspection ------------------------------------------------------------------
    @property
    def models(self) -> list[ModelSpec]:
        """The resolved models, in the order given."""
        return list(self._models)

    @property
    def provider(self) -> str:
        """The provider of the first model (``"anthropic"``, ``"bedrock"`` or ``"gateway"``)."""
        return self._models[0].provider

    def model_spec(self, name: str | None = None) -> ModelSpec:
        """The spec of model ``name`` (default: the first model).

        Raises:
            ModelNotFoundError: ``name`` is not one of this client's models nor registered.
        """
        if name is None:
            return self._models[0]
        for m in self._models:
            if name in (m.name, m.model_id):
                return m
        return self._registry.resolve(name, self.config.provider)

    def unsupported_tool_types(self, name: str | None = None) -> set[str]:
        """Computer tool types the API rejected for a model on its provider (step-down memory)."""
        spec = self.model_spec(name)
        return set(self._unsupported.get((spec.model_id, spec.provider), ()))

    # --- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> LLMClient:
        self._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session; later calls raise :class:`ClosedError`. Idempotent."""
        self._closed = True
        await self._close_session()
        for p in self._providers.values():
            await p.close()

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        guard, self._guard = self._guard, None
        if guard is not None and self._session_loop is asyncio.get_running_loop():
            await guard.aclose()
        if session is not None and not session.closed:
            await session.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(
                "This LLMClient is closed; create a new LLMClient (or use it before close())."
            )

    async def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._session_loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=max(100, self.config.max_concurrent_requests + 16), ttl_dns_cache=300
            )
            session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._session = session
            self._session_loop = loop
            # The seed never closes its client before asyncio.run() ends: an async generator
            # is closed by the loop's shutdown_asyncgens(), and closes the session with it.
            guard = _session_guard(session)
            await guard.__anext__()
            self._guard = guard
        return session

    def _url(self, url: str) -> URL:
        u = self._urls.get(url)
        if u is None:
            u = self._urls[url] = URL(url, encoded=True)
        return u

    # --- options --------------------------------------------------------------------------
    def _options(
        self,
        *,
        computer_use: bool,
        display_width: int,
        display_height: int,
        display_number: int | None,
        cache: Any,
        tools: Iterable[Any] | None,
        max_tokens: int | None,
        temperature: float | None,
        system: str | None,
        thinking: dict[str, Any] | None,
        tool_choice: dict[str, Any] | None,
        extra_body: dict[str, Any] | None,
    ) -> RequestOptions:
        for name, v in (("display_width", display_width), ("display_height", display_height)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer of pixels, not {v!r}.")
        tool_list = tuple(tools or ())
        for t in tool_list:
            if not isinstance(t, Tool | dict):
                raise ConfigError(
                    "tools= items must be deskpilot.Tool objects (Tool.from_function(fn)) or "
                    f"Anthropic tool dicts, not {type(t).__name__}."
                )
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise ConfigError(f"max_tokens must be a positive integer, not {max_tokens!r}.")
        if system is not None and not isinstance(system, str):
            raise ConfigError("system= must be a string (the system prompt).")
        if thinking is not None and not isinstance(thinking, dict):
            raise ConfigError('thinking= must be a dict such as {"type": "enabled", ...}.')
        opts = RequestOptions(
            computer_use=bool(computer_use),
            display_width=display_width,
            display_height=display_height,
            display_number=display_number,
            cache=normalise_cache(cache),
            tools=tool_list,
            max_tokens=max_tokens or self.config.max_new_tokens,
            temperature=temperature if temperature is not None else self.config.temperature,
            system=system,
            thinking=thinking,
            tool_choice=tool_choice,
            extra_body=extra_body,
        )
        for spec in self._models:  # surface tool errors (duplicates, ...) at call time
            build_toolset(spec, spec.provider, opts)
        return opts

    # --- one prompt -----------------------------------------------------------------------
    def _next_model(self, model: str | None) -> ModelSpec:
        if model is not None:
            return self.model_spec(model)
        if len(self._models) == 1:
            return self._models[0]
        return self._models[next(self._rr)]

    def _error_response(
        self,
        spec: ModelSpec,
        *,
        status: int | None,
        error_type: str,
        message: str,
        attempts: int,
        latency_s: float,
        computer_tool_type: str | None,
        request_id: str | None = None,
        raw: Any = None,
    ) -> APIResponse:
        label = _PROVIDER_LABEL.get(spec.provider, spec.provider)
        where = f"HTTP {status}" if status is not None else "no answer"
        text = message.strip().rstrip(".") if message else "no error message"
        hint = ""
        if status == 401:
            hint = " Check the API key (ANTHROPIC_API_KEY / OPENAI_API_KEY / AWS credentials)."
        sentence = (
            f"{label} request for {spec.name} failed after {attempts} attempt"
            f"{'s' if attempts != 1 else ''} ({where}, {error_type}): {text}.{hint}"
        )
        return APIResponse(
            model=spec.name,
            model_id=spec.model_id,
            provider=spec.provider,
            is_error=True,
            error_message=sentence,
            error_type=error_type,
            status_code=status,
            attempts=attempts,
            latency_s=latency_s,
            request_id=request_id,
            raw=raw if isinstance(raw, dict) else None,
            computer_tool_type=computer_tool_type,
        )

    async def _run(self, prompt: Any, opts: RequestOptions, spec: ModelSpec) -> APIResponse:
        """One prompt to one response; never raises for API or network errors."""
        conv = prompt if isinstance(prompt, Conversation) else as_conversation(prompt)
        name = spec.provider
        provider = self._providers.get(name)
        if provider is None:
            provider = self._providers[name] = self._make_provider(name, None)
        key = (spec.model_id, name)
        unsupported = self._unsupported.get(key, ())
        toolset = build_toolset(spec, name, opts, unsupported)
        prepared = provider.prepare(spec, conv, opts, toolset)
        est_in = estimate_input_tokens(
            conv, tier=spec.image_tier, system=opts.system, tool_overhead=toolset.overhead_tokens
        )
        est_out = opts.max_tokens * self.config.output_estimate_ratio
        limiter = self.limiter
        session = await self._get_session()
        signs = type(provider).sign is not Provider.sign
        attempts = 0
        counted = 0  # attempts that count against max_attempts (a step-down retry does not)
        stepped = False
        first_send: float | None = None
        while True:
            ticket = await limiter.acquire(est_in, est_out)
            attempts += 1
            counted += 1
            if first_send is None:
                first_send = time.monotonic()
            status: int | None = None
            raw = b""
            headers: Any = {}
            etype = ""
            message = ""
            try:
                send_headers = await provider.sign(prepared) if signs else prepared.headers
                async with session.post(
                    self._url(prepared.url), data=_body_payload(prepared.body), headers=send_headers
                ) as resp:
                    status = resp.status
                    headers = resp.headers
                    raw = await resp.read()
            except TimeoutError:
                etype = "timeout"
                message = f"no answer within request_timeout={self.config.request_timeout:g} s"
            except aiohttp.ClientError as exc:
                etype = "connection_error"
                message = f"{type(exc).__name__}: {exc}"
            except ConfigError as exc:  # e.g. no AWS credentials: nothing was sent
                limiter.release(ticket, input_tokens=0, output_tokens=0)
                return self._error_response(
                    spec,
                    status=None,
                    error_type="configuration_error",
                    message=str(exc),
                    attempts=attempts,
                    latency_s=time.monotonic() - first_send,
                    computer_tool_type=toolset.computer_tool_type,
                )
            except BaseException:
                limiter.release(ticket, output_tokens=0)
                raise

            data: Any = None
            if status is not None:
                try:
                    data = json.loads(raw) if raw else None
                except ValueError:
                    data = None
                if 200 <= status < 300:
                    if isinstance(data, dict):
                        try:
                            parsed = provider.parse(data, headers)
                        except Exception as exc:  # any shape error: a malformed answer
                            etype = "malformed_response"
                            message = f"the answer is not a valid response body ({exc!r})"
                        else:
                            u = parsed.usage
                            limiter.release(
                                ticket,
                                input_tokens=u.input_tokens + u.cache_write_tokens,
                                output_tokens=u.output_tokens,
                            )
                            # the next request needs about what this one used
                            self._note_rate_headers(
                                headers,
                                {
                                    "requests": 1,
                                    "input-tokens": u.input_tokens + u.cache_write_tokens,
                                    "output-tokens": u.output_tokens,
                                    "tokens": u.total_tokens,
                                },
                            )
                            cost = spec.cost(
                                u.input_tokens,
                                u.output_tokens,
                                u.cache_read_tokens,
                                u.cache_write_tokens,
                            )
                            self.total_usage = self.total_usage + u
                            self.total_cost += cost
                            return APIResponse(
                                model=spec.name,
                                model_id=spec.model_id,
                                provider=name,
                                content=parsed.content,
                                stop_reason=parsed.stop_reason,
                                usage=u,
                                cost=cost,
                                status_code=status,
                                attempts=attempts,
                                latency_s=time.monotonic() - first_send,
                                request_id=parsed.request_id,
                                raw=data if self.config.keep_raw else None,
                                computer_tool_type=toolset.computer_tool_type,
                            )
                    else:
                        etype = "malformed_response"
                        message = "the answer is not JSON"
                else:
                    try:
                        info = provider.parse_error(
                            status,
                            data if data is not None else raw.decode("utf-8", "replace"),
                            headers,
                        )
                        etype, message = info.error_type, info.message
                    except Exception:  # an error body of an unexpected shape
                        etype, message = "api_error", raw[:300].decode("utf-8", "replace")
            if status is not None and 400 <= status < 500:
                # rejected before processing (4xx, incl. 429): the API charged no tokens
                limiter.release(ticket, input_tokens=0, output_tokens=0)
            else:  # 5xx, timeouts, malformed: the server may have counted the input
                limiter.release(ticket, output_tokens=0)

            retry_after = parse_retry_after(headers) if status is not None else None
            if status is not None:
                if status == 429 and retry_after is not None:
                    limiter.pause_for(min(retry_after, self.retry.max_retry_after_s))
                self._note_rate_headers(headers)

            # step down once when the API names our computer tool type as unsupported
            if (
                status == 400
                and not stepped
                and toolset.computer_tool_type is not None
                and toolset.computer_tool_type in unsupported_tool_types(message)
            ):
                memory = self._unsupported.setdefault(key, set())
                memory.add(toolset.computer_tool_type)
                new_toolset = build_toolset(spec, name, opts, memory)
                if new_toolset.computer_tool_type != toolset.computer_tool_type:
                    logger.info(
                        "%s rejected %s on %s; stepping down to %s",
                        spec.model_id,
                        toolset.computer_tool_type,
                        name,
                        new_toolset.computer_tool_type,
                    )
                    toolset = new_toolset
                    prepared = provider.prepare(spec, conv, opts, toolset)
                    stepped = True
                    counted -= 1
                    continue

            if is_retryable(status, etype) and counted < self.retry.max_attempts:
                delay = self.retry.backoff_s(counted, retry_after)
                logger.debug(
                    "attempt %d for %s failed (%s %s); retrying in %.2f s",
                    attempts,
                    spec.model_id,
                    status,
                    etype,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            return self._error_response(
                spec,
                status=status,
                error_type=etype or "api_error",
                message=message,
                attempts=attempts,
                latency_s=time.monotonic() - first_send,
                computer_tool_type=toolset.computer_tool_type,
                request_id=(
                    headers.get("request-id")
                    or headers.get("x-amzn-requestid")
                    or headers.get("x-request-id")
                )
                if status is not None
                else None,
                raw=data,
            )

    def _note_rate_headers(self, headers: Any, needed: dict[str, float] | None = None) -> None:
        if "anthropic-ratelimit-requests-remaining" not in headers and (
            "anthropic-ratelimit-input-tokens-remaining" not in headers
        ):
            return
        wait = rate_limit_reset_in(headers, needed)
        if wait:
            logger.debug("rate limit exhausted per response headers; pausing %.2f s", wait)
            self.limiter.pause_for(min(wait, self.retry.max_retry_after_s))

    async def _run_safe(self, prompt: Any, opts: RequestOptions, spec: ModelSpec) -> APIResponse:
        try:
            return await self._run(prompt, opts, spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a bad prompt must not lose the other prompts
            logger.exception("prompt failed before an answer")
            return self._error_response(
                spec,
                status=None,
                error_type="client_error",
                message=f"{type(exc).__name__}: {exc}",
                attempts=0,
                latency_s=0.0,
                computer_tool_type=None,
            )

    # --- public calls ---------------------------------------------------------------------
    async def start(
        self,
        prompt: Conversation | Message | str | list[dict[str, Any]],
        *,
        computer_use: bool = False,
        display_width: int = 1024,
        display_height: int = 768,
        display_number: int | None = None,
        cache: str | Sequence[str] | None = None,
        tools: Iterable[Tool | dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        system: str | None = None,
        thinking: dict[str, Any] | None = None,
        tool_choice: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> APIResponse:
        """Send ONE prompt and return its :class:`APIResponse` (never raises for API errors).

        Keyword arguments are those of :meth:`process_prompts_async`. The call shares the
        client's limits with every other call in flight.

        Raises:
            ConfigError: bad arguments. ClosedError: the client is closed.
        """
        self._check_open()
        _check_prompt(prompt, 0)
        opts = self._options(
            computer_use=computer_use,
            display_width=display_width,
            display_height=display_height,
            display_number=display_number,
            cache=cache,
            tools=tools,
            max_tokens=max_tokens,
            temperature=temperature,
            system=system,
            thinking=thinking,
            tool_choice=tool_choice,
            extra_body=extra_body,
        )
        return await self._run_safe(prompt, opts, self._next_model(model))

    async def process_prompts_async(
        self,
        prompts: Any,
        *,
        computer_use: bool = False,
        display_width: int = 1024,
        display_height: int = 768,
        display_number: int | None = None,
        cache: str | Sequence[str] | None = None,
        tools: Iterable[Tool | dict[str, Any]] | None = None,
        show_progress: bool = True,
        max_tokens: int | None = None,
        temperature: float | None = None,
        system: str | None = None,
        thinking: dict[str, Any] | None = None,
        tool_choice: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        model: str | None = None,
        return_completions_only: bool = False,
    ) -> list[Any]:
        """Send every prompt; return one :class:`APIResponse` per prompt, in input order.

        Args:
            prompts: a Conversation, Message, string or list of message dicts, or a sequence
                of those.
            computer_use: add the computer, text-editor and bash tools of the model's
                generation for its provider (with the beta flag it needs).
            display_width / display_height: the display size told to the model, in
                model-space pixels (default 1024x768).
            display_number: the X11 display number in the computer tool (optional).
            cache: a cache mode or a list of them (``tools_only``, ``system_and_tools``,
                ``last_user_message``, ``last_2_user_messages``, ``last_3_user_messages``);
                ignored on gateways.
            tools: custom :class:`Tool` s or raw Anthropic tool dicts, sent after the
                computer-use tools.
            show_progress: draw a tqdm bar on stderr (nothing is printed when False).
            max_tokens: ``max_tokens`` of each request (default ``max_new_tokens``).
            temperature: overrides the client's temperature.
            system: a system prompt replacing the conversations' system messages.
            thinking: the ``thinking`` object, passed through (e.g. ``{"type": "enabled",
                "budget_tokens": 2048}``).
            tool_choice: the ``tool_choice`` object, passed through.
            extra_body: extra body keys, merged last.
            model: send every prompt to this one of the client's models.
            return_completions_only: return ``response.completion`` strings (None on error).

        Returns:
            a list as long as the prompts, in the same order.

        Raises:
            ConfigError: bad arguments (checked before anything is sent).
            ClosedError: the client is closed.
        """
        self._check_open()
        items: list[Any] = [prompts] if _is_single_prompt(prompts) else list(prompts)
        for i, p in enumerate(items):
            _check_prompt(p, i)
        opts = self._options(
            computer_use=computer_use,
            display_width=display_width,
            display_height=display_height,
            display_number=display_number,
            cache=cache,
            tools=tools,
            max_tokens=max_tokens,
            temperature=temperature,
            system=system,
            thinking=thinking,
            tool_choice=tool_choice,
            extra_body=extra_body,
        )
        n = len(items)
        results: list[Any] = [None] * n
        progress = Progress(
            n,
            enabled=show_progress and self.config.progress == "tqdm",
            in_flight=lambda: self.limiter.in_flight,
        )
        feed = iter(range(n))

        async def worker() -> None:
            for i in feed:  # a shared iterator: prompts are taken as capacity frees
                spec = self._next_model(model)
                resp = await self._run_safe(items[i], opts, spec)
                results[i] = resp
                progress.update(resp)

        try:
            workers = min(n, self.config.max_concurrent_requests)
            if workers == 1:
                await worker()
            elif workers:
                await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            progress.close()
        if return_completions_only:
            return [None if r.is_error else r.completion for r in results]
        return results

    def process_prompts_sync(self, prompts: Any, **kwargs: Any) -> list[Any]:
        """:meth:`process_prompts_async` in its own event loop (not inside a running loop).

        Raises:
            ConfigError: called from inside a running event loop, or bad arguments.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ConfigError(
                "process_prompts_sync() cannot run inside an event loop; "
                "use `await client.process_prompts_async(...)` there."
            )

        async def run() -> list[Any]:
            try:
                return await self.process_prompts_async(prompts, **kwargs)
            finally:
                await self._close_session()

        return asyncio.run(run())


__all__ = ["LLMClient"]
