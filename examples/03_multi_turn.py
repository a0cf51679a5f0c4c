# ruff: noqa: I001
# fmt: off
# (the seed's code is kept verbatim, so the formatter and import sorter leave it alone)
"""Seed 000, "Multi-Turn Conversations": verbatim, only the import lines changed."""

import asyncio
from deskpilot import LLMClient, Conversation
from deskpilot.prompt import Message, ToolResult

async def multi_turn_computer_use():
    client = LLMClient(
        model_names=["claude-4-sonnet"],
        max_requests_per_minute=10,
        max_tokens_per_minute=100000,
        max_concurrent_requests=1,
    )

    conversation = Conversation().user(
        "Open a text editor and write a Python hello world script"
    )

    max_turns = 10
    for turn in range(max_turns):
        print(f"\n--- Turn {turn + 1} ---")

        results = await client.process_prompts_async(
            [conversation],
            computer_use=True,
            cache="tools_only",
            show_progress=True,
        )

        response = results[0]
        if not response or not response.content:
            print("No response received")
            break

        print(f"Claude: {response.completion}")

        tool_calls = response.content.tool_calls
        if not tool_calls:
            print("Task completed - no more tool calls")
            break

        # Add Claude's response to conversation
        conversation.messages.append(response.content)

        # Simulate tool execution and add results
        for call in tool_calls:
            print(f"Executing: {call.name}({call.arguments})")

            # In real usage, execute the tool and get actual results
            if call.name == "computer" and call.arguments.get("action") == "screenshot":
                # Simulate screenshot result
                tool_result = [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
                        },
                    }
                ]
            else:
                tool_result = f"Tool {call.name} executed successfully"

            # Add tool result to conversation
            tool_message = Message("user", [ToolResult(call.id, tool_result)])
            conversation.messages.append(tool_message)

asyncio.run(multi_turn_computer_use())
