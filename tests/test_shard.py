"""run_many(..., processes=K): real worker processes on real Xvfb desktops against the fake
model server on loopback, one rate limit served from the parent, a killed worker's task
turned into an error result, Ctrl-C (cancel) stopping every worker and desktop."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from pathlib import Path

import psutil
import pytest

from deskpilot import LLMClient
from deskpilot.agent.many import run_many
from deskpilot.desktop.local import LocalDesktop
from deskpilot.errors import ConfigError
from deskpilot.pool import DesktopPool
from deskpilot.testing import FakeModelServer, most_in_window
from deskpilot.testing.wire import message_response, text_response, tool_use_block

pytestmark = pytest.mark.desktop

W, H = 320, 240
KEY = "sk-ant-shard-key-000000"


def make_desktop(marks: str) -> LocalDesktop:
    """The workers' desktop factory (module level: it is pickled into them); leaves a file
    named after the worker's pid, so the test knows which processes ran desktops."""
    Path(marks, str(os.getpid())).touch()
    return LocalDesktop(W, H)


def workers_of(marks: Path) -> set[int]:
    return {int(p.name) for p in marks.iterdir()}


def scripted(command: str):
    """Turn 1: one bash call (``command``, with {task} replaced); turn 2: answer with its
    output."""

    def handler(req):
        if len(req.body["messages"]) == 1:
            cmd = command.format(task=req.prompt_text)
            return message_response([tool_use_block("bash", {"command": cmd}, id=f"b{req.index}")])
        result = req.body["messages"][-1]["content"][0]["content"]
        text = result if isinstance(result, str) else result[0]["text"]
        return text_response(f"{req.prompt_text}: {text.strip()}")

    return handler


def run_sharded(tasks, client: LLMClient, marks: Path, out_dir: Path, *, desktops: int):
    """``run_many`` over 2 worker processes with ``desktops`` marking desktops, one bash
    call per task, no initial screenshot."""
    return run_many(
        tasks,
        client=client,
        processes=2,
        desktops=desktops,
        desktop_factory=functools.partial(make_desktop, str(marks)),
        out_dir=out_dir,
        initial_screenshot=False,
        show_progress=False,
    )


def client_for(server: FakeModelServer, **kw) -> LLMClient:
    return LLMClient(
        "claude-4-sonnet", base_url=server.url, api_key=KEY, max_attempts=1, progress="none", **kw
    )


def _cmdline(p: psutil.Process) -> list[str]:
    """``p``'s command line, or [] when it exited while the children were listed."""
    try:
        return p.cmdline()
    except psutil.NoSuchProcess:
        return []


