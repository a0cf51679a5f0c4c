"""Wire formats: one module per API (Anthropic Messages, Bedrock InvokeModel, OpenAI-compatible
gateways), plus the shared tool assembly and prompt-caching rules.

Import the concrete providers from their modules; this package only documents the layout.
"""
