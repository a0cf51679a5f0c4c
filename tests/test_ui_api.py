"""deskpilot ui's HTTP API end to end: real HTTP on loopback, real Xvfb desktops, the real
client and agent against the fake model server (which records every request).

Covers a run with its SSE events and report, approving one action and declining another,
takeover + hand-back (the conversation sent next answers every tool_use and carries the
takeover turn), stop, reconnecting (events replayed, then live), two runs on two desktops,
and the shutdown of the server (runs stopped validly, reports written, desktops gone). Prints
the step event latency (record written -> SSE event received) and the takeover latency.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import pytest

from deskpilot.agent.control import TAKEN_OVER_TEXT
from deskpilot.agent.trajectory import read_run
from deskpilot.testing import RecordedRequest, message_response, tool_use_block
from deskpilot.ui.clients import scripted_reply
from ui_helpers import answered_everything, served

pytestmark = pytest.mark.desktop


def moves(n: int, prefix: str) -> list[dict]:
    return [
        tool_use_block(
            "computer", {"action": "mouse_move", "coordinate": [50 + 20 * k, 60]}, id=f"{prefix}{k}"
        )
        for k in range(n)
    ]


def assistant_turns(request: RecordedRequest) -> int:
    return sum(1 for m in request.messages if m["role"] == "assistant")


def script(per_step: int, steps: int):
    """Reply k: ``per_step`` pointer moves (ids s<k>m<j>), then a final text after ``steps``."""

    def reply(request: RecordedRequest) -> dict:
        k = assistant_turns(request)
        if k >= steps:
            return message_response([{"type": "text", "text": f"Finished <script>x</script> {k}"}])
        return message_response([{"type": "text", "text": f"step {k}"}, *moves(per_step, f"s{k}m")])

    return reply


async def test_a_run_end_to_end_with_events_report_and_replay(tmp_path):
    async with served(tmp_path, handler=scripted_reply, apps=("terminal",)) as ui:
        run_id = await ui.start("Say <script>alert(1)</script> in the terminal")
        async with ui.events(run_id) as sse:
            end = await sse.wait_type("end", timeout_s=120)
        manager_events = ui.manager.get(run_id).events.events
        latencies = [e.at - manager_events[e.id - 1].published for e in sse.of("step")]
        statuses = [e.data["status"] for e in sse.of("status")]
        assert statuses == ["queued", "starting", "running", "done"]
        steps = [e.data["record"]["index"] for e in sse.of("step")]
        assert steps == [1, 2, 3, 4, 5]
        assert [e.id for e in sse.events] == list(range(1, len(sse.events) + 1))
        summary = end.data["summary"]
        assert summary["status"] == "done" and summary["stop_reason"] == "end_turn"
        assert summary["steps"] == 5 and summary["cost"] > 0
        assert summary["usage"]["output_tokens"] > 0

        status, run = await ui.get(f"/api/runs/{run_id}")
        assert status == 200 and run["report_url"] == f"/runs/{run_id}/report.html"
        async with ui.session.get(ui.base + run["report_url"], headers=ui.auth) as r:
            assert r.status == 200 and "default-src 'none'" in r.headers["Content-Security-Policy"]
            html = await r.text()
            assert "&lt;script&gt;alert(1)" in html and "<script>alert(1)" not in html
        async with ui.session.get(ui.base + run["screenshot_url"], headers=ui.auth) as r:
            assert r.status == 200 and (await r.read()).startswith(b"\x89PNG")
        async with ui.session.get(
            f"{ui.base}/runs/{run_id}/../../etc/passwd", headers=ui.auth
        ) as r:
            assert r.status == 404
        _, listed = await ui.get("/api/runs")
        assert [r["id"] for r in listed["runs"]] == [run_id]

        # reconnecting replays: everything from the start, or after Last-Event-ID
        async with ui.events(run_id) as again:
            await again.wait_type("end")
        assert [(e.id, e.type) for e in again.events] == [(e.id, e.type) for e in sse.events]
        async with ui.events(run_id, last_id=4) as tail:
            await tail.wait_type("end")
        assert tail.events[0].id == 5 and tail.events[-1].id == sse.events[-1].id
    med = statistics.median(latencies)
    print(f"\nstep event latency (published -> received): median {med * 1e3:.1f} ms, "
          f"max {max(latencies) * 1e3:.1f} ms over {len(latencies)} steps")  # fmt: skip
    assert med < 0.25


async def test_approve_one_action_and_decline_another(tmp_path):
    async with served(tmp_path, handler=script(per_step=2, steps=1)) as ui:
        run_id = await ui.start("move twice", approve=True)
        async with ui.events(run_id) as sse:
            first = await sse.wait_type("approval")
            assert first.data["call_id"] == "s0m0" and first.data["name"] == "computer"
            assert first.data["input"] == {"action": "mouse_move", "coordinate": [50, 60]}
            assert first.data["model_size"] == first.data["native_size"] == [800, 600]
            _, run = await ui.get(f"/api/runs/{run_id}")
            assert [a["call_id"] for a in run["pending_approvals"]] == ["s0m0"]
            status, _ = await ui.post(f"/api/runs/{run_id}/approvals/nope", {"approve": True})
            assert status == 409
            assert (await ui.post(f"/api/runs/{run_id}/approvals/s0m0", {"approve": True}))[
                0
            ] == 200
            second = await sse.wait_type("approval", 2)
            assert second.data["call_id"] == "s0m1"
            status, _ = await ui.post(
                f"/api/runs/{run_id}/approvals/s0m1",
                {"approve": False, "reason": "not <there>"},
            )
            assert status == 200
            end = await sse.wait_type("end")
        assert end.data["summary"]["stop_reason"] == "end_turn"
        done = [e.data for e in sse.of("approval_done")]
        assert [(d["call_id"], d["approve"]) for d in done] == [("s0m0", True), ("s0m1", False)]
        sent = ui.fake.requests[1].messages
        assert answered_everything(sent)
        results = {b["tool_use_id"]: b for b in sent[-1]["content"] if b["type"] == "tool_result"}
        assert not results["s0m0"].get("is_error")
        assert results["s0m1"]["is_error"]
        text = str(results["s0m1"]["content"])
        assert "The user declined this action" in text and "not <there>" in text


async def test_takeover_and_handback_keep_the_conversation_valid(tmp_path):
    async with served(tmp_path, handler=script(per_step=2, steps=2), latency_s=0.8) as ui:
        run_id = await ui.start("move around")
        async with ui.events(run_id) as sse:
            await sse.wait(lambda s: any(e.data.get("status") == "running" for e in s.of("status")))
            t0 = time.monotonic()
            while len(ui.fake.requests) < 1:  # the model is thinking about its first turn
                assert time.monotonic() - t0 < 30
                await asyncio.sleep(0.02)
            t_post = time.perf_counter()
            status, body = await ui.post(f"/api/runs/{run_id}/takeover")
            takeover_latency = time.perf_counter() - t_post
            assert status == 200 and body["state"] == "held"
            run = ui.manager.get(run_id)
            assert run.control.held and not run.control.agent_acting
            _, summary = await ui.get(f"/api/runs/{run_id}")
            assert summary["takeover"]["state"] == "held"
            await sse.wait(
                lambda s: [e.data["state"] for e in s.of("takeover")] == ["requested", "held"]
            )
            shot_url = f"{ui.base}/api/runs/{run_id}/screenshot"
            async with ui.session.get(shot_url, headers=ui.auth) as r:
                png = await r.read()  # the desktop now, native pixels
                assert r.status == 200 and png[:4] == b"\x89PNG"
                assert int.from_bytes(png[16:20], "big") == 800
            last_seen = sse.events[-1].id
        await asyncio.sleep(1.2)  # the first turn arrives meanwhile; nothing may run
        assert len(ui.fake.requests) == 1
        # the browser was closed meanwhile; reopened, it gets what it missed, then live
        async with ui.events(run_id, last_id=last_seen) as sse2:
            status, body = await ui.post(
                f"/api/runs/{run_id}/handback", {"message": "I opened the <menu> for you"}
            )
            assert status == 200 and body["duration_s"] >= 1.0
            assert (await ui.post(f"/api/runs/{run_id}/handback", {}))[0] == 409
            end = await sse2.wait_type("end")
            assert sse2.events[0].id == last_seen + 1
        [ended] = sse2.of("takeover")
        assert ended.data["state"] == "ended" and ended.data["duration_s"] >= 1.0
        assert ended.data["message"] == "I opened the <menu> for you"
        assert end.data["summary"]["stop_reason"] == "end_turn"
        sent = ui.fake.requests[1].messages
        assert answered_everything(sent)
        last = sent[-1]["content"]
        results = [b for b in last if b["type"] == "tool_result"]
        assert [r["tool_use_id"] for r in results] == ["s0m0", "s0m1"]
        assert all(r["is_error"] and TAKEN_OVER_TEXT in str(r["content"]) for r in results)
        texts = [b["text"] for b in last if b["type"] == "text"]
        assert len(texts) == 1 and "took control" in texts[0]
        assert "I opened the <menu> for you" in texts[0]
        assert last[-1]["type"] == "image"
        assert answered_everything(ui.fake.requests[-1].messages)
        traj = read_run(ui.manager.get(run_id).run_dir)
        [tk] = traj.takeovers
        assert tk.message == "I opened the <menu> for you" and tk.duration_s >= 1.0
    print(f"\ntakeover latency (POST -> lease held, model call in flight): "
          f"{takeover_latency * 1e3:.1f} ms")  # fmt: skip
    assert takeover_latency < 1.0


async def test_stop_ends_the_run_validly_and_writes_the_report(tmp_path):
    async with served(tmp_path, handler=script(per_step=1, steps=50), latency_s=0.3) as ui:
        run_id = await ui.start("keep moving")
        async with ui.events(run_id) as sse:
            await sse.wait_type("step")
            status, body = await ui.post(f"/api/runs/{run_id}/stop")
            assert status == 200 and body["status"] == "stopping"
            end = await sse.wait_type("end")
        summary = end.data["summary"]
        assert summary["status"] == "done" and summary["stop_reason"] == "interrupted"
        assert summary["report_url"]
        traj = read_run(ui.manager.get(run_id).run_dir)
        assert traj.end is not None and traj.end.stop_reason == "interrupted"
        assert (ui.manager.get(run_id).run_dir / "report.html").is_file()
        assert (await ui.post(f"/api/runs/{run_id}/takeover"))[0] == 409


async def test_two_runs_on_two_desktops_and_a_queue(tmp_path):
    async with served(
        tmp_path, handler=script(per_step=1, steps=3), latency_s=0.5, desktops=2
    ) as ui:
        ids = [await ui.start(f"task {k}") for k in range(3)]
        streams = [ui.events(i) for i in ids]
        for s in streams:
            await s.__aenter__()
        try:
            running = lambda s: [e.data for e in s.of("status") if e.data["status"] == "running"]  # noqa: E731
            first = await streams[0].wait(running)
            second = await streams[1].wait(running)
            assert first[0]["display"] != second[0]["display"]
            assert ui.manager.get(ids[2]).status == "queued"  # only two desktops
            for s in streams:
                end = await s.wait_type("end", timeout_s=120)
                assert end.data["summary"]["stop_reason"] == "end_turn"
        finally:
            for s in streams:
                await s.__aexit__(None, None, None)


async def test_server_shutdown_stops_runs_validly_and_leaves_no_desktop(tmp_path):
    async with served(tmp_path, handler=script(per_step=1, steps=50), latency_s=0.3) as ui:
        run_id = await ui.start("keep moving")
        async with ui.events(run_id) as sse:
            await sse.wait_type("step")
            run = ui.manager.get(run_id)
            assert run.desktop is not None
            pids = list(run.desktop.pids)
            await ui.manager.shutdown()
            end = await sse.wait_type("end")
        assert end.data["summary"]["stop_reason"] == "interrupted"
        assert (run.run_dir / "report.html").is_file()
        assert (await ui.post("/api/runs", {"task": "more"}))[0] == 503
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_replay_serves_a_recorded_runs_turns(tmp_path):
    from deskpilot.ui.clients import replay_factories
    from deskpilot.ui.runs import RunManager, UIConfig

    async with served(tmp_path, handler=script(per_step=1, steps=2)) as ui:
        run_id = await ui.start("record me")
        async with ui.events(run_id) as sse:
            await sse.wait_type("end")
        recorded = ui.manager.get(run_id).run_dir
    clients, tools = replay_factories(recorded, latency_s=0.0)
    config = UIConfig(
        model="claude-4-sonnet", width=800, height=600, out=tmp_path / "again", apps=()
    )
    manager = RunManager(config, clients, tools_factory=tools)
    run = manager.create("record me")
    while run.status not in ("done", "failed"):
        await asyncio.sleep(0.05)
    assert run.error is None and run.result is not None
    assert run.result.steps == 3 and run.result.stop_reason == "end_turn"
    actions = [a.input for s in read_run(run.run_dir).readable_steps for a in s.actions]
    assert actions == [{"action": "mouse_move", "coordinate": [50, 60]}] * 2
