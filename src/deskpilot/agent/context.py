"""Context policy for the agent: interval screenshot pruning and cache breakpoints (pure functions).

Why intervals: a request is billed cheaply (cache reads at 0.1x) only up to the longest prefix
that an earlier request already wrote. Removing the oldest screenshot on every turn changes the
prefix every turn, so nothing after the first removed image is ever read from the cache.
Removing them in chunks of ``interval`` keeps the prefix byte-identical for ``interval`` turns
at a time, which is what Anthropic's guidance asks for (computer-use-tool page, "Manage
screenshot history": keep the last 3 screenshots and prune in batches so the cached prefix
stays stable; https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool). The reference loop's own rule
(``_maybe_filter_to_n_most_recent_images`` in github.com/anthropics/anthropic-quickstarts,
``computer-use-demo/computer_use_demo/loop.py``) is the same
arithmetic, but it switches pruning off whenever caching is on; here both are on.

The bound: with ``keep`` >= 1 and ``interval`` >= 1 a pruned request carries between
``min(total, keep)`` and ``keep + interval - 1`` images, never more (property-tested).

Nothing here mutates its inputs: :func:`prune_images` returns a new :class:`Conversation`
whose untouched messages and parts are shared with the original.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ConfigError
from ..prompt import Conversation, Image, Message, Text, ToolResult

PRUNED_IMAGE_TEXT = "[older screenshot removed to save context; the latest screenshots follow]"
"""The text that replaces a pruned image (constant, so the pruned prefix stays cacheable)."""

DEFAULT_CACHE_MODES: tuple[str, ...] = ("system_and_tools", "last_3_user_messages")
"""Breakpoints the agent asks the client for: one on system+tools (its prefix survives every
prune) and one on the last content block of each of the three most recent user turns (the
tool results): 4 in all, the API's maximum."""


def validate_policy(keep: int | None, interval: int) -> None:
    """Check a pruning policy.

    Args:
        keep: screenshots to keep (>= 1), or None to never prune.
        interval: how many images are removed at once (>= 1); 1 prunes every turn.

    Raises:
        ConfigError: ``keep`` < 1 or ``interval`` < 1.
    """
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise ConfigError(
            f"keep_screenshots must be None (never prune) or an integer >= 1, not {keep!r}; "
            "the model needs at least the latest screenshot."
        )
    if not isinstance(interval, int) or interval < 1:
        raise ConfigError(f"prune_interval must be an integer >= 1, not {interval!r}.")


def images_to_remove(total: int, keep: int | None, interval: int) -> int:
    """How many of the oldest images to drop from ``total`` so between ``keep`` and
    ``keep + interval - 1`` remain; the count only changes in steps of ``interval``.

    Returns 0 when ``keep`` is None or ``total <= keep``.
    """
    if keep is None or total <= keep:
        return 0
    excess = total - keep
    return excess - excess % interval


def _is_image(part: Any) -> bool:
    return isinstance(part, Image) or (isinstance(part, dict) and part.get("type") == "image")


def _result_images(result: ToolResult) -> int:
    if isinstance(result.result, str):
        return 0
    return sum(1 for p in result.result if _is_image(p))


def count_images(conversation: Conversation | Iterable[Message]) -> int:
    """Images in user turns: top-level image parts and images inside tool_result contents."""
    messages = conversation.messages if isinstance(conversation, Conversation) else conversation
    n = 0
    for m in messages:
        if m.role != "user":
            continue
        for p in m.parts:
            if isinstance(p, ToolResult):
                n += _result_images(p)
            elif _is_image(p):
                n += 1
    return n


def prune_images(conversation: Conversation, keep: int | None, interval: int) -> Conversation:
    """A view of ``conversation`` with its oldest images replaced by :data:`PRUNED_IMAGE_TEXT`.

    Images are counted in user turns (top-level ones and those inside ``tool_result``
    contents), oldest first; :func:`images_to_remove` says how many go. The newest ``keep``
    images are always kept. Messages that lose no image are shared with the input; the
    others are new ``Message``/``ToolResult`` objects (the input is never mutated).

    Args:
        conversation: the full history.
        keep: screenshots to keep, or None (returns ``conversation`` itself).
        interval: removal granularity in images (see module docstring).

    Returns:
        A Conversation carrying at most ``keep + interval - 1`` images (when ``keep`` is set).
    """
    total = count_images(conversation) if keep is not None else 0
    remove = images_to_remove(total, keep, interval)
    if remove == 0:
        return conversation
    placeholder = Text(PRUNED_IMAGE_TEXT)
    out: list[Message] = []
    for m in conversation.messages:
        if remove == 0 or m.role != "user":
            out.append(m)
            continue
        new_parts: list[Any] = []
        changed = False
        for p in m.parts:
            if remove and isinstance(p, ToolResult) and _result_images(p):
                parts: list[Any] = []
                for q in p.result:
                    if remove and _is_image(q):
                        parts.append(placeholder)
                        remove -= 1
                    else:
                        parts.append(q)
                new_parts.append(ToolResult(p.tool_call_id, parts, p.is_error, p.toolset_name))
                changed = True
            elif remove and _is_image(p):
                new_parts.append(placeholder)
                remove -= 1
                changed = True
            else:
                new_parts.append(p)
        out.append(Message(m.role, new_parts) if changed else m)
    return Conversation(out)


def text_before_images(parts: Sequence[Any]) -> list[Any]:
    """Reorder parts so every non-image part comes before the images (stable otherwise).

    Anthropic's guidance: instruction text before the screenshot in a user turn improves
    click accuracy (computer use tool page,
    https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool).
    """
    return [p for p in parts if not _is_image(p)] + [p for p in parts if _is_image(p)]


__all__ = [
    "DEFAULT_CACHE_MODES",
    "PRUNED_IMAGE_TEXT",
    "count_images",
    "images_to_remove",
    "prune_images",
    "text_before_images",
    "validate_policy",
]
