"""The public surface: one sorted ``__all__``, every name importable from its module."""

from __future__ import annotations

import subprocess
import sys

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
    "EditorTool",
    "Image",
    "LLMClient",
    "LocalDesktop",
    "Message",
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


def test_every_public_name_resolves() -> None:
    for name in deskpilot.__all__:
        assert getattr(deskpilot, name) is not None, name


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
