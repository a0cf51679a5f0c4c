"""Claude on Google Vertex AI (``POST {base}/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:rawPredict``).

The wire format of the Anthropic SDK's Vertex client (https://github.com/anthropics/anthropic-sdk-python,
``src/anthropic/lib/vertex/_client.py``) and of Anthropic's "Vertex AI" page
(https://platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai):

* URL: the model id (``claude-sonnet-4-5@20250929``) goes in the path, ``:rawPredict``
  (``:streamRawPredict`` for streams, which deskpilot does not send);
* base URL: ``https://{region}-aiplatform.googleapis.com/v1``, ``https://aiplatform.googleapis.com/v1``
  for ``global``, ``https://aiplatform.{us|eu}.rep.googleapis.com/v1`` for the multi-regions;
  ``ANTHROPIC_VERTEX_BASE_URL`` / ``base_url=`` override it;
* body: the Messages API fields without ``model``, plus ``anthropic_version: "vertex-2023-10-16"``;
* beta flags: the ``anthropic-beta`` header, as the SDK sends them; a flag named in
  ``body_betas`` goes in the body's ``anthropic_beta`` list instead (Vertex has rejected some
  flags in the header and wanted them in the body, e.g. ``context-1m-2025-08-07``);
* auth: ``Authorization: Bearer <OAuth access token>`` from Google credentials: those given,
  else the service-account / user file of ``GOOGLE_APPLICATION_CREDENTIALS``, else Application
  Default Credentials (``google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])``);
  resolving and refreshing them does file and network I/O, so it runs in a worker thread, once
  for all concurrent requests, whenever the token is missing or expired;
* errors: Anthropic's ``{"type": "error", "error": {...}}`` passed through (529
  ``overloaded_error``), or Google's ``{"error": {"code", "message", "status"}}`` whose
  canonical ``status`` (https://cloud.google.com/apis/design/errors) maps onto the Messages
  API error types: ``RESOURCE_EXHAUSTED`` (429, quota) is ``rate_limit_error``.

google-auth is the optional extra ``deskpilot[vertex]``; its exceptions are translated here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError, CredentialsError, MissingDependencyError, TransportError
from ..models import ModelSpec
from ..prompt import Conversation
from ..transport import HTTPRequest
from .anthropic import build_messages_body, parse_messages_response, status_error_type
from .base import ErrorInfo, ParsedResponse, Provider, RequestOptions, ToolSet

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PROJECT_PENDING = "{project}"
"""Stands for the project in a URL built before ADC named it; :meth:`VertexProvider.sign`
fills it in (braces never appear in a Google Cloud project id)."""

GOOGLE_STATUS_TYPES: dict[str, str] = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "UNAVAILABLE": "overloaded_error",
    "DEADLINE_EXCEEDED": "timeout_error",
    "INTERNAL": "api_error",
    "UNKNOWN": "api_error",
    "DATA_LOSS": "api_error",
}
"""Google's canonical error codes (https://cloud.google.com/apis/design/errors) -> the
Messages API error ``type`` of the same meaning."""


def default_base_url(region: str) -> str:
    """The Vertex AI endpoint of ``region``, with ``/v1`` (the SDK's rule).

    ``"global"`` -> ``https://aiplatform.googleapis.com/v1``; ``"us"`` / ``"eu"`` ->
    ``https://aiplatform.{us|eu}.rep.googleapis.com/v1``; any other region ``r`` ->
    ``https://{r}-aiplatform.googleapis.com/v1``.
    """
    if region == "global":
        return "https://aiplatform.googleapis.com/v1"
    if region in ("us", "eu"):
        return f"https://aiplatform.{region}.rep.googleapis.com/v1"
    return f"https://{region}-aiplatform.googleapis.com/v1"


def predict_url(base_url: str, project: str, region: str, model_id: str) -> str:
    """``{base}/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict``
    (each segment percent-encoded; ``@`` of a dated model id kept as is)."""
    p, r, m = (quote(v, safe="@{}") for v in (project, region, model_id))
    return (
        f"{base_url.rstrip('/')}/projects/{p}/locations/{r}/publishers/anthropic/models/"
        f"{m}:rawPredict"
    )


def parse_vertex_error(status: int, data: Any) -> ErrorInfo:
    """A Vertex error answer -> :class:`ErrorInfo`: Anthropic's shape passed through, or
    Google's ``{"error": {"code", "message", "status"}}`` (possibly inside a one-item list),
    whose ``status`` picks the type; else the HTTP status's conventional type."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            if err.get("type"):
                return ErrorInfo(str(err["type"]), message)
            google = err.get("status")
            if isinstance(google, str) and google:
                etype = GOOGLE_STATUS_TYPES.get(google) or status_error_type(status)
                return ErrorInfo(etype, f"{google}: {message}" if message else google)
            return ErrorInfo(status_error_type(status), message)
        if "message" in data:
            return ErrorInfo(status_error_type(status), str(data["message"]))
    text = data if isinstance(data, str) else ""
    return ErrorInfo(status_error_type(status), text[:500])


def _google_auth() -> Any:
    try:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests
    except ImportError as exc:
        raise MissingDependencyError(
            "Vertex AI needs google-auth for its access tokens; install it with "
            "`pip install 'deskpilot[vertex]'` (or `pip install 'google-auth[requests]'`)."
        ) from exc
    return google.auth


class VertexProvider(Provider):
    """Claude on Vertex AI (see the module docstring).

    Args:
        region: the Vertex location (``us-east5``, ``europe-west1``, ``global``, ``us``, ``eu``).
        project_id: the Google Cloud project (None: the credentials' project, read with them).
        base_url: the endpoint with ``/v1`` (default: :func:`default_base_url` of ``region``).
        credentials: ``google.auth.credentials.Credentials`` (refreshed when expired);
            default: ``credentials_file``, else Application Default Credentials.
        credentials_file: a service-account or authorized-user JSON file
            (``GOOGLE_APPLICATION_CREDENTIALS``), loaded with the cloud-platform scope; a
            file of another type (external account, impersonation) is left to ADC, which
            reads the variable from the process environment.
        body_betas: beta flags sent in the body's ``anthropic_beta`` instead of the
            ``anthropic-beta`` header.

    Raises:
        ConfigError: an empty region.
        MissingDependencyError: google-auth is not installed (at construction).
    """

    name = "vertex"

    def __init__(
        self,
        region: str,
        project_id: str | None = None,
        base_url: str | None = None,
        credentials: Any = None,
        *,
        credentials_file: str | None = None,
        body_betas: Collection[str] = (),
    ) -> None:
        if not region:
            raise ConfigError(
                "Vertex AI needs a region: pass region='us-east5' (or 'global') or set "
                "CLOUD_ML_REGION."
            )
        self._ga = _google_auth()
        self.region = region
        self.project_id = project_id or None
        self.base_url = (base_url or default_base_url(region)).rstrip("/")
        self.credentials_file = credentials_file
        self.body_betas = frozenset(body_betas)
        self._credentials = credentials
        self._lock: asyncio.Lock | None = None
        self._tokens: list[str] = []
        self._headers = {"content-type": "application/json"}
        self._beta_headers: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        return (
            f"VertexProvider(region={self.region!r}, project_id={self.project_id!r}, "
            f"base_url={self.base_url!r})"
        )

    def url(self, spec: ModelSpec) -> str:
        base = spec.base_url or self.base_url
        return predict_url(base, self.project_id or PROJECT_PENDING, self.region, spec.model_id)

    def headers(self, betas: list[str]) -> dict[str, str]:
        header = [b for b in betas if b not in self.body_betas]
        if not header:
            return self._headers
        key = ",".join(header)
        h = self._beta_headers.get(key)
        if h is None:
            h = self._beta_headers[key] = {**self._headers, "anthropic-beta": key}
        return h

    def build_body(
        self, spec: ModelSpec, conv: Conversation, opts: RequestOptions, toolset: ToolSet
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"anthropic_version": VERTEX_ANTHROPIC_VERSION}
        in_body = [b for b in toolset.betas if b in self.body_betas]
        if in_body:
            body["anthropic_beta"] = in_body
        body.update(build_messages_body(conv, opts, toolset))
        body.pop("model", None)
        return body

    def secrets(self) -> tuple[str, ...]:
        """The access tokens sent so far and the refresh token / client secret of user
        credentials, for redaction."""
        values = list(self._tokens)
        for attr in ("refresh_token", "client_secret"):
            v = getattr(self._credentials, attr, None)
            if isinstance(v, str) and v and v not in values:
                values.append(v)
        return tuple(values)

    # --- credentials (blocking parts run in a worker thread) -------------------------------
    def _from_file(self, path: str) -> tuple[Any, str | None] | None:
        """A service-account or authorized-user file's credentials and project (None for
        another type, left to ADC). Only these two types are built from the file's fields,
        with google-auth's type-specific loaders, as its docs ask of files from elsewhere.

        Raises:
            CredentialsError: the file cannot be read or is not a JSON object.
        """
        from google.oauth2 import credentials as user
        from google.oauth2 import service_account

        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError) as exc:
            raise CredentialsError(
                f"GOOGLE_APPLICATION_CREDENTIALS names {path!r}, which cannot be read as a "
                f"JSON credentials file ({type(exc).__name__}: {exc})."
            ) from exc
        if not isinstance(info, dict):
            raise CredentialsError(f"The credentials file {path!r} is not a JSON object.")
        scopes = [CLOUD_PLATFORM_SCOPE]
        if info.get("type") == "service_account":
            creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
            return creds, info.get("project_id")
        if info.get("type") == "authorized_user":
            return user.Credentials.from_authorized_user_info(info, scopes=scopes), None
        return None

    def _load(self) -> tuple[Any, str | None]:
        """Credentials and their project: the file, else ADC (blocking: files, metadata)."""
        ga = self._ga
        try:
            loaded = self._from_file(self.credentials_file) if self.credentials_file else None
            return loaded or ga.default(scopes=[CLOUD_PLATFORM_SCOPE])
        except CredentialsError:
            raise
        except (ga.exceptions.GoogleAuthError, ValueError) as exc:
            raise CredentialsError(
                f"Google credentials for Vertex AI could not be loaded ({type(exc).__name__}: "
                f"{exc}); set GOOGLE_APPLICATION_CREDENTIALS to a service-account file or run "
                "`gcloud auth application-default login`."
            ) from exc

    def _refresh(self, credentials: Any) -> None:
        """``credentials.refresh(Request())`` (blocking: a call to the token endpoint)."""
        ga = self._ga
        try:
            credentials.refresh(ga.transport.requests.Request())
        except ga.exceptions.TransportError as exc:
            raise TransportError(f"the Google token endpoint could not be reached: {exc}") from exc
        except ga.exceptions.GoogleAuthError as exc:
            raise CredentialsError(
                f"Google credentials for Vertex AI could not be refreshed ({type(exc).__name__}: "
                f"{exc}); check GOOGLE_APPLICATION_CREDENTIALS or run "
                "`gcloud auth application-default login`."
            ) from exc

    async def access_token(self) -> str:
        """A valid access token: credentials loaded on first use and refreshed when missing
        or expired, in a worker thread, once for all concurrent callers.

        Raises:
            CredentialsError: no credentials, their refresh was refused, or no project.
            TransportError: the token endpoint could not be reached.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._credentials is None:
                creds, project = await asyncio.to_thread(self._load)
                self._credentials = creds
                self.project_id = self.project_id or project
            creds = self._credentials
            if not getattr(creds, "valid", False) or not creds.token:
                await asyncio.to_thread(self._refresh, creds)
            token = creds.token
        if not isinstance(token, str) or not token:
            raise CredentialsError("The Google credentials gave no access token for Vertex AI.")
        if token not in self._tokens:
            self._tokens.append(token)
            del self._tokens[:-4]  # the last few tokens: an old one may still be echoed
        return token

    async def sign(self, request: HTTPRequest) -> HTTPRequest:
        """``request`` with ``Authorization: Bearer`` and the project filled in.

        Raises:
            CredentialsError: no credentials or no project (see :meth:`access_token`).
            TransportError: the token endpoint could not be reached.
        """
        token = await self.access_token()
        url = request.url
        if PROJECT_PENDING in url:
            if not self.project_id:
                raise CredentialsError(
                    "No Google Cloud project for Vertex AI: pass project_id=... or set "
                    "ANTHROPIC_VERTEX_PROJECT_ID (the credentials name none)."
                )
            url = url.replace(PROJECT_PENDING, quote(self.project_id, safe=""), 1)
        headers = {**request.headers, "authorization": f"Bearer {token}"}
        return dataclasses.replace(request, url=url, headers=headers)

    def parse(self, data: dict[str, Any], headers: Mapping[str, str]) -> ParsedResponse:
        return parse_messages_response(data, headers.get("request-id"))

    def parse_error(self, status: int, data: Any, headers: Mapping[str, str]) -> ErrorInfo:
        return parse_vertex_error(status, data)


__all__ = [
    "CLOUD_PLATFORM_SCOPE",
    "GOOGLE_STATUS_TYPES",
    "PROJECT_PENDING",
    "VERTEX_ANTHROPIC_VERSION",
    "VertexProvider",
    "default_base_url",
    "parse_vertex_error",
    "predict_url",
]
