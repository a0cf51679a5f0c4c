"""``deskpilot ui``: watch Claude work on a live desktop, approve its actions, take over and
hand back, in the browser (``docs/ui.md``).

Modules: :mod:`~deskpilot.ui.app` (the aiohttp app, route table, serving),
:mod:`~deskpilot.ui.auth` (token, cookie, Origin), :mod:`~deskpilot.ui.api` (the HTTP API),
:mod:`~deskpilot.ui.schema` (its typed bodies), :mod:`~deskpilot.ui.events` (SSE),
:mod:`~deskpilot.ui.runs` (the run manager), :mod:`~deskpilot.ui.clients` (live, ``--fake``,
``--replay`` model clients), :mod:`~deskpilot.ui.view` (the live view's hook),
:mod:`~deskpilot.ui.command` (the click command).
"""
