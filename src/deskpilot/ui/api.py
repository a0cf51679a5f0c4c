"""The UI's HTTP API handlers (``/api/...``, ``docs/ui.md``): runs, events, approvals,
takeover, stop, screenshots, and each run's files (report, screenshots).

Bodies are the models of :mod:`deskpilot.ui.schema`; errors are ``{"error": sentence}`` with
400 (a bad body), 404 (no such run or file), 409 (not possible in the run's state) or 503
(shutting down). Nothing is rendered as HTML here: model text and tool inputs go out as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..agent.records import describe_errors, safe_relative_path
from ..errors import ConfigError
from .events import stream_events
from .runs import RunManager, UIRun
from .schema import ApprovalBody, CreateRunBody, HandbackBody, UIConfigInfo

log = logging.getLogger("deskpilot.ui")

__all__ = ["MANAGER_KEY", "add_api_routes"]

MANAGER_KEY: web.AppKey[RunManager] = web.AppKey("deskpilot_ui_manager", RunManager)
"""Where the app keeps its :class:`~deskpilot.ui.runs.RunManager`."""

B = TypeVar("B", bound=BaseModel)
_FILE_TYPES = {".html": "text/html", ".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif"}
_FILE_TYPES |= {".webp": "image/webp", ".mp4": "video/mp4", ".jpeg": "image/jpeg"}
NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, sentence: str) -> web.Response:
    return web.json_response({"error": sentence}, status=status, headers=NO_STORE)


def _json(model: BaseModel | dict[str, Any], status: int = 200) -> web.Response:
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return web.json_response(data, status=status, headers=NO_STORE)


async def _body(request: web.Request, model: type[B], *, empty_ok: bool = False) -> B:
    raw = await request.read()
    if not raw.strip() and empty_ok:
        return model()
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "The body is not valid JSON."}),
            content_type="application/json",
        ) from exc
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"The body was refused: {describe_errors(exc)}."}),
            content_type="application/json",
        ) from exc


def _run(request: web.Request) -> UIRun:
    try:
        return request.app[MANAGER_KEY].get(request.match_info["run_id"])
    except KeyError:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "There is no run with that id."}),
            content_type="application/json",
        ) from None


async def get_config(request: web.Request) -> web.Response:
    c = request.app[MANAGER_KEY].config
    info = UIConfigInfo(
        model=c.model,
        provider=c.provider,
        approve=c.approve,
        desktops=c.desktops,
        width=c.width,
        height=c.height,
        mode=c.mode,
    )
    return _json(info)


async def list_runs(request: web.Request) -> web.Response:
    runs = request.app[MANAGER_KEY].runs.values()
    return _json({"runs": [r.summary().model_dump(mode="json") for r in runs]})


async def create_run(request: web.Request) -> web.Response:
    body = await _body(request, CreateRunBody)
    try:
        run = request.app[MANAGER_KEY].create(body.task, model=body.model, approve=body.approve)
    except ConfigError as exc:
        return _error(503 if request.app[MANAGER_KEY].closed else 400, str(exc))
    return _json({"id": run.id, "url": f"/api/runs/{run.id}"}, status=201)


async def get_run(request: web.Request) -> web.Response:
    return _json(_run(request).summary())


async def events(request: web.Request) -> web.StreamResponse:
    return await stream_events(request, _run(request).events)


async def decide(request: web.Request) -> web.Response:
    run = _run(request)
    body = await _body(request, ApprovalBody)
    try:
        run.decide(request.match_info["call_id"], body.approve, body.reason)
    except KeyError:
        return _error(409, "No action with that id is waiting for approval in this run.")
    return _json({"call_id": request.match_info["call_id"], "approve": body.approve})


async def take_over(request: web.Request) -> web.Response:
    run = _run(request)
    if run.status not in ("starting", "running"):
        return _error(409, f"The run is {run.status}; only a running run can be taken over.")
    t0 = time.perf_counter()
    try:
        waited = await run.control.take_over()
    except ConfigError as exc:
        return _error(409, str(exc))
    return _json(
        {
            "state": "held" if run.control.held else "none",  # none: handed back meanwhile
            "waited_s": round(waited, 6),
            "latency_s": round(time.perf_counter() - t0, 6),
        }
    )


async def hand_back(request: web.Request) -> web.Response:
    run = _run(request)
    body = await _body(request, HandbackBody, empty_ok=True)
    try:
        period = run.control.hand_back(body.message or "")
    except ConfigError as exc:
        return _error(409, str(exc))
    return _json({"state": "none", "duration_s": round(period.duration_s, 3)})


async def stop(request: web.Request) -> web.Response:
    run = _run(request)
    run.stop()
    return _json({"status": run.status})


def _latest_screenshot(run_dir: Path) -> Path | None:
    """The newest PNG under ``run_dir/screenshots`` (no symlink), or None."""
    try:
        shots = [
            p
            for p in (run_dir / "screenshots").iterdir()
            if p.suffix == ".png" and p.is_file() and not p.is_symlink()
        ]
        return max(shots, key=lambda p: p.stat().st_mtime, default=None)
    except OSError:
        return None


def _run_path(run_dir: Path, rel: str) -> Path | None:
    """``run_dir/rel`` when it is a regular file of a served type inside the directory,
    reached without a symlink; else None."""
    try:
        safe_relative_path(rel)
        base = run_dir.resolve()
        lexical = Path(os.path.normpath(base / rel))
        path = lexical.resolve()
    except (ValueError, OSError, RuntimeError):
        return None
    if path != lexical or not path.is_relative_to(base) or path.suffix.lower() not in _FILE_TYPES:
        return None
    return path if path.is_file() else None


async def screenshot(request: web.Request) -> web.StreamResponse:
    """The desktop now (PNG, native pixels) while the run has one, else the last recorded
    screenshot (model-space), else 404."""
    run = _run(request)
    desktop = run.desktop
    if desktop is not None:
        try:
            data = await desktop.screenshot_bytes("png")
            return web.Response(body=data, content_type="image/png", headers=NO_STORE)
        except Exception as exc:  # the desktop went away meanwhile: fall back to the files
            log.debug("Live screenshot of run %s failed: %s", run.id, exc)
    latest = await asyncio.to_thread(_latest_screenshot, run.run_dir)
    if latest is None:
        return _error(404, "This run has no screenshot yet.")
    return web.FileResponse(latest, headers={**NO_STORE, "Content-Type": "image/png"})


async def run_file(request: web.Request) -> web.StreamResponse:
    """A file of the run directory: ``report.html``, ``run.gif``, ``screenshots/...``
    (confined to the directory, no symlink, known types only)."""
    run = _run(request)
    path = await asyncio.to_thread(_run_path, run.run_dir, request.match_info["path"])
    if path is None:
        return _error(404, "No such file in this run (yet).")
    kind = _FILE_TYPES[path.suffix.lower()]
    headers = {"Content-Type": kind, "X-Content-Type-Options": "nosniff", **NO_STORE}
    if kind == "text/html":  # the report: no script, nothing from elsewhere
        headers["Content-Security-Policy"] = (
            "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
            "media-src 'self'; frame-ancestors 'self'"
        )
    return web.FileResponse(path, headers=headers)


def add_api_routes(app: web.Application) -> None:
    """Register the API routes (``docs/ui.md``) on ``app`` (``app[MANAGER_KEY]`` set)."""
    r = app.router
    r.add_get("/api/config", get_config)
    r.add_get("/api/runs", list_runs)
    r.add_post("/api/runs", create_run)
    r.add_get("/api/runs/{run_id}", get_run)
    r.add_get("/api/runs/{run_id}/events", events)
    r.add_post("/api/runs/{run_id}/approvals/{call_id}", decide)
    r.add_post("/api/runs/{run_id}/takeover", take_over)
    r.add_post("/api/runs/{run_id}/handback", hand_back)
    r.add_post("/api/runs/{run_id}/stop", stop)
    r.add_get("/api/runs/{run_id}/screenshot", screenshot)
    r.add_get("/runs/{run_id}/{path:.+}", run_file)
