"""Screen capture with mss (MIT-SHM) and image encoding with Pillow.

Capture is in-process: mss's XShm backend grabs a 1280x800 frame in about 1 ms, into one
preallocated buffer per display; the cost of a screenshot is the encoding
(``docs/desktop-backend.md``, "Capture"), which uses ISA-L's deflate when ``isal`` is
installed (10x faster than zlib's fastest level). mss 10's XCB
backends fail on some servers (TigerVNC's Xvnc); :class:`ScreenCapture` then falls back to
``backend="xlib"``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import numpy as np
from PIL import Image

from deskpilot.desktop.xauth import authority
from deskpilot.errors import ConfigError, DesktopError, MissingDependencyError

__all__ = [
    "FramePng",
    "ImageFormat",
    "ScreenCapture",
    "encode",
    "media_type",
    "png_bytes",
    "png_from_frame",
]

log = logging.getLogger(__name__)

ImageFormat = Literal["png", "jpeg", "webp"]

_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def media_type(fmt: ImageFormat) -> str:
    """The MIME type of an encoding format (``"png"`` -> ``"image/png"``)."""
    try:
        return _MEDIA_TYPES[fmt]
    except KeyError:
        raise ConfigError(f"Unknown image format {fmt!r}; use 'png', 'jpeg' or 'webp'.") from None


def _deflate() -> Callable[[Any], bytes]:
    """The fastest zlib-format compressor installed: ISA-L's level 1 (``isal``, the desktop
    extra: about 0.9 ms for a 1280x800 screenshot) or zlib's level 1 (about 8.5 ms)."""
    try:
        from isal import isal_zlib
    except ImportError:
        return lambda data: zlib.compress(data, 1)
    return lambda data: bytes(isal_zlib.compress(data, 1))


def _band_codec() -> tuple[Callable[[Any], bytes], Callable[[Any], int]]:
    """``(deflate, adler32)`` for one band of scanlines: raw deflate (no zlib header) at the
    fastest level, ended with a sync flush (byte-aligned, no final block), so the bands of a
    frame, each compressed on its own, can be joined into one stream (RFC 1951, §3.2.3:
    blocks are read in sequence until one has BFINAL set; RFC 1950 for the zlib wrapper)."""
    try:
        from isal import isal_zlib
    except ImportError:

        def zdeflate(data: Any) -> bytes:
            c = zlib.compressobj(1, zlib.DEFLATED, -15)
            return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)

        return zdeflate, zlib.adler32

    def deflate(data: Any) -> bytes:
        c = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
        return bytes(c.compress(data) + c.flush(isal_zlib.Z_SYNC_FLUSH))

    return deflate, isal_zlib.adler32


_compress: Callable[[Any], bytes] | None = None
_band_deflate: Callable[[Any], bytes] | None = None
_band_adler: Callable[[Any], int] | None = None

BAND_ROWS = 32
"""Scanlines per independently compressed band of a frame's PNG (:class:`FramePng`)."""

_ADLER_BASE = 65521
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, fastest level (RFC 1950, §2.2)
_FINAL_BLOCK = b"\x03\x00"  # an empty fixed-Huffman block with BFINAL set


