"""The HTTP seam: one request record, one response record, one async ``send``.

A provider (:mod:`deskpilot.providers`) turns a conversation into an :class:`HTTPRequest`
(signed when its platform needs it, e.g. Bedrock SigV4); the client hands it to a
:class:`Transport` and gives the :class:`HTTPResponse` back to the provider to parse. The
default transport is :class:`deskpilot.client.aiohttp_transport.AiohttpTransport`; tests use
:class:`deskpilot.testing.MockTransport`, which calls a function instead of the network.
The design follows httpx's transports (https://www.python-httpx.org/advanced/transports/).

A transport's contract:

* ``send`` returns only once the status, the headers and the WHOLE body have arrived, within
  ``request.timeout_s`` seconds (connect to last byte);
* it raises :class:`~deskpilot.errors.TransportTimeoutError` when that time runs out and
  :class:`~deskpilot.errors.TransportError` when no complete answer came (refused, reset, cut
  off), translating its own library's exceptions into those two (``raise ... from exc``);
* any HTTP status is an answer, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """One HTTP request, ready to send.

    Attributes:
        method: ``"POST"`` for every model API call.
        url: the absolute URL, already percent-encoded (Bedrock's ``%3A`` in model ids is
            sent as is).
        headers: the request headers (they carry the API key or the signature: never log
            them; the repr leaves them out).
        body: the encoded body (JSON bytes).
        timeout_s: seconds allowed from connect to the last byte of the answer.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    timeout_s: float = 120.0

    def __repr__(self) -> str:
        return f"HTTPRequest({self.method} {self.url}, {len(self.body)} bytes)"


@dataclass(frozen=True, slots=True, init=False)
class HTTPResponse:
    """One complete HTTP answer.

    Attributes:
        status: the HTTP status code.
        headers: response headers with case-insensitive lookup (``headers["Request-Id"]``
            and ``headers["request-id"]`` are the same).
        body: the whole body.
    """

    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes

    def __init__(
        self, status: int, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        if not isinstance(headers, CIMultiDictProxy | CIMultiDict):
            headers = CIMultiDict(headers or {})
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "body", body)

    def __repr__(self) -> str:
        return f"HTTPResponse({self.status}, {len(self.body)} bytes)"


class Transport(Protocol):
    """Sends one :class:`HTTPRequest` and returns its :class:`HTTPResponse` (see the module
    docstring for the contract).

    Raises:
        TransportTimeoutError: no complete answer within ``request.timeout_s``.
        TransportError: no complete answer (connection refused or reset, body cut off).
    """

    async def send(self, request: HTTPRequest) -> HTTPResponse: ...


__all__ = ["HTTPRequest", "HTTPResponse", "Transport"]
