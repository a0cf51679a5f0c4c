"""The model registry: a name -> provider, API model id, prices, image tier and tool generation.

A :class:`ModelSpec` says everything deskpilot needs to call one model on one platform:
the API model id, the provider (``"anthropic"``, ``"bedrock"`` or ``"gateway"``), prices in US
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
Bedrock inference-profile id (``us.anthropic....``) selects Bedrock; ``anthropic/<id>`` selects
an OpenAI-compatible gateway (Model.box style, seed 003).

The module-level :data:`REGISTRY` is the default. ``LLMClient`` takes ``ModelSpec`` objects
directly or a ``registry=`` of its own, so adding or redirecting a model needs no global
mutation; :func:`register_model` exists for users who do want a global alias.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypedDict

from .computer_use.specs import GROUP_NAMES, ToolGroup
from .errors import ConfigError, ModelNotFoundError

Provider = Literal["anthropic", "bedrock", "gateway"]
ImageTier = Literal["legacy", "2576"]
PLATFORMS: tuple[str, ...] = ("anthropic", "bedrock", "gateway")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """One model on one platform.

    Attributes:
        name: the registry name (e.g. ``"claude-4-sonnet"``).
        provider: ``"anthropic"`` (Messages API), ``"bedrock"`` (InvokeModel) or
            ``"gateway"`` (OpenAI-compatible chat completions).
        model_id: the id sent on the wire for ``provider`` (body ``model`` on the Anthropic
            API and gateways; the URL path segment on Bedrock).
        input_price / output_price / cache_read_price / cache_write_price: US dollars per
            million tokens (cache write = the 5-minute rate).
        max_output_tokens: the largest ``max_tokens`` the model accepts.
        image_tier: ``"legacy"`` (long edge 1568 px, about 1.15 MP, tokens ≈ w·h/750) or
            ``"2576"`` (Opus 4.7 and later: long edge 2576 px, ⌈w/28⌉·⌈h/28⌉ ≤ 4784 tokens).
        generations: platform -> tool group name of ``specs.GROUP_NAMES`` (the computer,
            editor and bash versions the model takes there).
        anthropic_id / bedrock_id: the model's ids on the other platforms, used by
            :meth:`on_platform` (None when the model is not offered there).
        base_url: an endpoint override for this model (wins over the environment).
    """

    name: str
    provider: Provider = "anthropic"
    model_id: str
    input_price: float = 3.0
    output_price: float = 15.0
    cache_read_price: float | None = None
    cache_write_price: float | None = None
    max_output_tokens: int = 8192
    image_tier: ImageTier = "legacy"
    generations: Mapping[str, str] = field(default_factory=dict, hash=False)
    anthropic_id: str | None = None
    bedrock_id: str | None = None
    base_url: str | None = None

    def __post_init__(self) -> None:
        if self.provider not in PLATFORMS:
            raise ConfigError(
                f"ModelSpec.provider must be one of {PLATFORMS}, not {self.provider!r}."
            )
        if not self.model_id:
            raise ConfigError(f"ModelSpec {self.name!r} needs a model_id (the API model id).")
        if self.image_tier not in ("legacy", "2576"):
            raise ConfigError("ModelSpec.image_tier must be 'legacy' or '2576'.")
        for platform, gen in self.generations.items():
            if platform not in PLATFORMS or gen not in GROUP_NAMES:
                raise ConfigError(
                    f"ModelSpec {self.name!r}: generations maps platform {platform!r} to "
                    f"{gen!r}; platforms are {PLATFORMS} and tool groups {GROUP_NAMES}."
                )
        if self.cache_read_price is None:
            object.__setattr__(self, "cache_read_price", round(self.input_price * 0.1, 6))
        if self.cache_write_price is None:
            object.__setattr__(self, "cache_write_price", round(self.input_price * 1.25, 6))
        # frozen: keep the mapping private to this spec
        object.__setattr__(self, "generations", dict(self.generations))

    @property
    def platform(self) -> str:
        """The platform this spec calls (same as ``provider``)."""
        return self.provider

    def generation(self, platform: str | None = None) -> str:
        """The tool group name (``"20250429"``, ``"20260801"``, ...) on ``platform``
        (default: this spec's provider). Falls back to the Anthropic API's group.

        Raises:
            ConfigError: the model has no computer-use tool group.
        """
        platform = platform or self.provider
        gen = self.generations.get(platform) or self.generations.get("anthropic")
        if gen is None:
            raise ConfigError(
                f"Model {self.name!r} has no computer-use tool generation; pass the tool "
                "definitions yourself in tools= instead of computer_use=True."
            )
        return gen

    def tool_group(self, platform: str | None = None) -> ToolGroup:
        """The :class:`~deskpilot.computer_use.specs.ToolGroup` the model takes on ``platform``
        (before any step-down).

        Raises:
            ConfigError: the model has no computer-use tool group.
        """
        return ToolGroup.named(self.generation(platform))

    def on_platform(self, provider: str) -> ModelSpec:
        """This model on another platform (``"anthropic"``, ``"bedrock"`` or ``"gateway"``).

        Raises:
            ConfigError: the model has no id on that platform.
        """
        if provider == self.provider:
            return self
        if provider == "bedrock":
            if not self.bedrock_id:
                raise ConfigError(
                    f"Model {self.name!r} has no Bedrock id in the registry; pass a ModelSpec "
                    "with provider='bedrock' and model_id='us.anthropic....'."
                )
            return replace(self, provider="bedrock", model_id=self.bedrock_id)
        if provider == "anthropic":
            if not self.anthropic_id:
                raise ConfigError(f"Model {self.name!r} has no Anthropic API id in the registry.")
            return replace(self, provider="anthropic", model_id=self.anthropic_id)
        if provider == "gateway":
            base = self.anthropic_id or self.model_id
            mid = base if base.startswith("anthropic/") else f"anthropic/{base}"
            return replace(self, provider="gateway", model_id=mid)
        raise ConfigError(f"provider must be one of {PLATFORMS}, not {provider!r}.")

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """US dollars for the given token counts at this model's prices."""
        return (
            input_tokens * self.input_price
            + output_tokens * self.output_price
            + cache_read_tokens * (self.cache_read_price or 0.0)
            + cache_write_tokens * (self.cache_write_price or 0.0)
        ) / 1_000_000


def _normalise(name: str) -> str:
    n = name.strip().lower().replace("_", "-").replace(" ", "-")
    if n.endswith("-latest"):
        n = n[: -len("-latest")]
    return n


_DATE = re.compile(r"-\d{8}$")


class ModelRegistry:
    """A mapping of names and aliases to :class:`ModelSpec` s; copy it to customise per client.

    Resolution rules (:meth:`resolve`): exact alias; ``<name>-bedrock`` -> the Bedrock spec;
    ``us.|eu.|apac.|global.anthropic.<id>`` -> Bedrock with that exact id; ``anthropic/<id>``
    -> a gateway spec; an API id with or without its ``-YYYYMMDD`` date.
    """

    def __init__(self, specs: Iterable[tuple[ModelSpec, Iterable[str]]] = ()) -> None:
        self._by_alias: dict[str, ModelSpec] = {}
        for spec, aliases in specs:
            self.register(spec, aliases=aliases)

    def register(
        self, spec: ModelSpec, *, aliases: Iterable[str] = (), replace_existing: bool = True
    ) -> ModelSpec:
        """Add ``spec`` under its name, its model id and ``aliases``; returns it.

        Raises:
            ConfigError: a name is taken and ``replace_existing`` is False.
        """
        names = {spec.name, spec.model_id, *aliases}
        if spec.anthropic_id and spec.provider == "anthropic":
            names.add(spec.anthropic_id)
            names.add(_DATE.sub("", spec.anthropic_id))
        for n in names:
            key = _normalise(n)
            if not replace_existing and key in self._by_alias:
                raise ConfigError(
                    f"Model name {n!r} is already registered; pass replace_existing=True."
                )
            self._by_alias[key] = spec
        return spec

    def copy(self) -> ModelRegistry:
        """An independent copy (changes to it never touch this registry)."""
        new = ModelRegistry()
        new._by_alias = dict(self._by_alias)
        return new

    def names(self) -> list[str]:
        """Every name and alias that resolves, sorted."""
        return sorted(self._by_alias)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.resolve(name)
        except ModelNotFoundError:
            return False
        return True

    def resolve(self, name: str | ModelSpec, provider: str | None = None) -> ModelSpec:
        """The spec for ``name`` (optionally moved to ``provider``).

        Raises:
            ModelNotFoundError: unknown name; the message lists close matches.
            ConfigError: the model has no id on the requested ``provider``.
        """
        if isinstance(name, ModelSpec):
            return name.on_platform(provider) if provider else name
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"A model name must be a non-empty string, not {name!r}.")
        spec = self._lookup(_normalise(name), name)
        return spec.on_platform(provider) if provider else spec

    def _lookup(self, key: str, original: str) -> ModelSpec:
        spec = self._by_alias.get(key)
        if spec is not None:
            return spec
        if key.endswith("-bedrock"):
            found = self._lookup(key[: -len("-bedrock")], original)
            return replace(found.on_platform("bedrock"), name=original)
        m = re.match(r"^(?:(us|eu|apac|global|jp|au)\.)?anthropic\.(.+?)(?:-v\d+(?::\d+)?)?$", key)
        if m:
            base = self._by_alias.get(m.group(2)) or self._by_alias.get(_DATE.sub("", m.group(2)))
            if base is not None:
                return replace(base, provider="bedrock", model_id=original.strip(), name=original)
        if key.startswith("anthropic/"):
            rest = key[len("anthropic/") :]
            base = self._by_alias.get(rest) or self._by_alias.get(_DATE.sub("", rest))
            if base is not None:
                return replace(base, provider="gateway", model_id=original.strip(), name=original)
        undated = _DATE.sub("", key)
        if undated != key and undated in self._by_alias:
            return self._by_alias[undated]
        close = difflib.get_close_matches(key, list(self._by_alias), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ModelNotFoundError(
            f"Unknown model {original!r}.{hint} Pass a registered name (see "
            "deskpilot.models.REGISTRY.names()) or a ModelSpec(name=..., model_id=..., "
            "provider=...) directly."
        )


# --- the table ------------------------------------------------------------------------------


class _Prices(TypedDict):
    """The ``ModelSpec`` price fields a family shares (US dollars per million tokens)."""

    input_price: float
    output_price: float


_SONNET: _Prices = {"input_price": 3.0, "output_price": 15.0}
_OPUS_OLD: _Prices = {"input_price": 15.0, "output_price": 75.0}
_OPUS: _Prices = {"input_price": 5.0, "output_price": 25.0}
_HAIKU: _Prices = {"input_price": 1.0, "output_price": 5.0}


def _gens(api: str, bedrock: str | None = None, gateway: str | None = None) -> dict[str, str]:
    return {"anthropic": api, "bedrock": bedrock or api, "gateway": gateway or api}


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
) -> tuple[ModelSpec, list[str]]:
    spec = ModelSpec(
        name=name,
        provider="anthropic",
        model_id=api_id,
        anthropic_id=api_id,
        bedrock_id=bedrock_id,
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
    "ModelRegistry",
    "ModelSpec",
    "register_model",
    "resolve_model",
]
