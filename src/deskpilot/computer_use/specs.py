"""The Anthropic-defined tools as data: versions, names, actions, beta flags, generations.

One table says everything version-specific; executors, providers and the model registry
read it. Sources: platform.claude.com "Computer use tool", "Text editor tool", "Bash tool"
(mirrored 2026-09-26), summarised in shared/reference/peers.md §1.1-§1.6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# --- computer ------------------------------------------------------------------------------

ACTIONS_20241022: tuple[str, ...] = (
    "key",
    "type",
    "mouse_move",
    "left_click",
    "left_click_drag",
    "right_click",
    "middle_click",
    "double_click",
    "screenshot",
    "cursor_position",
)
ACTIONS_20250124: tuple[str, ...] = (
    *ACTIONS_20241022,
    "left_mouse_down",
    "left_mouse_up",
    "scroll",
    "hold_key",
    "wait",
    "triple_click",
)
ACTIONS_20251124: tuple[str, ...] = (*ACTIONS_20250124, "zoom")
TOOLSET_MEMBERS: tuple[str, ...] = ACTIONS_20251124  # one tool_use per member, name = action

TOOLSET_HALT_TEXT = "Not executed: an earlier computer action in this turn failed."
"""Exact text for every toolset block after the first failure (computer-use page, "Batch actions")."""


@dataclass(frozen=True, slots=True)
class ComputerSpec:
    """One version of the computer tool.

    Attributes:
        type: the wire ``type`` (``computer_20250124``, ``computer_toolset_20260801``, ...).
        beta: the ``anthropic-beta`` flag it needs, or None (the toolset is GA).
        actions: the actions it accepts, in documentation order.
        toolset: True for ``computer_toolset_20260801`` (one tool_use per member).
        zoom: whether ``zoom`` exists (20251124 only with ``enable_zoom``).
        hold_cap_s: the largest ``duration`` of ``hold_key``/``wait``, in seconds.
    """

    type: str
    beta: str | None
    actions: tuple[str, ...]
    toolset: bool = False
    zoom: bool = False
    hold_cap_s: float = 100.0


COMPUTER_SPECS: dict[str, ComputerSpec] = {
    "computer_20241022": ComputerSpec(
        "computer_20241022", "computer-use-2024-10-22", ACTIONS_20241022
    ),
    "computer_20250124": ComputerSpec(
        "computer_20250124", "computer-use-2025-01-24", ACTIONS_20250124
    ),
    "computer_20251124": ComputerSpec(
        "computer_20251124", "computer-use-2025-11-24", ACTIONS_20251124, zoom=True
    ),
    "computer_toolset_20260801": ComputerSpec(
        "computer_toolset_20260801",
        None,
        TOOLSET_MEMBERS,
        toolset=True,
        zoom=True,
        hold_cap_s=300.0,
    ),
}

COMPUTER_STEP_DOWN: dict[str, str] = {
    "computer_toolset_20260801": "computer_20251124",
    "computer_20251124": "computer_20250124",
    "computer_20250124": "computer_20241022",
}
"""The next older computer version to try when the API answers 400 naming a tool type."""

# --- text editor and bash -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EditorSpec:
    type: str
    name: str
    commands: tuple[str, ...]
    insert_param: Literal["new_str", "insert_text"]
    max_characters: bool = False


EDITOR_SPECS: dict[str, EditorSpec] = {
    "text_editor_20241022": EditorSpec(
        "text_editor_20241022",
        "str_replace_editor",
        ("view", "create", "str_replace", "insert", "undo_edit"),
        "new_str",
    ),
    "text_editor_20250124": EditorSpec(
        "text_editor_20250124",
        "str_replace_editor",
        ("view", "create", "str_replace", "insert", "undo_edit"),
        "new_str",
    ),
    "text_editor_20250429": EditorSpec(
        "text_editor_20250429",
        "str_replace_based_edit_tool",
        ("view", "create", "str_replace", "insert"),
        "new_str",
    ),
    "text_editor_20250728": EditorSpec(
        "text_editor_20250728",
        "str_replace_based_edit_tool",
        ("view", "create", "str_replace", "insert"),
        "insert_text",
        max_characters=True,
    ),
}

BASH_SPECS: dict[str, str | None] = {
    "bash_20241022": "computer-use-2024-10-22",
    "bash_20250124": None,
}
"""Bash tool versions and the beta flag each needs (only the 2024 one needs one)."""

# --- generations: what a model takes together ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolGeneration:
    """The computer, editor and bash versions a model takes together, and the beta flag."""

    computer: str
    editor: str
    bash: str

    @property
    def betas(self) -> tuple[str, ...]:
        flags = [COMPUTER_SPECS[self.computer].beta, BASH_SPECS[self.bash]]
        if self.editor == "text_editor_20241022":
            flags.append("computer-use-2024-10-22")
        out: list[str] = []
        for f in flags:
            if f and f not in out:
                out.append(f)
        return tuple(out)

    def stepped_down(self) -> ToolGeneration | None:
        """The same generation with the next older computer tool, or None at the oldest."""
        older = COMPUTER_STEP_DOWN.get(self.computer)
        if older is None:
            return None
        if older == "computer_20241022":
            return GENERATIONS["20241022"]
        return ToolGeneration(older, self.editor, self.bash)


GENERATIONS: dict[str, ToolGeneration] = {
    "20241022": ToolGeneration("computer_20241022", "text_editor_20241022", "bash_20241022"),
    "20250124": ToolGeneration("computer_20250124", "text_editor_20250124", "bash_20250124"),
    "20250429": ToolGeneration("computer_20250124", "text_editor_20250429", "bash_20250124"),
    "20250728": ToolGeneration("computer_20250124", "text_editor_20250728", "bash_20250124"),
    "20251124": ToolGeneration("computer_20251124", "text_editor_20250728", "bash_20250124"),
    "20260801": ToolGeneration(
        "computer_toolset_20260801", "text_editor_20250728", "bash_20250124"
    ),
}
"""Keyed by the generation's date; the model registry names one per platform."""


