"""Simulated Anthropic prompt caching: cache reads and writes computed from ``cache_control``.

Model of the real behaviour ("Prompt caching" page of the Messages API docs):

- The cacheable prefix is the request in the order ``tools``, then ``system``, then
  ``messages``; each block carrying ``cache_control`` ends a prefix (a *breakpoint*). A
  top-level ``cache_control`` (automatic caching) puts a breakpoint on the last block.
- Each prefix is identified by a hash of the canonical JSON of its blocks with the
  ``cache_control`` keys stripped, plus the model (caches are per model).
- The longest breakpoint prefix that is already in the cache (and not expired) is a cache
  READ of its tokens; the extra tokens up to the last breakpoint are a cache WRITE; the rest
  of the request is plain ``input_tokens``. All breakpoint prefixes are then (re)stored.
- Prefixes shorter than ``min_tokens`` (1,024 for Sonnet/Opus) are not cached: no read, no
  write, as the real API does silently.
- Entries live 5 minutes (``"ttl": "1h"`` -> one hour), refreshed on every read.

Tokens use :func:`deskpilot.testing.tokens.count_request_tokens`'s rule, so
``input + cache_read + cache_write == count_request_tokens(body)`` always holds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .tokens import block_tokens, tool_definition_tokens

DEFAULT_TTL_S = 300.0
LONG_TTL_S = 3600.0


@dataclass(frozen=True, slots=True)
class CachePlan:
    """Token split of one request. ``commit()`` stores its prefixes in the cache."""

    input_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    _commit: Callable[[], None] | None = None

    @property
    def total(self) -> int:
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens

    def commit(self) -> None:
        """Record this request's breakpoint prefixes as cached (call only if it was served)."""
        if self._commit is not None:
            self._commit()


def _strip(block: Any) -> Any:
    if isinstance(block, dict) and "cache_control" in block:
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _ttl_of(block: Any) -> float:
    cc = block.get("cache_control") if isinstance(block, dict) else None
    if isinstance(cc, dict) and cc.get("ttl") == "1h":
        return LONG_TTL_S
    return DEFAULT_TTL_S


def _segments(body: dict[str, Any]) -> list[tuple[str, Any, int, bool, float]]:
    """``(kind, canonical block, tokens, is_breakpoint, ttl_s)`` in cache-prefix order."""
    out: list[tuple[str, Any, int, bool, float]] = []
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            out.append(
                (
                    "tool",
                    _strip(tool),
                    tool_definition_tokens(tool),
                    "cache_control" in tool,
                    _ttl_of(tool),
                )
            )
    system = body.get("system")
    if isinstance(system, str):
        out.append(("system", system, block_tokens(system), False, DEFAULT_TTL_S))
    elif isinstance(system, list):
        for b in system:
            is_bp = isinstance(b, dict) and "cache_control" in b
            out.append(("system", _strip(b), block_tokens(b), is_bp, _ttl_of(b)))
    for i, message in enumerate(body.get("messages") or ()):
        if not isinstance(message, dict):
            continue
        role = f"{i}:{message.get('role')}"
        content = message.get("content")
        if isinstance(content, str):
            out.append((role, content, block_tokens(content), False, DEFAULT_TTL_S))
        elif isinstance(content, list):
            for b in content:
                is_bp = isinstance(b, dict) and "cache_control" in b
                out.append((role, _strip(b), block_tokens(b), is_bp, _ttl_of(b)))
    if out and isinstance(body.get("cache_control"), dict):
        kind, block, tokens, _, _ = out[-1]
        out[-1] = (kind, block, tokens, True, _ttl_of(body))
    return out


class PromptCache:
    """The server-wide cache of prefix hashes (one per :class:`FakeModelServer`).

    Args:
        min_tokens: shortest prefix that is cached (1,024 tokens, the Sonnet/Opus minimum).
        clock: monotonic time source in seconds (tests may pass a fake one).
    """

    def __init__(self, *, min_tokens: int = 1024, clock: Callable[[], float] = time.monotonic):
        self.min_tokens = min_tokens
        self._clock = clock
        self._entries: dict[str, tuple[float, float]] = {}  # hash -> (expiry, ttl)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def plan(self, body: dict[str, Any], model: str = "") -> CachePlan:
        """Split the request's input tokens into plain, cache-read and cache-write tokens.

        Args:
            body: a Messages API or Bedrock InvokeModel body.
            model: the model id (caches are per model).

        Returns:
            A :class:`CachePlan`; nothing is stored until ``plan.commit()``.
        """
        segments = _segments(body)
        total = sum(s[2] for s in segments)
        if not any(s[3] for s in segments):
            return CachePlan(total, 0, 0)
        now = self._clock()
        hasher = hashlib.blake2b(model.encode(), digest_size=16)
        running = 0
        breakpoints: list[tuple[str, int, float]] = []  # (hash, prefix tokens, ttl)
        for kind, block, tokens, is_bp, ttl in segments:
            hasher.update(kind.encode())
            hasher.update(json.dumps(block, sort_keys=True, separators=(",", ":")).encode())
            running += tokens
            if is_bp and running >= self.min_tokens:
                breakpoints.append((hasher.copy().hexdigest(), running, ttl))
        if not breakpoints:
            return CachePlan(total, 0, 0)
        read = 0
        for digest, prefix_tokens, _ in breakpoints:
            entry = self._entries.get(digest)
            if entry is not None and entry[0] > now:
                read = max(read, prefix_tokens)
        last = breakpoints[-1][1]
        write = max(0, last - read)

        def commit() -> None:
            t = self._clock()
            for digest, _, ttl in breakpoints:
                old = self._entries.get(digest)
                keep = max(ttl, old[1]) if old is not None and old[0] > t else ttl
                self._entries[digest] = (t + keep, keep)

        return CachePlan(total - read - write, read, write, commit)


__all__ = ["CachePlan", "PromptCache"]
