"""What the CLI prints that it did not write itself: progress lines, answers, errors, and the
question ``deskpilot run --approve`` asks before each action.

Model text, tool results, recorded tasks and error messages are untrusted: every such string
goes through :func:`deskpilot.terminal.visible` (or :func:`~deskpilot.terminal.one_line`)
before it reaches the terminal, so escape sequences in it are shown, not obeyed.

The approval question shows an action that reaches beyond the desktop's pointer IN FULL: a
bash command or a text-editor command (they run on this machine), keyboard input (``type``,
``key``, ``hold_key``: it goes to whatever window has the focus, a terminal included), and
the arguments of the caller's own tools. Pointer actions, screenshots, waits and zooms get
their one-line summary. The default answer is No, and no answer (end of input) declines.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .terminal import one_line, visible

if TYPE_CHECKING:
    from .agent.records import StepRecord
    from .prompt import ToolCall

__all__ = [
    "approval_question",
    "ask_approval",
    "confirm_plan",
    "show",
    "step_printer",
]

EDITOR_TOOLS = frozenset({"str_replace_editor", "str_replace_based_edit_tool"})


def _summary(call: ToolCall) -> str:
    from .agent.report import action_summary

    return action_summary(
        {"name": call.name, "toolset_name": call.toolset_name, "input": call.arguments}
    )


def _on_computer(call: ToolCall) -> tuple[bool, str]:
    """(True, action) when ``call`` reaches the computer tool (the agent dispatches a
    ``toolset_name`` of ``"computer"``, or the tool named ``computer``, there); else
    (False, the tool's name)."""
    if call.toolset_name == "computer":
        return True, call.name
    if call.toolset_name is None and call.name == "computer":
        return True, str(call.arguments.get("action", ""))
    return False, call.name


def _detail(call: ToolCall, action: str, on_computer: bool) -> tuple[str, str]:
    """(what it is, everything it will do) for an action shown in full."""
    args = call.arguments
    if on_computer:
        what = (
            f"keyboard input to the desktop ({action}); it goes to the window with the focus, "
            "a terminal included"
        )
        text = args.get("text", "")
        text = text if isinstance(text, str) else repr(text)
        extra = f"\n(held for {args['duration']} s)" if "duration" in args else ""
        return what, text + extra
    if call.name == "bash":
        what = "a bash command that runs on THIS machine"
        if args.get("restart"):
            return what, "(restart the shell)"
        return what, str(args.get("command", ""))
    if call.name in EDITOR_TOOLS:
        parts = [f"{key}: {args[key]}" for key in ("command", "path") if key in args]
        parts += [f"{key}:\n{args[key]}" for key in sorted(args) if key not in ("command", "path")]
        return "a text-editor command on THIS machine's files", "\n".join(parts)
    try:
        shown = json.dumps(args, ensure_ascii=False, indent=2, default=repr)
    except (TypeError, ValueError):
        shown = repr(args)
    return f"a call of your tool {call.name!r} with these arguments", shown


def approval_question(call: ToolCall) -> str:
    """The question ``run --approve`` asks before ``call`` runs (click adds ``[y/N]``).

    Returns:
        ``"  allow left_click (412, 300)?"`` for pointer-only computer actions; for every
        other action, a header line, each line of what it will do IN FULL behind ``| ``
        (control characters visible), its length, then ``"  allow bash?"`` (or the tool
        and action).
    """
    from .agent.replay.plan import pointer_only  # the one consent rule, shared with replay

    on_computer, action = _on_computer(call)
    if on_computer and pointer_only(action, call.arguments):
        return f"  allow {one_line(_summary(call), 200)}?"
    what, detail = _detail(call, action, on_computer)
    shown = visible(detail, keep_newlines=True)
    lines = [f"  {visible(what)} ({len(detail)} characters):"]
    lines += [f"      | {line}" for line in shown.split("\n")]
    label = f"computer {action}" if on_computer else call.name
    lines.append(f"  allow {one_line(label, 80)}?")
    return "\n".join(lines)


async def ask_approval(call: ToolCall) -> bool:
    """Ask :func:`approval_question` on the terminal (off the event loop); default No.

    Returns:
        True only for an explicit yes; No, an empty answer and the end of input decline.
    """
    question = approval_question(call)
    try:
        return bool(await asyncio.to_thread(click.confirm, question, default=False))
    except click.exceptions.Abort:  # end of input (EOF)
        click.echo("\n  no answer (end of input): declined.", err=True)
        return False


def step_printer(start: float) -> Callable[[StepRecord], None]:
    """An ``on_step`` callback printing one line per action: step, action, time.

    ``start`` is the run's start (``time.monotonic()``). Everything from the model or a
    tool is printed through :func:`deskpilot.terminal.one_line`.
    """
    from .agent.report import action_summary

    def on_step(step: StepRecord) -> None:
        idx = step.index
        resp = step.response
        elapsed = time.monotonic() - start
        if resp.is_error:
            click.echo(
                f"  step {idx:>3}  API error: {one_line(resp.error_message or '')}", err=True
            )
        actions = step.actions
        if not actions and not resp.is_error:
            texts = [str(b.get("text", "")) for b in resp.content if b.get("type") == "text"]
            answer = one_line(" ".join(texts), 90)
            click.echo(f"  step {idx:>3}  answer: {answer}   [{elapsed:6.1f} s]")
        for action in actions:
            took = f"{action.timings.total_s:.2f} s"
            flag = f"  ERROR: {one_line(action.text, 80)}" if action.is_error else ""
            click.echo(
                f"  step {idx:>3}  {one_line(action_summary(action), 70):<70} {took:>7}"
                f"   [{elapsed:6.1f} s]{flag}"
            )

    return on_step


def show(text: Any) -> str:
    """Untrusted multi-line text (a final answer, an error) ready for ``click.echo``."""
    return visible(str(text), keep_newlines=True)


def confirm_plan(header: str, plan: list[Any], problems: list[str], assume_yes: bool) -> bool:
    """Show a replay's plan (``deskpilot replay``, ``run --replay``): every call that needs
    consent in full, with why; then ask (default No) unless ``assume_yes``; exit 1 when
    declined.

    Returns:
        Whether anything in the plan needed consent (it was given).
    """
    from .agent.replay import consent_question, format_plan

    click.echo(header)
    click.echo(format_plan(plan) or "  (none)")
    for problem in problems:
        click.echo(f"Note: {visible(problem)}", err=True)
    question = consent_question(plan)
    if question is not None and not assume_yes and not click.confirm(question, default=False):
        click.echo("Nothing was replayed (pass --yes to skip this question).", err=True)
        sys.exit(1)
    return question is not None
