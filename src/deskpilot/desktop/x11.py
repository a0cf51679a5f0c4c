"""The X11 backend: the ``Computer`` protocol on one X display via XTEST, mss and a settler.

Input goes through the XTEST extension in-process (python-xlib ``fake_input``: 0.3 ms per
click, where ``xdotool click`` sleeps 100 ms by default), capture through mss (XShm). Every X
request and capture runs in the backend's X thread with a response timeout, never on the
event loop (:mod:`deskpilot.desktop.x11_connection`); image encoding runs in a worker thread.

All coordinates are native display pixels (``deskpilot.desktop.base``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from deskpilot.desktop.base import MouseButton, ScrollDirection
from deskpilot.desktop.capture import ImageFormat, encode
from deskpilot.desktop.keys import parse_keys
from deskpilot.desktop.prefetch import CapturePrefetch
from deskpilot.desktop.settle import DamageSettler
from deskpilot.desktop.text_input import TYPE_CHUNK_STROKES, Segment, normalise_text, plan_typing
from deskpilot.desktop.x11_connection import (
    BUTTONS,
    DEFAULT_RESPONSE_TIMEOUT_S,
    SCROLL_BUTTONS,
    Stroke,
    X11Connection,
)
from deskpilot.errors import ToolInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["BUTTONS", "DEFAULT_RESPONSE_TIMEOUT_S", "SCROLL_BUTTONS", "X11Computer"]

log = logging.getLogger(__name__)

MAX_CLICK_COUNT = 10
MAX_SCROLL_AMOUNT = 100
MAX_HOLD_S = 300.0  # the largest any tool version allows (computer_toolset_20260801)
MAX_KEY_REPEAT = 100
DRAG_STEPS = 12
DRAG_STEP_S = 0.004


def _done(_result: object) -> bool:
    """``last=`` of an input action's job that always completes the action."""
    return True


