"""Seed 000, "Performance Optimization / Display Configuration".

The seed's snippet is a fragment (undefined ``client`` and ``conversations``, top-level
``await``). The lines between "added" markers are the minimum needed to run it.
"""

# --- added: imports, a client, conversations and an async main ------------------------------
import asyncio

from deskpilot import Conversation, LLMClient


async def main():
    client = LLMClient(model_names=["claude-4-sonnet"])
    conversations = [Conversation().user("Take a screenshot of the current screen")]
    # --- end added -----------------------------------------------------------------------

    # High-resolution displays
    results = await client.process_prompts_async(
        conversations,
        computer_use=True,
        display_width=2560,
        display_height=1440,
    )

    # Standard displays
    results = await client.process_prompts_async(
        conversations,
        computer_use=True,
        display_width=1920,
        display_height=1080,
    )

    # --- added: show the outcome ---------------------------------------------------------
    print(results[0].completion)


asyncio.run(main())
# --- end added ---------------------------------------------------------------------------
