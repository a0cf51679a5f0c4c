"""Screen capture with mss (MIT-SHM) and image encoding with Pillow.

Capture is in-process: mss's XShm backend grabs a 1280x800 frame in about 1 ms; the cost
of a screenshot is the encoding (``docs/desktop-backend.md``, "Capture"). mss 10's XCB
backends fail on some servers (TigerVNC's Xvnc); :class:`ScreenCapture` then falls back to
``backend="xlib"``.
"""

from __future__ import annotations

import io
import logging
from typing import Literal

from PIL import Image

from deskpilot.desktop.xauth import authority
from deskpilot.errors import ConfigError, DesktopError, MissingDependencyError

__all__ = ["ImageFormat", "ScreenCapture", "encode", "media_type"]

log = logging.getLogger(__name__)

ImageFormat = Literal["png", "jpeg", "webp"]

_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def media_type(fmt: ImageFormat) -> str:
    """The MIME type of an encoding format (``"png"`` -> ``"image/png"``)."""
    try:
        return _MEDIA_TYPES[fmt]
    except KeyError:
        raise ConfigError(f"Unknown image format {fmt!r}; use 'png', 'jpeg' or 'webp'.") from None


def encode(img: Image.Image, format: ImageFormat = "png", *, quality: int = 80) -> bytes:
    """Encode an RGB image to bytes.

    Args:
        img: the image (any mode; converted to RGB for JPEG).
        format: ``"png"`` (lossless, zlib level 1 with mss's writer: filter 0 on every row,
            which on UI screenshots is both faster and smaller than Pillow's adaptive
            filters: about 7 ms vs 16 ms at 1280x800), ``"jpeg"`` or ``"webp"``
            (``method=0``, the fast setting).
        quality: 1-100 for JPEG/WebP (ignored for PNG).

    Returns:
        The encoded file's bytes.

    Raises:
        ConfigError: an unknown format or a quality outside 1-100.
    """
    if not 1 <= quality <= 100:
        raise ConfigError(f"Image quality must be between 1 and 100, not {quality}.")
    buf = io.BytesIO()
    if format == "png":
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        try:
            from mss.tools import to_png
        except ImportError:  # Pillow's writer: about 2x slower on UI screenshots
            rgb.save(buf, "PNG", compress_level=1)
        else:
            data = to_png(rgb.tobytes(), rgb.size, level=1)
            assert data is not None
            return data
    elif format == "jpeg":
        (img if img.mode == "RGB" else img.convert("RGB")).save(buf, "JPEG", quality=quality)
    elif format == "webp":
        img.save(buf, "WEBP", quality=quality, method=0)
    else:
        media_type(format)  # raises ConfigError
    return buf.getvalue()


class ScreenCapture:
    """Grabs whole frames of one X display. Not thread-safe: use it from one thread.

    Args:
        display: the X display name (``":7"``).
    """

    def __init__(self, display: str, *, xauthority: str | None = None) -> None:
        self.display = display
        self.xauthority = xauthority
        self._sct = None
        self._backend = "default"

    def _open(self):
        try:
            import mss
        except ImportError as exc:
            raise MissingDependencyError(
                "Screen capture needs the 'mss' package; run: pip install 'deskpilot[desktop]'."
            ) from exc
        with authority(self.xauthority):  # libxcb reads XAUTHORITY as it connects
            return mss.MSS(display=self.display, backend=self._backend)

    def _grab(self):
        import mss.exception

        try:
            if self._sct is None:
                self._sct = self._open()
            return self._sct.grab(self._sct.monitors[1])
        except AssertionError as exc:
            # mss's XCB backends check a reply with ``assert``: no reply means the connection
            # failed (the X server died). Reported as a DesktopError, which the X backend
            # turns into DisplayDiedError once it has confirmed the server is gone.
            self.close()
            raise DesktopError(
                f"Could not capture display {self.display}: the X server sent no reply "
                "(connection lost)."
            ) from exc
        except mss.exception.ScreenShotError as exc:
            if self._backend == "default":
                log.info("mss default backend failed on %s (%s); trying 'xlib'", self.display, exc)
                self.close()
                self._backend = "xlib"
                try:
                    self._sct = self._open()
                    return self._sct.grab(self._sct.monitors[1])
                except mss.exception.ScreenShotError:
                    self.close()
                    self._backend = "default"
            raise DesktopError(
                f"Could not capture display {self.display}: {exc}. Check that the X server "
                "is running (deskpilot doctor)."
            ) from exc

    def grab_raw(self) -> tuple[bytes, tuple[int, int]]:
        """One frame as raw BGRX bytes (4 bytes per pixel, row-major) and its (width, height)."""
        shot = self._grab()
        return bytes(shot.raw), (shot.width, shot.height)

    def grab(self) -> Image.Image:
        """One frame as a PIL RGB image of the display's native size."""
        shot = self._grab()
        return Image.frombytes("RGB", (shot.width, shot.height), shot.bgra, "raw", "BGRX")

    def close(self) -> None:
        """Release the mss handle (safe to call twice)."""
        if self._sct is not None:
            try:
                self._sct.close()
            except Exception:  # the X server may already be gone
                log.debug("mss close failed", exc_info=True)
            self._sct = None
