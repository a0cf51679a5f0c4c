"""What a replay will run: which executor each recorded call reaches, and the plan shown to
the user before anything runs.

A recorded call is routed exactly as the agent routes a model's call
(:meth:`deskpilot.agent.toolbox.Toolbox.find` and the executors): a call with a
``toolset_name`` reaches the computer executor when that name is ``"computer"`` (the action
is the call's name) and nothing otherwise; a call without one reaches the recorded executor
whose tool has that name (``computer``: the action is ``input["action"]``; the text editor;
``bash``). The tool names come from the run's recorded tool versions and the tool table
(:data:`deskpilot.computer_use.specs.TOOL_VERSIONS`). A call that reaches no executor (an
unknown tool or toolset name, a custom tool) is **unsupported**: it is shown with the reason
and never run.

Calls that reach beyond the desktop's pointer need the user's consent (``deskpilot replay``
asks, or takes ``--yes``; :func:`~deskpilot.agent.replay.replay_run` skips them unless
``host_actions=True``):

- ``machine``: bash and text-editor calls run on THIS machine (inside a scratch directory);
- ``keyboard``: every computer action that is not pointer-only (``type``, ``key``,
  ``hold_key``, keys held during a click, unknown actions): keyboard input goes to the window
  with the focus, and a terminal on the desktop runs what is typed on THIS machine, as you.

Each is shown in full, control characters made visible
(:func:`deskpilot.terminal.visible`), so a recorded command cannot hide from the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ...computer_use.specs import computer_spec, tool_spec
from ...terminal import visible
from ..records import ActionRecord, ToolVersions
from ..report.marks import action_summary
from ..trajectory import Run

__all__ = [
    "CONSENT_REASONS",
    "HOST_TOOLS",
    "POINTER_ACTIONS",
    "PlannedAction",
    "Reach",
    "Route",
    "action_label",
    "consent_question",
    "format_plan",
    "is_host",
    "plan_calls",
    "planned",
    "pointer_only",
    "replay_plan",
    "route",
]

HOST_TOOLS = frozenset({"bash", "str_replace_editor", "str_replace_based_edit_tool"})
"""Names of the tools whose actions run on this machine (not on the desktop) when replayed
(every bash and text-editor name in the tool table)."""

POINTER_ACTIONS = frozenset(
    {
        "screenshot",
        "cursor_position",
        "wait",
        "zoom",
        "mouse_move",
        "left_click",
        "right_click",
        "middle_click",
        "double_click",
        "triple_click",
        "left_click_drag",
        "left_mouse_down",
        "left_mouse_up",
        "scroll",
    }
)
"""Computer actions that only look, wait or use the pointer; every other computer action
(and a pointer action that holds keys: a non-empty ``text`` or ``key``) is keyboard input."""

Reach = Literal["desktop", "keyboard", "machine", "unsupported"]

CONSENT_REASONS: dict[str, str] = {
    "machine": "runs on THIS machine (inside a scratch directory)",
    "keyboard": (
        "keyboard input: it goes to the window with the focus; a terminal on the desktop "
        "runs what is typed on THIS machine, as you"
    ),
}
"""Why a call of each consent-needing reach is asked about (shown in the plan)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a recorded call goes.

    Attributes:
        kind: the executor it reaches (``"computer"``, ``"editor"``, ``"bash"``), or None.
        action: the computer action (``"left_click"``...); ``""`` for other executors.
        reach: ``"desktop"`` (pointer, screenshots, waits), ``"keyboard"``, ``"machine"``
            (bash, editor) or ``"unsupported"`` (no executor: never run).
        reason: why it needs consent, or why it is unsupported; ``""`` for ``"desktop"``.
    """

    kind: str | None
    action: str
    reach: Reach
    reason: str = ""

    @property
    def needs_consent(self) -> bool:
        """True for keyboard input and bash/editor calls."""
        return self.reach in ("keyboard", "machine")


def _name_of(version: str | None) -> str | None:
    try:
        return tool_spec(version).name if version else None
    except KeyError:
        return None


def pointer_only(action: str, inp: Mapping[str, Any]) -> bool:
    """True when computer action ``action`` with input ``inp`` only looks, waits or uses the
    pointer (:data:`POINTER_ACTIONS`, holding no key); every other action is keyboard input.
    The one rule for replay's consent and ``run --approve``'s short question."""
    holds_keys = any(isinstance(inp.get(k), str) and inp.get(k) for k in ("text", "key"))
    return action in POINTER_ACTIONS and not holds_keys


def _computer_route(action: Any, inp: dict[str, Any]) -> Route:
    name = action if isinstance(action, str) else repr(action)
    if pointer_only(name, inp):
        return Route("computer", name, "desktop")
    return Route("computer", name, "keyboard", CONSENT_REASONS["keyboard"])


def route(
    name: str, toolset_name: str | None, inp: dict[str, Any], versions: ToolVersions
) -> Route:
    """The executor a call of tool ``name`` (``toolset_name``, input ``inp``) reaches when the
    run's tools are ``versions``, and whether running it needs consent (module docstring)."""
    computer = versions.computer
    try:
        if computer:
            computer_spec(computer)
    except KeyError:  # not a computer version: nothing runs computer calls
        computer = None
    if toolset_name:
        if toolset_name == "computer" and computer:
            return _computer_route(name, inp)
        return Route(
            None,
            "",
            "unsupported",
            f"the toolset {visible(toolset_name)[:60]!r} is not the run's computer tool; no "
            "executor runs it",
        )
    if computer and name == "computer":
        return _computer_route(inp.get("action"), inp)
    for kind, version in (("editor", versions.editor), ("bash", versions.bash)):
        if name == _name_of(version):
            return Route(kind, "", "machine", CONSENT_REASONS["machine"])
    return Route(
        None,
        "",
        "unsupported",
        f"no recorded tool is named {visible(name)[:60]!r} (custom and unknown tools are "
        "not replayed)",
    )


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One recorded call a replay would run (or refuses).

    Attributes:
        step / index: where it is in the record (1-based step, 0-based call).
        label: the tool and action, e.g. ``"computer left_click"``, ``"bash"``.
        summary: a one-line description (``bash: rm -rf build``; shortened).
        reach: see :class:`Route`.
        detail: for calls that need consent, what will run IN FULL: the bash command, the
            editor command, path and text, or the keys typed; empty otherwise.
        reason: why it needs consent or is unsupported (:attr:`Route.reason`).
    """

    step: int
    index: int
    label: str
    summary: str
    reach: Reach = "desktop"
    detail: str = ""
    reason: str = ""

    @property
    def host(self) -> bool:
        """True for bash and text-editor calls, which run on this machine."""
        return self.reach == "machine"

    @property
    def needs_consent(self) -> bool:
        """True for keyboard input and bash/editor calls (see the module docstring)."""
        return self.reach in ("keyboard", "machine")


def action_label(action: ActionRecord) -> str:
    """The tool and action of a record: ``computer left_click``, ``computer type`` (a toolset
    member), ``bash``."""
    if action.toolset_name == "computer":
        return f"computer {action.name}"
    if action.name == "computer" and "action" in action.input and not action.toolset_name:
        return f"computer {action.input['action']}"
    if action.toolset_name:
        return f"{action.toolset_name} {action.name}"
    return action.name


def is_host(action: ActionRecord, versions: ToolVersions | None = None) -> bool:
    """True for a call that reaches the bash or text-editor executor (runs on this machine).
    Without ``versions``, any tool of the table's bash/editor names called without a
    toolset."""
    if versions is None:
        return not action.toolset_name and action.name in HOST_TOOLS
    return route(action.name, action.toolset_name, dict(action.input), versions).reach == "machine"


def _detail(kind: str | None, inp: dict[str, Any]) -> str:
    if kind == "bash":
        return "(restart the shell)" if inp.get("restart") else str(inp.get("command", ""))
    if kind == "computer":
        # typed newlines are Enter presses: shown as \n, never as a line break
        parts = [
            f"{key}: {visible(str(inp[key]))}" for key in ("text", "key", "duration") if key in inp
        ]
        return "\n".join(parts) or "(no text)"
    parts = [f"{key}: {inp[key]}" for key in ("command", "path") if key in inp]
    parts += [f"{key}:\n{inp[key]}" for key in sorted(inp) if key not in ("command", "path")]
    return "\n".join(parts)


def planned(step: int, index: int, action: ActionRecord, versions: ToolVersions) -> PlannedAction:
    """The plan entry of one recorded call."""
    inp = dict(action.input)
    r = route(action.name, action.toolset_name, inp, versions)
    return PlannedAction(
        step,
        index,
        action_label(action),
        action_summary(action),
        r.reach,
        _detail(r.kind, inp) if r.needs_consent else "",
        r.reason,
    )


def replay_plan(run: Run) -> list[PlannedAction]:
    """The calls :func:`replay_run` would execute for ``run``, in order (the calls that were
    executed in the original run; declined, interrupted and halted ones are left out), each
    routed with the run's recorded tool versions."""
    versions = run.start.tool_versions if run.start is not None else ToolVersions()
    return [
        planned(step.index, k, a, versions)
        for step in run.readable_steps
        for k, a in enumerate(step.actions)
        if a.executed
    ]


