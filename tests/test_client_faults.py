"""The client's fault suite against the fake model (issue #2, "Done when": the fault bullet).

500 storms, 529, 429 with and without ``retry-after``, timeouts, dropped connections,
malformed JSON, 400 "prompt is too long" and 401, on the Anthropic API, Bedrock and a
gateway. For every scenario: each prompt gets exactly one response, in input order; the
server saw exactly the expected number of attempts per prompt; retries were spaced by at
least the configured backoff (server-side arrival times); permanent errors were tried once;
and the client keeps working after a 401.

The fake runs in process behind a MockTransport (no socket); the rate-limit test that needs
a server enforcing real limits on real arrivals runs against the loopback FakeModelServer.
Backoff is configured small (``retry_base_s=0.05``) so the suite stays fast; the assertions
are lower bounds on gaps, never upper bounds, so a loaded machine cannot make them flaky.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import pytest
from botocore.credentials import Credentials

from deskpilot import Conversation, LLMClient
from deskpilot.testing import (
    FakeModel,
    FakeModelServer,
    FakeReply,
    RecordedRequest,
    text_response,
)

BASE_S = 0.05
CAP_S = 0.4


def make_client(server: FakeModel, model: str = "claude-4-sonnet", **kw: Any) -> LLMClient:
    """A client pointed at ``server`` through an ``environ`` mapping (and, for Bedrock, the
    server's AWS credentials as a botocore ``Credentials`` object); an in-process FakeModel
    is reached through its MockTransport."""
    akid, secret = server.aws_credentials or ("AKIDFAKEDESKPILOT", "fake-secret-key")
    settings: dict[str, Any] = {
        "aws_credentials": Credentials(akid, secret),
        "max_requests_per_minute": 100_000,
        "max_tokens_per_minute": 100_000_000,
        "max_concurrent_requests": 8,
        "max_attempts": 3,
        "request_timeout": 5.0,
        "retry_base_s": BASE_S,
        "retry_cap_s": CAP_S,
        "progress": "none",
        "environ": server.env(),
    }
    if not isinstance(server, FakeModelServer):
        settings["transport"] = server.transport()
    settings.update(kw)
    return LLMClient([model], **settings)


def prompts(n: int) -> list[Conversation]:
    return [Conversation().user(f"prompt {i}") for i in range(n)]


class PerPrompt:
    """A handler that answers each prompt's k-th attempt from a plan, then echoes the prompt."""

    def __init__(self, plan: dict[str, list[Any]]) -> None:
        self.plan = plan
        self.seen: dict[str | None, int] = defaultdict(int)

    def __call__(self, req: RecordedRequest) -> Any:
        key = req.prompt_text
        k = self.seen[key]
        self.seen[key] += 1
        steps = self.plan.get(key or "", [])
        if k < len(steps) and steps[k] is not None:
            return steps[k]
        return text_response(f"echo: {key}")


def attempts_of(server: FakeModel) -> dict[str | None, list[RecordedRequest]]:
    return server.attempts_by_prompt()


def gaps(reqs: list[RecordedRequest]) -> list[float]:
    return [b.received_at - a.received_at for a, b in itertools.pairwise(reqs)]


def assert_in_order_success(results: list[Any], n: int) -> None:
    assert len(results) == n
    for i, r in enumerate(results):
        assert not r.is_error, r
        assert r.completion == f"echo: prompt {i}"


# --- retried faults ------------------------------------------------------------------------


async def test_500_storm_gives_every_prompt_one_error_after_max_attempts():
    n = 12
    async with FakeModel(handler=lambda req: 500) as server:
        async with make_client(server, max_attempts=3) as client:
            results = await client.process_prompts_async(prompts(n), show_progress=False)
    assert len(results) == n
    for r in results:
        assert r.is_error and r.status_code == 500 and r.error_type == "api_error"
        assert r.attempts == 3
        assert r.content is None
    per_prompt = attempts_of(server)
    assert sorted(per_prompt) == sorted(f"prompt {i}" for i in range(n))
    for reqs in per_prompt.values():
        assert len(reqs) == 3
        g = gaps(reqs)
        assert g[0] >= BASE_S  # backoff before retry 1
        assert g[1] >= 2 * BASE_S  # exponential: before retry 2
    assert len(server.requests) == 3 * n


async def test_500_twice_then_success_keeps_order():
    n = 10
    plan = {f"prompt {i}": [500, 500] for i in range(n)}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server) as client:
            results = await client.process_prompts_async(prompts(n), show_progress=False)
    assert_in_order_success(results, n)
    assert all(r.attempts == 3 for r in results)
    for reqs in attempts_of(server).values():
        assert [r.status for r in reqs] == [500, 500, 200]
        assert min(gaps(reqs)) >= BASE_S


