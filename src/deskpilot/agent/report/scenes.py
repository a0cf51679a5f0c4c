"""A run as a sequence of scenes: every recorded action with the screen before and after it.

Shared by the HTML page and the animation. Reads only through
:func:`deskpilot.agent.trajectory.read_run`'s :class:`~deskpilot.agent.trajectory.Run`, so
every screenshot path is confined to the run directory (``Run.path``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..imagefiles import MAX_IMAGE_BYTES, file_key
from ..records import ActionRecord, StepRecord
from ..trajectory import Run
from .marks import Mark, action_marks, action_name, cursor_after

__all__ = ["Scene", "scenes"]


@dataclass(slots=True)
class Scene:
    """One recorded action in context.

    Attributes:
        step: the step the action belongs to.
        action: the action record.
        name: its display name (:func:`~deskpilot.agent.report.marks.action_name`).
        marks: what to draw for it (model-space pixels).
        before: relative path of the latest screenshot before this action (None if none).
        after: the action's own screenshot (None when it has none, or its file is missing
            or outside the run directory).
        unchanged: ``after`` has the same bytes as ``before``.
    """

    step: StepRecord
    action: ActionRecord
    name: str
    marks: list[Mark]
    before: str | None
    after: str | None
    unchanged: bool = False


def scenes(run: Run) -> Iterator[Scene]:
    """Every action of the readable steps in order, with the screen before it and its marks."""
    last_shot = run.initial_screenshot
    cursor: tuple[float, float] | None = None
    digests: dict[tuple[int, int] | str, bytes] = {}

    def digest(rel: str) -> bytes:
        path = run.path(rel)
        key = file_key(path) if path is not None else None
        ident: tuple[int, int] | str = key if key is not None else rel
        if ident not in digests:  # one read per file (hard links share it)
            try:
                if path is None:
                    raise OSError("outside the run directory")
                with path.open("rb") as fh:
                    digests[ident] = hashlib.sha256(fh.read(MAX_IMAGE_BYTES + 1)).digest()
            except OSError:
                digests[ident] = b"unreadable:" + rel.encode()
        return digests[ident]

    for step in run.readable_steps:
        for action in step.actions:
            shot = action.screenshot if run.path(action.screenshot) is not None else None
            yield Scene(
                step=step,
                action=action,
                name=action_name(action),
                marks=action_marks(action, cursor),
                before=last_shot,
                after=shot,
                unchanged=bool(shot and last_shot and digest(shot) == digest(last_shot)),
            )
            cursor = cursor_after(action, cursor)
            if shot is not None:
                last_shot = shot
