"""Tool.from_function: schema from hints and docstring; wire formats; calling."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from deskpilot import Tool
from deskpilot.errors import ConfigError, ToolInputError


def get_weather(location: str) -> str:
    """Get weather for a location."""
    return f"The weather in {location} is sunny"


def test_seed_example_tool() -> None:
    tool = Tool.from_function(get_weather)
    assert tool.to_anthropic() == {
        "name": "get_weather",
        "description": "Get weather for a location.",
        "input_schema": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
            "additionalProperties": False,
        },
    }
    assert tool.to_openai() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get weather for a location.",
            "parameters": tool.parameters,
        },
    }
    assert tool.call(location="Paris") == "The weather in Paris is sunny"


class Point(BaseModel):
    x: int
    y: int


def complex_fn(
    query: str,
    limit: int = 10,
    mode: Literal["fast", "exact"] = "fast",
    tags: list[str] | None = None,
    where: Point | None = None,
    weight: Annotated[float, Field(description="from Field", ge=0)] = 1.0,
) -> list[str]:
    """Search the index.

    Longer explanation that is not part of the description.

    Args:
        query: The text to look for,
            continued on a second line.
        limit (int): Most results to return.
        mode: Matching mode.

    Returns:
        The hits.
    """
    return [query] * limit


def test_hints_defaults_docstring_args() -> None:
    tool = Tool.from_function(complex_fn)
    s = tool.parameters
    assert tool.description == "Search the index."
    assert s["required"] == ["query"]
    p = s["properties"]
    assert p["query"] == {
        "type": "string",
        "description": "The text to look for, continued on a second line.",
    }
    assert p["limit"]["default"] == 10 and p["limit"]["description"] == "Most results to return."
    assert p["mode"]["enum"] == ["fast", "exact"]
    assert p["weight"]["description"] == "from Field" and p["weight"]["minimum"] == 0
    assert "$defs" in s and "Point" in s["$defs"]
    assert "title" not in s


async def test_acall_sync_and_async() -> None:
    async def fetch(url: str, retries: int = 1) -> str:
        """Fetch a URL."""
        await asyncio.sleep(0)
        return f"{url}:{retries}"

    t = Tool.from_function(fetch)
    assert await t.acall(url="u") == "u:1"
    assert await Tool.from_function(get_weather).acall(location="x") == "The weather in x is sunny"
    with pytest.raises(ConfigError):
        t.call(url="u")  # async tool inside a running loop
    with pytest.raises(ToolInputError):
        await t.acall(nope=1)
    with pytest.raises(ToolInputError):
        await t.acall()


def test_async_tool_call_outside_loop() -> None:
    async def ping() -> str:
        """Ping."""
        return "pong"

    assert Tool.from_function(ping).call() == "pong"


def test_invalid_tools() -> None:
    def varargs(*args: int) -> None:
        """Bad."""

    with pytest.raises(ConfigError):
        Tool.from_function(varargs)
    with pytest.raises(ConfigError):
        Tool("bad name!", "d")
    with pytest.raises(ConfigError):
        Tool("ok", "d", {"type": "string"})
    with pytest.raises(ConfigError):
        Tool("ok", "d").call()


def test_name_and_description_overrides_and_untyped_params() -> None:
    def f(a, b=2):  # type: ignore[no-untyped-def]
        return a

    t = Tool.from_function(f, name="renamed", description="custom")
    assert (t.name, t.description) == ("renamed", "custom")
    assert t.parameters["required"] == ["a"]
