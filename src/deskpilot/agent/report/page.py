"""The HTML page of a run: Python computes what to show, ``templates/report.html.j2`` lays it out.

The template is rendered by Jinja2 with autoescaping ON
(https://jinja.palletsprojects.com/en/stable/api/#autoescaping): every value from the
trajectory (task, texts, tool inputs and results, sizes, indices, reasons) reaches the page
escaped. The page carries a Content-Security-Policy (``default-src 'none'``; images only
from ``data:``; the one inline stylesheet allowed by its SHA-256 hash; no script at all,
https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy). It is
self-contained: screenshots are embedded once each as WebP previews
(:mod:`~deskpilot.agent.report.previews`) linking to the PNG files beside the page, and
shown through SVG ``<use>`` with the marks drawn over them in model-space pixels.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..records import ActionRecord, RunEnd, StepRecord, StepTimings, TokenUsage
from ..trajectory import TRAJECTORY_FILE, Run, Unreadable
from .marks import Shape, action_summary, shapes, short, zoom_box
from .previews import Preview, Previews
from .scenes import Scene, scenes

__all__ = ["Page", "build_page", "render_page"]

_TEMPLATES = "templates"


@dataclass(slots=True)
class Inset:
    """A magnified crop around the marks: SVG viewBox, corner of the figure, shapes."""

    viewbox: str
    corner: str
    shapes: list[Shape]


@dataclass(slots=True)
class Figure:
    """One screenshot with marks: ``preview`` is None when the file is missing or unreadable
    (``missing`` says why)."""

    rel: str
    preview: Preview | None
    shapes: list[Shape] = field(default_factory=list)
    inset: Inset | None = None
    caption: str = ""
    css: str = ""
    missing: str = ""


@dataclass(slots=True)
class ActionView:
    summary: str
    error: bool
    declined: bool
    timing: str
    command: str | None
    tool_name: str
    raw_input: str
    typed: str | None
    result: str
    figures: list[Figure]
    shots_css: str
    note: str | None


@dataclass(slots=True)
class Block:
    """A piece of a step in reading order: ``text``, ``thinking``, ``action`` or
    ``pending`` (a tool_use without a recorded action)."""

    kind: str
    text: str = ""
    detail: str = ""
    action: ActionView | None = None


@dataclass(slots=True)
class StepView:
    index: int
    unreadable: bool
    error: bool
    any_action_error: bool
    meta: list[str]
    bar: list[tuple[str, str, str]]  # (class, x %, width %)
    error_message: str | None
    blocks: list[Block]


@dataclass(slots=True)
class UnreadableView:
    line: int
    index: int | None
    reason: str
    unreadable: bool = True


@dataclass(slots=True)
class FilmItem:
    target: str  # the step anchor
    label: str
    bad: bool
    figure: Figure


@dataclass(slots=True)
class Page:
    """Everything the template shows (strings are plain text: the template escapes them)."""

    title: str
    model: str
    model_id: str | None
    provider: str
    screen: str | None
    started_at: str | None
    task: str
    totals: list[tuple[str, str]]
    usage_line: str
    answer: tuple[str, str] | None  # (banner class, text)
    banners: list[tuple[str, str, str]]  # (class, bold part, rest)
    checks: list[tuple[bool, str, str]]
    film: list[FilmItem]
    system_prompt: str | None
    tool_versions: str
    steps: list[StepView | UnreadableView]
    result: tuple[str, str, str] | None  # (class, stop reason, error)
    final_text: str | None
    no_end: str | None
    last_screen: Figure | None
    footer_version: str
    footer_source: str
    previews: Previews
    animations: list[str] = field(default_factory=list)


# --- formatting ------------------------------------------------------------------------------


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _fmt_cost(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def _usage_line(u: TokenUsage) -> str:
    parts = [f"in {u.input_tokens:,}", f"out {u.output_tokens:,}"]
    if u.cache_read_tokens:
        parts.append(f"cache read {u.cache_read_tokens:,}")
    if u.cache_write_tokens:
        parts.append(f"cache write {u.cache_write_tokens:,}")
    return " · ".join(parts)


def _outcome_class(end: RunEnd) -> str:
    """ok (the model ended it), err (an error), warn (a limit, budget or interrupt)."""
    if end.error or end.stop_reason in ("api_error", "error"):
        return "err"
    return "ok" if end.stop_reason == "end_turn" else "warn"


def _bar(t: StepTimings) -> list[tuple[str, str, str]]:
    if t.step_s <= 0:
        return []
    out, x = [], 0.0
    for value, cls in ((t.model_s, "m"), (t.actions_s, "a"), (t.overhead_s, "o")):
        width = min(100.0 - x, 100.0 * value / t.step_s)
        if width > 0:
            out.append((cls, f"{x:.1f}", f"{width:.1f}"))
            x += width
    return out


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


# --- building --------------------------------------------------------------------------------


class _Builder:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.scenes = list(scenes(run))
        rels = [run.initial_screenshot] + [r for s in self.scenes for r in (s.before, s.after)]
        self.previews = Previews(run)
        self.previews.prepare(list(dict.fromkeys(r for r in rels if r)))

    def figure(
        self, rel: str, marks_of: Scene | None = None, *, caption: str = "", css: str = ""
    ) -> Figure:
        preview = self.previews.get(rel)
        fig = Figure(rel=rel, preview=preview, caption=caption, css=css)
        if preview is None:
            fig.missing = self.previews.errors.get(rel, f"{rel} is missing")
            return fig
        marks = marks_of.marks if marks_of is not None else []
        w, h = preview.width, preview.height
        fig.shapes = shapes(marks, w, h)
        box = zoom_box(marks, w, h) if marks_of is not None else None
        if box is not None and self.previews.has_detail(rel, box):
            x0, y0, zw, zh = box
            # the magnifier goes in the corner away from the marks so it never hides them
            side = "l" if x0 + zw / 2 > w / 2 else "r"
            edge = "t" if y0 + zh / 2 > h / 2 else "b"
            fig.inset = Inset(
                f"{x0:.0f} {y0:.0f} {zw:.0f} {zh:.0f}",
                edge + side,
                shapes(marks, zw, zh, unit=zw / 420.0, labels=False),
            )
        return fig

    def action(self, scene: Scene) -> ActionView:
        a: ActionRecord = scene.action
        t = a.timings
        timing = " · ".join(
            f"{label} {_fmt_s(getattr(t, key))}"
            for key, label in (
                ("action_s", "action"),
                ("settle_s", "settle"),
                ("screenshot_s", "screenshot"),
                ("total_s", "total"),
            )
            if key in t.model_fields_set
        )
        command = a.input.get("command")
        typed = a.input.get("text")
        figures: list[Figure] = []
        if scene.marks and scene.before:
            figures.append(
                self.figure(
                    scene.before,
                    scene,
                    caption="Before: where the action was aimed",
                    css="before",
                )
            )
        if scene.after and scene.unchanged and not scene.marks:
            figures.append(
                self.figure(scene.after, caption="After: the screen did not change", css="small")
            )
        elif scene.after:
            caption = "After: no visible change" if scene.unchanged else "After"
            figures.append(self.figure(scene.after, caption=caption))
        note = "(no screenshot to draw the action on)" if scene.marks and not scene.before else None
        shots_css = "shots" if len(figures) == 2 else "shots one"
        if figures and figures[0].css == "small":
            shots_css = "shots small"
        return ActionView(
            summary=action_summary(a),
            error=a.is_error,
            declined=not a.approved,
            timing=timing,
            command=command if scene.name == "bash" and isinstance(command, str) else None,
            tool_name=a.name,
            raw_input=_json(a.input),
            typed=typed if scene.name == "type" and isinstance(typed, str) else None,
            result=a.text,
            figures=figures,
            shots_css=shots_css,
            note=note,
        )

    def step(self, step: StepRecord, step_scenes: list[Scene]) -> StepView:
        resp = step.response
        meta = [
            f"t = {_fmt_s(step.t)}",
            f"model {_fmt_s(step.timings.model_s)}",
            f"actions {_fmt_s(step.timings.actions_s)}",
            f"overhead {_fmt_s(step.timings.overhead_s)}",
            _usage_line(resp.usage),
            _fmt_cost(resp.cost),
            f"stop {resp.stop_reason}",
        ]
        if resp.images_in_request is not None:
            n = resp.images_in_request
            meta.append(f"{n} screenshot{'' if n == 1 else 's'} sent")
        if resp.attempts not in (1, None):
            meta.append(f"{resp.attempts} attempts")
        by_id = {s.action.tool_use_id: s for s in step_scenes}
        shown: set[int] = set()
        blocks: list[Block] = []
        for block in resp.content:
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                blocks.append(Block("text", text=str(block["text"])))
            elif kind == "thinking":
                blocks.append(Block("thinking", text=str(block.get("thinking", ""))))
            elif kind == "tool_use":
                scene = by_id.get(str(block.get("id")))
                if scene is not None and id(scene) not in shown:
                    blocks.append(Block("action", action=self.action(scene)))
                    shown.add(id(scene))
                else:
                    blocks.append(
                        Block(
                            "pending", text=str(block.get("name")), detail=_json(block.get("input"))
                        )
                    )
        for scene in step_scenes:
            if id(scene) not in shown:
                blocks.append(Block("action", action=self.action(scene)))
        return StepView(
            index=step.index,
            unreadable=False,
            error=resp.is_error,
            any_action_error=any(s.action.is_error for s in step_scenes),
            meta=meta,
            bar=_bar(step.timings),
            error_message=(resp.error_message or "(no message)") if resp.is_error else None,
            blocks=blocks,
        )


def build_page(run: Run) -> Page:
    """Compute everything the page shows (and encode the screenshot previews).

    Args:
        run: a run read by :func:`~deskpilot.agent.trajectory.read_run`.
    """
    b = _Builder(run)
    start, end = run.start, run.end
    readable = run.readable_steps
    last_step = readable[-1] if readable else None
    usage = end.usage if end is not None else (last_step.cumulative.usage if last_step else None)
    cost = end.cost if end is not None else (last_step.cumulative.cost if last_step else None)
    elapsed = end.t if end is not None else (last_step.t if last_step else None)
    task = start.task if start is not None else "(no readable run_start line: the task is unknown)"
    screen = None
    if start is not None and start.native_size:
        (nw, nh), ms = start.native_size, start.model_size
        screen = f"{nw}×{nh}" + (f" (model sees {ms[0]}×{ms[1]})" if ms else "")
    banners: list[tuple[str, str, str]] = []
    if end is None:
        banners.append(
            (
                "warn",
                "This run has no run_end record",
                f": it died or is still running. Showing the {len(readable)} step(s) that "
                "were completed.",
            )
        )
    elif end.error:
        banners.append(
            ("err", f"The run stopped with an error ({end.stop_reason}):", f" {end.error}")
        )
    for r in run.restarts:
        banners.append(("warn", f"The desktop was restarted during step {r.step}", f": {r.reason}"))
    for tk in run.takeovers:
        said = f"; they wrote: {short(tk.message, 300)!r}" if tk.message else "; no message"
        when = (
            f"at {_fmt_s(tk.start)}, during step {tk.step}" if tk.step else f"at {_fmt_s(tk.start)}"
        )
        banners.append(("warn", f"The user took over {when} for {_fmt_s(tk.duration_s)}", said))
    banners.extend(("warn", "", problem) for problem in run.problems)

    by_step: dict[int, list[Scene]] = {}
    for s in b.scenes:
        by_step.setdefault(id(s.step), []).append(s)
    film: list[FilmItem] = []
    first = next((f"step-{s.index}" for s in readable), "steps")
    if run.initial_screenshot:
        film.append(FilmItem(first, "start", False, b.figure(run.initial_screenshot)))
    steps: list[StepView | UnreadableView] = []
    for entry in run.steps:
        if isinstance(entry, Unreadable):
            steps.append(UnreadableView(entry.line, entry.index, entry.reason))
            continue
        step_scenes = by_step.get(id(entry), [])
        shots = [s.after for s in step_scenes if s.after]
        if shots:
            bad = entry.response.is_error or any(s.action.is_error for s in step_scenes)
            film.append(
                FilmItem(f"step-{entry.index}", f"step {entry.index}", bad, b.figure(shots[-1]))
            )
        steps.append(b.step(entry, step_scenes))
    last_rel = next((s.after for s in reversed(b.scenes) if s.after), None)
    return Page(
        title=f"deskpilot · {short(task, 70)}",
        model=(start.model if start else None) or "?",
        model_id=start.model_id if start else None,
        provider=(start.provider if start else None) or "?",
        screen=screen,
        started_at=start.started_at if start else None,
        task=task,
        totals=[
            ("steps", str(len(readable))),
            ("actions", str(sum(len(s.actions) for s in readable))),
            ("time", _fmt_s(elapsed)),
            ("tokens", f"{usage.total_tokens:,}" if usage else "–"),
            ("cost", _fmt_cost(cost)),
            ("stop reason", end.stop_reason if end else "none"),
        ],
        usage_line=_usage_line(usage or TokenUsage()),
        answer=(_outcome_class(end), end.final_text) if end and end.final_text else None,
        banners=banners,
        checks=[(c.ok, c.name, c.detail) for c in run.checks],
        film=film,
        system_prompt=start.system_prompt if start and start.system_prompt else None,
        tool_versions=json.dumps(start.tool_versions.model_dump() if start else {}, indent=2),
        steps=steps,
        result=(_outcome_class(end), end.stop_reason, end.error or "") if end else None,
        final_text=end.final_text if end else None,
        no_end=None if end else "no run_end (the run died or is still running).",
        last_screen=b.figure(last_rel, caption="The last screen.") if last_rel else None,
        footer_version=(start.deskpilot_version if start else None) or "",
        footer_source=f"{run.run_dir.name}/{TRAJECTORY_FILE}",
        previews=b.previews,
    )


# --- rendering -------------------------------------------------------------------------------


def _css() -> str:
    return resources.files(__package__).joinpath(_TEMPLATES, "report.css").read_text("utf-8")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader(__package__ or "deskpilot.agent.report", _TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["urlpath"] = lambda rel: quote(str(rel), safe="/")
    return env


_ENV: Environment | None = None


def render_page(page: Page) -> str:
    """The HTML text of ``page`` (autoescaped template, CSP with the stylesheet's hash)."""
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    css = _css()
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    csp = (
        "default-src 'none'; img-src data:; "
        f"style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )
    return _ENV.get_template("report.html.j2").render(page=page, css=css, csp=csp)
