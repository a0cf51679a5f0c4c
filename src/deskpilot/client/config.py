"""Client configuration and the ONE place the environment is read.

:class:`ClientConfig` holds every ``LLMClient`` setting as a frozen, keyword-only dataclass,
validated on construction. :func:`read_environment` reads the standard variables, and
nothing else in deskpilot's client looks at ``os.environ``:

========================================  ===============================================
``ANTHROPIC_API_KEY``                     ``x-api-key`` for the Anthropic API
``ANTHROPIC_AUTH_TOKEN``                  ``Authorization: Bearer`` for the Anthropic API
                                          (an OAuth or gateway token; see below)
``ANTHROPIC_BASE_URL``                    API origin (default ``https://api.anthropic.com``)
``OPENAI_API_KEY``                        ``Authorization: Bearer`` for gateways
``OPENAI_BASE_URL``                       gateway base incl. ``/v1`` (e.g. ``https://api.model.box/v1``)
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``      Bedrock runtime endpoint override
``AWS_REGION`` / ``AWS_DEFAULT_REGION``   Bedrock region (else the profile's, else ``us-east-1``)
``AWS_PROFILE`` / ``AWS_CONFIG_FILE``     the AWS profile and config file the region and the
                                          credential chain are read from
``AWS_ACCESS_KEY_ID`` /                   static AWS credentials when the first two are set
``AWS_SECRET_ACCESS_KEY`` /               (the first link of botocore's chain too, so an
``AWS_SESSION_TOKEN``                     ``environ=`` mapping behaves like ``os.environ``)
``CLOUD_ML_REGION``                       Vertex AI region (``us-east5``, ``global``, ``us``, ``eu``)
``ANTHROPIC_VERTEX_PROJECT_ID``           Vertex AI project (else the credentials' project)
``ANTHROPIC_VERTEX_BASE_URL``             Vertex AI endpoint override, with ``/v1``
``GOOGLE_APPLICATION_CREDENTIALS``        the Google credentials file for Vertex AI (else
                                          Application Default Credentials)
========================================  ===============================================

Other AWS credentials (profiles, SSO, instance roles) come from botocore's standard chain,
other Google credentials (gcloud's user credentials, the metadata server) from google-auth's
Application Default Credentials. The Vertex variables are the Anthropic SDK's
(``src/anthropic/lib/vertex/_client.py`` of anthropics/anthropic-sdk-python).
Arguments to ``LLMClient`` win over the environment.

The Anthropic API's credentials follow the Anthropic SDK's precedence
(https://github.com/anthropics/anthropic-sdk-python, ``src/anthropic/_client.py``:
``auth_headers`` = ``X-Api-Key`` from the API key plus ``Authorization: Bearer`` from the
auth token): an ``api_key=`` or ``auth_token=`` argument is total (the two variables are
then not read); otherwise ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_AUTH_TOKEN`` are both read,
and each one set adds its header. So a token alone sends ``Authorization: Bearer`` and no
``x-api-key``. Keys are kept out of every ``repr``
and redacted from every error message the client returns.

A credential is one line of printable characters. A key read from a file often keeps its
line break (``api_key=open("key").read()``, a ``.env`` file with CRLF line ends), which
HTTP forbids in a header value: such surrounding whitespace (spaces, tabs, CR, LF) is
stripped, with a warning on the ``deskpilot.client`` logger that names the variable or
argument (never the value). Any other control character or whitespace INSIDE a key
(``NUL``, a line break in the middle) raises :class:`~deskpilot.errors.ConfigError` when the
client is built, with a sentence saying so (:func:`clean_credential`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..providers.base import Provider

logger = logging.getLogger("deskpilot.client")

_SURROUNDING = " \t\r\n"

PROVIDER_LABELS = {
    "anthropic": "Anthropic API",
    "bedrock": "Bedrock",
    "vertex": "Vertex AI",
    "gateway": "Gateway",
}
"""How error messages name each provider."""
CREDENTIALS_HINT = (
    " Check the credentials (ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN / OPENAI_API_KEY / AWS"
    " credentials / Google credentials)."
)
"""The sentence an authentication error ends with."""


def _stripped(value: str | None, source: str) -> str | None:
    """``value`` without surrounding whitespace (logged, never the value); None if empty."""
    if not value:
        return None
    clean = value.strip(_SURROUNDING)
    if clean != value:
        logger.warning(
            "%s has spaces or a line break around it (read from a file?); deskpilot uses it "
            "without them.",
            source,
        )
    return clean or None


def clean_credential(value: str | None, source: str) -> str | None:
    """``value`` ready for an HTTP header: surrounding spaces, tabs, CR and LF removed (with
    a warning naming ``source``, e.g. ``"ANTHROPIC_API_KEY"`` or ``"api_key="``).

    Raises:
        ConfigError: a control character or whitespace is left inside the value.
    """
    clean = _stripped(value, source)
    if clean is not None and not all(c.isprintable() and not c.isspace() for c in clean):
        raise ConfigError(
            f"{source} contains a control character or whitespace inside it (a line break, "
            "a NUL, a space...); an API key or secret is one line of printable characters: "
            "check how it was set."
        )
    return clean


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """The environment variables the client uses (see the module table)."""

    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_auth_token: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    bedrock_endpoint_url: str | None = None
    aws_region: str | None = None
    aws_profile: str | None = None
    aws_config_file: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    cloud_ml_region: str | None = None
    vertex_project_id: str | None = None
    vertex_base_url: str | None = None
    google_application_credentials: str | None = None

    def secrets(self) -> tuple[str, ...]:
        """The credential values among these variables (for redaction)."""
        values = (
            self.anthropic_api_key,
            self.anthropic_auth_token,
            self.openai_api_key,
            self.aws_secret_access_key,
            self.aws_session_token,
        )
        return tuple(v for v in values if v)


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """Read the variables of the module table from ``environ`` (default ``os.environ``);
    the credentials' surrounding whitespace is stripped (see the module docstring)."""
    env = os.environ if environ is None else environ
    return Environment(
        anthropic_api_key=_stripped(env.get("ANTHROPIC_API_KEY"), "ANTHROPIC_API_KEY"),
        anthropic_auth_token=_stripped(env.get("ANTHROPIC_AUTH_TOKEN"), "ANTHROPIC_AUTH_TOKEN"),
        anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
        openai_api_key=_stripped(env.get("OPENAI_API_KEY"), "OPENAI_API_KEY"),
        openai_base_url=env.get("OPENAI_BASE_URL") or None,
        bedrock_endpoint_url=env.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or None,
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        aws_profile=env.get("AWS_PROFILE") or None,
        aws_config_file=env.get("AWS_CONFIG_FILE") or None,
        aws_access_key_id=_stripped(env.get("AWS_ACCESS_KEY_ID"), "AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=_stripped(env.get("AWS_SECRET_ACCESS_KEY"), "AWS_SECRET_ACCESS_KEY"),
        aws_session_token=_stripped(env.get("AWS_SESSION_TOKEN"), "AWS_SESSION_TOKEN"),
        cloud_ml_region=env.get("CLOUD_ML_REGION") or None,
        vertex_project_id=env.get("ANTHROPIC_VERTEX_PROJECT_ID") or None,
        vertex_base_url=env.get("ANTHROPIC_VERTEX_BASE_URL") or None,
        google_application_credentials=env.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Every ``LLMClient`` setting (names from the seed where it has them).

    Attributes:
        max_requests_per_minute: RPM limit (requests per 60 s window).
        max_tokens_per_minute: input-token limit per minute (ITPM; cache reads excluded,
            as the Anthropic API counts them).
        max_output_tokens_per_minute: output-token limit per minute, or None.
        max_concurrent_requests: requests in flight at once.
        max_attempts: total HTTP attempts per prompt.
        request_timeout: seconds allowed for one attempt (connect to last byte).
        max_new_tokens: default ``max_tokens`` of a request; every request's ``max_tokens``
            is capped at the model's ``ModelSpec.max_output_tokens``.
        temperature: default sampling temperature (None: the API default).
        burst_s: seconds of quota that may go out at once (bucket capacity; min. one request).
        retry_base_s / retry_cap_s: backoff before the first retry / the longest backoff, s.
        output_estimate_ratio: share of ``max_tokens`` reserved as output tokens before the
            answer (reconciled with real usage afterwards).
        rate_window_s / rate_safety_s: the rate window (60 s) and the margin added to it
            against arrival-time jitter (default ``rate_window_s / 240``: 0.25 s per minute).
        provider: force ``"anthropic"``, ``"bedrock"``, ``"vertex"`` or ``"gateway"`` for
            every model.
        base_url: the Anthropic API origin, the Vertex AI endpoint (with ``/v1``) or the
            gateway base URL (wins over the environment).
        api_key: the Anthropic or gateway key (wins over the environment); never shown;
            surrounding whitespace is stripped (see the module docstring).
        auth_token: a bearer token for the Anthropic API (``Authorization: Bearer``; wins
            over the environment like ``api_key``); never shown.
        endpoint_url / region: Bedrock runtime endpoint and region; ``region`` is also the
            Vertex AI region (wins over ``CLOUD_ML_REGION``).
        project_id: the Vertex AI project (wins over ``ANTHROPIC_VERTEX_PROJECT_ID``).
        vertex_body_betas: beta flags sent to Vertex AI in the body's ``anthropic_beta``
            instead of the ``anthropic-beta`` header (default: none, all in the header).
        progress: ``"tqdm"`` (to stderr) or ``"none"``.
        keep_raw: keep the decoded JSON of successful answers on ``APIResponse.raw``.
        exact_token_counts: reserve input tokens from the provider's token-count endpoint
            instead of estimates (counts cached; :mod:`deskpilot.client.count_tokens`).

    Raises:
        ConfigError: a value out of range (the message says what to pass), or an
            ``api_key`` with a control character or whitespace inside it.
    """

    max_requests_per_minute: float = 1_000
    max_tokens_per_minute: float | None = 500_000
    max_output_tokens_per_minute: float | None = None
    max_concurrent_requests: int = 225
    max_attempts: int = 5
    request_timeout: float = 120.0
    max_new_tokens: int = 1024
    temperature: float | None = None
    burst_s: float = 1.0
    retry_base_s: float = 1.0
    retry_cap_s: float = 30.0
    output_estimate_ratio: float = 0.25
    rate_window_s: float = 60.0
    rate_safety_s: float | None = None
    provider: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    auth_token: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None
    region: str | None = None
    project_id: str | None = None
    vertex_body_betas: tuple[str, ...] = ()
    progress: str = "tqdm"
    keep_raw: bool = False
    exact_token_counts: bool = False

    def __post_init__(self) -> None:
        def positive(name: str, value: float | None, *, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive number, not {value!r}.")

        positive("max_requests_per_minute", self.max_requests_per_minute)
        positive("max_tokens_per_minute", self.max_tokens_per_minute, allow_none=True)
        positive("max_output_tokens_per_minute", self.max_output_tokens_per_minute, allow_none=True)
        positive("request_timeout", self.request_timeout)
        positive("burst_s", self.burst_s)
        positive("rate_window_s", self.rate_window_s)
        for name in ("max_concurrent_requests", "max_attempts", "max_new_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, not {v!r}.")
        if self.retry_base_s < 0 or self.retry_cap_s < self.retry_base_s:
            raise ConfigError("Pass 0 <= retry_base_s <= retry_cap_s (seconds).")
        if not 0 <= self.output_estimate_ratio <= 1:
            raise ConfigError("output_estimate_ratio must be between 0 and 1.")
        if self.rate_safety_s is not None and self.rate_safety_s < 0:
            raise ConfigError("rate_safety_s must be >= 0 seconds.")
        if self.provider not in (None, "anthropic", "bedrock", "vertex", "gateway"):
            raise ConfigError(
                "provider must be 'anthropic', 'bedrock', 'vertex' or 'gateway', not "
                f"{self.provider!r}."
            )
        if isinstance(self.vertex_body_betas, str) or not all(
            isinstance(b, str) for b in self.vertex_body_betas
        ):
            raise ConfigError(
                "vertex_body_betas must be a tuple of beta flag strings, e.g. "
                "('context-1m-2025-08-07',)."
            )
        object.__setattr__(self, "vertex_body_betas", tuple(self.vertex_body_betas))
        if self.progress not in ("tqdm", "none"):
            raise ConfigError(f"progress must be 'tqdm' or 'none', not {self.progress!r}.")
        if self.temperature is not None and not 0 <= self.temperature <= 1:
            raise ConfigError(f"temperature must be between 0 and 1, not {self.temperature}.")
        for name in ("api_key", "auth_token"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, clean_credential(value, f"{name}="))


def make_provider(
    name: str,
    config: ClientConfig,
    env: Environment,
    aws_credentials: Any = None,
    google_credentials: Any = None,
) -> Provider:
    """The wire-format object of provider ``name`` from the settings and the environment.

    Endpoints and keys: arguments win over the variables of the module table (the Anthropic
    API's key and bearer token as the module docstring says). Bedrock's
    region: ``region=``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, the AWS profile's region,
    else ``us-east-1``; its credentials: ``aws_credentials``, else ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``), else botocore's chain. Vertex AI's
    region: ``region=``, else ``CLOUD_ML_REGION``; its project: ``project_id=``, else
    ``ANTHROPIC_VERTEX_PROJECT_ID``, else the credentials'; its endpoint: ``base_url=``, else
    ``ANTHROPIC_VERTEX_BASE_URL``, else the region's; its credentials: ``google_credentials``,
    else the file of ``GOOGLE_APPLICATION_CREDENTIALS``, else Application Default Credentials.

    Raises:
        ConfigError: a gateway without a base URL, Vertex AI without a region, an AWS
            profile that does not exist, or a credential with a control character or
            whitespace inside it.
        MissingDependencyError: Bedrock without botocore, Vertex AI without google-auth.
    """
    if name == "anthropic":
        from ..providers.anthropic import DEFAULT_BASE_URL, AnthropicProvider

        base = config.base_url or env.anthropic_base_url or DEFAULT_BASE_URL
        if config.api_key or config.auth_token:  # explicit arguments are total (the SDK's rule)
            return AnthropicProvider(base, config.api_key, auth_token=config.auth_token)
        key = clean_credential(env.anthropic_api_key, "ANTHROPIC_API_KEY")
        token = clean_credential(env.anthropic_auth_token, "ANTHROPIC_AUTH_TOKEN")
        return AnthropicProvider(base, key, auth_token=token)
    if name == "bedrock":
        from ..providers.bedrock import BedrockProvider, profile_region

        region = (
            config.region
            or env.aws_region
            or profile_region(env.aws_profile, env.aws_config_file)
            or "us-east-1"
        )
        endpoint = config.endpoint_url or env.bedrock_endpoint_url
        creds = aws_credentials
        if creds is None and env.aws_access_key_id and env.aws_secret_access_key:
            from botocore.credentials import Credentials

            creds = Credentials(
                clean_credential(env.aws_access_key_id, "AWS_ACCESS_KEY_ID"),
                clean_credential(env.aws_secret_access_key, "AWS_SECRET_ACCESS_KEY"),
                clean_credential(env.aws_session_token, "AWS_SESSION_TOKEN"),
            )
        return BedrockProvider(region, endpoint, creds, profile=env.aws_profile)
    if name == "vertex":
        from ..providers.vertex import VertexProvider

        vertex_region = config.region or env.cloud_ml_region
        if not vertex_region:
            raise ConfigError(
                "Vertex AI needs a region: pass region='us-east5' (or 'global', 'us', 'eu') "
                "or set CLOUD_ML_REGION."
            )
        return VertexProvider(
            vertex_region,
            config.project_id or env.vertex_project_id,
            config.base_url or env.vertex_base_url,
            google_credentials,
            credentials_file=env.google_application_credentials,
            body_betas=config.vertex_body_betas,
        )
    from ..providers.gateway import GatewayProvider

    gateway_url = config.base_url or env.openai_base_url
    if not gateway_url:
        raise ConfigError(
            "A gateway model needs a base URL: pass base_url='https://api.model.box/v1' "
            "or set OPENAI_BASE_URL."
        )
    key = config.api_key or clean_credential(env.openai_api_key, "OPENAI_API_KEY")
    return GatewayProvider(gateway_url, key)


__all__ = [
    "CREDENTIALS_HINT",
    "PROVIDER_LABELS",
    "ClientConfig",
    "Environment",
    "clean_credential",
    "make_provider",
    "read_environment",
]