async def test_529_overloaded_is_retried_with_backoff():
    plan = {"prompt 0": [529], "prompt 2": [529, 529]}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server) as client:
            results = await client.process_prompts_async(prompts(3), show_progress=False)
    assert_in_order_success(results, 3)
    assert [r.attempts for r in results] == [2, 1, 3]
    per = attempts_of(server)
    assert [r.status for r in per["prompt 2"]] == [529, 529, 200]
    assert all(g >= BASE_S for g in gaps(per["prompt 0"]) + gaps(per["prompt 2"]))


async def test_429_with_retry_after_waits_that_long():
    plan = {"prompt 0": ["rate_limit"]}  # 429 + retry-after: 1
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server, max_concurrent_requests=1) as client:
            results = await client.process_prompts_async(prompts(2), show_progress=False)
    assert_in_order_success(results, 2)
    assert [r.attempts for r in results] == [2, 1]
    first = attempts_of(server)["prompt 0"]
    assert [r.status for r in first] == [429, 200]
    assert first[1].received_at - first[0].received_at >= 1.0


async def test_429_without_retry_after_uses_backoff():
    plan = {"prompt 0": ["rate_limit_no_retry_after", "rate_limit_no_retry_after"]}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server) as client:
            results = await client.process_prompts_async(prompts(1), show_progress=False)
    assert_in_order_success(results, 1)
    reqs = attempts_of(server)["prompt 0"]
    assert [r.status for r in reqs] == [429, 429, 200]
    g = gaps(reqs)
    assert g[0] >= BASE_S and g[1] >= 2 * BASE_S


async def test_timeouts_are_retried_and_reported():
    timeout_s = 0.3
    plan = {"prompt 0": ["timeout"], "prompt 1": ["timeout", "timeout", "timeout"]}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server, request_timeout=timeout_s) as client:
            results = await client.process_prompts_async(prompts(3), show_progress=False)
    ok, failed, plain = results
    assert not ok.is_error and ok.completion == "echo: prompt 0" and ok.attempts == 2
    assert failed.is_error and failed.error_type == "timeout" and failed.status_code is None
    assert failed.attempts == 3 and "request_timeout" in (failed.error_message or "")
    assert not plain.is_error and plain.attempts == 1
    per = attempts_of(server)
    assert len(per["prompt 1"]) == 3
    assert all(r.outcome == "hang" for r in per["prompt 1"])
    for g in gaps(per["prompt 1"]):
        # >= timeout + backoff after the SEND; allow 50 ms for the first attempt's transit
        assert g >= timeout_s + BASE_S - 0.05


async def test_malformed_json_and_dropped_connections_are_retried():
    plan = {"prompt 0": ["malformed_json"], "prompt 1": ["disconnect", "malformed_json"]}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server) as client:
            results = await client.process_prompts_async(prompts(3), show_progress=False)
    assert_in_order_success(results, 3)
    assert [r.attempts for r in results] == [2, 3, 1]
    assert min(gaps(attempts_of(server)["prompt 1"])) >= BASE_S


async def test_malformed_json_every_time_becomes_an_error_response():
    async with FakeModel(handler=lambda req: "malformed_json") as server:
        async with make_client(server, max_attempts=2) as client:
            (r,) = await client.process_prompts_async(prompts(1), show_progress=False)
    assert r.is_error and r.attempts == 2 and r.status_code == 200
    assert r.error_type == "malformed_response"
    assert len(server.requests) == 2


# --- permanent errors ------------------------------------------------------------------------


