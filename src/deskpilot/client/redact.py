"""Credential redaction: every credential value the client holds is cut out of every string
that leaves it (error messages, error bodies kept on responses, log lines).

A server may echo the key it was sent (``401 invalid x-api-key sk-ant-...``); that text
would otherwise reach ``APIResponse.error_message``, the agent's result, the trajectory, the
report and the terminal. Values shorter than :data:`MIN_SECRET_CHARS` are not treated as
secrets (a test key such as ``"k"`` would otherwise blank out every letter k).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MIN_SECRET_CHARS = 8
REDACTED = "[REDACTED]"


class Redactor:
    """Replaces each of ``secrets`` with ``[REDACTED]`` in text and in JSON-like data.

    Args:
        secrets: credential values (API keys, AWS secret keys and session tokens).
    """

    __slots__ = ("_pattern", "secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS}
        self.secrets: tuple[str, ...] = tuple(sorted(unique, key=lambda s: (-len(s), s)))
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None
        )

    def __repr__(self) -> str:  # never the values
        return f"Redactor({len(self.secrets)} secrets)"

    def text(self, value: str) -> str:
        """``value`` with every secret replaced (longest first, so a key that contains
        another is cut whole)."""
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(REDACTED, value)

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


__all__ = ["MIN_SECRET_CHARS", "REDACTED", "Redactor"]
