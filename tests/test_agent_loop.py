"""The agent loop with the real client against the fake model and a FakeComputer.

Fast: no X server and no socket (the client reaches the in-process FakeModel through its
MockTransport). Checks the wire (what the fake received), the executed actions (what the
FakeComputer recorded), the returned result and the trajectory on disk.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import ClassVar

import pytest

from deskpilot import LLMClient, Tool
from deskpilot.agent.context import PRUNED_IMAGE_TEXT
from deskpilot.agent.loop import INTERRUPTED_TEXT, Agent, AgentResult
from deskpilot.agent.many import run_many
from deskpilot.agent.trajectory import read_run
from deskpilot.computer_use.computer import ComputerTool
from deskpilot.computer_use.specs import TOOLSET_HALT_TEXT
from deskpilot.desktop.fake import FakeComputer
from deskpilot.prompt import Conversation
from deskpilot.testing import (
    FakeModel,
    count_body_images,
    count_cache_breakpoints,
    text_precedes_images,
)
from deskpilot.testing.wire import error_reply, message_response, text_response, tool_use_block

MODEL = "claude-4-sonnet"  # computer_20250124 + text_editor_20250429 + bash_20250124


def screenshot(i: str) -> dict:
    return tool_use_block("computer", {"action": "screenshot"}, id=i)


def respond(*blocks: dict, text: str | None = None) -> dict:
    content = ([{"type": "text", "text": text}] if text else []) + list(blocks)
    return message_response(content)


@pytest.fixture
async def server():
    async with FakeModel() as s:
        yield s


@pytest.fixture
async def client(server):
    c = LLMClient(
        MODEL,
        base_url=server.url,
        api_key="sk-ant-test-key-0123456789",
        max_attempts=1,
        progress="none",
        transport=server.transport(),
    )
    yield c
    await c.close()


def assert_valid_wire(server, max_images: int | None = None) -> None:
    """Every request: tool_uses answered by the next user turn, <= 4 breakpoints, text
    before images, and (optionally) at most max_images images."""
    for req in server.requests:
        body = req.body
        assert count_cache_breakpoints(body) <= 4, req.cache_control_locations()
        assert text_precedes_images(body)
        if max_images is not None:
            assert count_body_images(body) <= max_images
        msgs = body["messages"]
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            ids = [b["id"] for b in m["content"] if b.get("type") == "tool_use"]
            if not ids:
                continue
            nxt = msgs[i + 1]
            assert nxt["role"] == "user"
            answered = [b["tool_use_id"] for b in nxt["content"] if b.get("type") == "tool_result"]
            assert answered == ids


def assert_valid_conversation(conv: Conversation) -> None:
    msgs = conv.messages
    for i, m in enumerate(msgs):
        if m.role == "assistant" and m.tool_calls:
            assert i + 1 < len(msgs), "a tool_use was left unanswered"
            assert [r.tool_call_id for r in msgs[i + 1].tool_results] == [
                c.id for c in m.tool_calls
            ]


async def test_basic_flow_records_everything(server, client, tmp_path):
    fc = FakeComputer(1280, 800)
    server.enqueue(
        respond(screenshot("toolu_a"), text="Let me look."),
        respond(
            tool_use_block(
                "computer", {"action": "left_click", "coordinate": [100, 200]}, id="toolu_b"
            ),
            tool_use_block("bash", {"command": "echo hello-agent"}, id="toolu_c"),
        ),
        text_response("All done."),
    )
    steps = []
    agent = Agent(client, fc, out_dir=tmp_path, on_step=steps.append)
    result = await agent.run("Click the thing")
    assert isinstance(result, AgentResult)
    assert result.stop_reason == "end_turn" and result.ok
    assert result.final_text == "All done."
    assert result.steps == 3 and len(steps) == 3
    assert result.usage.input_tokens + result.usage.cache_read_tokens > 0
    # the desktop really got the click (legacy tier, 1280x800 is not scaled)
    assert (
        "click",
        {"x": 100, "y": 200, "button": "left", "count": 1, "modifiers": ()},
    ) in fc.actions()
    # wire
    assert len(server.requests) == 3
    assert_valid_wire(server)
    first = server.requests[0].body
    assert "computer_20250124" in server.requests[0].tool_types
    assert "bash_20250124" in server.requests[0].tool_types
    assert first["system"], "the default system prompt is sent"
    blocks = first["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["text", "image"]  # task text before the screenshot
    third = server.requests[2].body["messages"]
    results = {b["tool_use_id"]: b for b in third[-1]["content"]}
    bash_text = results["toolu_c"]["content"]
    bash_text = bash_text if isinstance(bash_text, str) else bash_text[0]["text"]
    assert "hello-agent" in bash_text
    # trajectory
    traj = read_run(result.trajectory_dir)
    assert not traj.unreadable and not traj.notes
    assert traj.start.model and traj.start.native_size == (1280, 800)
    assert traj.start.tool_versions.computer == "computer_20250124"
    assert (result.trajectory_dir / traj.start.initial_screenshot).is_file()
    assert [s.index for s in traj.steps] == [1, 2, 3]
    assert steps == result.step_records == traj.steps  # on_step and the result: the records
    s2 = traj.steps[1]
    assert [a.tool_use_id for a in s2.actions] == ["toolu_b", "toolu_c"]
    click = s2.actions[0]
    assert click.input == {"action": "left_click", "coordinate": [100, 200]}
    assert click.screenshot == "screenshots/0002-0.png"
    assert (result.trajectory_dir / click.screenshot).is_file()
    assert click.timings.model_fields_set == {"action_s", "settle_s", "screenshot_s", "total_s"}
    assert s2.timings.model_fields_set == {"model_s", "actions_s", "overhead_s", "step_s"}
    assert s2.response.images_in_request == 2
    assert traj.end.stop_reason == "end_turn" and traj.end.steps == 3
    raw = (result.trajectory_dir / "trajectory.jsonl").read_text()
    assert "sk-ant-test-key" not in raw
    assert_valid_conversation(result.conversation)


async def test_caller_conversation_is_not_modified(server, client, tmp_path):
    server.enqueue(respond(screenshot("toolu_1")), text_response("ok"))
    conv = Conversation().user("Look at the screen")
    before = [list(m.parts) for m in conv.messages]
    result = await Agent(client, FakeComputer(), out_dir=None).run(conv)
    assert [list(m.parts) for m in conv.messages] == before
    assert len(result.conversation.messages) == 4
    assert result.trajectory_dir is None


async def test_toolset_batch_halts_after_first_failure(server, client, tmp_path):
    fc = FakeComputer(1280, 800)
    computer = ComputerTool(fc, "computer_toolset_20260801", image_tier="legacy")
    server.enqueue(
        respond(
            tool_use_block(
                "left_click", {"coordinate": [10, 20]}, id="t1", toolset_name="computer"
            ),
            tool_use_block("key", {"text": "ctrl+no-such-key"}, id="t2", toolset_name="computer"),
            tool_use_block("type", {"text": "never typed"}, id="t3", toolset_name="computer"),
        ),
        text_response("stopped"),
    )
    result = await Agent(client, fc, tools=[computer], out_dir=tmp_path).run("batch")
    assert fc.typed == []
    tr = result.conversation.messages[2].tool_results
    assert [r.tool_call_id for r in tr] == ["t1", "t2", "t3"]
    assert [r.is_error for r in tr] == [False, True, True]
    assert tr[2].text == TOOLSET_HALT_TEXT
    assert all(r.toolset_name == "computer" for r in tr)
    assert tr[0].images, "the batch's last successful member gets the screenshot"
    sent = server.requests[1].body["messages"][-1]["content"]
    assert [b.get("toolset_name") for b in sent] == ["computer"] * 3
    assert_valid_wire(server)


async def test_approval_refusal_is_shown_to_the_model(server, client, tmp_path):
    fc = FakeComputer()
    asked = []

    async def approve(call):
        asked.append(call.id)
        return call.arguments.get("action") != "left_click"

    server.enqueue(
        respond(
            tool_use_block("computer", {"action": "left_click", "coordinate": [5, 5]}, id="c1")
        ),
        respond(screenshot("c2")),
        text_response("fine"),
    )
    result = await Agent(client, fc, approve=approve, out_dir=tmp_path).run("click")
    assert asked == ["c1", "c2"]
    assert not [a for a in fc.actions() if a[0] == "click"]
    refused = server.requests[1].body["messages"][-1]["content"][0]
    assert refused["is_error"] is True
    text = (
        refused["content"] if isinstance(refused["content"], str) else refused["content"][0]["text"]
    )
    assert text.startswith("The user declined this action: computer")
    assert result.stop_reason == "end_turn" and result.steps == 3
    step1 = read_run(result.trajectory_dir).steps[0].actions[0]
    assert step1.approved is False and step1.is_error is True


async def test_budget_stop_answers_pending_calls(server, client, tmp_path):
    server.enqueue(
        respond(screenshot("b1"), text="first"),
        respond(screenshot("b2")),
    )
    result = await Agent(client, FakeComputer(), budget_tokens=10, out_dir=tmp_path).run("x")
    assert result.stop_reason == "budget_tokens" and not result.ok
    assert len(server.requests) == 1 and result.steps == 1
    last = result.conversation.messages[-1]
    assert last.role == "user" and last.tool_results[0].is_error
    assert last.tool_results[0].text.startswith("Not executed")
    assert_valid_conversation(result.conversation)
    assert read_run(result.trajectory_dir).end.stop_reason == "budget_tokens"


async def test_budget_usd_and_max_turns(server, client):
    server.handler = lambda req: respond(screenshot(f"m{len(server.requests)}"))
    r = await Agent(client, FakeComputer(), max_turns=3, out_dir=None).run("loop forever")
    assert r.stop_reason == "max_turns" and r.steps == 3 and len(server.requests) == 3
    assert_valid_conversation(r.conversation)
    r2 = await Agent(client, FakeComputer(), budget_usd=1e-9, out_dir=None).run("spend")
    assert r2.stop_reason == "budget_usd" and r2.steps == 1


async def test_interrupt_mid_batch(server, client, tmp_path):
    fc = FakeComputer()
    computer = ComputerTool(fc, "computer_toolset_20260801", image_tier="legacy")
    server.enqueue(
        respond(
            tool_use_block("type", {"text": "one"}, id="i1", toolset_name="computer"),
            tool_use_block("type", {"text": "two"}, id="i2", toolset_name="computer"),
            tool_use_block("type", {"text": "three"}, id="i3", toolset_name="computer"),
        ),
        text_response("never requested"),
    )
    agent: Agent

    def approve(call):
        if call.id == "i1":  # from another thread, while the batch runs
            t = threading.Thread(target=agent.interrupt)
            t.start()
            t.join()
        return True

    agent = Agent(client, fc, tools=[computer], approve=approve, out_dir=tmp_path)
    result = await agent.run("type three words")
    assert fc.typed == ["one"]
    assert result.stop_reason == "interrupted"
    tr = result.conversation.messages[-1].tool_results
    assert [r.is_error for r in tr] == [False, True, True]
    assert [r.text for r in tr[1:]] == [INTERRUPTED_TEXT] * 2
    assert tr[0].images  # the executed member still gets its end-of-batch screenshot
    assert len(server.requests) == 1
    assert_valid_conversation(result.conversation)
    traj = read_run(result.trajectory_dir)
    assert [a.executed for a in traj.steps[0].actions] == [True, False, False]
    assert traj.end.stop_reason == "interrupted"


async def test_api_error_ends_the_run(server, client, tmp_path):
    server.enqueue(respond(screenshot("e1")), error_reply(400, message="messages: bad request"))
    result = await Agent(client, FakeComputer(), out_dir=tmp_path).run("x")
    assert result.stop_reason == "api_error" and result.error
    assert result.steps == 2
    traj = read_run(result.trajectory_dir)
    assert traj.steps[-1].response.is_error is True
    assert traj.end.error == result.error and "bad request" in result.error
    assert_valid_conversation(result.conversation)


async def test_pruning_bound_and_cache_reads(server, client, tmp_path):
    keep, interval, turns = 3, 4, 16
    server.handler = lambda req: (
        respond(screenshot(f"p{len(server.requests)}"))
        if len(server.requests) < turns
        else text_response("done")
    )
    result = await Agent(
        client,
        FakeComputer(400, 300),
        keep_screenshots=keep,
        prune_interval=interval,
        out_dir=tmp_path,
    ).run("watch")
    assert result.steps == turns
    counts = [count_body_images(r.body) for r in server.requests]
    assert max(counts) <= keep + interval - 1
    assert counts[:4] == [1, 2, 3, 4]
    assert min(counts[3:]) >= keep
    assert_valid_wire(server, max_images=keep + interval - 1)
    # pruned images became the placeholder text
    last = json.dumps(server.requests[-1].body["messages"])
    assert PRUNED_IMAGE_TEXT in last
    # the stable prefix is read from the (simulated) cache on most turns
    reads = [r.usage["cache_read_input_tokens"] for r in server.requests if r.usage]
    assert sum(1 for x in reads if x > 0) >= turns // 2
    recorded = [s.response.images_in_request for s in read_run(result.trajectory_dir).steps]
    assert recorded == counts


async def test_custom_tool_and_unknown_tool(server, client):
    seen = []

    def get_weather(location: str) -> str:
        """Get weather for a location."""
        seen.append(location)
        return f"The weather in {location} is sunny"

    def broken() -> str:
        """Always fails."""
        raise RuntimeError("sensor offline")

    server.enqueue(
        respond(
            tool_use_block("get_weather", {"location": "Paris"}, id="w1"),
            tool_use_block("broken", {}, id="w2"),
            tool_use_block("nonexistent", {}, id="w3"),
        ),
        text_response("ok"),
    )
    tools = [Tool.from_function(get_weather), Tool.from_function(broken)]
    result = await Agent(client, FakeComputer(), tools=tools, out_dir=None).run("weather?")
    assert seen == ["Paris"]
    names = server.requests[0].tool_names
    assert names[-2:] == ["get_weather", "broken"]  # custom tools after computer use tools
    assert "computer" in names
    tr = result.conversation.messages[2].tool_results
    assert tr[0].text == "The weather in Paris is sunny" and not tr[0].is_error
    assert tr[1].is_error and "sensor offline" in tr[1].text
    assert tr[2].is_error and "Unknown tool" in tr[2].text


async def test_agent_rejects_bad_settings(client):
    from deskpilot.errors import ConfigError

    with pytest.raises(ConfigError):
        Agent(client, FakeComputer(), max_turns=0)
    with pytest.raises(ConfigError):
        Agent(client, FakeComputer(), keep_screenshots=0)
    with pytest.raises(ConfigError):
        Agent(client, FakeComputer(), computer_version="computer_1999")
    with pytest.raises(ConfigError):
        await Agent(client, FakeComputer()).run("   ")


async def test_run_many_in_order_with_errors(server, client, tmp_path):
    server.handler = lambda req: text_response(f"answer to {req.prompt_text}")
    made = []

    class Factory:
        def __call__(self):
            made.append(1)
            return FakeComputer(640, 480)

    results = await run_many(
        ["task A", "task B", "task C", ""],
        client=client,
        desktops=2,
        desktop_factory=Factory(),
        show_progress=False,
        out_dir=tmp_path,
        initial_screenshot=False,
    )
    assert [r.final_text for r in results[:3]] == [
        "answer to task A",
        "answer to task B",
        "answer to task C",
    ]
    assert results[3].stop_reason == "error" and "task" in results[3].error
    assert len(made) == 2  # a pool of two desktops, reused
    fresh = await run_many(
        ["one", "two"],
        client=client,
        desktops=1,
        desktop_factory=Factory(),
        fresh_desktop=True,
        show_progress=False,
        out_dir=None,
    )
    assert [r.ok for r in fresh] == [True, True] and len(made) == 4


async def test_run_many_desktop_start_failure(client):
    def factory():
        raise RuntimeError("no X server here")

    results = await run_many(
        ["a", "b"], client=client, desktop_factory=factory, show_progress=False
    )
    assert [r.stop_reason for r in results] == ["error", "error"]
    assert "no X server here" in results[0].error


async def test_steps_its_tools_down_when_the_api_rejects_them(tmp_path):
    """The API refuses the toolset: the client reports the rejected type (it never rewrites
    the agent's tools), the agent moves its computer executor to computer_20251124 with the
    one step_down function, records it and sends the turn again; the model's beta-format
    calls then run."""
    fc = FakeComputer(1280, 800)
    async with FakeModel(reject_tool_types=["computer_toolset_20260801"]) as server:
        server.enqueue(
            respond(
                tool_use_block(
                    "computer", {"action": "left_click", "coordinate": [30, 40]}, id="d1"
                )
            ),
            text_response("ok"),
        )
        async with LLMClient(
            "claude-sonnet-5-5",
            base_url=server.url,
            api_key="sk-ant-test-key-0123456789",
            progress="none",
            transport=server.transport(),
        ) as c:
            result = await Agent(c, fc, out_dir=tmp_path).run("click")
        sent = [r.tool_types for r in server.requests if r.status == 200]
    assert result.stop_reason == "end_turn", result.error
    assert all("computer_20251124" in t for t in sent)
    assert not result.conversation.messages[2].tool_results[0].is_error
    assert [a for a in fc.actions() if a[0] == "click"]
    traj = read_run(result.trajectory_dir)
    assert traj.start.tool_versions.computer == "computer_toolset_20260801"
    assert traj.start.image_tier == "2576"
    assert result.steps == 2 and [s.index for s in traj.steps] == [1, 2]  # not a turn
    assert not traj.unreadable and not traj.notes
    [down] = traj.step_downs
    assert down.step == 1 and down.rejected == ["computer_toolset_20260801"]
    assert down.before.computer == "computer_toolset_20260801"
    assert down.after.model_dump() == {
        "computer": "computer_20251124",
        "editor": "text_editor_20250728",
        "bash": "bash_20250124",
    }


async def test_the_agent_starts_past_types_the_client_already_saw_rejected():
    """One client, one memory: after a computer_use=True request learned that the toolset is
    refused, an agent on the same client starts with the stepped-down group (no second 400)."""
    async with FakeModel(reject_tool_types=["computer_toolset_20260801"]) as server:
        async with LLMClient(
            "claude-opus-5",
            base_url=server.url,
            api_key="sk-ant-x",
            progress="none",
            transport=server.transport(),
        ) as c:
            first = await c.start("x", computer_use=True)
            result = await Agent(c, FakeComputer(), out_dir=None).run("look")
    assert not first.is_error and result.stop_reason == "end_turn", result.error
    assert [r.status for r in server.requests] == [400, 200, 200]
    assert server.requests[1].tool_types == server.requests[2].tool_types
    assert server.requests[2].tool_types[0] == "computer_20251124"


async def test_a_rejection_with_nothing_older_ends_the_run_with_the_api_error():
    async with FakeModel(reject_tool_types=["computer_20241022"]) as server:
        async with LLMClient(
            "claude-3-5-sonnet-20241022",
            base_url=server.url,
            api_key="sk-ant-x",
            progress="none",
            transport=server.transport(),
        ) as c:
            result = await Agent(c, FakeComputer(), out_dir=None).run("look")
    assert result.stop_reason == "api_error" and "computer_20241022" in (result.error or "")
    assert len(server.requests) == 1


async def test_bedrock_platform_uses_its_generation(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEDESKPILOT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    async with FakeModel() as server:
        server.enqueue(respond(screenshot("bd1")), text_response("done"))
        async with LLMClient(
            "claude-3.7-sonnet-bedrock",
            endpoint_url=server.url,
            progress="none",
            transport=server.transport(),
        ) as c:
            result = await Agent(c, FakeComputer(), out_dir=None).run("look")
    assert result.stop_reason == "end_turn", result.error
    assert [r.api for r in server.requests] == ["bedrock", "bedrock"]
    assert "computer_20250124" in server.requests[0].tool_types
    assert_valid_wire(server)


async def test_cancelled_run_keeps_completed_steps(tmp_path):
    """A run killed mid-way leaves every completed step on disk and a valid conversation."""
    started = asyncio.Event()

    async def handler(req):
        if len(server.requests) >= 3:
            started.set()
            await asyncio.sleep(30)
        return respond(screenshot(f"x{len(server.requests)}"))

    async with FakeModel(handler=handler) as server:
        async with LLMClient(
            MODEL,
            base_url=server.url,
            api_key="sk-ant-test-key-0123456789",
            progress="none",
            transport=server.transport(),
        ) as c:
            agent = Agent(c, FakeComputer(), out_dir=tmp_path, run_name="killed")
            task = asyncio.create_task(agent.run("long task"))
            await asyncio.wait_for(started.wait(), 20)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    traj = read_run(tmp_path / "killed")
    assert [s.index for s in traj.steps] == [1, 2]
    assert all(traj.path(s.actions[0].screenshot) for s in traj.readable_steps)
    assert traj.end.stop_reason == "interrupted"


class _FakeDesktopCM:
    """FakeComputer as the async context manager replay_run expects from a factory."""

    made: ClassVar[list[tuple[int, int]]] = []

    def __init__(self, width, height, **kwargs):
        self.computer = FakeComputer(width, height)
        _FakeDesktopCM.made.append((width, height))

    async def __aenter__(self):
        return self.computer

    async def __aexit__(self, *exc):
        return None


async def test_replay_compares_results_and_screenshots(server, client, tmp_path):
    from deskpilot.agent.replay import recorded_responses, replay_run

    server.enqueue(
        respond(
            tool_use_block("computer", {"action": "left_click", "coordinate": [50, 60]}, id="q1")
        ),
        respond(
            tool_use_block("computer", {"action": "type", "text": "declined"}, id="q2"),
            tool_use_block("bash", {"command": "echo replayed-bash"}, id="q3"),
        ),
        text_response("done", input_tokens=7, output_tokens=3),
    )
    result = await Agent(
        client,
        FakeComputer(800, 600),
        approve=lambda c: c.id != "q2",
        out_dir=tmp_path,
        run_name="rec",
    ).run("record me")
    run_dir = result.trajectory_dir
    # by default the bash action (it runs on this machine) is not replayed, only listed
    desktop_only = await replay_run(run_dir, desktop_factory=_FakeDesktopCM)
    assert desktop_only.ok and desktop_only.actions_replayed == 1
    assert [(p.step, p.index, p.summary) for p in desktop_only.skipped] == [
        (2, 1, "bash: echo replayed-bash")
    ]
    report = await replay_run(run_dir, desktop_factory=_FakeDesktopCM, host_actions=True)
    assert _FakeDesktopCM.made[-1] == (800, 600)
    assert report.ok, report.format()
    assert report.actions_replayed == 2  # the declined action is not replayed
    assert report.screenshots_compared == 2  # initial + the click
    assert "No divergence" in report.format()
    plain = await replay_run(
        run_dir,
        desktop_factory=lambda width, height: FakeComputer(width, height),
        host_actions=True,
    )
    assert plain.ok and plain.actions_replayed == 2

    # a different recorded text is reported at its step and action
    path = run_dir / "trajectory.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[2]["actions"][1]["text"] = "something-else"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    report2 = await replay_run(run_dir, desktop_factory=_FakeDesktopCM, host_actions=True)
    assert [(d.step, d.index, d.kind) for d in report2.divergences] == [(2, 1, "text")]
    assert not report2.ok and "step 2 action 1 (bash): text" in report2.format()

    bodies = recorded_responses(run_dir)
    assert [b["id"] for b in bodies] == ["msg_replay_0001", "msg_replay_0002", "msg_replay_0003"]
    assert bodies[1]["content"][0]["id"] == "q2" and bodies[1]["stop_reason"] == "tool_use"
    assert bodies[2]["usage"] == {
        "input_tokens": 7,
        "output_tokens": 3,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    assert all(
        set(b) >= {"id", "type", "role", "model", "content", "stop_reason", "usage"} for b in bodies
    )


async def test_gateway_platform_runs_the_same_loop():
    """On an OpenAI-compatible gateway the results become tool messages (+ images in a user
    message) and the loop still closes every call."""
    fc = FakeComputer(400, 300)
    async with FakeModel() as server:
        server.enqueue(
            respond(
                tool_use_block("computer", {"action": "left_click", "coordinate": [5, 5]}, id="g1")
            ),
            text_response("ok"),
        )
        async with LLMClient(
            MODEL,
            provider="gateway",
            base_url=server.gateway_base_url,
            api_key="sk-gw-0123456789",
            progress="none",
            transport=server.transport(),
        ) as c:
            result = await Agent(c, fc, out_dir=None).run("click")
    assert result.stop_reason == "end_turn" and result.final_text == "ok"
    assert [r.api for r in server.requests] == ["gateway", "gateway"]
    msgs = server.requests[1].body["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "user"]
    assert msgs[3]["tool_call_id"] == "g1"
    assert [a for a in fc.actions() if a[0] == "click"]


async def test_callback_failures_do_not_crash_the_run(server, client, caplog):
    def approve(call):
        raise RuntimeError("approver offline")

    def on_step(record):
        raise ValueError("printer jammed")

    fc = FakeComputer()
    server.enqueue(
        respond(
            tool_use_block("computer", {"action": "left_click", "coordinate": [1, 1]}, id="f1")
        ),
        text_response("ok"),
    )
    result = await Agent(client, fc, approve=approve, on_step=on_step, out_dir=None).run("x")
    assert result.stop_reason == "end_turn"
    tr = result.conversation.messages[2].tool_results[0]
    assert tr.is_error and "approval check failed" in tr.text and "approver offline" in tr.text
    assert not [a for a in fc.actions() if a[0] == "click"]
    assert "on_step callback raised" in caplog.text


async def test_interrupt_abandons_a_slow_model_call(tmp_path):
    arrived = threading.Event()

    async def handler(req):
        if len(server.requests) >= 2:
            arrived.set()
            await asyncio.sleep(30)  # a slow model turn
        return respond(screenshot(f"s{len(server.requests)}"))

    async with FakeModel(handler=handler) as server:
        async with LLMClient(
            MODEL,
            base_url=server.url,
            api_key="sk-ant-test-key-0123456789",
            progress="none",
            transport=server.transport(),
        ) as c:
            agent = Agent(c, FakeComputer(400, 300), out_dir=tmp_path)

            def interrupter():
                arrived.wait(20)
                agent.interrupt()

            t = threading.Thread(target=interrupter)
            t.start()
            result = await asyncio.wait_for(agent.run("slow"), 20)
            t.join()
    assert result.stop_reason == "interrupted"
    assert result.steps == 1  # the abandoned turn is not counted
    assert result.conversation.messages[-1].role == "user"
    assert_valid_conversation(result.conversation)
    traj = read_run(result.trajectory_dir)
    assert len(traj.steps) == 1 and traj.end.stop_reason == "interrupted"


async def test_default_executors_follow_the_models_group(server):
    """Claude 3.5 Sonnet (new) takes the 20241022 group: the agent's bash tool is
    bash_20241022 like computer_use=True sends (it used to send bash_20250124)."""
    async with LLMClient(
        "claude-3-5-sonnet-20241022",
        base_url=server.url,
        api_key="sk-ant-x",
        progress="none",
        transport=server.transport(),
    ) as c:
        await c.start("x", computer_use=True)
        await Agent(c, FakeComputer(), out_dir=None, initial_screenshot=False).run("look")
    client_sent, agent_sent = (r.tool_types for r in server.requests)
    assert (
        agent_sent == client_sent == ["computer_20241022", "text_editor_20241022", "bash_20241022"]
    )
