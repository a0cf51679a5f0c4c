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
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import IO

from PIL import Image

from ..errors import DeskpilotError

__all__ = ["MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "UnreadableImage", "decode_image", "open_image"]

MAX_IMAGE_PIXELS = 40_000_000
"""Largest image decoded, in pixels (width x height): 40 MP holds an 8K screen (33 MP); a
model-space screenshot is at most a few megapixels."""
MAX_IMAGE_BYTES = 64 * 1024 * 1024
"""Largest image file read, in bytes."""


class UnreadableImage(DeskpilotError, ValueError):
    """An image file that is missing, too large, or not a decodable image."""


def _decode(source: IO[bytes], name: str) -> Image.Image:
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


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode the image file at ``path`` into an RGB image (fully loaded, file closed).

    The caller confines ``path`` to its directory first (e.g. ``Run.path``).

    Raises:
        UnreadableImage: not a regular file, over :data:`MAX_IMAGE_BYTES` or
            :data:`MAX_IMAGE_PIXELS`, or not a decodable image (e.g. truncated).
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
    return _decode(io.BytesIO(data), p.name)


def decode_image(data: bytes, name: str = "the image") -> Image.Image:
    """Decode encoded image bytes (PNG, JPEG, WebP, ...) into an RGB image, with the same
    bounds as :func:`open_image`.

    Raises:
        UnreadableImage: over the limits or not a decodable image.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise UnreadableImage(f"{name} is {len(data):,} bytes, over the limit.")
    return _decode(io.BytesIO(data), name)
