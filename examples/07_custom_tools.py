# ruff: noqa: I001
# fmt: off
# (the seed's code is kept verbatim, so the formatter and import sorter leave it alone)
"""Seed 000, "Combining with Custom Tools": only the import line changed.

The seed's snippet is a fragment (undefined ``client`` and ``conversations``, top-level
``await``). The lines between "added" markers are the minimum needed to run it.
"""

# --- added: imports ------------------------------------------------------------------------
import asyncio

from deskpilot import Conversation, LLMClient

# --- end added ---------------------------------------------------------------------------

from deskpilot import Tool

def get_weather(location: str) -> str:
    """Get weather for a location."""
    return f"The weather in {location} is sunny"

custom_tool = Tool.from_function(get_weather)


# --- added: a client, conversations and an async main ---------------------------------------
async def main():
    client = LLMClient(model_names=["claude-4-sonnet"])
    conversations = [Conversation().user("What's the weather in Paris? Then take a screenshot.")]
    # --- end added -----------------------------------------------------------------------

    results = await client.process_prompts_async(
        conversations,
        computer_use=True,
        tools=[custom_tool],  # Added after Computer Use tools
        cache="tools_only",
    )

    # --- added: run the custom tool if Claude called it ----------------------------------
    for call in results[0].content.tool_calls:
        if call.name == "get_weather":
            print(get_weather(**call.arguments))


asyncio.run(main())
# --- end added ---------------------------------------------------------------------------
