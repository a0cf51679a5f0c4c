"""The model table: every Claude model deskpilot knows, its ids, prices and tool groups.

Sources: the computer use tool page's "Compatibility" table
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool; the
``computer_toolset_20260801`` is GA on the Claude API and Google Cloud, while other platforms
offer only the earlier beta versions, hence Vertex takes the Claude API's group and Bedrock
``20251124``), Amazon Bedrock's Anthropic Claude model-parameters page
(https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-claude.html), the
models overview's ids per platform
(https://platform.claude.com/docs/en/about-claude/models/overview: Vertex ids are the API id
with ``@`` before its date, undated ids unchanged, e.g. ``claude-opus-4-6``; Claude 3.5
Sonnet v2 is ``claude-3-5-sonnet-v2@20241022``), and the prices of
https://claude.com/pricing for released models. Prices of the 4.8/5/5.5 families are not
published in our sources and are estimates (same tier as the family they succeed).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TypedDict

from .registry import ModelRegistry
from .spec import ImageTier, ModelSpec


class _Prices(TypedDict):
    """The ``ModelSpec`` price fields a family shares (US dollars per million tokens)."""

    input_price: float
    output_price: float


_SONNET: _Prices = {"input_price": 3.0, "output_price": 15.0}
_OPUS_OLD: _Prices = {"input_price": 15.0, "output_price": 75.0}
_OPUS: _Prices = {"input_price": 5.0, "output_price": 25.0}
_HAIKU: _Prices = {"input_price": 1.0, "output_price": 5.0}


def _gens(api: str, bedrock: str | None = None, gateway: str | None = None) -> dict[str, str]:
    return {"anthropic": api, "bedrock": bedrock or api, "vertex": api, "gateway": gateway or api}


def vertex_model_id(api_id: str) -> str:
    """The Vertex AI id of an Anthropic API id: ``@`` before a trailing ``YYYYMMDD`` date
    (``claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4-5@20250929``), else unchanged."""
    return re.sub(r"-(\d{8})$", r"@\1", api_id)


def _family_aliases(family: str, version: str) -> list[str]:
    dashed = version.replace(".", "-")
    out = {
        f"claude-{version}-{family}",
        f"claude-{dashed}-{family}",
        f"claude-{family}-{version}",
        f"claude-{family}-{dashed}",
    }
    return sorted(out)


def _model(
    name: str,
    family: str,
    version: str,
    api_id: str,
    bedrock_id: str | None,
    gens: dict[str, str],
    prices: _Prices,
    max_out: int,
    tier: ImageTier = "legacy",
    extra_aliases: tuple[str, ...] = (),
    vertex_id: str | None = None,
) -> tuple[ModelSpec, list[str]]:
    spec = ModelSpec(
        name=name,
        provider="anthropic",
        model_id=api_id,
        anthropic_id=api_id,
        bedrock_id=bedrock_id,
        vertex_id=vertex_id or vertex_model_id(api_id),
        generations=gens,
        max_output_tokens=max_out,
        image_tier=tier,
        **prices,
    )
    return spec, [*_family_aliases(family, version), *extra_aliases]


_TABLE: list[tuple[ModelSpec, list[str]]] = [
    _model(
        "claude-3-5-sonnet-20241022",
        "sonnet",
        "3.5",
        "claude-3-5-sonnet-20241022",
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        _gens("20241022"),
        _SONNET,
        8192,
        extra_aliases=("claude-3.6-sonnet", "claude-3-5-sonnet-v2", "claude-3.5-sonnet-v2"),
        vertex_id="claude-3-5-sonnet-v2@20241022",
    ),
    _model(
        "claude-3.7-sonnet",
        "sonnet",
        "3.7",
        "claude-3-7-sonnet-20250219",
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        _gens("20250124"),
        _SONNET,
        64000,
    ),
    _model(
        "claude-4-sonnet",
        "sonnet",
        "4",
        "claude-sonnet-4-20250514",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        _gens("20250429"),
        _SONNET,
        64000,
    ),
    _model(
        "claude-4-opus",
        "opus",
        "4",
        "claude-opus-4-20250514",
        "us.anthropic.claude-opus-4-20250514-v1:0",
        _gens("20250429"),
        _OPUS_OLD,
        32000,
    ),
    _model(
        "claude-4.1-opus",
        "opus",
        "4.1",
        "claude-opus-4-1-20250805",
        "us.anthropic.claude-opus-4-1-20250805-v1:0",
        _gens("20250728"),
        _OPUS_OLD,
        32000,
    ),
    _model(
        "claude-4.5-sonnet",
        "sonnet",
        "4.5",
        "claude-sonnet-4-5-20250929",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        _gens("20250728"),
        _SONNET,
        64000,
    ),
    _model(
        "claude-4.5-haiku",
        "haiku",
        "4.5",
        "claude-haiku-4-5-20251001",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        _gens("20250728"),
        _HAIKU,
        64000,
    ),
    _model(
        "claude-4.5-opus",
        "opus",
        "4.5",
        "claude-opus-4-5-20251101",
        "us.anthropic.claude-opus-4-5-20251101-v1:0",
        _gens("20251124"),
        _OPUS,
        64000,
    ),
    _model(
        "claude-4.6-opus",
        "opus",
        "4.6",
        "claude-opus-4-6",
        "us.anthropic.claude-opus-4-6-v1",
        _gens("20251124"),
        _OPUS,
        128000,
    ),
    _model(
        "claude-4.6-sonnet",
        "sonnet",
        "4.6",
        "claude-sonnet-4-6",
        "us.anthropic.claude-sonnet-4-6",
        _gens("20251124"),
        _SONNET,
        64000,
    ),
    _model(
        "claude-4.7-opus",
        "opus",
        "4.7",
        "claude-opus-4-7",
        "us.anthropic.claude-opus-4-7",
        _gens("20251124"),
        _OPUS,
        128000,
        tier="2576",
    ),
    # Toolset models: computer_toolset_20260801 on the Claude API (GA); Bedrock offers only
    # the earlier beta versions (computer use tool page, "Compatibility"), hence 20251124 there.
    _model(
        "claude-4.8-opus",
        "opus",
        "4.8",
        "claude-opus-4-8",
        "us.anthropic.claude-opus-4-8",
        _gens("20260801", "20251124", "20251124"),
        _OPUS,
        128000,
        tier="2576",
    ),
    _model(
        "claude-5-opus",
        "opus",
        "5",
        "claude-opus-5",
        "us.anthropic.claude-opus-5",
        _gens("20260801", "20251124", "20251124"),
        _OPUS,
        128000,
        tier="2576",
    ),
    _model(
        "claude-5-sonnet",
        "sonnet",
        "5",
        "claude-sonnet-5",
        "us.anthropic.claude-sonnet-5",
        _gens("20260801", "20251124", "20251124"),
        _SONNET,
        64000,
        tier="2576",
    ),
    _model(
        "claude-fable-5",
        "fable",
        "5",
        "claude-fable-5",
        "us.anthropic.claude-fable-5",
        _gens("20260801", "20251124", "20251124"),
        _OPUS,
        128000,
        tier="2576",
        extra_aliases=("claude-5-fable",),
    ),
    _model(
        "claude-fable-5.1",
        "fable",
        "5.1",
        "claude-fable-5-1",
        "us.anthropic.claude-fable-5-1",
        _gens("20260801", "20251124", "20251124"),
        _OPUS,
        128000,
        tier="2576",
    ),
    _model(
        "claude-mythos-5",
        "mythos",
        "5",
        "claude-mythos-5",
        "us.anthropic.claude-mythos-5",
        _gens("20260801", "20251124", "20251124"),
        _OPUS,
        128000,
        tier="2576",
    ),
    _model(
        "claude-mythos-5.1",
        "mythos",
        "5.1",
        "claude-mythos-5-1",
        "us.anthropic.claude-mythos-5-1",
        _gens("20260801", "20251124", "20251124"),
        _OPUS,
        128000,
        tier="2576",
    ),
    # Claude 5.5: only the toolset on the Claude API ("'claude-sonnet-5-5' does not support
    # tool types: computer_20251124."); Bedrock lists Opus 5.5 under computer_20251124.
    _model(
        "claude-5.5-sonnet",
        "sonnet",
        "5.5",
        "claude-sonnet-5-5",
        "us.anthropic.claude-sonnet-5-5",
        _gens("20260801", "20251124", "20251124"),
        _SONNET,
        64000,
        tier="2576",
    ),
    _model(
        "claude-5.5-opus",
        "opus",
        "5.5",
        "claude-opus-5-5",
        "us.anthropic.claude-opus-5-5",
        _gens("20260801", "20251124", "20251124"),
        _OPUS,
        128000,
        tier="2576",
    ),
]

REGISTRY = ModelRegistry(_TABLE)
"""The default registry. Prefer ``LLMClient(registry=...)`` or ModelSpec objects for changes."""

# The gateway of seed 003 (Model.box) lists only Claude 3.5 Sonnet for computer use.
REGISTRY.register(
    replace(
        REGISTRY.resolve("claude-3-5-sonnet-20241022").on_platform("gateway"),
        name="anthropic/claude-3-5-sonnet-20241022",
    )
)


__all__ = ["REGISTRY", "vertex_model_id"]
