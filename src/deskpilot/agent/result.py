"""AgentResult: the outcome of one :meth:`Agent.run <deskpilot.agent.loop.Agent.run>`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..prompt import Conversation
from ..response import Usage
from .desktop_recovery import DESKTOP_DEAD
from .records import StepRecord

STOPPED_EARLY = frozenset(
    {"max_turns", "budget_tokens", "budget_usd", "interrupted", "api_error", "error", DESKTOP_DEAD}
)
"""Stop reasons that mean the model did not end the run itself."""


@dataclass(slots=True, kw_only=True, repr=False)
class AgentResult:
    """The outcome of :meth:`Agent.run`.

    Attributes:
        final_text: the text of the last model response that had text (None if none had).
        steps: model turns taken.
        usage: summed token usage over all turns; ``cost`` in US dollars.
        stop_reason: the last response's stop reason when the model ended the run
            (``"end_turn"``, ``"max_tokens"``, ...), else ``"max_turns"``, ``"budget_tokens"``,
            ``"budget_usd"``, ``"interrupted"``, ``"api_error"``, ``"error"`` or
            ``"desktop_dead"`` (the desktop died again after the agent restarted it once).
        trajectory_dir: the run directory, or None when recording was off (``out_dir=None``).
        conversation: the agent's conversation as last sent to the model (valid: every
            tool_use answered; with pruning on, older screenshots are the placeholder text
            so a long run holds at most ``keep_screenshots + prune_interval`` images in
            memory; every screenshot is in the trajectory directory). The caller's own
            objects are never modified.
        error: the API error message or exception text when ``stop_reason`` is
            ``"api_error"``/``"error"``.
        duration_s: wall-clock seconds of the run.
        step_records: the step records (:class:`~deskpilot.agent.records.StepRecord`) as
            written to ``trajectory.jsonl`` (``t`` set when recording was on);
            ``record.model_dump(mode="json")`` is the line's JSON object.
    """

    final_text: str | None
    steps: int
    usage: Usage
    cost: float
    stop_reason: str
    trajectory_dir: Path | None
    conversation: Conversation
    error: str | None = None
    duration_s: float = 0.0
    step_records: list[StepRecord] = field(default_factory=list)

    def __repr__(self) -> str:
        text = (self.final_text or "")[:60]
        return (
            f"AgentResult(stop_reason={self.stop_reason!r}, steps={self.steps}, "
            f"final_text={text!r}, cost={self.cost:.6f}, tokens={self.usage.total_tokens}, "
            f"trajectory_dir={str(self.trajectory_dir) if self.trajectory_dir else None!r}"
            + (f", error={self.error!r}" if self.error else "")
            + ")"
        )

    @property
    def ok(self) -> bool:
        """True when the model ended the run itself (no limit, interrupt or error)."""
        return self.stop_reason not in STOPPED_EARLY


__all__ = ["STOPPED_EARLY", "AgentResult"]
