"""The Anthropic-defined tools as data: ONE table of tool versions, tool groups and step-down.

Every version of the ``computer``, text-editor and ``bash`` tools is one row of
:data:`TOOL_VERSIONS` (a frozen mapping, wire type -> row). A row carries the wire ``type``,
the tool kind, the ``name`` the model calls, the ``anthropic-beta`` flag it needs, the
executor class that runs it, the tool groups (generations) it belongs to, and the
version-specific data (computer actions and ``hold_key`` cap, editor commands and insert
parameter). Executors, providers, the model registry and the agent read this table and
nothing else.

A **tool group** (:class:`ToolGroup`) is the computer, editor and bash versions sent
together. The named groups (``"20250429"``, ``"20260801"``, ...) are the generations the
model registry assigns per platform; they are *derived* from the rows (each row lists the
groups it belongs to), so there is no second table to disagree with.

**Step-down** (computer-use page, "Compatibility"): when the API answers 400 naming tool
types it does not support, :func:`step_down` gives the next group to try: every rejected
member moves to the next older version of its kind (the previous row of that kind, rows
being listed oldest first), the members that were not rejected stay. The client (for
``computer_use=True``) and the agent (for its own executors) both call it, so both send the
same group.

**Executor classes** are referenced by dotted path (``"module:Class"``) and imported on
first use by :meth:`ToolSpec.executor_class`: the executors import this module, so a direct
reference would be an import cycle.

Sources (public doc pages): the computer use tool
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool: versions,
actions, beta flags, "Compatibility", "Batch actions"), the text editor tool
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/text-editor-tool) and the
bash tool (https://platform.claude.com/docs/en/agents-and-tools/tool-use/bash-tool). The
"one table from version to tool classes and beta flag" design follows Anthropic's reference
implementation (github.com/anthropics/anthropic-quickstarts,
``computer-use-demo/computer_use_demo/tools/groups.py``).
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from .base import Executor

ToolKind = Literal["computer", "editor", "bash"]
KINDS: tuple[ToolKind, ...] = ("computer", "editor", "bash")
"""The kinds of Anthropic-defined tools, in request order."""

# --- computer actions ------------------------------------------------------------------------

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

_EDITOR_COMMANDS_UNDO = ("view", "create", "str_replace", "insert", "undo_edit")
_EDITOR_COMMANDS = ("view", "create", "str_replace", "insert")
_BETA_2024 = "computer-use-2024-10-22"

_COMPUTER_EXECUTOR = "deskpilot.computer_use.computer:ComputerTool"
_EDITOR_EXECUTOR = "deskpilot.computer_use.editor:EditorTool"
_BASH_EXECUTOR = "deskpilot.computer_use.bash:BashTool"

# --- the rows --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """One version of one Anthropic-defined tool (a row of :data:`TOOL_VERSIONS`).

    Attributes:
        type: the wire ``type`` (``computer_20250124``, ``text_editor_20250728``, ...).
        kind: ``"computer"``, ``"editor"`` or ``"bash"``.
        name: the tool ``name`` the model calls (for the toolset: its ``toolset_name``).
        beta: the ``anthropic-beta`` flag the version needs, or None.
        executor: the executor class as ``"module:Class"`` (see :meth:`executor_class`).
        groups: the named tool groups (generations) this version is the ``kind`` member of.
    """

    type: str
    kind: ToolKind
    name: str
    beta: str | None
    executor: str
    groups: tuple[str, ...] = ()

    def executor_class(self) -> builtins.type[Executor]:
        """The executor class that runs this version (imported on first use).

        Raises:
            ImportError: the module named in :attr:`executor` cannot be imported.
            AttributeError: it has no such class.
        """
        module, _, cls = self.executor.partition(":")
        found: builtins.type[Executor] = getattr(importlib.import_module(module), cls)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputerSpec(ToolSpec):
    """A version of the computer tool.

    Attributes:
        actions: the actions it accepts, in documentation order.
        toolset: True for ``computer_toolset_20260801`` (one tool_use per member).
        zoom: whether ``zoom`` exists (``computer_20251124`` only with ``enable_zoom``).
        hold_cap_s: the largest ``duration`` of ``hold_key``/``wait``, in seconds.
        pointer_actions: clicks take no ``coordinate`` and ``left_click_drag`` no
            ``start_coordinate``: they act from where the pointer is (``computer_20241022``).
        key_modifiers: clicks and ``scroll`` also take modifier keys in ``key`` (besides
            ``text``), as the 2025 beta schemas had it.
        key_repeat: ``key`` takes ``repeat`` (1-100; the toolset).
    """

    kind: ToolKind = "computer"
    name: str = "computer"
    executor: str = _COMPUTER_EXECUTOR
    actions: tuple[str, ...] = ()
    toolset: bool = False
    zoom: bool = False
    hold_cap_s: float = 100.0
    pointer_actions: bool = False
    key_modifiers: bool = False
    key_repeat: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class EditorSpec(ToolSpec):
    """A version of the text-editor tool.

    Attributes:
        commands: the ``command`` values it accepts.
        insert_param: the parameter holding the text of ``insert`` (``insert_text`` from
            20250728 on, ``new_str`` before).
        max_characters: whether the definition takes ``max_characters`` (20250728).
    """

    kind: ToolKind = "editor"
    executor: str = _EDITOR_EXECUTOR
    commands: tuple[str, ...] = _EDITOR_COMMANDS
    insert_param: Literal["new_str", "insert_text"] = "new_str"
    max_characters: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BashSpec(ToolSpec):
    """A version of the bash tool (inputs ``command`` and ``restart`` in every version)."""

    kind: ToolKind = "bash"
    name: str = "bash"
    executor: str = _BASH_EXECUTOR


_ROWS: tuple[ToolSpec, ...] = (
    # computer, oldest first
    ComputerSpec(
        type="computer_20241022",
        beta=_BETA_2024,
        actions=ACTIONS_20241022,
        pointer_actions=True,
        groups=("20241022",),
    ),
    ComputerSpec(
        type="computer_20250124",
        beta="computer-use-2025-01-24",
        actions=ACTIONS_20250124,
        key_modifiers=True,
        groups=("20250124", "20250429", "20250728"),
    ),
    ComputerSpec(
        type="computer_20251124",
        beta="computer-use-2025-11-24",
        actions=ACTIONS_20251124,
        zoom=True,
        key_modifiers=True,
        groups=("20251124",),
    ),
    ComputerSpec(
        type="computer_toolset_20260801",
        beta=None,  # GA
        actions=TOOLSET_MEMBERS,
        toolset=True,
        zoom=True,
        hold_cap_s=300.0,
        key_repeat=True,
        groups=("20260801",),
    ),
    # text editor, oldest first
    EditorSpec(
        type="text_editor_20241022",
        name="str_replace_editor",
        beta=_BETA_2024,
        commands=_EDITOR_COMMANDS_UNDO,
        groups=("20241022",),
    ),
    EditorSpec(
        type="text_editor_20250124",
        name="str_replace_editor",
        beta=None,
        commands=_EDITOR_COMMANDS_UNDO,
        groups=("20250124",),
    ),
    EditorSpec(
        type="text_editor_20250429",
        name="str_replace_based_edit_tool",
        beta=None,
        groups=("20250429",),
    ),
    EditorSpec(
        type="text_editor_20250728",
        name="str_replace_based_edit_tool",
        beta=None,
        insert_param="insert_text",
        max_characters=True,
        groups=("20250728", "20251124", "20260801"),
    ),
    # bash, oldest first
    BashSpec(type="bash_20241022", beta=_BETA_2024, groups=("20241022",)),
    BashSpec(
        type="bash_20250124",
        beta=None,
        groups=("20250124", "20250429", "20250728", "20251124", "20260801"),
    ),
)

TOOL_VERSIONS: Mapping[str, ToolSpec] = MappingProxyType({row.type: row for row in _ROWS})
"""THE table: wire type -> :class:`ToolSpec` row, every kind, each kind oldest first."""

_S = TypeVar("_S", bound=ToolSpec)


def _of(tool_type: str, cls: type[_S]) -> _S:
    row = TOOL_VERSIONS.get(tool_type) if isinstance(tool_type, str) else None
    if not isinstance(row, cls):
        raise KeyError(tool_type)
    return row


def tool_spec(tool_type: str) -> ToolSpec:
    """The row of ``tool_type``.

    Raises:
        KeyError: not an Anthropic-defined tool type.
    """
    return _of(tool_type, ToolSpec)


def computer_spec(tool_type: str) -> ComputerSpec:
    """The row of a computer tool type.

    Raises:
        KeyError: ``tool_type`` is not a computer tool version.
    """
    return _of(tool_type, ComputerSpec)


def editor_spec(tool_type: str) -> EditorSpec:
    """The row of a text-editor tool type.

    Raises:
        KeyError: ``tool_type`` is not a text-editor version.
    """
    return _of(tool_type, EditorSpec)


def bash_spec(tool_type: str) -> BashSpec:
    """The row of a bash tool type.

    Raises:
        KeyError: ``tool_type`` is not a bash version.
    """
    return _of(tool_type, BashSpec)


def versions(kind: ToolKind) -> tuple[str, ...]:
    """The wire types of one kind, oldest first."""
    return tuple(r.type for r in _ROWS if r.kind == kind)


def older_version(tool_type: str) -> str | None:
    """The next older version of the same kind (the previous row), or None at the oldest.

    Raises:
        KeyError: an unknown tool type.
    """
    chain = versions(tool_spec(tool_type).kind)
    i = chain.index(tool_type)
    return chain[i - 1] if i > 0 else None


def beta_for_tool_type(tool_type: str) -> str | None:
    """The beta flag a tool type needs, or None (GA tools and custom tools)."""
    row = TOOL_VERSIONS.get(tool_type)
    return row.beta if row is not None else None


# --- groups -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolGroup:
    """The computer, editor and bash versions sent together (any may be None: absent).

    Raises:
        KeyError: a member is not a version of its kind (on construction).
    """

    computer: str | None = None
    editor: str | None = None
    bash: str | None = None

    def __post_init__(self) -> None:
        for kind in KINDS:
            t = getattr(self, kind)
            if t is not None and tool_spec(t).kind != kind:
                raise KeyError(f"{t!r} is not a {kind} tool version")

    @classmethod
    def named(cls, key: str) -> ToolGroup:
        """The named group (generation) ``key``, e.g. ``"20250429"``.

        Raises:
            KeyError: an unknown group name (see :data:`GROUP_NAMES`).
        """
        if key not in GROUP_NAMES:
            raise KeyError(key)
        members = {r.kind: r.type for r in _ROWS if key in r.groups}
        return cls(**members)

    @classmethod
    def of_types(cls, types: Iterable[str]) -> ToolGroup:
        """The group formed by the Anthropic-defined types among ``types`` (others ignored).

        Raises:
            ValueError: two types of the same kind.
        """
        members: dict[str, str] = {}
        for t in types:
            row = TOOL_VERSIONS.get(t) if isinstance(t, str) else None
            if row is None:
                continue
            if row.kind in members:
                raise ValueError(f"two {row.kind} tools in one request: {members[row.kind]}, {t}")
            members[row.kind] = t
        return cls(**members)

    def __bool__(self) -> bool:
        """False for the empty group (no Anthropic-defined tool)."""
        return bool(self.types)

    def member(self, kind: ToolKind) -> str | None:
        """The version of ``kind`` in this group, or None."""
        value: str | None = getattr(self, kind)
        return value

    @property
    def types(self) -> tuple[str, ...]:
        """The members' wire types in request order (computer, editor, bash), absent skipped."""
        return tuple(t for t in (self.computer, self.editor, self.bash) if t is not None)

    @property
    def betas(self) -> tuple[str, ...]:
        """The beta flags the members need, each once, in member order."""
        out: list[str] = []
        for t in self.types:
            beta = TOOL_VERSIONS[t].beta
            if beta and beta not in out:
                out.append(beta)
        return tuple(out)

    def as_dict(self) -> dict[str, str | None]:
        """``{"computer": ..., "editor": ..., "bash": ...}`` (for records and logs)."""
        return {"computer": self.computer, "editor": self.editor, "bash": self.bash}


