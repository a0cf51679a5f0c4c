"""Prompt-caching breakpoints: ``cache_control`` placement for the named cache modes.

Modes (LM Deluge's names, seed 000): ``tools_only`` marks the last tool definition;
``system_and_tools`` marks the system prompt (turned into a one-block list; the cached prefix
is tools, then system, so it covers the tools too; without a system prompt the last tool is
marked instead); ``last_user_message`` / ``last_2_user_messages`` / ``last_3_user_messages``
mark the last content block of the last 1/2/3 user turns. A list of modes combines them.

Rules (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching): at most 4
breakpoints per request — existing ``cache_control`` marks in the input count, and the
oldest user-turn marks are dropped first. The caller's objects are never mutated: marked
blocks, lists and messages are fresh copies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError
from .base import EPHEMERAL

MAX_BREAKPOINTS = 4
CACHE_MODES: dict[str, int] = {
    "tools_only": 0,
    "system_and_tools": 0,
    "last_user_message": 1,
    "last_2_user_messages": 2,
    "last_3_user_messages": 3,
}


def normalise_cache(cache: str | Iterable[str] | None) -> tuple[str, ...]:
    """``cache=`` as a tuple of mode names (None/False -> empty).

    Raises:
        ConfigError: an unknown mode.
    """
    if cache is None or cache is False:
        return ()
    modes = (cache,) if isinstance(cache, str) else tuple(cache)
    for m in modes:
        if m not in CACHE_MODES:
            raise ConfigError(
                f"cache={m!r} is not a cache mode; use one of {sorted(CACHE_MODES)} or a list "
                "of them, e.g. ['system_and_tools', 'last_3_user_messages']."
            )
    return modes


def _marked(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "cache_control": dict(EPHEMERAL)}


def _count_existing(
    tools: list[dict[str, Any]], system: Any, messages: list[dict[str, Any]]
) -> int:
    n = sum(1 for t in tools if "cache_control" in t)
    if isinstance(system, list):
        n += sum(1 for b in system if isinstance(b, dict) and "cache_control" in b)
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            n += sum(1 for b in content if isinstance(b, dict) and "cache_control" in b)
    return n


def apply_cache(
    modes: tuple[str, ...],
    tools: list[dict[str, Any]],
    system: str | list[dict[str, Any]] | None,
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """Return ``(tools, system, messages)`` with breakpoints for ``modes``.

    The inputs are not modified; lists that gain a mark are new lists holding a new dict
    for the marked item. At most :data:`MAX_BREAKPOINTS` marks in total.
    """
    if not modes:
        return tools, system, messages
    budget = MAX_BREAKPOINTS - _count_existing(tools, system, messages)
    want_system = "system_and_tools" in modes
    mark_system = want_system and bool(system)
    mark_tools = bool(tools) and ("tools_only" in modes or (want_system and not system))
    n_users = max(CACHE_MODES[m] for m in modes)

    if mark_tools and budget > 0 and "cache_control" not in tools[-1]:
        tools = [*tools[:-1], _marked(tools[-1])]
        budget -= 1
    if mark_system and budget > 0:
        if isinstance(system, str):
            system = [{"type": "text", "text": system, "cache_control": dict(EPHEMERAL)}]
            budget -= 1
        elif isinstance(system, list) and system and "cache_control" not in system[-1]:
            system = [*system[:-1], _marked(system[-1])]
            budget -= 1
    if n_users and budget > 0:
        user_idx = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        chosen = user_idx[-min(n_users, budget) :]  # the newest ones; older dropped first
        if chosen:
            messages = list(messages)
            for i in chosen:
                msg = messages[i]
                content = msg.get("content")
                if isinstance(content, str):
                    new_content: list[Any] = [
                        {"type": "text", "text": content, "cache_control": dict(EPHEMERAL)}
                    ]
                elif isinstance(content, list) and content:
                    if "cache_control" in content[-1]:
                        continue
                    new_content = [*content[:-1], _marked(content[-1])]
                else:
                    continue
                messages[i] = {**msg, "content": new_content}
    return tools, system, messages


def count_breakpoints(body: dict[str, Any]) -> int:
    """How many ``cache_control`` marks a Messages API body carries (for tests and checks)."""
    return _count_existing(body.get("tools") or [], body.get("system"), body.get("messages") or [])


__all__ = ["CACHE_MODES", "MAX_BREAKPOINTS", "apply_cache", "count_breakpoints", "normalise_cache"]
