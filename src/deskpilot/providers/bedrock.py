"""AWS Bedrock InvokeModel for Claude (``POST {endpoint}/model/{model-id}/invoke``).

Body: the Messages API fields without ``model``, plus ``anthropic_version:
"bedrock-2023-05-31"`` and ``anthropic_beta: [...]`` for beta tools (AWS "Anthropic Claude
Messages API" model-parameters page; the Anthropic SDK's ``AnthropicBedrock`` does the same).
Auth: SigV4 (service ``bedrock``) computed by **botocore** over the exact bytes sent, once
per attempt, with credentials from botocore's standard chain (environment, shared
config/profiles, SSO, container and instance metadata); resolving and refreshing them may
block (files, SSO, STS, instance metadata), so it runs in a worker thread, never on the
event loop. The region, when not given, is the AWS profile's, as every AWS tool reads it
(:func:`profile_region`; AWS "Configuration and credential file settings",
https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html). Errors:
``{"message": ...}`` with the ``x-amzn-ErrorType`` header. botocore is the optional extra
``deskpilot[bedrock]``; its exceptions are translated here into
:class:`~deskpilot.errors.CredentialsError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError, CredentialsError, MissingDependencyError
from ..models import ModelSpec
from ..prompt import Conversation
from ..transport import HTTPRequest
from .anthropic import build_messages_body, parse_messages_response, status_error_type
from .base import ErrorInfo, ParsedResponse, Provider, RequestOptions, ToolSet

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"

_AWS_ERROR_TYPES: dict[str, str] = {
    "ThrottlingException": "rate_limit_error",
    "TooManyRequestsException": "rate_limit_error",
    "ServiceQuotaExceededException": "rate_limit_error",
    "ServiceUnavailableException": "overloaded_error",
    "ModelNotReadyException": "overloaded_error",
    "InternalServerException": "api_error",
    "ModelTimeoutException": "timeout_error",
    "ValidationException": "invalid_request_error",
    "ModelErrorException": "api_error",
    "AccessDeniedException": "permission_error",
    "UnrecognizedClientException": "authentication_error",
    "InvalidSignatureException": "authentication_error",
    "ExpiredTokenException": "authentication_error",
    "ResourceNotFoundException": "not_found_error",
}


def default_endpoint(region: str) -> str:
    """``https://bedrock-runtime.{region}.amazonaws.com``."""
    return f"https://bedrock-runtime.{region}.amazonaws.com"


def invoke_url(endpoint: str, model_id: str) -> str:
    """``{endpoint}/model/{url-quoted model id}/invoke`` (``:`` becomes ``%3A``)."""
    return f"{endpoint.rstrip('/')}/model/{quote(model_id, safe='')}/invoke"


def _botocore() -> Any:
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import botocore.exceptions
        import botocore.session
    except ImportError as exc:
        raise MissingDependencyError(
            "Bedrock needs botocore for SigV4 signing; install it with "
            "`pip install 'deskpilot[bedrock]'` (or `pip install botocore`)."
        ) from exc
    return botocore


def profile_region(profile: str | None = None, config_file: str | None = None) -> str | None:
    """The ``region`` of an AWS profile in the shared config file, or None.

    Args:
        profile: the profile name (None: ``AWS_PROFILE``, else ``default``).
        config_file: the config file (None: ``AWS_CONFIG_FILE``, else ``~/.aws/config``).

    Raises:
        ConfigError: ``profile`` names a profile the config files do not have.
        MissingDependencyError: botocore is not installed.
    """
    bc = _botocore()
    session = bc.session.Session(profile=profile)
    if config_file:
        session.set_config_variable("config_file", config_file)
    try:
        region = session.get_scoped_config().get("region")
    except bc.exceptions.ProfileNotFound as exc:
        raise ConfigError(
            f"The AWS profile {profile or ''!r} is not in the AWS config files; set AWS_PROFILE "
            "to one of their profiles, or pass region=... to LLMClient."
        ) from exc
    return str(region) if region else None


def _credentials_error(exc: Exception) -> CredentialsError:
    return CredentialsError(
        f"AWS credentials for Bedrock could not be obtained ({type(exc).__name__}: {exc}); "
        "check AWS_PROFILE / AWS_ACCESS_KEY_ID, or run `aws sso login` for an SSO profile."
    )


