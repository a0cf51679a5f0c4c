"""The typed records of a run directory: every line of ``trajectory.jsonl`` and ``checks.json``.

This module is the one owner of the trajectory format (documented in
``docs/trajectory-format.md``; ``FORMAT_VERSION`` is the version it describes). The agent
builds its lines with the builders below (:func:`run_start_record`, :func:`action_record`,
:func:`response_record`, :func:`step_record`, :func:`run_end_record`), the
:class:`~deskpilot.agent.trajectory.TrajectoryWriter` writes them, and the one lenient reader
(:func:`deskpilot.agent.trajectory.read_run`) validates every line it reads against them, so
the report, replay, the CLI and anything later see typed values or an explicit
"unreadable" entry, never an unchecked dict.

Units: every ``*_s`` field and ``t`` are seconds (``t``: since the run's writer was created);
token counts are tokens; ``cost`` is US dollars; sizes are ``[width, height]`` in pixels
(``native_size``: the desktop's pixels, ``model_size``: the pixels of the screenshots the
model receives, in which its coordinates are given).

Records are pydantic models (https://docs.pydantic.dev/latest/concepts/models/). Attribute
access is the API; ``record.model_dump(mode="json")`` is exactly the JSON object written
to disk (dict access on the records is not provided).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from ..computer_use.specs import ToolGroup
    from ..prompt import ToolCall, ToolResult
    from ..response import APIResponse, Usage

__all__ = [
    "FORMAT_VERSION",
    "IMAGE_SUFFIXES",
    "ActionRecord",
    "ActionTimings",
    "Check",
    "Cumulative",
    "DesktopRestart",
    "Record",
    "ResponseRecord",
    "RunEnd",
    "RunStart",
    "StepRecord",
    "StepTimings",
    "Takeover",
    "TokenUsage",
    "ToolStepDown",
    "ToolVersions",
    "action_record",
    "describe_errors",
    "parse_record",
    "response_record",
    "run_end_record",
    "run_start_record",
    "safe_image_path",
    "safe_relative_path",
    "step_record",
    "token_usage",
    "tool_step_down_record",
]

FORMAT_VERSION = 1
"""The trajectory format version this module describes (``run_start.format_version``).

Readers accept lines of any version: fields they do not know are ignored; a run written by a
newer version is read with a note (see ``docs/trajectory-format.md``, "Versioning")."""

# The run directory's file names (docs/trajectory-format.md).
TRAJECTORY_FILE = "trajectory.jsonl"
SCREENSHOT_DIR = "screenshots"
CHECKS_FILE = "checks.json"
INITIAL_SCREENSHOT = f"{SCREENSHOT_DIR}/0000-initial.png"
MAX_LINE_BYTES = 64 * 1024 * 1024
"""Longest ``trajectory.jsonl`` line the reader decodes (bytes); longer lines are unreadable."""
MAX_CHECKS_BYTES = 1024 * 1024

MAX_TOKENS = 10**12
MAX_SECONDS = 1e9  # ~31 years: anything larger is not a duration deskpilot wrote
MAX_PIXELS_SIDE = 100_000

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
"""A duration or a timestamp relative to the run's start, in seconds (finite, >= 0)."""
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
Dollars = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
Pixels = Annotated[int, Field(ge=1, le=MAX_PIXELS_SIDE)]
Size = tuple[Pixels, Pixels]
"""``[width, height]`` in pixels (JSON: a two-element array)."""

_UNSAFE_PATH = re.compile(r"(^/|^~|\\|\x00|(^|/)\.\.(/|$))")


def safe_relative_path(value: str | None) -> str | None:
    """``value`` when it is a path that stays inside the run directory (relative, POSIX
    separators, no ``..`` component, no leading ``/`` or ``~``), or None for None.

    Raises:
        ValueError: the path is refused (the message says why).
    """
    if value is None:
        return None
    if not value or len(value) > 1024 or _UNSAFE_PATH.search(value):
        raise ValueError(
            f"the path {value[:80]!r} is refused: record paths are relative to the run "
            "directory and may not contain '..', a backslash or a leading '/'"
        )
    return value


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
"""The file name endings a screenshot may have (the report links screenshots by name, and a
browser opens a file by its ending: a PNG named ``.html`` would open as a page)."""


def safe_image_path(value: str | None) -> str | None:
    """``value`` when it is a safe relative path (:func:`safe_relative_path`) ending in one of
    :data:`IMAGE_SUFFIXES` (any case), or None for None.

    Raises:
        ValueError: the path is refused (the message says why).
    """
    value = safe_relative_path(value)
    if value is not None and not value.lower().endswith(IMAGE_SUFFIXES):
        raise ValueError(
            f"the screenshot name {value[:80]!r} is refused: a screenshot's name ends in "
            f"{', '.join(IMAGE_SUFFIXES)} (a browser opens other names as other kinds of file)"
        )
    return value


