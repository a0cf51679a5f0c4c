"""The model registry: seed names, today's models, spellings, platforms, errors, overrides."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deskpilot.computer_use.specs import GROUP_NAMES, ToolGroup
from deskpilot.errors import ConfigError, ModelNotFoundError
from deskpilot.models import REGISTRY, ModelSpec, register_model, resolve_model

SEED = {
    "claude-4-sonnet": ("anthropic", "claude-sonnet-4-20250514", "20250429"),
    "claude-4-opus": ("anthropic", "claude-opus-4-20250514", "20250429"),
    "claude-3.7-sonnet": ("anthropic", "claude-3-7-sonnet-20250219", "20250124"),
    "claude-3-5-sonnet-20241022": ("anthropic", "claude-3-5-sonnet-20241022", "20241022"),
    "claude-3.7-sonnet-bedrock": (
        "bedrock",
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "20250124",
    ),
    "claude-4-sonnet-bedrock": (
        "bedrock",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "20250429",
    ),
    "claude-4-opus-bedrock": ("bedrock", "us.anthropic.claude-opus-4-20250514-v1:0", "20250429"),
    "anthropic/claude-3-5-sonnet-20241022": (
        "gateway",
        "anthropic/claude-3-5-sonnet-20241022",
        "20241022",
    ),
}


@pytest.mark.parametrize("name", sorted(SEED))
def test_seed_names_resolve(name: str) -> None:
    spec = resolve_model(name)
    assert (spec.provider, spec.model_id, spec.generation()) == SEED[name]


TODAY = {
    # name: (api generation, bedrock generation, image tier)
    "claude-sonnet-4-5": ("20250728", "20250728", "legacy"),
    "claude-haiku-4-5": ("20250728", "20250728", "legacy"),
    "claude-opus-4-1": ("20250728", "20250728", "legacy"),
    "claude-opus-4-5": ("20251124", "20251124", "legacy"),
    "claude-opus-4-6": ("20251124", "20251124", "legacy"),
    "claude-sonnet-4-6": ("20251124", "20251124", "legacy"),
    "claude-opus-4-7": ("20251124", "20251124", "2576"),
    "claude-opus-4-8": ("20260801", "20251124", "2576"),
    "claude-opus-5": ("20260801", "20251124", "2576"),
    "claude-sonnet-5": ("20260801", "20251124", "2576"),
    "claude-fable-5": ("20260801", "20251124", "2576"),
    "claude-mythos-5": ("20260801", "20251124", "2576"),
    "claude-sonnet-5-5": ("20260801", "20251124", "2576"),
    "claude-opus-5-5": ("20260801", "20251124", "2576"),
}


@pytest.mark.parametrize("name", sorted(TODAY))
def test_todays_models_per_platform(name: str) -> None:
    spec = resolve_model(name)
    api, bedrock, tier = TODAY[name]
    assert spec.generation("anthropic") == api
    assert spec.generation("bedrock") == bedrock
    assert spec.image_tier == tier
    assert spec.generation() in GROUP_NAMES
    assert spec.tool_group() == ToolGroup.named(api)
    b = resolve_model(name + "-bedrock")
    assert b.provider == "bedrock" and b.generation() == bedrock
    assert b.model_id.startswith("us.anthropic.")


@pytest.mark.parametrize(
    "spelling",
    [
        "claude-sonnet-4-5",
        "claude-4.5-sonnet",
        "claude-sonnet-4.5",
        "claude-4-5-sonnet",
        "claude-sonnet-4-5-20250929",
        "Claude-Sonnet-4-5",
        "claude_sonnet_4_5",
        "claude-sonnet-4-5-latest",
    ],
)
def test_several_spellings(spelling: str) -> None:
    assert resolve_model(spelling).model_id == "claude-sonnet-4-5-20250929"


def test_bedrock_profile_ids_resolve_as_given() -> None:
    spec = resolve_model("global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert spec.provider == "bedrock"
    assert spec.model_id == "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert spec.generation() == "20250728"


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("claude-4-sonet")
    assert "claude-4-sonnet" in str(info.value)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_on_platform_and_cost() -> None:
    spec = resolve_model("claude-4-sonnet")
    assert spec.on_platform("bedrock").model_id == "us.anthropic.claude-sonnet-4-20250514-v1:0"
    assert spec.on_platform("gateway").model_id == "anthropic/claude-sonnet-4-20250514"
    assert spec.cost(1_000_000, 1_000_000, 1_000_000, 1_000_000) == pytest.approx(
        3 + 15 + 0.3 + 3.75
    )
    assert resolve_model("claude-4-opus").cost(1_000_000, 0) == pytest.approx(15.0)


def test_registry_copy_keeps_global_state_untouched() -> None:
    local = REGISTRY.copy()
    spec = ModelSpec(
        name="my-claude",
        model_id="claude-sonnet-4-5-20250929",
        generations={"anthropic": "20250728"},
        base_url="http://127.0.0.1:1234",
    )
    register_model(spec, registry=local, aliases=("mine",))
    assert local.resolve("mine") is spec
    with pytest.raises(ModelNotFoundError):
        REGISTRY.resolve("my-claude")
    redirected = replace(resolve_model("claude-4-sonnet"), base_url="http://other")
    assert REGISTRY.resolve(redirected) is redirected
    assert resolve_model("claude-4-sonnet").base_url is None


def test_modelspec_validation() -> None:
    with pytest.raises(ConfigError):
        ModelSpec(name="x", model_id="")
    with pytest.raises(ConfigError):
        ModelSpec(name="x", model_id="m", provider="azure")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ModelSpec(name="x", model_id="m", generations={"anthropic": "1999"})
    with pytest.raises(ConfigError):
        ModelSpec(name="x", model_id="m").generation()
    with pytest.raises(ConfigError):
        ModelSpec(name="x", model_id="m").on_platform("bedrock")
    with pytest.raises(ConfigError):
        register_model(name="x", model_id="m", nonsense=1)
