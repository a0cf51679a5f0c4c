"""The model client of each UI run: the real API, ``--fake`` (scripted) or ``--replay DIR``.

- live: an :class:`~deskpilot.LLMClient` for the run's model (keys from the environment);
- ``--fake``: the same client talking to an in-process :class:`~deskpilot.testing.FakeModel`
  (no socket, no key) whose replies are :func:`scripted_reply`: a short scripted task on the
  real desktop (look, move the pointer, type a command into the terminal and press Return,
  run a bash command, take a screenshot, answer). The reply depends only on how many
  assistant turns the request holds, so takeovers, declines and reloads never confuse it;
- ``--replay DIR``: a recorded run's model turns (:func:`deskpilot.agent.replay.recorded_responses`),
  a fresh copy for every run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..testing import FakeModel, RecordedRequest, message_response, tool_use_block
from .runs import ClientFactory, ToolsFactory

if TYPE_CHECKING:
    from ..agent.protocols import AgentClient
    from ..desktop.local import LocalDesktop

__all__ = [
    "FAKE_LATENCY_S",
    "fake_client_factory",
    "live_client_factory",
    "replay_factories",
    "scripted_reply",
]

FAKE_LATENCY_S = 0.8
"""Seconds the ``--fake`` model "thinks" before each reply (time to click Take over)."""

FAKE_COMMAND = "echo Hello from deskpilot"


def _tool(request: RecordedRequest, prefix: str) -> dict[str, Any] | None:
    for tool in request.tools:
        if isinstance(tool, dict) and str(tool.get("type", "")).startswith(prefix):
            return tool
    return None


def _task_text(request: RecordedRequest) -> str:
    first = request.messages[0] if request.messages else {}
    content = first.get("content") if isinstance(first, dict) else None
    if isinstance(content, str):
        return content
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            return str(block.get("text", ""))
    return ""


def scripted_reply(request: RecordedRequest) -> dict[str, Any]:
    """The ``--fake`` model's reply to ``request`` (a Messages API response body).

    Step k (k = assistant turns already in the request): 0 move the pointer to the screen's
    centre, 1 type :data:`FAKE_COMMAND` and press Return (two actions in one turn), 2 run
    ``echo`` with the bash tool, 3 take a screenshot, then a final text. Coordinates are in
    the model's screenshot pixels (the computer tool's ``display_width_px`` /
    ``display_height_px``). Without a ``computer_2...`` tool in the request (e.g. the
    toolset generation) it answers with text only.
    """
    step = sum(1 for m in request.messages if isinstance(m, dict) and m.get("role") == "assistant")
    computer = _tool(request, "computer_2")
    bash = _tool(request, "bash_")
    task = _task_text(request)
    note = "(deskpilot ui --fake: scripted replies, no model) "
    if computer is None or step >= 4:
        return message_response(
            [
                {
                    "type": "text",
                    "text": f"{note}Done. I typed {FAKE_COMMAND!r} into the terminal. "
                    f"Your task was: {task[:500]}",
                }
            ]
        )
    name = str(computer.get("name", "computer"))
    w = int(computer.get("display_width_px", 1024))
    h = int(computer.get("display_height_px", 768))
    blocks: list[dict[str, Any]]
    if step == 0:
        blocks = [
            {"type": "text", "text": f"{note}I will look at the desktop and find the terminal."},
            tool_use_block(name, {"action": "mouse_move", "coordinate": [w // 2, h // 2]}),
        ]
    elif step == 1:
        blocks = [
            {"type": "text", "text": "I will type a command into the terminal and run it."},
            tool_use_block(name, {"action": "type", "text": FAKE_COMMAND}),
            tool_use_block(name, {"action": "key", "text": "Return"}),
        ]
    elif step == 2 and bash is not None:
        blocks = [
            {"type": "text", "text": "Let me check with the bash tool too."},
            tool_use_block(str(bash.get("name", "bash")), {"command": FAKE_COMMAND}),
        ]
    else:
        blocks = [
            {"type": "text", "text": "A last look at the screen."},
            tool_use_block(name, {"action": "screenshot"}),
        ]
    return message_response(blocks)


def live_client_factory(provider: str | None) -> ClientFactory:
    """Clients for the real API (``provider``: force one, or None for the model's own)."""

    @contextlib.asynccontextmanager
    async def make(model: str) -> AsyncIterator[AgentClient]:
        from ..client.core import LLMClient

        kw: dict[str, Any] = {"provider": provider} if provider else {}
        async with LLMClient(model, **kw) as client:
            yield client

    return make


def _fake_factory(
    provider: str | None, make_fake: Any, *, latency_s: float = FAKE_LATENCY_S
) -> ClientFactory:
    @contextlib.asynccontextmanager
    async def make(model: str) -> AsyncIterator[AgentClient]:
        from ..client.core import LLMClient

        fake: FakeModel = make_fake()
        fake.latency_s = latency_s
        kw: dict[str, Any] = {"provider": provider} if provider else {}
        async with (
            fake,
            LLMClient(model, environ=fake.env(), transport=fake.transport(), **kw) as client,
        ):
            yield client

    return make


def fake_client_factory(
    provider: str | None = None, *, latency_s: float = FAKE_LATENCY_S
) -> ClientFactory:
    """Clients answered by :func:`scripted_reply` (in process, no key, no network)."""
    return _fake_factory(provider, lambda: FakeModel(handler=scripted_reply), latency_s=latency_s)


def replay_factories(
    run_dir: str | Path, *, latency_s: float = 0.3
) -> tuple[ClientFactory, ToolsFactory]:
    """For ``--replay``: clients answered by a recorded run's model turns, in order (then a
    short text), and the tools of its recorded versions with bash and the editor confined to
    each desktop's scratch HOME (:func:`deskpilot.agent.replay.replay_tools`).

    Raises:
        ConfigError: ``run_dir`` is not a run directory, or records no ``run_start``.
    """
    from ..agent.replay import recorded_responses, replay_tools
    from ..agent.trajectory import read_run

    run = read_run(run_dir)
    start = run.start
    if start is None:
        raise ConfigError(f"{run_dir} has no readable run_start; it cannot be replayed.")
    responses = recorded_responses(run)

    def tools(desktop: LocalDesktop) -> list[Any]:
        return list(replay_tools(desktop, start, desktop.home).values())

    clients = _fake_factory(
        "anthropic", lambda: FakeModel(responses=list(responses)), latency_s=latency_s
    )
    return clients, tools
