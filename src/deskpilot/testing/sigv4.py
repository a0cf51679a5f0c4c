"""Verification of AWS Signature Version 4 on received Bedrock requests, with botocore.

The fake server recomputes the signature the way AWS does: it rebuilds the request from the
method, the raw (still percent-encoded) path and query, the headers named in
``SignedHeaders`` and the body bytes, signs it with :class:`botocore.auth.SigV4Auth` at the
``X-Amz-Date`` of the request, and compares. Error texts and types are Bedrock's
(``x-amzn-ErrorType``), from the AWS "Signature Version 4" and Bedrock error docs.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import MissingDependencyError

_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]+)"
)
MAX_SKEW_S = 300.0

MISMATCH_TEXT = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation "
    "for details."
)


@dataclass(frozen=True, slots=True)
class SigV4Failure:
    """Why a request was refused: HTTP status, ``x-amzn-ErrorType`` and message."""

    status: int
    error_type: str
    message: str


def verify_sigv4(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    service: str = "bedrock",
    region: str | None = None,
    now: datetime | None = None,
) -> SigV4Failure | None:
    """Check a received request's SigV4 ``Authorization`` header.

    Args:
        method: HTTP method as received.
        url: ``http://host:port`` + the raw path and query exactly as received.
        headers: received headers, lower-case names.
        body: the raw body bytes.
        access_key / secret_key: the credentials the server expects.
        service: expected signing service (``bedrock``).
        region: expected region, or None to accept the one in the credential scope.
        now: current UTC time (for the skew check); defaults to the system clock.

    Returns:
        None when the signature is valid, else a :class:`SigV4Failure` with Bedrock's status
        (403) and error type: ``MissingAuthenticationTokenException``,
        ``UnrecognizedClientException``, ``InvalidSignatureException``.

    Raises:
        MissingDependencyError: botocore is not installed (``pip install deskpilot[bedrock]``).
    """
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError as exc:  # pragma: no cover - botocore is a dev dependency
        raise MissingDependencyError(
            "Checking Bedrock signatures needs botocore: pip install 'deskpilot[bedrock]'."
        ) from exc

    auth = headers.get("authorization", "")
    m = _AUTH_RE.match(auth.strip())
    if not m:
        return SigV4Failure(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
    cred_parts = m.group("cred").split("/")
    if len(cred_parts) != 5 or cred_parts[4] != "aws4_request":
        return SigV4Failure(
            403, "IncompleteSignatureException", f"Credential is malformed: {m.group('cred')}."
        )
    akid, date, scope_region, scope_service, _ = cred_parts
    if akid != access_key:
        return SigV4Failure(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if scope_service != service or (region is not None and scope_region != region):
        return SigV4Failure(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service '{service}'"
            + (f" in region '{region}'" if region else "")
            + f", not '{scope_region}/{scope_service}'.",
        )
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return SigV4Failure(
            403, "IncompleteSignatureException", "Authorization header requires X-Amz-Date."
        )
    if amz_date[:8] != date:
        return SigV4Failure(
            403,
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            "from HTTP.",
        )
    current = now or datetime.now(UTC)
    if abs((current - signed_at).total_seconds()) > MAX_SKEW_S:
        return SigV4Failure(
            403,
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{current.strftime('%Y%m%dT%H%M%SZ')} (5 minutes of skew allowed).",
        )
    signed_names = m.group("signed").split(";")
    missing = [n for n in signed_names if n not in headers]
    if missing or "host" not in signed_names:
        return SigV4Failure(
            403,
            "InvalidSignatureException",
            "Signed headers must include host and be present in the request"
            + (f"; missing: {', '.join(missing)}." if missing else "."),
        )
    signed_headers: dict[str, Any] = {n: headers[n] for n in signed_names}
    request = AWSRequest(method=method, url=url, headers=signed_headers, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(
        Credentials(access_key, secret_key, headers.get("x-amz-security-token")),
        scope_service,
        scope_region,
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, m.group("sig")):
        return SigV4Failure(403, "InvalidSignatureException", MISMATCH_TEXT)
    return None


__all__ = ["MISMATCH_TEXT", "SigV4Failure", "verify_sigv4"]
