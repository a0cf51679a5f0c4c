"""Helpers for the deskpilot ui tests: a served app around a fake model server, an SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from deskpilot import LLMClient
from deskpilot.testing import FakeModelServer
from deskpilot.ui.app import create_app, start_site
from deskpilot.ui.auth import TOKEN_KEY
from deskpilot.ui.runs import RunManager, UIConfig

MODEL = "claude-4-sonnet"  # computer_20250124: the fake's replies use "computer"


def fake_factory(fake: FakeModelServer):
    @contextlib.asynccontextmanager
    async def make(model: str) -> AsyncIterator[LLMClient]:
        async with LLMClient(
            model,
            base_url=fake.url,
            api_key="sk-ant-test-key-0123456789",
            provider="anthropic",
            max_attempts=1,
            progress="none",
        ) as client:
            yield client

    return make


@dataclass
class Served:
    base: str
    token: str
    session: aiohttp.ClientSession
    manager: RunManager
    fake: FakeModelServer

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.post(self.base + path, json=body, headers=self.auth) as r:
            return r.status, await r.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path, headers=self.auth) as r:
            return r.status, await r.json()

    async def start(self, task: str = "do it", **kw: Any) -> str:
        status, body = await self.post("/api/runs", {"task": task, **kw})
        assert status == 201, body
        return str(body["id"])

    def events(self, run_id: str, last_id: int | None = None) -> SSE:
        headers = dict(self.auth)
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        return SSE(self.session, f"{self.base}/api/runs/{run_id}/events", headers)


@contextlib.asynccontextmanager
async def served(
    tmp_path: Path,
    *,
    handler: Callable[..., Any] | None = None,
    replies: list[Any] | None = None,
    latency_s: float = 0.0,
    desktops: int = 1,
    approve: bool = False,
    apps: tuple[str, ...] = (),
) -> AsyncIterator[Served]:
    async with FakeModelServer(replies, handler, latency_s=latency_s) as fake:
        config = UIConfig(
            model=MODEL,
            width=800,
            height=600,
            desktops=desktops,
            out=tmp_path / "runs",
            approve=approve,
            apps=apps,
            max_turns=20,
        )
        manager = RunManager(config, fake_factory(fake))
        app = create_app(manager)
        runner, port = await start_site(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as session:
                yield Served(f"http://127.0.0.1:{port}", app[TOKEN_KEY], session, manager, fake)
        finally:
            await runner.cleanup()  # shuts every run down


@dataclass
class Received:
    id: int
    type: str
    data: dict[str, Any]
    at: float  # perf_counter when read


@dataclass
class SSE:
    """Reads an SSE stream in the background into :attr:`events`."""

    session: aiohttp.ClientSession
    url: str
    headers: dict[str, str]
    events: list[Received] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False

    async def __aenter__(self) -> SSE:
        self._response = await self.session.get(self.url, headers=self.headers)
        assert self._response.status == 200, await self._response.text()
        assert self._response.headers["Content-Type"].startswith("text/event-stream")
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._response.close()

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for raw in self._response.content:
                line = raw.decode().rstrip("\n")
                if line == "":
                    if "data" in fields:
                        self.events.append(
                            Received(
                                int(fields["id"]),
                                fields.get("event", "message"),
                                json.loads(fields["data"]),
                                time.perf_counter(),
                            )
                        )
                        self._new.set()
                    fields = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    fields[key] = value
        finally:
            self.ended = True
            self._new.set()

    def of(self, type: str) -> list[Received]:
        return [e for e in self.events if e.type == type]

    async def wait(self, predicate: Callable[[SSE], Any], timeout_s: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate(self)
            if value:
                return value
            if self.ended:
                raise AssertionError(f"the stream ended first; got {[e.type for e in self.events]}")
            self._new.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; got {[e.type for e in self.events]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)

    async def wait_type(self, type: str, n: int = 1, timeout_s: float = 60.0) -> Received:
        return await self.wait(lambda s: len(s.of(type)) >= n and s.of(type)[n - 1], timeout_s)


def answered_everything(messages: list[dict[str, Any]]) -> bool:
    """Every tool_use of an assistant turn has a tool_result in the next (user) turn."""
    for k, m in enumerate(messages):
        if m["role"] != "assistant" or not isinstance(m["content"], list):
            continue
        uses = {b["id"] for b in m["content"] if b.get("type") == "tool_use"}
        nxt = messages[k + 1] if k + 1 < len(messages) else None
        if uses and (nxt is None or nxt["role"] != "user"):
            return False
        got = {b.get("tool_use_id") for b in (nxt or {}).get("content", []) if isinstance(b, dict)}
        if uses - got:
            return False
    return True
