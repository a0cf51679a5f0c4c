# ruff: noqa: I001
# fmt: off
# (the seed's code is kept verbatim, so the formatter and import sorter leave it alone)
"""Seed 000, "Quick Start / AWS Bedrock": verbatim, only the import line changed.

Against the fake server, set AWS_ENDPOINT_URL_BEDROCK_RUNTIME; the server checks the SigV4
signature made with the credentials this script sets.
"""

import asyncio
import os
from deskpilot import LLMClient, Conversation

async def bedrock_computer_use():
    # Set AWS credentials
    os.environ["AWS_ACCESS_KEY_ID"] = "your-access-key"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "your-secret-key"

    client = LLMClient(
        model_names=["claude-3.7-sonnet-bedrock"],
        max_requests_per_minute=5,
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
        print(response.completion)

asyncio.run(bedrock_computer_use())
