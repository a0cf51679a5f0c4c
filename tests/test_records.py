"""Every line the agent writes is exactly a typed record of deskpilot.agent.records.

The agent runs against the loopback fake model server and a FakeComputer through every kind of
step it records (screenshot, click + bash, a declined action, an editor call, a toolset
batch, an API error); each line of trajectory.jsonl must validate and dump back to the same
JSON object (no field missing, none unknown), and ``on_step`` / ``AgentResult.step_records``
carry those same records.
"""

from __future__ import annotations

import json

from deskpilot import LLMClient
from deskpilot.agent.loop import Agent
from deskpilot.agent.records import (
    FORMAT_VERSION,
    RunEnd,
    RunStart,
    StepRecord,
    parse_record,
)
from deskpilot.agent.trajectory import read_run
from deskpilot.computer_use.bash import BashTool
from deskpilot.computer_use.computer import ComputerTool
from deskpilot.computer_use.editor import EditorTool
from deskpilot.desktop.fake import FakeComputer
from deskpilot.testing import FakeModelServer
from deskpilot.testing.wire import error_reply, message_response, text_response, tool_use_block


def _respond(*blocks: dict, text: str | None = None) -> dict:
    return message_response(([{"type": "text", "text": text}] if text else []) + list(blocks))


def _lines(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "trajectory.jsonl").read_text().splitlines()]


def _assert_exact_records(lines: list[dict]) -> list:
    records = []
    for line in lines:
        record = parse_record(line)
        assert record.model_dump(mode="json") == line, line["type"]
        records.append(record)
    return records


async def test_every_line_the_agent_writes_is_a_typed_record(tmp_path):
    target = tmp_path / "notes.txt"
    async with FakeModelServer() as server:
        server.enqueue(
            _respond(tool_use_block("computer", {"action": "screenshot"}, id="a1"), text="look"),
            _respond(
                tool_use_block(
                    "computer", {"action": "left_click", "coordinate": [10, 20]}, id="a2"
                ),
                tool_use_block("bash", {"command": "echo hi"}, id="a3"),
                tool_use_block("computer", {"action": "type", "text": "no"}, id="a4"),
            ),
            _respond(
                tool_use_block(
                    "str_replace_based_edit_tool",
                    {"command": "create", "path": str(target), "file_text": "x\n"},
                    id="a5",
                )
            ),
            error_reply(400, message="messages: bad request"),
        )
        async with LLMClient(
            "claude-4-sonnet",
            base_url=server.url,
            api_key="sk-ant-test-key-0123456789",
            max_attempts=1,
            progress="none",
        ) as client:
            seen: list = []
            result = await Agent(
                client,
                FakeComputer(800, 600),
                approve=lambda call: call.id != "a4",
                on_step=seen.append,
                out_dir=tmp_path / "runs",
            ).run("records")
    assert result.stop_reason == "api_error"
    lines = _lines(result.trajectory_dir)
    records = _assert_exact_records(lines)
    assert [type(r) for r in records] == [RunStart, *[StepRecord] * 4, RunEnd]
    start = records[0]
    assert start.format_version == FORMAT_VERSION and start.native_size == (800, 600)
    assert start.initial_screenshot == "screenshots/0000-initial.png"
    steps = records[1:-1]
    # on_step and step_records carry the records that were written
    assert seen == result.step_records == steps
    assert [a.executed for a in steps[1].actions] == [True, True, False]
    assert steps[1].actions[2].approved is False and steps[1].actions[2].is_error
    assert steps[2].actions[0].name == "str_replace_based_edit_tool" and target.is_file()
    assert steps[3].response.is_error and steps[3].actions == []
    # the one reader agrees and finds nothing wrong
    run = read_run(result.trajectory_dir)
    assert not run.unreadable and not run.notes and run.steps == steps


async def test_toolset_batch_lines_are_typed_records(tmp_path):
    fc = FakeComputer()
    async with FakeModelServer() as server:
        server.enqueue(
            _respond(
                tool_use_block(
                    "left_click", {"coordinate": [5, 5]}, id="b1", toolset_name="computer"
                ),
                tool_use_block("type", {"text": "hi"}, id="b2", toolset_name="computer"),
            ),
            text_response("done"),
        )
        async with LLMClient(
            "claude-4-sonnet", base_url=server.url, api_key="sk-ant-test-key-0123456789",
            max_attempts=1, progress="none",
        ) as client:  # fmt: skip
            tools = [
                ComputerTool(fc, "computer_toolset_20260801", image_tier="legacy"),
                EditorTool(),
                BashTool(),
            ]
            try:
                result = await Agent(client, fc, tools=tools, out_dir=tmp_path).run("batch")
            finally:
                for t in tools:
                    await t.aclose()
    assert result.stop_reason == "end_turn"
    records = _assert_exact_records(_lines(result.trajectory_dir))
    batch = records[1].actions
    assert [a.toolset_name for a in batch] == ["computer", "computer"]
    # the end-of-batch screenshot is attached to the last member and recorded
    assert batch[1].screenshot == "screenshots/0001-1.png" and batch[0].screenshot is None
    assert batch[1].timings.screenshot_s > 0


async def test_a_key_passed_as_api_key_never_reaches_the_trajectory_or_report(tmp_path):
    """Regression: the writer scrubbed only the environment's keys, so a key passed as
    ``api_key=`` that showed up in a tool result (here the model, prompt-injected, echoes
    it through bash) was written to trajectory.jsonl and the report in clear."""
    from deskpilot.agent.report import write_report

    key = "sk-ant-passed-as-argument-0123456789"
    async with FakeModelServer() as server:
        server.enqueue(
            _respond(tool_use_block("bash", {"command": f"echo {key}"}, id="k1")),
            text_response(f"The key is {key}."),
        )
        async with LLMClient(
            "claude-4-sonnet", base_url=server.url, api_key=key, max_attempts=1, progress="none"
        ) as client:
            result = await Agent(client, FakeComputer(), out_dir=tmp_path).run("leak it")
    assert result.stop_reason == "end_turn"
    assert key in result.conversation.messages[2].tool_results[0].text  # it did leak there
    raw = (result.trajectory_dir / "trajectory.jsonl").read_text()
    assert key not in raw and raw.count("[redacted]") >= 3  # bash input, output, final text
    page = write_report(result.trajectory_dir).read_text(encoding="utf-8")
    assert key not in page