def _adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """The Adler-32 of ``A + B`` from those of ``A`` and ``B`` (``len2 = len(B)``): zlib's
    ``adler32_combine`` (RFC 1950, §8.2 defines the checksum; Python does not expose it)."""
    rem = len2 % _ADLER_BASE
    s1 = adler1 & 0xFFFF
    s2 = (rem * s1) % _ADLER_BASE
    s1 = (s1 + (adler2 & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    s2 = (s2 + (adler1 >> 16) + (adler2 >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    return s1 | (s2 << 16)


Band = tuple[bytes, int, int]
"""One compressed band: (raw deflate bytes, Adler-32 of its scanlines, their length)."""


def _zlib_stream(bands: list[Band]) -> bytes:
    """Join compressed bands into one zlib stream (header, the bands, a final empty block,
    the Adler-32 of all scanlines)."""
    adler = 1
    for _data, a, n in bands:
        adler = _adler32_combine(adler, a, n)
    return b"".join((_ZLIB_HEADER, *(b[0] for b in bands), _FINAL_BLOCK, struct.pack(">I", adler)))


class _RowsPool:
    """Scanline buffers ``(h, 1 + 3 w)`` (filter byte 0 on every row) shared by every thread:
    a desktop borrows one for an encode and gives it back, so a fleet holds about as many
    as encode at once (not one per desktop thread, 3 MB each at 1280x800)."""

    def __init__(self, keep: int = 4) -> None:
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._keep = keep

    @contextlib.contextmanager
    def borrow(self, w: int, h: int) -> Iterator[np.ndarray]:
        shape = (h, 1 + 3 * w)
        rows: np.ndarray | None = None
        with self._lock:
            for i, buf in enumerate(self._free):
                if buf.shape == shape:
                    rows = self._free.pop(i)
                    break
        if rows is None:
            rows = np.zeros(shape, dtype=np.uint8)
        try:
            yield rows
        finally:
            with self._lock:
                if len(self._free) < self._keep:
                    self._free.append(rows)


_rows = _RowsPool()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def _png_file(w: int, h: int, stream: bytes) -> bytes:
    """An 8-bit RGB PNG of ``w`` x ``h`` pixels around a zlib stream of its scanlines."""
    header = struct.pack(">2I5B", w, h, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", stream),
            _chunk(b"IEND", b""),
        )
    )


def _png(rows: np.ndarray, w: int, h: int) -> bytes:
    global _compress
    if _compress is None:
        _compress = _deflate()
    return _png_file(w, h, _compress(rows))


def png_bytes(img: Image.Image) -> bytes:
    """A PNG of an image (converted to RGB): filter 0 on every row (on UI screenshots both
    faster and smaller than adaptive filters), deflate at its fastest level (:func:`_deflate`)."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    w, h = rgb.size
    with _rows.borrow(w, h) as rows:
        rows[:, 1:] = np.frombuffer(rgb.tobytes(), dtype=np.uint8).reshape(h, 3 * w)
        return _png(rows, w, h)


def _bgrx_to_rgb(frame: np.ndarray, rows: np.ndarray) -> None:
    """Write a ``(h, w)`` ``uint32`` BGRX frame's pixels into ``(h, 1 + 3 w)`` scanlines."""
    h, w = frame.shape
    bgrx = frame.view(np.uint8).reshape(h, w, 4)
    rgb = rows[:, 1:].reshape(h, w, 3)
    rgb[:, :, 0] = bgrx[:, :, 2]
    rgb[:, :, 1] = bgrx[:, :, 1]
    rgb[:, :, 2] = bgrx[:, :, 0]


def _compress_bands(frame: np.ndarray, which: Iterable[int], out: list[Band]) -> None:
    """Convert and compress bands ``which`` of ``frame`` (:data:`BAND_ROWS` scanlines each,
    the last one shorter) into ``out[k]``."""
    global _band_deflate, _band_adler
    if _band_deflate is None or _band_adler is None:
        _band_deflate, _band_adler = _band_codec()
    h, w = frame.shape
    with _rows.borrow(w, BAND_ROWS) as scratch:
        for k in which:
            y0 = k * BAND_ROWS
            y1 = min(h, y0 + BAND_ROWS)
            rows = scratch[: y1 - y0]
            _bgrx_to_rgb(frame[y0:y1], rows)
            out[k] = (_band_deflate(rows), _band_adler(rows), rows.nbytes)


def _band_count(h: int) -> int:
    return -(-h // BAND_ROWS)


def png_from_frame(frame: np.ndarray) -> bytes:
    """A PNG of a captured frame (``(h, w)`` ``uint32`` BGRX, :attr:`ScreenCapture.frame`),
    straight from the pixels, no PIL image in between: filter 0 on every row, each band of
    :data:`BAND_ROWS` scanlines deflated on its own (about 1.5 ms at 1280x800 with ``isal``)."""
    h, w = frame.shape
    n = _band_count(h)
    bands: list[Band] = [(b"", 1, 0)] * n
    _compress_bands(frame, range(n), bands)
    return _png_file(w, h, _zlib_stream(bands))


def _changed_rows(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``(h,)`` booleans: the rows where two same-shape ``uint32`` frames differ."""
    if new.shape[1] % 2 == 0:  # compare two pixels at a time
        new, old = new.view(np.uint64), old.view(np.uint64)
    changed: np.ndarray = np.not_equal(new, old).any(axis=1)
    return changed


def _row_runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """The runs of True in a boolean row mask, as ``(first, end)`` pairs."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], rows, [False])).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


class FramePng:
    """The PNG of one display's latest frame, recompressed band by band as the screen changes.

    The PNG's pixel data is one zlib stream made of bands of :data:`BAND_ROWS` scanlines,
    each deflated on its own (:func:`_band_codec`). Each :meth:`encode` compares the frame
    with the last one it encoded (about 0.3 ms at 1280x800) and converts and compresses
    only the bands that changed; when none did, it returns the same PNG bytes again. A
    screenshot after typing or a pointer move recompresses one or two bands (about 0.1 ms)
    instead of the whole screen (about 1.5 ms). The output is byte for byte what
    :func:`png_from_frame` gives.

    It keeps a copy of the last frame (4 MB at 1280x800) and its compressed bands until
    :meth:`clear`. Not thread-safe: one owner thread (the display's X thread).
    """

    def __init__(self) -> None:
        self._frame: np.ndarray | None = None
        self._bands: list[Band] = []
        self._png: bytes | None = None

    def encode(self, frame: np.ndarray) -> bytes:
        """The PNG of ``frame`` (``(h, w)`` ``uint32`` BGRX; read, never kept)."""
        h, w = frame.shape
        if self._frame is None or self._frame.shape != frame.shape:
            self._frame = frame.copy()
            self._bands = [(b"", 1, 0)] * _band_count(h)
            dirty: Iterable[int] = range(len(self._bands))
        else:
            changed = _changed_rows(frame, self._frame)
            if self._png is not None and not changed.any():
                return self._png
            for y0, y1 in _row_runs(changed):
                self._frame[y0:y1] = frame[y0:y1]
            starts = np.arange(0, h, BAND_ROWS)
            dirty = np.flatnonzero(np.logical_or.reduceat(changed, starts)).tolist()
        _compress_bands(self._frame, dirty, self._bands)
        self._png = _png_file(w, h, _zlib_stream(self._bands))
        return self._png

    def clear(self) -> None:
        """Drop the kept frame, bands and PNG."""
        self._frame = self._png = None
        self._bands = []


def encode(img: Image.Image, format: ImageFormat = "png", *, quality: int = 80) -> bytes:
    """Encode an RGB image to bytes.

    Args:
        img: the image (any mode; converted to RGB for PNG and JPEG).
        format: ``"png"`` (lossless, :func:`png_bytes`: about 3 ms at 1280x800 with ``isal``
            installed, 10 ms without), ``"jpeg"`` or ``"webp"`` (``method=0``, the fast
            setting).
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
        return png_bytes(img)
    if format == "jpeg":
        (img if img.mode == "RGB" else img.convert("RGB")).save(buf, "JPEG", quality=quality)
    elif format == "webp":
        img.save(buf, "WEBP", quality=quality, method=0)
    else:
        media_type(format)  # raises ConfigError
    return buf.getvalue()


class ScreenCapture:
    """Grabs frames of one X display into one preallocated buffer. Not thread-safe: use it
    from one thread (the backend's X thread).

    With mss's MIT-SHM backend, pixels are read in place from its shared segment: a
    screenshot no longer copies each frame into a new 4 MB ``bytes`` (issue 8, §6: that
    copy's page faults cost 4.3 of its 4.7 ms). The settle detector's reference,
    :attr:`frame` (a ``(height, width)`` array of ``uint32`` BGRX pixels), is allocated once
    and updated in place, box by box (:meth:`sync_region`).

    Args:
        display: the X display name (``":7"``).
        xauthority: the Xauthority file holding the display's cookie, or None.
    """

    def __init__(self, display: str, *, xauthority: str | None = None) -> None:
        self.display = display
        self.xauthority = xauthority
        self._sct: Any = None
        self._backend = "default"
        self._frame: np.ndarray | None = None
        self._shm_ok = True
        self._png = FramePng()

    def _open(self) -> Any:
        try:
            import mss
        except ImportError as exc:
            raise MissingDependencyError(
                "Screen capture needs the 'mss' package; run: pip install 'deskpilot[desktop]'."
            ) from exc
        with authority(self.xauthority):  # libxcb reads XAUTHORITY as it connects
            return mss.MSS(display=self.display, backend=self._backend)

    def _grab(self, region: dict[str, int] | None = None) -> Any:
        import mss.exception

        try:
            if self._sct is None:
                self._sct = self._open()
            return self._sct.grab(region or self._sct.monitors[1])
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
                    return self._sct.grab(region or self._sct.monitors[1])
                except mss.exception.ScreenShotError:
                    self.close()
                    self._backend = "default"
            raise DesktopError(
                f"Could not capture display {self.display}: {exc}. Check that the X server "
                "is running (deskpilot doctor)."
            ) from exc

    def _shm_view(self, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """The region's pixels read in place from mss's MIT-SHM segment (valid until the next
        grab), or None where that path is not available (another backend or mss version)."""
        impl = getattr(self._sct, "_impl", None)
        status = getattr(impl, "shm_status", None)
        if not self._shm_ok or impl is None or getattr(status, "name", "") != "AVAILABLE":
            return None
        try:
            from mss.linux import xcb
            from mss.linux.base import ALL_PLANES

            buf = impl._buf
            reply = xcb.shm_get_image(
                impl.conn,
                impl.drawable,
                x,
                y,
                w,
                h,
                ALL_PLANES,
                xcb.ImageFormat.ZPixmap,
                impl._shmseg,
                0,
            )
            if buf is None or reply.depth != impl.drawable_depth or len(buf) < w * h * 4:
                raise ValueError("unexpected MIT-SHM reply")
        except Exception as exc:  # any surprise: mss's own (copying) path from now on
            log.debug("direct MIT-SHM capture disabled on %s: %s", self.display, exc)
            self._shm_ok = False
            return None
        return np.frombuffer(buf, dtype=np.uint32, count=w * h).reshape(h, w)

    def region(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """The current pixels of ``box`` = ``(x0, y0, x1, y1)`` (native pixels, exclusive
        ends) as a ``(y1 - y0, x1 - x0)`` ``uint32`` array; it may be a view valid only until
        the next grab (copy it to keep it).

        Raises:
            DesktopError: the display cannot be captured.
        """
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        if self._sct is not None:
            view = self._shm_view(x0, y0, w, h)
            if view is not None:
                return view
        shot = self._grab({"left": x0, "top": y0, "width": w, "height": h})
        return np.frombuffer(shot.raw, dtype=np.uint32).reshape(shot.height, shot.width)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the display (opens the capture handle if needed)."""
        if self._sct is None:
            self._grab()  # opens the handle, with errors translated
        mon = self._sct.monitors[1]
        return int(mon["width"]), int(mon["height"])

    def screen(self) -> np.ndarray:
        """The whole display now, as a ``(height, width)`` ``uint32`` BGRX array that may be
        a view of mss's shared segment, valid only until the next grab (copy it to keep it).

        Raises:
            DesktopError: the display cannot be captured.
        """
        w, h = self.size
        return self.region((0, 0, w, h))

    def grab_frame(self) -> np.ndarray:
        """Grab the whole display into :attr:`frame` (allocated once) and return it.

        Raises:
            DesktopError: the display cannot be captured.
        """
        view = self.screen()
        frame = self._frame
        if frame is None or frame.shape != view.shape:
            frame = self._frame = np.empty(view.shape, dtype=np.uint32)
        np.copyto(frame, view)
        return frame

    @property
    def frame(self) -> np.ndarray:
        """The last frame grabbed (grabbed now if there is none yet)."""
        return self._frame if self._frame is not None else self.grab_frame()

    def sync_region(self, box: tuple[int, int, int, int], threshold: int) -> int:
        """Grab ``box`` and count the pixels that differ from :attr:`frame`; when more than
        ``threshold`` differ, copy them into :attr:`frame` (``threshold=-1``: always).

        Returns:
            The number of changed pixels in ``box``.
        """
        frame = self.frame
        x0, y0, x1, y1 = box
        new = self.region(box)
        old = frame[y0:y1, x0:x1]
        changed = int(np.count_nonzero(new != old))
        if changed > threshold:
            old[...] = new
        return changed

    def grab_raw(self) -> tuple[bytes, tuple[int, int]]:
        """One frame as raw BGRX bytes (4 bytes per pixel, row-major) and its (width, height)."""
        view = self.screen()
        return view.tobytes(), (view.shape[1], view.shape[0])

    def grab(self) -> Image.Image:
        """One frame as a PIL RGB image of the display's native size."""
        view = self.screen()
        size = (view.shape[1], view.shape[0])
        return Image.frombuffer("RGB", size, view, "raw", "BGRX", 0, 1)

    def grab_png(self) -> bytes:
        """One frame as a PNG, encoded straight from the pixels, only the rows that changed
        since the last one (:class:`FramePng`)."""
        return self._png.encode(self.screen())

    def close(self) -> None:
        """Release the mss handle and the kept frames (safe to call twice)."""
        self._png.clear()
        if self._sct is not None:
            try:
                self._sct.close()
            except Exception:  # the X server may already be gone
                log.debug("mss close failed", exc_info=True)
            self._sct = None
