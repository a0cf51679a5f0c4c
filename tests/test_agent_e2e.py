"""End to end: the real client, the fake model server and a REAL Xvfb desktop.

Scripted model turns drive a real xterm (clicks and keystrokes through XTEST), the bash tool
checks the effect on disk, and the trajectory is replayed on a fresh desktop.
"""

from __future__ import annotations

import threading

import pytest
from PIL import Image as PILImage

from deskpilot import LLMClient
from deskpilot.agent.loop import INTERRUPTED_TEXT, Agent
from deskpilot.agent.replay import recorded_responses, replay_run
from deskpilot.agent.trajectory import read_run
from deskpilot.computer_use.computer import ComputerTool
from deskpilot.testing import (
    FakeModelServer,
    count_body_images,
    count_cache_breakpoints,
    text_precedes_images,
)
from deskpilot.testing.wire import message_response, text_response, tool_use_block

pytestmark = pytest.mark.desktop

MODEL = "claude-4-sonnet"
XTERM_POINT = [300, 200]  # inside the terminal window (xterm at +40+40, about 800x500)


def respond(*blocks, text=None):
    return message_response(([{"type": "text", "text": text}] if text else []) + list(blocks))


def wait_for_file_cmd(path, expect_lines=1):
    # the typed command runs in xterm's own shell; wait (bounded) until it has written
    return (
        f"for i in $(seq 100); do [ $(wc -l < {path} 2>/dev/null || echo 0) -ge {expect_lines} ] "
        f"&& break; sleep 0.05; done; cat {path}"
    )


@pytest.fixture(params=["local", "remote"])
async def terminal_desktop(request):
    """A 1280x800 desktop with an xterm: a LocalDesktop, or (remote) the desktop of a
    `deskpilot serve` subprocess driven through RemoteDesktop (every tool on the server)."""
    if request.param == "remote":
        from deskpilot import RemoteDesktop
        from served import served

        with served("--apps", "terminal", "--width", "1280", "--height", "800") as url:
            async with RemoteDesktop(url) as d:
                yield d
        return
    from deskpilot.desktop.local import LocalDesktop

    async with LocalDesktop(1280, 800, apps=("terminal",)) as d:
        yield d


@pytest.fixture
async def server():
    async with FakeModelServer() as s:
        yield s


@pytest.fixture
async def client(server):
    c = LLMClient(
        MODEL, base_url=server.url, api_key="sk-ant-e2e-key-000000", max_attempts=1, progress="none"
    )
    yield c
    await c.close()


async def test_multi_turn_flow_on_real_desktop(terminal_desktop, server, client, tmp_path):
    """The seed's multi-turn shape: screenshot, click, type into xterm, check with bash; one
    refused action on the way; every request well-formed."""
    out = tmp_path / "typed.txt"
    server.enqueue(
        respond(tool_use_block("computer", {"action": "screenshot"}, id="s1"), text="Looking."),
        respond(
            tool_use_block("computer", {"action": "left_click", "coordinate": XTERM_POINT}, id="s2")
        ),
        respond(
            tool_use_block(
                "computer", {"action": "type", "text": f"echo deskpilot-e2e > {out}\n"}, id="s3"
            )
        ),
        respond(tool_use_block("bash", {"command": "rm -rf /tmp/not-allowed"}, id="s4")),
        respond(tool_use_block("bash", {"command": wait_for_file_cmd(out)}, id="s5")),
        text_response("The terminal wrote the file."),
    )
    refused = []

    def approve(call):
        if "rm -rf" in call.arguments.get("command", ""):
            refused.append(call.id)
            return False
        return True

    agent = Agent(
        client,
        terminal_desktop,
        approve=approve,
        keep_screenshots=2,
        prune_interval=2,
        out_dir=tmp_path / "runs",
    )
    result = await agent.run("Write deskpilot-e2e into a file using the terminal")
    assert result.stop_reason == "end_turn", result.error
    assert out.read_text().strip() == "deskpilot-e2e"  # typed through the real X server
    assert refused == ["s4"]
    bash_result = result.conversation.messages[-2].tool_results[0]
    assert "deskpilot-e2e" in bash_result.text and not bash_result.is_error
    for req in server.requests:
        assert count_body_images(req.body) <= 2 + 2 - 1
        assert count_cache_breakpoints(req.body) <= 4
        assert text_precedes_images(req.body)
    refusal = server.requests[4].body["messages"][-1]["content"][0]
    assert refusal["is_error"] and "declined" in str(refusal["content"])
    traj = read_run(result.trajectory_dir)
    assert traj.start.native_size == (1280, 800) and traj.start.apps == ["terminal"]
    click = traj.steps[1].actions[0]
    assert click.input["coordinate"] == XTERM_POINT and click.screenshot
    with PILImage.open(result.trajectory_dir / click.screenshot) as im:
        assert im.size == tuple(traj.start.model_size)


