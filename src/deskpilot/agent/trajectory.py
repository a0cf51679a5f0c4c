"""Writing and reading a run directory: ``trajectory.jsonl``, ``screenshots/``, ``checks.json``.

The format is ``docs/trajectory-format.md``; its records are the pydantic models of
:mod:`deskpilot.agent.records`. One JSON object per line (``run_start``, one ``step`` per
model turn, ``run_end``), each written with one ``write(2)`` before the next step starts, so a
run that dies (even by SIGKILL) leaves every completed step on disk. The file is fsync'd with
the first line, at ``run_end``, and with any line written :data:`FSYNC_INTERVAL_S` (1 s) or
more after the last fsync: an fsync per step cost about 0.5 ms of CPU and only guards against
the host itself crashing, which then loses at most the lines written less than a second after
an fsync. Screenshots are the model-space images the model saw, written as files under
``screenshots/`` (``NNNN-K.png`` for tool call K of step NNNN, ``0000-initial.png`` for the
initial screenshot). File writes run in a worker thread (``asyncio.to_thread``), one job per
step (its screenshots, then its line), so the event loop never blocks on the disk.

:class:`TrajectoryWriter` is the only writer; it takes typed records only. No line ever holds
a key: the writer scrubs values of secret-looking keys, the credential values in the
environment (``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN``, ``OPENAI_API_KEY``, AWS
secrets) and the values passed as ``secrets=`` (the client's own credentials) as a last line of defence.

:func:`~deskpilot.agent.run_reader.read_run` (re-exported here) is the only reader.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import DeskpilotError
from .records import (
    CHECKS_FILE,
    INITIAL_SCREENSHOT,
    MAX_LINE_BYTES,
    SCREENSHOT_DIR,
    TRAJECTORY_FILE,
    Check,
    DesktopRestart,
    RunEnd,
    RunStart,
    StepRecord,
    Takeover,
    ToolStepDown,
)
from .run_reader import Run, Unreadable, read_run
from .runfiles import DIR_MODE, append_line, make_private_dir, replace_file

log = logging.getLogger("deskpilot.agent")


_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|authorization|x-api-key|token$)", re.I)
_SECRET_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
_MIN_SECRET_LEN = 8  # shorter values would corrupt ordinary text when scrubbed
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
FSYNC_INTERVAL_S = 1.0
"""Seconds between two fsyncs of ``trajectory.jsonl`` (besides its first and last line)."""
_WRITABLE = (RunStart, StepRecord, RunEnd, DesktopRestart, ToolStepDown, Takeover)
TrajectoryRecord = RunStart | StepRecord | RunEnd | DesktopRestart | ToolStepDown | Takeover


def utc_now_iso() -> str:
    """The current time as ISO-8601 UTC with a ``Z`` suffix, e.g. ``2026-11-22T19:20:00.000000Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def slugify(text: str, max_len: int = 40) -> str:
    """A short filesystem-safe slug of ``text`` (lowercase ASCII words joined by ``-``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug[:max_len].rstrip("-")) or "run"


def new_run_dir(out_dir: str | os.PathLike[str], task: str, run_name: str | None = None) -> Path:
    """Create and return a fresh run directory ``out_dir/<UTC timestamp>-<slug>`` (or
    ``out_dir/run_name``), mode ``0700``; a numeric suffix is added if the name is taken
    (an existing name, a symlink included, is never reused)."""
    base = Path(out_dir)
    name = run_name or f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{slugify(task)}"
    base.mkdir(parents=True, exist_ok=True)
    candidate = base / name
    n = 2
    while True:
        try:
            candidate.mkdir(mode=DIR_MODE)  # owner only: screens can hold secrets
            return candidate
        except FileExistsError:
            candidate = base / f"{name}-{n}"
            n += 1


def _secret_values(extra: Iterable[str] = ()) -> list[str]:
    values = [os.environ.get(k) or "" for k in _SECRET_ENV] + [str(v) for v in extra if v]
    # longest first, so a key that contains another is replaced whole
    return sorted({v for v in values if len(v) >= _MIN_SECRET_LEN}, key=len, reverse=True)


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of ``obj`` (JSON-like) with secret-looking keys' values and credential values
    replaced by ``"[redacted]"``.

    Args:
        obj: dicts, lists and scalars.
        secrets: the values to scrub from every string (default: the credential variables
            of the environment: ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, OPENAI_API_KEY, AWS
            secrets).
    """
    return _redact(obj, _secret_values() if secrets is None else secrets)