def _group_names() -> tuple[str, ...]:
    names = sorted({g for r in _ROWS for g in r.groups})
    for g in names:  # every named group has exactly one version of each kind
        for kind in KINDS:
            found = [r.type for r in _ROWS if r.kind == kind and g in r.groups]
            if len(found) != 1:  # pragma: no cover - a broken table fails at import
                raise AssertionError(f"tool group {g} has {len(found)} {kind} versions: {found}")
    return tuple(names)


GROUP_NAMES: tuple[str, ...] = _group_names()
"""The named tool groups (generations), oldest first; the model registry names one per platform."""


def step_down(group: ToolGroup, rejected: Collection[str]) -> ToolGroup | None:
    """The next tool group to try after the API rejected ``rejected`` types of ``group``.

    Every member of ``group`` whose type is in ``rejected`` moves to the next older version
    of its kind (:func:`older_version`), again while that one is also in ``rejected`` (so
    passing every type rejected so far skips them all); members not rejected stay. The
    editor and bash step down like the computer tool.

    Args:
        group: the group that was sent.
        rejected: the tool types the API named as unsupported (a 400 such as
            ``'claude-sonnet-5-5' does not support tool types: computer_20251124.``),
            possibly with earlier ones.

    Returns:
        The group to send next, or None when no member of ``group`` was rejected or a
        rejected member has no older version left.

    Example: ``claude-4-sonnet`` sends group ``20250429`` (``computer_20250124``,
    ``text_editor_20250429``, ``bash_20250124``); with ``computer_20250124`` rejected the
    next group is ``computer_20241022`` + ``text_editor_20250429`` + ``bash_20250124``.
    """
    rejected = set(rejected)
    if not rejected.intersection(group.types):
        return None
    members: dict[str, str | None] = {}
    for kind in KINDS:
        t = group.member(kind)
        while t is not None and t in rejected:
            t = older_version(t)
            if t is None:
                return None
        members[kind] = t
    return ToolGroup(**members)


