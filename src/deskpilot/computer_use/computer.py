"""ComputerTool: runs the ``computer`` tool (every version and the 20260801 toolset) on a Computer.

The model's actions are validated per version (:mod:`.actions`), their coordinates checked
and converted from model space to native pixels in one place (:mod:`.scaling`), performed on
a :class:`~deskpilot.desktop.base.Computer` (structured calls, never shell strings), and
answered with a short text and, after the screen settled, a screenshot in model space.

Result shapes (all are :class:`~deskpilot.prompt.ToolResult`):

* ``screenshot`` -> ``[Image]`` (model-space size, PNG by default);
* ``cursor_position`` -> ``"X=512, Y=384"`` (model space, no image);
* ``zoom`` -> ``[Text, Image]``: the region cut from the *native* capture, resized to fit the
  screenshot size (so it has real extra detail when the screen was downscaled);
* any other action -> ``[Text, Image]`` (``[Text]`` when ``screenshot_after_action=False``);
* any failure -> ``is_error=True`` with a sentence the model can act on.

``computer_toolset_20260801`` members arrive as one tool_use per action (``name`` = the
action, ``toolset_name="computer"``); results echo ``toolset_name``. :meth:`execute_batch`
runs a turn's member calls in order and halts at the first failure with the exact text from
the docs (computer use tool page, "Batch actions",
https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, assert_never

from ..desktop.capture import ImageFormat, encode, media_type
from ..errors import ConfigError, DeskpilotError, ToolInputError
from ..prompt import Image, Text, ToolCall, ToolResult
from .actions import (
    CLICKS,
    Action,
    Click,
    CursorPosition,
    Drag,
    HoldKey,
    Key,
    MouseButton,
    MouseMove,
    Point,
    Screenshot,
    Scroll,
    TypeText,
    Wait,
    Zoom,
    allowed_actions,
    parse_action,
)
from .base import Executor
from .batch import CallOutcome, run_turn
from .scaling import ImageTier, Scaler, fit_within
from .specs import computer_definition, computer_spec, versions

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from ..desktop.base import Computer

logger = logging.getLogger(__name__)

InputAction = Click | MouseMove | Drag | MouseButton | Scroll | Key | HoldKey | TypeText | Wait
"""The actions that drive the mouse or keyboard (answered with a text and a screenshot)."""


def _holding(modifiers: tuple[str, ...]) -> str:
    return f" holding {'+'.join(modifiers)}" if modifiers else ""


_PROTOCOL_METHODS = (
    "screenshot",
    "move",
    "click",
    "mouse_down",
    "mouse_up",
    "drag",
    "scroll",
    "key",
    "hold_key",
    "type_text",
    "cursor_position",
    "wait_settled",
)


class ComputerTool(Executor):
    """Executor of the Anthropic ``computer`` tool on a :class:`Computer` (native pixels).

    Args:
        computer: the desktop to drive (e.g. a started ``LocalDesktop``, or a ``FakeComputer``).
        version: a computer tool type: ``computer_20241022`` (10 actions), ``computer_20250124``
            (16), ``computer_20251124`` (17 with zoom) or ``computer_toolset_20260801``.
        image_tier: the API image rule the screenshots follow: ``"legacy"`` (long edge <= 1568
            px, <= 1568 visual tokens) or ``"2576"`` (Claude Opus 4.7+: <= 2576 px, <= 4784
            tokens). None picks ``"2576"`` for the toolset and ``"legacy"`` otherwise; it is fixed
            at construction so a version step-down never changes the screenshot size.
        target_size: optional (width, height) box in pixels for the screenshots (aspect ratio
            kept, never enlarged, tier rule still applied).
        enable_zoom: offer ``zoom`` (20251124 sends ``enable_zoom: true``; the toolset sends the
            member disabled when False).
        screenshot_format: ``"png"`` (default), ``"jpeg"`` or ``"webp"``.
        screenshot_quality: 1-100 for JPEG/WebP.
        screenshot_after_action: attach a screenshot to the result of input actions.
        settle: wait until the screen stops changing before that screenshot
            (``Computer.wait_settled``), at most ``settle_timeout_s`` seconds.
        display_number: the X display number to advertise in the definition (optional).

    Raises:
        ConfigError: an unknown version, tier, format, a bad target size, or ``computer``
            not implementing the Computer protocol.
    """

    kind = "computer"
    name = "computer"

    def __init__(
        self,
        computer: Computer,
        version: str = "computer_20251124",
        *,
        image_tier: ImageTier | None = None,
        target_size: tuple[int, int] | None = None,
        enable_zoom: bool = True,
        screenshot_format: ImageFormat = "png",
        screenshot_quality: int = 80,
        screenshot_after_action: bool = True,
        settle: bool = True,
        settle_timeout_s: float = 2.0,
        display_number: int | None = None,
    ) -> None:
        missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(type(computer), m, None))]
        if missing:  # checked on the class: a desktop's ``size`` may raise before start
            raise ConfigError(
                "computer must implement deskpilot.desktop.base.Computer (e.g. a LocalDesktop "
                f"or a FakeComputer); {type(computer).__name__} lacks {', '.join(missing)}."
            )
        self.computer = computer
        self._version = self._check_version(version)
        if image_tier is None:
            image_tier = "2576" if computer_spec(self._version).toolset else "legacy"
        if image_tier not in ("legacy", "2576"):
            raise ConfigError(f"image_tier must be 'legacy' or '2576', not {image_tier!r}.")
        self.image_tier: ImageTier = image_tier
        self.target_size = target_size
        self.enable_zoom = bool(enable_zoom)
        media_type(screenshot_format)  # raises ConfigError for an unknown format
        if not 1 <= int(screenshot_quality) <= 100:
            raise ConfigError(f"screenshot_quality must be 1-100, not {screenshot_quality}.")
        self.screenshot_format: ImageFormat = screenshot_format
        self.screenshot_quality = int(screenshot_quality)
        self.screenshot_after_action = bool(screenshot_after_action)
        self.settle = bool(settle)
        self.settle_timeout_s = float(settle_timeout_s)
        self.display_number = display_number
        self.last_timings: dict[str, float] = {}
        self._scaler: Scaler | None = None
        if target_size is not None and not (
            isinstance(target_size, tuple | list)
            and len(target_size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in target_size)
        ):
            raise ConfigError(
                f"target_size must be (width, height) in positive pixels, not {target_size!r}."
            )

    # --- configuration ------------------------------------------------------------------

    @staticmethod
    def _check_version(version: str) -> str:
        if version not in versions("computer"):
            raise ConfigError(
                f"Unknown computer tool version {version!r}; use one of {versions('computer')}."
            )
        return version

    @property
    def version(self) -> str:
        """The computer tool type; settable (e.g. after the client stepped down on a 400)."""
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        self._version = self._check_version(value)

    @property
    def scaler(self) -> Scaler:
        """The model-space <-> native conversion for this computer (computed once)."""
        if self._scaler is not None:
            return self._scaler
        try:
            width, height = self.computer.size
        except DeskpilotError:
            # a desktop that is not started yet may still know its configured size
            cw, ch = getattr(self.computer, "width", None), getattr(self.computer, "height", None)
            if not (isinstance(cw, int) and isinstance(ch, int)):
                raise
            return Scaler.for_display((cw, ch), tier=self.image_tier, target_size=self.target_size)
        self._scaler = Scaler.for_display(
            (int(width), int(height)), tier=self.image_tier, target_size=self.target_size
        )
        return self._scaler

    @property
    def model_size(self) -> tuple[int, int]:
        """(width, height) in pixels of the screenshots the model sees."""
        return self.scaler.model

    @property
    def toolset(self) -> bool:
        """True for ``computer_toolset_20260801`` (one tool_use per member)."""
        return computer_spec(self._version).toolset

    def screenshot_call(self, call_id: str) -> ToolCall:
        """A ``screenshot`` call in the wire shape of this version (for callers that want a
        screenshot through :meth:`execute`, e.g. the agent's first turn)."""
        if self.toolset:
            return ToolCall(call_id, "screenshot", {}, toolset_name="computer")
        return ToolCall(call_id, "computer", {"action": "screenshot"})

    @property
    def actions(self) -> tuple[str, ...]:
        """The actions the model may use with this version and zoom setting."""
        return allowed_actions(computer_spec(self._version), enable_zoom=self.enable_zoom)

    @property
    def definition(self) -> dict[str, Any]:
        """The ``tools`` entry (``specs.computer_definition``) with the MODEL-space size."""
        w, h = self.model_size
        spec = computer_spec(self._version)
        disabled = ("zoom",) if spec.toolset and not self.enable_zoom else ()
        return computer_definition(
            self._version,
            w,
            h,
            display_number=self.display_number,
            enable_zoom=self.enable_zoom,
            disabled_members=disabled,
        )

    # --- execution ----------------------------------------------------------------------

    def _parse(self, call: ToolCall) -> Action:
        member = call.toolset_name == "computer" or (
            computer_spec(self._version).toolset and call.name != "computer"
        )
        if not isinstance(call.arguments, dict):
            example = '{"coordinate": [100, 200]}' if member else '{"action": "screenshot"}'
            raise ToolInputError(
                f"The computer tool's input must be a JSON object such as {example}, not "
                f"{type(call.arguments).__name__}."
            )
        params = dict(call.arguments)
        if member:
            action: Any = call.name
            params.pop("action", None)
        else:
            action = params.pop("action", None)
        return parse_action(action, params, self._version, enable_zoom=self.enable_zoom)

    async def _execute(self, call: ToolCall, screenshot: bool | None = None) -> ToolResult:
        action = self._parse(call)
        if screenshot is None:
            screenshot = self.screenshot_after_action
        parts = await self._perform(action, screenshot=screenshot)
        return ToolResult(call.id, parts, toolset_name=call.toolset_name)

    async def execute_batch(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run one turn's toolset member calls in order (``computer_toolset_20260801``).

        The rule of :func:`deskpilot.computer_use.batch.run_turn`: the first failure answers
        ``is_error`` with its description and every later call answers ``is_error`` with
        exactly :data:`~.specs.TOOLSET_HALT_TEXT`; members before the last take no
        screenshot of their own, and one is attached to the last successful result when it
        has no image.

        Returns:
            One ToolResult per call, in order, each echoing the call's ``toolset_name``.
        """

        async def run(call: ToolCall, quiet: bool) -> CallOutcome:
            result = await (self.execute_quiet(call) if quiet else self.execute(call))
            return CallOutcome(result)

        async def shot() -> list[Image]:
            try:
                return [await self._screenshot_part()]
            except Exception as exc:
                logger.warning("Could not attach the end-of-batch screenshot: %s", exc)
                return []

        return [o.result for o in await run_turn(calls, run, screenshot=shot)]

    async def execute_quiet(self, call: ToolCall) -> ToolResult:
        """Like :meth:`execute` but without the post-action screenshot (never raises).

        For callers that run several actions in a row and want one screenshot at the end
        (toolset batches: computer-use tool page, "Batch actions"); ``screenshot``,
        ``zoom`` and ``cursor_position`` still return their own result.
        """
        return await self._guarded(call, self._execute, call, False)

    async def _perform(self, action: Action, *, screenshot: bool) -> list[Text | Image]:
        self.last_timings = {"action_s": 0.0, "settle_s": 0.0, "screenshot_s": 0.0}
        if isinstance(action, Screenshot):
            return [await self._screenshot_part()]
        if isinstance(action, CursorPosition):
            t0 = time.perf_counter()
            x, y = self.scaler.to_model(*await self.computer.cursor_position())
            self.last_timings["action_s"] = time.perf_counter() - t0
            return [Text(f"X={x}, Y={y}")]
        if isinstance(action, Zoom):
            return await self._zoom(action)

        settle = self.settle and not isinstance(action, Wait)
        prefetch = getattr(self.computer, "prefetch_settled_png", None)
        after = None
        if settle and screenshot and prefetch is not None and self._png_as_is():
            # the X thread settles and captures right after the input (one job queued behind
            # it): under load each return to the event loop waits for it (tens of ms at 32
            # desktops on 2 cores; issue 8), and the input's return no longer holds it up
            after = prefetch(timeout_s=self.settle_timeout_s)
        t0 = time.perf_counter()
        try:
            text = await self._act(action)
        except BaseException:
            if after is not None:
                after.cancel()
            raise
        t1 = time.perf_counter()
        self.last_timings["action_s"] = t1 - t0
        parts: list[Text | Image] = [Text(text)]
        if after is not None:
            waited, png = await after.result()
            self.last_timings["settle_s"] = waited
            self.last_timings["screenshot_s"] = max(0.0, time.perf_counter() - t1 - waited)
            return [*parts, Image(png, "image/png")]
        if settle:
            t1 = time.perf_counter()
            await self.computer.wait_settled(timeout_s=self.settle_timeout_s)
            self.last_timings["settle_s"] = time.perf_counter() - t1
        if screenshot:
            parts.append(await self._screenshot_part())
        return parts

    def _png_as_is(self) -> bool:
        """Screenshots are native-size PNGs: the backend's own encoding is sent as is."""
        return self.screenshot_format == "png" and self.model_size == self.scaler.native

    def _native(self, point: Point, name: str = "coordinate") -> Point:
        self.scaler.check_model_point(*point, name=name)
        return self.scaler.to_native(*point)

    async def _act(self, a: InputAction) -> str:
        """Perform an input action on the computer; returns a one-line description."""
        c = self.computer
        match a:
            case Click(action=name, coordinate=point, modifiers=mods):
                button, count = CLICKS[name]
                if point is not None:
                    x, y = self._native(point)
                    await c.click(x, y, button=button, count=count, modifiers=mods)
                    where = f"at ({point[0]}, {point[1]})"
                else:
                    await c.click(button=button, count=count, modifiers=mods)
                    where = "at the pointer"
                return f"{name.replace('_', ' ').capitalize()} {where}{_holding(mods)}."
            case MouseMove(coordinate=point):
                await c.move(*self._native(point))
                return f"Moved the pointer to ({point[0]}, {point[1]})."
            case Drag(coordinate=point, start_coordinate=start_point, modifiers=mods):
                end = self._native(point)
                if start_point is not None:
                    start = self._native(start_point, "start_coordinate")
                    frm = f"({start_point[0]}, {start_point[1]})"
                else:  # computer_20241022: from where the pointer is
                    start = await c.cursor_position()
                    frm = "the pointer"
                await c.drag(start, end, modifiers=mods)
                return f"Dragged from {frm} to ({point[0]}, {point[1]}){_holding(mods)}."
            case MouseButton(action="left_mouse_down"):
                await c.mouse_down("left")
                return "Pressed the left mouse button."
            case MouseButton():
                await c.mouse_up("left")
                return "Released the left mouse button."
            case Scroll(
                scroll_direction=direction, scroll_amount=amount, coordinate=point, modifiers=mods
            ):
                sx: int | None = None
                sy: int | None = None
                where = "at the pointer"
                if point is not None:
                    sx, sy = self._native(point)
                    where = f"at ({point[0]}, {point[1]})"
                await c.scroll(direction, amount, x=sx, y=sy, modifiers=mods)
                return f"Scrolled {direction} {amount} {where}{_holding(mods)}."
            case Key(text=keys, repeat=repeat):
                await c.key(keys, repeat=repeat)
                times = f" {repeat} times" if repeat != 1 else ""
                return f"Pressed {keys}{times}."
            case HoldKey(text=keys, duration=duration):
                await c.hold_key(keys, duration)
                return f"Held {keys} for {duration:g} s."
            case TypeText(text=text):
                await c.type_text(text)
                return f"Typed {len(text)} characters."
            case Wait(duration=duration):
                await asyncio.sleep(duration)
                return f"Waited {duration:g} s."
        assert_never(a)

    async def _capture(self) -> PILImage:
        img = await self.computer.screenshot()
        if img.mode != "RGB":
            img = img.convert("RGB")
        return img

    def _encode(self, img: PILImage) -> Image:
        return Image(
            encode(img, self.screenshot_format, quality=self.screenshot_quality),
            media_type(self.screenshot_format),
        )

    async def _screenshot_part(self) -> Image:
        """Capture, resize to the model size and encode (resize/encode off the event loop)."""
        t0 = time.perf_counter()
        size = self.model_size
        encoded = getattr(self.computer, "screenshot_bytes", None)
        if self._png_as_is() and encoded:
            # no resize: the backend encodes straight from its frame (X11: no PIL image)
            part = Image(await encoded("png"), "image/png")
            self.last_timings["screenshot_s"] = time.perf_counter() - t0
            return part
        img = await self._capture()

        def work() -> Image:
            from PIL import Image as PILImageModule

            out = img if img.size == size else img.resize(size, PILImageModule.Resampling.BICUBIC)
            return self._encode(out)

        part = await asyncio.to_thread(work)
        self.last_timings["screenshot_s"] = time.perf_counter() - t0
        return part

    async def _zoom(self, a: Zoom) -> list[Text | Image]:
        box = self.scaler.region_to_native(a.region)
        t0 = time.perf_counter()
        img = await self._capture()
        mw, mh = self.model_size
        nw, nh = self.scaler.native
        if img.size != (nw, nh):  # a backend with another capture size: crop proportionally
            sx, sy = img.size[0] / nw, img.size[1] / nh
            box = (
                int(box[0] * sx),
                int(box[1] * sy),
                max(int(box[0] * sx) + 1, round(box[2] * sx)),
                max(int(box[1] * sy) + 1, round(box[3] * sy)),
            )

        def work() -> tuple[Image, tuple[int, int]]:
            from PIL import Image as PILImageModule

            crop = img.crop(box)
            out_size = fit_within(crop.size, (mw, mh))
            if out_size != crop.size:
                crop = crop.resize(out_size, PILImageModule.Resampling.LANCZOS)
            return self._encode(crop), out_size

        part, (zw, zh) = await asyncio.to_thread(work)
        self.last_timings["screenshot_s"] = time.perf_counter() - t0
        x0, y0, x1, y1 = a.region
        return [
            Text(
                f"Zoomed into [{x0}, {y0}, {x1}, {y1}] of the {mw}x{mh} screenshot, shown at "
                f"{zw}x{zh}. Coordinates in later actions still refer to the full {mw}x{mh} "
                "screenshot."
            ),
            part,
        ]


__all__ = ["ComputerTool"]
