"""The default :class:`~deskpilot.transport.Transport`: aiohttp, one pooled session per loop.

Every aiohttp, socket and asyncio-timeout exception is translated here, in
:func:`translate_error`, and nowhere else: callers see only
:class:`~deskpilot.errors.TransportTimeoutError` and :class:`~deskpilot.errors.TransportError`
(aiohttp "Client exceptions" reference, https://docs.aiohttp.org/en/stable/client_reference.html).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncGenerator

import aiohttp
from yarl import URL

from ..errors import TransportError, TransportTimeoutError
from ..transport import HTTPRequest, HTTPResponse

# aiohttp warns (ResourceWarning) that a bytes body over 1 MiB "might lock the event loop" and
# asks for a file-like object; screenshot-heavy agent requests pass that size routinely.
LARGE_BODY_BYTES = 1 << 20


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ fails (half-built) still gets a message
        return ""


def translate_error(exc: BaseException, request: HTTPRequest) -> TransportError:
    """The deskpilot exception for an aiohttp / socket / timeout exception of ``request``.

    Timeouts of any layer (aiohttp's ``ServerTimeoutError``, ``ConnectionTimeoutError``,
    the total timeout's ``TimeoutError``) become :class:`TransportTimeoutError`; everything
    else a :class:`TransportError` whose message says what happened in words.
    """
    host = URL(request.url, encoded=True).host or request.url
    if isinstance(exc, TimeoutError):
        return TransportTimeoutError(
            f"no complete answer from {host} within {request.timeout_s:g} s"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = getattr(exc, "_os_error", None)
        reason = getattr(os_error, "strerror", None) or _text(os_error) if os_error else _text(exc)
        return TransportError(f"could not connect to {host}: {reason or type(exc).__name__}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError(f"{host} closed the connection before answering")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError(f"the answer from {host} was cut off before its end")
    if isinstance(exc, aiohttp.InvalidURL):
        return TransportError(f"the URL {request.url!r} is not valid")
    text = _text(exc)
    return TransportError(f"{type(exc).__name__} talking to {host}" + (f": {text}" if text else ""))


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Closes ``session`` when the event loop shuts its async generators down (the seed never
    closes its client before ``asyncio.run()`` returns)."""
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


class AiohttpTransport:
    """Sends requests with one ``aiohttp.ClientSession`` per event loop.

    Args:
        max_connections: the connection pool's size (open sockets at once).
        dns_cache_s: seconds a resolved host name is reused.

    The session is opened on the first :meth:`send` in a loop and reopened when a later call
    runs in another loop (``process_prompts_sync`` runs one loop per call). :meth:`aclose`
    closes it; a later :meth:`send` opens a new one.
    """

    def __init__(self, *, max_connections: int = 100, dns_cache_s: float = 300.0) -> None:
        self.max_connections = max_connections
        self.dns_cache_s = dns_cache_s
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}

    def __repr__(self) -> str:
        return f"AiohttpTransport(max_connections={self.max_connections})"

    async def _open(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, ttl_dns_cache=int(self.dns_cache_s)
        )
        session = aiohttp.ClientSession(connector=connector)
        self._session, self._loop = session, loop
        guard = _close_with_loop(session)
        await guard.__anext__()
        self._guard = guard
        return session

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send ``request`` and read the whole answer (see :class:`~deskpilot.transport.Transport`).

        Raises:
            TransportTimeoutError: no complete answer within ``request.timeout_s``.
            TransportError: no complete answer (refused, reset, cut off, bad URL).
        """
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or self._loop is not loop or session.closed:
            session = await self._open(loop)
        timeout = self._timeouts.get(request.timeout_s)
        if timeout is None:
            timeout = self._timeouts[request.timeout_s] = aiohttp.ClientTimeout(
                total=request.timeout_s
            )
        url = self._urls.get(request.url)
        if url is None:
            url = self._urls[request.url] = URL(request.url, encoded=True)
        body = request.body
        data = io.BytesIO(body) if len(body) > LARGE_BODY_BYTES else body
        try:
            async with session.request(
                request.method, url, data=data, headers=request.headers, timeout=timeout
            ) as resp:
                payload = await resp.read()
                return HTTPResponse(resp.status, resp.headers, payload)
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise translate_error(exc, request) from exc

    async def aclose(self) -> None:
        """Close the pooled session (idempotent)."""
        session, self._session = self._session, None
        guard, self._guard = self._guard, None
        loop, self._loop = self._loop, None
        if guard is not None and loop is asyncio.get_running_loop():
            await guard.aclose()
        if session is not None and not session.closed:
            await session.close()


__all__ = ["LARGE_BODY_BYTES", "AiohttpTransport", "translate_error"]
