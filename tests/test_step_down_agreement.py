"""``computer_use=True`` and the agent send the same tool groups, step-downs included.

Issue 11: for ``claude-4-sonnet`` with ``computer_20250124`` rejected, ``computer_use=True``
sent ``computer_20241022 + text_editor_20241022 + bash_20241022`` while the agent sent
``computer_20241022 + text_editor_20250429 + bash_20250124``; editor and bash never stepped
down, and the agent's bash was never the model's version. Now both follow the one table and
the one ``step_down`` function: checked over every model in the registry x platform x
rejected type, on each platform's wire format (the in-process FakeModel answers the API's
400 through the client's MockTransport).
"""

from __future__ import annotations

import pytest
from botocore.credentials import Credentials

from deskpilot import LLMClient
from deskpilot.agent.loop import Agent
from deskpilot.computer_use.specs import ToolGroup, step_down
from deskpilot.desktop.fake import FakeComputer
from deskpilot.errors import ConfigError
from deskpilot.models import PLATFORMS, REGISTRY, ModelSpec
from deskpilot.testing import FakeModel


def _cases() -> list[tuple[str, str, str | None]]:
    specs: dict[str, ModelSpec] = {}
    for name in REGISTRY.names():
        spec = REGISTRY.resolve(name)
        specs.setdefault(spec.name, spec)
    cases: list[tuple[str, str, str | None]] = []
    for name, spec in sorted(specs.items()):
        for platform in PLATFORMS:
            try:
                spec.on_platform(platform)
            except ConfigError:
                continue  # not offered there
            group = spec.tool_group(platform)
            cases += [(name, platform, t) for t in (None, *group.types)]
    return cases


CASES = _cases()


@pytest.fixture
async def server():
    async with FakeModel() as s:
        yield s


def _client(server: FakeModel, spec: ModelSpec) -> LLMClient:
    akid, secret = server.aws_credentials or ("AKIDFAKEDESKPILOT", "fake-secret-key")
    return LLMClient(
        spec,
        environ=server.env(),
        aws_credentials=Credentials(akid, secret),
        google_credentials=server.vertex_credentials(),
        max_attempts=1,
        progress="none",
        transport=server.transport(),
    )


def _sent(server: FakeModel, since: int) -> list[tuple[ToolGroup, int | None]]:
    return [
        (ToolGroup.of_types(t for t in r.tool_types if t), r.status)
        for r in server.requests[since:]
    ]


def test_every_model_and_platform_is_covered() -> None:
    platforms = {(name, platform) for name, platform, _ in CASES}
    assert len({n for n, _ in platforms}) >= 20 and {p for _, p in platforms} == set(PLATFORMS)


@pytest.mark.parametrize(("name", "platform", "rejected"), CASES)
async def test_computer_use_and_the_agent_send_the_same_groups(
    server: FakeModel, name: str, platform: str, rejected: str | None
) -> None:
    spec = REGISTRY.resolve(name).on_platform(platform)
    server.reject_tool_types = {rejected} if rejected else set()
    start = len(server.requests)
    async with _client(server, spec) as client:
        response = await client.start("x", computer_use=True)
    by_client = _sent(server, start)

    start = len(server.requests)
    async with _client(server, spec) as client:
        result = await Agent(
            client, FakeComputer(1024, 768), out_dir=None, initial_screenshot=False, max_turns=1
        ).run("x")
    by_agent = _sent(server, start)

    assert by_agent == by_client
    group = spec.tool_group(platform)
    expected = step_down(group, {rejected} if rejected else set())
    if rejected is None:
        assert by_client == [(group, 200)]
    elif expected is None:  # nothing older: both report the API's error
        assert by_client == [(group, 400)]
        assert response.is_error and response.rejected_tool_types == (rejected,)
        assert result.stop_reason == "api_error"
    else:
        assert by_client == [(group, 400), (expected, 200)]
        assert not response.is_error and ToolGroup.of_types(response.tool_types) == expected
        assert result.stop_reason == "end_turn", result.error