@functools.lru_cache(maxsize=1024)  # records repeat the same few keys on every line
def _secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _redact(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, str):  # the leaves first: most of a record
        for s in secrets:
            if s in obj:
                obj = obj.replace(s, "[redacted]")
        return obj
    if isinstance(obj, dict):
        return {
            k: "[redacted]"
            if isinstance(v, str) and v and isinstance(k, str) and _secret_key(k)
            else _redact(v, secrets)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [_redact(v, secrets) for v in obj]
    return obj


class TrajectoryWriter:
    """Writes one run's ``trajectory.jsonl`` and screenshots (``docs/trajectory-format.md``).

    Args:
        run_dir: the run directory (created if missing).
        clock: ``time.perf_counter``-like; ``t`` of every line is seconds since construction.
        secrets: credential values to scrub from every line in addition to the environment's
            (a key passed as ``api_key=`` is not in ``os.environ``), or a function returning
            them, called for every line (e.g. ``client.credential_values``: a Bedrock
            profile's credentials are only known after the first request); values shorter
            than 8 characters are ignored.

    Every ``write_*`` coroutine returns after the line is written (fsync'd as the module
    docstring says); screenshots staged with :meth:`stage_screenshot` are written first, in
    the same worker-thread job.
    Nothing is written through a symlink (:mod:`deskpilot.agent.runfiles`): a screenshot
    replaces whatever has its name, ``trajectory.jsonl`` is appended to only when it is a
    regular file with one link; directories are created ``0700`` and files ``0600``.

    Raises:
        DeskpilotError: ``run_dir`` or its ``screenshots/`` is a symlink or not a directory.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.perf_counter,
        secrets: Iterable[str] | Callable[[], Iterable[str]] = (),
    ) -> None:
        self.run_dir = Path(run_dir)
        try:
            make_private_dir(self.run_dir, exist_ok=True)
            make_private_dir(self.run_dir / SCREENSHOT_DIR, exist_ok=True)
        except FileExistsError as exc:
            raise DeskpilotError(
                f"{exc.filename} is a symlink or not a directory; refused (deskpilot never "
                "writes a run through a symlink)."
            ) from exc
        self.path = self.run_dir / TRAJECTORY_FILE
        self._clock = clock
        self._t0 = clock()
        self._secret_source = secrets if callable(secrets) else None
        self._secrets = _secret_values(() if callable(secrets) else secrets)
        self._staged: list[tuple[str, bytes]] = []
        self._synced_at = float("-inf")

    def elapsed(self) -> float:
        """Seconds since the writer was created (the ``t`` of the next line)."""
        return self._clock() - self._t0

    def _format(self, record: TrajectoryRecord) -> str:
        if not isinstance(record, _WRITABLE):
            raise TypeError(
                "TrajectoryWriter writes the typed records of deskpilot.agent.records "
                "(RunStart, StepRecord, RunEnd, DesktopRestart, ToolStepDown, Takeover), not "
                f"{type(record).__name__}."
            )
        if record.t is None:
            record.t = round(max(0.0, self.elapsed()), 6)
        secrets = self._secrets
        if self._secret_source is not None:
            secrets = _secret_values(self._secret_source())
        data = redact(record.model_dump(mode="json"), secrets)
        return json.dumps(data, ensure_ascii=False) + "\n"

    async def write_line(self, record: TrajectoryRecord) -> None:
        """Write the staged screenshots, then append one record, redacted; a record without
        ``t`` gets the writer's elapsed seconds (set on the record itself).

        Raises:
            TypeError: ``record`` is not one of the typed records.
            OSError: the disk write failed.
        """
        job = self._job(record)
        await asyncio.to_thread(job)

    def write_line_sync(self, record: TrajectoryRecord) -> None:
        """:meth:`write_line` without leaving the calling thread (for cancellation paths,
        where awaiting is not possible)."""
        self._job(record)()

    def _job(self, record: TrajectoryRecord) -> Callable[[], None]:
        """The disk work of one line (formatted and its fsync decided here, on the caller's
        thread): the staged screenshots, then the line."""
        line = self._format(record).encode("utf-8")
        staged, self._staged = self._staged, []
        now = time.monotonic()
        fsync = isinstance(record, RunEnd) or now - self._synced_at >= FSYNC_INTERVAL_S
        if fsync:
            self._synced_at = now

        def job() -> None:
            for file_name, data in staged:
                replace_file(self.run_dir, file_name, data, subdir=SCREENSHOT_DIR)
            append_line(self.run_dir, TRAJECTORY_FILE, line, fsync=fsync)

        return job

    def stage_screenshot(self, name: str, data: bytes, media_type: str = "image/png") -> str:
        """Queue image bytes to be written as ``screenshots/<name>.<ext>`` by the next
        :meth:`write_line` (before its line, in the same worker-thread job); returns the
        relative path (``"screenshots/0003-0.png"``) to store in that line."""
        file_name = f"{name}.{_EXT.get(media_type, 'png')}"
        self._staged.append((file_name, data))
        return f"{SCREENSHOT_DIR}/{file_name}"

    async def save_screenshot(self, name: str, data: bytes, media_type: str = "image/png") -> str:
        """Write image bytes as ``screenshots/<name>.<ext>``; returns the relative path
        (``"screenshots/0003-0.png"``) to store in the step record."""
        ext = _EXT.get(media_type, "png")
        file_name = f"{name}.{ext}"
        await asyncio.to_thread(replace_file, self.run_dir, file_name, data, subdir=SCREENSHOT_DIR)
        return f"{SCREENSHOT_DIR}/{file_name}"

    @staticmethod
    def screenshot_name(step: int, index: int) -> str:
        """``NNNN-K``: step (1-based, 4 digits) and tool-call index (0-based)."""
        return f"{step:04d}-{index}"


def write_checks(
    run_dir: str | os.PathLike[str], checks: Iterable[Check | Mapping[str, Any]]
) -> Path:
    """Record outcome checks made after a run (``RUN_DIR/checks.json``) for the report.

    Args:
        run_dir: the run directory.
        checks: :class:`~deskpilot.agent.records.Check` s or ``{"name": str, "ok": bool,
            "detail": str}`` mappings, e.g. the demo's "the saved file prints Hello, World!".

    Returns:
        The path written (mode ``0600``; a symlink of that name is replaced, never followed).

    Raises:
        pydantic.ValidationError: a check lacks ``name`` or ``ok``.
        DeskpilotError: the file could not be written.
    """
    items = [c if isinstance(c, Check) else Check.model_validate(dict(c)) for c in checks]
    target = Path(run_dir) / CHECKS_FILE
    text = json.dumps([c.model_dump(mode="json") for c in items], indent=1, ensure_ascii=False)
    try:
        replace_file(Path(run_dir), CHECKS_FILE, (text + "\n").encode("utf-8"))
    except (OSError, ValueError) as exc:
        raise DeskpilotError(f"Could not write {target}: {exc}.") from exc
    return target


__all__ = [
    "CHECKS_FILE",
    "INITIAL_SCREENSHOT",
    "MAX_LINE_BYTES",
    "SCREENSHOT_DIR",
    "TRAJECTORY_FILE",
    "Run",
    "TrajectoryRecord",
    "TrajectoryWriter",
    "Unreadable",
    "new_run_dir",
    "read_run",
    "redact",
    "slugify",
    "utc_now_iso",
    "write_checks",
]
