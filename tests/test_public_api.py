"""The public surface: one sorted ``__all__``, every name importable from its module."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import subprocess
import sys

import pytest

import deskpilot
from deskpilot import errors

EXPECTED = [
    "APIResponse",
    "Agent",
    "AgentResult",
    "BashTool",
    "ComputerTool",
    "Conversation",
    "DeskpilotError",
    "DesktopPool",
    "EditorTool",
    "Image",
    "LLMClient",
    "LocalDesktop",
    "Message",
    "NotSupported",
    "RemoteDesktop",
    "Text",
    "Thinking",
    "Tool",
    "ToolCall",
    "ToolResult",
    "Usage",
    "X11Display",
]


def test_all_is_sorted_and_pinned() -> None:
    assert deskpilot.__all__ == sorted(deskpilot.__all__)
    assert deskpilot.__all__ == EXPECTED


# name -> what the README and the seed's examples document it as: the members a user calls
# on it (async ones marked "async "), and "dataclass" for the plain records.
DOCUMENTED: dict[str, tuple[str, ...]] = {
    "APIResponse": ("dataclass", "completion", "content", "is_error", "usage"),
    "Agent": ("async run", "interrupt"),
    "AgentResult": ("dataclass", "final_text", "stop_reason", "trajectory_dir"),
    "BashTool": ("async execute", "async __aenter__"),
    "ComputerTool": ("async execute", "async __aenter__"),
    "Conversation": ("user", "system", "ai", "messages"),
    "DeskpilotError": (),
    "DesktopPool": ("lease", "health", "async start", "async close", "async __aenter__"),
    "EditorTool": ("async execute", "async __aenter__"),
    "Image": ("to_anthropic",),
    "LLMClient": ("async process_prompts_async", "process_prompts_sync", "async __aenter__"),
    "LocalDesktop": ("async __aenter__", "async __aexit__"),
    "Message": ("dataclass", "tool_calls", "completion"),
    "NotSupported": (),
    "RemoteDesktop": ("async __aenter__", "async __aexit__", "async screenshot", "async reset"),
    "Text": ("dataclass", "text"),
    "Thinking": ("dataclass", "content"),
    "Tool": ("dataclass", "from_function", "call", "async acall"),
    "ToolCall": ("dataclass", "id", "name", "arguments"),
    "ToolResult": ("dataclass", "tool_call_id", "result", "is_error"),
    "Usage": ("dataclass", "input_tokens", "output_tokens"),
    "X11Display": ("async __aenter__",),
}
# the seed's import line: `from deskpilot.prompt import Conversation, Message, ToolResult`
FROM_PROMPT = ("Conversation", "Image", "Message", "Text", "Thinking", "ToolCall", "ToolResult")


def test_every_public_name_is_the_documented_class() -> None:
    assert sorted(DOCUMENTED) == deskpilot.__all__
    for name, members in DOCUMENTED.items():
        obj = getattr(deskpilot, name)
        assert inspect.isclass(obj), name
        # the class itself under its own name, not an alias of another object
        assert (obj.__name__, obj.__qualname__) == (name, name)
        module = importlib.import_module(obj.__module__)
        assert module.__name__.startswith("deskpilot.") and name in module.__all__, name
        assert getattr(module, name) is obj
        for member in members:
            if member == "dataclass":
                assert dataclasses.is_dataclass(obj), name
                continue
            is_async, _, attr = member.rpartition(" ")
            fields = (
                {f.name for f in dataclasses.fields(obj)}
                if dataclasses.is_dataclass(obj)
                else set()
            )
            assert hasattr(obj, attr) or attr in fields, f"{name}.{attr}"
            if is_async:
                assert inspect.iscoroutinefunction(getattr(obj, attr)), f"{name}.{attr}"
    assert issubclass(deskpilot.DeskpilotError, Exception)
    for name in FROM_PROMPT:
        assert getattr(importlib.import_module("deskpilot.prompt"), name) is getattr(
            deskpilot, name
        )


def test_dir_lists_every_public_name() -> None:
    assert set(deskpilot.__all__) <= set(dir(deskpilot))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        deskpilot.Nope  # noqa: B018


def test_import_is_lazy_and_cheap() -> None:
    # Importing the package must not pull in aiohttp, PIL or Xlib (the CLI's --help stays fast).
    code = (
        "import sys, deskpilot; "
        "print(','.join(m for m in ('aiohttp', 'PIL', 'Xlib', 'mss') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_exception_tree_inherits_builtins() -> None:
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.ToolInputError, ValueError)
    assert issubclass(errors.ToolInputError, errors.ToolError)
    assert issubclass(errors.DeskpilotTimeoutError, TimeoutError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.DisplayDiedError, errors.DesktopError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DeskpilotError)


def test_errors_never_print_empty() -> None:
    assert str(errors.ToolError()) == "ToolError"
    assert str(errors.ModelNotFoundError("Unknown model 'x'.")) == "Unknown model 'x'."
