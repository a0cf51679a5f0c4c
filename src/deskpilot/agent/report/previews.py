"""Screenshot previews for the HTML page: each screenshot re-encoded once as a small WebP.

The page stays self-contained (previews are ``data:`` URIs) but small: the run's PNG files
stay beside it and the page links to them for full detail. All previews of a page share a
byte budget (:data:`PAGE_IMAGE_BUDGET`), so a 50-step run's page stays under 2 MB: a preview
is encoded at the screenshot's own size (at most :data:`MAX_PREVIEW_SIDE`); when the previews
exceed the budget together, the largest are scaled down until they fit (never below
:data:`MIN_PREVIEW_SIDE`), so sparse screens keep every pixel. WebP is
decoded by every current browser (https://caniuse.com/webp); without WebP support in
Pillow, JPEG is used.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image, features

from ..imagefiles import PixelBudget, UnreadableImage, file_key, open_image
from ..trajectory import Run

log = logging.getLogger("deskpilot.report")

__all__ = [
    "MAX_PREVIEW_SIDE",
    "MIN_PREVIEW_SIDE",
    "PAGE_IMAGE_BUDGET",
    "QUALITY",
    "Preview",
    "Previews",
]

PAGE_IMAGE_BUDGET = 1_100_000
"""Encoded bytes shared by every preview of one page (base64 adds a third: ~1.5 MB)."""
MAX_PREVIEW_SIDE = 1600
"""Longest side of a preview, pixels."""
MIN_PREVIEW_SIDE = 480
"""Previews are not scaled below this long side (pixels), whatever the budget."""
QUALITY = 75
"""WebP (or JPEG) quality of the previews."""
HARD_MIN_SIDE = 240
LOW_QUALITY = 50
"""Long side and quality of the last resort, for screens too dense to fit otherwise."""


@dataclass(frozen=True, slots=True)
class Preview:
    """One embedded screenshot.

    Attributes:
        ident: its element id in the page (``shot0``, ``shot1``...).
        rel: the screenshot's path relative to the run directory (the link target).
        width / height: the SCREENSHOT's size in pixels (model space): the SVG viewBox in
            which marks are drawn; the preview's own pixels may be fewer.
        data_uri: ``data:image/webp;base64,...``.
        encoded_bytes: size of the encoded preview.
    """

    ident: str
    rel: str
    width: int
    height: int
    data_uri: str
    encoded_bytes: int


def _encode(img: Image.Image, side: int, fmt: str, quality: int = QUALITY) -> bytes:
    w, h = img.size
    scale = min(1.0, side / max(w, h))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # reducing_gap: a fast box reduction first, then Lanczos (Pillow's own speed-up)
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    if fmt == "WEBP":
        img.save(buf, "WEBP", quality=quality, method=0)  # the fastest: ~25 ms per screen
    else:
        img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _cap(sizes: list[int], budget: int) -> float | None:
    """The largest per-image size c with sum(min(size, c)) <= budget ("water filling": small
    previews keep their full size, the large ones share what is left); None when all fit."""
    if sum(sizes) <= budget:
        return None
    remaining, n = float(budget), len(sizes)
    for size in sorted(sizes):
        share = remaining / n
        if size > share:
            return share
        remaining -= size
        n -= 1
    return None


_MINI = 8  # the flatness map is the screenshot reduced 8 times per side, grey


@dataclass(slots=True)
class _Encoded:
    width: int
    height: int
    data: bytes
    mini: Image.Image  # a small grey copy, to tell flat regions from detailed ones


def _shrunk(img: Image.Image, data: bytes, cap: float, fmt: str) -> bytes:
    """``img`` encoded again until it fits ``cap`` bytes: smaller down to MIN_PREVIEW_SIDE at
    QUALITY, then (walls of small text) down to HARD_MIN_SIDE at LOW_QUALITY."""
    side = min(MAX_PREVIEW_SIDE, max(img.size))
    for floor, quality in ((MIN_PREVIEW_SIDE, QUALITY), (HARD_MIN_SIDE, LOW_QUALITY)):
        for _ in range(3):
            if len(data) <= cap or side <= floor:
                break
            # bytes grow roughly with the area: shrink the side by the square root
            side = max(floor, int(side * math.sqrt(cap / len(data)) * 0.9))
            data = _encode(img, side, fmt, quality)
        if len(data) <= cap:
            break
        side = max(img.size)  # the next floor starts again from the size it needs
        side = min(side, MAX_PREVIEW_SIDE)
    return data


@dataclass(slots=True)
class Previews:
    """The previews of one page.

    :meth:`prepare` encodes every screenshot the page will show at its own size (at most
    :data:`MAX_PREVIEW_SIDE`); when they exceed ``budget`` together, the largest are encoded
    again smaller so that the total fits (see :func:`_shrunk`).

    Screenshots that are the same file (hard links: the same ``(st_dev, st_ino)``) are
    decoded and encoded once; every decode is charged to ``pixels`` (a screenshot past it
    is "not rendered", the reason in :attr:`errors`).

    Args:
        run: the run (paths are confined through ``run.path``).
        budget: encoded bytes for all previews together.
        pixels: the decoded-pixel budget of the page.
    """

    run: Run
    budget: int = PAGE_IMAGE_BUDGET
    pixels: PixelBudget = field(default_factory=PixelBudget)
    made: dict[str, Preview | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    _format: str = field(default_factory=lambda: "WEBP" if features.check("webp") else "JPEG")
    _encoded: dict[str, _Encoded] = field(default_factory=dict)

    @property
    def previews(self) -> list[Preview]:
        """The previews handed out so far, in order of first use."""
        return [p for p in self.made.values() if p is not None]

    @property
    def total_bytes(self) -> int:
        """Encoded bytes of every preview handed out so far."""
        return sum(p.encoded_bytes for p in self.previews)

    def _open(self, rel: str) -> Image.Image:
        path = self.run.path(rel)
        if path is None:
            raise UnreadableImage(
                f"{rel} is missing, outside the run directory or reached through a symlink."
            )
        return open_image(path, self.pixels)

    def _first_pass(self, rel: str) -> _Encoded | str:
        try:
            img = self._open(rel)
        except UnreadableImage as exc:
            return str(exc)
        side = min(MAX_PREVIEW_SIDE, max(img.size))
        mini = img.convert("L").reduce(_MINI) if min(img.size) >= _MINI else img.convert("L")
        return _Encoded(img.width, img.height, _encode(img, side, self._format), mini)

    def _second_pass(self, job: tuple[str, float]) -> bytes | None:
        rel, cap = job
        enc = self._encoded[rel]
        try:
            img = self._open(rel)
        except UnreadableImage:  # it was readable a moment ago; keep the larger preview
            return None
        return _shrunk(img, enc.data, cap, self._format)

    def prepare(self, rels: list[str]) -> None:
        """Encode the previews of ``rels`` within the budget (each screenshot decoded at most
        twice: once, and once more if its preview must shrink)."""
        todo = [r for r in dict.fromkeys(rels) if r not in self._encoded and r not in self.errors]
        # one decode per file: hard links (and names already done) share the result
        done = {file_key(p): r for r in self._encoded if (p := self.run.path(r)) is not None}
        first: dict[tuple[int, int] | str, str] = {}
        same: dict[str, str] = {}
        for rel in todo:
            path = self.run.path(rel)
            key = file_key(path) if path is not None else None
            ident: tuple[int, int] | str = key if key is not None else rel
            if key is not None and key in done:
                same[rel] = done[key]
            elif ident in first:
                same[rel] = first[ident]
            else:
                first[ident] = rel
        unique = list(first.values())
        # decoding and encoding release the GIL: two workers nearly halve the time
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="deskpilot-preview") as pool:
            for rel, outcome in zip(unique, pool.map(self._first_pass, unique), strict=True):
                if isinstance(outcome, str):
                    self.errors[rel] = outcome
                    log.warning("Screenshot %s: %s", rel, outcome)
                else:
                    self._encoded[rel] = outcome
            for rel, twin in same.items():
                if twin in self._encoded:
                    self._encoded[rel] = self._encoded[twin]  # shared: shrinks together
                elif twin in self.errors:
                    self.errors[rel] = self.errors[twin]
            cap = _cap([len(e.data) for e in self._encoded.values()], self.budget)
            if cap is None:
                return
            heavy_ids: dict[int, str] = {}  # one shrink per shared preview
            for rel, e in self._encoded.items():
                if len(e.data) > cap:
                    heavy_ids.setdefault(id(e), rel)
            heavy = [(rel, cap) for rel in heavy_ids.values()]
            for (rel, _), data in zip(heavy, pool.map(self._second_pass, heavy), strict=True):
                if data is not None:
                    self._encoded[rel].data = data

    def get(self, rel: str) -> Preview | None:
        """The preview of screenshot ``rel``, or None when it is missing, outside the run
        directory or not a readable image (the reason is in :attr:`errors`)."""
        if rel in self.made:
            return self.made[rel]
        if rel not in self._encoded and rel not in self.errors:
            self.prepare([rel])
        enc = self._encoded.get(rel)
        preview = None
        if enc is not None:
            mime = "image/webp" if self._format == "WEBP" else "image/jpeg"
            preview = Preview(
                ident=f"shot{len(self.previews)}",
                rel=rel,
                width=enc.width,
                height=enc.height,
                data_uri=f"data:{mime};base64,{base64.b64encode(enc.data).decode('ascii')}",
                encoded_bytes=len(enc.data),
            )
        self.made[rel] = preview
        return preview

    def has_detail(self, rel: str, box: tuple[float, float, float, float]) -> bool:
        """False when the crop ``box`` (x0, y0, w, h; model-space pixels) of ``rel`` is one
        flat colour (a magnifier would show nothing) or the image is unreadable. Judged on a
        grey copy reduced 8 times per side (any detail shifts a block's average)."""
        enc = self._encoded.get(rel)
        if enc is None:
            return False
        fx, fy = enc.mini.width / enc.width, enc.mini.height / enc.height
        x0, y0, zw, zh = box
        crop = enc.mini.crop(
            (int(x0 * fx), int(y0 * fy), max(int(x0 * fx) + 1, int((x0 + zw) * fx)),
             max(int(y0 * fy) + 1, int((y0 + zh) * fy)))
        )  # fmt: skip
        lo, hi = crop.getextrema()
        return lo != hi
