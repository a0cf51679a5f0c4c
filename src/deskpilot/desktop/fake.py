"""An in-memory :class:`~deskpilot.desktop.base.Computer` for fast tests: records calls.

``FakeComputer`` keeps a pointer position, records every call as ``(method, kwargs)`` in
:attr:`FakeComputer.calls`, and returns a synthetic screenshot whose pixel colours encode
their own native coordinates (so crops and resizes can be checked exactly). Nothing is
pressed anywhere; it is not a desktop, only the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import DesktopError, ToolInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

_KEY_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def coordinate_image(width: int, height: int) -> PILImage:
    """An RGB image whose pixel (x, y) is ``(x % 256, y % 256, (x // 256) * 16 + y // 256)``."""
    import numpy as np
    from PIL import Image

    xs = np.arange(width, dtype=np.uint32)[None, :].repeat(height, 0)
    ys = np.arange(height, dtype=np.uint32)[:, None].repeat(width, 1)
    arr = np.stack([xs % 256, ys % 256, ((xs // 256) * 16 + ys // 256) % 256], axis=-1)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


class FakeComputer:
    """A recording fake of the Computer protocol (native pixels).

    Args:
        width / height: the native display size in pixels.
        image: a fixed screenshot to return (resized to the display size); by default
            :func:`coordinate_image`.
        fail: ``{method_name: exception}`` to raise from that method (e.g. a
            :class:`~deskpilot.errors.DesktopError`) to test error paths.

    Key names are validated like a real backend (letters, digits and ``_`` per key, or one
    character; ``+`` joins a combination, spaces separate presses): a bad name raises
    :class:`~deskpilot.errors.ToolInputError` and records nothing.
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 800,
        *,
        image: PILImage | None = None,
        fail: dict[str, BaseException] | None = None,
    ) -> None:
        self._size = (int(width), int(height))
        self._image = image
        self.fail: dict[str, BaseException] = dict(fail or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pointer: tuple[int, int] = (0, 0)
        self.buttons_down: set[str] = set()
        self.typed: list[str] = []

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _record(self, method: str, **kwargs: Any) -> None:
        if method in self.fail:
            raise self.fail[method]
        self.calls.append((method, kwargs))

    def _check_point(self, x: int, y: int) -> None:
        w, h = self._size
        if not (0 <= x < w and 0 <= y < h):
            raise DesktopError(f"({x}, {y}) is outside the {w}x{h} display.")

    @staticmethod
    def check_keys(keys: str | Sequence[str]) -> None:
        """Raise ToolInputError for a malformed key name (nothing is pressed)."""
        combos = keys.split() if isinstance(keys, str) else list(keys)
        if not combos:
            raise ToolInputError("No key given; send a key name such as 'Return' or 'ctrl+s'.")
        for combo in combos:
            for name in combo.split("+") if combo != "+" else ["+"]:
                if len(name) == 1 or _KEY_NAME.match(name):
                    continue
                raise ToolInputError(f"Unknown key name {name!r} in {keys!r}.")

    async def screenshot(self) -> PILImage:
        self._record("screenshot")
        if self._image is None:
            self._image = coordinate_image(*self._size)
        elif self._image.size != self._size:
            self._image = self._image.resize(self._size)
        return self._image.copy()

    async def move(self, x: int, y: int) -> None:
        self._check_point(x, y)
        self._record("move", x=x, y=y)
        self.pointer = (x, y)

    async def click(
        self,
        x: int | None = None,
        y: int | None = None,
        *,
        button: str = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        if modifiers:
            self.check_keys("+".join(modifiers))
        if x is not None and y is not None:
            self._check_point(x, y)
        self._record("click", x=x, y=y, button=button, count=count, modifiers=tuple(modifiers))
        if x is not None and y is not None:
            self.pointer = (x, y)

    async def mouse_down(self, button: str = "left") -> None:
        self._record("mouse_down", button=button)
        self.buttons_down.add(button)

    async def mouse_up(self, button: str = "left") -> None:
        self._record("mouse_up", button=button)
        self.buttons_down.discard(button)

    async def drag(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        *,
        button: str = "left",
        modifiers: Sequence[str] = (),
    ) -> None:
        if modifiers:
            self.check_keys("+".join(modifiers))
        self._check_point(*start)
        self._check_point(*end)
        self._record("drag", start=start, end=end, button=button, modifiers=tuple(modifiers))
        self.pointer = end

    async def scroll(
        self,
        direction: str,
        amount: int,
        *,
        x: int | None = None,
        y: int | None = None,
        modifiers: Sequence[str] = (),
    ) -> None:
        if modifiers:
            self.check_keys("+".join(modifiers))
        self._record(
            "scroll", direction=direction, amount=amount, x=x, y=y, modifiers=tuple(modifiers)
        )
        if x is not None and y is not None:
            self.pointer = (x, y)

    async def key(self, keys: str, *, repeat: int = 1) -> None:
        self.check_keys(keys)
        self._record("key", keys=keys, repeat=repeat)

    async def hold_key(self, keys: str, duration_s: float) -> None:
        self.check_keys(keys)
        self._record("hold_key", keys=keys, duration_s=duration_s)

    async def type_text(self, text: str) -> None:
        self._record("type_text", text=text)
        self.typed.append(text)

    async def cursor_position(self) -> tuple[int, int]:
        self._record("cursor_position")
        return self.pointer

    async def wait_settled(self, *, timeout_s: float = 2.0) -> float:
        self._record("wait_settled", timeout_s=timeout_s)
        return 0.0

    def names(self) -> list[str]:
        """The recorded method names, in order (screenshots and settles included)."""
        return [name for name, _ in self.calls]

    def actions(self) -> list[tuple[str, dict[str, Any]]]:
        """The recorded calls without ``screenshot``/``wait_settled``/``cursor_position``."""
        skip = {"screenshot", "wait_settled", "cursor_position"}
        return [(n, kw) for n, kw in self.calls if n not in skip]


__all__ = ["FakeComputer", "coordinate_image"]
