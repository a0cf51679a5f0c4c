# ruff: noqa: I001
# fmt: off
# (the seed's code is kept verbatim, so the formatter and import sorter leave it alone)
"""Seed 000, "Quick Start / Anthropic API": verbatim, only the import line changed."""

import asyncio
from deskpilot import LLMClient, Conversation

async def computer_use_example():
    client = LLMClient(
        model_names=["claude-4-sonnet"],
        max_requests_per_minute=10,
        max_tokens_per_minute=50000,
        max_concurrent_requests=1,
    )

    conversation = Conversation().user("Take a screenshot of the current screen")

    results = await client.process_prompts_async(
        [conversation],
        computer_use=True,
        display_width=1920,
        display_height=1080,
        cache="tools_only",
        show_progress=True,
    )

    response = results[0]
    if response and response.content:
        print("Claude's response:")
        print(response.completion)

        tool_calls = response.content.tool_calls
        if tool_calls:
            print(f"\nClaude made {len(tool_calls)} tool calls:")
            for call in tool_calls:
                print(f"  - {call.name}: {call.arguments}")

asyncio.run(computer_use_example())
