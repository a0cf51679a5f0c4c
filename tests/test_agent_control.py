"""Takeover and hand-back in the agent loop (deskpilot.agent.control), against the fake model.

Fast: a FakeComputer (records every input) and the in-process FakeModel (records every
request). Checks that a takeover never cuts an action in half, that no input reaches the
desktop while the human holds the lease, and that the conversation sent after the hand-back
is valid: every tool_use answered, then the takeover text and a fresh screenshot.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from deskpilot import LLMClient, Tool
from deskpilot.agent.control import TAKEN_OVER_TEXT, Declined, RunControl
from deskpilot.agent.loop import Agent
from deskpilot.agent.report import write_report
from deskpilot.agent.trajectory import read_run
from deskpilot.desktop.fake import FakeComputer
from deskpilot.testing import FakeModel
from deskpilot.testing.wire import message_response, text_response, tool_use_block

MODEL = "claude-4-sonnet"
INPUT_METHODS = {"click", "mouse_down", "mouse_up", "key", "type_text", "scroll", "drag"}


def click(i: str, x: int = 100, y: int = 100) -> dict:
    return tool_use_block("computer", {"action": "left_click", "coordinate": [x, y]}, id=i)


def answered_everything(messages: list[dict]) -> bool:
    """Every tool_use of an assistant turn has a tool_result in the next (user) turn."""
    for k, m in enumerate(messages):
        if m["role"] != "assistant" or not isinstance(m["content"], list):
            continue
        uses = {b["id"] for b in m["content"] if b.get("type") == "tool_use"}
        if not uses:
            continue
        nxt = messages[k + 1] if k + 1 < len(messages) else None
        if nxt is None or nxt["role"] != "user":
            return False
        got = {b["tool_use_id"] for b in nxt["content"] if b.get("type") == "tool_result"}
        if uses - got:
            return False
    return True


def inputs(fc: FakeComputer) -> list[str]:
    return [name for name, _ in fc.calls if name in INPUT_METHODS]


def make_client(fake: FakeModel) -> LLMClient:
    return LLMClient(
        MODEL,
        base_url=fake.url,
        api_key="sk-ant-test-key-0123456789",
        max_attempts=1,
        progress="none",
        transport=fake.transport(),
    )


async def until(predicate, timeout_s: float = 5.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_takeover_during_model_call_answers_every_call_and_adds_the_turn(tmp_path):
    fake = FakeModel(
        [
            message_response([click("a"), click("b", 200, 200)]),
            text_response("Thanks, continuing."),
        ],
        latency_s=0.3,
    )
    fc = FakeComputer(1280, 800)
    control = RunControl()
    states: list[str] = []
    control.listeners.append(states.append)
    client = make_client(fake)
    agent = Agent(client, fc, model=MODEL, out_dir=tmp_path, control=control)
    run = asyncio.create_task(agent.run("click twice"))
    await until(lambda: len(fake.requests) == 1)  # the model is thinking
    waited = await control.take_over()
    assert waited < 0.05 and control.held  # nothing was in flight
    await asyncio.sleep(0.6)  # the response arrived meanwhile; the agent must not act
    assert inputs(fc) == []
    assert len(fake.requests) == 1
    control.hand_back('I closed the "Save" dialog <b>myself</b>')
    result = await asyncio.wait_for(run, 10)
    await client.close()

    assert inputs(fc) == []  # the turn planned before the takeover never ran
    assert states == ["requested", "held", "ended"]
    assert result.stop_reason == "end_turn"
    second = fake.requests[1].messages
    assert answered_everything(second)
    last = second[-1]["content"]
    results = [b for b in last if b["type"] == "tool_result"]
    assert [r["is_error"] for r in results] == [True, True]
    assert all(TAKEN_OVER_TEXT in str(r["content"]) for r in results)
    texts = [b["text"] for b in last if b["type"] == "text"]
    assert len(texts) == 1 and "took control" in texts[0]
    assert '"I closed the \\"Save\\" dialog <b>myself</b>"' in texts[0]
    kinds = [b["type"] for b in last]
    assert kinds.index("text") > max(i for i, k in enumerate(kinds) if k == "tool_result")
    assert kinds[-1] == "image"  # the fresh screenshot, after the text

    run_dir = read_run(result.trajectory_dir)
    [tk] = run_dir.takeovers
    assert tk.step == 1 and tk.message.startswith("I closed") and tk.duration_s >= 0.5
    assert tk.screenshot is not None and run_dir.path(tk.screenshot) is not None
    assert 0 <= tk.start <= tk.end
    html = write_report(result.trajectory_dir).read_text()
    assert "The user took over" in html and "&lt;b&gt;myself" in html and "<b>myself" not in html


async def test_takeover_waits_for_the_action_in_flight_and_skips_the_rest(tmp_path):
    started = asyncio.Event()

    async def slow_job() -> str:
        """A slow job."""
        started.set()
        await asyncio.sleep(0.4)
        return "job finished"

    tool = Tool.from_function(slow_job)
    fake = FakeModel(
        [
            message_response([tool_use_block("slow_job", {}, id="s1"), click("c")]),
            text_response("ok"),
        ]
    )
    fc = FakeComputer(1280, 800)
    control = RunControl()
    client = make_client(fake)
    agent = Agent(client, fc, model=MODEL, out_dir=None, control=control, tools=[tool])
    run = asyncio.create_task(agent.run("do the job"))
    await asyncio.wait_for(started.wait(), 5)
    assert control.agent_acting
    waited = await control.take_over()
    assert 0.2 < waited < 1.0  # held only once the job had finished, never half-way
    assert control.held and not control.agent_acting
    await asyncio.sleep(0.2)
    assert inputs(fc) == []
    control.hand_back()
    result = await asyncio.wait_for(run, 10)
    await client.close()
    sent = fake.requests[1].messages
    assert answered_everything(sent)
    by_id = {b["tool_use_id"]: b for b in sent[-1]["content"] if b["type"] == "tool_result"}
    assert "job finished" in str(by_id["s1"]["content"]) and not by_id["s1"].get("is_error")
    assert by_id["c"]["is_error"] and TAKEN_OVER_TEXT in str(by_id["c"]["content"])
    assert "The user wrote nothing." in str(sent[-1]["content"])
    assert inputs(fc) == [] and result.stop_reason == "end_turn"


async def test_takeover_after_a_final_answer_asks_the_model_again(tmp_path):
    fake = FakeModel([text_response("All done."), text_response("Seen your change.")])
    fake.latency_s = 0.3
    control = RunControl()
    client = make_client(fake)
    agent = Agent(client, FakeComputer(), model=MODEL, out_dir=None, control=control)
    run = asyncio.create_task(agent.run("x"))
    await until(lambda: len(fake.requests) == 1)
    await control.take_over()
    await asyncio.sleep(0.4)
    assert not run.done()  # waits for the hand-back instead of ending
    control.hand_back("please also save it")
    result = await asyncio.wait_for(run, 10)
    await client.close()
    assert result.final_text == "Seen your change." and result.steps == 2
    msgs = fake.requests[1].messages
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert "please also save it" in str(msgs[-1]["content"])


async def test_stop_during_a_takeover_ends_the_run_validly(tmp_path):
    fake = FakeModel([message_response([click("a")]), text_response("never")], latency_s=0.2)
    control = RunControl()
    client = make_client(fake)
    agent = Agent(client, FakeComputer(), model=MODEL, out_dir=tmp_path, control=control)
    run = asyncio.create_task(agent.run("x"))
    await until(lambda: len(fake.requests) == 1)
    await control.take_over()
    await asyncio.sleep(0.3)
    agent.interrupt()
    result = await asyncio.wait_for(run, 5)
    await client.close()
    assert result.stop_reason == "interrupted" and not control.held
    assert len(fake.requests) == 1
    parsed = read_run(result.trajectory_dir)
    assert parsed.end is not None and parsed.end.stop_reason == "interrupted"
    assert len(parsed.takeovers) == 1
    with pytest.raises(Exception, match="stopped"):
        await control.take_over()


async def test_a_declined_reason_reaches_the_model():
    fake = FakeModel([message_response([click("a"), click("b")]), text_response("ok")])
    answers = iter([True, Declined("wrong window <x>")])
    client = make_client(fake)
    fc = FakeComputer()
    agent = Agent(client, fc, model=MODEL, out_dir=None, approve=lambda call: next(answers))
    await agent.run("x")
    await client.close()
    results = [b for b in fake.requests[1].messages[-1]["content"] if b["type"] == "tool_result"]
    assert not results[0].get("is_error")
    assert results[1]["is_error"]
    text = str(results[1]["content"])
    assert "The user declined this action" in text and "wrong window <x>" in text
    assert inputs(fc) == ["click"]
