"""Reading a run directory back: the one lenient reader of ``trajectory.jsonl``.

The format is ``docs/trajectory-format.md`` ("Reading" lists this reader's rules). :func:`read_run`
is the only reader (used by the report, replay, the CLI and anything later). It never raises for
bad content: a line that cannot be read becomes an :class:`Unreadable` entry with the reason,
and every path it hands out is confined to the run directory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from ..errors import ConfigError
from .records import (
    CHECKS_FILE,
    FORMAT_VERSION,
    INITIAL_SCREENSHOT,
    MAX_CHECKS_BYTES,
    MAX_LINE_BYTES,
    TRAJECTORY_FILE,
    ActionRecord,
    Check,
    DesktopRestart,
    RunEnd,
    RunStart,
    StepRecord,
    Takeover,
    ToolStepDown,
    describe_errors,
    parse_record,
    safe_relative_path,
)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A line of ``trajectory.jsonl`` that could not be read.

    Attributes:
        line: its 1-based line number.
        reason: why, e.g. ``"not valid JSON (cut short?)"`` or ``"response.usage.input_tokens:
            Input should be a valid integer (got 'lots')"``.
        kind: the ``type`` the line claimed (``"step"``, ``"run_start"``, ...) when that much
            could be read, else None.
        index: the step ``index`` the line claimed when it is an integer, else None.
    """

    line: int
    reason: str
    kind: str | None = None
    index: int | None = None

    def sentence(self) -> str:
        """``Line 4 of trajectory.jsonl (a step) could not be read: <reason>.``"""
        what = f" (a {self.kind})" if self.kind else ""
        return f"Line {self.line} of {TRAJECTORY_FILE}{what} could not be read: {self.reason}."


@dataclass(slots=True)
class Run:
    """A run directory read back by :func:`read_run`.

    Attributes:
        run_dir: the directory, resolved (every path handed out lies inside it).
        start: the ``run_start`` record, or None when missing or unreadable.
        steps: every line that claims to be a step, in file order: a
            :class:`~deskpilot.agent.records.StepRecord`, or an :class:`Unreadable` with the
            reason it could not be read.
        end: the ``run_end`` record, or None when the run died (or is still running).
        restarts: ``desktop_restart`` records in order.
        step_downs: ``tool_step_down`` records in order.
        takeovers: ``takeover`` records in order (a human held the input lease).
        unreadable: every line that could not be read (also those in ``steps``).
        notes: other findings worth telling a reader (a newer format version, unknown line
            types, duplicate lines, fields of ``run_start``/``run_end`` that were dropped).
        checks: outcome checks from ``checks.json`` (see :func:`write_checks`).
        truncated: the last line was cut short (a crash mid-write).
    """

    run_dir: Path
    start: RunStart | None = None
    steps: list[StepRecord | Unreadable] = field(default_factory=list)
    end: RunEnd | None = None
    restarts: list[DesktopRestart] = field(default_factory=list)
    step_downs: list[ToolStepDown] = field(default_factory=list)
    takeovers: list[Takeover] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    truncated: bool = False

    @property
    def complete(self) -> bool:
        """True when the run ended normally (a readable ``run_end`` line exists)."""
        return self.end is not None

    @property
    def readable_steps(self) -> list[StepRecord]:
        """The steps that could be read, in order."""
        return [s for s in self.steps if isinstance(s, StepRecord)]

    @property
    def problems(self) -> list[str]:
        """One sentence per unreadable line, then the notes."""
        return [u.sentence() for u in self.unreadable] + list(self.notes)

    def path(self, rel: str | None) -> Path | None:
        """The absolute path of a file named in a record, or None unless it is a regular
        file inside the run directory reached without a symlink (``..``, absolute paths and
        symlinks, inside the directory or leading out, are refused: deskpilot writes none,
        and one file named through many links would be decoded once per link)."""
        if not isinstance(rel, str):
            return None
        try:
            safe_relative_path(rel)
            lexical = Path(os.path.normpath(self.run_dir / rel))
            path = lexical.resolve()
        except (ValueError, OSError, RuntimeError):
            return None
        if path != lexical or not path.is_relative_to(self.run_dir):
            return None
        try:
            return path if path.is_file() else None
        except OSError:
            return None

    @property
    def initial_screenshot(self) -> str | None:
        """The relative path of the initial screenshot when it exists (``run_start``'s
        ``initial_screenshot``, else ``screenshots/0000-initial.png``)."""
        named = self.start.initial_screenshot if self.start is not None else None
        for rel in (named, INITIAL_SCREENSHOT):
            if rel and self.path(rel) is not None:
                return rel
        return None

    def actions(self) -> list[tuple[int, ActionRecord]]:
        """Every recorded action of the readable steps as ``(step index, action)``, in order."""
        return [(s.index, a) for s in self.readable_steps for a in s.actions]


