"""Prompts: Conversation, Message and the content parts, with Anthropic and OpenAI round-trips.

The content parts (:mod:`deskpilot.prompt.parts`) follow the Anthropic Messages API content
blocks (https://docs.anthropic.com/en/api/messages); :mod:`deskpilot.prompt.conversation`
holds the turns and their OpenAI chat-completions form for gateways. Everything is
re-exported here: ``from deskpilot.prompt import Conversation, Message, ToolResult`` is the
seed's import line.
"""

from __future__ import annotations

from .conversation import Conversation, Message, Role, as_conversation, tool_call_from_openai
from .parts import (
    Image,
    Part,
    ResultPart,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
    detect_media_type,
    part_from_anthropic,
)

__all__ = [
    "Conversation",
    "Image",
    "Message",
    "Part",
    "ResultPart",
    "Role",
    "Text",
    "Thinking",
    "ToolCall",
    "ToolResult",
    "as_conversation",
    "detect_media_type",
    "part_from_anthropic",
    "tool_call_from_openai",
]
