"""A dead desktop under the Agent (issue 7, defect 9): restarted once, the model told, tools
moved to the new desktop; a second death stops the run with ``stop_reason="desktop_dead"``.

Real Xvfb (killed with SIGKILL mid-run), the real client and the loopback fake model server.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from deskpilot import LLMClient
from deskpilot.agent.desktop_recovery import DESKTOP_DEAD, RESTARTED_NOTE
from deskpilot.agent.loop import Agent
from deskpilot.desktop.local import LocalDesktop
from deskpilot.testing import FakeModelServer
from deskpilot.testing.wire import message_response, text_response, tool_use_block

pytestmark = pytest.mark.desktop


def bash(command: str, id: str) -> dict:
    return message_response([tool_use_block("bash", {"command": command}, id=id)])


def click(id: str) -> dict:
    return message_response(
        [tool_use_block("computer", {"action": "left_click", "coordinate": [50, 50]}, id=id)]
    )


def last_results(request) -> list[dict]:
    return request.body["messages"][-1]["content"]


def result_text(block: dict) -> str:
    content = block["content"]
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")


async def test_a_dead_desktop_is_restarted_once_then_the_run_stops(tmp_path):
    desktop = LocalDesktop(640, 480)
    seen: dict[str, object] = {}

    async def handler(req):
        n = req.index
        if n == 0:
            return bash('echo "$DISPLAY $HOME"', "b0")
        if n == 1:  # the X server dies while the model thinks
            seen["old_home"] = desktop.home
            os.kill(desktop.pids[0], signal.SIGKILL)
            return click("c1")
        if n == 2:
            return bash('echo "$DISPLAY $HOME"', "b2")
        if n == 3:
            seen["new"] = (desktop.display, desktop.home)
            os.kill(desktop.pids[0], signal.SIGKILL)  # and again
            return click("c3")
        return text_response("unreachable")

    async with FakeModelServer(handler=handler) as server, desktop:
        async with LLMClient(
            "claude-4-sonnet", base_url=server.url, api_key="sk-ant-test-0000", progress="none"
        ) as client:
            result = await Agent(client, desktop, out_dir=tmp_path).run("survive")
        requests = list(server.requests)
    assert result.stop_reason == DESKTOP_DEAD and not result.ok
    assert "died again" in (result.error or "")
    assert len(requests) == 4  # no turn burned after the second death

    # turn 2: the failed click, then the note that the desktop was restarted
    (clicked,) = last_results(requests[2])
    assert clicked["is_error"] and RESTARTED_NOTE in result_text(clicked)
    # turn 3: the bash tool followed the desktop (new DISPLAY and scratch HOME)
    (moved,) = last_results(requests[3])
    new_display, new_home = seen["new"]  # type: ignore[misc]
    assert result_text(moved).strip() == f"{new_display} {new_home}"
    assert new_home != seen["old_home"] and not seen["old_home"].exists()  # type: ignore[union-attr]

    records = [json.loads(line) for line in (result.trajectory_dir / "trajectory.jsonl").open()]
    restarts = [r for r in records if r["type"] == "desktop_restart"]
    assert len(restarts) == 1 and restarts[0]["step"] == 2
    assert restarts[0]["new_display"] == new_display and restarts[0]["tools_moved"] == ["bash"]
    assert records[-1]["type"] == "run_end" and records[-1]["stop_reason"] == DESKTOP_DEAD
    step2 = next(r for r in records if r["type"] == "step" and r["index"] == 2)
    assert RESTARTED_NOTE in step2["actions"][0]["text"]


async def test_follow_desktop_moves_a_bash_tool_given_the_old_env(tmp_path):
    from deskpilot import BashTool, ToolCall

    async with LocalDesktop(640, 480) as desktop:
        old_env = desktop.env
        async with BashTool(env={**old_env, "MINE": "kept"}) as tool:
            await tool.execute(ToolCall("1", "bash", {"command": "cd / && X=1"}))
            await desktop.restart()
            await tool.follow_desktop(old_env, desktop.env)
            r = await tool.execute(
                ToolCall("2", "bash", {"command": 'echo "$DISPLAY|$HOME|$MINE|${X:-}"'})
            )
            assert r.text == f"{desktop.display}|{desktop.home}|kept|"
            assert desktop.env["HOME"] != old_env["HOME"]
