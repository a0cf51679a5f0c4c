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


# --- arguments are validated by the model the schema came from ------------------------------


def add(n: int, k: int = 1) -> str:
    """Add k to n."""
    return f"{n + k} ({type(n).__name__})"


def test_call_converts_arguments_to_the_hinted_types() -> None:
    tool = Tool.from_function(add)
    assert tool.call(n="3") == "4 (int)"  # lax mode: a numeric string becomes the int
    assert tool.call(n=3, k=4) == "7 (int)"
    hits = Tool.from_function(complex_fn).call(query="q", limit="2", where={"x": 1, "y": "2"})
    assert hits == ["q", "q"]


def test_a_nested_model_reaches_the_function_as_that_model() -> None:
    got: list[object] = []

    def place(where: Point) -> str:
        """Place a point."""
        got.append(where)
        return "ok"

    Tool.from_function(place).call(where={"x": "1", "y": 2})
    assert got == [Point(x=1, y=2)] and isinstance(got[0], Point)


def test_defaults_the_caller_did_not_pass_stay_the_functions_own() -> None:
    sentinel: list[int] = []

    def f(items: list[int] = sentinel) -> bool:
        """Is the default the very object in the signature?"""
        return items is sentinel

    assert Tool.from_function(f).call() is True


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": "three"}, "n:"),
        ({"n": 1, "k": [1]}, "k:"),
        ({"n": 2.5}, "n:"),
    ],
)
async def test_a_refused_value_is_a_tool_input_error_naming_the_field(
    kwargs: dict, field: str
) -> None:
    tool = Tool.from_function(add)
    with pytest.raises(ToolInputError) as sync_err:
        tool.call(**kwargs)
    with pytest.raises(ToolInputError) as async_err:
        await tool.acall(**kwargs)
    for err in (sync_err.value, async_err.value):
        text = str(err)
        assert text.startswith("Tool 'add' got invalid input: ") and field in text
        assert "valid integer" in text


async def test_nested_field_errors_name_the_path() -> None:
    with pytest.raises(ToolInputError, match=r"where\.y: .*valid integer.*\(got 'a'\)"):
        await Tool.from_function(complex_fn).acall(query="q", where={"x": 1, "y": "a"})
    with pytest.raises(ToolInputError, match=r"mode: .*'fast' or 'exact'"):
        await Tool.from_function(complex_fn).acall(query="q", mode="slow")
    with pytest.raises(ToolInputError, match=r"weight: .*greater than or equal to 0"):
        await Tool.from_function(complex_fn).acall(query="q", weight=-1)


def test_a_tool_declared_by_schema_still_only_checks_names() -> None:
    seen: list[object] = []
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    tool = Tool("raw", "d", schema, lambda n: seen.append(n))
    tool.call(n="3")
    assert seen == ["3"]


async def test_the_agent_reports_a_refused_value_as_an_error_result() -> None:
    """Through the real client, loop and fake server: the model sends a string for an int;
    the function never runs and the model gets an is_error result naming the field."""
    from deskpilot import Agent, LLMClient
    from deskpilot.desktop.fake import FakeComputer
    from deskpilot.testing import FakeModelServer
    from deskpilot.testing.wire import message_response, text_response, tool_use_block

    ran: list[int] = []

    def square(n: int) -> int:
        """Square n."""
        ran.append(n)
        return n * n

    async with FakeModelServer() as server:
        server.enqueue(
            message_response(
                [
                    tool_use_block("square", {"n": "seven"}, id="t1"),
                    tool_use_block("square", {"n": "7"}, id="t2"),
                ]
            ),
            text_response("done"),
        )
        client = LLMClient(
            "claude-4-sonnet", base_url=server.url, api_key="sk-ant-test", progress="none"
        )
        try:
            agent = Agent(client, FakeComputer(), tools=[Tool.from_function(square)], out_dir=None)
            result = await agent.run("square it")
        finally:
            await client.close()
    bad, good = result.conversation.messages[2].tool_results
    assert bad.is_error and "n: Input should be a valid integer" in bad.text
    assert "'seven'" in bad.text
    assert not good.is_error and good.text == "49"
    assert ran == [7]