async def test_interrupt_mid_batch_on_real_desktop(terminal_desktop, server, client, tmp_path):
    out = tmp_path / "lines.txt"
    computer = ComputerTool(terminal_desktop, "computer_toolset_20260801", image_tier="legacy")
    blocks = [
        tool_use_block("left_click", {"coordinate": XTERM_POINT}, id="k0", toolset_name="computer")
    ] + [
        tool_use_block(
            "type", {"text": f"echo {w} >> {out}\n"}, id=f"k{i + 1}", toolset_name="computer"
        )
        for i, w in enumerate(["one", "two", "three"])
    ]
    server.enqueue(respond(*blocks))
    agent: Agent

    def approve(call):
        if call.id == "k1":  # interrupt from another thread while "one" is being typed
            threading.Thread(target=agent.interrupt).start()
        return True

    from deskpilot.computer_use.bash import BashTool

    agent = Agent(
        client,
        terminal_desktop,
        tools=[computer, BashTool()],
        approve=approve,
        out_dir=tmp_path / "runs",
    )
    result = await agent.run("type three lines")
    assert result.stop_reason == "interrupted"
    tr = result.conversation.messages[-1].tool_results
    assert [r.tool_call_id for r in tr] == ["k0", "k1", "k2", "k3"]
    assert [r.is_error for r in tr] == [False, False, True, True]
    assert [r.text for r in tr[2:]] == [INTERRUPTED_TEXT] * 2
    async with BashTool() as bash:
        from deskpilot.prompt import ToolCall

        check = await bash.execute(ToolCall("c", "bash", {"command": wait_for_file_cmd(out)}))
    assert check.text.split() == ["one"]
    assert len(server.requests) == 1


async def test_budget_stop_on_real_desktop(terminal_desktop, server, client, tmp_path):
    server.enqueue(
        respond(tool_use_block("computer", {"action": "screenshot"}, id="b1")),
        respond(tool_use_block("computer", {"action": "screenshot"}, id="b2")),
    )
    result = await Agent(client, terminal_desktop, budget_tokens=500, out_dir=tmp_path).run("spend")
    assert result.stop_reason == "budget_tokens" and len(server.requests) == 1
    assert result.conversation.messages[-1].tool_results[0].text.startswith("Not executed")


async def test_trajectory_replay_round_trip(terminal_desktop, server, client, tmp_path):
    """A deterministic run replays without divergence; a tampered screenshot is caught; the
    recorded responses drive the loop again offline."""
    server.enqueue(
        respond(
            tool_use_block("computer", {"action": "mouse_move", "coordinate": [900, 700]}, id="r1")
        ),
        respond(
            tool_use_block("computer", {"action": "left_click", "coordinate": XTERM_POINT}, id="r2")
        ),
        respond(tool_use_block("computer", {"action": "type", "text": "echo replay\n"}, id="r3")),
        respond(tool_use_block("bash", {"command": "echo from-bash"}, id="r4")),
        text_response("done"),
    )
    result = await Agent(client, terminal_desktop, out_dir=tmp_path / "runs").run("replay me")
    assert result.stop_reason == "end_turn"
    run_dir = result.trajectory_dir

    report = await replay_run(run_dir, host_actions=True)
    assert report.actions_replayed == 4
    assert report.screenshots_compared >= 4
    assert report.ok, report.format()

    # tamper with one recorded screenshot: the replay must point at that step
    shot = run_dir / read_run(run_dir).steps[1].actions[0].screenshot
    with PILImage.open(shot) as im:
        bad = im.convert("RGB")
    bad.paste((255, 0, 255), (0, 0, bad.width // 2, bad.height // 2))
    bad.save(shot)
    report2 = await replay_run(run_dir, host_actions=True)
    assert [(d.step, d.kind) for d in report2.divergences] == [(2, "screenshot")]
    assert "left_click" in str(report2.divergences[0])

    # the recorded model turns, served by a fresh fake server, drive the same run offline
    bodies = recorded_responses(run_dir)
    assert [b["type"] for b in bodies] == ["message"] * 5
    async with FakeModelServer(responses=bodies) as replay_server:
        async with LLMClient(
            MODEL, base_url=replay_server.url, api_key="sk-ant-e2e-key-000000", progress="none"
        ) as c2:
            again = await Agent(c2, terminal_desktop, out_dir=None).run("replay me")
    assert again.stop_reason == "end_turn" and again.steps == 5
    ids = [c.id for m in again.conversation.messages for c in m.tool_calls]
    assert ids == ["r1", "r2", "r3", "r4"]


async def test_run_many_over_two_real_desktops(server, client, tmp_path):
    from deskpilot.agent.many import run_many
    from deskpilot.desktop.local import LocalDesktop

    def handler(req):
        # first turn of a task: take a screenshot; second turn: answer with the task name
        if len(req.body["messages"]) == 1:
            return respond(
                tool_use_block("computer", {"action": "screenshot"}, id=f"rm{req.index}")
            )
        return text_response(f"finished {req.prompt_text}")

    server.handler = handler
    displays = []

    def factory():
        d = LocalDesktop(640, 480)
        displays.append(d)
        return d

    results = await run_many(
        ["task one", "task two", "task three"],
        client=client,
        desktops=2,
        desktop_factory=factory,
        show_progress=False,
        out_dir=tmp_path,
    )
    assert [r.final_text for r in results] == [
        "finished task one",
        "finished task two",
        "finished task three",
    ]
    assert all(r.ok and r.steps == 2 for r in results)
    assert len(displays) == 2 and displays[0].display != displays[1].display
    for r in results:
        traj = read_run(r.trajectory_dir)
        assert traj.start.native_size == (640, 480) and traj.complete