async def test_prompt_too_long_is_not_retried_and_does_not_disturb_the_batch():
    plan = {"prompt 1": ["prompt_too_long"]}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server, max_attempts=5) as client:
            results = await client.process_prompts_async(prompts(3), show_progress=False)
    assert [r.is_error for r in results] == [False, True, False]
    bad = results[1]
    assert bad.status_code == 400 and bad.error_type == "invalid_request_error"
    assert bad.attempts == 1
    assert "prompt is too long: 210000 tokens > 200000 maximum" in (bad.error_message or "")
    assert results[0].completion == "echo: prompt 0" and results[2].completion == "echo: prompt 2"
    assert len(attempts_of(server)["prompt 1"]) == 1


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_auth_and_not_found_are_tried_once(status):
    async with FakeModel(handler=lambda req: status) as server:
        async with make_client(server, max_attempts=5) as client:
            results = await client.process_prompts_async(prompts(4), show_progress=False)
    assert [r.status_code for r in results] == [status] * 4
    assert all(r.is_error and r.attempts == 1 for r in results)
    assert len(server.requests) == 4


async def test_client_works_normally_after_a_401():
    """LM Deluge blocklists the model after a 401 and raises on the next call; we must not."""
    fail = {"on": True}

    def handler(req: RecordedRequest) -> Any:
        return 401 if fail["on"] else text_response(f"echo: {req.prompt_text}")

    async with FakeModel(handler=handler) as server:
        async with make_client(server) as client:
            first = await client.process_prompts_async(prompts(3), show_progress=False)
            fail["on"] = False
            second = await client.process_prompts_async(prompts(3), show_progress=False)
            single = await client.start(Conversation().user("prompt 0"))
    assert all(r.is_error and r.error_type == "authentication_error" for r in first)
    assert all(r.attempts == 1 for r in first)
    assert_in_order_success(second, 3)
    assert single.completion == "echo: prompt 0"
    key = server.env()["ANTHROPIC_API_KEY"]
    assert all(key not in (r.error_message or "") and key not in repr(r) for r in first)
    assert len(server.requests) == 7


# --- everything at once ----------------------------------------------------------------------


async def test_mixed_fault_batch_one_response_per_prompt_in_order():
    kinds: list[tuple[list[Any], int, bool]] = [
        ([], 1, True),
        ([500, 500], 3, True),
        ([529], 2, True),
        (["rate_limit_no_retry_after"], 2, True),
        (["malformed_json"], 2, True),
        (["timeout"], 2, True),
        (["prompt_too_long"], 1, False),
        (["unauthorized"], 1, False),
        ([500, 500, 500], 3, False),
    ]
    n = 36
    plan = {f"prompt {i}": kinds[i % len(kinds)][0] for i in range(n)}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server, request_timeout=0.3, max_concurrent_requests=6) as client:
            results = await client.process_prompts_async(prompts(n), show_progress=False)
    assert len(results) == n
    per = attempts_of(server)
    for i, r in enumerate(results):
        _, attempts, ok = kinds[i % len(kinds)]
        assert r.attempts == attempts, (i, r)
        assert len(per[f"prompt {i}"]) == attempts, i
        assert r.is_error is (not ok), (i, r)
        if ok:
            assert r.completion == f"echo: prompt {i}"
        for g in gaps(per[f"prompt {i}"]):
            assert g >= BASE_S
    assert server.peak_in_flight <= 6


# --- other platforms ---------------------------------------------------------------------------


async def test_bedrock_throttling_is_retried_and_bad_signatures_are_not():
    plan = {"prompt 0": [429, 529]}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server, model="claude-3.7-sonnet-bedrock") as client:
            results = await client.process_prompts_async(prompts(2), show_progress=False)
    assert_in_order_success(results, 2)
    reqs = attempts_of(server)["prompt 0"]
    assert [r.status for r in reqs] == [429, 503, 200]  # Bedrock's ThrottlingException, 503
    assert [r.error_type for r in reqs[:2]] == [
        "ThrottlingException",
        "ServiceUnavailableException",
    ]
    assert all(r.api == "bedrock" for r in server.requests)

    async with FakeModel(aws_credentials=("AKIDFAKEDESKPILOT", "other")) as server:
        wrong = Credentials("AKIDFAKEDESKPILOT", "not-the-secret")
        async with make_client(
            server, model="claude-3.7-sonnet-bedrock", aws_credentials=wrong
        ) as client:
            (bad,) = await client.process_prompts_async(prompts(1), show_progress=False)
    assert bad.is_error and bad.status_code == 403 and bad.attempts == 1


