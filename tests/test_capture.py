"""Capture (mss) and encoding (Pillow): formats, sizes and pixel content."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from deskpilot.desktop.capture import ScreenCapture, encode, media_type
from deskpilot.errors import ConfigError, DesktopError


def sample() -> Image.Image:
    img = Image.new("RGB", (64, 48), (10, 20, 30))
    img.paste((250, 0, 0), (8, 8, 24, 24))
    return img


def test_png_is_lossless():
    data = encode(sample(), "png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back = Image.open(io.BytesIO(data))
    assert back.size == (64, 48) and back.convert("RGB").tobytes() == sample().tobytes()


def test_png_from_a_bgrx_frame_is_lossless_and_matches_the_image_path():
    import numpy as np

    from deskpilot.desktop.capture import png_from_frame

    rgb = np.asarray(sample())
    frame = np.zeros(rgb.shape[:2], dtype=np.uint32)  # 0x00RRGGBB = bytes B, G, R, X
    frame |= rgb[:, :, 0].astype(np.uint32) << 16
    frame |= rgb[:, :, 1].astype(np.uint32) << 8
    frame |= rgb[:, :, 2].astype(np.uint32)
    for _ in range(2):  # the second encode reuses a pooled scanline buffer
        back = Image.open(io.BytesIO(png_from_frame(frame))).convert("RGB")
        assert back.tobytes() == sample().tobytes()
    other = Image.new("RGB", (10, 7), (1, 2, 3))  # another size: its own buffer
    assert Image.open(io.BytesIO(encode(other))).convert("RGB").tobytes() == other.tobytes()


def assert_png_pixels(png: bytes, frame) -> None:
    """``png`` holds exactly ``frame``'s pixels, and its zlib stream (bands joined, one
    Adler-32) passes zlib's own checks."""
    import zlib

    import numpy as np

    h, w = frame.shape
    idat = png[png.index(b"IDAT") + 4 : png.index(b"IEND") - 8]
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + 3 * w)
    assert not raw[:, 0].any()  # filter 0 on every row
    bgrx = frame.view(np.uint8).reshape(h, w, 4)
    assert np.array_equal(raw[:, 1:].reshape(h, w, 3), bgrx[:, :, 2::-1])
    back = Image.open(io.BytesIO(png)).convert("RGB")
    assert back.size == (w, h) and back.tobytes() == bgrx[:, :, 2::-1].tobytes()


@settings(max_examples=200, deadline=None)
@given(a=st.binary(max_size=300), b=st.binary(max_size=70_000))
def test_adler32_combine_matches_zlib(a, b):
    import zlib

    from deskpilot.desktop.capture import _adler32_combine

    combined = _adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
    assert combined == zlib.adler32(a + b)


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(1, 33), st.integers(1, 100)),  # up to 4 bands of 32 rows
    steps=st.lists(  # each step changes a few rectangles, then encodes
        st.lists(
            st.tuples(
                st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.integers()
            ),
            max_size=3,
        ),
        max_size=6,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_frame_png_converts_changed_rows_and_matches_a_full_encode(size, steps, seed):
    """FramePng reuses its last frame's scanlines: after any run of edits (none, one pixel,
    bands, the whole screen, a new size) its bytes equal a full png_from_frame."""
    import numpy as np

    from deskpilot.desktop.capture import FramePng, png_from_frame

    w, h = size
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 2**24, size=(h, w), dtype=np.uint32)
    enc = FramePng()
    assert enc.encode(frame) == png_from_frame(frame)
    for rects in steps:
        for fx, fy, fw, fh, value in rects:
            x0, y0 = int(fx * (w - 1)), int(fy * (h - 1))
            x1, y1 = x0 + 1 + int(fw * (w - x0 - 1)), y0 + 1 + int(fh * (h - y0 - 1))
            frame[y0:y1, x0:x1] = value % 2**24
        png = enc.encode(frame)
        assert png == png_from_frame(frame)
        assert_png_pixels(png, frame)
    same = enc.encode(frame)
    assert enc.encode(frame.copy()) is same  # nothing changed: the same bytes again
    bigger = rng.integers(0, 2**24, size=(h + 1, w + 2), dtype=np.uint32)
    assert enc.encode(bigger) == png_from_frame(bigger)
    enc.clear()
    assert enc.encode(frame) == png_from_frame(frame)


@pytest.mark.parametrize(("fmt", "magic"), [("jpeg", b"\xff\xd8"), ("webp", b"RIFF")])
def test_lossy_formats(fmt, magic):
    data = encode(sample(), fmt, quality=90)
    assert data.startswith(magic)
    back = Image.open(io.BytesIO(data)).convert("RGB")
    assert back.size == (64, 48)
    r, g, b = back.getpixel((16, 16))
    assert r > 200 and g < 60 and b < 60


def test_media_types_and_bad_arguments():
    assert media_type("png") == "image/png"
    assert media_type("jpeg") == "image/jpeg"
    assert media_type("webp") == "image/webp"
    with pytest.raises(ConfigError):
        media_type("gif")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        encode(sample(), "gif")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        encode(sample(), "jpeg", quality=0)


def test_capture_of_a_missing_display_is_a_desktop_error():
    cap = ScreenCapture(":4097")
    with pytest.raises(DesktopError, match="Could not capture display :4097"):
        cap.grab()
    cap.close()


@pytest.mark.desktop
async def test_raw_grab_and_image_match_the_screen(desktop, event_window):
    await event_window(x=10, y=20, width=30, height=40, colour=0x112233)
    cap = ScreenCapture(desktop.display, xauthority=desktop.xauthority)
    try:
        raw, size = cap.grab_raw()
        assert size == (1280, 800) and len(raw) == 1280 * 800 * 4
        offset = (25 * 1280 + 15) * 4  # pixel (15, 25), BGRX
        assert raw[offset : offset + 3] == bytes([0x33, 0x22, 0x11])
        img = cap.grab()
        assert img.getpixel((15, 25)) == (0x11, 0x22, 0x33)
    finally:
        cap.close()


@pytest.mark.desktop
async def test_screenshot_bytes_round_trip(desktop, event_window):
    await event_window(x=500, y=400, width=50, height=50, colour=0xABCDEF)
    img = await desktop.screenshot()
    png = await desktop.screenshot_bytes("png")
    assert Image.open(io.BytesIO(png)).convert("RGB").tobytes() == img.tobytes()
    jpeg = await desktop.screenshot_bytes("jpeg", quality=85)
    assert Image.open(io.BytesIO(jpeg)).size == (1280, 800)
