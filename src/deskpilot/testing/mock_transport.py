"""``MockTransport``: a :class:`~deskpilot.transport.Transport` that calls a function.

Pass it to ``LLMClient(..., transport=MockTransport(handler))`` and every request the client
would send goes to ``handler(request) -> HTTPResponse`` (sync or async) instead of the
network, after the provider built and signed it (the same bytes, headers and URL the
network would get). httpx's ``MockTransport`` is the model
(https://www.python-httpx.org/advanced/transports/#mock-transports).

Faults are the handler's to make: ``await asyncio.sleep(...)`` past ``request.timeout_s`` is a
timeout (:class:`~deskpilot.errors.TransportTimeoutError`), raising
:class:`~deskpilot.errors.TransportError` is a dropped connection. A
:class:`~deskpilot.testing.FakeModel`'s ``handle`` is a ready-made handler that speaks the
three wire formats (``MockTransport(FakeModel().handle)``, or ``FakeModel().transport()``).

Example::

    def handler(request: HTTPRequest) -> HTTPResponse:
        return json_response({"type": "error", "error": {"type": "overloaded_error",
                                                         "message": "Overloaded"}}, 529)

    client = LLMClient("claude-4-sonnet", api_key="sk-test", transport=MockTransport(handler))
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..errors import TransportTimeoutError
from ..transport import HTTPRequest, HTTPResponse

Handler = Callable[[HTTPRequest], HTTPResponse | Awaitable[HTTPResponse]]


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> HTTPResponse:
    """An :class:`HTTPResponse` whose body is ``body`` as JSON (``content-type:
    application/json`` added unless ``headers`` set one)."""
    h = {"content-type": "application/json", **(headers or {})}
    return HTTPResponse(status, h, json.dumps(body).encode())


class MockTransport:
    """Answers every request with ``handler(request)`` (a function or a coroutine function).

    Args:
        handler: called once per attempt with the :class:`HTTPRequest`; returns an
            :class:`HTTPResponse`. It may raise :class:`~deskpilot.errors.TransportError`
            to act as a failed connection.

    Attributes:
        requests: every request sent, in order.

    Raises (from :meth:`send`):
        TransportTimeoutError: the handler took longer than ``request.timeout_s``.
        TypeError: the handler returned something that is not an :class:`HTTPResponse`.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HTTPRequest] = []

    def __repr__(self) -> str:
        return f"MockTransport({getattr(self.handler, '__qualname__', self.handler)!r})"

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Record ``request`` and return the handler's answer, within ``request.timeout_s``."""
        self.requests.append(request)
        result = self.handler(request)
        if inspect.isawaitable(result):
            try:
                async with asyncio.timeout(request.timeout_s):
                    result = await result
            except TimeoutError as exc:
                raise TransportTimeoutError(
                    f"no complete answer within {request.timeout_s:g} s"
                ) from exc
        if not isinstance(result, HTTPResponse):
            raise TypeError(
                f"MockTransport's handler returned {type(result).__name__}; return an "
                "HTTPResponse (e.g. deskpilot.testing.json_response(body, status))."
            )
        return result


__all__ = ["Handler", "MockTransport", "json_response"]
