"""classify(): the pure decision after one attempt (no I/O, no clock, no randomness)."""

from __future__ import annotations

import pytest

from deskpilot.client.classify import (
    MAX_STEP_DOWNS,
    OK,
    Attempt,
    Fail,
    Retry,
    StepDown,
    classify,
    is_retryable,
    kind_of_error,
    should_retry_header,
)
from deskpilot.client.retry import RetryPolicy
from deskpilot.response import ErrorKind

POLICY = RetryPolicy(max_attempts=3, base_s=0.5, cap_s=4.0, max_retry_after_s=60.0)
K = ErrorKind


def attempt(status: int | None, kind: ErrorKind | None, **kw) -> Attempt:
    kw.setdefault("number", 1)
    return Attempt(status=status, kind=kind, **kw)


def test_a_parsed_answer_is_ok() -> None:
    assert classify(attempt(200, None), POLICY) is OK


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried(status: int) -> None:
    kind = kind_of_error(status, None)
    assert is_retryable(attempt(status, kind))
    assert classify(attempt(status, kind), POLICY, jitter=1.0) == Retry(0.5)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_statuses_fail_at_once_whatever_the_type_says(status: int) -> None:
    # a 4xx is never retried, even when its body claims a retryable type
    a = attempt(status, kind_of_error(status, "rate_limit_error"))
    assert not is_retryable(a)
    assert classify(a, POLICY) == Fail(K.RATE_LIMITED)


@pytest.mark.parametrize(
    "kind,retried",
    [
        (K.TIMEOUT, True),
        (K.CONNECTION, True),
        (K.CONFIGURATION, False),
        (K.CLIENT, False),
    ],
)
def test_failures_without_an_answer(kind: ErrorKind, retried: bool) -> None:
    decision = classify(attempt(None, kind), POLICY, jitter=1.0)
    assert decision == (Retry(0.5) if retried else Fail(kind))


def test_a_malformed_2xx_is_retried() -> None:
    assert classify(attempt(200, K.MALFORMED), POLICY, jitter=1.0) == Retry(0.5)


def test_x_should_retry_decides_first() -> None:
    # the Anthropic SDK's rule: "true" forces a retry, "false" forbids one
    forced = attempt(400, K.INVALID_REQUEST, should_retry=True)
    assert classify(forced, POLICY, jitter=1.0) == Retry(0.5)
    for status, kind in [(500, K.SERVER_ERROR), (529, K.OVERLOADED), (429, K.RATE_LIMITED)]:
        assert classify(attempt(status, kind, should_retry=False), POLICY) == Fail(kind)
    assert [should_retry_header(v) for v in ("true", "false", None, "yes", "")] == [
        True,
        False,
        None,
        None,
        None,
    ]


def test_attempts_run_out() -> None:
    assert classify(attempt(500, K.SERVER_ERROR, number=2), POLICY, jitter=1.0) == Retry(1.0)
    assert classify(attempt(500, K.SERVER_ERROR, number=3), POLICY) == Fail(K.SERVER_ERROR)
    one = RetryPolicy(max_attempts=1)
    assert classify(attempt(None, K.TIMEOUT), one) == Fail(K.TIMEOUT)


def test_backoff_grows_is_capped_and_retry_after_wins() -> None:
    waits = [
        classify(attempt(529, K.OVERLOADED, number=n), RetryPolicy(max_attempts=9, base_s=0.5,
                 cap_s=4.0), jitter=1.5).after_s  # type: ignore[union-attr]
        for n in range(1, 7)
    ]  # fmt: skip
    assert waits == [0.75, 1.5, 3.0, 4.0, 4.0, 4.0]
    told = attempt(429, K.RATE_LIMITED, retry_after_s=7.0)
    assert classify(told, POLICY, jitter=1.5) == Retry(7.0)
    assert classify(attempt(429, K.RATE_LIMITED, retry_after_s=1e6), POLICY) == Retry(60.0)


TYPES = frozenset({"computer_20251124", "text_editor_20250728", "bash_20250124"})
REJECT = "'claude-opus-4-5' does not support tool types: computer_20251124."


def test_a_400_naming_a_sent_tool_type_steps_down() -> None:
    a = attempt(400, K.INVALID_REQUEST, message=REJECT, tool_types=TYPES)
    assert classify(a, POLICY) == StepDown(("computer_20251124",))
    both = "does not support tool types: text_editor_20250728, computer_20251124"
    assert classify(
        attempt(400, K.INVALID_REQUEST, message=both, tool_types=TYPES), POLICY
    ) == StepDown(("text_editor_20250728", "computer_20251124"))


def test_no_step_down_for_types_not_sent_other_400s_or_other_statuses() -> None:
    not_sent = attempt(400, K.INVALID_REQUEST, message=REJECT, tool_types=frozenset())
    assert classify(not_sent, POLICY) == Fail(K.INVALID_REQUEST)
    other = attempt(400, K.INVALID_REQUEST, message="messages: bad", tool_types=TYPES)
    assert classify(other, POLICY) == Fail(K.INVALID_REQUEST)
    as_500 = attempt(500, K.SERVER_ERROR, message=REJECT, tool_types=TYPES)
    assert classify(as_500, POLICY, jitter=1.0) == Retry(0.5)
    spent = attempt(
        400, K.INVALID_REQUEST, message=REJECT, tool_types=TYPES, step_downs=MAX_STEP_DOWNS
    )
    assert classify(spent, POLICY) == Fail(K.INVALID_REQUEST)


@pytest.mark.parametrize(
    "status,api_type,kind",
    [
        (400, "invalid_request_error", K.INVALID_REQUEST),
        (401, None, K.AUTHENTICATION),
        (403, "permission_error", K.PERMISSION),
        (404, None, K.NOT_FOUND),
        (408, None, K.TIMEOUT),
        (413, "request_too_large", K.REQUEST_TOO_LARGE),
        (429, "rate_limit_error", K.RATE_LIMITED),
        (429, "rate_limit_exceeded", K.RATE_LIMITED),  # a gateway's own code: by status
        (503, "overloaded_error", K.OVERLOADED),  # Bedrock's ServiceUnavailable, mapped
        (504, "timeout_error", K.TIMEOUT),
        (529, None, K.OVERLOADED),
        (500, None, K.SERVER_ERROR),
        (599, "something_new", K.SERVER_ERROR),
        (422, None, K.INVALID_REQUEST),
    ],
)
def test_kind_of_an_error_answer(status: int, api_type: str | None, kind: ErrorKind) -> None:
    assert kind_of_error(status, api_type) is kind


def test_error_kind_values_are_the_api_error_types() -> None:
    assert K.RATE_LIMITED == "rate_limit_error" and K.OVERLOADED == "overloaded_error"
    assert K("timeout") is K.TIMEOUT
    assert len({k.value for k in K}) == len(K)
