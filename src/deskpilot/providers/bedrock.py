"""AWS Bedrock InvokeModel for Claude (``POST {endpoint}/model/{model-id}/invoke``).

Body: the Messages API fields without ``model``, plus ``anthropic_version:
"bedrock-2023-05-31"`` and ``anthropic_beta: [...]`` for beta tools (AWS "Anthropic Claude
Messages API" model-parameters page; the Anthropic SDK's ``AnthropicBedrock`` does the same).
Auth: SigV4 (service ``bedrock``) computed by **botocore** over the exact bytes sent, once
per attempt, with credentials from botocore's standard chain (environment, shared
config/profiles, SSO, container and instance metadata). Errors: ``{"message": ...}`` with
the ``x-amzn-ErrorType`` header. botocore is the optional extra ``deskpilot[bedrock]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError, MissingDependencyError
from ..models import ModelSpec
from ..prompt import Conversation
from .anthropic import build_messages_body, parse_messages_response, status_error_type
from .base import ErrorInfo, ParsedResponse, PreparedRequest, Provider, RequestOptions, ToolSet

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
        import botocore.session
    except ImportError as exc:
        raise MissingDependencyError(
            "Bedrock needs botocore for SigV4 signing; install it with "
            "`pip install 'deskpilot[bedrock]'` (or `pip install botocore`)."
        ) from exc
    return botocore


class BedrockProvider(Provider):
    """Bedrock InvokeModel with SigV4 signing.

    Args:
        region: the AWS region (signing scope and default endpoint).
        endpoint_url: the runtime endpoint (default ``https://bedrock-runtime.{region}.amazonaws.com``).
        credentials: a botocore ``Credentials`` object; default: botocore's standard chain,
            resolved once, lazily, off the event loop.

    Raises:
        MissingDependencyError: botocore is not installed (at construction).
    """

    name = "bedrock"

    def __init__(
        self, region: str, endpoint_url: str | None = None, credentials: Any = None
    ) -> None:
        self._bc = _botocore()
        self.region = region
        self.endpoint_url = (endpoint_url or default_endpoint(region)).rstrip("/")
        self._credentials = credentials
        self._cred_lock: asyncio.Lock | None = None
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

    async def _get_credentials(self) -> Any:
        if self._credentials is None:
            if self._cred_lock is None:
                self._cred_lock = asyncio.Lock()
            async with self._cred_lock:
                if self._credentials is None:
                    session = self._bc.session.get_session()
                    # may touch files or instance metadata: keep it off the event loop
                    creds = await asyncio.to_thread(session.get_credentials)
                    if creds is None:
                        raise ConfigError(
                            "No AWS credentials found for Bedrock; set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run on a machine with an "
                            "IAM role (botocore's standard credential chain)."
                        )
                    self._credentials = creds
        return self._credentials

    def sign_with(self, credentials: Any, request: PreparedRequest) -> dict[str, str]:
        """SigV4 headers for ``request`` with ``credentials`` (pure; used per attempt)."""
        frozen = (
            credentials.get_frozen_credentials()
            if hasattr(credentials, "get_frozen_credentials")
            else credentials
        )
        aws_req = self._bc.awsrequest.AWSRequest(
            method="POST", url=request.url, data=request.body, headers=dict(request.headers)
        )
        self._bc.auth.SigV4Auth(frozen, "bedrock", self.region).add_auth(aws_req)
        return dict(aws_req.headers.items())

    async def sign(self, request: PreparedRequest) -> dict[str, str]:
        creds = await self._get_credentials()
        return self.sign_with(creds, request)

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


__all__ = ["BEDROCK_ANTHROPIC_VERSION", "BedrockProvider", "default_endpoint", "invoke_url"]
