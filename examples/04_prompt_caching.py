"""Seed 000, "Performance Optimization / Prompt Caching".

The seed's snippet is a fragment (it uses an undefined ``client`` and ``conversations`` and a
top-level ``await``). The lines between "added" markers are the minimum needed to run it;
the seed's own lines are unchanged.
"""

# --- added: imports, a client, conversations and an async main ------------------------------
import asyncio

from deskpilot import Conversation, LLMClient


async def main():
    client = LLMClient(model_names=["claude-4-sonnet"])
    conversations = [
        Conversation().user("Take a screenshot of the current screen"),
        Conversation()
        .user("Open the file manager")
        .ai("I'll take a screenshot first.")
        .user("Now open the Documents folder")
        .ai("Opening it.")
        .user("Now sort the files by date"),
    ]
    # --- end added -----------------------------------------------------------------------

    # Cache tools only (recommended)
    results = await client.process_prompts_async(
        conversations,
        computer_use=True,
        cache="tools_only",
    )

    # Cache recent user messages for iterative tasks
    results = await client.process_prompts_async(
        conversations,
        computer_use=True,
        cache="last_3_user_messages",
    )

    # --- added: show the outcome ---------------------------------------------------------
    for r in results:
        print(r.completion, r.usage)


asyncio.run(main())
# --- end added ---------------------------------------------------------------------------
