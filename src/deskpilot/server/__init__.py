"""The computer server (``deskpilot serve``): one desktop's tools over a WebSocket and HTTP.

* :mod:`deskpilot.server.service`: each protocol method run on the desktop with the real
  executors (:class:`~deskpilot.server.service.DesktopService`);
* :mod:`deskpilot.server.app`: the aiohttp app (routes, token, idempotent request ids);
* :mod:`deskpilot.server.command`: the ``deskpilot serve`` command and :func:`run_server`.

The protocol's messages are :mod:`deskpilot.remote.protocol`; the client is
:class:`deskpilot.RemoteDesktop`. See ``docs/computer-server.md``. Nothing is imported here
at load time, so ``deskpilot --help`` stays fast.
"""
