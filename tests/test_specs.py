"""The one tool-version table: rows, executors, groups, the registry's groups and step-down."""

from __future__ import annotations

import dataclasses

import pytest

from deskpilot.computer_use.base import Executor
from deskpilot.computer_use.specs import (
    GROUP_NAMES,
    KINDS,
    TOOL_VERSIONS,
    ComputerSpec,
    ToolGroup,
    beta_for_tool_type,
    older_version,
    step_down,
    tool_spec,
    versions,
)
from deskpilot.desktop.fake import FakeComputer
from deskpilot.errors import ConfigError
from deskpilot.models import PLATFORMS, REGISTRY
from deskpilot.providers.base import RequestOptions
from deskpilot.providers.tools import build_toolset


def _executor(tool_type: str) -> Executor:
    row = tool_spec(tool_type)
    cls = row.executor_class()
    if row.kind == "computer":
        return cls(FakeComputer(1024, 768), version=tool_type)  # type: ignore[call-arg]
    return cls(version=tool_type)  # type: ignore[call-arg]


def test_the_table_is_frozen() -> None:
    with pytest.raises(TypeError):
        TOOL_VERSIONS["computer_20990101"] = TOOL_VERSIONS["computer_20250124"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        TOOL_VERSIONS["bash_20250124"].beta = "x"  # type: ignore[misc]


@pytest.mark.parametrize("tool_type", sorted(TOOL_VERSIONS))
async def test_every_row_names_the_executor_that_runs_it(tool_type: str) -> None:
    row = TOOL_VERSIONS[tool_type]
    assert row.type == tool_type and row.kind in KINDS
    executor = _executor(tool_type)
    try:
        assert isinstance(executor, Executor)
        assert executor.definition["type"] == tool_type
        if not (isinstance(row, ComputerSpec) and row.toolset):
            assert executor.definition["name"] == row.name == executor.name
    finally:
        await executor.aclose()


def test_beta_flags_come_from_the_rows() -> None:
    assert beta_for_tool_type("computer_20241022") == "computer-use-2024-10-22"
    assert beta_for_tool_type("text_editor_20241022") == "computer-use-2024-10-22"
    assert beta_for_tool_type("bash_20241022") == "computer-use-2024-10-22"
    assert beta_for_tool_type("computer_20251124") == "computer-use-2025-11-24"
    assert beta_for_tool_type("computer_toolset_20260801") is None  # GA
    assert beta_for_tool_type("bash_20250124") is None
    assert beta_for_tool_type("my_custom_tool") is None


def test_each_kind_is_a_chain_oldest_first() -> None:
    assert versions("computer") == (
        "computer_20241022",
        "computer_20250124",
        "computer_20251124",
        "computer_toolset_20260801",
    )
    assert versions("editor") == (
        "text_editor_20241022",
        "text_editor_20250124",
        "text_editor_20250429",
        "text_editor_20250728",
    )
    assert versions("bash") == ("bash_20241022", "bash_20250124")
    assert older_version("computer_toolset_20260801") == "computer_20251124"
    assert older_version("text_editor_20250728") == "text_editor_20250429"
    assert older_version("bash_20250124") == "bash_20241022"
    assert older_version("computer_20241022") is None
    with pytest.raises(KeyError):
        older_version("custom")


def test_named_groups_are_complete_and_match_the_published_table() -> None:
    assert GROUP_NAMES == ("20241022", "20250124", "20250429", "20250728", "20251124", "20260801")
    assert ToolGroup.named("20250429") == ToolGroup(
        "computer_20250124", "text_editor_20250429", "bash_20250124"
    )
    assert ToolGroup.named("20260801").betas == ()
    assert ToolGroup.named("20241022").betas == ("computer-use-2024-10-22",)
    with pytest.raises(KeyError):
        ToolGroup.named("20990101")
    with pytest.raises(KeyError):
        ToolGroup(computer="bash_20250124")


def test_every_registry_model_names_a_group_on_every_platform() -> None:
    for name in REGISTRY.names():
        spec = REGISTRY.resolve(name)
        for platform in PLATFORMS:
            group = spec.tool_group(platform)
            assert group == ToolGroup.named(spec.generation(platform))
            assert group.computer and group.editor and group.bash


def test_group_of_types_ignores_custom_tools_and_refuses_two_of_a_kind() -> None:
    g = ToolGroup.of_types(["my_tool", "bash_20250124", "computer_20251124"])
    assert g == ToolGroup(computer="computer_20251124", bash="bash_20250124")
    assert g.types == ("computer_20251124", "bash_20250124")
    with pytest.raises(ValueError):
        ToolGroup.of_types(["bash_20250124", "bash_20241022"])


# --- step-down: one function, from the table alone ---------------------------------------------


def test_step_down_replaces_only_the_rejected_members() -> None:
    # claude-4-sonnet's group with computer_20250124 rejected (issue 11: the two old rules
    # disagreed on the editor and bash here)
    g = ToolGroup.named("20250429")
    assert step_down(g, {"computer_20250124"}) == ToolGroup(
        "computer_20241022", "text_editor_20250429", "bash_20250124"
    )


def test_editor_and_bash_step_down_too() -> None:
    g = ToolGroup.named("20251124")
    assert step_down(g, {"text_editor_20250728"}) == ToolGroup(
        "computer_20251124", "text_editor_20250429", "bash_20250124"
    )
    assert step_down(g, {"bash_20250124"}) == ToolGroup(
        "computer_20251124", "text_editor_20250728", "bash_20241022"
    )
    assert step_down(g, {"computer_20251124", "bash_20250124"}) == ToolGroup(
        "computer_20250124", "text_editor_20250728", "bash_20241022"
    )


def test_step_down_skips_every_type_rejected_so_far() -> None:
    g = ToolGroup.named("20260801")
    rejected = {"computer_toolset_20260801", "computer_20251124"}
    assert step_down(g, rejected) == ToolGroup(
        "computer_20250124", "text_editor_20250728", "bash_20250124"
    )


def test_step_down_gives_none_when_nothing_applies() -> None:
    g = ToolGroup.named("20250728")
    assert step_down(g, set()) is None
    assert step_down(g, {"computer_20251124"}) is None  # not a member: nothing to change
    assert step_down(ToolGroup.named("20241022"), {"bash_20241022"}) is None  # oldest
    assert step_down(g, set(versions("computer"))) is None  # every computer version refused


def test_step_down_works_on_partial_groups() -> None:
    g = ToolGroup(editor="text_editor_20250728")
    assert step_down(g, {"text_editor_20250728"}) == ToolGroup(editor="text_editor_20250429")


# --- the client's own group follows the same rule ----------------------------------------------


def _types(model: str, platform: str, rejected: set[str]) -> list[str]:
    spec = REGISTRY.resolve(model).on_platform(platform)
    ts = build_toolset(spec, platform, RequestOptions(computer_use=True), rejected)
    assert ts.group == ToolGroup.of_types(t["type"] for t in ts.tools)
    return [t["type"] for t in ts.tools]


def test_computer_use_steps_down_like_the_function() -> None:
    # before: computer_20241022 + text_editor_20241022 + bash_20241022 (a second rule)
    assert _types("claude-4-sonnet", "anthropic", {"computer_20250124"}) == [
        "computer_20241022",
        "text_editor_20250429",
        "bash_20250124",
    ]
    # before: the editor was never stepped down
    assert _types("claude-4.5-sonnet", "bedrock", {"text_editor_20250728"}) == [
        "computer_20250124",
        "text_editor_20250429",
        "bash_20250124",
    ]


def test_two_tools_of_one_kind_are_refused() -> None:
    from deskpilot.computer_use.specs import computer_definition
    from deskpilot.errors import ConfigError

    spec = REGISTRY.resolve("claude-opus-5")
    both = (
        computer_definition("computer_toolset_20260801", 1280, 800),
        computer_definition("computer_20251124", 1280, 800),
    )
    with pytest.raises(ConfigError, match="Two computer tools"):
        build_toolset(spec, "anthropic", RequestOptions(tools=both))


@pytest.mark.parametrize("tool_type", sorted(TOOL_VERSIONS))
async def test_every_executor_can_move_to_every_version_of_its_tool(tool_type: str) -> None:
    row = tool_spec(tool_type)
    executor = _executor(versions(row.kind)[-1])
    moved = executor.with_version(tool_type)
    assert moved is not executor and type(moved) is type(executor)
    assert moved.version == tool_type and moved.definition["type"] == tool_type
    assert moved.name == row.name
    assert executor.version == versions(row.kind)[-1]  # the original is unchanged
    other = next(k for k in KINDS if k != row.kind)
    with pytest.raises(ConfigError, match="runs the"):
        executor.with_version(versions(other)[0])
    await moved.aclose()
