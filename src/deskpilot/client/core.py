"""``LLMClient``: the seed's batch client on the real wire formats, with a shared scheduler.

One client owns one :class:`~deskpilot.transport.Transport` (aiohttp by default), one
:class:`~deskpilot.client.limiter.Limiter` (an in-process RateLimiter: RPM, input/output
TPM, concurrency, FIFO; or a fleet-wide one passed as ``limiter=``), the memory of tool
types the API rejected per (model, provider), and one
:class:`~deskpilot.providers.base.Provider` (wire format) per provider. Every
``process_prompts_async`` / ``start`` call on the client shares them, so an agent running
many ``start`` calls at once stays inside the same limits.

One prompt goes: provider builds the request -> per attempt: limiter admits, provider signs,
transport sends, provider parses -> :func:`~deskpilot.client.classify.classify` decides
(ok, retry after a pause, step the tool group down, fail).

API errors never raise: each prompt gets exactly one :class:`APIResponse`, in input order,
with ``is_error=True`` and ``status_code`` / ``error_type`` / ``error_kind`` /
``error_message`` when it failed; credential values are redacted from every message and
error body. Only bad arguments raise (:class:`~deskpilot.errors.ConfigError`, a ValueError),
at call time. Diagnostics go to ``logging.getLogger("deskpilot.client")``; nothing is
printed unless ``show_progress=True`` (a tqdm bar on stderr).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import time
import traceback
from collections.abc import Sequence
from typing import Any, Unpack

from ..errors import ClosedError, ConfigError
from ..models import REGISTRY, ModelRegistry, ModelSpec
from ..prompt import Conversation, Message, as_conversation
from ..providers.base import Provider, RequestOptions, ToolSet
from ..providers.tools import build_toolset, stepped_toolset
from ..response import APIResponse, ErrorKind, Usage
from ..transport import Transport
from .aiohttp_transport import AiohttpTransport
from .classify import Attempt, Fail, Retry, StepDown, classify, should_retry_header
from .config import CREDENTIALS_HINT, PROVIDER_LABELS, ClientConfig, make_provider, read_environment
from .count_tokens import CountTokensAPI, TokenCounter, check_countable
from .exchange import Answer, exchange
from .limiter import Limiter, RateLimiter
from .options import CallOptions, build_options, check_prompt, prompt_items
from .progress import Progress
from .redact import Redactor
from .retry import RetryPolicy, parse_retry_after
from .tokens import estimate_input_tokens

logger = logging.getLogger("deskpilot.client")


class LLMClient(CountTokensAPI):
    """A rate-limited client for Claude on the Anthropic API, Bedrock, Vertex AI or a gateway.

    Args:
        model_names: a registry name, a :class:`~deskpilot.models.ModelSpec`, or a list of
            them (prompts are spread round-robin over several models).
        max_requests_per_minute: RPM limit: never more requests in any 60 s window.
        max_tokens_per_minute: input tokens per minute (ITPM), estimated before sending and
            reconciled with the response's ``usage`` (cache reads excluded, as the API counts).
        max_concurrent_requests: requests in flight at once.
        max_attempts: total HTTP attempts per prompt.
        request_timeout: seconds allowed for one attempt (connect to the answer's last byte).
        max_output_tokens_per_minute: output tokens per minute (OTPM), or None.
        max_new_tokens: default ``max_tokens`` per request; every request's ``max_tokens``
            is capped at the model's ``ModelSpec.max_output_tokens``.
        temperature: default temperature, or None for the API's default.
        burst_s: seconds of quota that may go out at once (default 1 s, min. one request).
        retry_base_s / retry_cap_s: first and largest backoff between attempts, seconds.
        provider: force a platform of :data:`deskpilot.models.PLATFORMS` for every model.
        base_url / api_key: Anthropic API origin (without ``/v1``) or gateway base (with
            ``/v1``) and key; win over ``ANTHROPIC_*`` / ``OPENAI_*`` variables.
        auth_token: an Anthropic API bearer token (default ``ANTHROPIC_AUTH_TOKEN``; the
            precedence of key and token: :mod:`deskpilot.client.config`).
        endpoint_url / region: Bedrock runtime endpoint and region (win over
            ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` / ``AWS_REGION``; the region falls back to
            the AWS profile's, then ``us-east-1``).
        registry: a :class:`~deskpilot.models.ModelRegistry` to resolve names in (default
            the global one; pass ``REGISTRY.copy()`` after adding models to keep them local).
        progress: ``"tqdm"`` or ``"none"`` (what ``show_progress=True`` draws).
        aws_credentials: a botocore ``Credentials`` object (default: the standard chain).
        google_credentials: Google ``Credentials`` for Vertex AI (default: the file of
            ``GOOGLE_APPLICATION_CREDENTIALS``, else ADC); ``region=`` / ``project_id=``.
        environ: a mapping used instead of ``os.environ`` (tests).
        exact_token_counts: reserve each request's input tokens from the provider's count
            endpoint instead of an estimate (cached; see :mod:`deskpilot.client.count_tokens`).
        transport: how requests reach the API (default: a pooled
            :class:`~deskpilot.client.aiohttp_transport.AiohttpTransport`, closed with the
            client; a transport passed here is the caller's to close). Tests pass
            :class:`deskpilot.testing.MockTransport`.
        limiter: a :class:`~deskpilot.client.limiter.Limiter` used instead of an own
            RateLimiter (e.g. a fleet's :class:`deskpilot.fleet.RayLimiter`); the RPM, TPM,
            burst and window settings then do not apply to admission.
        **settings: any other :class:`~deskpilot.client.config.ClientConfig` field.

    Raises:
        ModelNotFoundError: an unknown model name (with close matches).
        ConfigError: an invalid setting, or a gateway model with no base URL.
        TypeError: ``limiter`` lacks the :class:`~deskpilot.client.limiter.Limiter` methods.
        MissingDependencyError: a Bedrock / Vertex AI model without botocore / google-auth.
        NotSupported: ``exact_token_counts=True`` with a gateway model (no count endpoint).
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
        google_credentials: Any = None,
        environ: dict[str, str] | None = None,
        transport: Transport | None = None,
        limiter: Limiter | None = None,
        **settings: Any,
    ) -> None:
        if limiter is not None and not isinstance(limiter, Limiter):
            raise TypeError(f"limiter must be a deskpilot Limiter, not {type(limiter).__name__}.")
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
        self._env = read_environment(environ)
        self._aws_credentials = aws_credentials
        self._google_credentials = google_credentials
        self._registry = registry or REGISTRY
        names = [model_names] if isinstance(model_names, str | ModelSpec) else list(model_names)
        if not names:
            raise ConfigError("LLMClient needs at least one model name, e.g. 'claude-4-sonnet'.")
        self._models: list[ModelSpec] = [self._registry.resolve(n, cfg.provider) for n in names]
        self._providers: dict[str, Provider] = {}
        for spec in self._models:
            self._provider_for(spec.provider)
        if limiter is None:
            limiter = RateLimiter(
                requests_per_minute=cfg.max_requests_per_minute,
                input_tokens_per_minute=cfg.max_tokens_per_minute,
                output_tokens_per_minute=cfg.max_output_tokens_per_minute,
                max_concurrent=cfg.max_concurrent_requests,
                burst_s=cfg.burst_s,
                window_s=cfg.rate_window_s,
                safety_s=cfg.rate_safety_s,
            )
        self.limiter: Limiter = limiter
        self.retry = RetryPolicy(
            max_attempts=cfg.max_attempts, base_s=cfg.retry_base_s, cap_s=cfg.retry_cap_s
        )
        self._rejected: dict[tuple[str, str], set[str]] = {}
        # the client closes only a transport it made itself
        self._own_transport: AiohttpTransport | None = None
        if transport is None:
            transport = self._own_transport = AiohttpTransport(
                max_connections=max(100, cfg.max_concurrent_requests + 16)
            )
        self._transport: Transport = transport
        self._redactor = Redactor()
        self._rr = itertools.cycle(range(len(self._models)))
        self._closed = False
        self.total_usage = Usage()
        self.total_cost = 0.0
        self._counter = TokenCounter(self)
        if cfg.exact_token_counts:
            check_countable(self._models)

    # --- construction helpers -------------------------------------------------------------
    def _provider_for(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            provider = self._providers[name] = make_provider(
                name, self.config, self._env, self._aws_credentials, self._google_credentials
            )
        return provider

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
        """The provider of the first model (a name of :data:`deskpilot.models.PLATFORMS`)."""
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
        """Tool types the API rejected for a model on its provider (step-down memory)."""
        spec = self.model_spec(name)
        return set(self._rejected.get((spec.model_id, spec.provider), ()))

    def credential_values(self) -> tuple[str, ...]:
        """Every credential value this client holds: ``api_key=`` / ``auth_token=``, those of
        its environment, and those its providers sent so far (AWS credentials of a profile or
        SSO, Google access tokens). Pass them to whatever writes text the client produced
        (``TrajectoryWriter(secrets=client.credential_values())``); the client's own errors
        are already redacted."""
        values: list[str] = []
        for v in (self.config.api_key, self.config.auth_token, *self._env.secrets()):
            if v and v not in values:
                values.append(v)
        for p in self._providers.values():
            values.extend(v for v in p.secrets() if v not in values)
        return tuple(values)

    def _redact(self) -> Redactor:
        secrets = self.credential_values()
        if set(secrets) != set(self._redactor.secrets):
            self._redactor = Redactor(secrets)
        return self._redactor

    # --- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> LLMClient:
        self._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the transport (when the client made it); later calls raise
        :class:`ClosedError`. Idempotent."""
        self._closed = True
        await self._release_transport()
        for p in self._providers.values():
            await p.close()

    async def _release_transport(self) -> None:
        if self._own_transport is not None:
            await self._own_transport.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(
                "This LLMClient is closed; create a new LLMClient (or use it before close())."
            )

    # --- one prompt -----------------------------------------------------------------------
    def _next_model(self, model: str | None) -> ModelSpec:
        if model is not None:
            return self.model_spec(model)
        if len(self._models) == 1:
            return self._models[0]
        return self._models[next(self._rr)]

    def _options(self, options: CallOptions, where: str) -> RequestOptions:
        opts = build_options(
            options,
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            where=where,
        )
        for spec in self._models:  # surface tool errors (duplicates, ...) at call time
            build_toolset(spec, spec.provider, opts)
        return opts

    def _step_down(
        self, spec: ModelSpec, opts: RequestOptions, toolset: ToolSet, rejected: tuple[str, ...]
    ) -> ToolSet | None:
        """The step-down decision, in one call: remember ``rejected`` for the model and, for
        the client's own group (``computer_use=True``), the tool set of the next group
        (:func:`~deskpilot.providers.tools.stepped_toolset`, i.e.
        :func:`~deskpilot.computer_use.specs.step_down`); None otherwise (the caller's
        ``tools=`` are never rewritten: the response reports ``rejected_tool_types`` and the
        caller steps down with the same function)."""
        memory = self._rejected.setdefault((spec.model_id, spec.provider), set())
        memory.update(rejected)
        return stepped_toolset(spec, spec.provider, opts, toolset, memory)

    async def _run(self, prompt: Any, opts: RequestOptions, spec: ModelSpec) -> APIResponse:
        """One prompt to one response; never raises for API or network errors."""
        conv = prompt if isinstance(prompt, Conversation) else as_conversation(prompt)
        provider = self._provider_for(spec.provider)
        if opts.max_tokens > spec.max_output_tokens:
            opts = dataclasses.replace(opts, max_tokens=spec.max_output_tokens)
        rejected = self._rejected.get((spec.model_id, spec.provider), ())
        toolset = build_toolset(spec, spec.provider, opts, rejected)
        timeout_s = self.config.request_timeout
        request = provider.prepare(spec, conv, opts, toolset, timeout_s)
        est_in: float = estimate_input_tokens(
            conv, tier=spec.image_tier, system=opts.system, tool_overhead=toolset.overhead_tokens
        )
        count_key = None
        if self.config.exact_token_counts:
            est_in, count_key = await self._counter.reserve(spec, conv, opts, toolset, est_in)
        est_out = opts.max_tokens * self.config.output_estimate_ratio
        tool_types = frozenset(toolset.group.types)
        max_pause_s = self.retry.max_retry_after_s
        attempts = counted = step_downs = 0
        first_send = 0.0
        while True:
            ticket = await self.limiter.acquire(est_in, est_out)
            attempts += 1
            counted += 1
            if attempts == 1:
                first_send = time.monotonic()
            answer = await exchange(
                provider, self._transport, request, self.limiter, ticket, max_pause_s
            )
            if answer.parsed is not None:
                self._counter.learn(count_key, answer.parsed.usage)
                return self._success(spec, answer, attempts, first_send, toolset)
            headers = answer.headers
            decision = classify(
                Attempt(
                    number=counted,
                    status=answer.status,
                    kind=answer.kind,
                    message=answer.message,
                    retry_after_s=parse_retry_after(headers) if headers is not None else None,
                    should_retry=should_retry_header(headers.get("x-should-retry"))
                    if headers is not None
                    else None,
                    tool_types=tool_types,
                    step_downs=step_downs,
                ),
                self.retry,
                random.uniform(1.0, 1.5),
            )
            if isinstance(decision, StepDown):
                new = self._step_down(spec, opts, toolset, decision.types)
                if new is not None:
                    logger.info(
                        "%s rejected %s on %s; stepping down to %s",
                        spec.model_id,
                        ", ".join(decision.types),
                        spec.provider,
                        ", ".join(new.group.types),
                    )
                    toolset, tool_types = new, frozenset(new.group.types)
                    request = provider.prepare(spec, conv, opts, toolset, timeout_s)
                    step_downs += 1
                    count_key = None  # the count was of the tools before the step-down
                    counted -= 1  # a step-down re-send is not a retry
                    continue
                return self._failure(
                    spec, answer, attempts, first_send, toolset, rejected=decision.types
                )
            if isinstance(decision, Retry):
                logger.debug(
                    "attempt %d for %s failed (%s %s); retrying in %.2f s",
                    attempts,
                    spec.model_id,
                    answer.status,
                    answer.kind,
                    decision.after_s,
                )
                await asyncio.sleep(decision.after_s)
                continue
            assert isinstance(decision, Fail)
            return self._failure(spec, answer, attempts, first_send, toolset)

    def _success(
        self, spec: ModelSpec, answer: Answer, attempts: int, first_send: float, toolset: ToolSet
    ) -> APIResponse:
        parsed = answer.parsed
        assert parsed is not None
        u = parsed.usage
        cost = spec.cost(u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens)
        self.total_usage = self.total_usage + u
        self.total_cost += cost
        return APIResponse(
            model=spec.name,
            model_id=spec.model_id,
            provider=spec.provider,
            content=parsed.content,
            stop_reason=parsed.stop_reason,
            usage=u,
            cost=cost,
            status_code=answer.status,
            attempts=attempts,
            latency_s=time.monotonic() - first_send,
            request_id=parsed.request_id,
            raw=answer.data if self.config.keep_raw else None,
            computer_tool_type=toolset.computer_tool_type,
            tool_types=toolset.group.types,
        )

    def _failure(
        self,
        spec: ModelSpec,
        answer: Answer,
        attempts: int,
        first_send: float,
        toolset: ToolSet | None,
        rejected: tuple[str, ...] = (),
    ) -> APIResponse:
        """The error response of a failed prompt: one sentence, credentials redacted."""
        kind = answer.kind or ErrorKind.CLIENT
        status = answer.status
        label = PROVIDER_LABELS.get(spec.provider, spec.provider)
        where = f"HTTP {status}" if status is not None else "no answer"
        error_type = answer.error_type or kind.value
        text = answer.message.strip().rstrip(".") if answer.message else "no error message"
        hint = ""
        if kind is ErrorKind.AUTHENTICATION:
            hint = CREDENTIALS_HINT
        if rejected:
            hint += (
                f" The rejected types ({', '.join(rejected)}) are in the caller's tools=; step "
                "them down and call again (APIResponse.rejected_tool_types)."
            )
        redact = self._redact()
        headers = answer.headers
        request_id = None
        if headers is not None:
            request_id = (
                headers.get("request-id")
                or headers.get("x-amzn-requestid")
                or headers.get("x-request-id")
            )
        raw = answer.data if isinstance(answer.data, dict) else None
        return APIResponse(
            model=spec.name,
            model_id=spec.model_id,
            provider=spec.provider,
            is_error=True,
            error_message=redact.text(
                f"{label} request for {spec.name} failed after {attempts} attempt"
                f"{'s' if attempts != 1 else ''} ({where}, {error_type}): {text}.{hint}"
            ),
            error_type=redact.text(error_type),
            error_kind=kind,
            status_code=status,
            attempts=attempts,
            latency_s=time.monotonic() - first_send if attempts else 0.0,
            request_id=request_id,
            raw=redact.data(raw) if raw is not None else None,
            computer_tool_type=toolset.computer_tool_type if toolset is not None else None,
            tool_types=toolset.group.types if toolset is not None else (),
            rejected_tool_types=rejected,
        )

    async def _run_safe(self, prompt: Any, opts: RequestOptions, spec: ModelSpec) -> APIResponse:
        try:
            return await self._run(prompt, opts, spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a bad prompt must not lose the other prompts
            redact = self._redact()
            logger.error("prompt failed before an answer: %s", redact.text(repr(exc)))
            logger.debug("%s", redact.text("".join(traceback.format_exception(exc))))
            answer = Answer(kind=ErrorKind.CLIENT, message=f"{type(exc).__name__}: {exc}")
            return self._failure(spec, answer, 0, 0.0, None)

    # --- public calls ---------------------------------------------------------------------
    async def start(
        self,
        prompt: Conversation | Message | str | list[dict[str, Any]],
        *,
        model: str | None = None,
        **options: Unpack[CallOptions],
    ) -> APIResponse:
        """Send ONE prompt and return its :class:`APIResponse` (never raises for API errors).

        Args:
            prompt: a Conversation, Message, string or list of message dicts.
            model: send it to this one of the client's models (default: round-robin).
            **options: the call options of :class:`~deskpilot.client.options.CallOptions`
                (``computer_use``, ``display_width``, ``tools``, ``cache``, ...).

        The call shares the client's limits with every other call in flight.

        Raises:
            ConfigError: bad arguments. TypeError: an unknown option.
            ClosedError: the client is closed.
        """
        self._check_open()
        check_prompt(prompt, 0)
        opts = self._options(options, "start")
        return await self._run_safe(prompt, opts, self._next_model(model))

    async def process_prompts_async(
        self,
        prompts: Any,
        *,
        show_progress: bool = True,
        model: str | None = None,
        return_completions_only: bool = False,
        **options: Unpack[CallOptions],
    ) -> list[Any]:
        """Send every prompt; return one :class:`APIResponse` per prompt, in input order.

        Args:
            prompts: a Conversation, Message, string or list of message dicts, or a sequence
                of those.
            show_progress: draw a tqdm bar on stderr (nothing is printed when False).
            model: send every prompt to this one of the client's models.
            return_completions_only: return ``response.completion`` strings (None on error).
            **options: the call options of :class:`~deskpilot.client.options.CallOptions`:
                ``computer_use``, ``display_width`` / ``display_height`` (model-space
                pixels), ``display_number``, ``cache``, ``tools``, ``max_tokens``,
                ``temperature``, ``system``, ``thinking``, ``tool_choice``, ``extra_body``.

        Returns:
            a list as long as the prompts, in the same order.

        Raises:
            ConfigError: bad arguments (checked before anything is sent).
            TypeError: an unknown option.
            ClosedError: the client is closed.
        """
        self._check_open()
        items = prompt_items(prompts)
        for i, p in enumerate(items):
            check_prompt(p, i)
        opts = self._options(options, "process_prompts_async")
        if self.config.exact_token_counts:
            await self._counter.prime(items, opts, model)
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
                await self._release_transport()

        return asyncio.run(run())


__all__ = ["LLMClient"]