class _Model(BaseModel):
    """Base of every record: unknown fields are ignored (newer writers may add fields)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TokenUsage(_Model):
    """Token counts (tokens). ``input_tokens`` excludes cache reads and writes, as the
    Anthropic Messages API reports it (https://docs.anthropic.com/en/api/messages)."""

    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0

    @property
    def total_tokens(self) -> int:
        """Input (incl. cache reads and writes) plus output tokens."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


class ToolVersions(_Model):
    """The Anthropic-defined tool types the run used (``None``: not used)."""

    computer: str | None = None
    editor: str | None = None
    bash: str | None = None


class RunStart(_Model):
    """The first line: what ran, on what, with which settings."""

    type: Literal["run_start"] = "run_start"
    t: Seconds | None = 0.0
    format_version: int = Field(default=FORMAT_VERSION, ge=1)
    task: str = ""
    model: str | None = None
    model_id: str | None = None
    provider: str | None = None
    native_size: Size | None = None
    model_size: Size | None = None
    image_tier: str | None = None
    tool_versions: ToolVersions = Field(default_factory=ToolVersions)
    custom_tools: list[str] = Field(default_factory=list)
    system_prompt: str = ""
    max_turns: int | None = Field(default=None, ge=1)
    keep_screenshots: int | None = Field(default=None, ge=1)
    prune_interval: int | None = Field(default=None, ge=1)
    apps: list[str] = Field(default_factory=list)
    started_at: str | None = None
    deskpilot_version: str | None = None
    initial_screenshot: str | None = None

    _check_path = field_validator("initial_screenshot")(safe_image_path)


class ActionTimings(_Model):
    """Seconds spent on one action: the input itself, waiting for the screen to settle, the
    screenshot, and all of it together (``total_s``; 0 for actions that did not run)."""

    action_s: Seconds = 0.0
    settle_s: Seconds = 0.0
    screenshot_s: Seconds = 0.0
    total_s: Seconds = 0.0


class ActionRecord(_Model):
    """One tool call of a step and its result.

    ``input`` is the tool input exactly as the model sent it (any JSON object, untrusted: it
    may hold values the executor refused); ``text`` is the text of the tool result the model
    received; ``screenshot`` is the relative path of the result's image, if any."""

    tool_use_id: str
    name: str
    toolset_name: str | None = None
    input: dict[str, JsonValue] = Field(default_factory=dict)
    approved: bool = True
    executed: bool = False
    is_error: bool = False
    text: str = ""
    screenshot: str | None = None
    timings: ActionTimings = Field(default_factory=ActionTimings)

    _check_path = field_validator("screenshot")(safe_image_path)

    @model_validator(mode="before")
    @classmethod
    def _executed_default(cls, data: Any) -> Any:
        # lines written before ``executed`` existed: an approved action was executed
        if isinstance(data, dict) and "executed" not in data:
            return {**data, "executed": data.get("approved", True) is True}
        return data


class ResponseRecord(_Model):
    """The model's answer of one step (``content``: Messages API content blocks as JSON
    objects, https://docs.anthropic.com/en/api/messages; empty on an API error)."""

    content: list[dict[str, JsonValue]] = Field(default_factory=list)
    stop_reason: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost: Dollars | None = None
    request_id: str | None = None
    latency_s: Seconds | None = None
    attempts: int | None = Field(default=None, ge=0, le=10_000)
    images_in_request: int | None = Field(default=None, ge=0, le=1_000_000)
    is_error: bool = False
    error_message: str | None = None


class StepTimings(_Model):
    """Seconds of one step: the model call, the actions, the loop's own work, the whole."""

    model_s: Seconds = 0.0
    actions_s: Seconds = 0.0
    overhead_s: Seconds = 0.0
    step_s: Seconds = 0.0


class Cumulative(_Model):
    """Totals of the run up to and including this step."""

    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost: Dollars = 0.0


class StepRecord(_Model):
    """One model turn: the response, the actions run for it, timings and running totals."""

    type: Literal["step"] = "step"
    t: Seconds | None = None
    index: int = Field(ge=0, le=10_000_000)
    response: ResponseRecord
    actions: list[ActionRecord] = Field(default_factory=list)
    timings: StepTimings = Field(default_factory=StepTimings)
    cumulative: Cumulative = Field(default_factory=Cumulative)


class DesktopRestart(_Model):
    """The agent found the desktop dead during step ``step`` and restarted it (its state,
    open windows and files outside the scratch directory, was lost)."""

    type: Literal["desktop_restart"] = "desktop_restart"
    t: Seconds | None = None
    step: int = Field(default=0, ge=0, le=10_000_000)
    reason: str = ""
    old_display: str | None = None
    new_display: str | None = None
    tools_moved: list[str] = Field(default_factory=list)


class ToolStepDown(_Model):
    """The API rejected tool types during step ``step`` (a 400 naming them); the agent moved
    its executors from the ``before`` group to ``after`` (the next group of the one step-down
    function, :func:`deskpilot.computer_use.specs.step_down`) and sent the turn again."""

    type: Literal["tool_step_down"] = "tool_step_down"
    t: Seconds | None = None
    step: int = Field(default=0, ge=0, le=10_000_000)
    rejected: list[str] = Field(default_factory=list)
    before: ToolVersions = Field(default_factory=ToolVersions)
    after: ToolVersions = Field(default_factory=ToolVersions)


class Takeover(_Model):
    """A human held the input lease (``deskpilot ui``'s "Take over") from ``start`` to ``end``
    (seconds, like ``t``) during step ``step``; ``message`` is what they wrote on handing back,
    ``screenshot`` the fresh screenshot the model then received
    (:mod:`deskpilot.agent.control`)."""

    type: Literal["takeover"] = "takeover"
    t: Seconds | None = None
    step: int = Field(default=0, ge=0, le=10_000_000)
    start: Seconds = 0.0
    end: Seconds = 0.0
    duration_s: Seconds = 0.0
    message: str = ""
    screenshot: str | None = None

    _check_path = field_validator("screenshot")(safe_image_path)


class RunEnd(_Model):
    """The last line, written however the run stopped (a run killed outright has none)."""

    type: Literal["run_end"] = "run_end"
    t: Seconds | None = None
    stop_reason: str = "error"
    final_text: str | None = None
    steps: int = Field(default=0, ge=0, le=10_000_000)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost: Dollars = 0.0
    ended_at: str | None = None
    error: str | None = None


class Check(_Model):
    """An outcome check made after the run by its caller (one entry of ``checks.json``)."""

    name: str
    ok: bool
    detail: str = ""


Record = Annotated[
    RunStart | StepRecord | RunEnd | DesktopRestart | ToolStepDown | Takeover,
    Field(discriminator="type"),
]
"""Any line of ``trajectory.jsonl``, told apart by its ``type``."""

_RECORD = TypeAdapter(Record)
_TAGS = frozenset({"run_start", "step", "run_end", "desktop_restart", "tool_step_down", "takeover"})


def parse_record(
    obj: Any,
) -> RunStart | StepRecord | RunEnd | DesktopRestart | ToolStepDown | Takeover:
    """Validate one decoded JSON line.

    Raises:
        pydantic.ValidationError: the line is not a record of a known ``type`` or a field has
            the wrong type or range (:func:`describe_errors` turns it into a sentence).
    """
    return _RECORD.validate_python(obj)


def describe_errors(exc: ValidationError, limit: int = 3) -> str:
    """A short sentence naming the fields that failed, e.g. ``response.usage.input_tokens:
    Input should be a valid integer (got 'lots')``."""
    parts = []
    errors = exc.errors(include_url=False)
    for err in errors[:limit]:
        loc_parts = list(err.get("loc", ()))
        if loc_parts and loc_parts[0] in _TAGS:  # the discriminated union's tag
            loc_parts = loc_parts[1:]
        loc = ".".join(str(p) for p in loc_parts)
        got = repr(err.get("input"))
        got = got if len(got) <= 40 else got[:37] + "..."
        parts.append(f"{loc or 'line'}: {err.get('msg', 'invalid')} (got {got})")
    more = len(errors) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# --- builders (the agent's side) -------------------------------------------------------------


def _seconds(value: float) -> float:
    """Seconds rounded to microseconds; anything not finite or negative becomes 0."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return 0.0
    return round(min(float(value), MAX_SECONDS), 6)


def token_usage(usage: Usage) -> TokenUsage:
    """The record of a :class:`~deskpilot.response.Usage`."""
    return TokenUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def action_record(
    call: ToolCall,
    result: ToolResult,
    *,
    approved: bool,
    timings: ActionTimings | Mapping[str, float] | None = None,
) -> ActionRecord:
    """The record of one tool call and its result.

    Args:
        call / result: the tool call and the result the model receives.
        approved: the approval callback allowed it (False also for calls never asked about:
            interrupted, halted, over budget).
        timings: seconds (``action_s``, ``settle_s``, ``screenshot_s``, ``total_s``) when the
            call ran; None when it did not run (``executed`` is then False).
    """
    executed = timings is not None and approved
    if timings is None:
        t = ActionTimings()
    elif isinstance(timings, ActionTimings):
        t = timings
    else:
        t = ActionTimings(**{k: _seconds(v) for k, v in timings.items() if k in _ACTION_KEYS})
    return ActionRecord(
        tool_use_id=call.id,
        name=call.name,
        toolset_name=call.toolset_name,
        input=call.arguments,
        approved=approved,
        executed=executed,
        is_error=result.is_error,
        text=result.text,
        screenshot=None,
        timings=t,
    )


_ACTION_KEYS = frozenset(ActionTimings.model_fields)


def response_record(response: APIResponse, images_in_request: int) -> ResponseRecord:
    """The record of a model response (``images_in_request``: screenshots in the request)."""
    content = response.content.to_anthropic()["content"] if response.content is not None else []
    return ResponseRecord(
        content=content,
        stop_reason=response.stop_reason,
        usage=token_usage(response.usage),
        cost=response.cost if response.cost is not None else None,
        request_id=response.request_id,
        latency_s=_seconds(response.latency_s) if response.latency_s is not None else None,
        attempts=response.attempts,
        images_in_request=images_in_request,
        is_error=response.is_error,
        error_message=response.error_message,
    )


def step_record(
    *,
    index: int,
    response: ResponseRecord,
    actions: list[ActionRecord],
    model_s: float,
    actions_s: float,
    step_s: float,
    usage: Usage,
    cost: float,
) -> StepRecord:
    """The record of step ``index`` (1-based); ``overhead_s`` is what the step took beyond
    the model call and the actions (seconds, never negative)."""
    return StepRecord(
        index=index,
        response=response,
        actions=actions,
        timings=StepTimings(
            model_s=_seconds(model_s),
            actions_s=_seconds(actions_s),
            overhead_s=_seconds(max(0.0, step_s - model_s - actions_s)),
            step_s=_seconds(step_s),
        ),
        cumulative=Cumulative(usage=token_usage(usage), cost=round(cost, 8)),
    )


def run_end_record(
    *,
    stop_reason: str | None,
    final_text: str | None,
    steps: int,
    usage: Usage,
    cost: float,
    ended_at: str,
    error: str | None,
) -> RunEnd:
    """The ``run_end`` record (``stop_reason`` None is recorded as ``"error"``)."""
    return RunEnd(
        stop_reason=stop_reason or "error",
        final_text=final_text,
        steps=steps,
        usage=token_usage(usage),
        cost=round(cost, 8),
        ended_at=ended_at,
        error=error,
    )


def run_start_record(
    *,
    task: str,
    model: str | None,
    model_id: str | None,
    provider: str | None,
    native_size: Iterable[int] | None,
    model_size: Iterable[int] | None,
    image_tier: str | None,
    tool_types: Iterable[str],
    custom_tools: Iterable[str],
    system_prompt: str,
    max_turns: int,
    keep_screenshots: int | None,
    prune_interval: int,
    apps: Iterable[str],
    started_at: str,
    deskpilot_version: str,
    initial_screenshot: str | None = None,
) -> RunStart:
    """The ``run_start`` record.

    Args:
        tool_types: the ``type`` of every Anthropic-defined tool sent (``computer_*``,
            ``text_editor_*``, ``bash_*``); sorted into :class:`ToolVersions`.
        native_size / model_size: ``(width, height)`` in native / model-space pixels, or
            None without a computer.
    """
    versions = ToolVersions()
    for ttype in tool_types:
        if ttype.startswith("computer"):
            versions.computer = ttype
        elif ttype.startswith("text_editor"):
            versions.editor = ttype
        elif ttype.startswith("bash"):
            versions.bash = ttype
    native = tuple(int(v) for v in native_size) if native_size is not None else None
    shown = tuple(int(v) for v in model_size) if model_size is not None else None
    return RunStart.model_validate(
        {
            "t": 0.0,
            "task": task,
            "model": model,
            "model_id": model_id,
            "provider": provider,
            "native_size": native if native and all(native) else None,
            "model_size": shown if shown and all(shown) else None,
            "image_tier": image_tier,
            "tool_versions": versions,
            "custom_tools": list(custom_tools),
            "system_prompt": system_prompt,
            "max_turns": max_turns,
            "keep_screenshots": keep_screenshots,
            "prune_interval": prune_interval,
            "apps": list(apps),
            "started_at": started_at,
            "deskpilot_version": deskpilot_version,
            "initial_screenshot": initial_screenshot,
        }
    )


def tool_step_down_record(
    *, step: int, rejected: Iterable[str], before: ToolGroup, after: ToolGroup
) -> ToolStepDown:
    """The record of a step-down of the agent's tools during step ``step``."""
    return ToolStepDown(
        step=step,
        rejected=sorted(rejected),
        before=ToolVersions(**before.as_dict()),
        after=ToolVersions(**after.as_dict()),
    )
