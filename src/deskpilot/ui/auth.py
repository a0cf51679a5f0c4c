"""The web app's access token: Jupyter-style URL token, cookie, bearer header, Origin checks.

Every HTTP route and WebSocket of ``deskpilot ui`` requires the token (``docs/ui.md``,
"Security"):

- the first page load carries it in the URL (``/?token=...``): the answer sets the cookie
  :data:`COOKIE` (``HttpOnly``, ``SameSite=Strict``, path ``/``) and redirects to the same URL
  without the token (so it does not stay in the address bar or the history);
- later requests carry the cookie, or ``Authorization: Bearer <token>`` (scripts, tests);
- anything else is answered ``401`` with a one-line sentence (JSON ``{"error": ...}`` for
  ``/api/...``), WebSocket upgrades included;
- a request that changes state (any method but GET/HEAD/OPTIONS) or upgrades to a WebSocket
  and carries an ``Origin`` header must come from the app's own origin (scheme + the
  ``Host`` it was sent to), else ``403``: another page on the same machine cannot drive the
  app with the user's cookie (cross-site request forgery, cross-site WebSocket hijacking).
  A cookie-authenticated WebSocket upgrade without ``Origin`` is refused too (browsers always
  send one).

Tokens are compared with :func:`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

__all__ = [
    "COOKIE",
    "TOKEN_KEY",
    "check_origin",
    "new_token",
    "request_token",
    "token_middleware",
]

COOKIE = "deskpilot_ui_token"
"""The cookie name carrying the token after the first load."""

TOKEN_KEY: web.AppKey[str] = web.AppKey("deskpilot_ui_token", str)
"""Where the app keeps its token (``app[TOKEN_KEY]``)."""

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """A fresh random token: 48 hex characters (24 bytes from :mod:`secrets`)."""
    return secrets.token_hex(24)


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def request_token(request: web.Request) -> tuple[str | None, str]:
    """The token a request carries and how: ``(token, "bearer" | "query" | "cookie" | "")``
    (the first of the three found; None and ``""`` when there is none)."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), "bearer"
    if "token" in request.query:
        return request.query["token"], "query"
    cookie = request.cookies.get(COOKIE)
    if cookie is not None:
        return cookie, "cookie"
    return None, ""


def check_origin(request: web.Request, *, required: bool = False) -> str | None:
    """Why ``request``'s ``Origin`` is refused, or None when it is acceptable.

    The origin must be ``<scheme>://<Host>`` of the request itself (the page the app served).

    Args:
        request: the request (its ``Origin`` and ``Host`` headers).
        required: refuse a request without ``Origin`` (cookie-authenticated WebSockets).
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return "the request has no Origin header" if required else None
    host = request.headers.get("Host", "")
    parts = urlsplit(origin)
    if origin == "null" or parts.scheme not in ("http", "https") or not host:
        return f"the Origin {origin[:80]!r} is not this app's"
    if parts.netloc.lower() != host.lower():
        return f"the Origin {origin[:80]!r} is not this app's (http://{host[:80]})"
    return None


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _refuse(request: web.Request, status: int, sentence: str) -> web.Response:
    if _is_api(request):
        return web.json_response({"error": sentence}, status=status)
    return web.Response(status=status, text=sentence + "\n", content_type="text/plain")


@web.middleware
async def token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The token and Origin rules of the module docstring, for every route of the app."""
    expected = request.app[TOKEN_KEY]
    token, how = request_token(request)
    if not _same(token, expected):
        what = "a wrong token" if token is not None else "no token"
        return _refuse(
            request,
            401,
            f"This deskpilot ui needs its access token, and the request had {what}: open the "
            "URL `deskpilot ui` printed (with ?token=...) or send the header "
            "'Authorization: Bearer TOKEN'.",
        )
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    if upgrade or request.method not in _SAFE_METHODS:
        why = check_origin(request, required=upgrade and how == "cookie")
        if why is not None:
            return _refuse(request, 403, f"Refused: {why}.")
    if how == "query" and request.method == "GET" and not upgrade and not _is_api(request):
        # first load: keep the token in a cookie and drop it from the address bar
        query = {k: v for k, v in request.query.items() if k != "token"}
        target = request.rel_url.with_query(query) if query else request.rel_url.with_query(None)
        response = web.Response(status=302, headers={"Location": str(target)})
        response.set_cookie(COOKIE, expected, httponly=True, samesite="Strict", path="/")
        return response
    return await handler(request)