class X11Computer(X11Connection):
    """The :class:`~deskpilot.desktop.base.Computer` protocol on one X display.

    Args:
        display: X display name (``":7"``).
        settle: settle detector timing, or None to never wait for the screen (screenshots
            are then taken immediately after actions).
        is_alive: returns False when the owner knows the X server has exited (used to turn
            connection errors into :class:`DisplayDiedError`).
        response_timeout_s: seconds one X round trip may take before the desktop counts as
            not responding (default 10).

    Call ``await start()`` before use and ``await aclose()`` after.

    Raises (from every action):
        DisplayDiedError: the X server is gone, or did not answer within
            ``response_timeout_s`` ("... is not responding"); the backend is dead from then on.
        DesktopError: any other X failure.
        ToolInputError: bad input (unknown key name, coordinates off the screen, text longer
            than :data:`~deskpilot.desktop.text_input.MAX_TYPE_CHARS`, ...).
        ClosedError: used after :meth:`aclose`.
    """

    def _check_point(self, x: int | None, y: int | None) -> None:
        if (x is None) != (y is None):
            raise ToolInputError("Give both x and y, or neither.")
        if x is None or y is None:  # both None (checked above)
            return
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ToolInputError(f"Coordinates must be integers, not {v!r}.")
        w, h = self._size
        if not (0 <= x < w and 0 <= y < h):
            raise ToolInputError(
                f"Coordinates ({x}, {y}) are outside the {w}x{h} display; x must be in "
                f"0..{w - 1} and y in 0..{h - 1}."
            )

    def _button(self, button: str) -> int:
        try:
            return BUTTONS[button]
        except (KeyError, TypeError):
            raise ToolInputError(
                f"Unknown mouse button {button!r}; use 'left', 'right' or 'middle'."
            ) from None

    # ------------------------------------------------------------------ capture
    async def screenshot(self) -> PILImage:
        """Capture the whole display as an RGB image of :attr:`size` (native pixels).

        If an input action is pending and settling is on, waits for the screen to settle
        first (see :meth:`wait_settled`).
        """
        async with self._lock:
            if self._settler is not None and self._settler.pending:
                await self._wait_settled_locked(None)
            assert self._capture is not None or self._closed
            return await self._call("capture the screen", self._grab_image)

    def _grab_image(self) -> PILImage:
        assert self._capture is not None
        return self._capture.grab()

    async def screenshot_bytes(self, format: ImageFormat = "png", *, quality: int = 80) -> bytes:
        """:meth:`screenshot` encoded (PNG by default), off the event loop: a PNG straight
        from the captured frame in the X thread (no PIL image), other formats in a worker
        thread."""
        if format != "png":
            img = await self.screenshot()
            return await asyncio.to_thread(encode, img, format, quality=quality)
        async with self._lock:
            if self._settler is not None and self._settler.pending:
                await self._wait_settled_locked(None)
            return await self._call("capture the screen", self._grab_png)

    def _grab_png(self) -> bytes:
        assert self._capture is not None
        return self._capture.grab_png()

    def prefetch_settled_png(self, *, timeout_s: float = 2.0) -> CapturePrefetch:
        """Ask for a screenshot once the screen settles after the calling task's next input
        action: its settle-and-capture job is queued in the X thread right behind that
        action (:mod:`deskpilot.desktop.prefetch`). Await ``result()`` after the action, or
        ``cancel()`` it if the action failed."""

        def unregister(p: CapturePrefetch) -> None:
            if self._prefetch is p:
                self._prefetch = None

        p = CapturePrefetch(timeout_s, lambda t: self.settled_png(timeout_s=t), unregister)
        self._prefetch = p
        return p

    async def settled_png(self, *, timeout_s: float = 2.0) -> tuple[float, bytes]:
        """:meth:`wait_settled` then :meth:`screenshot_bytes` (PNG), as one job of the X
        thread where the display has DAMAGE (the event loop is woken once for both);
        returns (seconds waited for the screen to settle, the PNG)."""
        async with self._lock:
            settler = self._settler
            if not isinstance(settler, DamageSettler):
                waited = await self._wait_settled_locked(timeout_s)
                return waited, await self._call("capture the screen", self._grab_png)
            self._check()
            try:
                waited, png = await settler.wait_then(self._grab_png, timeout_s=timeout_s)
            except BaseException:
                settler.discard()
                raise
            assert png is not None
            return waited, png

    async def wait_settled(self, *, timeout_s: float = 2.0) -> float:
        """Wait until the screen stops changing; returns the seconds waited.

        After an input action: wait for its first change (0.2 s after clicks/keys, 0.1 s
        after moves by default), then for 0.15 s with no change of more than 50 pixels
        (caret blinks ignored), at most ``timeout_s``. With no pending action: wait for the
        quiet window only. Returns 0.0 at once when settling is disabled.
        """
        async with self._lock:
            return await self._wait_settled_locked(timeout_s)

    async def _wait_settled_locked(self, timeout_s: float | None) -> float:
        if self._settler is None:
            self._check()
            return 0.0
        self._check()
        try:
            waited = await self._settler.wait(timeout_s=timeout_s)
        except BaseException:
            self._settler.discard()
            raise
        log.debug("settled on %s in %.3f s", self.display_name, waited)
        return waited

    # ------------------------------------------------------------------ pointer
    async def move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y) native pixels."""
        from Xlib import X

        self._check_point(x, y)
        first = self._settle_config.move_first_change_s if self._settle_config else None

        def work() -> None:
            self._mark(first)
            self._fake(X.MotionNotify, x=x, y=y)
            self._display().sync()

        async with self._lock:
            await self._call("move the pointer", work, last=_done)

    async def click(
        self,
        x: int | None = None,
        y: int | None = None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        """Click ``count`` times at (x, y) or at the pointer, holding ``modifiers``.

        Raises:
            ToolInputError: unknown button or modifier, count outside 1-10, or a point off
                the screen (checked before anything is sent).
        """
        self._check_point(x, y)
        btn = self._button(button)
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_CLICK_COUNT
        ):
            raise ToolInputError(f"Click count must be an integer from 1 to {MAX_CLICK_COUNT}.")
        await self._press_button("click", btn, count, x, y, modifiers)

    async def mouse_down(self, button: MouseButton = "left") -> None:
        """Press (and keep pressed) a mouse button where the pointer is."""
        await self._button_event("press a mouse button", self._button(button), down=True)

    async def mouse_up(self, button: MouseButton = "left") -> None:
        """Release a mouse button where the pointer is."""
        await self._button_event("release a mouse button", self._button(button), down=False)

    async def _button_event(self, what: str, btn: int, *, down: bool) -> None:
        from Xlib import X

        def work() -> None:
            self._mark()
            self._fake(X.ButtonPress if down else X.ButtonRelease, btn)
            if down:
                self._held_buttons.add(btn)
            else:
                self._held_buttons.discard(btn)
            self._display().sync()

        async with self._lock:
            await self._call(what, work)

    async def drag(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        *,
        button: MouseButton = "left",
        modifiers: Sequence[str] = (),
    ) -> None:
        """Press at ``start``, move to ``end`` in small steps, release; modifiers held."""
        from Xlib import X

        (sx, sy), (ex, ey) = start, end
        self._check_point(sx, sy)
        self._check_point(ex, ey)
        btn = self._button(button)
        mod_syms = self._modifier_keysyms(modifiers)
        async with self._lock:
            seg = await self._call("drag", self._plan_keys, mod_syms)
            await self._apply_remap(seg.remap)

            def press() -> list[int]:
                self._mark()
                self._fake(X.MotionNotify, x=sx, y=sy)
                down = self._press_keys_down(seg.strokes)
                self._fake(X.ButtonPress, btn)
                self._display().sync()
                return down

            def step(px: int, py: int) -> None:
                self._fake(X.MotionNotify, x=px, y=py)
                self._display().sync()

            def release(down: list[int]) -> None:
                self._fake(X.ButtonRelease, btn)
                self._release_all(down)
                self._display().sync()

            down = await self._call("drag", press)
            try:
                for i in range(1, DRAG_STEPS + 1):
                    await asyncio.sleep(DRAG_STEP_S)
                    px = round(sx + (ex - sx) * i / DRAG_STEPS)
                    py = round(sy + (ey - sy) * i / DRAG_STEPS)
                    await self._call("drag", step, px, py)
                await asyncio.sleep(DRAG_STEP_S)
            finally:
                if not self.dead:
                    await self._call("drag", release, down)
                self._touch(seg)

    async def scroll(
        self,
        direction: ScrollDirection,
        amount: int,
        *,
        x: int | None = None,
        y: int | None = None,
        modifiers: Sequence[str] = (),
    ) -> None:
        """Turn the wheel ``amount`` clicks (X buttons 4 up, 5 down, 6 left, 7 right)."""
        self._check_point(x, y)
        try:
            btn = SCROLL_BUTTONS[direction]
        except (KeyError, TypeError):
            raise ToolInputError(
                f"Unknown scroll direction {direction!r}; use 'up', 'down', 'left' or 'right'."
            ) from None
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int)
            or not 0 <= amount <= MAX_SCROLL_AMOUNT
        ):
            raise ToolInputError(f"Scroll amount must be an integer from 0 to {MAX_SCROLL_AMOUNT}.")
        await self._press_button("scroll", btn, amount, x, y, modifiers)

    async def _press_button(
        self,
        what: str,
        btn: int,
        times: int,
        x: int | None,
        y: int | None,
        modifiers: Sequence[str],
    ) -> None:
        """Move to (x, y) if given, hold ``modifiers``, press and release X button ``btn``
        ``times`` times, release the modifiers (also on error). Shared by click and scroll."""
        from Xlib import X

        mod_syms = self._modifier_keysyms(modifiers)

        def work(seg: Segment) -> None:
            self._mark()
            if x is not None and y is not None:  # both or neither (_check_point)
                self._fake(X.MotionNotify, x=x, y=y)
            down = self._press_keys_down(seg.strokes)
            try:
                for _ in range(times):
                    self._fake(X.ButtonPress, btn)
                    self._fake(X.ButtonRelease, btn)
            finally:
                self._release_all(down)
                self._display().sync()

        async with self._lock:
            # no modifiers: nothing to plan or remap, one round trip
            seg = await self._call(what, self._plan_keys, mod_syms) if mod_syms else Segment()
            await self._apply_remap(seg.remap)
            await self._call(what, work, seg, last=_done)
            self._touch(seg)

    async def cursor_position(self) -> tuple[int, int]:
        """The pointer position (x, y) in native pixels (XQueryPointer)."""

        def work() -> tuple[int, int]:
            assert self._root is not None
            reply = self._root.query_pointer()
            return int(reply.root_x), int(reply.root_y)

        async with self._lock:
            return await self._call("query the pointer", work)

    # ------------------------------------------------------------------ keyboard
    async def key(self, keys: str, *, repeat: int = 1) -> None:
        """Press key combos in xdotool syntax (``"ctrl+s"``, ``"Return"``, ``"ctrl+a Delete"``)
        ``repeat`` times. Aliases models use are accepted (``keys.py``).

        Raises:
            ToolInputError: an unknown key name or a repeat outside 1-100; raised before any
                key is pressed.
        """
        combos = parse_keys(keys)
        if (
            isinstance(repeat, bool)
            or not isinstance(repeat, int)
            or not 1 <= repeat <= MAX_KEY_REPEAT
        ):
            raise ToolInputError(f"Key repeat must be an integer from 1 to {MAX_KEY_REPEAT}.")

        def work(plans: list[list[Stroke]]) -> None:
            self._mark()
            for _ in range(repeat):
                for combo_plan in plans:
                    down = self._press_keys_down(combo_plan)
                    self._release_all(down)
                    self._display().sync()

        def split(seg: Segment) -> list[list[Stroke]]:
            plans: list[list[Stroke]] = []
            i = 0
            for combo in combos:
                plans.append(seg.strokes[i : i + len(combo)])
                i += len(combo)
            return plans

        def plan_and_press(keysyms: list[int]) -> tuple[Segment, bool]:
            """Plan; press at once when no keycode must be remapped first (one round trip)."""
            seg = self._plan_keys(keysyms)
            if seg.remap:
                return seg, False
            work(split(seg))
            return seg, True

        async with self._lock:
            keysyms = [s for c in combos for s in c]
            seg, done = await self._call("press keys", plan_and_press, keysyms, last=lambda r: r[1])
            if not done:
                await self._apply_remap(seg.remap)
                await self._call("press keys", work, split(seg), last=_done)
            self._touch(seg)

    async def hold_key(self, keys: str, duration_s: float) -> None:
        """Hold a key combination (all keys of all combos) for ``duration_s`` seconds.

        Raises:
            ToolInputError: an unknown key name or a duration outside 0-300 s.
        """
        combos = parse_keys(keys)
        if (
            isinstance(duration_s, bool)
            or not isinstance(duration_s, (int, float))
            or not 0 <= duration_s <= MAX_HOLD_S
        ):
            raise ToolInputError(
                f"Hold duration must be a number of seconds from 0 to {MAX_HOLD_S:g}."
            )

        def press(seg: Segment) -> list[int]:
            self._mark()
            down = self._press_keys_down(seg.strokes)
            self._display().sync()
            return down

        def release(down: list[int]) -> None:
            self._release_all(down)
            self._display().sync()

        async with self._lock:
            seg = await self._call("hold keys", self._plan_keys, [s for c in combos for s in c])
            await self._apply_remap(seg.remap)
            down = await self._call("hold keys", press, seg)
            try:
                await asyncio.sleep(duration_s)
            finally:
                if not self.dead:
                    await self._call("hold keys", release, down)
                self._touch(seg)

    async def type_text(self, text: str) -> None:
        """Type any Unicode text (``\\n`` = Return, ``\\t`` = Tab) into the focused window.

        The text is planned and typed in chunks of ``TYPE_CHUNK_STROKES`` characters, each one
        X round trip awaited off the event loop, so the time per character is constant (about 0.1 ms) and
        a cancelled action stops between two chunks with no key left pressed.

        Raises:
            ToolInputError: ``text`` is not a string, holds other control characters, or is
                longer than :data:`~deskpilot.desktop.text_input.MAX_TYPE_CHARS`.
        """
        text = normalise_text(text)
        if not text:
            return

        def plan_and_type(piece: str, first: bool) -> list[Segment]:
            """Plan a piece; type its first segment at once when it needs no remap (plain
            text: one round trip per piece). Returns the segments still to type."""
            assert self._keymap is not None
            segments = plan_typing(piece, self._keymap.state)
            if first:
                self._mark()
            if segments and not segments[0].remap:
                self._type_strokes(segments.pop(0).strokes)
            return segments

        async with self._lock:
            try:
                for start in range(0, len(text), TYPE_CHUNK_STROKES):
                    piece = text[start : start + TYPE_CHUNK_STROKES]
                    rest = await self._call("type text", plan_and_type, piece, start == 0)
                    for seg in rest:
                        await self._apply_remap(seg.remap)
                        await self._call("type text", self._type_strokes, seg.strokes)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._refresh_keymap_later()
                raise
