"""Opening screenshot files from a run directory without trusting them (bounded size, no bombs).

A run directory is untrusted input (it may have been crafted, or cut short by a crash): an
image may be truncated, not an image at all, or a few kilobytes of PNG that decode to
30000 x 30000 pixels (a "decompression bomb", 2.7 GB of RGB). Every image the report and
replay read goes through :func:`open_image` / :func:`decode_image`, which

- refuse files over :data:`MAX_IMAGE_BYTES` before reading them,
- refuse images over :data:`MAX_IMAGE_PIXELS` from the header, before decoding (Pillow's own
  guard, ``Image.MAX_IMAGE_PIXELS``, only warns below twice its limit; here its
  ``DecompressionBombWarning`` is an error too; see
  https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.open),
- decode fully at once (so a truncated file fails here, not later while drawing),

and raise :class:`UnreadableImage` with a sentence saying why.

One output (a report page, an animation) decodes within a :class:`PixelBudget`: the pixels
of every image it decodes count against one total (:data:`MAX_DECODED_PIXELS`), so a crafted
run that names one large screenshot many times (hard links, copies) costs bounded work; an
image past the budget is "not rendered". Callers also decode each file once
(:func:`file_key`: the same ``(st_dev, st_ino)`` is the same image).
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path
from typing import IO

from PIL import Image

from ..errors import DeskpilotError

__all__ = [
    "MAX_DECODED_PIXELS",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "PixelBudget",
    "UnreadableImage",
    "decode_image",
    "file_key",
    "open_image",
]

MAX_IMAGE_PIXELS = 40_000_000
"""Largest image decoded, in pixels (width x height): 40 MP holds an 8K screen (33 MP); a
model-space screenshot is at most a few megapixels."""
MAX_IMAGE_BYTES = 64 * 1024 * 1024
"""Largest image file read, in bytes."""


MAX_DECODED_PIXELS = 1_000_000_000
"""Pixels one report page (or one animation) decodes in total: ~800 screenshots of
1280x800, or 25 images at the per-image limit (tens of seconds of work, not hours)."""


class UnreadableImage(DeskpilotError, ValueError):
    """An image file that is missing, too large, or not a decodable image."""


class PixelBudget:
    """The pixels one output may still decode (thread-safe).

    Args:
        total: pixels (width x height, summed over every decode); default
            :data:`MAX_DECODED_PIXELS` (read when the budget is made).
    """

    def __init__(self, total: int | None = None) -> None:
        self.total = MAX_DECODED_PIXELS if total is None else total
        self.used = 0
        self._lock = threading.Lock()

    def charge(self, name: str, pixels: int) -> None:
        """Count ``pixels`` about to be decoded for the image ``name``.

        Raises:
            UnreadableImage: the budget would be exceeded (the image is not decoded).
        """
        with self._lock:
            if self.used + pixels > self.total:
                raise UnreadableImage(
                    f"{name} was not rendered: budget ({self.total:,} decoded pixels per "
                    "output) used up."
                )
            self.used += pixels


def file_key(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file at ``path`` (the same for hard links), or None when
    it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _decode(source: IO[bytes], name: str, budget: PixelBudget | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise UnreadableImage(
                        f"{name} is over the {MAX_IMAGE_PIXELS:,}-pixel limit ({w}x{h} "
                        "pixels); it was not decoded."
                    )
                if budget is not None:
                    budget.charge(name, w * h)
                im.load()
                return im.convert("RGB")
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(
            f"{name} is over the {MAX_IMAGE_PIXELS:,}-pixel limit; it was not decoded ({exc})"
        ) from exc
    except Exception as exc:  # Pillow raises many types for bad data (OSError, SyntaxError, ...)
        raise UnreadableImage(
            f"{name} is not a readable image ({type(exc).__name__}: {str(exc)[:120]})."
        ) from exc


def open_image(path: str | os.PathLike[str], budget: PixelBudget | None = None) -> Image.Image:
    """Decode the image file at ``path`` into an RGB image (fully loaded, file closed).

    The caller confines ``path`` to its directory first (e.g. ``Run.path``). With a
    ``budget``, the image's pixels are charged to it before decoding.

    Raises:
        UnreadableImage: not a regular file, over :data:`MAX_IMAGE_BYTES` or
            :data:`MAX_IMAGE_PIXELS`, past the ``budget``, or not a decodable image (e.g.
            truncated).
    """
    p = Path(path)
    try:
        st = p.stat()
        if not p.is_file():
            raise UnreadableImage(f"{p.name} is not a regular file.")
        if st.st_size > MAX_IMAGE_BYTES:
            raise UnreadableImage(
                f"{p.name} is {st.st_size:,} bytes, over the {MAX_IMAGE_BYTES:,}-byte limit."
            )
        with p.open("rb") as fh:
            data = fh.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:  # grew since the stat
            raise UnreadableImage(f"{p.name} is over the {MAX_IMAGE_BYTES:,}-byte limit.")
    except OSError as exc:
        raise UnreadableImage(f"{p.name} could not be read ({exc.strerror or exc}).") from exc
    return _decode(io.BytesIO(data), p.name, budget)


def decode_image(data: bytes, name: str = "the image") -> Image.Image:
    """Decode encoded image bytes (PNG, JPEG, WebP, ...) into an RGB image, with the same
    bounds as :func:`open_image`.

    Raises:
        UnreadableImage: over the limits or not a decodable image.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise UnreadableImage(f"{name} is {len(data):,} bytes, over the limit.")
    return _decode(io.BytesIO(data), name)
