"""The Computer protocol: what an executor needs from a desktop, in native pixels.

Executors (``deskpilot.computer_use``) speak only this protocol; backends (the X11 one in
``deskpilot.desktop.x11``, an in-memory fake for tests) implement it. Every coordinate here
is in **native** display pixels; the model-space conversion happens once, in
``deskpilot.computer_use.scaling``.

Every method may raise :class:`deskpilot.errors.DesktopError` (or its subclass
:class:`~deskpilot.errors.DisplayDiedError` when the X server is gone) and
:class:`~deskpilot.errors.ToolInputError` for an unknown key name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

MouseButton = Literal["left", "right", "middle"]
ScrollDirection = Literal["up", "down", "left", "right"]


@runtime_checkable
class Computer(Protocol):
    """A drivable screen with a mouse and keyboard. All coordinates in native pixels."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the display in native pixels."""
        ...

    async def screenshot(self) -> PILImage:
        """Capture the whole display as an RGB image of :attr:`size`."""
        ...

    async def move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y)."""
        ...

    async def click(
        self,
        x: int | None = None,
        y: int | None = None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        """Click ``count`` times (2 = double, 3 = triple) at (x, y), or where the pointer
        is when x/y are None, holding ``modifiers`` (key names such as ``"ctrl"``, ``"shift"``)."""
        ...

    async def mouse_down(self, button: MouseButton = "left") -> None:
        """Press (and keep pressed) a mouse button where the pointer is."""
        ...

    async def mouse_up(self, button: MouseButton = "left") -> None:
        """Release a mouse button where the pointer is."""
        ...

    async def drag(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        *,
        button: MouseButton = "left",
        modifiers: Sequence[str] = (),
    ) -> None:
        """Press at ``start``, move to ``end`` in steps, release; ``modifiers`` held throughout."""
        ...

    async def scroll(
        self,
        direction: ScrollDirection,
        amount: int,
        *,
        x: int | None = None,
        y: int | None = None,
        modifiers: Sequence[str] = (),
    ) -> None:
        """Turn the wheel ``amount`` clicks (X buttons 4-7) at (x, y) or at the pointer."""
        ...

    async def key(self, keys: str, *, repeat: int = 1) -> None:
        """Press a key combination in xdotool syntax (``"ctrl+s"``, ``"Return"``, ``"KP_0"``),
        or several separated by spaces, ``repeat`` times. Model aliases (``enter``, ``esc``,
        ``cmd``, ``pgdn``, ...) are accepted; an unknown name raises ToolInputError."""
        ...

    async def hold_key(self, keys: str, duration_s: float) -> None:
        """Hold a key combination down for ``duration_s`` seconds, then release it."""
        ...

    async def type_text(self, text: str) -> None:
        """Type any Unicode text; ``\\n`` is Return and ``\\t`` is Tab."""
        ...

    async def cursor_position(self) -> tuple[int, int]:
        """The pointer position (x, y) in native pixels."""
        ...

    async def wait_settled(self, *, timeout_s: float = 2.0) -> float:
        """Wait until the screen stops changing (first change, then a quiet window; caret
        blinks ignored), at most ``timeout_s`` seconds. Returns the seconds waited."""
        ...


__all__ = ["Computer", "MouseButton", "ScrollDirection"]
