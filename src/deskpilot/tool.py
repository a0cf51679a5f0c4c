"""Custom function tools: :class:`Tool` and :meth:`Tool.from_function`.

A tool is a name, a description, a JSON-schema of its input and (optionally) the Python
callable that runs it. The schema comes from the function's type hints through pydantic
(``create_model`` over the parameters, so ``Annotated[..., Field(description=...)]`` and
defaults work); the description is the docstring's first paragraph, and Google-style
``Args:`` lines become parameter descriptions.

Wire shapes: Anthropic ``{"name", "description", "input_schema"}``
(https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use) and OpenAI
``{"type": "function", "function": {"name", "description", "parameters"}}``.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from .errors import ConfigError, ToolInputError

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ARGS_HEADERS = ("args:", "arguments:", "parameters:", "params:")
_SECTION_HEADERS = ("returns:", "return:", "raises:", "yields:", "examples:", "example:", "note:")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {param: description}) from a Google-style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    desc_lines: list[str] = []
    i = 0
    while i < len(lines) and lines[i].strip():
        if lines[i].strip().lower() in _ARGS_HEADERS:
            break
        desc_lines.append(lines[i].strip())
        i += 1
    params: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in lines[i:]:
        stripped = line.strip()
        low = stripped.lower()
        if low in _ARGS_HEADERS:
            in_args, current = True, None
            continue
        if low in _SECTION_HEADERS:
            in_args, current = False, None
            continue
        if not in_args or not stripped:
            continue
        m = re.match(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
        if m and not line.startswith(" " * 8):
            current = m.group(1).lstrip("*")
            params[current] = m.group(2).strip()
        elif current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    return " ".join(desc_lines), params


@dataclass(slots=True)
class Tool:
    """A custom tool the model can call.

    Args:
        name: 1-64 characters of ``[a-zA-Z0-9_-]`` (the Messages API rule).
        description: what the tool does; the model reads it.
        parameters: the JSON schema of the input (an ``object`` schema).
        fn: the callable that runs it (sync or async), or None for a declaration only.

    Raises:
        ConfigError: a bad name or a schema that is not an object schema.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    fn: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigError(
                f"Tool name {self.name!r} is invalid; use 1-64 letters, digits, '_' or '-' "
                "(the Messages API rule)."
            )
        if not isinstance(self.parameters, dict) or self.parameters.get("type") != "object":
            raise ConfigError(
                "Tool.parameters must be a JSON schema of type 'object', e.g. "
                '{"type": "object", "properties": {...}, "required": [...]}.'
            )

    @classmethod
    def from_function(
        cls, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
    ) -> Tool:
        """Build a tool from a (sync or async) function's signature, type hints and docstring.

        Parameters without a default are ``required``; ``*args``/``**kwargs`` are not allowed.
        Unannotated parameters accept any JSON value.

        Raises:
            ConfigError: variadic parameters, or hints pydantic cannot turn into a schema.
        """
        from pydantic import ConfigDict, create_model

        doc_desc, doc_params = _parse_docstring(inspect.getdoc(fn))
        sig = inspect.signature(fn)
        try:
            hints = get_type_hints(fn, include_extras=True)
        except Exception:  # unresolvable forward refs: fall back to raw annotations
            hints = {}
        field_defs: dict[str, Any] = {}
        from pydantic import Field

        for pname, param in sig.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigError(
                    f"Tool.from_function({getattr(fn, '__name__', fn)!r}): *args/**kwargs cannot "
                    "be described to the model; give every parameter a name."
                )
            annotation = hints.get(pname, param.annotation)
            if annotation is inspect.Parameter.empty:
                annotation = Any
            default = ... if param.default is inspect.Parameter.empty else param.default
            pdesc = doc_params.get(pname)
            field_defs[pname] = (
                annotation,
                Field(default, description=pdesc) if pdesc else Field(default),
            )
        fn_name: str = getattr(fn, "__name__", "")
        tool_name = name or fn_name
        try:
            model = create_model(
                f"{tool_name}_input", __config__=ConfigDict(extra="forbid"), **field_defs
            )
            schema = model.model_json_schema()
        except Exception as exc:
            raise ConfigError(
                f"Tool.from_function({tool_name!r}): cannot build a JSON schema from the type "
                f"hints ({exc}); use JSON-compatible types (str, int, float, bool, list, dict, "
                "Literal, pydantic models)."
            ) from exc
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        schema.setdefault("properties", {})
        tool = cls(tool_name, description if description is not None else doc_desc, schema, fn)
        return tool

    # --- wire formats ---------------------------------------------------------------------
    def to_anthropic(self) -> dict[str, Any]:
        """``{"name", "description", "input_schema"}`` for the Messages API ``tools`` list."""
        return {"name": self.name, "description": self.description, "input_schema": self.parameters}

    def to_openai(self) -> dict[str, Any]:
        """``{"type": "function", "function": {...}}`` for chat completions ``tools``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    # --- running ----------------------------------------------------------------------------
    def _check(self, arguments: dict[str, Any]) -> None:
        if self.fn is None:
            raise ConfigError(f"Tool {self.name!r} has no function to call (fn=None).")
        props = self.parameters.get("properties", {})
        unknown = [k for k in arguments if k not in props]
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing required parameter(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown parameter(s) {', '.join(unknown)}")
            raise ToolInputError(
                f"Tool {self.name!r} got {' and '.join(parts)}; it takes {sorted(props)}."
            )

    async def acall(self, **arguments: Any) -> Any:
        """Run the tool with ``arguments`` (awaits async functions; runs sync ones in a thread).

        Raises:
            ToolInputError: missing or unknown parameters.
            ConfigError: the tool has no function.
        """
        self._check(arguments)
        assert self.fn is not None
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(**arguments)
        result = await asyncio.to_thread(self.fn, **arguments)
        if inspect.isawaitable(result):
            return await result
        return result

    def call(self, **arguments: Any) -> Any:
        """Run the tool synchronously (for async functions only outside a running loop).

        Raises:
            ToolInputError: missing or unknown parameters.
            ConfigError: no function, or an async function called inside a running loop
                (use :meth:`acall` there).
        """
        self._check(arguments)
        assert self.fn is not None
        if inspect.iscoroutinefunction(self.fn):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self.fn(**arguments))
            raise ConfigError(
                f"Tool {self.name!r} is async; inside a running event loop use await tool.acall()."
            )
        return self.fn(**arguments)


__all__ = ["Tool"]