# --- wire definitions ---------------------------------------------------------------------


def computer_definition(
    tool_type: str,
    display_width_px: int,
    display_height_px: int,
    *,
    display_number: int | None = None,
    enable_zoom: bool = True,
    disabled_members: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The ``tools`` entry for a computer tool version.

    Args:
        tool_type: a key of :data:`COMPUTER_SPECS`.
        display_width_px / display_height_px: the screenshot size the model sees, in
            model-space pixels (after the client-side resize, not the native display).
        display_number: the X11 display number; sent only when given (never ``null``).
        enable_zoom: for ``computer_20251124`` only (the API default is false).
        disabled_members: toolset members sent with ``enabled: false``.

    Raises:
        KeyError: an unknown tool type.

    The toolset rejects ``name`` and the display fields (invalid_request_error), so it gets
    only its ``type`` and ``configs``.
    """
    spec = COMPUTER_SPECS[tool_type]
    if spec.toolset:
        d: dict[str, Any] = {"type": tool_type}
        if disabled_members:
            d["configs"] = {m: {"enabled": False} for m in disabled_members}
        return d
    d = {
        "type": tool_type,
        "name": "computer",
        "display_width_px": int(display_width_px),
        "display_height_px": int(display_height_px),
    }
    if display_number is not None:
        d["display_number"] = int(display_number)
    if tool_type == "computer_20251124" and enable_zoom:
        d["enable_zoom"] = True
    return d


def editor_definition(tool_type: str, *, max_characters: int | None = None) -> dict[str, Any]:
    """The ``tools`` entry for a text-editor version (``max_characters`` only on 20250728)."""
    spec = EDITOR_SPECS[tool_type]
    d: dict[str, Any] = {"type": tool_type, "name": spec.name}
    if max_characters is not None and spec.max_characters:
        d["max_characters"] = int(max_characters)
    return d


def bash_definition(tool_type: str) -> dict[str, Any]:
    """The ``tools`` entry for a bash version."""
    if tool_type not in BASH_SPECS:
        raise KeyError(tool_type)
    return {"type": tool_type, "name": "bash"}


def beta_for_tool_type(tool_type: str) -> str | None:
    """The beta flag a tool type needs, or None (GA tools and custom tools)."""
    if tool_type in COMPUTER_SPECS:
        return COMPUTER_SPECS[tool_type].beta
    if tool_type in BASH_SPECS:
        return BASH_SPECS[tool_type]
    if tool_type == "text_editor_20241022":
        return "computer-use-2024-10-22"
    if tool_type in EDITOR_SPECS:
        return None
    return None


__all__ = [
    "ACTIONS_20241022",
    "ACTIONS_20250124",
    "ACTIONS_20251124",
    "BASH_SPECS",
    "COMPUTER_SPECS",
    "COMPUTER_STEP_DOWN",
    "EDITOR_SPECS",
    "GENERATIONS",
    "TOOLSET_HALT_TEXT",
    "TOOLSET_MEMBERS",
    "ComputerSpec",
    "EditorSpec",
    "ToolGeneration",
    "bash_definition",
    "beta_for_tool_type",
    "computer_definition",
    "editor_definition",
]
