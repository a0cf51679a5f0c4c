"""``OUT/index.html``: every task's verdict, evidence and report link, sortable; and the
terminal summary table.

Python computes the rows (:class:`IndexPage`), ``templates/index.html.j2`` lays them out.
Jinja2 renders with autoescaping ON (every value from ``results.jsonl``, ``settings.json``
and the task files is untrusted and reaches the page escaped). The page carries a
Content-Security-Policy like the run report's (``default-src 'none'``), allowing only its
own inline stylesheet and its one inline script (``templates/index.js``: sorting by status,
score, steps, cost and time) by their SHA-256 hashes; images and connections are refused.
A report link is only made from a relative path inside the output directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..agent.runfiles import replace_file
from ..errors import DeskpilotError
from ..terminal import one_line
from .results import HarnessSettings, SuiteSummary, TaskResult, summarize

__all__ = ["INDEX_FILE", "IndexPage", "IndexRow", "build_index", "summary_table", "write_index"]

INDEX_FILE = "index.html"
_TEMPLATES = "templates"
_EVIDENCE_CHARS = 4000


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One table row: a task and trial's verdict (strings as they will be escaped)."""

    id: str
    trial_label: str
    status: str
    score: float
    steps: int
    cost: float
    duration_s: float
    evidence: str
    reason: str
    instruction: str
    report: str | None
    """A URL path relative to the page, or None."""


@dataclass(slots=True)
class IndexPage:
    """What the template shows."""

    title: str
    subtitle: str
    totals: list[tuple[str, str]] = field(default_factory=list)
    settings: list[tuple[str, str]] = field(default_factory=list)
    rows: list[IndexRow] = field(default_factory=list)
    footer: str = ""


def safe_link(rel: str | None) -> str | None:
    """``rel`` as a URL path when it is a relative path staying inside the output
    directory (no ``..``, no scheme, no absolute path), else None."""
    if not rel or "\\" in rel or ":" in rel.split("/", 1)[0]:
        return None
    p = PurePosixPath(rel)
    if p.is_absolute() or any(part in ("..", "") for part in p.parts) or rel.startswith("/"):
        return None
    return quote(str(p), safe="/")


def _totals(s: SuiteSummary) -> list[tuple[str, str]]:
    c = s.counts
    out = [
        ("tasks", str(s.tasks)),
        ("mean score", f"{s.mean_score:.3f}"),
        (f"pass@{s.trials}" if s.trials > 1 else "passed", f"{s.pass_at_k:.1%}"),
        ("pass / fail", f"{c['pass']} / {c['fail']}"),
        ("unsupported / error", f"{c['unsupported']} / {c['error']}"),
        ("steps", f"{s.steps:,}"),
        ("tokens", f"{s.tokens:,}"),
        ("cost", f"${s.cost:.4f}"),
        ("median set-up + check", f"{s.median_overhead_s:.2f} s"),
    ]
    if s.trials > 1:
        out.insert(3, ("pass rate (all trials)", f"{s.pass_rate:.1%}"))
    return out


def settings_rows(settings: HarnessSettings | None) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of the settings, for the page and the terminal."""
    if settings is None:
        return [("settings", "settings.json is missing or unreadable")]
    d = settings.model_dump()
    d["screen"] = "x".join(str(v) for v in settings.screen)
    d["tool_types"] = ", ".join(settings.tool_types) or "-"
    d["cache"] = ", ".join(settings.cache) if settings.cache else "none"
    return [(k, "-" if v is None or v == "" else str(v)) for k, v in d.items()]


def build_index(
    results: Sequence[TaskResult], settings: HarnessSettings | None, *, title: str | None = None
) -> IndexPage:
    """The page data for ``results`` (latest line per task and trial) and ``settings``."""
    summary = summarize(results)
    trials = summary.trials
    rows = [
        IndexRow(
            id=r.id,
            trial_label=f"trial {r.trial}" if trials > 1 else "",
            status=r.status,
            score=r.score,
            steps=r.steps,
            cost=r.cost,
            duration_s=r.duration_s,
            evidence=r.evidence[:_EVIDENCE_CHARS],
            reason=r.reason or "",
            instruction=one_line(r.instruction, 300),
            report=safe_link(r.report),
        )
        for r in results
    ]
    suite = settings.suite if settings is not None else "?"
    mode = settings.mode if settings is not None else "?"
    model = settings.model if settings is not None else "?"
    from .. import __version__

    return IndexPage(
        title=title or f"deskpilot eval: {suite}",
        subtitle=f"{len(rows)} results, mode {mode}, model {model}",
        totals=_totals(summary),
        settings=settings_rows(settings),
        rows=rows,
        footer=f"Written by deskpilot {__version__}. Sort by clicking a column's name.",
    )


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(_TEMPLATES, name).read_text("utf-8")


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


_ENV: Environment | None = None


def render_index(page: IndexPage) -> str:
    """The HTML text of ``page`` (autoescaped; CSP with the stylesheet's and script's hashes)."""
    global _ENV
    if _ENV is None:
        _ENV = Environment(
            loader=PackageLoader(__package__ or "deskpilot.eval", _TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    css, js = _asset("index.css"), _asset("index.js")
    csp = (
        f"default-src 'none'; style-src 'sha256-{_sha256(css)}'; "
        f"script-src 'sha256-{_sha256(js)}'; base-uri 'none'; form-action 'none'"
    )
    return _ENV.get_template("index.html.j2").render(page=page, css=css, js=js, csp=csp)


def write_index(
    out: str | os.PathLike[str],
    results: Sequence[TaskResult],
    settings: HarnessSettings | None,
) -> Path:
    """Write ``OUT/index.html`` (a new file renamed over the old one, mode ``0600``);
    returns its path.

    Raises:
        DeskpilotError: it could not be written.
    """
    target = Path(out) / INDEX_FILE
    data = render_index(build_index(results, settings)).encode("utf-8")
    try:  # a new file renamed over the name: a planted symlink is replaced, never followed
        return replace_file(Path(out), INDEX_FILE, data)
    except (OSError, ValueError) as exc:
        raise DeskpilotError(f"Could not write {target}: {exc}.") from exc


def summary_table(results: Sequence[TaskResult], *, width: int = 100) -> str:
    """The terminal summary: one line per task and trial, then the totals."""
    summary = summarize(results)
    id_w = min(40, max([4, *(len(r.id) for r in results)]))
    lines = [f"{'task':<{id_w}}  {'status':<11} {'score':>5} {'steps':>5} {'cost':>8} {'time':>7}"]
    for r in results:
        tid = r.id if len(r.id) <= id_w else r.id[: id_w - 1] + "…"
        if summary.trials > 1:
            tid = f"{tid}#{r.trial}"
        note = one_line(r.reason or r.evidence.split("\n", 1)[0], max(10, width - id_w - 44))
        lines.append(
            f"{one_line(tid, id_w + 4):<{id_w}}  {r.status:<11} {r.score:5.2f} {r.steps:5d} "
            f"${r.cost:7.4f} {r.duration_s:6.1f}s  {note}"
        )
    c = summary.counts
    k = f"pass@{summary.trials}" if summary.trials > 1 else "passed"
    lines.append(
        f"{summary.tasks} tasks: {c['pass']} pass, {c['fail']} fail, {c['unsupported']} "
        f"unsupported, {c['error']} error; mean score {summary.mean_score:.3f}, {k} "
        f"{summary.pass_at_k:.1%}; {summary.steps} steps, {summary.tokens:,} tokens, "
        f"${summary.cost:.4f}; median set-up + check {summary.median_overhead_s:.2f} s"
    )
    return "\n".join(lines)
