"""One attempt of one prompt: sign, send, parse, and settle the rate limiter.

:func:`exchange` never raises for an API or network failure: it returns an :class:`Answer`
whose ``kind`` says what went wrong (the client classifies it with
:func:`deskpilot.client.classify.classify`). The limiter is settled exactly once per
attempt: a parsed answer reconciles the reservation with the real ``usage``; a 4xx (the API
charged nothing) refunds it; a 5xx, timeout or malformed answer keeps the input estimate
(the server may have counted it) and refunds the output.

Rate-limit headers (``anthropic-ratelimit-*``, Anthropic "Rate limits" page,
https://docs.anthropic.com/en/api/rate-limits) pause the limiter when a resource is spent;
a 429's ``retry-after`` pauses it for every prompt, not just the one that got it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, TransportError, TransportTimeoutError
from ..providers.base import ParsedResponse, Provider
from ..response import ErrorKind
from ..transport import HTTPRequest, Transport
from .classify import kind_of_error
from .limiter import Limiter
from .retry import parse_retry_after, rate_limit_reset_in

logger = logging.getLogger("deskpilot.client")

_RATE_HEADERS = (
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-input-tokens-remaining",
)


@dataclass(slots=True)
class Answer:
    """What one attempt brought back.

    Attributes:
        status / headers: the HTTP status and headers (None when no answer came).
        data: the decoded JSON body (None when absent or not JSON).
        parsed: the provider's parse of a 2xx body (None unless it parsed).
        kind: None when ``parsed`` is set, else what went wrong.
        error_type: the error ``type`` the API sent, if any.
        message: the API's error message or what happened, in words (not yet redacted).
    """

    status: int | None = None
    headers: Any = None
    data: Any = None
    parsed: ParsedResponse | None = None
    kind: ErrorKind | None = None
    error_type: str | None = None
    message: str = ""


def note_rate_headers(
    limiter: Limiter,
    headers: Any,
    max_pause_s: float,
    needed: Mapping[str, float] | None = None,
) -> None:
    """Pause ``limiter`` while the headers say a resource is spent (at most ``max_pause_s``
    seconds); ``needed`` shortens the pause to what the next request needs."""
    if _RATE_HEADERS[0] not in headers and _RATE_HEADERS[1] not in headers:
        return
    wait = rate_limit_reset_in(headers, needed)
    if wait:
        logger.debug("rate limit exhausted per response headers; pausing %.2f s", wait)
        limiter.pause_for(min(wait, max_pause_s))


async def exchange(
    provider: Provider,
    transport: Transport,
    request: HTTPRequest,
    limiter: Limiter,
    ticket: Any,
    max_pause_s: float,
) -> Answer:
    """Sign ``request``, send it, parse the answer and settle ``ticket`` (see the module
    docstring); ``max_pause_s`` caps any pause the answer's headers ask for.

    Raises:
        only what cancels the task (``CancelledError``) or a bug; API and network failures
        come back as an :class:`Answer` with a ``kind``.
    """
    try:
        response = await transport.send(await provider.sign(request))
    except TransportTimeoutError:
        limiter.release(ticket, output_tokens=0)  # the server may have counted the input
        return Answer(
            kind=ErrorKind.TIMEOUT,
            message=f"the request timed out after {request.timeout_s:g} s "
            "(request_timeout) before the whole answer arrived",
        )
    except TransportError as exc:
        limiter.release(ticket, output_tokens=0)
        return Answer(kind=ErrorKind.CONNECTION, message=str(exc))
    except ConfigError as exc:  # e.g. no AWS credentials: nothing was sent
        limiter.release(ticket, input_tokens=0, output_tokens=0)
        return Answer(kind=ErrorKind.CONFIGURATION, message=str(exc))
    except BaseException:
        limiter.release(ticket, output_tokens=0)
        raise
    status, headers, raw = response.status, response.headers, response.body
    answer = Answer(status=status, headers=headers)
    try:
        answer.data = json.loads(raw) if raw else None
    except ValueError:
        pass
    if 200 <= status < 300:
        if isinstance(answer.data, dict):
            try:
                answer.parsed = parsed = provider.parse(answer.data, headers)
            except Exception as exc:  # any shape error: a malformed answer
                answer.kind = ErrorKind.MALFORMED
                answer.message = f"the answer is not a valid response body ({exc!r})"
            else:
                u = parsed.usage
                charged = u.input_tokens + u.cache_write_tokens
                limiter.release(ticket, input_tokens=charged, output_tokens=u.output_tokens)
                if _RATE_HEADERS[0] in headers or _RATE_HEADERS[1] in headers:
                    # the next request needs about what this one used
                    needed = {
                        "requests": 1,
                        "input-tokens": charged,
                        "output-tokens": u.output_tokens,
                        "tokens": u.total_tokens,
                    }
                    note_rate_headers(limiter, headers, max_pause_s, needed)
                return answer
        else:
            answer.kind = ErrorKind.MALFORMED
            answer.message = "the answer is not JSON"
    else:
        try:
            info = provider.parse_error(
                status,
                answer.data if answer.data is not None else raw.decode("utf-8", "replace"),
                headers,
            )
            answer.error_type, answer.message = info.error_type, info.message
        except Exception:  # an error body of an unexpected shape
            answer.message = raw[:300].decode("utf-8", "replace")
        answer.kind = kind_of_error(status, answer.error_type)
    if 400 <= status < 500:  # rejected before processing (incl. 429): no tokens charged
        limiter.release(ticket, input_tokens=0, output_tokens=0)
    else:  # 5xx or malformed: the server may have counted the input
        limiter.release(ticket, output_tokens=0)
    if status == 429:
        retry_after = parse_retry_after(headers)
        if retry_after is not None:
            limiter.pause_for(min(retry_after, max_pause_s))
    note_rate_headers(limiter, headers, max_pause_s)
    return answer


__all__ = ["Answer", "exchange", "note_rate_headers"]
