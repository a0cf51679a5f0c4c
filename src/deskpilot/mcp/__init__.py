"""``deskpilot mcp``: the desktop as a Model Context Protocol server.

An MCP client (Claude Desktop, Claude Code, any client built on an MCP SDK) drives a
:class:`~deskpilot.desktop.local.LocalDesktop` through four tools: ``screenshot``,
``computer`` (the action set and argument names of Anthropic's ``computer_20251124`` tool,
zoom included), ``bash`` and ``str_replace_based_edit_tool``. Every call is run by the same
executors the agent uses (:mod:`deskpilot.computer_use`), so inputs are validated the same
way and failures come back as the same sentences, as tool results with ``isError: true``
(MCP specification, "Tools", https://modelcontextprotocol.io/specification/2025-11-25/server/tools).

Modules: :mod:`.tools` (the tool list and the dispatch onto the executors), :mod:`.server`
(the SDK server, the stdio and streamable HTTP transports, the bearer token, signals) and
:mod:`.command` (the click command). This package imports the ``mcp`` SDK (the ``mcp``
extra, ``pip install 'deskpilot[mcp]'``) only in :mod:`.tools` and :mod:`.server`, so the
CLI loads without it. Usage: ``docs/mcp.md``.
"""
