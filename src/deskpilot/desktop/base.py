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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

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


MAX_OUTPUT_BYTES = 2**20
"""Bytes of each of a command's stdout and stderr kept by :meth:`DesktopHost.run_command`."""
MAX_FILE_BYTES = 64 * 2**20
"""The default limit of :meth:`DesktopHost.get_file`, in bytes."""


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """What a command run by :meth:`DesktopHost.run_command` left.

    Attributes:
        returncode: its exit status; None when it was killed at its time limit or started
            in the background.
        stdout: its standard output, UTF-8 (undecodable bytes replaced), at most
            :data:`MAX_OUTPUT_BYTES` bytes (the rest dropped, with a note at the end).
        stderr: its standard error, the same way.
        timed_out: it was killed at its time limit.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """It exited with status 0."""
        return self.returncode == 0


@runtime_checkable
class DesktopHost(Protocol):
    """The machine a desktop runs on: commands, files, reset and health.

    What evaluation set-up and checks, desktop pools and the computer server need beyond the
    :class:`Computer` protocol. ``LocalDesktop`` implements it on this machine
    (:mod:`deskpilot.desktop.host`); ``RemoteDesktop`` over the computer server's protocol
    (``docs/computer-server.md``). Paths: ``~``, ``~/x`` and relative paths are under the
    desktop's HOME; absolute paths are the host's own.
    """

    async def run_command(
        self,
        command: str | Sequence[str],
        *,
        timeout_s: float = 60.0,
        background: bool = False,
        cwd: str | None = None,
    ) -> CommandOutput:
        """Run ``command`` (a string through ``bash -c``; a list exec'd as is) as the
        desktop's programs run: its environment (``DISPLAY``, ``XAUTHORITY``, its HOME), in
        ``cwd`` (default HOME), in its own PID and mount namespace where the system allows.

        A program that is not found gives returncode 127 and a sentence in ``stderr``. At
        ``timeout_s`` seconds the command's process group is killed (returncode None,
        ``timed_out``). ``background=True`` leaves it running (until :meth:`reset` or the
        desktop's close) and returns at once with returncode None.

        Raises:
            DesktopError: the desktop is not running.
        """
        ...

    async def put_file(self, path: str, data: bytes) -> str:
        """Write ``data`` to ``path`` (parent directories created); returns the absolute
        path written.

        Raises:
            DesktopError: the file cannot be written (the sentence says why).
        """
        ...

    async def get_file(self, path: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The bytes of the file at ``path``.

        Raises:
            DesktopError: no file there, it is not a regular file, or it is larger than
                ``max_bytes`` bytes.
        """
        ...

    def resolve_path(self, path: str) -> str:
        """The absolute path :meth:`put_file` and :meth:`get_file` use for ``path``."""
        ...

    async def reset(self) -> None:
        """Make the desktop fresh: every program and window gone, a new empty HOME, the
        configured apps started again. The display name may change (read ``env`` again).

        Raises:
            DesktopError: the desktop could not start again.
        """
        ...

    async def health(self) -> dict[str, Any]:
        """``{"ok": bool, "display": str, "width": int, "height": int, "detail": str}``
        (``detail``: a sentence, e.g. why it is not ok). Never raises."""
        ...


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_OUTPUT_BYTES",
    "CommandOutput",
    "Computer",
    "DesktopHost",
    "MouseButton",
    "ScrollDirection",
]
