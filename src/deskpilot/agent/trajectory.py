"""Trajectory recording and reading: ``RUN_DIR/trajectory.jsonl`` plus screenshot files.

The format is the contract in ``notes/TRAJECTORY_FORMAT.md``: one JSON object per line
(``run_start``, one ``step`` per model turn, ``run_end``), each flushed and fsync'd before the
next step starts, so a run that dies leaves every completed step on disk. Screenshots are the
model-space images the model saw, written as files under ``screenshots/`` (``NNNN-K.png`` for
tool call K of step NNNN, ``0000-initial.png`` for the initial screenshot). File writes run in
a worker thread (``asyncio.to_thread``) so the event loop never blocks on the disk.

No line ever holds a key: the writer only records what the agent hands it (content blocks,
tool inputs and results, usage), and :func:`redact` scrubs values of secret-looking keys and
known credential environment values as a last line of defence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError

log = logging.getLogger("deskpilot.agent")

TRAJECTORY_FILE = "trajectory.jsonl"
SCREENSHOT_DIR = "screenshots"

_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|authorization|x-api-key|token$)", re.I)
_SECRET_ENV = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def utc_now_iso() -> str:
    """The current time as ISO-8601 UTC with a ``Z`` suffix, e.g. ``2026-11-22T19:20:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def slugify(text: str, max_len: int = 40) -> str:
    """A short filesystem-safe slug of ``text`` (lowercase ASCII words joined by ``-``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug[:max_len].rstrip("-")) or "run"


def new_run_dir(out_dir: str | os.PathLike[str], task: str, run_name: str | None = None) -> Path:
    """Create and return a fresh run directory ``out_dir/<UTC timestamp>-<slug>`` (or
    ``out_dir/run_name``); a numeric suffix is added if the name is taken."""
    base = Path(out_dir)
    name = run_name or f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{slugify(task)}"
    base.mkdir(parents=True, exist_ok=True)
    candidate = base / name
    n = 2
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            candidate = base / f"{name}-{n}"
            n += 1


def _secret_values() -> list[str]:
    return [v for k in _SECRET_ENV if (v := os.environ.get(k)) and len(v) >= 8]


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of ``obj`` (JSON-like) with secret-looking keys' values and known credential
    values (from the environment: ANTHROPIC_API_KEY, OPENAI_API_KEY, AWS secrets) replaced
    by ``"[redacted]"``."""
    secrets = _secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {
            k: "[redacted]"
            if isinstance(k, str) and _SECRET_KEY.search(k) and isinstance(v, str) and v
            else redact(v, secrets)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, str) and secrets:
        for s in secrets:
            if s in obj:
                obj = obj.replace(s, "[redacted]")
    return obj


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, bytes | bytearray):
        return f"<{len(o)} bytes>"
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "to_anthropic"):
        return o.to_anthropic()
    return repr(o)


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)


