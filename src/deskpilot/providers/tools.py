"""Assemble a request's tools: computer-use definitions, custom tools, raw dicts, beta flags.

Order: the computer, editor and bash definitions of the model's generation (when
``computer_use=True``), then ``tools=`` in the caller's order (custom :class:`Tool` s and
raw Anthropic tool dicts such as ``ComputerTool.definition``). The beta flags come from each
tool's ``type`` via :func:`deskpilot.computer_use.specs.beta_for_tool_type`.

Step-down (computer-use page, "Compatibility"): when the API answers 400 naming an
unsupported tool type, :func:`unsupported_tool_types` extracts the types, and the next build
replaces the computer tool by the next older version (:data:`specs.COMPUTER_STEP_DOWN`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from ..computer_use.specs import (
    COMPUTER_SPECS,
    COMPUTER_STEP_DOWN,
    EDITOR_SPECS,
    ToolGeneration,
    bash_definition,
    beta_for_tool_type,
    computer_definition,
    editor_definition,
)
from ..errors import ConfigError
from ..models import ModelSpec
from ..tool import Tool
from .base import RequestOptions, ToolSet

# Input-token overhead of each Anthropic-defined tool (computer-use page "Pricing";
# bash page; text-editor page). The toolset figure is for the default members.
TOOL_TOKEN_OVERHEAD: dict[str, int] = {
    "computer": 735,
    "computer_toolset": 4500,
    "text_editor": 700,
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


def step_down_type(tool_type: str, unsupported: Collection[str]) -> str:
    """Follow the step-down chain from ``tool_type`` past every type in ``unsupported``."""
    seen = 0
    while tool_type in unsupported and tool_type in COMPUTER_STEP_DOWN and seen < 8:
        tool_type = COMPUTER_STEP_DOWN[tool_type]
        seen += 1
    return tool_type


def generation_for(
    spec: ModelSpec, platform: str, unsupported: Collection[str] = ()
) -> ToolGeneration:
    """The model's generation on ``platform`` after stepping past ``unsupported`` types."""
    gen = spec.tool_generation(platform)
    guard = 0
    while gen.computer in unsupported and guard < 8:
        older = gen.stepped_down()
        if older is None:
            break
        gen = older
        guard += 1
    return gen


def _overhead(tool_type: str) -> int:
    if tool_type.startswith("computer_toolset"):
        return TOOL_TOKEN_OVERHEAD["computer_toolset"]
    if tool_type.startswith("computer_"):
        return TOOL_TOKEN_OVERHEAD["computer"]
    if tool_type.startswith("text_editor_"):
        return TOOL_TOKEN_OVERHEAD["text_editor"]
    if tool_type.startswith("bash_"):
        return TOOL_TOKEN_OVERHEAD["bash"]
    return 0


def _stepped_computer_dict(
    d: dict[str, Any], new_type: str, opts: RequestOptions
) -> dict[str, Any]:
    width = d.get("display_width_px", opts.display_width)
    height = d.get("display_height_px", opts.display_height)
    return computer_definition(
        new_type,
        width,
        height,
        display_number=d.get("display_number", opts.display_number),
        enable_zoom=bool(d.get("enable_zoom", True)),
    )


def build_toolset(
    spec: ModelSpec,
    platform: str,
    opts: RequestOptions,
    unsupported: Collection[str] = (),
) -> ToolSet:
    """The request's tools, beta flags, computer tool type and token overhead.

    Raises:
        ConfigError: an item of ``tools=`` is neither a Tool nor a dict, or two tools share
            a name.
    """
    out = ToolSet()
    if opts.computer_use:
        gen = generation_for(spec, platform, unsupported)
        out.tools.append(
            computer_definition(
                gen.computer,
                opts.display_width,
                opts.display_height,
                display_number=opts.display_number,
            )
        )
        out.tools.append(editor_definition(gen.editor))
        out.tools.append(bash_definition(gen.bash))
        out.computer_tool_type = gen.computer
    for item in opts.tools:
        if isinstance(item, Tool):
            out.custom.append(item)
            out.tools.append(item.to_anthropic())
        elif isinstance(item, dict):
            d = item
            t = d.get("type")
            if isinstance(t, str) and t in COMPUTER_SPECS:
                new_type = step_down_type(t, unsupported)
                if new_type != t:
                    d = _stepped_computer_dict(d, new_type, opts)
                if out.computer_tool_type is None:
                    out.computer_tool_type = d["type"]
            out.tools.append(d)
        else:
            raise ConfigError(
                "tools= items must be deskpilot.Tool objects (e.g. Tool.from_function(fn)) or "
                f"Anthropic tool dicts, not {type(item).__name__}."
            )
    names: set[str | None] = set()  # None: a dict with neither a name nor a type
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
        if isinstance(t, str):
            beta = beta_for_tool_type(t)
            if beta and beta not in betas:
                betas.append(beta)
            overhead += _overhead(t)
        else:
            overhead += len(str(d)) // 4
    if out.computer_tool_type is not None:
        overhead += COMPUTER_USE_SYSTEM_OVERHEAD
    out.betas = betas
    out.overhead_tokens = overhead
    return out


def is_anthropic_defined(tool: dict[str, Any]) -> bool:
    """True for the Anthropic-defined tool types (computer, editor, bash)."""
    t = tool.get("type")
    return isinstance(t, str) and (
        t in COMPUTER_SPECS or t in EDITOR_SPECS or t.startswith("bash_")
    )


__all__ = [
    "COMPUTER_USE_SYSTEM_OVERHEAD",
    "TOOL_TOKEN_OVERHEAD",
    "build_toolset",
    "generation_for",
    "is_anthropic_defined",
    "step_down_type",
    "unsupported_tool_types",
]
