"""The typed bodies of the UI's HTTP API (the one owner of its format; ``docs/ui.md``).

Requests are validated with these models (unknown keys refused, so a typo is an error, not a
silent default); answers are built from them and sent as JSON. ``API_VERSION`` is the
version ``GET /api/config`` reports. Units: ``*_s`` seconds, ``cost`` US dollars, token
counts in tokens.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..agent.records import TokenUsage

__all__ = [
    "API_VERSION",
    "ApprovalBody",
    "ApprovalRequest",
    "CreateRunBody",
    "HandbackBody",
    "RunStatus",
    "RunSummary",
    "TakeoverState",
    "UIConfigInfo",
]

API_VERSION = 1

RunStatus = Literal["queued", "starting", "running", "stopping", "done", "failed"]
"""``queued`` (waiting for a desktop), ``starting`` (desktop starting), ``running``,
``stopping`` (stop asked), ``done`` (ended; see ``stop_reason``), ``failed`` (an error
outside the model's control: the desktop would not start, the loop crashed)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateRunBody(_Body):
    """``POST /api/runs``."""

    task: str = Field(min_length=1, max_length=100_000)
    model: str | None = Field(default=None, max_length=200)
    approve: bool | None = None


class ApprovalBody(_Body):
    """``POST /api/runs/{id}/approvals/{call_id}``."""

    approve: bool
    reason: str | None = Field(default=None, max_length=4000)


class HandbackBody(_Body):
    """``POST /api/runs/{id}/handback`` (the body may be empty)."""

    message: str | None = Field(default=None, max_length=4000)


class ApprovalRequest(BaseModel):
    """An action waiting for Approve / Decline (the ``approval`` event and
    ``RunSummary.pending_approvals``): the tool call as the model sent it (untrusted text:
    render it as text)."""

    call_id: str
    step: int
    name: str
    input: dict[str, object]
    model_size: tuple[int, int] | None = None
    """``[width, height]`` of the model's screenshots (its coordinates are in these pixels)."""
    native_size: tuple[int, int] | None = None
    """``[width, height]`` of the desktop (``/screenshot``'s pixels): scale the coordinates
    by ``native_size / model_size`` to draw them on the live screenshot."""


class TakeoverState(BaseModel):
    """``none``, ``requested`` (waiting for the action in flight) or ``held``;
    ``for_s``: seconds since it was asked for."""

    state: Literal["none", "requested", "held"] = "none"
    for_s: float = 0.0


class RunSummary(BaseModel):
    """``GET /api/runs/{id}`` (and each entry of ``GET /api/runs``)."""

    id: str
    task: str
    model: str
    approve: bool
    status: RunStatus
    created_at: str
    elapsed_s: float
    steps: int
    usage: TokenUsage
    cost: float
    stop_reason: str | None = None
    final_text: str | None = None
    error: str | None = None
    display: str | None = None
    """The X display of the run's desktop while it runs (e.g. ``":7"``), else None."""
    takeover: TakeoverState = Field(default_factory=TakeoverState)
    pending_approvals: list[ApprovalRequest] = Field(default_factory=list)
    events_url: str
    screenshot_url: str
    report_url: str | None = None
    """Where the run's HTML report is served, once written (at the end)."""
    run_dir: str | None = None


class UIConfigInfo(BaseModel):
    """``GET /api/config``: the server's settings the page shows."""

    api_version: int = API_VERSION
    model: str
    provider: str | None
    approve: bool
    desktops: int
    width: int
    height: int
    mode: Literal["live", "fake", "replay"]
