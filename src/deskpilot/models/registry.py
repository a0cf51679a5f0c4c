"""Name resolution: :class:`ModelRegistry` maps names, aliases and platform spellings to specs.

Spellings (case-insensitive): registry names and aliases, API ids with or without their
``-YYYYMMDD`` date, ``<name>-bedrock`` and Bedrock ids (``us.anthropic.<id>-v1:0``),
``<name>-vertex``, ``vertex/<name or id>`` and Vertex ids (``<id>@YYYYMMDD``, the form of
https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude), and
``anthropic/<id>`` for OpenAI-compatible gateways (Model.box style, seed 003).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import replace

from ..errors import ConfigError, ModelNotFoundError
from .spec import ModelSpec


def _normalise(name: str) -> str:
    n = name.strip().lower().replace("_", "-").replace(" ", "-")
    if n.endswith("-latest"):
        n = n[: -len("-latest")]
    return n


_DATE = re.compile(r"-\d{8}$")
_VERTEX_ID = re.compile(r"^([a-z0-9.-]+)@(\d{8})$")


class ModelRegistry:
    """A mapping of names and aliases to :class:`ModelSpec` s; copy it to customise per client.

    Resolution rules (:meth:`resolve`): exact alias; ``<name>-bedrock`` -> the Bedrock spec;
    ``us.|eu.|apac.|global.anthropic.<id>`` -> Bedrock with that exact id; ``<name>-vertex``
    and ``vertex/<name>`` -> the Vertex spec; ``<id>@YYYYMMDD`` (also after ``vertex/``) ->
    Vertex with that exact id; ``anthropic/<id>`` -> a gateway spec; an API id with or
    without its ``-YYYYMMDD`` date.
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
        if key.endswith("-vertex"):
            found = self._lookup(key[: -len("-vertex")], original)
            return replace(found.on_platform("vertex"), name=original)
        if key.startswith("vertex/"):
            found = self._lookup(key[len("vertex/") :], original)
            return replace(found.on_platform("vertex"), name=original)
        m = _VERTEX_ID.match(key)
        if m:  # a Vertex id: the API id with "@" before its date (or the undated name)
            base = self._by_alias.get(f"{m.group(1)}-{m.group(2)}") or self._by_alias.get(
                m.group(1)
            )
            if base is not None:
                return replace(base, provider="vertex", model_id=key, name=original)
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


__all__ = ["ModelRegistry"]
