"""The one conversion between model space (the screenshot Claude sees) and native pixels.

Two coordinate spaces exist and only this module converts between them:

* **native**: the display's own pixels (what :class:`deskpilot.desktop.base.Computer` takes);
* **model**: the pixels of the screenshots sent to the model, after the client-side resize.

The screenshot size follows the API's own image rule for the model's tier, so the API never
re-resizes the image and the model's coordinates land where it meant them:

* ``"legacy"`` (models before Claude Opus 4.7): long edge at most 1568 px and at most 1568
  visual tokens of 28x28 px (``ceil(w/28) * ceil(h/28) <= 1568``, about 1.15-1.23 MP). This is
  the rule Anthropic's ``computer-use-best-practices`` quickstart ports from the API ("28 px per
  token side, long edge <= 1568 px and <= 1568 tiles"; ``computer-use-best-practices/`` in
  https://github.com/anthropics/claude-quickstarts) and matches the vision docs' "long edge over 1568 px or ~1,600 tokens is scaled down"
  and their table of the largest sizes that are not resized (1092x1092, 951x1268, 896x1344,
  819x1456, 784x1568: all within the rule, and what this module picks to within 2 px).
* ``"2576"`` (Claude Opus 4.7 and later, every ``computer_toolset_20260801`` model): long edge
  at most 2576 px and ``ceil(w/28) * ceil(h/28) <= 4784`` (computer-use-tool page, "Size
  screenshots", https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/computer-use-tool).
  The toolset *rejects* larger images.

A user may also choose a ``target_size``; the native aspect ratio is always kept and images
are never enlarged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError, ToolInputError

ImageTier = Literal["legacy", "2576"]

TILE_PX = 28
"""Side of one visual token, in pixels (API image rule)."""

TIER_LIMITS: dict[str, tuple[int, int]] = {
    "legacy": (1568, 1568),
    "2576": (2576, 4784),
}
"""tier -> (max long edge in px, max visual tokens ``ceil(w/28)*ceil(h/28)``)."""


def image_tokens(width: int, height: int) -> int:
    """Visual tokens of a ``width`` x ``height`` image: ``ceil(w/28) * ceil(h/28)``."""
    return math.ceil(width / TILE_PX) * math.ceil(height / TILE_PX)


def fits_tier(width: int, height: int, tier: ImageTier = "legacy") -> bool:
    """True when an image of this size is sent to the model unchanged under ``tier``."""
    max_edge, max_tokens = _limits(tier)
    return max(width, height) <= max_edge and image_tokens(width, height) <= max_tokens


def _limits(tier: str) -> tuple[int, int]:
    try:
        return TIER_LIMITS[tier]
    except KeyError:
        raise ConfigError(
            f"image_tier={tier!r} is not known; use one of {sorted(TIER_LIMITS)} "
            "('2576' for Claude Opus 4.7 and later, 'legacy' for older models)."
        ) from None


def _scaled(width: int, height: int, long_side: int) -> tuple[int, int]:
    """Size with the long side set to ``long_side`` and the aspect ratio kept."""
    if width >= height:
        return long_side, max(1, round(long_side * height / width))
    return max(1, round(long_side * width / height)), long_side


def model_size_for(
    native_size: tuple[int, int],
    *,
    tier: ImageTier = "legacy",
    target_size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The screenshot size the model sees for a native display size.

    Args:
        native_size: (width, height) of the display in native pixels.
        tier: the API image rule to satisfy (see the module docstring).
        target_size: optional (width, height) box in pixels chosen by the user; the image is
            fitted inside it keeping the aspect ratio (never enlarged), then the tier rule
            still applies so the API does not resize it again.

    Returns:
        (width, height) in model-space pixels, the largest size with the native aspect ratio
        (to the nearest pixel) that satisfies the rule; the native size when it already fits.

    Raises:
        ConfigError: a non-positive size or an unknown tier.
    """
    w, h = (int(v) for v in native_size)
    if w <= 0 or h <= 0:
        raise ConfigError(f"The display size must be positive, not {w}x{h}.")
    max_edge, max_tokens = _limits(tier)
    long_native = max(w, h)
    hi = min(long_native, max_edge)
    if target_size is not None:
        tw, th = (int(v) for v in target_size)
        if tw <= 0 or th <= 0:
            raise ConfigError(f"target_size must be two positive ints, not {target_size!r}.")
        scale = min(tw / w, th / h, 1.0)
        hi = min(hi, max(1, math.floor(long_native * scale + 1e-9)))
    # Largest long side in [1, hi] whose size fits the token budget (monotone -> bisect).
    lo = 1
    if image_tokens(*_scaled(w, h, hi)) <= max_tokens:
        return (w, h) if hi == long_native else _scaled(w, h, hi)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if image_tokens(*_scaled(w, h, mid)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return _scaled(w, h, lo)


@dataclass(frozen=True, slots=True)
class Scaler:
    """Maps between model space and native pixels for one display.

    Attributes:
        native: (width, height) of the display in native pixels.
        model: (width, height) of the screenshots the model sees.

    Points map pixel centre to pixel centre, so every in-bounds model pixel lands inside the
    native screen and a model -> native -> model round trip returns the same pixel (within
    1 px when the model space is larger than native, which :func:`model_size_for` never picks).
    """

    native: tuple[int, int]
    model: tuple[int, int]

    @classmethod
    def for_display(
        cls,
        native_size: tuple[int, int],
        *,
        tier: ImageTier = "legacy",
        target_size: tuple[int, int] | None = None,
    ) -> Scaler:
        """A scaler whose model size follows :func:`model_size_for`."""
        native = (int(native_size[0]), int(native_size[1]))
        return cls(native, model_size_for(native, tier=tier, target_size=target_size))

    @property
    def identity(self) -> bool:
        """True when no resize happens (model space == native)."""
        return self.native == self.model

    def check_model_point(self, x: int, y: int, *, name: str = "coordinate") -> None:
        """Raise if (x, y) is not a pixel of the model-space screenshot.

        Raises:
            ToolInputError: says the valid ranges in model space.
        """
        w, h = self.model
        if not (0 <= x < w and 0 <= y < h):
            raise ToolInputError(
                f"{name} [{x}, {y}] is outside the screen: x must be 0-{w - 1} and y must be "
                f"0-{h - 1} (the screenshot is {w}x{h} pixels)."
            )

    def to_native(self, x: int, y: int) -> tuple[int, int]:
        """Model-space pixel -> native pixel (bounds-checked first).

        Raises:
            ToolInputError: the point is outside the model-space screenshot.
        """
        self.check_model_point(x, y)
        (nw, nh), (mw, mh) = self.native, self.model
        return (
            min(nw - 1, ((2 * x + 1) * nw) // (2 * mw)),
            min(nh - 1, ((2 * y + 1) * nh) // (2 * mh)),
        )

    def to_model(self, x: int, y: int) -> tuple[int, int]:
        """Native pixel -> model-space pixel (clamped into the screenshot)."""
        (nw, nh), (mw, mh) = self.native, self.model
        x = min(max(int(x), 0), nw - 1)
        y = min(max(int(y), 0), nh - 1)
        return (
            min(mw - 1, ((2 * x + 1) * mw) // (2 * nw)),
            min(mh - 1, ((2 * y + 1) * mh) // (2 * nh)),
        )

    def region_to_native(self, region: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A model-space box ``(x0, y0, x1, y1)`` (edges, x1/y1 exclusive, at most the model
        width/height) -> the native box covering the same area, for ``PIL.Image.crop``.

        Raises:
            ToolInputError: the box is empty, inverted or outside the screenshot.
        """
        x0, y0, x1, y1 = region
        mw, mh = self.model
        if not (0 <= x0 < x1 <= mw and 0 <= y0 < y1 <= mh):
            raise ToolInputError(
                f"region={list(region)} must satisfy 0 <= x0 < x1 <= {mw} and "
                f"0 <= y0 < y1 <= {mh} (model-space pixels of the {mw}x{mh} screenshot)."
            )
        nw, nh = self.native
        return (
            (x0 * nw) // mw,
            (y0 * nh) // mh,
            min(nw, -((-x1 * nw) // mw)),
            min(nh, -((-y1 * nh) // mh)),
        )


def fit_within(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size with ``size``'s aspect ratio inside ``box`` (may enlarge)."""
    w, h = size
    bw, bh = box
    s = min(bw / w, bh / h)
    return max(1, min(bw, round(w * s))), max(1, min(bh, round(h * s)))


__all__ = [
    "TIER_LIMITS",
    "TILE_PX",
    "ImageTier",
    "Scaler",
    "fit_within",
    "fits_tier",
    "image_tokens",
    "model_size_for",
]
