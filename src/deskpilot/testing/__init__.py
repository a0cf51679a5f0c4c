"""Test support: a fake model server speaking the real wire formats, and its reply builders.

``FakeModelServer`` answers the Anthropic Messages API, Bedrock InvokeModel (SigV4 checked)
and OpenAI chat completions on 127.0.0.1, with scripted replies, injected faults, rate-limit
enforcement and simulated prompt caching. ``count_request_tokens`` is its token rule, shared
with the benchmarks.

Example::

    from deskpilot import Conversation, LLMClient
    from deskpilot.testing import FakeModelServer, text_response, tool_use_response

    async with FakeModelServer([tool_use_response("computer", {"action": "screenshot"}),
                                text_response("Done.")]) as server:
        server.inject(529)                      # the first request is overloaded
        client = LLMClient(["claude-4-sonnet"], environ=server.env())
        [r] = await client.process_prompts_async([Conversation().user("hi")],
                                                 computer_use=True, show_progress=False)
        assert server.requests[-1].betas == ["computer-use-2025-01-24"]

From a shell: ``python -m deskpilot.testing.fake_server --port 0 --rpm 50`` prints the URL and
the variables to export.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .caching import CachePlan, PromptCache
from .tokens import count_request_tokens, image_tokens, text_tokens
from .wire import (
    PROMPT_TOO_LONG,
    FakeReply,
    error_reply,
    fault,
    message_response,
    text_response,
    to_chat_completion,
    tool_use_block,
    tool_use_response,
)

if TYPE_CHECKING:
    from .fake_server import FakeModelServer, RecordedRequest, load_script

# fake_server is imported lazily so that ``python -m deskpilot.testing.fake_server`` does not
# find it already imported (runpy's RuntimeWarning).
_LAZY = {"FakeModelServer", "RecordedRequest", "load_script"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(".fake_server", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PROMPT_TOO_LONG",
    "CachePlan",
    "FakeModelServer",
    "FakeReply",
    "PromptCache",
    "RecordedRequest",
    "count_request_tokens",
    "error_reply",
    "fault",
    "image_tokens",
    "load_script",
    "message_response",
    "text_response",
    "text_tokens",
    "to_chat_completion",
    "tool_use_block",
    "tool_use_response",
]