def plan_calls(
    calls: Iterable[tuple[int, int, ActionRecord]], versions: ToolVersions
) -> list[PlannedAction]:
    """The plan of arbitrary calls ``(step, index, call)`` (e.g. the tool_use blocks of
    recorded model turns) routed to the executors of ``versions``."""
    return [planned(step, index, call, versions) for step, index, call in calls]


def format_plan(plan: list[PlannedAction], limit: int = 200, detail_chars: int = 4000) -> str:
    """The plan as text for a terminal: one line per call (at most ``limit`` pointer-only
    calls; EVERY call that needs consent or is unsupported), each call that needs consent
    flagged with why and followed by what it does in full, up to ``detail_chars`` characters,
    control characters made visible."""
    lines: list[str] = []
    hidden = 0
    for n, p in enumerate(plan):
        if p.reach == "desktop" and n >= limit:
            hidden += 1
            continue
        summary = visible(p.summary.replace("\n", " "))[:100]
        head = f"  step {p.step:>3}.{p.index}  {summary}"
        if p.reach == "desktop":
            lines.append(head)
            continue
        if p.reach == "unsupported":
            lines.append(f"{head}   [NOT RUN: {p.reason}]")
            continue
        flag = "runs on THIS machine" if p.reach == "machine" else "keyboard input"
        lines.append(f"{head}   [{flag}]")
        text = visible(p.detail, keep_newlines=True)
        if len(text) > detail_chars:
            text = text[:detail_chars] + f"\n... ({len(text) - detail_chars} more characters)"
        lines.extend(f"      | {line}" for line in text.split("\n"))
    if hidden:
        lines.append(f"  ... and {hidden} more desktop action(s)")
    return "\n".join(lines)


def consent_question(plan: list[PlannedAction]) -> str | None:
    """The question to ask before running ``plan`` (click adds ``[y/N]``), or None when
    nothing in it needs consent."""
    machine = sum(p.reach == "machine" for p in plan)
    keyboard = sum(p.reach == "keyboard" for p in plan)
    if not machine and not keyboard:
        return None
    parts = []
    if machine:
        parts.append(
            f"{machine} bash/editor action(s) run on this machine (inside a scratch directory)"
        )
    if keyboard:
        parts.append(
            f"{keyboard} keyboard input(s) go to the desktop, where a terminal would run them "
            "on this machine"
        )
    return f"{'; '.join(parts)}. Run them?"
