"""The fake model's Vertex AI route and Google token endpoint.

``POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict``
answers like Vertex AI's Claude endpoint (Anthropic's "Vertex AI" page,
https://platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai): the model comes
from the URL, the body must carry ``anthropic_version: "vertex-2023-10-16"`` and no ``model``
(the fake refuses one so that a client that forgets to remove it is caught), beta flags may
come in the ``anthropic-beta`` header or the body's ``anthropic_beta``, and the request must
carry ``Authorization: Bearer`` with a token the fake knows. Errors take Vertex's shapes:
Anthropic's body passed through (529 ``overloaded_error``), Google's
``{"error": {"code", "message", "status"}}`` for authentication and quota (429
``RESOURCE_EXHAUSTED``, Google "Error code 429",
https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429).

``POST /token`` is a Google OAuth 2.0 token endpoint for service accounts (the JWT bearer
grant of RFC 7523, as google-auth sends it: an RS256 JWT whose ``iss`` is the account's
email, ``aud`` ``https://oauth2.googleapis.com/token`` and ``scope`` the requested scopes).
:meth:`VertexAuth.write_service_account` writes a service-account JSON with a fresh RSA key
(made with ``cryptography``, google-auth's own dependency) whose ``token_uri`` points here;
the endpoint checks the JWT's signature with that key and issues access tokens that expire.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .fake_checks import check_tool_types
from .wire import FakeReply, error_reply

VERTEX_VERSION = "vertex-2023-10-16"
FAKE_VERTEX_TOKEN = "ya29.fake-deskpilot-vertex-access-token"
"""A static access token every fake accepts (for ``google.oauth2.credentials.Credentials``)."""
FAKE_VERTEX_PROJECT = "deskpilot-fake-project"
FAKE_VERTEX_REGION = "us-east5"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_PATH = "/token"

VERTEX_PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/publishers/anthropic/"
    r"models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)$"
)

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}
QUOTA_TEXT = (
    "Quota exceeded for aiplatform.googleapis.com/online_prediction_input_tokens_per_minute_"
    "per_base_model with base model: anthropic-claude. Please submit a quota increase request."
)


def google_error(status: int, message: str) -> dict[str, Any]:
    """``{"error": {"code", "message", "status"}}``, Google's error body."""
    return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "")}}


def vertex_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic-shaped error body as Vertex sends it: Google's shape for 401, 403 and 429
    (a quota message for 429), Anthropic's passed through otherwise."""
    if status == 429:
        return google_error(429, QUOTA_TEXT)
    if status in (401, 403):
        return google_error(status, str(body.get("error", {}).get("message", "")))
    return body


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def validate_vertex(
    headers: dict[str, str], body: Any, model: str, reject_tool_types: Collection[str]
) -> FakeReply | None:
    """The 400 Vertex would answer ``body`` with (see the module docstring), or None."""
    if not isinstance(body, dict):
        return error_reply(400, message="There was an error parsing the body: not a JSON object.")
    if body.get("anthropic_version") != VERTEX_VERSION:
        return error_reply(400, message=f"anthropic_version: Input should be '{VERTEX_VERSION}'")
    if "model" in body:
        return error_reply(400, message="model: the model is given in the URL, not the body")
    if not isinstance(body.get("max_tokens"), int):
        return error_reply(400, message="max_tokens: Field required")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return error_reply(400, message="messages: Field required (at least one message)")
    if body.get("stream"):
        return error_reply(400, message="stream: the fake model server does not stream.")
    betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()]
    in_body = body.get("anthropic_beta") or []
    if not isinstance(in_body, list):
        return error_reply(400, message="anthropic_beta: Input should be a valid list")
    return check_tool_types(body, [*betas, *map(str, in_body)], model, reject_tool_types)


@dataclass(slots=True)
class VertexAuth:
    """The fake's Google side: service-account keys, issued access tokens, the bearer check.

    Attributes:
        static_tokens: access tokens always accepted (``FAKE_VERTEX_TOKEN`` by default).
        expires_in_s: the ``expires_in`` (seconds) of issued tokens; the route refuses a
            token after it.
        token_delay_s: seconds the token endpoint waits before answering.
        token_requests: the ``iss`` of every token request, in order (refused ones too).
    """

    static_tokens: set[str] = field(default_factory=lambda: {FAKE_VERTEX_TOKEN})
    expires_in_s: int = 3600
    token_delay_s: float = 0.0
    token_requests: list[str] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)
    _keys: dict[str, Any] = field(default_factory=dict)

    def write_service_account(
        self,
        directory: str | os.PathLike[str],
        token_uri: str,
        project_id: str = FAKE_VERTEX_PROJECT,
    ) -> Path:
        """Write ``service-account.json`` (a fresh 2048-bit RSA key; mode 0600) into
        ``directory`` and accept tokens signed with its key; returns the file's path."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"deskpilot-{secrets.token_hex(4)}@{project_id}.iam.gserviceaccount.com"
        self._keys[email] = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "token_uri": token_uri,
            "universe_domain": "googleapis.com",
        }
        path = Path(directory) / "service-account.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(info), encoding="utf-8")
        return path

    def check_bearer(self, headers: dict[str, str]) -> FakeReply | None:
        """The 401 for a request without a known, unexpired bearer token (else None)."""
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if token in self.static_tokens:
            return None
        expires = self.issued.get(token)
        if expires is not None and time.time() < expires:
            return None
        why = "expired" if expires is not None else "missing or invalid"
        return error_reply(
            401,
            message=f"Request had invalid authentication credentials ({why} OAuth 2 access "
            "token). Expected OAuth 2 access token, login cookie or other valid authentication "
            "credential.",
        )

    def token_reply(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Answer a token request (form-encoded JWT bearer grant): status and JSON body."""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        try:
            head_b64, claims_b64, sig_b64 = form.get("assertion", "").split(".")
            header = json.loads(_b64url(head_b64))
            claims = json.loads(_b64url(claims_b64))
            signature = _b64url(sig_b64)
        except ValueError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        self.token_requests.append(str(claims.get("iss")))
        problem = self._check_grant(form, header, claims)
        if problem is None:
            problem = self._check_signature(f"{head_b64}.{claims_b64}", signature, claims)
        if problem is not None:
            return 400, {"error": "invalid_grant", "error_description": problem}
        token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        self.issued[token] = time.time() + self.expires_in_s
        return 200, {"access_token": token, "expires_in": self.expires_in_s, "token_type": "Bearer"}

    def _check_grant(self, form: dict[str, str], header: Any, claims: Any) -> str | None:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return "Invalid grant_type."
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return "Invalid JWT: alg must be RS256."
        if not isinstance(claims, dict) or claims.get("iss") not in self._keys:
            return "Invalid JWT: unknown issuer."
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            return "Invalid JWT: aud must be the token endpoint."
        if CLOUD_PLATFORM_SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid JWT: the cloud-platform scope is missing."
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            return "Invalid JWT Signature: the assertion has expired."
        return None

    def _check_signature(self, signed: str, signature: bytes, claims: dict[str, Any]) -> str | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            self._keys[claims["iss"]].verify(
                signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        return None


__all__ = [
    "FAKE_VERTEX_PROJECT",
    "FAKE_VERTEX_REGION",
    "FAKE_VERTEX_TOKEN",
    "TOKEN_PATH",
    "VERTEX_PATH",
    "VertexAuth",
    "google_error",
    "validate_vertex",
    "vertex_error",
]
