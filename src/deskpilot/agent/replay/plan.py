"""What a replay will run: the plan shown to the user before anything runs.

Recorded bash and text-editor actions run on THIS machine when replayed (not on the desktop),
so ``deskpilot replay`` shows every one of them in full first (control characters made
visible, so a recorded command cannot hide itself from the terminal) and asks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import ActionRecord
from ..report.marks import action_summary
from ..trajectory import Run

__all__ = ["HOST_TOOLS", "PlannedAction", "action_label", "format_plan", "is_host", "replay_plan"]

HOST_TOOLS = frozenset({"bash", "str_replace_editor", "str_replace_based_edit_tool"})
"""Tools whose actions run on this machine (not on the desktop) when replayed."""


@dataclass(slots=True, frozen=True)
class PlannedAction:
    """One action a replay would run.

    Attributes:
        step / index: where it is in the record (1-based step, 0-based call).
        label: the tool and action, e.g. ``"computer left_click"``, ``"bash"``.
        summary: a one-line description (``bash: rm -rf build``; shortened).
        host: True for bash and text-editor actions, which run on this machine (inside the
            sandbox directory), not on the desktop.
        detail: for host actions, what will run IN FULL: the bash command, or the editor
            command, path and text; empty for desktop actions.
    """

    step: int
    index: int
    label: str
    summary: str
    host: bool
    detail: str = ""


def action_label(action: ActionRecord) -> str:
    """The tool and action of a record: ``computer left_click``, ``computer type`` (a toolset
    member), ``bash``."""
    if action.name == "computer" and "action" in action.input:
        return f"computer {action.input['action']}"
    if action.toolset_name:
        return f"{action.toolset_name} {action.name}"
    return action.name


def is_host(action: ActionRecord) -> bool:
    """True for bash and text-editor actions (they run on this machine when replayed)."""
    return action.toolset_name is None and action.name in HOST_TOOLS


def _visible(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``), so a recorded command
    cannot hide itself from the terminal (ANSI sequences, carriage returns)."""
    return "".join(
        c
        if c.isprintable() or c in "\n\t"
        else f"\\x{ord(c):02x}"
        if ord(c) < 256
        else f"\\u{ord(c):04x}"
        for c in text
    )


def _detail(action: ActionRecord) -> str:
    inp = action.input
    if action.name == "bash":
        return "(restart the shell)" if inp.get("restart") else str(inp.get("command", ""))
    parts = [f"{key}: {inp[key]}" for key in ("command", "path") if key in inp]
    parts += [f"{key}:\n{inp[key]}" for key in sorted(inp) if key not in ("command", "path")]
    return "\n".join(parts)


def replay_plan(run: Run) -> list[PlannedAction]:
    """The actions :func:`replay_run` would execute for ``run``, in order (the actions that
    were executed in the original run; declined, interrupted and halted ones are left out)."""
    return [
        PlannedAction(
            step.index,
            k,
            action_label(a),
            action_summary(a),
            is_host(a),
            _detail(a) if is_host(a) else "",
        )
        for step in run.readable_steps
        for k, a in enumerate(step.actions)
        if a.executed
    ]


def format_plan(plan: list[PlannedAction], limit: int = 200, detail_chars: int = 4000) -> str:
    """The plan as text for a terminal: one line per action (at most ``limit`` desktop
    actions; EVERY host action), each host action flagged and followed by what it runs, in
    full up to ``detail_chars`` characters, control characters made visible."""
    lines: list[str] = []
    hidden = 0
    for n, p in enumerate(plan):
        if not p.host and n >= limit:
            hidden += 1
            continue
        summary = _visible(p.summary.replace("\n", " "))[:100]
        if not p.host:
            lines.append(f"  step {p.step:>3}.{p.index}  {summary}")
            continue
        lines.append(f"  step {p.step:>3}.{p.index}  {summary}   [runs on THIS machine]")
        text = _visible(p.detail)
        if len(text) > detail_chars:
            text = text[:detail_chars] + f"\n... ({len(text) - detail_chars} more characters)"
        lines.extend(f"      | {line}" for line in text.split("\n"))
    if hidden:
        lines.append(f"  ... and {hidden} more desktop action(s)")
    return "\n".join(lines)
