"""The desktop actor: one Ray actor owns one desktop and runs the fleet's tasks on it, one at
a time, with an :class:`~deskpilot.agent.loop.Agent` whose client admits every request from
the fleet's shared limiter.

The actor is built from picklable :class:`FleetSettings` (model, provider, base URL, desktop
size, the limiter's name); the API key is read from the actor process's environment unless
given. It returns each task's outcome with its trajectory directory packed as a tar.gz, so
the driver gathers every run into one output directory whatever node ran it; or, with a
shared directory, writes the run directory there and returns only its path.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import logging
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..agent.loop import Agent
from ..client.core import LLMClient
from ..errors import ConfigError
from .limit import LIMITER_NAME, RayLimiter
from .ray_support import NAMESPACE

log = logging.getLogger("deskpilot.fleet")


@dataclass(frozen=True, kw_only=True)
class FleetSettings:
    """How every desktop actor builds its client, desktop and agent (picklable).

    Attributes:
        model: a registry model name (``deskpilot models``).
        provider: force a platform (``"anthropic"``, ``"bedrock"``, ...), or None.
        base_url: the API origin (e.g. a fake server's ``http://127.0.0.1:PORT``), or None
            for ``ANTHROPIC_BASE_URL`` / the default.
        api_key: the API key, or None to read ``ANTHROPIC_API_KEY`` (etc.) in each actor's
            environment (recommended: the key then never travels through Ray). Not in repr.
        max_turns / max_tokens: the agent's turn limit and ``max_tokens`` per request.
        request_timeout: seconds per HTTP attempt; max_attempts: attempts per request.
        width / height: the desktop size in pixels (local desktops).
        apps: apps started on each local desktop (``deskpilot.desktop.apps`` names).
        servers: ``ws://host:port`` computer servers (``deskpilot serve``, one desktop each):
            desktop actor ``i`` drives ``RemoteDesktop(servers[i])`` instead of starting a
            LocalDesktop (so there must be one per desktop actor).
        server_token: the servers' bearer token (None: ``DESKPILOT_SERVER_TOKEN``). Not in
            repr.
        fresh_desktop: reset the desktop between tasks (a new desktop when it has no
            ``reset``); False runs task after task on the same desktop state.
        limiter_name / namespace: the shared limiter actor to admit requests from; None
            for each actor's own in-process limiter (no fleet-wide limit).
        keep_screenshots: the agent's screenshot pruning (see :class:`Agent`).
    """

    model: str = "claude-4-sonnet"
    provider: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    max_turns: int = 50
    max_tokens: int = 4096
    request_timeout: float = 120.0
    max_attempts: int = 5
    width: int = 1280
    height: int = 800
    apps: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    server_token: str | None = field(default=None, repr=False)
    fresh_desktop: bool = True
    limiter_name: str | None = LIMITER_NAME
    namespace: str = NAMESPACE
    keep_screenshots: int | None = 3

    def __post_init__(self) -> None:
        for url in self.servers:
            if not url.startswith(("ws://", "wss://")):
                raise ConfigError(f"A server must be a ws:// or wss:// URL, not {url!r}.")
        if self.max_turns < 1:
            raise ConfigError(f"max_turns must be at least 1, not {self.max_turns}.")


def pack_dir(path: Path) -> bytes:
    """``path`` as tar.gz bytes (members relative to its parent: ``<name>/...``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(path, arcname=path.name)
    return buf.getvalue()


def _shared_target(shared_dir: str, run_dir: str) -> Path:
    """``shared_dir`` checked on this node, with an earlier attempt's ``run_dir`` removed
    (a real directory only: a file or symlink of that name is left, and the run gets a
    numbered name beside it).

    Raises:
        ConfigError: ``shared_dir`` is not a directory on this node.
    """
    base = Path(shared_dir)
    if not base.is_dir():
        raise ConfigError(
            f"The shared directory {shared_dir} does not exist on this node; shared_dir must "
            "be storage that every node of the cluster mounts at the same path."
        )
    old = base / run_dir
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    return base


class DesktopActor:
    """The body of a desktop actor (wrapped with ``ray.remote`` by the fleet runner).

    Methods are ``async`` and run on the actor's event loop, so :meth:`current_task` answers
    while :meth:`run_task` is busy.

    Args:
        settings: the fleet's :class:`FleetSettings`.
        name: this actor's Ray name (recorded in each result).
        server: the computer server this actor drives (one of ``settings.servers``), or
            None for a LocalDesktop.
    """

    def __init__(self, settings: FleetSettings, name: str, server: str | None = None) -> None:
        self._settings = settings
        self._name = name
        self._server = server
        self._client: LLMClient | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._desktop: Any = None
        self._used = False
        self._current: str | None = None

    async def current_task(self) -> str | None:
        """The id of the task running now, or None."""
        return self._current

    async def _client_for(self) -> LLMClient:
        if self._client is None:
            s = self._settings
            limiter = None
            if s.limiter_name is not None:  # two blocking actor calls: off the loop
                limiter = await asyncio.to_thread(RayLimiter.connect, s.limiter_name, s.namespace)
            self._client = LLMClient(
                s.model,
                provider=s.provider,
                base_url=s.base_url,
                api_key=s.api_key,
                request_timeout=s.request_timeout,
                max_attempts=s.max_attempts,
                progress="none",
                limiter=limiter,
            )
        return self._client

    def _make_desktop(self) -> Any:
        s = self._settings
        if self._server is not None:
            try:
                remote = importlib.import_module("deskpilot.remote")
            except ImportError as exc:
                raise ConfigError(
                    "This deskpilot has no RemoteDesktop (deskpilot.remote); drop --server."
                ) from exc
            return remote.RemoteDesktop(self._server, token=s.server_token)
        from ..desktop.local import LocalDesktop

        return LocalDesktop(s.width, s.height, apps=s.apps)

    async def _start_desktop(self) -> Any:
        self._stack = contextlib.AsyncExitStack()
        desktop = self._make_desktop()
        entered = await self._stack.enter_async_context(desktop)
        self._desktop = entered if entered is not None else desktop
        self._used = False
        return self._desktop

    async def _close_desktop(self) -> None:
        stack, self._stack, self._desktop = self._stack, None, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as exc:
                log.warning("%s: closing the desktop failed: %s", self._name, exc)

    async def _desktop_for_task(self) -> Any:
        """A desktop in a fresh state: started, reset, or restarted when reset fails."""
        if self._desktop is None:
            return await self._start_desktop()
        if self._used and self._settings.fresh_desktop:
            reset = getattr(self._desktop, "reset", None)
            if reset is not None:
                try:
                    await reset()
                    self._used = False
                    return self._desktop
                except Exception as exc:
                    log.warning("%s: reset failed (%s); a new desktop", self._name, exc)
            await self._close_desktop()
            return await self._start_desktop()
        return self._desktop

    async def node(self) -> str:
        """The hex id of the Ray node this actor runs on (answers once the actor is up)."""
        from .ray_support import import_ray

        return str(import_ray().get_runtime_context().get_node_id())

    async def run_task(
        self, task_id: str, task: str, run_dir: str, shared_dir: str | None = None
    ) -> dict[str, Any]:
        """Run one task from scratch; never raises for a failed run.

        Args:
            task_id: the task's id; task: its instruction.
            run_dir: the trajectory directory's name (a safe form of the id).
            shared_dir: an absolute directory every node sees: the run directory is
                written straight to ``shared_dir/run_dir`` (an earlier attempt's is
                replaced) and only its path comes back; None writes it to a scratch
                directory and sends it back packed.

        Returns:
            the fields of a :class:`~deskpilot.fleet.records.FleetResult` (without
            ``attempts``) plus ``"archive"``: the run directory as tar.gz bytes, or None
            (always None with ``shared_dir``, where ``"trajectory"`` holds the path).
        """
        self._current = task_id
        scratch = None if shared_dir else Path(tempfile.mkdtemp(prefix="deskpilot-fleet-"))
        started = time.monotonic()
        out: dict[str, Any] = {
            "id": task_id,
            "task": task,
            "desktop": self._name,
            "node": await self.node(),
            "archive": None,
        }
        try:
            where = (
                scratch
                if scratch is not None
                else await asyncio.to_thread(_shared_target, shared_dir or "", run_dir)
            )
            client = await self._client_for()
            desktop = await self._desktop_for_task()
            self._used = True
            s = self._settings
            agent = Agent(
                client,
                computer=desktop,
                max_turns=s.max_turns,
                max_tokens=s.max_tokens,
                keep_screenshots=s.keep_screenshots,
                out_dir=where,
                run_name=run_dir,
            )
            res = await agent.run(task)
            out.update(
                ok=res.ok,
                stop_reason=res.stop_reason,
                final_text=res.final_text,
                steps=res.steps,
                cost=res.cost,
                input_tokens=res.usage.input_tokens,
                output_tokens=res.usage.output_tokens,
                duration_s=res.duration_s,
                error=res.error,
            )
            tdir = res.trajectory_dir
            if tdir is not None and tdir.is_dir():
                if scratch is None:
                    out["trajectory"] = str(tdir)
                else:
                    out["archive"] = await asyncio.to_thread(pack_dir, tdir)
        except Exception as exc:
            log.warning("%s: task %s failed: %s: %s", self._name, task_id, type(exc).__name__, exc)
            out.update(
                ok=False,
                stop_reason="error",
                duration_s=time.monotonic() - started,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            self._current = None
        return out

    async def close(self) -> None:
        """Close the desktop and the client (the actor may then be killed)."""
        await self._close_desktop()
        if self._client is not None:
            await self._client.close()
            self._client = None


__all__ = ["DesktopActor", "FleetSettings", "pack_dir"]
