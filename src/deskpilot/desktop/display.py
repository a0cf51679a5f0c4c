"""``X11Display``: the Computer protocol on an existing X display (no processes managed).

``X11Display(":0")`` drives a display someone else runs; :class:`deskpilot.desktop.local.LocalDesktop`
extends it with its own Xvfb, window manager and apps. Both delegate the protocol, in native
pixels, to :class:`deskpilot.desktop.x11.X11Computer`, whose X requests run in an X thread with
a response timeout (a display that does not answer is reported dead: :attr:`X11Display.dead`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

from deskpilot.desktop.capture import ImageFormat
from deskpilot.desktop.settle import SettleConfig
from deskpilot.desktop.x11 import DEFAULT_RESPONSE_TIMEOUT_S, X11Computer
from deskpilot.desktop.x11_windows import activate, active_window, client_list
from deskpilot.errors import ClosedError, ConfigError, DeskpilotTimeoutError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from deskpilot.desktop.base import MouseButton, ScrollDirection
    from deskpilot.desktop.prefetch import CapturePrefetch

__all__ = ["X11Display"]


def parse_settle(settle: bool | SettleConfig | None) -> SettleConfig | None:
    if settle is True:
        return SettleConfig()
    if settle is False or settle is None:
        return None
    if isinstance(settle, SettleConfig):
        return settle
    raise ConfigError(f"settle must be True, False or a SettleConfig, not {settle!r}.")


class X11Display:
    """Drive an existing X display (e.g. ``X11Display(":0")``); no processes are managed.

    Args:
        display: the X display name; required (deskpilot never drives your own display
            unless you name it).
        settle: True (default timing), False (no waiting), or a :class:`SettleConfig`. When
            on, :meth:`screenshot` after an input action waits until the screen settles.
        response_timeout_s: seconds one X round trip may take; a display that does not
            answer in time is reported dead ("not responding"; see :attr:`dead`).
        xauthority: the Xauthority file holding the display's cookie (e.g. the one a
            ``deskpilot desktop`` prints), or None for the environment's ``XAUTHORITY`` (or
            ``~/.Xauthority``), as any X client.

    Every X request runs in the backend's X thread, never on the event loop.

    Use as ``async with X11Display(":0") as d: ...``; after :meth:`close`, every method
    raises :class:`~deskpilot.errors.ClosedError`.
    """

    def __init__(
        self,
        display: str,
        *,
        settle: bool | SettleConfig = True,
        response_timeout_s: float = DEFAULT_RESPONSE_TIMEOUT_S,
        xauthority: str | None = None,
    ) -> None:
        self._check_display_name(display)
        if (
            isinstance(response_timeout_s, bool)
            or not isinstance(response_timeout_s, (int, float))
            or not 0 < response_timeout_s <= 600
        ):
            raise ConfigError(
                f"response_timeout_s must be a number of seconds from 0 to 600, not "
                f"{response_timeout_s!r}."
            )
        if xauthority is not None and not isinstance(xauthority, str):
            raise ConfigError(f"xauthority must be a file path or None, not {xauthority!r}.")
        self._display = display
        self._xauthority = xauthority
        self._settle_config = parse_settle(settle)
        self.response_timeout_s = float(response_timeout_s)
        self._backend: X11Computer | None = None
        self._closed = False
        self._started = False

    @staticmethod
    def _check_display_name(display: str) -> None:
        if not isinstance(display, str) or (not display.startswith(":") and ":" not in display):
            raise ConfigError(f"display must be an X display name such as ':0', not {display!r}.")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Self:
        """Connect to the display. Returns self.

        Raises:
            DesktopError: the display cannot be opened or has no XTEST.
        """
        self._ensure_open()
        backend = self._backend = self._make_backend()
        try:
            await backend.start()
        except BaseException:
            self._backend = None
            await backend.aclose()
            raise
        self._started = True
        return self

    def _make_backend(self) -> X11Computer:
        return X11Computer(
            self._display,
            settle=self._settle_config,
            is_alive=self._is_alive,
            response_timeout_s=self.response_timeout_s,
            xauthority=self._xauthority,
        )

    def _is_alive(self) -> bool:
        return True

    async def close(self) -> None:
        """Disconnect (idempotent)."""
        self._closed = True
        if self._backend is not None:
            backend, self._backend = self._backend, None
            await backend.aclose()

    async def aclose(self) -> None:
        """Same as :meth:`close` (the executors' spelling)."""
        await self.close()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_open(self) -> None:
        if self._closed:
            raise ClosedError(
                f"The desktop on display {self._display} is closed; create a new one."
            )

    def _b(self) -> X11Computer:
        self._ensure_open()
        if self._backend is None:
            raise ClosedError(
                "The desktop is not started; use 'async with' or await start() first."
            )
        return self._backend

    # ------------------------------------------------------------------ properties
    @property
    def display(self) -> str:
        """The X display name, e.g. ``":7"``."""
        return self._display

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for programs that should run on this desktop
        (``DISPLAY``, and ``XAUTHORITY`` when given; pass them to :func:`merged_env` to get a
        whole, credential-free environment)."""
        if self._xauthority is None:
            return {"DISPLAY": self._display}
        return {"DISPLAY": self._display, "XAUTHORITY": self._xauthority}

    @property
    def xauthority(self) -> str | None:
        """The Xauthority file deskpilot connects with (None: the environment's)."""
        return self._xauthority

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in native pixels."""
        return self._b().size

    @property
    def backend(self) -> X11Computer:
        """The X11 backend (for window queries and lower-level use)."""
        return self._b()

    @property
    def dead(self) -> bool:
        """True when the X server is gone or stopped answering (actions then raise
        :class:`~deskpilot.errors.DisplayDiedError`). False before start and after close."""
        backend = self._backend
        return backend is not None and not self._closed and backend.dead

    # ------------------------------------------------------------------ Computer protocol
    async def screenshot(self) -> PILImage:
        """The whole display as a PIL RGB image of :attr:`size` (after settling, if on)."""
        return await self._b().screenshot()

    async def screenshot_bytes(self, format: ImageFormat = "png", *, quality: int = 80) -> bytes:
        """A screenshot encoded as PNG (default), JPEG or WebP bytes (encoded in a thread)."""
        return await self._b().screenshot_bytes(format, quality=quality)

    async def move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y) native pixels."""
        await self._b().move(x, y)

    async def click(
        self,
        x: int | None = None,
        y: int | None = None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        """Click ``count`` times at (x, y) native pixels (or at the pointer) holding modifiers."""
        await self._b().click(x, y, button=button, count=count, modifiers=modifiers)

    async def mouse_down(self, button: MouseButton = "left") -> None:
        """Press a mouse button where the pointer is."""
        await self._b().mouse_down(button)

    async def mouse_up(self, button: MouseButton = "left") -> None:
        """Release a mouse button where the pointer is."""
        await self._b().mouse_up(button)

    async def drag(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        *,
        button: MouseButton = "left",
        modifiers: Sequence[str] = (),
    ) -> None:
        """Press at ``start``, move to ``end`` in steps, release (native pixels)."""
        await self._b().drag(start, end, button=button, modifiers=modifiers)

    async def scroll(
        self,
        direction: ScrollDirection,
        amount: int,
        *,
        x: int | None = None,
        y: int | None = None,
        modifiers: Sequence[str] = (),
    ) -> None:
        """Turn the wheel ``amount`` clicks at (x, y) or at the pointer."""
        await self._b().scroll(direction, amount, x=x, y=y, modifiers=modifiers)

    async def key(self, keys: str, *, repeat: int = 1) -> None:
        """Press key combos in xdotool syntax (aliases accepted), ``repeat`` times."""
        await self._b().key(keys, repeat=repeat)

    async def hold_key(self, keys: str, duration_s: float) -> None:
        """Hold keys down for ``duration_s`` seconds."""
        await self._b().hold_key(keys, duration_s)

    async def type_text(self, text: str) -> None:
        """Type any Unicode text into the focused window (``\\n`` Return, ``\\t`` Tab)."""
        await self._b().type_text(text)

    async def cursor_position(self) -> tuple[int, int]:
        """The pointer position in native pixels."""
        return await self._b().cursor_position()

    async def wait_settled(self, *, timeout_s: float = 2.0) -> float:
        """Wait until the screen settles (at most ``timeout_s``); returns seconds waited."""
        return await self._b().wait_settled(timeout_s=timeout_s)

    def prefetch_settled_png(self, *, timeout_s: float = 2.0) -> CapturePrefetch:
        """A PNG screenshot once the screen settles after the calling task's next input
        action, queued in the X thread right behind it
        (:meth:`X11Computer.prefetch_settled_png`)."""
        return self._b().prefetch_settled_png(timeout_s=timeout_s)

    # ------------------------------------------------------------------ windows
    async def active_window(self) -> int | None:
        """The X id of the active window (``_NET_ACTIVE_WINDOW``), or None."""
        return await self._b().run_x("read the active window", active_window)

    async def client_windows(self) -> list[int]:
        """X ids of the managed top-level windows (``_NET_CLIENT_LIST``)."""
        return await self._b().run_x("list windows", client_list)

    async def activate_window(self, window: int, *, timeout_s: float = 3.0) -> None:
        """Ask the window manager to focus ``window`` and wait until it is active.

        Raises:
            DeskpilotTimeoutError: the window did not become active within ``timeout_s``.
        """
        backend = self._b()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            await backend.run_x("activate a window", activate, window)
            for _ in range(10):
                if await self.active_window() == window:
                    return
                await asyncio.sleep(0.01)
            if loop.time() > deadline:
                raise DeskpilotTimeoutError(
                    f"Window {window:#x} did not become active within {timeout_s} s."
                )
