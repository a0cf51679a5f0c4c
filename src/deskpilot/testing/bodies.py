"""Inspect Messages API request bodies: cache breakpoints, images, text-before-images order.

Checks for tests and benchmarks on what the fake server recorded
(:attr:`RecordedRequest.body <deskpilot.testing.RecordedRequest>`): the API accepts at most
:data:`MAX_CACHE_BREAKPOINTS` ``cache_control`` blocks (prompt caching page,
https://platform.claude.com/docs/en/build-with-claude/prompt-caching), and instruction text
should come before screenshots (computer use tool page,
https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool).
"""

from __future__ import annotations

from typing import Any

MAX_CACHE_BREAKPOINTS = 4
"""The Messages API accepts at most four ``cache_control`` blocks per request."""


def count_cache_breakpoints(body: dict[str, Any]) -> int:
    """``cache_control`` markers in a Messages API request body (tools, system, messages,
    and a top-level one); the API rejects more than :data:`MAX_CACHE_BREAKPOINTS`."""
    n = 1 if body.get("cache_control") else 0
    n += sum(1 for t in body.get("tools") or [] if isinstance(t, dict) and t.get("cache_control"))
    system = body.get("system")
    if isinstance(system, list):
        n += sum(1 for b in system if isinstance(b, dict) and b.get("cache_control"))
    for m in body.get("messages") or []:
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for b in content:
            if isinstance(b, dict) and b.get("cache_control"):
                n += 1
            if isinstance(b, dict) and isinstance(b.get("content"), list):
                n += sum(1 for c in b["content"] if isinstance(c, dict) and c.get("cache_control"))
    return n


def count_body_images(body: dict[str, Any]) -> int:
    """Image blocks in a Messages API request body, including those inside tool_results."""
    n = 0
    for m in body.get("messages") or []:
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for b in content:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "image":
                n += 1
            elif b.get("type") == "tool_result" and isinstance(b.get("content"), list):
                n += sum(
                    1 for c in b["content"] if isinstance(c, dict) and c.get("type") == "image"
                )
    return n


def text_precedes_images(body: dict[str, Any]) -> bool:
    """True when, in every user turn and every tool_result of ``body``, no text block comes
    after an image block (the ordering rule of :func:`text_before_images`)."""

    def ordered(blocks: list[Any]) -> bool:
        seen_image = False
        for b in blocks:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "image":
                seen_image = True
            elif b.get("type") == "text" and seen_image:
                return False
        return True

    for m in body.get("messages") or []:
        content = m.get("content")
        if m.get("role") != "user" or not isinstance(content, list):
            continue
        top = [b for b in content if isinstance(b, dict) and b.get("type") in ("text", "image")]
        if not ordered(top):
            return False
        for b in content:
            if isinstance(b, dict) and b.get("type") == "tool_result":
                inner = b.get("content")
                if isinstance(inner, list) and not ordered(inner):
                    return False
    return True


__all__ = [
    "MAX_CACHE_BREAKPOINTS",
    "count_body_images",
    "count_cache_breakpoints",
    "text_precedes_images",
]