# --- wire definitions -------------------------------------------------------------------------


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
        tool_type: a computer tool version of :data:`TOOL_VERSIONS`.
        display_width_px / display_height_px: the screenshot size the model sees, in
            model-space pixels (after the client-side resize, not the native display).
        display_number: the X11 display number; sent only when given (never ``null``).
        enable_zoom: for ``computer_20251124`` only (the API default is false).
        disabled_members: toolset members sent with ``enabled: false``.

    Raises:
        KeyError: not a computer tool version.

    The toolset rejects ``name`` and the display fields (invalid_request_error), so it gets
    only its ``type`` and ``configs``.
    """
    spec = computer_spec(tool_type)
    if spec.toolset:
        d: dict[str, Any] = {"type": tool_type}
        if disabled_members:
            d["configs"] = {m: {"enabled": False} for m in disabled_members}
        return d
    d = {
        "type": tool_type,
        "name": spec.name,
        "display_width_px": int(display_width_px),
        "display_height_px": int(display_height_px),
    }
    if display_number is not None:
        d["display_number"] = int(display_number)
    if spec.zoom and enable_zoom:
        d["enable_zoom"] = True
    return d


def editor_definition(tool_type: str, *, max_characters: int | None = None) -> dict[str, Any]:
    """The ``tools`` entry for a text-editor version (``max_characters`` only on 20250728).

    Raises:
        KeyError: not a text-editor version.
    """
    spec = editor_spec(tool_type)
    d: dict[str, Any] = {"type": tool_type, "name": spec.name}
    if max_characters is not None and spec.max_characters:
        d["max_characters"] = int(max_characters)
    return d


def bash_definition(tool_type: str) -> dict[str, Any]:
    """The ``tools`` entry for a bash version.

    Raises:
        KeyError: not a bash version.
    """
    return {"type": tool_type, "name": bash_spec(tool_type).name}


__all__ = [
    "ACTIONS_20241022",
    "ACTIONS_20250124",
    "ACTIONS_20251124",
    "GROUP_NAMES",
    "KINDS",
    "TOOLSET_HALT_TEXT",
    "TOOLSET_MEMBERS",
    "TOOL_VERSIONS",
    "BashSpec",
    "ComputerSpec",
    "EditorSpec",
    "ToolGroup",
    "ToolKind",
    "ToolSpec",
    "bash_definition",
    "bash_spec",
    "beta_for_tool_type",
    "computer_definition",
    "computer_spec",
    "editor_definition",
    "editor_spec",
    "older_version",
    "step_down",
    "tool_spec",
    "versions",
]
