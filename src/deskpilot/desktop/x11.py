"""The X11 backend: the ``Computer`` protocol on one X display via XTEST, mss and a settler.

Input goes through the XTEST extension in-process (python-xlib ``fake_input``: 0.3 ms per
click, where ``xdotool click`` sleeps 100 ms by default), capture through mss (XShm).
One X connection per backend, used by one task at a time (an ``asyncio.Lock``). X requests
are sub-millisecond and run inline on the event loop; image encoding runs in a thread.

All coordinates are native display pixels (``deskpilot.desktop.base``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from deskpilot.desktop.base import MouseButton, ScrollDirection
from deskpilot.desktop.capture import ImageFormat, ScreenCapture, encode
from deskpilot.desktop.keys import keysym_for_name, parse_keys
from deskpilot.desktop.settle import SettleConfig, Settler
from deskpilot.desktop.typing import (
    Segment,
    normalise_text,
    plan_keysyms,
    plan_typing,
    type_segments,
)
from deskpilot.errors import (
    ClosedError,
    DesktopError,
    DisplayDiedError,
    MissingDependencyError,
    ToolInputError,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from Xlib.display import Display
    from Xlib.xobject.drawable import Window

    from deskpilot.desktop.keymap import Keymap

__all__ = ["BUTTONS", "SCROLL_BUTTONS", "X11Computer"]

log = logging.getLogger(__name__)

BUTTONS: dict[str, int] = {"left": 1, "middle": 2, "right": 3}
SCROLL_BUTTONS: dict[str, int] = {"up": 4, "down": 5, "left": 6, "right": 7}
MAX_CLICK_COUNT = 10
MAX_SCROLL_AMOUNT = 100
MAX_HOLD_S = 300.0  # the largest any tool version allows (computer_toolset_20260801)
MAX_KEY_REPEAT = 100
DRAG_STEPS = 12
DRAG_STEP_S = 0.004


def _died_message(display: str) -> str:
    return (
        f"The X server of display {display} is no longer running; call restart() or start a "
        "new desktop."
    )


class _XGuard:
    """Checks the backend before an action and translates its X errors after it."""

    def __init__(self, owner: X11Computer, what: str) -> None:
        self._owner = owner
        self._what = what

    def __enter__(self) -> None:
        self._owner._check()
        self._owner._drain_events()

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc is None:
            return False
        new = self._owner._translate(self._what, exc)
        if new is None:
            return False
        raise new from exc

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


class X11Computer:
    """The :class:`~deskpilot.desktop.base.Computer` protocol on one X display.

    Args:
        display: X display name (``":7"``).
        settle: settle detector timing, or None to never wait for the screen (screenshots
            are then taken immediately after actions).
        is_alive: returns False when the owner knows the X server has exited (used to turn
            connection errors into :class:`DisplayDiedError`).

    Raises (from every action):
        DisplayDiedError: the X server is gone.
        DesktopError: any other X failure.
        ToolInputError: bad input (unknown key name, coordinates off the screen, ...).
        ClosedError: used after :meth:`close`.
    """

    def __init__(
        self,
        display: str,
        *,
        settle: SettleConfig | None = None,
        is_alive: Callable[[], bool] | None = None,
    ) -> None:
        self.display_name = display
        self._settle_config = settle
        self._owner_is_alive = is_alive
        self._is_alive = is_alive or (lambda: True)
        self._lock = asyncio.Lock()
        self._d: Display | None = None
        self._root: Window | None = None
        self._keymap: Keymap | None = None
        self._capture: ScreenCapture | None = None
        self._settler: Settler | None = None
        self._size = (0, 0)
        self._closed = False
        self._dead = False
        self._held_buttons: set[int] = set()

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Connect to the display (XTEST required) and read its size and keyboard map.

        Raises:
            DesktopError: the display cannot be opened or lacks XTEST.
            MissingDependencyError: python-xlib or mss is not installed.
        """
        try:
            from Xlib import display as xdisplay
            from Xlib import error as xerror
        except ImportError as exc:
            raise MissingDependencyError(
                "The X11 desktop needs python-xlib; run: pip install 'deskpilot[desktop]'."
            ) from exc
        from deskpilot.desktop.keymap import Keymap

        try:
            d = xdisplay.Display(self.display_name)
        except (xerror.DisplayError, OSError) as exc:
            raise DesktopError(
                f"Could not open X display {self.display_name}: {exc}. Start a desktop with "
                "LocalDesktop() or check the display name."
            ) from exc
        if not d.has_extension("XTEST"):
            d.close()
            raise DesktopError(
                f"X display {self.display_name} has no XTEST extension, which input needs; "
                "run Xvfb (it has XTEST by default)."
            )
        d.set_error_handler(self._on_x_error)
        self._d = d
        screen = d.screen()
        self._root = screen.root
        self._size = (screen.width_in_pixels, screen.height_in_pixels)
        self._keymap = Keymap(d)
        self._capture = ScreenCapture(self.display_name)
        if self._settle_config is not None:
            self._settler = Settler(self._grab_raw, self._settle_config)
        self._closed = False
        self._dead = False

    def _on_x_error(self, err, *args) -> None:
        log.warning("X error on %s: %s", self.display_name, err)

    def close(self) -> None:
        """Release every held button and close the connection (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        if self._d is not None:
            with contextlib.suppress(Exception):
                if not self._dead:
                    from Xlib import X
                    from Xlib.ext import xtest

                    for b in sorted(self._held_buttons):
                        xtest.fake_input(self._d, X.ButtonRelease, b)
                    if self._keymap is not None:
                        self._keymap.restore_all()
                    self._d.sync()
            with contextlib.suppress(Exception):
                self._d.close()
        if self._capture is not None:
            self._capture.close()
        self._d = None

    def mark_dead(self) -> None:
        """Tell the backend its X server is gone (every later action raises DisplayDiedError)."""
        self._dead = True

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the display in native pixels."""
        return self._size

    @property
    def xdisplay(self):
        """The python-xlib ``Display`` (for window queries by the desktop; one task at a time)."""
        self._check()
        return self._d

    async def run_x(self, what: str, fn: Callable[..., object], *args: object) -> object:
        """Run ``fn(xdisplay, *args)`` under the connection lock, with X errors translated
        (for window queries: client lists, activation, properties)."""
        async with self._lock, self._x(what):
            return fn(self._d, *args)

    def settle_mark(self) -> None:
        """Record the current frame as the 'before' of an action done outside this backend
        (e.g. an app launch), so the next screenshot waits for the screen to settle."""
        if self._settler is not None and not self._closed and not self._dead:
            with contextlib.suppress(Exception):
                self._settler.mark()

    # ------------------------------------------------------------------ plumbing
    def _check(self) -> None:
        if self._closed or self._d is None:
            raise ClosedError(
                f"The desktop on display {self.display_name} is closed; start a new one."
            )
        if self._dead or not self._is_alive():
            self._dead = True
            raise DisplayDiedError(_died_message(self.display_name))

    def _display(self) -> Display:
        """The open connection (ClosedError after :meth:`close`). Actions run under
        :meth:`_x`, which has already checked this, so here it only narrows the type."""
        if self._d is None:
            raise ClosedError(
                f"The desktop on display {self.display_name} is closed; start a new one."
            )
        return self._d

    def _root_window(self) -> Window:
        """The root window of the open connection (ClosedError after :meth:`close`)."""
        if self._d is None or self._root is None:
            raise ClosedError(
                f"The desktop on display {self.display_name} is closed; start a new one."
            )
        return self._root

    def _drain_events(self) -> None:
        """Consume queued X events (python-xlib would keep them forever); when another
        client (or an earlier remap) changed the keyboard map, re-read it."""
        if self._d is None or self._keymap is None:
            return
        from Xlib import X

        changed = False
        try:
            while self._d.pending_events():
                if self._d.next_event().type == X.MappingNotify:
                    changed = True
        except Exception:  # a dead connection is reported by the action itself
            return
        if changed:
            self._keymap.refresh()

    def _x(self, what: str) -> _XGuard:
        """Context manager (sync or async) translating X/mss failures of one action."""
        return _XGuard(self, what)

    def _translate(self, what: str, exc: BaseException) -> BaseException | None:
        from Xlib import error as xerror

        if isinstance(exc, (xerror.ConnectionClosedError, BrokenPipeError, ConnectionError)):
            self._dead = True
            return DisplayDiedError(_died_message(self.display_name))
        if isinstance(exc, (xerror.XError, OSError)) or (
            isinstance(exc, DesktopError) and not isinstance(exc, DisplayDiedError)
        ):
            if self._confirm_dead():
                self._dead = True
                return DisplayDiedError(_died_message(self.display_name))
            if isinstance(exc, DesktopError):
                return None
            return DesktopError(f"The X server refused to {what}: {exc}.")
        return None

    def _confirm_dead(self) -> bool:
        """After a failure: is the X server gone? (Blocks up to 0.3 s, on error paths only.)

        A server killed a moment ago may already have closed its sockets while its process
        is still exiting, so the owner's liveness check is polled briefly; without an owner,
        a fresh connection attempt decides.
        """
        if self._owner_is_alive is None:
            from Xlib import display as xdisplay
            from Xlib import error as xerror

            try:
                xdisplay.Display(self.display_name).close()
            except (xerror.DisplayError, xerror.ConnectionClosedError, OSError):
                return True
            return False
        deadline = time.monotonic() + 0.3
        while True:
            if not self._owner_is_alive():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def _grab_raw(self) -> bytes:
        assert self._capture is not None
        return self._capture.grab_raw()[0]

    def _mark(self, first_change_s: float | None = None) -> None:
        if self._settler is not None:
            self._settler.mark(first_change_s=first_change_s)

    def _fake(self, event_type: int, detail: int = 0, x: int = 0, y: int = 0) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        if event_type == X.MotionNotify:
            xtest.fake_input(self._d, X.MotionNotify, x=x, y=y)
        else:
            xtest.fake_input(self._d, event_type, detail)

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

    def _plan_keys(self, keysyms: Sequence[int]) -> Segment:
        """One segment of keystrokes for keys pressed together (remaps included)."""
        assert self._keymap is not None
        segments = plan_keysyms(list(keysyms), self._keymap.state)
        if len(segments) > 1:
            self._keymap.refresh()
            raise ToolInputError(
                "Too many keys outside the keyboard map in one command; split it into "
                "several key actions."
            )
        return segments[0] if segments else Segment()

    def _modifier_keysyms(self, modifiers: Sequence[str]) -> list[int]:
        if isinstance(modifiers, str):
            modifiers = [m for m in modifiers.replace("+", " ").split() if m]
        out: list[int] = []
        for name in modifiers:
            if not isinstance(name, str):
                raise ToolInputError(f"Modifier key names must be strings, not {name!r}.")
            for part in [p for p in name.split("+") if p] or [name]:
                sym = keysym_for_name(part)
                if sym is None:
                    raise ToolInputError(
                        f"Unknown modifier key '{part}'. Use names such as shift, ctrl, alt, super."
                    )
                out.append(sym)
        return out

    async def _press_keys_down(self, plan: list[tuple[int, bool]]) -> list[int]:
        """Press keycodes in order (adding Shift where needed); returns what to release."""
        from Xlib import X

        assert self._keymap is not None
        shift = self._keymap.keycode("Shift_L")
        down: list[int] = []
        for kc, shifted in plan:
            if shifted and shift not in down:
                self._fake(X.KeyPress, shift)
                down.append(shift)
            self._fake(X.KeyPress, kc)
            down.append(kc)
        return down

    def _release_all(self, down: list[int]) -> None:
        from Xlib import X

        for kc in reversed(down):
            self._fake(X.KeyRelease, kc)

    @contextlib.asynccontextmanager
    async def _remapped(self, seg: Segment):
        """Apply a segment's spare-keycode remaps (kept afterwards; see keymap.py)."""
        assert self._keymap is not None and self._d is not None
        if seg.remap:
            await type_segments(
                [Segment(remap=seg.remap, strokes=[])],
                self._keymap.state,
                press=lambda kc: None,
                release=lambda kc: None,
                shift_keycode=0,
                remap=self._keymap.remap,
                sync=self._d.sync,
                before_reuse=self._before_reuse,
            )
        try:
            yield
        finally:
            now = time.monotonic()
            for kc, _ in seg.strokes:
                if kc in seg.remap or kc in self._keymap.state.assigned.values():
                    self._keymap.state.last_used[kc] = now

    async def _before_reuse(self) -> None:
        """Before reassigning a recently pressed spare keycode: let the app read its events
        (wait for the screen to be quiet, at most 0.5 s)."""
        if self._settler is not None:
            self._settler.discard()
            await self._settler.wait(timeout_s=0.5)
            self._settler.mark()
            return
        await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ capture
    async def screenshot(self) -> PILImage:
        """Capture the whole display as an RGB image of :attr:`size` (native pixels).

        If an input action is pending and settling is on, waits for the screen to settle
        first (see :meth:`wait_settled`).
        """
        async with self._lock:
            if self._settler is not None and self._settler.pending:
                await self._wait_settled_locked(None)
            with self._x("capture the screen"):
                assert self._capture is not None
                return self._capture.grab()

    async def screenshot_bytes(self, format: ImageFormat = "png", *, quality: int = 80) -> bytes:
        """:meth:`screenshot` encoded (PNG by default) in a worker thread."""
        img = await self.screenshot()
        return await asyncio.to_thread(encode, img, format, quality=quality)

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
        try:
            with self._x("capture the screen"):
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
        async with self._lock, self._x("move the pointer"):
            self._mark(self._settle_config.move_first_change_s if self._settle_config else None)
            self._fake(X.MotionNotify, x=x, y=y)
            self._display().sync()

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
        from Xlib import X

        btn = self._button(button)
        async with self._lock, self._x("press a mouse button"):
            self._mark()
            self._fake(X.ButtonPress, btn)
            self._held_buttons.add(btn)
            self._display().sync()

    async def mouse_up(self, button: MouseButton = "left") -> None:
        """Release a mouse button where the pointer is."""
        from Xlib import X

        btn = self._button(button)
        async with self._lock, self._x("release a mouse button"):
            self._mark()
            self._fake(X.ButtonRelease, btn)
            self._held_buttons.discard(btn)
            self._display().sync()

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
        async with self._lock, self._x("drag"):
            seg = self._plan_keys(mod_syms)
            self._mark()
            async with self._remapped(seg):
                self._fake(X.MotionNotify, x=sx, y=sy)
                down = await self._press_keys_down(seg.strokes)
                try:
                    self._fake(X.ButtonPress, btn)
                    self._display().sync()
                    for i in range(1, DRAG_STEPS + 1):
                        await asyncio.sleep(DRAG_STEP_S)
                        px = round(sx + (ex - sx) * i / DRAG_STEPS)
                        py = round(sy + (ey - sy) * i / DRAG_STEPS)
                        self._fake(X.MotionNotify, x=px, y=py)
                        self._display().sync()
                    await asyncio.sleep(DRAG_STEP_S)
                finally:
                    self._fake(X.ButtonRelease, btn)
                    self._release_all(down)
                    self._display().sync()

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
        async with self._lock, self._x(what):
            seg = self._plan_keys(mod_syms)
            self._mark()
            async with self._remapped(seg):
                if x is not None and y is not None:  # both or neither (_check_point)
                    self._fake(X.MotionNotify, x=x, y=y)
                down = await self._press_keys_down(seg.strokes)
                try:
                    for _ in range(times):
                        self._fake(X.ButtonPress, btn)
                        self._fake(X.ButtonRelease, btn)
                finally:
                    self._release_all(down)
                    self._display().sync()

    async def cursor_position(self) -> tuple[int, int]:
        """The pointer position (x, y) in native pixels (XQueryPointer)."""
        async with self._lock, self._x("query the pointer"):
            reply = self._root_window().query_pointer()
            return int(reply.root_x), int(reply.root_y)

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
        async with self._lock, self._x("press keys"):
            seg = self._plan_keys([s for c in combos for s in c])
            plan = seg.strokes
            plans: list[list[tuple[int, bool]]] = []
            i = 0
            for combo in combos:
                plans.append(plan[i : i + len(combo)])
                i += len(combo)
            self._mark()
            async with self._remapped(seg):
                for _ in range(repeat):
                    for combo_plan in plans:
                        down = await self._press_keys_down(combo_plan)
                        self._release_all(down)
                        self._display().sync()

    async def hold_key(self, keys: str, duration_s: float) -> None:
        """Hold a key combination (all keys of all combos) for ``duration_s`` seconds.

        Raises:
            ToolInputError: an unknown key name or a duration outside 0-100 s.
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
        async with self._lock, self._x("hold keys"):
            seg = self._plan_keys([s for c in combos for s in c])
            self._mark()
            async with self._remapped(seg):
                down = await self._press_keys_down(seg.strokes)
                self._display().sync()
                try:
                    await asyncio.sleep(duration_s)
                finally:
                    self._release_all(down)
                    self._display().sync()

    async def type_text(self, text: str) -> None:
        """Type any Unicode text (``\\n`` = Return, ``\\t`` = Tab) into the focused window.

        Raises:
            ToolInputError: ``text`` is not a string or holds other control characters.
        """
        from Xlib import X

        text = normalise_text(text)
        if not text:
            return
        async with self._lock, self._x("type text"):
            assert self._keymap is not None
            keymap = self._keymap
            segments = plan_typing(text, keymap.state)
            self._mark()
            try:
                await type_segments(
                    segments,
                    keymap.state,
                    press=lambda kc: self._fake(X.KeyPress, kc),
                    release=lambda kc: self._fake(X.KeyRelease, kc),
                    shift_keycode=keymap.keycode("Shift_L"),
                    remap=keymap.remap,
                    sync=self._display().sync,
                    before_reuse=self._before_reuse,
                )
            except BaseException:
                with contextlib.suppress(Exception):  # re-read what is really mapped
                    keymap.refresh()
                raise
