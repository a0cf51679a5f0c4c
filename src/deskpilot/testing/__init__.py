"""Test support: a fake of the model APIs, a mock transport, and reply builders.

``FakeModel`` answers the Anthropic Messages API, Bedrock InvokeModel (SigV4 checked), Vertex
AI rawPredict (bearer token checked, with a Google token endpoint) and OpenAI chat completions
(the gateway format), with scripted replies, injected faults,
rate-limit enforcement and simulated prompt caching; ``MockTransport`` hands an
``LLMClient``'s requests to a function (``FakeModel.handle`` or your own) with no socket;
``FakeModelServer`` serves the same fake over real HTTP on 127.0.0.1 for tests of the real
wire. ``count_request_tokens`` is the fake's token rule, shared with the benchmarks.

Example::

    from deskpilot import Conversation, LLMClient
    from deskpilot.testing import FakeModel, text_response, tool_use_response

    fake = FakeModel([tool_use_response("computer", {"action": "screenshot"}),
                      text_response("Done.")])
    fake.inject(529)                      # the first request is overloaded
    client = LLMClient(["claude-4-sonnet"], environ=fake.env(), transport=fake.transport())
    [r] = await client.process_prompts_async([Conversation().user("hi")],
                                             computer_use=True, show_progress=False)
    assert fake.requests[-1].betas == ["computer-use-2025-01-24"]

From a shell: ``python -m deskpilot.testing.fake_server --port 0 --rpm 50`` prints the URL and
the variables to export.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .bodies import (
    MAX_CACHE_BREAKPOINTS,
    count_body_images,
    count_cache_breakpoints,
    text_precedes_images,
)
from .caching import CachePlan, PromptCache
from .fake_model import FakeModel
from .limits import most_in_window
from .mock_transport import MockTransport, json_response
from .recorded import RecordedRequest
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
    from .fake_server import FakeModelServer, load_script

# fake_server is imported lazily so that ``python -m deskpilot.testing.fake_server`` does not
# find it already imported (runpy's RuntimeWarning).
_LAZY = {"FakeModelServer", "load_script"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(".fake_server", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_CACHE_BREAKPOINTS",
    "PROMPT_TOO_LONG",
    "CachePlan",
    "FakeModel",
    "FakeModelServer",
    "FakeReply",
    "MockTransport",
    "PromptCache",
    "RecordedRequest",
    "count_body_images",
    "count_cache_breakpoints",
    "count_request_tokens",
    "error_reply",
    "fault",
    "image_tokens",
    "json_response",
    "load_script",
    "message_response",
    "most_in_window",
    "text_precedes_images",
    "text_response",
    "text_tokens",
    "to_chat_completion",
    "tool_use_block",
    "tool_use_response",
]
