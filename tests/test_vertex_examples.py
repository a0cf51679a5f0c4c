"""The seed's examples on Vertex AI (issue 10, item 1): each script under ``examples/`` runs
with its model names given the ``-vertex`` suffix (``claude-4-sonnet`` ->
``claude-4-sonnet-vertex``, ``claude-3.7-sonnet-bedrock`` -> ``claude-3.7-sonnet-vertex``),
in a subprocess against the FakeModelServer's Vertex route, with Google credentials from a
service-account file whose token endpoint is the same server (``GOOGLE_APPLICATION_CREDENTIALS``)
and no Anthropic key in the environment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from deskpilot.testing import FakeModelServer, RecordedRequest, text_response, tool_use_response

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SONNET_4 = "claude-sonnet-4@20250514"
SONNET_37 = "claude-3-7-sonnet@20250219"
RENAMES = {
    '"claude-4-sonnet"': '"claude-4-sonnet-vertex"',
    '"claude-3.7-sonnet-bedrock"': '"claude-3.7-sonnet-vertex"',
}


def vertex_script(name: str, directory: Path) -> Path:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    for old, new in RENAMES.items():
        text = text.replace(old, new)
    assert "-vertex" in text, f"{name} names no model to move to Vertex"
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


async def run_on_vertex(name: str, server: FakeModelServer, tmp_path: Path) -> tuple[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "AWS_", "OPENAI_", "DESKPILOT_", "GOOGLE_", "CLOUD_"))
    }
    env.update(
        {
            "ANTHROPIC_VERTEX_BASE_URL": server.url + "/v1",
            "CLOUD_ML_REGION": "us-east5",
            "GOOGLE_APPLICATION_CREDENTIALS": server.write_vertex_credentials(tmp_path),
            "PYTHONUNBUFFERED": "1",
        }
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(vertex_script(name, tmp_path)),
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()


def assert_vertex_request(req: RecordedRequest, model: str = SONNET_4) -> None:
    assert req.api == "vertex"
    assert req.path == (
        "/v1/projects/deskpilot-fake-project/locations/us-east5/publishers/anthropic/"
        f"models/{model}:rawPredict"
    )  # the project comes from the service-account file
    assert req.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in req.body
    assert req.headers["authorization"].startswith("Bearer ya29.fake-")  # an issued token
    assert "x-api-key" not in req.headers


def assert_sonnet_4_tools(req: RecordedRequest, width: int = 1024, height: int = 768) -> None:
    assert req.tool_types[:3] == ["computer_20250124", "text_editor_20250429", "bash_20250124"]
    assert req.betas == ["computer-use-2025-01-24"]
    computer = req.tools[0]
    assert (computer["display_width_px"], computer["display_height_px"]) == (width, height)


async def test_quick_start_on_vertex(tmp_path: Path) -> None:
    reply = tool_use_response("computer", {"action": "screenshot"}, text="Taking a screenshot.")
    async with FakeModelServer([reply]) as server:
        out, err = await run_on_vertex("01_quick_start_anthropic.py", server, tmp_path)
        issued = set(server.vertex.issued)
    assert "Claude's response:\nTaking a screenshot." in out
    assert "  - computer: {'action': 'screenshot'}" in out
    (req,) = server.requests
    assert_vertex_request(req)
    assert req.status == 200 and req.headers["authorization"][7:] in issued
    assert_sonnet_4_tools(req, 1920, 1080)
    assert req.cache_control_locations() == ["tools[2]"]
    assert not any(token in out + err for token in issued)


async def test_the_bedrock_example_moved_to_vertex(tmp_path: Path) -> None:
    async with FakeModelServer([text_response("On Vertex.")]) as server:
        out, _ = await run_on_vertex("02_bedrock.py", server, tmp_path)
    assert out.strip() == "On Vertex."
    (req,) = server.requests
    assert_vertex_request(req, SONNET_37)
    assert req.tool_types[:3] == ["computer_20250124", "text_editor_20250124", "bash_20250124"]
    assert "authorization" in req.headers and "x-amz-date" not in req.headers


@pytest.mark.parametrize(
    ("name", "count", "sizes"),
    [
        ("04_prompt_caching.py", 4, [(1024, 768)] * 4),
        ("05_rate_limits.py", 1, [(1024, 768)]),
        ("06_display.py", 2, [(2560, 1440), (1920, 1080)]),
    ],
)
async def test_the_batch_examples_on_vertex(
    name: str, count: int, sizes: list[tuple[int, int]], tmp_path: Path
) -> None:
    async with FakeModelServer() as server:
        await run_on_vertex(name, server, tmp_path)
    assert len(server.requests) == count
    assert len(server.vertex.token_requests) == 1  # one token for the whole script
    for req, (w, h) in zip(server.requests, sizes, strict=True):  # one batch after another
        assert_vertex_request(req)
        assert req.status == 200
        assert_sonnet_4_tools(req, w, h)


async def test_custom_tools_on_vertex(tmp_path: Path) -> None:
    reply = tool_use_response("get_weather", {"location": "Paris"})
    async with FakeModelServer([reply]) as server:
        out, _ = await run_on_vertex("07_custom_tools.py", server, tmp_path)
    assert "The weather in Paris is sunny" in out
    (req,) = server.requests
    assert_vertex_request(req)
    assert req.tool_names[3] == "get_weather" and req.cache_control_locations() == ["tools[3]"]


async def test_error_handling_reports_a_permanent_error_on_vertex(tmp_path: Path) -> None:
    async with FakeModelServer() as server:
        server.inject("prompt_too_long")
        out, _ = await run_on_vertex("08_error_handling.py", server, tmp_path)
    assert out.startswith("Error: Vertex AI request for claude-4-sonnet-vertex failed")
    assert "prompt is too long" in out
    assert len(server.requests) == 1


@pytest.mark.slow  # the seed's RPM limit of 10 spaces its two requests 6 s apart
async def test_multi_turn_and_a_quota_retry_on_vertex(tmp_path: Path) -> None:
    script = [
        tool_use_response("computer", {"action": "screenshot"}, id="toolu_01A"),
        text_response("The script is written."),
    ]
    async with FakeModelServer(script) as server:
        server.inject(429)  # Vertex's quota error: retried
        out, _ = await run_on_vertex("03_multi_turn.py", server, tmp_path)
    assert "Task completed - no more tool calls" in out
    assert [r.status for r in server.requests] == [429, 200, 200]
    assert server.requests[0].error_type == "RESOURCE_EXHAUSTED"
    result = server.requests[2].messages[2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_01A"
