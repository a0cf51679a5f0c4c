"""The model registry: a name -> provider, API model id, prices, image tier and tool generation.

A :class:`ModelSpec` says everything deskpilot needs to call one model on one platform:
the API model id, the provider (``"anthropic"``, ``"bedrock"``, ``"vertex"`` or ``"gateway"``), prices in US
dollars per million tokens, the largest ``max_tokens``, the image-token rule, and the
computer-use tool group the model takes **on each platform** (a name of
:data:`deskpilot.computer_use.specs.GROUP_NAMES`, the groups of the one tool-version table).

Sources: the computer use tool page's "Compatibility" table
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool), Amazon
Bedrock's Anthropic Claude model-parameters page
(https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-claude.html), and
the prices of https://claude.com/pricing for released models. Prices of the 4.8/5/5.5 families are
not published in our sources and are estimates (same tier as the family they succeed).

Names resolve case-insensitively in several spellings: the seed's (``claude-4-sonnet``,
``claude-3.7-sonnet-bedrock``), the API ids (``claude-sonnet-4-20250514``), and the
family-first forms (``claude-sonnet-4-5``, ``claude-4.5-sonnet``). A ``-bedrock`` suffix or a
Bedrock inference-profile id (``us.anthropic....``) selects Bedrock; a ``-vertex`` suffix, a
``vertex/`` prefix or a Vertex id (``claude-sonnet-4-5@20250929``) selects Vertex AI;
``anthropic/<id>`` selects an OpenAI-compatible gateway (Model.box style, seed 003).

Layout: :mod:`.spec` (:class:`ModelSpec`), :mod:`.registry` (:class:`ModelRegistry`, name
resolution), :mod:`.table` (the rows and their sources, :data:`REGISTRY`).

The module-level :data:`REGISTRY` is the default. ``LLMClient`` takes ``ModelSpec`` objects
directly or a ``registry=`` of its own, so adding or redirecting a model needs no global
mutation; :func:`register_model` exists for users who do want a global alias.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from .registry import ModelRegistry
from .spec import PLATFORMS, ImageTier, ModelSpec, Provider
from .table import REGISTRY


def resolve_model(name: str | ModelSpec, provider: str | None = None) -> ModelSpec:
    """Resolve ``name`` in the default :data:`REGISTRY` (see :meth:`ModelRegistry.resolve`)."""
    return REGISTRY.resolve(name, provider)


def register_model(
    spec: ModelSpec | None = None,
    *,
    aliases: Iterable[str] = (),
    registry: ModelRegistry | None = None,
    **fields: Any,
) -> ModelSpec:
    """Add a model to ``registry`` (default: the global :data:`REGISTRY`) and return its spec.

    Either pass a :class:`ModelSpec` or its fields as keywords
    (``register_model(name="my-claude", model_id="claude-sonnet-4-5", base_url="http://...")``).
    To avoid touching global state, pass ``registry=REGISTRY.copy()`` and give that registry
    to ``LLMClient(registry=...)``, or pass the ModelSpec to ``LLMClient`` directly.

    Raises:
        ConfigError: invalid fields.
    """
    if spec is None:
        try:
            spec = ModelSpec(**fields)
        except TypeError as exc:
            raise ConfigError(f"register_model() got bad ModelSpec fields: {exc}.") from exc
    elif fields:
        spec = replace(spec, **fields)
    return (registry or REGISTRY).register(spec, aliases=aliases)


__all__ = [
    "PLATFORMS",
    "REGISTRY",
    "ImageTier",
    "ModelRegistry",
    "ModelSpec",
    "Provider",
    "register_model",
    "resolve_model",
]
