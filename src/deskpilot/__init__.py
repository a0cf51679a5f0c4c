"""deskpilot: Claude computer use at scale.

An LLM client with the LM Deluge API (``LLMClient``, ``Conversation``,
``process_prompts_async(..., computer_use=True)``), real executors for the computer,
text-editor and bash tools on a local Xvfb desktop, and an agent loop that records and
reports. Public names are imported lazily (PEP 562) so ``import deskpilot`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "APIResponse": "deskpilot.response",
    "Agent": "deskpilot.agent.loop",
    "AgentResult": "deskpilot.agent.loop",
    "BashTool": "deskpilot.computer_use.bash",
    "ComputerTool": "deskpilot.computer_use.computer",
    "Conversation": "deskpilot.prompt",
    "DeskpilotError": "deskpilot.errors",
    "DesktopPool": "deskpilot.pool.core",
    "EditorTool": "deskpilot.computer_use.editor",
    "Image": "deskpilot.prompt",
    "LLMClient": "deskpilot.client.core",
    "LocalDesktop": "deskpilot.desktop.local",
    "Message": "deskpilot.prompt",
    "NotSupported": "deskpilot.errors",
    "RemoteDesktop": "deskpilot.remote.client",
    "Text": "deskpilot.prompt",
    "Thinking": "deskpilot.prompt",
    "Tool": "deskpilot.tool",
    "ToolCall": "deskpilot.prompt",
    "ToolResult": "deskpilot.prompt",
    "Usage": "deskpilot.response",
    "X11Display": "deskpilot.desktop.local",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deskpilot' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