def _inside(run_dir: Path, name: str) -> Path | None:
    path = (run_dir / name).resolve()
    return path if path.is_relative_to(run_dir) else None


def _lines(fh: BinaryIO) -> Iterable[tuple[bytes | None, bool]]:
    """(line without its newline or None when too long, ended with a newline)."""
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                raw = fh.readline(MAX_LINE_BYTES)
            yield None, True
            continue
        ended = raw.endswith(b"\n")
        yield raw.rstrip(b"\r\n"), ended


_CLAIMS_STEP = re.compile(rb'^\s*\{\s*"type"\s*:\s*"step"')


_Salvageable = type[RunStart] | type[RunEnd] | type[DesktopRestart] | type[ToolStepDown]
_KINDS: dict[str, _Salvageable | type[Takeover]] = {
    "run_start": RunStart,
    "run_end": RunEnd,
    "desktop_restart": DesktopRestart,
    "tool_step_down": ToolStepDown,
    "takeover": Takeover,
}


def _salvage(
    model: _Salvageable | type[Takeover],
    obj: dict[str, Any],
    exc: ValidationError,
) -> tuple[Any, str] | None:
    """Validate ``obj`` again without the top-level fields that failed (all have defaults)."""
    tag = obj.get("type")
    locs = [tuple(e.get("loc", ())) for e in exc.errors()]
    bad = {str(loc[1] if loc[:1] == (tag,) else loc[0]) for loc in locs if len(loc) > 1}
    if not bad or "type" in bad:
        return None
    try:
        return model.model_validate({k: v for k, v in obj.items() if k not in bad}), ", ".join(
            sorted(bad)
        )
    except (ValidationError, RecursionError, ValueError, TypeError):
        return None


def _read_line(run: Run, lineno: int, raw: bytes | None, last: bool) -> None:
    if raw is None:
        u = Unreadable(lineno, f"longer than {MAX_LINE_BYTES} bytes")
        run.unreadable.append(u)
        return
    if not raw.strip():
        return
    try:
        obj = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        claims_step = bool(_CLAIMS_STEP.match(raw))
        if last:
            run.truncated = True
        u = Unreadable(
            lineno,
            "not valid JSON (cut short?)" if last else "not valid JSON",
            kind="step" if claims_step else None,
        )
        run.unreadable.append(u)
        if claims_step:
            run.steps.append(u)
        return
    if not isinstance(obj, dict):
        run.unreadable.append(Unreadable(lineno, f"a JSON {type(obj).__name__}, not an object"))
        return
    kind = obj.get("type")
    if not isinstance(kind, str) or (kind != "step" and kind not in _KINDS):
        if isinstance(kind, str):
            run.notes.append(
                f"Line {lineno} of {TRAJECTORY_FILE} has the unknown type {kind[:40]!r} "
                "(written by a newer deskpilot?); it was ignored."
            )
        else:
            run.unreadable.append(Unreadable(lineno, "the line has no 'type'"))
        return
    try:
        record = parse_record(obj)
    except (ValidationError, RecursionError, ValueError, TypeError) as exc:
        reason = (
            describe_errors(exc)
            if isinstance(exc, ValidationError)
            else f"{type(exc).__name__}: {str(exc)[:200]}"
        )
        if kind == "step":
            index = obj.get("index")
            u = Unreadable(
                lineno,
                reason,
                kind="step",
                index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            )
            run.unreadable.append(u)
            run.steps.append(u)
            return
        saved = _salvage(_KINDS[str(kind)], obj, exc) if isinstance(exc, ValidationError) else None
        if saved is None:
            run.unreadable.append(Unreadable(lineno, reason, kind=kind))
            return
        record, dropped = saved
        run.notes.append(
            f"Line {lineno} of {TRAJECTORY_FILE} ({kind}): {dropped} could not be read and "
            f"{'was' if ',' not in dropped else 'were'} ignored ({reason})."
        )
    _place(run, lineno, record)


