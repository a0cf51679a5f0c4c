"""Credential redaction: every credential value the client holds is cut out of every string
that leaves it (error messages, error bodies kept on responses, log lines).

A server may echo the key it was sent (``401 invalid x-api-key sk-ant-...``); that text
would otherwise reach ``APIResponse.error_message``, the agent's result, the trajectory, the
report and the terminal. Echoes are not always whole: a body cut at a length limit keeps the
start of the key, a "masked" echo keeps its first and last characters
(``sk-ant-api03-AbCd...wxyz``), and a wrapped line splits it. So besides every whole value,
:class:`Redactor` cuts every run of at least :data:`MIN_RUN_CHARS` consecutive characters of
a value (its prefixes and suffixes included), also when spaces or line breaks were put
inside the run. Values shorter than :data:`MIN_SECRET_CHARS` are not treated as secrets (a
test key such as ``"k"`` would otherwise blank out every letter k).

Cost: the whole values are found with one compiled pattern; the partial runs with one
``str.find`` per :data:`MIN_RUN_CHARS` ``// 2`` characters of each value (every run of
:data:`MIN_RUN_CHARS` characters holds one of those aligned blocks), then checked
character by character. The client only redacts on error paths and log lines, never on
the success path.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

MIN_SECRET_CHARS = 8
"""Shorter values are not redacted at all."""
MIN_RUN_CHARS = 12
"""A run of this many consecutive characters of a value is cut (values at least this long)."""
REDACTED = "[REDACTED]"

_BLOCK = MIN_RUN_CHARS // 2
_SPACE = re.compile(r"\s+")


class Redactor:
    """Replaces each of ``secrets``, and every run of at least :data:`MIN_RUN_CHARS` of its
    characters, with ``[REDACTED]`` in text and in JSON-like data.

    Args:
        secrets: credential values (API keys, AWS secret keys and session tokens).
    """

    __slots__ = ("_blocks", "_pattern", "secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS}
        self.secrets: tuple[str, ...] = tuple(sorted(unique, key=lambda s: (-len(s), s)))
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None
        )
        # (value without whitespace, offset in it, block) for the aligned blocks of each
        # value long enough to have partial runs
        self._blocks: list[tuple[str, int, str]] = []
        for s in self.secrets:
            squeezed = _SPACE.sub("", s)
            if len(squeezed) >= MIN_RUN_CHARS:
                for off in range(0, len(squeezed) - _BLOCK + 1, _BLOCK):
                    self._blocks.append((squeezed, off, squeezed[off : off + _BLOCK]))

    def __repr__(self) -> str:  # never the values
        return f"Redactor({len(self.secrets)} secrets)"

    def text(self, value: str) -> str:
        """``value`` with every secret replaced (longest first, so a key that contains
        another is cut whole), then every remaining run of :data:`MIN_RUN_CHARS` or more
        characters of a secret (whitespace inside the run is cut with it)."""
        if self._pattern is None or not value:
            return value
        value = self._pattern.sub(REDACTED, value)
        if not self._blocks:
            return value
        return self._cut_runs(value)

    def _cut_runs(self, value: str) -> str:
        gaps = list(_SPACE.finditer(value))
        squeezed = _SPACE.sub("", value) if gaps else value
        spans: list[tuple[int, int]] = []
        for secret, off, block in self._blocks:
            at = squeezed.find(block)
            while at != -1:
                a, b, sa, sb = at, at + _BLOCK, off, off + _BLOCK
                while a > 0 and sa > 0 and squeezed[a - 1] == secret[sa - 1]:
                    a, sa = a - 1, sa - 1
                while b < len(squeezed) and sb < len(secret) and squeezed[b] == secret[sb]:
                    b, sb = b + 1, sb + 1
                if b - a >= MIN_RUN_CHARS:
                    spans.append((a, b))
                at = squeezed.find(block, at + 1)
        if not spans:
            return value
        spans.sort()
        merged = [spans[0]]
        for a, b in spans[1:]:
            if a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        if gaps:  # squeezed index -> index in value: add the whitespace removed before it
            starts: list[int] = []  # squeezed index of the character after each gap
            before: list[int] = []  # whitespace removed up to and including that gap
            removed = 0
            for gap in gaps:
                starts.append(gap.start() - removed)
                removed += gap.end() - gap.start()
                before.append(removed)

            def original(i: int) -> int:
                k = bisect_right(starts, i)
                return i + (before[k - 1] if k else 0)

            merged = [(original(a), original(b - 1) + 1) for a, b in merged]
        out: list[str] = []
        last = 0
        for a, b in merged:
            out.append(value[last:a])
            out.append(REDACTED)
            last = b
        out.append(value[last:])
        return "".join(out)

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` (dicts, lists, strings) with every string (keys
        included) redacted; other values are returned as they are."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


__all__ = ["MIN_RUN_CHARS", "MIN_SECRET_CHARS", "REDACTED", "Redactor"]
