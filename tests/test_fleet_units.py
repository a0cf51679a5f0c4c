"""The fleet's parts without Ray: the client's limiter seam, the limiter actor's body on a
plain event loop, arrival slack, the tasks and results formats, and the CLI's front door.
(Ray itself: tests/test_fleet.py.)"""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from deskpilot import LLMClient
from deskpilot.cli import main
from deskpilot.client.limiter import Limiter, RateLimiter
from deskpilot.errors import ConfigError
from deskpilot.fleet.limit import LimitActor, LimitConfig, RayLimiter
from deskpilot.fleet.records import (
    FleetResult,
    append_result,
    read_results,
    read_tasks,
    run_dir_name,
)
from deskpilot.testing import FakeModel, error_reply


class RecordingLimiter:
    """A drop-in Limiter that admits through a RateLimiter and records every call."""

    def __init__(self) -> None:
        self.inner = RateLimiter(requests_per_minute=1000, max_concurrent=4)
        self.calls: list[tuple] = []

    @property
    def in_flight(self) -> int:
        return self.inner.in_flight

    async def acquire(self, input_tokens: float = 0, output_tokens: float = 0):
        self.calls.append(("acquire", input_tokens, output_tokens))
        return await self.inner.acquire(input_tokens, output_tokens)

    def release(self, ticket, *, input_tokens=None, output_tokens=None) -> None:
        self.calls.append(("release", input_tokens, output_tokens))
        self.inner.release(ticket, input_tokens=input_tokens, output_tokens=output_tokens)

    def pause_for(self, seconds: float) -> None:
        self.calls.append(("pause_for", seconds))
        self.inner.pause_for(seconds)


async def test_client_admits_through_a_drop_in_limiter() -> None:
    """LLMClient(limiter=...) acquires before each attempt and releases with the real usage;
    a 429's retry-after pauses that limiter (not a private one)."""
    fake = FakeModel()
    fake.inject(error_reply(429, retry_after=0.05))
    lim = RecordingLimiter()
    assert isinstance(lim, Limiter) and isinstance(RayLimiter(None), Limiter)
    client = LLMClient(
        "claude-4-sonnet", environ=fake.env(), transport=fake.transport(), limiter=lim,
        progress="none", retry_base_s=0.001,
    )  # fmt: skip
    assert client.limiter is lim
    [r] = await client.process_prompts_async(["hello"], show_progress=False)
    assert not r.is_error and r.attempts == 2
    kinds = [c[0] for c in lim.calls]
    assert kinds == ["acquire", "release", "pause_for", "acquire", "release"]
    assert lim.calls[1] == ("release", 0, 0)  # a 429 charged nothing: refunded
    assert lim.calls[-1] == ("release", r.usage.input_tokens, r.usage.output_tokens)
    assert lim.in_flight == 0


def test_client_refuses_a_limiter_without_the_methods() -> None:
    with pytest.raises(TypeError, match="must be a deskpilot Limiter, not object"):
        LLMClient("claude-4-sonnet", api_key="sk-ant-x", limiter=object())


async def test_arrival_slack_counts_quick_requests_from_their_release() -> None:
    """With arrival_slack_s, a request ended within the slack counts in the window from
    its end: the next one waits a full window after it; without, after its admission."""
    now = [100.0]
    for slack, expect in ((0.0, 10.0 + 10 / 240), (2.0, 11.5 + 10 / 240)):
        lim = RateLimiter(
            requests_per_minute=1, window_s=10.0, clock=lambda: now[0], arrival_slack_s=slack
        )
        now[0] = 100.0
        t = await lim.acquire()
        now[0] = 101.5  # the request took 1.5 s
        lim.release(t)
        assert lim.requests is not None
        assert lim.requests.delay(now[0], 1) == pytest.approx(expect - 1.5)
    with pytest.raises(ConfigError, match="arrival_slack_s"):
        RateLimiter(arrival_slack_s=-1)


async def test_limit_actor_withdraw_lease_and_release() -> None:
    """The actor's body: FIFO admissions under concurrency, a withdrawn wait, a withdraw
    that overtakes its acquire, and a lease that frees a dead holder's slot."""
    actor = LimitActor(LimitConfig(requests_per_minute=None, input_tokens_per_minute=1000,
                                   max_concurrent=1, lease_s=0.2))  # fmt: skip
    assert await actor.acquire("a", 10, 0) is True
    waiting = asyncio.ensure_future(actor.acquire("b", 10, 0))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await actor.withdraw("b")
    assert await waiting is False
    await actor.withdraw("c")  # arrives before its acquire
    assert await actor.acquire("c", 10, 0) is False
    await actor.release("a", 4, None)  # real usage: 4 tokens
    stats = await actor.stats()
    assert stats["in_flight"] == 0 and stats["input_tokens"] == 4
    assert await actor.acquire("d", 10, 0) is True  # then "d" is never released
    started = asyncio.get_running_loop().time()
    assert await actor.acquire("e", 10, 0) is True  # admitted when d's lease ran out
    assert asyncio.get_running_loop().time() - started >= 0.19
    assert (await actor.stats())["expired"] == 1
    await actor.release("d", 1, 1)  # too late: ignored
    assert (await actor.stats())["in_flight"] == 1
    assert (await actor.config())["lease_s"] == 0.2