class BedrockProvider(Provider):
    """Bedrock InvokeModel with SigV4 signing.

    Args:
        region: the AWS region (signing scope and default endpoint).
        endpoint_url: the runtime endpoint (default ``https://bedrock-runtime.{region}.amazonaws.com``).
        credentials: a botocore ``Credentials`` object (static or refreshable); default:
            botocore's standard chain of ``profile``, resolved once, lazily, off the event
            loop.
        profile: the AWS profile of the default chain (None: ``AWS_PROFILE``/``default``).

    Raises:
        MissingDependencyError: botocore is not installed (at construction).
    """

    name = "bedrock"

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        credentials: Any = None,
        *,
        profile: str | None = None,
    ) -> None:
        self._bc = _botocore()
        self.region = region
        self.endpoint_url = (endpoint_url or default_endpoint(region)).rstrip("/")
        self.profile = profile
        self._credentials = credentials
        self._cred_lock: asyncio.Lock | None = None
        self._frozen: Any = None
        self._headers = {"content-type": "application/json", "accept": "application/json"}

    def __repr__(self) -> str:
        return f"BedrockProvider(region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    def url(self, spec: ModelSpec) -> str:
        return invoke_url(spec.base_url or self.endpoint_url, spec.model_id)

    def headers(self, betas: list[str]) -> dict[str, str]:
        return self._headers

    def build_body(
        self, spec: ModelSpec, conv: Conversation, opts: RequestOptions, toolset: ToolSet
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"anthropic_version": BEDROCK_ANTHROPIC_VERSION}
        if toolset.betas:
            body["anthropic_beta"] = list(toolset.betas)
        body.update(build_messages_body(conv, opts, toolset))
        body.pop("model", None)
        return body

    def secrets(self) -> tuple[str, ...]:
        """The secret access key and session token last used to sign (empty before the
        first request when the credentials come from the chain), for redaction."""
        frozen = self._frozen
        creds = self._credentials
        if frozen is None and creds is not None:
            # static Credentials hold plain attributes; a refreshable object's attributes
            # may refresh (block), so it is read only once frozen by a request
            if isinstance(creds, self._bc.credentials.RefreshableCredentials):
                return ()
            frozen = creds
        if frozen is None:
            return ()
        values = (getattr(frozen, "secret_key", None), getattr(frozen, "token", None))
        return tuple(v for v in values if isinstance(v, str) and v)

    def _resolve_chain(self) -> Any:
        """botocore's standard credential chain (blocking: files, SSO, metadata)."""
        try:
            creds = self._bc.session.Session(profile=self.profile).get_credentials()
        except self._bc.exceptions.BotoCoreError as exc:
            raise _credentials_error(exc) from exc
        if creds is None:
            raise CredentialsError(
                "No AWS credentials found for Bedrock; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run on a machine with an IAM role "
                "(botocore's standard credential chain)."
            )
        return creds

    async def _get_credentials(self) -> Any:
        if self._credentials is None:
            if self._cred_lock is None:
                self._cred_lock = asyncio.Lock()
            async with self._cred_lock:
                if self._credentials is None:
                    self._credentials = await asyncio.to_thread(self._resolve_chain)
        return self._credentials

    def _freeze(self, credentials: Any) -> Any:
        """``credentials.get_frozen_credentials()`` (blocking: it refreshes expiring
        SSO / assume-role / metadata credentials); run in a worker thread."""
        try:
            return credentials.get_frozen_credentials()
        except self._bc.exceptions.BotoCoreError as exc:
            raise _credentials_error(exc) from exc

    def sign_with(self, credentials: Any, request: HTTPRequest) -> dict[str, str]:
        """SigV4 headers for ``request`` with frozen ``credentials`` (anything with
        ``access_key``, ``secret_key``, ``token``); pure CPU, no I/O."""
        aws_req = self._bc.awsrequest.AWSRequest(
            method=request.method, url=request.url, data=request.body, headers=dict(request.headers)
        )
        self._bc.auth.SigV4Auth(credentials, "bedrock", self.region).add_auth(aws_req)
        return dict(aws_req.headers.items())

    async def sign(self, request: HTTPRequest) -> HTTPRequest:
        """``request`` with fresh SigV4 headers (credentials resolved and refreshed in a
        worker thread).

        Raises:
            CredentialsError: no credentials in the chain, or their refresh failed.
        """
        creds = await self._get_credentials()
        frozen = self._frozen = await asyncio.to_thread(self._freeze, creds)
        return dataclasses.replace(request, headers=self.sign_with(frozen, request))

    def parse(self, data: dict[str, Any], headers: Mapping[str, str]) -> ParsedResponse:
        return parse_messages_response(
            data, headers.get("x-amzn-requestid") or headers.get("x-amzn-RequestId")
        )

    def parse_error(self, status: int, data: Any, headers: Mapping[str, str]) -> ErrorInfo:
        aws_type = (headers.get("x-amzn-ErrorType") or "").split(":")[0]
        message = ""
        if isinstance(data, dict):
            message = str(data.get("message") or data.get("Message") or "")
            err = data.get("error")
            if isinstance(err, dict):  # an Anthropic-shaped error passed through
                return ErrorInfo(
                    str(err.get("type") or status_error_type(status)), str(err.get("message", ""))
                )
        elif isinstance(data, str):
            message = data[:500]
        etype = _AWS_ERROR_TYPES.get(aws_type) or status_error_type(status)
        if aws_type and aws_type not in message:
            message = f"{aws_type}: {message}" if message else aws_type
        return ErrorInfo(etype, message)


__all__ = [
    "BEDROCK_ANTHROPIC_VERSION",
    "BedrockProvider",
    "default_endpoint",
    "invoke_url",
    "profile_region",
]
