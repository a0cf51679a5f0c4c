"""Replay a recorded run: re-execute its actions on a fresh desktop and compare, or serve its
model turns back as Messages API responses.

:func:`replay_run` starts a new desktop of the recorded native size (and apps), builds the
recorded tool versions, runs every action that was executed in the original run, in order,
and compares each result with the record: ``is_error``, the result text, and the screenshot
(mean absolute pixel difference and the share of pixels that changed by more than
``pixel_threshold``). Where they differ it reports a :class:`Divergence` (step, action, what
differed). No model is called.

A run directory is untrusted (``docs/trajectory-format.md``, "Reading"): it is read ONCE
through the one lenient reader (:func:`~deskpilot.agent.trajectory.read_run`; an unreadable
step is a divergence of kind ``"unreadable"``, never an exception) and the Run whose plan the
user approved is what is replayed; every screenshot path is confined to the run directory;
each recorded call is routed to the executor it would reach (:func:`route`; an unknown tool
or toolset name is ``"unsupported"`` and never runs); and the calls that need consent
(recorded bash and text-editor calls, which run on THIS machine, and keyboard input, which a
terminal on the desktop would run on THIS machine) are only re-executed when the caller
allows it (``host_actions=True``; ``deskpilot replay`` shows :func:`replay_plan` first and
asks, or takes ``--yes``), bash and the editor only inside a sandbox directory
(:func:`replay_sandbox`: the fresh desktop's scratch HOME, or a new temporary directory; the
editor's ``allowed_roots`` is that directory; bash starts there).

:func:`recorded_responses` turns the recorded assistant turns into Messages API response
bodies, in order, for :class:`deskpilot.testing.FakeModelServer` (``responses=``), so the
whole loop can run offline against a recorded model (``deskpilot run --replay DIR``; it
shows the plan of those turns' calls (:func:`recorded_calls`) and asks the same way, and runs
them with the same confined executors, :func:`replay_tools`).

Modules: ``plan`` (routing, what will run), ``tools`` (the confined executors), ``runner``
(:func:`replay_run`), ``compare`` (divergences, screenshots), ``responses``
(:func:`recorded_responses`).
"""

from .compare import Divergence, ReplayReport, compare_images
from .plan import (
    HOST_TOOLS,
    POINTER_ACTIONS,
    PlannedAction,
    Route,
    consent_question,
    format_plan,
    plan_calls,
    replay_plan,
    route,
)
from .responses import recorded_calls, recorded_responses
from .runner import MAX_REPLAY_PIXELS, replay_run
from .tools import replay_sandbox, replay_tools

__all__ = [
    "HOST_TOOLS",
    "MAX_REPLAY_PIXELS",
    "POINTER_ACTIONS",
    "Divergence",
    "PlannedAction",
    "ReplayReport",
    "Route",
    "compare_images",
    "consent_question",
    "format_plan",
    "plan_calls",
    "recorded_calls",
    "recorded_responses",
    "replay_plan",
    "replay_run",
    "replay_sandbox",
    "replay_tools",
    "route",
]
