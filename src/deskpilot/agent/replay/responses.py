"""A recorded run's model turns as Messages API responses (to replay the MODEL offline)."""

from __future__ import annotations

import os
from typing import Any

from ..trajectory import read_run

__all__ = ["recorded_responses"]


def recorded_responses(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The recorded assistant turns as Messages API response bodies, in order.

    Each is ``{"id", "type": "message", "role": "assistant", "model", "content",
    "stop_reason", "stop_sequence": None, "usage": {"input_tokens", "output_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens"}}``; steps whose call failed
    (API errors) and unreadable steps are left out. Feed them to
    ``FakeModelServer(responses=...)`` to replay the model offline.

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
    """
    run = read_run(run_dir)
    start = run.start
    model = (start.model_id or start.model if start else None) or "replay"
    out: list[dict[str, Any]] = []
    for step in run.readable_steps:
        resp = step.response
        if resp.is_error or not resp.content:
            continue
        usage = resp.usage
        out.append(
            {
                "id": f"msg_replay_{step.index:04d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": resp.content,
                "stop_reason": resp.stop_reason or "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cache_read_input_tokens": usage.cache_read_tokens,
                    "cache_creation_input_tokens": usage.cache_write_tokens,
                },
            }
        )
    return out
