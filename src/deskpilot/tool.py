"""Custom function tools: :class:`Tool` and :meth:`Tool.from_function`.

A tool is a name, a description, a JSON-schema of its input and (optionally) the Python
callable that runs it. The schema comes from the function's type hints through pydantic
(``create_model`` over the parameters, so ``Annotated[..., Field(description=...)]`` and
defaults work); the description is the docstring's first paragraph, and Google-style
``Args:`` lines become parameter descriptions. The same pydantic model validates the
arguments of every call (pydantic's lax mode: ``"3"`` becomes ``3`` for an ``int``, ``"x"``
is refused), so the function receives the types its hints promise; a refusal is a
:class:`~deskpilot.errors.ToolInputError` naming the field, which the agent turns into an
``is_error`` tool result (https://docs.pydantic.dev/latest/concepts/conversion_table/).

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
from typing import TYPE_CHECKING, Any, get_type_hints

from .errors import ConfigError, ToolInputError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

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

    A tool built by :meth:`from_function` also validates (and converts) every call's
    arguments with the pydantic model its schema came from; a tool built directly from a
    ``parameters`` schema checks only the names of the arguments.

    Raises:
        ConfigError: a bad name or a schema that is not an object schema.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    fn: Callable[..., Any] | None = None
    _input_model: type[BaseModel] | None = field(
        default=None, init=False, repr=False, compare=False
    )

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
        tool._input_model = model
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
    def _check(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments to call ``fn`` with: names checked, then (for a tool from
        :meth:`from_function`) values validated and converted by the input model."""
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
        if self._input_model is None:
            return arguments
        from pydantic import ValidationError

        try:
            validated = self._input_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolInputError(_describe_invalid(self.name, exc)) from exc
        # only what the caller passed: the function's own defaults apply to the rest
        return {k: getattr(validated, k) for k in arguments}

    async def acall(self, **arguments: Any) -> Any:
        """Run the tool with ``arguments`` (awaits async functions; runs sync ones in a thread).

        Raises:
            ToolInputError: missing or unknown parameters, or a value the parameter's type
                hint refuses (the message names the parameter).
            ConfigError: the tool has no function.
        """
        arguments = self._check(arguments)
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
            ToolInputError: missing or unknown parameters, or a value the parameter's type
                hint refuses (the message names the parameter).
            ConfigError: no function, or an async function called inside a running loop
                (use :meth:`acall` there).
        """
        arguments = self._check(arguments)
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


def _describe_invalid(tool: str, exc: ValidationError) -> str:
    """One sentence naming every refused field: ``where.x: Input should be ... (got 'a')``."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err.get("loc", ())) or "(input)"
        got = repr(err.get("input"))
        got = got if len(got) <= 60 else got[:57] + "..."
        problems.append(f"{loc}: {err.get('msg', 'invalid')} (got {got})")
    return f"Tool {tool!r} got invalid input: {'; '.join(problems)}."


__all__ = ["Tool"]