@pytest.mark.serial  # counts requests per rate-limit window
async def test_two_workers_run_eight_tasks_in_order_under_one_rate_limit(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    rpm, window_s = 6, 1.0  # 6 requests per second for both workers together
    async with FakeModelServer(rpm_limit=rpm, window_s=window_s) as server:
        server.handler = scripted("echo done-{task}")
        tasks = [f"task-{i}" for i in range(8)]
        async with client_for(
            server, max_requests_per_minute=rpm, rate_window_s=window_s, rate_safety_s=0.15
        ) as client:
            results = await run_sharded(tasks, client, marks, tmp_path / "runs", desktops=4)
            assert client.total_usage.output_tokens > 0  # the workers' usage added up here
    assert [r.final_text for r in results] == [f"{t}: done-{t}" for t in tasks], results
    assert all(r.ok and r.steps == 2 for r in results), results
    dirs = {r.trajectory_dir for r in results}
    assert len(dirs) == 8
    for d in dirs:
        assert d is not None and d.parent == tmp_path / "runs"
        assert (d / "trajectory.jsonl").stat().st_size > 0
    workers = workers_of(marks)
    assert len(workers) == 2 and os.getpid() not in workers
    # one limit across both workers: never more than `rpm` in any window, no 429, and it bound
    arrivals = [r.received_at for r in server.requests]
    assert len(arrivals) == 16
    assert [r.outcome for r in server.requests] == ["ok"] * 16
    assert most_in_window(arrivals, window_s) <= rpm
    assert max(arrivals) - min(arrivals) >= window_s  # 16 requests at 6/s cannot go at once


async def test_a_worker_killed_with_sigkill_turns_its_task_into_an_error(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    finals: list[str] = []
    async with FakeModelServer() as server:
        run_tool = scripted("sleep 1; echo slept-{task}")

        def handler(req):
            reply = run_tool(req)
            if len(req.body["messages"]) > 1:
                finals.append(req.prompt_text)
            return reply

        server.handler = handler
        tasks = [f"job-{i}" for i in range(3)]
        async with client_for(server) as client:
            run = asyncio.create_task(
                run_sharded(tasks, client, marks, tmp_path / "runs", desktops=2)
            )
            while len(server.requests) < 2:  # both workers are in their first task's sleep
                await asyncio.sleep(0.05)
            victim = min(workers_of(marks))
            doomed = psutil.Process(victim).children(recursive=True)  # its desktop
            os.kill(victim, signal.SIGKILL)
            results = await asyncio.wait_for(run, timeout=60)
    errors = [r for r in results if not r.ok]
    assert len(results) == 3 and len(errors) == 1, results
    assert "was killed by SIGKILL before this task finished" in (errors[0].error or "")
    assert "not rerun" in (errors[0].error or "")
    done = [t for t, r in zip(tasks, results, strict=True) if r.ok]
    assert [r.final_text for r in results if r.ok] == [f"{t}: slept-{t}" for t in done]
    assert sorted(finals) == sorted(done)  # each finished task answered once: none rerun
    # the watcher ended the dead worker's desktop
    _, alive = psutil.wait_procs(doomed, timeout=10)
    assert alive == []


async def test_cancelling_stops_every_worker_and_its_desktops(tmp_path, capfd):
    marks = tmp_path / "marks"
    marks.mkdir()
    async with FakeModelServer() as server:
        server.handler = scripted("sleep 30")
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        async with client_for(server) as client:
            run = asyncio.create_task(
                run_sharded(["a", "b"], client, marks, tmp_path / "runs", desktops=2)
            )
            while len(server.requests) < 2:
                await asyncio.sleep(0.05)
            spawned = [
                p
                for p in psutil.Process().children(recursive=True)
                if p.pid not in before and "resource_tracker" not in " ".join(_cmdline(p))
            ]  # the workers, their desktops and watchers (not multiprocessing's tracker)
            assert workers_of(marks) <= {p.pid for p in spawned}
            run.cancel()  # what Ctrl-C does to asyncio.run's task
            with pytest.raises(asyncio.CancelledError):
                await run
    _, alive = psutil.wait_procs(spawned, timeout=10)
    assert alive == [], f"left running: {[(p.pid, p.name()) for p in alive]}"
    # stopped by SIGTERM, not by noticing later that the parent closed their connection
    assert "the parent process is gone" not in capfd.readouterr().err


async def test_processes_refuses_what_cannot_cross_to_a_worker(tmp_path):
    async with FakeModelServer() as server, client_for(server) as client:
        bad = {
            "desktop_factory=lambda": dict(desktop_factory=lambda: LocalDesktop(W, H)),
            "on_step=": dict(on_step=print),
            "approve=": dict(approve=print),
            "pool=": dict(pool=DesktopPool.local(1)),
            "processes must": dict(processes=0),
        }
        for expected, kwargs in bad.items():
            kwargs.setdefault("processes", 2)
            with pytest.raises(ConfigError) as info:
                await run_many(["x"], client=client, show_progress=False, **kwargs)
            text = str(info.value)
            assert expected.split("=")[0] in text, text
            assert "processes" in text
    transport_client = LLMClient("claude-4-sonnet", transport=server.transport(), api_key=KEY)
    with pytest.raises(ConfigError, match="transport= object"):
        await run_many(["x"], client=transport_client, processes=2, show_progress=False)


async def test_the_link_limiter_withdraws_a_cancelled_wait_and_frees_a_dead_workers_slots():
    from deskpilot.agent.shard_link import LimiterHost, LinkLimiter, read_frame
    from deskpilot.client.limiter import RateLimiter

    shared = RateLimiter(max_concurrent=1)
    hosts: list[LimiterHost] = []

    async def serve(reader, writer):  # the parent's side, as run_many runs it
        host = LimiterHost(shared, writer)
        hosts.append(host)
        while (message := await read_frame(reader)) is not None:
            assert host.handle(message)
        host.close()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        link = LinkLimiter(writer)

        async def read():
            while (message := await read_frame(reader)) is not None:
                link.granted(message[1])

        return link, writer, asyncio.create_task(read())

    async def settle(check, timeout_s=5.0):
        for _ in range(int(timeout_s / 0.01)):
            if check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the parent's limiter did not get there")

    try:
        (a, a_writer, a_read), (b, b_writer, b_read) = await worker(), await worker()
        ticket = await a.acquire(100, 10)
        assert (a.in_flight, shared.in_flight) == (1, 1)
        waiting = asyncio.create_task(b.acquire(100, 10))  # the one slot is worker a's
        await settle(lambda: shared.waiting == 1)
        waiting.cancel()  # withdrawn at the parent: it would otherwise take the slot later
        await settle(lambda: shared.waiting == 0)
        a.release(ticket, input_tokens=90, output_tokens=5)
        await settle(lambda: shared.in_flight == 0)
        # worker b takes the slot, then dies (its connection drops): the slot comes back
        await b.acquire(1, 1)
        await settle(lambda: shared.in_flight == 1)
        b_writer.transport.abort()
        await settle(lambda: shared.in_flight == 0)
        assert await asyncio.wait_for(a.acquire(1, 1), timeout=5) is not None
        for task in (a_read, b_read):
            task.cancel()
        a_writer.close()
        b_writer.close()
        await asyncio.gather(a_read, b_read, return_exceptions=True)
        await settle(lambda: all(h._writer.is_closing() for h in hosts))
    finally:
        server.close()
        await server.wait_closed()
