"""The computer-server protocol: one typed owner of every message ``deskpilot serve`` speaks.

A client sends ``{"id", "method", "params"}`` and gets ``{"id", "result"}`` or ``{"id",
"error": {"code", "message"}}`` (over a WebSocket text frame, or as the body of ``POST
/v1/<method>``). This module holds the envelope, the parameter and result model of each
method (:data:`METHODS`), the JSON form of a :class:`~deskpilot.prompt.ToolResult`
(:class:`ToolResultWire`: text and images, images as base64 with their media type, exactly
the parts the local executors produce) and the error codes (:data:`ERROR_CODES`). The server
(:mod:`deskpilot.server`) and the client (:mod:`deskpilot.remote.client`) import these
models; nobody builds a message by hand. The page is ``docs/computer-server.md``.

Versioning: :data:`PROTOCOL_VERSION` is an integer bumped on any incompatible change; a
client says which it speaks in ``hello`` and the server refuses another one with
``version_mismatch``. New methods and new optional fields do not bump it; readers ignore
result fields they do not know (results are read leniently, requests strictly).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..desktop.base import MAX_FILE_BYTES as HOST_MAX_FILE_BYTES
from ..errors import ConfigError
from ..prompt import Image, Text, ToolCall, ToolResult
from .option import DEFAULT_PORT, TOKEN_ENV

__all__ = [
    "DEFAULT_PORT",
    "ERROR_CODES",
    "MAX_FILE_BYTES",
    "MAX_MESSAGE_BYTES",
    "METHODS",
    "PROTOCOL_VERSION",
    "TOKEN_ENV",
    "CallWire",
    "ClickParams",
    "CloseSessionParams",
    "CommandResult",
    "ComputerOptions",
    "DragParams",
    "ErrorBody",
    "ErrorCode",
    "FileResult",
    "GetFileParams",
    "HealthResult",
    "HelloParams",
    "HelloResult",
    "HoldKeyParams",
    "KeyParams",
    "MouseButtonParams",
    "MoveParams",
    "PointResult",
    "PutFileParams",
    "Reply",
    "Request",
    "RunCommandParams",
    "ScreenshotParams",
    "ScreenshotResult",
    "ScrollParams",
    "SettledResult",
    "ToolParams",
    "ToolResultWire",
    "TypeTextParams",
    "WaitSettledParams",
    "b64decode",
    "encode_reply",
    "error_reply",
    "guess_id",
    "loads",
    "parse_request",
    "valid_id",
]

PROTOCOL_VERSION = 1
"""The protocol's version (an integer, bumped on incompatible changes)."""

MAX_FILE_BYTES = HOST_MAX_FILE_BYTES
"""The largest file ``put_file``/``get_file`` move in one message (64 MiB)."""

MAX_MESSAGE_BYTES = 96 * 2**20
"""The largest message either side accepts by default (a 64 MiB file in base64 fits)."""

