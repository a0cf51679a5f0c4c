"""One model on one platform: :class:`ModelSpec` (API model id, prices, image tier, tool groups).

Platforms: the Anthropic API, Bedrock InvokeModel, Vertex AI ``rawPredict`` and
OpenAI-compatible gateways. Model ids per platform: the models overview page
(https://platform.claude.com/docs/en/about-claude/models/overview, "Claude API ID", "AWS
Bedrock ID", "GCP Vertex AI ID") and Google's "Request predictions with Claude models"
(https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude:
dated Vertex ids carry ``@date``, e.g. ``claude-sonnet-4-5@20250929``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from ..computer_use.specs import GROUP_NAMES, ToolGroup
from ..errors import ConfigError

Provider = Literal["anthropic", "bedrock", "vertex", "gateway"]
ImageTier = Literal["legacy", "2576"]
PLATFORMS: tuple[str, ...] = ("anthropic", "bedrock", "vertex", "gateway")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """One model on one platform.

    Attributes:
        name: the registry name (e.g. ``"claude-4-sonnet"``).
        provider: ``"anthropic"`` (Messages API), ``"bedrock"`` (InvokeModel),
            ``"vertex"`` (Vertex AI rawPredict) or ``"gateway"`` (OpenAI-compatible chat
            completions).
        model_id: the id sent on the wire for ``provider`` (body ``model`` on the Anthropic
            API and gateways; the URL path segment on Bedrock and Vertex).
        input_price / output_price / cache_read_price / cache_write_price: US dollars per
            million tokens (cache write = the 5-minute rate).
        max_output_tokens: the largest ``max_tokens`` the model accepts.
        image_tier: ``"legacy"`` (long edge 1568 px, about 1.15 MP, tokens ≈ w·h/750) or
            ``"2576"`` (Opus 4.7 and later: long edge 2576 px, ⌈w/28⌉·⌈h/28⌉ ≤ 4784 tokens).
        generations: platform -> tool group name of ``specs.GROUP_NAMES`` (the computer,
            editor and bash versions the model takes there).
        anthropic_id / bedrock_id / vertex_id: the model's ids on the other platforms, used
            by :meth:`on_platform` (None when the model is not offered there; Vertex ids
            carry ``@date``: ``claude-sonnet-4-5@20250929``).
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
    vertex_id: str | None = None
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
        """This model on another platform (``"anthropic"``, ``"bedrock"``, ``"vertex"`` or
        ``"gateway"``).

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
        if provider == "vertex":
            if not self.vertex_id:
                raise ConfigError(
                    f"Model {self.name!r} has no Vertex AI id in the registry; pass a ModelSpec "
                    "with provider='vertex' and model_id='claude-...@YYYYMMDD'."
                )
            return replace(self, provider="vertex", model_id=self.vertex_id)
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


__all__ = ["PLATFORMS", "ImageTier", "ModelSpec", "Provider"]
