"""The X11 backend's connection: its X thread, response timeouts, error translation, keys.

:class:`X11Connection` is the base of :class:`deskpilot.desktop.x11.X11Computer` (the actions).
One X connection (python-xlib) and one capture handle (mss) per backend, used by one action at a
time (an ``asyncio.Lock``).

Nothing here talks to the X server on the event loop: every request, capture and keymap
change runs in the backend's own X thread (:mod:`deskpilot.desktop.xthread`) and is awaited
with a timeout of ``response_timeout_s`` seconds. A server that does not answer in time (a
SIGSTOPped or wedged Xvfb) makes the action fail with :class:`DisplayDiedError` "... is not
responding" and the backend dead; other tasks keep running meanwhile. Long text is typed in
chunks of :data:`~deskpilot.desktop.text_input.TYPE_CHUNK_STROKES` keystrokes, each its own
round trip (so the time per character is constant and the action can be cancelled between
chunks; python-xlib's request buffer grows quadratically when thousands of requests are queued
before one flush).

All coordinates are native display pixels (``deskpilot.desktop.base``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from deskpilot.desktop.capture import ScreenCapture
from deskpilot.desktop.keys import keysym_for_name
from deskpilot.desktop.prefetch import CapturePrefetch, arming, capture_job
from deskpilot.desktop.settle import DamageSettler, SettleConfig, Settler, make_settler
from deskpilot.desktop.text_input import (
    REMAP_SETTLE_S,
    REUSE_GRACE_S,
    REUSE_MIN_S,
    Segment,
    plan_keysyms,
)
from deskpilot.desktop.xauth import authority
from deskpilot.desktop.xtest_batch import send_fake_inputs
from deskpilot.desktop.xthread import XThread
from deskpilot.errors import (
    ClosedError,
    DesktopError,
    DisplayDiedError,
    MissingDependencyError,
    ToolInputError,
)

if TYPE_CHECKING:
    from Xlib.display import Display
    from Xlib.xobject.drawable import Window

    from deskpilot.desktop.keymap import Keymap

__all__ = ["BUTTONS", "DEFAULT_RESPONSE_TIMEOUT_S", "SCROLL_BUTTONS", "X11Connection"]

log = logging.getLogger(__name__)

T = TypeVar("T")

BUTTONS: dict[str, int] = {"left": 1, "middle": 2, "right": 3}
SCROLL_BUTTONS: dict[str, int] = {"up": 4, "down": 5, "left": 6, "right": 7}
DEFAULT_RESPONSE_TIMEOUT_S = 10.0
"""Seconds one X round trip (a request batch, a capture) may take before the desktop counts as
not responding. A healthy Xvfb answers in well under 100 ms even on a loaded 2-core machine."""

Stroke = tuple[int, bool]
ALIVE_CHECK_S = 0.05
"""Seconds an owner's "the X server runs" answer (a ``/proc`` read) is trusted before an
action asks again; a server that died meanwhile fails the X request, which is then reported
as :class:`DisplayDiedError` all the same (``_confirm_dead``)."""


def _died_message(display: str) -> str:
    return (
        f"The X server of display {display} is no longer running, so the desktop and "
        "everything open on it are gone; the desktop must be restarted (LocalDesktop.restart(), "
        "which the agent does once by itself)."
    )


def _hung_message(display: str, timeout_s: float) -> str:
    return (
        f"The desktop on display {display} is not responding: its X server did not answer "
        f"within {timeout_s:g} s (response_timeout_s). It counts as dead; it must be "
        "restarted (LocalDesktop.restart(), which the agent does once by itself)."
    )


class X11Connection:
    """One X display's connection, X thread and keyboard state (base of ``X11Computer``).

    Args:
        display: X display name (``":7"``).
        settle: settle detector timing, or None to never wait for the screen (screenshots
            are then taken immediately after actions).
        is_alive: returns False when the owner knows the X server has exited (used to turn
            connection errors into :class:`DisplayDiedError`).
        response_timeout_s: seconds one X round trip may take (see the module docstring).
        xauthority: the Xauthority file holding the display's cookie (a
            :class:`~deskpilot.desktop.local.LocalDesktop`'s), or None to use the
            environment's ``XAUTHORITY`` as any X client does (see
            :mod:`deskpilot.desktop.xauth`).

    Raises (from every action):
        DisplayDiedError: the X server is gone or did not answer within
            ``response_timeout_s`` (the backend is dead from then on).
        DesktopError: any other X failure.
        ToolInputError: bad input (unknown key name, coordinates off the screen, ...).
        ClosedError: used after :meth:`aclose`.
    """

    def __init__(
        self,
        display: str,
        *,
        settle: SettleConfig | None = None,
        is_alive: Callable[[], bool] | None = None,
        response_timeout_s: float = DEFAULT_RESPONSE_TIMEOUT_S,
        xauthority: str | None = None,
    ) -> None:
        self.display_name = display
        self.xauthority = xauthority
        self.response_timeout_s = float(response_timeout_s)
        self._settle_config = settle
        self._owner_is_alive = is_alive
        self._is_alive = is_alive or (lambda: True)
        self._lock = asyncio.Lock()
        self._thread: XThread | None = None
        self._d: Display | None = None
        self._root: Window | None = None
        self._keymap: Keymap | None = None
        self._capture: ScreenCapture | None = None
        self._settler: Settler | DamageSettler | None = None
        self._prefetch: CapturePrefetch | None = None
        self._size = (0, 0)
        self._closed = False
        self._dead = False
        self._hung = False
        self._held_buttons: set[int] = set()
        self._fake_cache: dict[tuple[int, int], bytes] = {}
        self._alive_at = -1e9  # when the owner last said the server runs (monotonic s)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect to the display in the X thread (XTEST required); read size and keymap.

        Raises:
            DesktopError: the display cannot be opened or lacks XTEST.
            DisplayDiedError: it did not answer within ``response_timeout_s``.
            MissingDependencyError: python-xlib or mss is not installed.
        """
        if self._thread is None:
            self._thread = XThread(f"deskpilot-x11-{self.display_name}")
        fut = self._thread.submit(self._open)
        try:
            await asyncio.wait_for(asyncio.wrap_future(fut), self.response_timeout_s)
        except TimeoutError:
            self._dead = self._hung = True
            raise DisplayDiedError(
                _hung_message(self.display_name, self.response_timeout_s)
            ) from None

    def _open(self) -> None:
        try:
            from Xlib import display as xdisplay
            from Xlib import error as xerror
        except ImportError as exc:
            raise MissingDependencyError(
                "The X11 desktop needs python-xlib; run: pip install 'deskpilot[desktop]'."
            ) from exc
        from deskpilot.desktop.keymap import Keymap

        try:
            with authority(self.xauthority):
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
        self._capture = ScreenCapture(self.display_name, xauthority=self.xauthority)
        if self._settle_config is not None:  # DAMAGE notifications where the server has them
            self._settler = make_settler(
                self._capture, self._settle_config, self._call, xauthority=self.xauthority
            )
        self._closed = False
        self._dead = False

    def _on_x_error(self, err: object, *args: object) -> None:
        log.warning("X error on %s: %s", self.display_name, err)

    async def aclose(self) -> None:
        """Release every held button and assigned keycode, close the connection and end the
        X thread (safe to call twice; never blocks on a dead or hung server)."""
        if self._closed:
            return
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is None:
            return
        tidy = False
        if not self._dead and self._is_alive():
            fut = thread.submit(self._close_connection, True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.wrap_future(fut), min(2.0, self.response_timeout_s))
                tidy = True
        if not tidy:  # unblock a call stuck on a hung server, then close in order
            self._abort_connection()
            thread.submit(self._close_connection, False)
        thread.stop()

    def close(self) -> None:
        """Close without waiting (no X requests; for a dead or hung server, or a finaliser).
        Prefer ``await aclose()``, which also releases held buttons and keycodes."""
        if self._closed:
            return
        self._closed = True
        thread, self._thread = self._thread, None
        self._abort_connection()
        if thread is not None:
            thread.submit(self._close_connection, False)
            thread.stop()

    def _close_connection(self, tidy: bool) -> None:
        """In the X thread: release buttons and keycodes (``tidy``), close both connections."""
        if self._d is not None:
            if tidy:
                with contextlib.suppress(Exception):
                    from Xlib import X
                    from Xlib.ext import xtest

                    for b in sorted(self._held_buttons):
                        xtest.fake_input(self._d, X.ButtonRelease, b)
                    if self._keymap is not None:
                        self._keymap.restore_all()
                    self._d.sync()
            with contextlib.suppress(Exception):
                self._d.close()
        if isinstance(self._settler, DamageSettler):
            self._settler.close()
        if self._capture is not None:
            self._capture.close()
        self._d = None

    def _abort_connection(self) -> None:
        """From any thread: shut the X socket down so a call blocked on it returns at once."""
        import socket

        d = self._d
        sock = getattr(getattr(d, "display", None), "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def dead(self) -> bool:
        """True once the X server is known to be gone or not responding."""
        if not self._dead and not self._closed and not self._is_alive():
            self._dead = True
        return self._dead

    @property
    def hung(self) -> bool:
        """True when the X server stopped answering (within ``response_timeout_s``)."""
        return self._hung

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the display in native pixels."""
        return self._size

    async def run_x(self, what: str, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(xdisplay, *args)`` in the X thread under the connection lock, with X
        errors translated and the response timeout (for window queries: client lists,
        activation, properties). ``what`` completes "The X server refused to ..."."""
        async with self._lock:
            return await self._call(what, lambda: fn(self._d, *args))

    async def settle_mark(self) -> None:
        """Record the current frame as the 'before' of an action done outside this backend
        (e.g. an app launch), so the next screenshot waits for the screen to settle."""
        if self._settler is not None and not self._closed and not self._dead:
            with contextlib.suppress(DesktopError):
                async with self._lock:
                    await self._call("capture the screen", self._settler.mark)

    # ------------------------------------------------------------------ plumbing
    def _check(self) -> None:
        if self._closed or self._thread is None:
            raise ClosedError(
                f"The desktop on display {self.display_name} is closed; start a new one."
            )
        if self._hung:
            raise DisplayDiedError(_hung_message(self.display_name, self.response_timeout_s))
        now = time.monotonic()
        if self._dead or (now - self._alive_at > ALIVE_CHECK_S and not self._is_alive()):
            self._dead = True
            raise DisplayDiedError(_died_message(self.display_name))
        self._alive_at = now

    async def _call(
        self,
        what: str,
        fn: Callable[..., T],
        *args: Any,
        extra_s: float = 0.0,
        last: Callable[[T], bool] | None = None,
    ) -> T:
        """Run ``fn(*args)`` in the X thread with ``response_timeout_s`` (plus ``extra_s``
        for a job that waits on purpose: settling); X errors translated. ``last``: this is
        an input action's last job when ``last(result)`` is true; a pending
        :class:`~deskpilot.desktop.prefetch.CapturePrefetch` of the calling task is then
        queued right behind it.

        Raises:
            DisplayDiedError: the server is gone, or did not answer in time (then the
                backend is dead and the call may still be stuck in the X thread).
        """
        self._check()
        assert self._thread is not None
        p = self._take_prefetch() if last is not None else None
        if p is not None and last is not None:
            fn = arming(fn, last, p)
        fut = self._thread.submit(self._in_thread, what, fn, args)
        if p is not None:
            self._queue_capture(p)
        return await self._await_job(fut, extra_s)

    def _take_prefetch(self) -> CapturePrefetch | None:
        p = self._prefetch
        if p is None or p.task is not asyncio.current_task():
            return None
        self._prefetch = None
        return p if isinstance(self._settler, DamageSettler) else None

    def _queue_capture(self, p: CapturePrefetch) -> None:
        """Queue ``p``'s settle-and-capture job in the X thread (behind the input's job)."""
        settler, capture, thread = self._settler, self._capture, self._thread
        assert isinstance(settler, DamageSettler) and capture is not None and thread is not None
        job = capture_job(p, settler, capture)
        fut = thread.submit(self._in_thread, "capture the screen", job, ())
        p.attach(fut, lambda q: self._await_job(fut, q.cap_s), settler)

    async def _await_job(self, fut: concurrent.futures.Future[T], extra_s: float) -> T:
        """The result of a job queued in the X thread, within ``response_timeout_s`` plus
        ``extra_s`` (else the backend is marked hung: DisplayDiedError)."""
        try:
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for drops a cancellation
            # that arrives together with the result, and a cancelled action would go on.
            async with asyncio.timeout(self.response_timeout_s + extra_s):
                return await asyncio.wrap_future(fut)
        except TimeoutError:
            self._dead = self._hung = True
            log.warning(
                "X server of %s did not answer within %g s",
                self.display_name,
                self.response_timeout_s,
            )
            raise DisplayDiedError(
                _hung_message(self.display_name, self.response_timeout_s)
            ) from None

    def _in_thread(self, what: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._closed or self._d is None:
            raise ClosedError(
                f"The desktop on display {self.display_name} is closed; start a new one."
            )
        self._drain_events()
        try:
            return fn(*args)
        except (ClosedError, ToolInputError, DisplayDiedError):
            raise
        except BaseException as exc:
            new = self._translate(what, exc)
            if new is None:
                raise
            raise new from exc

    def _display(self) -> Display:
        """The open connection (ClosedError after close; the X thread only)."""
        if self._d is None:
            raise ClosedError(
                f"The desktop on display {self.display_name} is closed; start a new one."
            )
        return self._d

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
        """After a failure, in the X thread: is the X server gone? (Waits up to 0.3 s.)

        A server killed a moment ago may already have closed its sockets while its process
        is still exiting, so the owner's liveness check is polled briefly; without an owner,
        a fresh connection attempt decides. This runs in the X thread, never on the loop.
        """
        if self._owner_is_alive is None:
            from Xlib import display as xdisplay
            from Xlib import error as xerror

            try:
                with authority(self.xauthority):
                    probe = xdisplay.Display(self.display_name)
                probe.close()
            except (xerror.DisplayError, xerror.ConnectionClosedError, OSError):
                return True
            return False
        deadline = time.monotonic() + 0.3
        while True:
            if not self._owner_is_alive():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)  # the X thread's own wait; the event loop is not blocked

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

    def _plan_keys(self, keysyms: Sequence[int]) -> Segment:
        """In the X thread: one segment of keystrokes for keys pressed together."""
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

    def _press_keys_down(self, plan: Sequence[Stroke]) -> list[int]:
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

    def _type_strokes(self, strokes: Sequence[Stroke]) -> None:
        """In the X thread: type one chunk (each key pressed and released), then sync."""
        from Xlib import X

        assert self._keymap is not None
        state = self._keymap.state
        shift = self._keymap.keycode("Shift_L")
        spare = set(state.spares)
        now = time.monotonic()
        events: list[tuple[int, int]] = []
        for keycode, shifted in strokes:
            if shifted:
                events.append((X.KeyPress, shift))
            events.append((X.KeyPress, keycode))
            events.append((X.KeyRelease, keycode))
            if shifted:
                events.append((X.KeyRelease, shift))
            if keycode in spare:
                state.last_used[keycode] = now
        self._fake_many(events)
        self._display().sync()

    def _fake_many(self, events: Sequence[tuple[int, int]]) -> None:
        """Queue many XTEST events as one write (the X thread only; see ``xtest_batch``)."""
        send_fake_inputs(self._display(), events, self._fake_cache)

    def _remap_sync(self, remap: dict[int, int]) -> None:
        assert self._keymap is not None
        self._keymap.remap(remap)
        self._display().sync()

    async def _apply_remap(self, remap: dict[int, int]) -> None:
        """Map spare keycodes for a segment: first let the app read keystrokes that recently
        used them (screen settled, at least ``REUSE_MIN_S`` later), then remap and give
        clients ``REMAP_SETTLE_S`` to read the new map."""
        if not remap:
            return
        assert self._keymap is not None
        state = self._keymap.state
        recent = max((state.last_used.get(kc, -1e9) for kc in remap), default=-1e9)
        if time.monotonic() - recent < REUSE_GRACE_S:
            await self._before_reuse()
            wait = REUSE_MIN_S - (time.monotonic() - recent)
            if wait > 0:
                await asyncio.sleep(wait)
        await self._call("change the keyboard map", self._remap_sync, remap)
        await asyncio.sleep(REMAP_SETTLE_S)

    def _touch(self, seg: Segment) -> None:
        """Record that a key action used the segment's spare keycodes (reuse grace)."""
        assert self._keymap is not None
        now = time.monotonic()
        assigned = set(self._keymap.state.assigned.values())
        for kc, _ in seg.strokes:
            if kc in seg.remap or kc in assigned:
                self._keymap.state.last_used[kc] = now

    async def _before_reuse(self) -> None:
        """Before reassigning a recently pressed spare keycode: let the app read its events
        (wait for the screen to be quiet, at most 0.5 s)."""
        if self._settler is not None:
            self._settler.discard()
            await self._settler.wait(timeout_s=0.5)
            await self._call("capture the screen", self._settler.mark)
            return
        await asyncio.sleep(0.2)

    def _refresh_keymap_later(self) -> None:
        """After a failed or cancelled typing action: re-read what is really mapped (queued in
        the X thread; not awaited, so it is safe while being cancelled)."""
        if self._thread is not None and self._keymap is not None and not self._dead:
            with contextlib.suppress(RuntimeError):
                self._thread.submit(
                    self._in_thread, "read the keyboard map", self._keymap.refresh, ()
                )