class TrajectoryWriter:
    """Writes one run's ``trajectory.jsonl`` and screenshots (TRAJECTORY_FORMAT.md).

    Args:
        run_dir: the run directory (created if missing).
        clock: ``time.perf_counter``-like; ``t`` of every line is seconds since construction.

    Every ``write_*`` coroutine returns after the line is on disk (flushed and fsync'd).
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, clock: Any = time.perf_counter) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / SCREENSHOT_DIR).mkdir(exist_ok=True)
        self.path = self.run_dir / TRAJECTORY_FILE
        self._clock = clock
        self._t0 = clock()
        self._secrets = _secret_values()

    def elapsed(self) -> float:
        """Seconds since the writer was created (the ``t`` of the next line)."""
        return self._clock() - self._t0

    def _format(self, record: dict[str, Any]) -> str:
        if "type" not in record:
            raise ConfigError("A trajectory record needs a 'type' key.")
        rec = {"type": record["type"], "t": round(self.elapsed(), 6)}
        rec.update({k: v for k, v in record.items() if k not in ("type", "t")})
        if "t" in record:
            rec["t"] = record["t"]
        return (
            json.dumps(redact(rec, self._secrets), default=_json_default, ensure_ascii=False) + "\n"
        )

    async def write_line(self, record: dict[str, Any]) -> None:
        """Append one record (``type`` required; ``t`` added if missing), redacted, fsync'd.

        Raises:
            ConfigError: the record has no ``type``.
        """
        await asyncio.to_thread(_append_line, self.path, self._format(record))

    def write_line_sync(self, record: dict[str, Any]) -> None:
        """:meth:`write_line` without leaving the calling thread (for cancellation paths,
        where awaiting is not possible)."""
        _append_line(self.path, self._format(record))

    async def save_screenshot(self, name: str, data: bytes, media_type: str = "image/png") -> str:
        """Write image bytes as ``screenshots/<name>.<ext>``; returns the relative path
        (``"screenshots/0003-0.png"``) to store in the step record."""
        ext = _EXT.get(media_type, "png")
        rel = f"{SCREENSHOT_DIR}/{name}.{ext}"
        await asyncio.to_thread(_write_file, self.run_dir / rel, data)
        return rel

    @staticmethod
    def screenshot_name(step: int, index: int) -> str:
        """``NNNN-K``: step (1-based, 4 digits) and tool-call index (0-based)."""
        return f"{step:04d}-{index}"


@dataclass(slots=True)
class Trajectory:
    """A run directory read back.

    Attributes:
        run_dir: the directory.
        start: the ``run_start`` record, or None if missing.
        steps: the ``step`` records in order.
        end: the ``run_end`` record, or None when the run died before writing it.
        truncated: True when the last line was cut short (a crash mid-write); it is ignored.
    """

    run_dir: Path
    start: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    truncated: bool = False

    @property
    def complete(self) -> bool:
        """True when the run ended normally (a ``run_end`` line exists)."""
        return self.end is not None

    def screenshot_path(self, rel: str | None) -> Path | None:
        """The absolute path of a screenshot reference from a record, or None."""
        return (self.run_dir / rel) if rel else None

    def actions(self) -> list[tuple[int, dict[str, Any]]]:
        """Every recorded action as ``(step index, action record)`` in order."""
        return [
            (s.get("index", i + 1), a)
            for i, s in enumerate(self.steps)
            for a in s.get("actions", [])
        ]


def read_trajectory(run_dir: str | os.PathLike[str]) -> Trajectory:
    """Read ``RUN_DIR/trajectory.jsonl``.

    Copes with runs that died: a missing ``run_end`` gives ``end=None``; a half-written last
    line is skipped (``truncated=True``). Unknown record types are ignored.

    Raises:
        ConfigError: ``run_dir`` has no trajectory.jsonl, or a line other than the last is
            not valid JSON.
    """
    d = Path(run_dir)
    path = d / TRAJECTORY_FILE
    if not path.is_file():
        raise ConfigError(
            f"{d} is not a deskpilot run directory (no {TRAJECTORY_FILE}); pass the directory "
            "a run wrote, e.g. deskpilot-runs/<timestamp>-<task>."
        )
    traj = Trajectory(run_dir=d)
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                traj.truncated = True
                log.warning("Ignoring a half-written last line in %s.", path)
                continue
            raise ConfigError(f"Line {i + 1} of {path} is not valid JSON: {exc}.") from exc
        kind = rec.get("type")
        if kind == "run_start":
            traj.start = rec
        elif kind == "step":
            traj.steps.append(rec)
        elif kind == "run_end":
            traj.end = rec
    return traj


__all__ = [
    "SCREENSHOT_DIR",
    "TRAJECTORY_FILE",
    "Trajectory",
    "TrajectoryWriter",
    "new_run_dir",
    "read_trajectory",
    "redact",
    "slugify",
    "utc_now_iso",
]
