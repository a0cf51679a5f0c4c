# ruff: noqa: I001
# fmt: off
# (the seed's code is kept verbatim, so the formatter and import sorter leave it alone)
"""Seed 000, "Error Handling": the seed's code unchanged.

The seed's snippet has no import lines; the two lines between "added" markers are the
minimum needed to run it.
"""

# --- added: imports ------------------------------------------------------------------------
import asyncio
from deskpilot import LLMClient, Conversation
# --- end added ---------------------------------------------------------------------------

async def robust_computer_use():
    client = LLMClient(
        model_names=["claude-4-sonnet"],
        max_requests_per_minute=10,
        max_tokens_per_minute=50000,
        max_concurrent_requests=1,
        max_attempts=3,  # Retry failed requests
    )

    conversation = Conversation().user("Take a screenshot")

    try:
        results = await client.process_prompts_async(
            [conversation],
            computer_use=True,
            cache="tools_only",
        )

        response = results[0]
        if response.is_error:
            print(f"Error: {response.error_message}")
            return

        print("Success!")
        print(response.completion)

    except Exception as e:
        print(f"Unexpected error: {e}")

asyncio.run(robust_computer_use())
