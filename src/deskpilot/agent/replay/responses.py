"""A recorded run's model turns as Messages API responses (to replay the MODEL offline)."""

from __future__ import annotations

import os
from typing import Any

from ..records import ActionRecord, StepRecord
from ..trajectory import Run, read_run

__all__ = ["recorded_calls", "recorded_responses"]


def _served(run: Run) -> list[StepRecord]:
    """The steps whose responses are served (API errors and empty turns left out)."""
    return [s for s in run.readable_steps if not s.response.is_error and s.response.content]


def _tool_use(block: dict[str, Any], k: int) -> dict[str, Any]:
    """A recorded ``tool_use`` block as it is served: ``id``, ``name`` and ``toolset_name``
    strings (a name that is not one becomes ``"(unreadable tool_use)"``, which no executor
    runs; a toolset name that is not one is dropped), ``input`` an object (else empty), so
    the calls served are exactly the calls planned."""
    name = block.get("name")
    ident = block.get("id")
    out: dict[str, Any] = {
        "type": "tool_use",
        "id": ident if isinstance(ident, str) and ident else f"toolu_replay_{k}",
        "name": name if isinstance(name, str) and name else "(unreadable tool_use)",
        "input": block.get("input") if isinstance(block.get("input"), dict) else {},
    }
    toolset = block.get("toolset_name")
    if isinstance(toolset, str) and toolset:
        out["toolset_name"] = toolset
    return out


def _content(step: StepRecord) -> list[dict[str, Any]]:
    return [
        _tool_use(b, k) if b.get("type") == "tool_use" else b
        for k, b in enumerate(step.response.content)
    ]


def recorded_calls(run: Run) -> list[tuple[int, int, ActionRecord]]:
    """Every tool call the served responses make, as ``(step, index, call)`` in order: what
    an agent driven by :func:`recorded_responses` would be asked to run."""
    calls: list[tuple[int, int, ActionRecord]] = []
    for step in _served(run):
        blocks = [b for b in _content(step) if b.get("type") == "tool_use"]
        for k, b in enumerate(blocks):
            call = ActionRecord(
                tool_use_id=b["id"],
                name=b["name"],
                toolset_name=b.get("toolset_name"),
                input=b["input"],
            )
            calls.append((step.index, k, call))
    return calls


def recorded_responses(run_dir: Run | str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The recorded assistant turns as Messages API response bodies, in order.

    Each is ``{"id", "type": "message", "role": "assistant", "model", "content",
    "stop_reason", "stop_sequence": None, "usage": {"input_tokens", "output_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens"}}``; steps whose call failed
    (API errors) and unreadable steps are left out. Feed them to
    ``FakeModelServer(responses=...)`` to replay the model offline. ``run_dir`` may be a
    :class:`Run` already read: pass the one whose calls (:func:`recorded_calls`) the user
    approved, so the directory is not read again.

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
    """
    run = run_dir if isinstance(run_dir, Run) else read_run(run_dir)
    start = run.start
    model = (start.model_id or start.model if start else None) or "replay"
    out: list[dict[str, Any]] = []
    for step in _served(run):
        resp = step.response
        usage = resp.usage
        out.append(
            {
                "id": f"msg_replay_{step.index:04d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": _content(step),
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