ErrorCode = Literal[
    "bad_json",
    "bad_request",
    "unknown_method",
    "bad_params",
    "too_large",
    "unauthorized",
    "version_mismatch",
    "id_conflict",
    "desktop_error",
    "not_supported",
    "timeout",
    "internal",
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- the envelope -------------------------------------------------------------------------


class Request(_Strict):
    """One request: ``id`` (1-128 printable characters, unique per action: a request sent
    again with the same id gets the first one's reply and never runs twice), ``method`` (one
    of :data:`METHODS`) and its ``params`` object."""

    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    method: str
    params: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(_Lenient):
    """Why a request failed: a ``code`` of :data:`ERROR_CODES` and a sentence."""

    code: str
    message: str


class Reply(_Lenient):
    """One reply: the request's ``id`` (None when it could not be read) and either
    ``result`` (the method's result object) or ``error``."""

    id: str | None = None
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None


_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")
_ID_PREFIX = re.compile(rb'"id"\s*:\s*"([\x21\x23-\x5b\x5d-\x7e]{1,128})"')


def valid_id(rid: str) -> bool:
    """True when ``rid`` is a request id: 1-128 printable ASCII characters, no spaces."""
    return _ID_RE.fullmatch(rid) is not None


def guess_id(raw: bytes | str) -> str | None:
    """The request id found in the first 512 bytes of an unreadable message, or None."""
    head = raw[:512].encode("utf-8", "replace") if isinstance(raw, str) else raw[:512]
    found = _ID_PREFIX.search(head)
    return found.group(1).decode("ascii") if found else None


def loads(raw: bytes | str) -> Any:
    """``json.loads`` for untrusted text: nesting too deep for the parser (``[[[[...``,
    which makes it raise RecursionError) is a ValueError like any other unreadable JSON.

    Raises:
        ValueError: not JSON, not UTF-8, or nested too deeply.
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


def parse_request(raw: bytes | str) -> Request | Reply:
    """Read one request; an unreadable one becomes the error :class:`Reply` to send back
    (``bad_json`` or ``bad_request``, with the id when one could be found)."""
    try:
        data = loads(raw)
    except ValueError as exc:
        return error_reply(guess_id(raw), "bad_json", f"The message is not JSON ({exc}).")
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        rid = data.get("id") if isinstance(data, dict) else None
        return error_reply(
            rid if isinstance(rid, str) and valid_id(rid) else None,
            "bad_request",
            "A request is an object {id, method, params}: " + _explain(exc),
        )


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "the message"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts) + "."


def error_reply(rid: str | None, code: ErrorCode, message: str) -> Reply:
    """An error :class:`Reply` (``code`` from :data:`ERROR_CODES`, ``message`` a sentence)."""
    return Reply(id=rid, error=ErrorBody(code=code, message=message))


def encode_reply(reply: Reply) -> str:
    """The JSON text of ``reply`` (``result`` or ``error``, never both; pydantic's
    serializer, several times faster than ``json.dumps`` on a screenshot's base64)."""
    if reply.error is not None:
        return reply.model_dump_json(exclude={"result"})
    if reply.result is None:
        reply = reply.model_copy(update={"result": {}})
    return reply.model_dump_json(exclude={"error"})


def b64decode(text: str, what: str) -> bytes:
    """Strict base64 decoding; bad text raises ConfigError naming ``what``."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is not valid base64 ({exc}).") from exc


# --- tool calls and their results ---------------------------------------------------------


class CallWire(_Strict):
    """A tool call as the model sent it: ``id``, ``name``, ``input``, ``toolset_name``."""

    id: str
    name: str
    input: Any = None
    toolset_name: str | None = None

    @classmethod
    def of(cls, call: ToolCall) -> CallWire:
        return cls(id=call.id, name=call.name, input=call.arguments, toolset_name=call.toolset_name)

    def to_call(self) -> ToolCall:
        return ToolCall(self.id, self.name, self.input, toolset_name=self.toolset_name)


class ComputerOptions(_Strict):
    """The settings of a computer tool executor (``ComputerTool``'s keyword arguments)."""

    image_tier: Literal["legacy", "2576"] | None = None
    target_size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None = None
    enable_zoom: bool = True
    screenshot_format: Literal["png", "jpeg", "webp"] = "png"
    screenshot_quality: Annotated[int, Field(ge=1, le=100)] = 80
    screenshot_after_action: bool = True
    settle: bool = True
    settle_timeout_s: Annotated[float, Field(ge=0, le=60)] = 2.0


class ToolParams(_Strict):
    """``tool``: run one whole tool call on the server's desktop and host.

    ``kind`` says which executor (``computer``, ``bash``, ``editor``) at which ``version``
    (a tool type of the tool table); ``session`` names the server-side bash shell or editor
    history to use (created on first use); ``quiet`` runs a computer action without its
    screenshot (``execute_quiet``); ``options`` configure the computer executor.
    """

    kind: Literal["computer", "bash", "editor"]
    version: str
    call: CallWire
    session: Annotated[str, Field(min_length=1, max_length=128)] = "default"
    quiet: bool = False
    options: ComputerOptions = Field(default_factory=ComputerOptions)


class _TextPart(_Lenient):
    type: Literal["text"]
    text: str


class _ImagePart(_Lenient):
    type: Literal["image"]
    media_type: str
    data: str = ""  # base64
    raw: bytes | None = None  # the bytes of a binary frame (deskpilot.remote.frames)


class ToolResultWire(_Lenient):
    """A :class:`~deskpilot.prompt.ToolResult` in JSON: ``content`` is the text, or a list
    of ``{"type": "text", "text"}`` and ``{"type": "image", "media_type", "data"}`` (base64)
    parts in the executor's order; ``timings`` are the computer executor's
    ``last_timings`` (seconds), ``server_s`` the seconds the server spent on the call, and
    ``desktop_dead`` whether the desktop's X server is gone or not answering after it (a
    ``reset`` starts a new one)."""

    tool_call_id: str
    content: str | list[dict[str, Any]]
    is_error: bool = False
    toolset_name: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    server_s: float = 0.0
    desktop_dead: bool = False

    @classmethod
    def of(
        cls,
        result: ToolResult,
        timings: Mapping[str, float] | None = None,
        server_s: float = 0.0,
        blobs: list[bytes] | None = None,
    ) -> ToolResultWire:
        """The wire form of ``result`` (images keep their bytes and media type). With
        ``blobs``, each image's bytes are appended there and its part says where
        (``"blob": [offset, length]``, :mod:`deskpilot.remote.frames`) instead of ``data``."""
        content: str | list[dict[str, Any]]
        if isinstance(result.result, str):
            content = result.result
        else:
            content = []
            offset = sum(len(b) for b in blobs) if blobs is not None else 0
            for part in result.result:
                if isinstance(part, Text):
                    content.append({"type": "text", "text": part.text})
                elif isinstance(part, Image) and blobs is not None:
                    blob = [offset, len(part.data)]
                    content.append({"type": "image", "media_type": part.media_type, "blob": blob})
                    blobs.append(part.data)
                    offset += len(part.data)
                elif isinstance(part, Image):
                    content.append(
                        {"type": "image", "media_type": part.media_type, "data": part.base64}
                    )
                else:
                    content.append(dict(part))
        return cls(
            tool_call_id=result.tool_call_id,
            content=content,
            is_error=result.is_error,
            toolset_name=result.toolset_name,
            timings=dict(timings or {}),
            server_s=server_s,
        )

    def to_result(self) -> ToolResult:
        """The :class:`ToolResult` again (images decoded once, base64 text kept).

        Raises:
            ConfigError: an image part whose data is not base64 of PNG/JPEG/GIF/WebP.
        """
        if isinstance(self.content, str):
            return ToolResult(self.tool_call_id, self.content, self.is_error, self.toolset_name)
        parts: list[Any] = []
        for item in self.content:
            kind = item.get("type")
            if kind == "text":
                parts.append(Text(_TextPart.model_validate(item).text))
            elif kind == "image":
                img = _ImagePart.model_validate(item)
                try:  # bytes from a binary frame, or base64 text (kept for the request body)
                    parts.append(
                        Image(img.raw if img.raw is not None else img.data, img.media_type)
                    )
                except ConfigError as exc:
                    raise ConfigError(f"An image part holds no image data ({exc}).") from exc
            else:
                parts.append(dict(item))
        return ToolResult(self.tool_call_id, parts, self.is_error, self.toolset_name)


# --- the other methods --------------------------------------------------------------------


class HelloParams(_Strict):
    """``hello``: the protocol version the client speaks; ``binary``: send this
    connection's tool results with images as binary frames (:mod:`deskpilot.remote.frames`)."""

    protocol_version: int = PROTOCOL_VERSION
    binary: bool = False


class HelloResult(_Lenient):
    """What a client learns on connecting (and after ``reset``): the protocol and package
    versions, the display's name and size in native pixels, the apps opened at start, the
    environment its programs get (``DISPLAY``, ``HOME``, ...), its ``HOME``, the largest
    message accepted (bytes) and ``instance``, a random name of this server process (a
    client that reconnects to another instance knows its unanswered requests are lost)."""

    protocol_version: int
    server_version: str
    instance: str = ""
    display: str
    width: int
    height: int
    apps: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    home: str | None = None
    max_message_bytes: int = MAX_MESSAGE_BYTES
    methods: list[str] = Field(default_factory=list)


class HealthResult(_Lenient):
    """``health``: ``{"ok", "display", "width", "height", "detail"}``."""

    ok: bool
    display: str = ""
    width: int = 0
    height: int = 0
    detail: str = ""


class ScreenshotParams(_Strict):
    """``screenshot``: the whole display at native size, as PNG (``compress_level`` 0-9:
    1 is fast, 6 small)."""

    compress_level: Annotated[int, Field(ge=0, le=9)] = 1


class ScreenshotResult(_Lenient):
    """The screenshot: PNG bytes in base64 and the size in native pixels."""

    data: str
    width: int
    height: int


Button = Literal["left", "right", "middle"]
Coord = Annotated[int, Field(ge=0, le=65535)]
Modifiers = Annotated[list[str], Field(max_length=8)]


class MoveParams(_Strict):
    """``move``: the pointer to (x, y) (native pixels)."""

    x: Coord
    y: Coord


class ClickParams(_Strict):
    """``click``: ``count`` clicks at (x, y) or at the pointer, holding ``modifiers``."""

    x: Coord | None = None
    y: Coord | None = None
    button: Button = "left"
    count: Annotated[int, Field(ge=1, le=3)] = 1
    modifiers: Modifiers = Field(default_factory=list)


class MouseButtonParams(_Strict):
    """``mouse_down`` / ``mouse_up``: press or release ``button`` where the pointer is."""

    button: Button = "left"


class DragParams(_Strict):
    """``drag``: press at ``start``, move to ``end``, release (native pixels)."""

    start: tuple[Coord, Coord]
    end: tuple[Coord, Coord]
    button: Button = "left"
    modifiers: Modifiers = Field(default_factory=list)


class ScrollParams(_Strict):
    """``scroll``: ``amount`` wheel clicks toward ``direction`` at (x, y) or the pointer."""

    direction: Literal["up", "down", "left", "right"]
    amount: Annotated[int, Field(ge=1, le=100)]
    x: Coord | None = None
    y: Coord | None = None
    modifiers: Modifiers = Field(default_factory=list)


class KeyParams(_Strict):
    """``key``: a key combination in xdotool syntax, ``repeat`` times."""

    keys: Annotated[str, Field(min_length=1, max_length=1000)]
    repeat: Annotated[int, Field(ge=1, le=100)] = 1


class HoldKeyParams(_Strict):
    """``hold_key``: hold ``keys`` down for ``duration_s`` seconds."""

    keys: Annotated[str, Field(min_length=1, max_length=1000)]
    duration_s: Annotated[float, Field(ge=0, le=100)]


class TypeTextParams(_Strict):
    """``type_text``: type any Unicode text."""

    text: Annotated[str, Field(max_length=100_000)]


class WaitSettledParams(_Strict):
    """``wait_settled``: wait until the screen stops changing, at most ``timeout_s``."""

    timeout_s: Annotated[float, Field(ge=0, le=60)] = 2.0


class PointResult(_Lenient):
    """``cursor_position``: the pointer in native pixels."""

    x: int
    y: int


class SettledResult(_Lenient):
    """``wait_settled``: the seconds waited."""

    waited_s: float


class RunCommandParams(_Strict):
    """``run_command``: a command on the desktop's host (a string runs with ``bash -c``, a
    list is exec'd as is), like the desktop's programs (their environment, ``HOME``)."""

    command: str | Annotated[list[str], Field(min_length=1)]
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    background: bool = False
    cwd: str | None = None


class CommandResult(_Lenient):
    """``run_command``: ``returncode`` (None: timed out or in the background), ``stdout`` and
    ``stderr`` (UTF-8, cut at 1 MB) and ``timed_out``."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False


class PutFileParams(_Strict):
    """``put_file``: write ``data`` (base64) to ``path`` (``~`` and relative paths are
    under the desktop's HOME; parents created)."""

    path: Annotated[str, Field(min_length=1, max_length=4096)]
    data: str


class GetFileParams(_Strict):
    """``get_file``: read ``path``, at most ``max_bytes`` bytes."""

    path: Annotated[str, Field(min_length=1, max_length=4096)]
    max_bytes: Annotated[int, Field(ge=0, le=MAX_FILE_BYTES)] = MAX_FILE_BYTES


class FileResult(_Lenient):
    """``put_file``/``get_file``: the absolute ``path`` and (``get_file``) the ``data`` in
    base64."""

    path: str
    data: str | None = None


class CloseSessionParams(_Strict):
    """``close_session``: end a bash shell / editor history named by ``session``."""

    session: Annotated[str, Field(min_length=1, max_length=128)]


class _NoParams(_Strict):
    pass


METHODS: dict[str, type[BaseModel]] = {
    "hello": HelloParams,
    "health": _NoParams,
    "tool": ToolParams,
    "screenshot": ScreenshotParams,
    "move": MoveParams,
    "click": ClickParams,
    "mouse_down": MouseButtonParams,
    "mouse_up": MouseButtonParams,
    "drag": DragParams,
    "scroll": ScrollParams,
    "key": KeyParams,
    "hold_key": HoldKeyParams,
    "type_text": TypeTextParams,
    "cursor_position": _NoParams,
    "wait_settled": WaitSettledParams,
    "run_command": RunCommandParams,
    "put_file": PutFileParams,
    "get_file": GetFileParams,
    "reset": _NoParams,
    "close_session": CloseSessionParams,
}
"""Every method, with the model its ``params`` are validated against."""
