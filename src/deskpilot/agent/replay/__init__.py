"""Replay a recorded run: re-execute its actions on a fresh desktop and compare, or serve its
model turns back as Messages API responses.

:func:`replay_run` starts a new desktop of the recorded native size (and apps), builds the
recorded tool versions, runs every action that was executed in the original run, in order,
and compares each result with the record: ``is_error``, the result text, and the screenshot
(mean absolute pixel difference and the share of pixels that changed by more than
``pixel_threshold``). Where they differ it reports a :class:`Divergence` (step, action, what
differed). No model is called.

A run directory is untrusted (``docs/trajectory-format.md``, "Reading"): it is read through
the one lenient reader (:func:`~deskpilot.agent.trajectory.read_run`; an unreadable step is a
divergence of kind ``"unreadable"``, never an exception), every screenshot path is confined
to the run directory, and recorded bash and text-editor actions (which run on THIS machine,
not on the desktop) are only re-executed when the caller allows it (``host_actions=True``;
``deskpilot replay`` shows :func:`replay_plan` first and asks, or takes ``--yes``), and then
only inside a sandbox directory: the fresh desktop's scratch HOME, or a new temporary
directory (the editor's ``allowed_roots`` is that directory; bash starts there).

:func:`recorded_responses` turns the recorded assistant turns into Messages API response
bodies, in order, for :class:`deskpilot.testing.FakeModelServer` (``responses=``), so the
whole loop can run offline against a recorded model (``deskpilot run --replay DIR``).

Modules: ``plan`` (what will run), ``runner`` (:func:`replay_run`), ``compare`` (divergences,
screenshots), ``responses`` (:func:`recorded_responses`).
"""

from .compare import Divergence, ReplayReport, compare_images
from .plan import HOST_TOOLS, PlannedAction, format_plan, replay_plan
from .responses import recorded_responses
from .runner import MAX_REPLAY_PIXELS, replay_run

__all__ = [
    "HOST_TOOLS",
    "MAX_REPLAY_PIXELS",
    "Divergence",
    "PlannedAction",
    "ReplayReport",
    "compare_images",
    "format_plan",
    "recorded_responses",
    "replay_plan",
    "replay_run",
]
