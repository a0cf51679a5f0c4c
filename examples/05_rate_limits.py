# fmt: off
# (the seed's code is kept verbatim, so the formatter and import sorter leave it alone)
"""Seed 000, "Performance Optimization / Rate Limits".

The seed's snippet only builds the client; the lines between "added" markers are the minimum
needed to make it a runnable script that sends one prompt with it.
"""

# --- added: imports --------------------------------------------------------------------------
import asyncio

from deskpilot import Conversation, LLMClient

# --- end added ---------------------------------------------------------------------------

client = LLMClient(
    model_names=["claude-4-sonnet"],
    max_requests_per_minute=6,       # Conservative
    max_tokens_per_minute=100000,    # Higher for screenshots
    max_concurrent_requests=1,       # Sequential for consistency
    request_timeout=60,              # Longer timeout
)


# --- added: send one prompt with that client ------------------------------------------------
async def main():
    results = await client.process_prompts_async(
        [Conversation().user("Take a screenshot of the current screen")],
        computer_use=True,
    )
    print(results[0].completion)


asyncio.run(main())
# --- end added ---------------------------------------------------------------------------
