"""Token estimates used to reserve rate-limit budget before a request is sent.

Text: characters / 3.5, rounded up (English prose averages ~3.5-4 characters per Claude token;
erring high avoids 429s, and every reservation is reconciled with the response's real
``usage`` afterwards). Images: the API's rule for the model's tier (vision docs):
the size after the tier's resize (one rule, in :mod:`deskpilot.computer_use.scaling`), then
≈ w·h/750 tokens (legacy) or ⌈w/28⌉·⌈h/28⌉ ≤ 4784 (``2576``, Opus 4.7 and later). Tool definitions: the fixed overheads from
:mod:`deskpilot.providers.tools`.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from ..computer_use.scaling import ImageTier, model_size_for
from ..computer_use.scaling import image_tokens as visual_tokens
from ..prompt import Conversation, Image, Text, Thinking, ToolCall, ToolResult

CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD = 4


def text_tokens(text: str) -> int:
    """Estimated tokens of ``text`` (characters / 3.5, rounded up)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


@functools.lru_cache(maxsize=256)  # a pure function of a few screen sizes, on every request
def image_tokens(width: int, height: int, tier: str = "legacy") -> int:
    """Input tokens of a ``width`` x ``height`` image (pixels) under ``tier``'s rule.

    The API first resizes the image by its tier's rule: the same one deskpilot's screenshots
    are resized by (:func:`deskpilot.computer_use.scaling.model_size_for`), so a screenshot
    is estimated at the size actually sent. It then counts ``w*h/750`` tokens (legacy) or
    ``ceil(w/28)*ceil(h/28)`` (the 2576 tier). Unknown tiers count as legacy.
    """
    if width <= 0 or height <= 0:
        return 0
    tier_: ImageTier = "2576" if tier == "2576" else "legacy"
    w, h = model_size_for((width, height), tier=tier_)
    if tier_ == "2576":
        return visual_tokens(w, h)
    return math.ceil(w * h / 750)


def _image(img: Image, tier: str) -> int:
    try:
        w, h = img.size
    except Exception:  # undecodable bytes: the API will reject it; reserve a typical size
        return 1600
    return image_tokens(w, h, tier)


def _part_tokens(part: Any, tier: str) -> int:
    if isinstance(part, Text):
        return text_tokens(part.text)
    if isinstance(part, Image):
        return _image(part, tier)
    if isinstance(part, ToolResult):
        if isinstance(part.result, str):
            return text_tokens(part.result) + 8
        return 8 + sum(_part_tokens(p, tier) for p in part.result)
    if isinstance(part, ToolCall):
        return 12 + text_tokens(json.dumps(part.arguments))
    if isinstance(part, Thinking):
        return text_tokens(part.content)
    if isinstance(part, dict):
        if part.get("type") == "text":
            return text_tokens(str(part.get("text", "")))
        return text_tokens(json.dumps(part)) if part.get("type") != "image" else 1600
    return 0


def estimate_input_tokens(
    conv: Conversation, *, tier: str = "legacy", system: str | None = None, tool_overhead: int = 0
) -> int:
    """Estimated input tokens of a request: messages, system prompt, tool definitions.

    Args:
        conv: the conversation (not modified).
        tier: the model's image tier (``"legacy"`` or ``"2576"``).
        system: a system prompt that replaces the conversation's (see ``system=``).
        tool_overhead: tokens of the tool definitions (from the request's ToolSet).
    """
    total = tool_overhead
    for m in conv.messages:
        if m.role == "system":
            if system is None:
                total += sum(_part_tokens(p, tier) for p in m.parts)
            continue
        total += MESSAGE_OVERHEAD
        for p in m.parts:
            total += _part_tokens(p, tier)
    if system is not None:
        total += text_tokens(system)
    return max(total, 1)


__all__ = ["CHARS_PER_TOKEN", "estimate_input_tokens", "image_tokens", "text_tokens"]
