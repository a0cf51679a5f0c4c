"""What to do after one attempt: a pure function of what came back, tested without I/O.

:func:`classify` maps an :class:`Attempt` to one of four decisions:

* :class:`Ok`: a 2xx whose body parsed;
* :class:`StepDown`: a 400 naming tool types the request carried as unsupported (computer
  use tool page, "Compatibility",
  https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool);
* :class:`Retry`: a transient failure with attempts left, after ``after_s`` seconds;
* :class:`Fail`: anything else, with its :class:`~deskpilot.response.ErrorKind`.

Retries follow the Anthropic SDK (https://github.com/anthropics/anthropic-sdk-python,
``_base_client.py``, ``_should_retry``): an ``x-should-retry: true`` / ``false`` response
header decides first; else 408, 409, 429 and every 5xx are retried, other statuses are not;
timeouts, dropped connections and malformed 2xx bodies are retried. Classification reads
statuses, headers and the API's error ``type``, never message text (the one exception is the
tool types a step-down 400 names, which only its message carries).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..providers.tools import unsupported_tool_types
from ..response import ErrorKind
from .retry import RetryPolicy

MAX_STEP_DOWNS = 4
"""Step-downs per prompt at most (each one drops a rejected version; the tables are short)."""

_KIND_BY_STATUS: dict[int, ErrorKind] = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.PERMISSION,
    404: ErrorKind.NOT_FOUND,
    408: ErrorKind.TIMEOUT,
    413: ErrorKind.REQUEST_TOO_LARGE,
    429: ErrorKind.RATE_LIMITED,
    529: ErrorKind.OVERLOADED,
}
_KIND_BY_API_TYPE: dict[str, ErrorKind] = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.REQUEST_TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "overloaded_error": ErrorKind.OVERLOADED,
    "api_error": ErrorKind.SERVER_ERROR,
    "timeout_error": ErrorKind.TIMEOUT,
}
"""The Messages API error ``type`` values ("Errors" page, https://docs.anthropic.com/en/api/errors)."""

_RETRYABLE_STATUS = frozenset({408, 409, 429})
_RETRYABLE_WITHOUT_STATUS = frozenset({ErrorKind.TIMEOUT, ErrorKind.CONNECTION})


def kind_of_error(status: int, error_type: str | None) -> ErrorKind:
    """The :class:`ErrorKind` of an error answer: the API's documented error ``type`` when
    it sent one, else the status's conventional kind (5xx: ``SERVER_ERROR``; other
    4xx: ``INVALID_REQUEST``)."""
    kind = _KIND_BY_API_TYPE.get(error_type or "") or _KIND_BY_STATUS.get(status)
    if kind is not None:
        return kind
    return ErrorKind.SERVER_ERROR if status >= 500 else ErrorKind.INVALID_REQUEST


def should_retry_header(value: str | None) -> bool | None:
    """``x-should-retry``: ``"true"`` -> True, ``"false"`` -> False, else None."""
    if value == "true":
        return True
    if value == "false":
        return False
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """What one attempt came back with.

    Attributes:
        number: attempts so far that count against ``max_attempts`` (1 = the first;
            step-down re-sends do not count).
        status: the HTTP status, or None when no answer came.
        kind: None for a 2xx whose body parsed, else what went wrong.
        message: the API's error message (searched only for step-down tool types).
        retry_after_s: the server's ``retry-after`` / ``retry-after-ms``, seconds.
        should_retry: the ``x-should-retry`` header (None when absent).
        tool_types: the Anthropic-defined tool types the request carried.
        step_downs: step-downs already made for this prompt.
    """

    number: int
    status: int | None
    kind: ErrorKind | None
    message: str = ""
    retry_after_s: float | None = None
    should_retry: bool | None = None
    tool_types: frozenset[str] = frozenset()
    step_downs: int = 0


@dataclass(frozen=True, slots=True)
class Ok:
    """The answer parsed: return it."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``after_s`` seconds."""

    after_s: float


@dataclass(frozen=True, slots=True)
class StepDown:
    """The API rejected these tool types of the request (in the order it named them)."""

    types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fail:
    """Give up: the prompt's response is an error of this kind."""

    kind: ErrorKind


Decision = Ok | Retry | StepDown | Fail
OK = Ok()


def is_retryable(attempt: Attempt) -> bool:
    """True when ``attempt``'s failure is transient (see the module docstring)."""
    if attempt.should_retry is not None:
        return attempt.should_retry
    if attempt.status is None or 200 <= attempt.status < 300:
        return attempt.kind in _RETRYABLE_WITHOUT_STATUS or attempt.kind is ErrorKind.MALFORMED
    return attempt.status in _RETRYABLE_STATUS or attempt.status >= 500


def classify(attempt: Attempt, policy: RetryPolicy, jitter: float = 1.0) -> Decision:
    """The decision after ``attempt`` under ``policy``.

    Args:
        attempt: what came back.
        policy: ``max_attempts`` and the backoff.
        jitter: the backoff factor in [1, 1.5] (the caller draws it; 1.0 in tests).

    Returns:
        :data:`OK`, :class:`StepDown` (a 400 naming tool types the request carried, before
        :data:`MAX_STEP_DOWNS`), :class:`Retry` (a transient failure with attempts left;
        ``after_s`` from ``retry-after`` or the backoff) or :class:`Fail`.
    """
    kind = attempt.kind
    if kind is None:
        return OK
    if attempt.status == 400 and attempt.tool_types and attempt.step_downs < MAX_STEP_DOWNS:
        named = tuple(t for t in unsupported_tool_types(attempt.message) if t in attempt.tool_types)
        if named:
            return StepDown(named)
    if attempt.number < policy.max_attempts and is_retryable(attempt):
        return Retry(policy.backoff_s(attempt.number, attempt.retry_after_s, jitter))
    return Fail(kind)


__all__ = [
    "MAX_STEP_DOWNS",
    "OK",
    "Attempt",
    "Decision",
    "Fail",
    "Ok",
    "Retry",
    "StepDown",
    "classify",
    "is_retryable",
    "kind_of_error",
    "should_retry_header",
]
