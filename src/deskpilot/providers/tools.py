"""Assemble a request's tools: computer-use definitions, custom tools, raw dicts, beta flags.

Order: the computer, editor and bash definitions of the model's tool group (when
``computer_use=True``), then ``tools=`` in the caller's order (custom :class:`Tool` s and
raw Anthropic tool dicts such as ``ComputerTool.definition``). The beta flags come from each
tool's ``type`` via the one tool-version table (:mod:`deskpilot.computer_use.specs`).

Step-down (computer use tool page, "Compatibility",
https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool): when the
API answers 400 naming unsupported tool types, :func:`unsupported_tool_types` extracts them
and :func:`deskpilot.computer_use.specs.step_down` decides the next group. Only the group
the client owns (``computer_use=True``) is ever stepped down here; the caller's ``tools=``
dicts are sent exactly as given (the caller steps down itself with the same function).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from ..computer_use.specs import (
    TOOL_VERSIONS,
    ComputerSpec,
    ToolGroup,
    bash_definition,
    beta_for_tool_type,
    computer_definition,
    editor_definition,
    step_down,
)
from ..errors import ConfigError
from ..models import ModelSpec
from ..tool import Tool
from .base import RequestOptions, ToolSet

# Input-token overhead of each Anthropic-defined tool (computer use tool page, "Pricing";
# bash tool page; text editor tool page). The toolset figure is for the default members.
TOOL_TOKEN_OVERHEAD: dict[str, int] = {
    "computer": 735,
    "computer_toolset": 4500,
    "editor": 700,
    "bash": 245,
}
COMPUTER_USE_SYSTEM_OVERHEAD = 466
"""Tokens the API adds to the system prompt when a computer tool is present."""

_UNSUPPORTED_RE = re.compile(r"does not support tool types?:?\s*([A-Za-z0-9_,\s]+)")


def unsupported_tool_types(message: str) -> list[str]:
    """The tool types named in an API 400 such as ``'claude-sonnet-5-5' does not support
    tool types: computer_20251124.`` (empty when the message is not of that form)."""
    m = _UNSUPPORTED_RE.search(message or "")
    if not m:
        return []
    return [t for t in re.split(r"[\s,]+", m.group(1)) if t]


def group_for(spec: ModelSpec, platform: str, rejected: Collection[str] = ()) -> ToolGroup:
    """The tool group to send for ``spec`` on ``platform``, past the ``rejected`` types.

    The model's group (:meth:`ModelSpec.tool_group`) stepped down past every remembered
    rejected type (:func:`~deskpilot.computer_use.specs.step_down`); the model's own group
    when none of its members was rejected or no older version is left.

    Raises:
        ConfigError: the model has no computer-use tool group.
    """
    group = spec.tool_group(platform)
    return step_down(group, rejected) or group


def _overhead(tool_type: str) -> int:
    row = TOOL_VERSIONS.get(tool_type)
    if row is None:
        return 0
    if isinstance(row, ComputerSpec) and row.toolset:
        return TOOL_TOKEN_OVERHEAD["computer_toolset"]
    return TOOL_TOKEN_OVERHEAD[row.kind]


def build_toolset(
    spec: ModelSpec,
    platform: str,
    opts: RequestOptions,
    rejected: Collection[str] = (),
) -> ToolSet:
    """The request's tools, beta flags, tool group, computer tool type and token overhead.

    Args:
        spec / platform: the model and the platform it is called on.
        opts: the request options (``computer_use``, ``tools``, display size).
        rejected: tool types the API rejected for this model before; they step down the
            client's own group (``computer_use=True``) and never touch ``tools=``.

    Raises:
        ConfigError: an item of ``tools=`` is neither a Tool nor a dict, two tools share a
            name, or two Anthropic-defined tools of one kind (two computer tools, ...).
    """
    out = ToolSet()
    if opts.computer_use:
        group = group_for(spec, platform, rejected)
        if group.computer is not None:
            out.tools.append(
                computer_definition(
                    group.computer,
                    opts.display_width,
                    opts.display_height,
                    display_number=opts.display_number,
                )
            )
        if group.editor is not None:
            out.tools.append(editor_definition(group.editor))
        if group.bash is not None:
            out.tools.append(bash_definition(group.bash))
    for item in opts.tools:
        if isinstance(item, Tool):
            out.custom.append(item)
            out.tools.append(item.to_anthropic())
        elif isinstance(item, dict):
            out.tools.append(item)
        else:
            raise ConfigError(
                "tools= items must be deskpilot.Tool objects (e.g. Tool.from_function(fn)) or "
                f"Anthropic tool dicts, not {type(item).__name__}."
            )
    names: set[str | None] = set()  # None: a dict with neither a name nor a type
    kinds: dict[str, str] = {}
    betas: list[str] = []
    overhead = 0
    for d in out.tools:
        t = d.get("type")
        key = d.get("name") or t
        if key in names:
            raise ConfigError(
                f"Two tools are named {key!r}; with computer_use=True do not also pass the "
                "computer, editor or bash definitions in tools=."
            )
        names.add(key)
        row = TOOL_VERSIONS.get(t) if isinstance(t, str) else None
        if row is not None:
            if row.kind in kinds:
                raise ConfigError(
                    f"Two {row.kind} tools in one request ({kinds[row.kind]} and {t}); send one "
                    "version of each Anthropic-defined tool (with computer_use=True, none in "
                    "tools=)."
                )
            kinds[row.kind] = row.type
        if isinstance(t, str):
            beta = beta_for_tool_type(t)
            if beta and beta not in betas:
                betas.append(beta)
            overhead += _overhead(t)
        else:
            overhead += len(str(d)) // 4
    out.group = ToolGroup(**kinds)
    out.computer_tool_type = out.group.computer
    if out.computer_tool_type is not None:
        overhead += COMPUTER_USE_SYSTEM_OVERHEAD
    out.betas = betas
    out.overhead_tokens = overhead
    return out


def stepped_toolset(
    spec: ModelSpec,
    platform: str,
    opts: RequestOptions,
    sent: ToolSet,
    rejected: Collection[str],
) -> ToolSet | None:
    """The toolset to send after the API rejected ``rejected`` types of ``sent``, or None.

    Only the client's own group steps down (``computer_use=True``): to the group
    :func:`~deskpilot.computer_use.specs.step_down` gives for ``sent.group``. With the
    caller's ``tools=`` (or when no older version is left) this is None and the caller gets
    the error with ``rejected_tool_types``.

    Raises:
        ConfigError: as :func:`build_toolset`.
    """
    if not opts.computer_use:
        return None
    target = step_down(sent.group, rejected)
    if target is None:
        return None
    new = build_toolset(spec, platform, opts, rejected)
    return new if new.group == target else None


def is_anthropic_defined(tool: dict[str, Any]) -> bool:
    """True for the Anthropic-defined tool types (computer, editor, bash)."""
    t = tool.get("type")
    return isinstance(t, str) and t in TOOL_VERSIONS


__all__ = [
    "COMPUTER_USE_SYSTEM_OVERHEAD",
    "TOOL_TOKEN_OVERHEAD",
    "build_toolset",
    "group_for",
    "is_anthropic_defined",
    "stepped_toolset",
    "unsupported_tool_types",
]