async def test_gateway_faults_are_retried():
    plan = {"prompt 0": [500, 529], "prompt 1": ["prompt_too_long"]}
    async with FakeModel(handler=PerPrompt(plan)) as server:
        async with make_client(server, model="anthropic/claude-3-5-sonnet-20241022") as client:
            results = await client.process_prompts_async(
                prompts(3), computer_use=True, show_progress=False
            )
    assert [r.is_error for r in results] == [False, True, False]
    assert results[0].completion == "echo: prompt 0" and results[0].attempts == 3
    assert results[1].status_code == 400 and results[1].attempts == 1
    req = server.requests[0]
    assert req.api == "gateway" and req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer " + server.env()["OPENAI_API_KEY"]
    assert req.tool_types == ["computer_20241022", "text_editor_20241022", "bash_20241022"]


# --- limits held against a server enforcing the same limits -------------------------------------


async def test_rpm_window_held_against_an_enforcing_server():
    async with FakeModelServer(handler=PerPrompt({}), rpm_limit=5, window_s=1.0) as server:
        async with make_client(
            server,
            max_requests_per_minute=5,
            rate_window_s=1.0,
            rate_safety_s=0.05,  # arrival jitter on a loaded 2-core machine exceeds 1/240 s
            max_concurrent_requests=8,
        ) as client:
            results = await client.process_prompts_async(
                [Conversation().user(f"prompt {i}") for i in range(12)], show_progress=False
            )
    assert_in_order_success(results, 12)
    assert server.stats()["rate_limited"] == 0
    assert all(r.attempts == 1 for r in results)
    times = sorted(server.arrivals)
    for i, t in enumerate(times):  # never more than 5 in any 1 s window
        assert sum(1 for u in times[i:] if u - t < 1.0) <= 5


async def test_concurrency_cap_seen_by_the_server():
    async with FakeModel(latency_s=0.05) as server:
        async with make_client(server, max_concurrent_requests=3) as client:
            results = await client.process_prompts_async(prompts(12), show_progress=False)
    assert all(not r.is_error for r in results)
    assert server.peak_in_flight <= 3


async def test_a_fake_reply_object_with_headers_reaches_the_client():
    reply = FakeReply(status=200, body=text_response("hi", input_tokens=11, output_tokens=2))
    async with FakeModel([reply]) as server:
        async with make_client(server) as client:
            r = await client.start(Conversation().user("x"))
    assert r.completion == "hi" and r.usage.input_tokens == 11 and r.usage.output_tokens == 2
    assert r.request_id and r.request_id.startswith(("req_", "msg_"))


# --- usage: simulated prompt caching as the client reports it ------------------------------------


async def test_cache_reads_and_writes_reach_the_client():
    async with FakeModel() as server:
        async with make_client(server) as client:
            first = await client.start(
                Conversation().user("a"), computer_use=True, cache="tools_only"
            )
            second = await client.start(
                Conversation().user("b"), computer_use=True, cache="tools_only"
            )
    tools = 735 + 700 + 245  # computer_20250124 + text_editor_20250429 + bash_20250124
    assert (first.usage.cache_write_tokens, first.usage.cache_read_tokens) == (tools, 0)
    assert (second.usage.cache_write_tokens, second.usage.cache_read_tokens) == (0, tools)
    assert second.usage.input_tokens == first.usage.input_tokens == 1
    assert second.cost < first.cost  # reads are cheaper than writes


# --- a 400 naming the computer tool type: step down once, then remember ---------------------------


@pytest.mark.parametrize("model", ["claude-4.5-opus", "claude-4.5-opus-bedrock"])
async def test_unsupported_tool_type_steps_down_once_and_is_remembered(model):
    async with FakeModel(reject_tool_types={"computer_20251124"}) as server:
        async with make_client(server, model=model) as client:
            first = await client.start(Conversation().user("a"), computer_use=True)
            second = await client.start(Conversation().user("b"), computer_use=True)
    assert not first.is_error and not second.is_error
    assert first.computer_tool_type == second.computer_tool_type == "computer_20250124"
    sent = [(r.prompt_text, r.tool_types[0], r.status) for r in server.requests]
    assert sent == [
        ("a", "computer_20251124", 400),
        ("a", "computer_20250124", 200),
        ("b", "computer_20250124", 200),  # remembered: no second 400
    ]
    # the beta flag follows the tool version on both platforms
    assert server.requests[1].betas == ["computer-use-2025-01-24"]