def _place(run: Run, lineno: int, record: Any) -> None:
    if isinstance(record, StepRecord):
        run.steps.append(record)
    elif isinstance(record, RunStart):
        if run.start is not None:
            run.notes.append(f"Line {lineno}: a second run_start; it was ignored.")
            return
        run.start = record
        if record.format_version > FORMAT_VERSION:
            run.notes.append(
                f"This run was written in trajectory format {record.format_version}; this "
                f"deskpilot reads format {FORMAT_VERSION} and ignores fields it does not know."
            )
    elif isinstance(record, RunEnd):
        if run.end is not None:
            run.notes.append(f"Line {lineno}: a second run_end; it was ignored.")
            return
        run.end = record
    elif isinstance(record, DesktopRestart):
        run.restarts.append(record)
    elif isinstance(record, ToolStepDown):
        run.step_downs.append(record)
    elif isinstance(record, Takeover):
        run.takeovers.append(record)


def _read_checks(run: Run) -> None:
    path = _inside(run.run_dir, CHECKS_FILE)
    if path is None:
        if (run.run_dir / CHECKS_FILE).is_symlink():
            run.notes.append(f"{CHECKS_FILE} leads out of the run directory; it was ignored.")
        return
    if not path.exists():
        return
    try:
        if not path.is_file() or path.stat().st_size > MAX_CHECKS_BYTES:
            raise ValueError("not a regular file of at most 1 MiB")
        raw = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        if not isinstance(raw, list):
            raise ValueError("not a JSON list")
    except (OSError, ValueError, RecursionError):
        run.notes.append(f"{CHECKS_FILE} could not be read; it was ignored.")
        return
    for i, item in enumerate(raw):
        try:
            run.checks.append(Check.model_validate(item))
        except (ValidationError, RecursionError):
            run.notes.append(f"Entry {i + 1} of {CHECKS_FILE} could not be read; it was ignored.")


def read_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read a run directory leniently: the one reader of the trajectory format.

    Every line is validated against :mod:`deskpilot.agent.records`. Content never makes it
    raise: a line that is not JSON, not an object, or whose fields have the wrong type or
    range becomes an :class:`Unreadable` entry with the reason (in :attr:`Run.unreadable`,
    and in :attr:`Run.steps` at its place when it claims to be a step); a ``run_start`` or
    ``run_end`` with bad fields is kept without them (noted); unknown line types are ignored
    (noted); a missing ``run_end`` gives ``end=None``; a half-written last line sets
    ``truncated``. The rules are in ``docs/trajectory-format.md``, "Reading".

    Args:
        run_dir: a directory a run wrote (``deskpilot-runs/<timestamp>-<task>/``).

    Returns:
        A :class:`Run`.

    Raises:
        ConfigError: ``run_dir`` is not a directory, or holds no regular ``trajectory.jsonl``
            inside it (a symlink leading out of the directory is refused).
    """
    given = Path(run_dir).expanduser()
    if not given.is_dir():
        raise ConfigError(
            f"{given} is not a directory; pass the run directory a deskpilot run wrote "
            "(e.g. deskpilot-runs/<timestamp>-<task>/)."
        )
    base = given.resolve()
    traj = _inside(base, TRAJECTORY_FILE)
    if traj is None:
        raise ConfigError(
            f"{given}/{TRAJECTORY_FILE} leads out of the run directory; refused (a run "
            "directory's files must lie inside it)."
        )
    if not traj.is_file():
        raise ConfigError(
            f"{given} has no {TRAJECTORY_FILE}, so it is not a deskpilot run directory; pass "
            "the directory a run wrote (e.g. deskpilot-runs/<timestamp>-<task>/)."
        )
    run = Run(run_dir=base)
    try:
        with traj.open("rb") as fh:
            pending: tuple[int, bytes | None] | None = None
            for lineno, (raw, ended) in enumerate(_lines(fh), 1):
                if pending is not None:
                    _read_line(run, pending[0], pending[1], last=False)
                pending = (lineno, raw)
                if not ended:  # only the last line can lack its newline
                    break
            if pending is not None:
                _read_line(run, pending[0], pending[1], last=True)
    except OSError as exc:
        run.notes.append(f"{TRAJECTORY_FILE} could not be read to the end: {exc}.")
    _read_checks(run)
    return run


__all__ = ["Run", "Unreadable", "read_run"]