def test_limit_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="window_s"):
        LimitConfig(window_s=0)
    with pytest.raises(ConfigError, match="rate limit must be positive"):
        LimitConfig(requests_per_minute=0)
    with pytest.raises(ConfigError, match="max_concurrent"):
        LimitConfig(max_concurrent=0)


def test_tasks_file_is_read_and_checked(tmp_path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text('# a comment\n{"id": "a", "task": "Open the editor"}\n\n'
                    '{"id": "b/../x", "task": "Close it"}\n')  # fmt: skip
    tasks = read_tasks(path)
    assert [(t.id, t.task) for t in tasks] == [("a", "Open the editor"), ("b/../x", "Close it")]
    path.write_text('{"id": "a", "task": "x"}\n{"id": "a", "task": "y"}\n')
    with pytest.raises(ConfigError, match="'a' appears twice"):
        read_tasks(path)
    path.write_text('{"id": "a", "task": "x"}\n{"id": "b", "prompt": "y"}\n')
    with pytest.raises(ConfigError, match=r"tasks.jsonl:2: expected"):
        read_tasks(path)
    with pytest.raises(ConfigError, match="Cannot read the tasks file"):
        read_tasks(tmp_path / "missing.jsonl")


def test_run_dir_names_stay_inside_runs() -> None:
    assert run_dir_name("t01") == "t01"
    for bad in ("../x", "/etc/passwd", ".", "..", "a/b", "é"):
        name = run_dir_name(bad)
        assert "/" not in name and not name.startswith(".") and name not in ("", "..")
    assert run_dir_name("a/b") != run_dir_name("a_b")


def test_results_file_round_trip_is_lenient(tmp_path) -> None:
    append_result(tmp_path, FleetResult(id="a", task="x", ok=True, stop_reason="end_turn"))
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"id": "b", "task": "y", "ok": tr')  # a torn last line
    got = read_results(tmp_path)
    assert list(got) == ["a"] and got["a"].version == 1 and got["a"].attempts == 1


def test_fleet_command_help_and_bad_tasks_file(tmp_path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["fleet", "--help"]).output
    for opt in ("--desktops", "--address", "--server", "--out", "--resume", "--model",
                "--shared-dir", "--desktop-resource"):  # fmt: skip
        assert opt in out
    assert '{"id": "unique-name", "task":' in out
    bad = tmp_path / "t.jsonl"
    bad.write_text(json.dumps({"id": "a"}) + "\n")
    result = runner.invoke(main, ["fleet", str(bad)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "t.jsonl:1: expected" in result.output


def test_shared_dir_must_be_a_writable_directory(tmp_path) -> None:
    """run_fleet(shared_dir=...) and `deskpilot fleet --shared-dir` refuse a missing path,
    a file and a directory that cannot be written, with a sentence, before Ray starts."""
    from deskpilot.fleet.run import check_shared_dir, run_fleet

    assert check_shared_dir(tmp_path) == tmp_path.resolve()
    assert list(tmp_path.iterdir()) == []  # the write probe is removed
    with pytest.raises(ConfigError, match="does not exist; create it on storage that every"):
        check_shared_dir(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        run_fleet([{"id": "a", "task": "x"}], shared_dir=tmp_path / "f", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="/sys is not writable"):  # even for root
        check_shared_dir("/sys")
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(json.dumps({"id": "a", "task": "x"}) + "\n")
    result = CliRunner().invoke(main, ["fleet", str(tasks), "--shared-dir", str(tmp_path / "no")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: The shared directory ")


def test_desktop_resources_are_checked(tmp_path) -> None:
    from deskpilot.fleet.run import run_fleet

    for bad, match in (({"CPU": 1}, "custom name, not 'CPU'"), ({"desktop": 0}, "amount > 0")):
        with pytest.raises(ConfigError, match=match):
            run_fleet([{"id": "a", "task": "x"}], desktop_resources=bad, out_dir=tmp_path)
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(json.dumps({"id": "a", "task": "x"}) + "\n")
    result = CliRunner().invoke(main, ["fleet", str(tasks), "--desktop-resource", "desktop"])
    assert result.exit_code == 2 and "expected NAME=AMOUNT" in result.output
