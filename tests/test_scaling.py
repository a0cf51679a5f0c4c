"""Model-space <-> native conversion: the API image rule per tier and the round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskpilot.computer_use.scaling import (
    Scaler,
    fit_within,
    fits_tier,
    image_tokens,
    model_size_for,
)
from deskpilot.errors import ConfigError, ToolInputError

sizes = st.tuples(st.integers(200, 5000), st.integers(200, 5000))
tiers = st.sampled_from(["legacy", "2576"])


@pytest.mark.parametrize(
    ("native", "tier", "expected"),
    [
        ((1024, 768), "legacy", (1024, 768)),  # fits: unchanged
        ((1280, 800), "legacy", (1280, 800)),  # 46*29 = 1334 tokens <= 1568
        ((1366, 768), "legacy", (1366, 768)),  # 49*28 = 1372
        ((1920, 1080), "2576", (1920, 1080)),  # 69*39 = 2691 <= 4784
    ],
)
def test_sizes_that_fit_are_unchanged(native, tier, expected):
    assert model_size_for(native, tier=tier) == expected


def test_1080p_legacy_is_the_largest_16_9_size_within_1568_tokens():
    w, h = model_size_for((1920, 1080), tier="legacy")
    assert image_tokens(w, h) <= 1568 and max(w, h) <= 1568
    assert abs(w / h - 1920 / 1080) < 0.01
    # one pixel wider (same aspect) would break the rule
    bigger = (w + 1, round((w + 1) * 1080 / 1920))
    assert not fits_tier(*bigger, tier="legacy") or bigger[0] > 1568


def test_4k_on_the_2576_tier_is_capped_by_long_edge_and_tokens():
    w, h = model_size_for((3840, 2160), tier="2576")
    assert w <= 2576 and image_tokens(w, h) <= 4784
    assert abs(w / h - 16 / 9) < 0.01


def test_target_size_fits_inside_box_keeping_aspect_and_never_enlarges():
    assert model_size_for((1920, 1080), target_size=(1024, 768)) == (1024, 576)
    assert model_size_for((800, 600), target_size=(1600, 1200)) == (800, 600)


def test_bad_configuration_raises_config_error():
    with pytest.raises(ConfigError):
        model_size_for((0, 100))
    with pytest.raises(ConfigError):
        model_size_for((100, 100), tier="huge")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        model_size_for((100, 100), target_size=(0, 5))


@settings(max_examples=300, deadline=None)
@given(sizes, tiers)
def test_model_size_obeys_the_tier_rule_and_keeps_aspect(native, tier):
    w, h = model_size_for(native, tier=tier)
    assert fits_tier(w, h, tier)
    assert w <= native[0] and h <= native[1]
    # aspect ratio kept to within rounding of one pixel on the short side
    if native[0] >= native[1]:
        assert abs(h - native[1] * w / native[0]) <= 1
    else:
        assert abs(w - native[0] * h / native[1]) <= 1


@settings(max_examples=300, deadline=None)
@given(sizes, tiers, st.data())
def test_round_trip_model_native_model_within_one_pixel(native, tier, data):
    sc = Scaler.for_display(native, tier=tier)
    mw, mh = sc.model
    x = data.draw(st.integers(0, mw - 1))
    y = data.draw(st.integers(0, mh - 1))
    nx, ny = sc.to_native(x, y)
    assert 0 <= nx < native[0] and 0 <= ny < native[1]  # every in-bounds point lands on screen
    bx, by = sc.to_model(nx, ny)
    assert abs(bx - x) <= 1 and abs(by - y) <= 1


@settings(max_examples=200, deadline=None)
@given(sizes, tiers, st.data())
def test_native_points_map_into_the_model_screenshot(native, tier, data):
    sc = Scaler.for_display(native, tier=tier)
    nx = data.draw(st.integers(0, native[0] - 1))
    ny = data.draw(st.integers(0, native[1] - 1))
    mx, my = sc.to_model(nx, ny)
    assert 0 <= mx < sc.model[0] and 0 <= my < sc.model[1]
    # and back lands within one model pixel's worth of native pixels
    rx, ry = sc.to_native(mx, my)
    assert abs(rx - nx) <= math.ceil(native[0] / sc.model[0])
    assert abs(ry - ny) <= math.ceil(native[1] / sc.model[1])


def test_identity_when_no_resize():
    sc = Scaler.for_display((1280, 800))
    assert sc.identity
    assert sc.to_native(0, 0) == (0, 0)
    assert sc.to_native(1279, 799) == (1279, 799)
    assert sc.to_native(640, 400) == (640, 400)


def test_bounds_are_checked_in_model_space_with_the_valid_range():
    sc = Scaler.for_display((1920, 1080))  # model 1456x819
    mw, mh = sc.model
    assert mw < 1920
    with pytest.raises(ToolInputError, match=rf"x must be 0-{mw - 1} and y must be 0-{mh - 1}"):
        sc.to_native(1800, 100)  # inside native, outside model space (reference bug §3.8 #3)
    with pytest.raises(ToolInputError):
        sc.to_native(mw, 0)
    assert sc.to_native(mw - 1, mh - 1) == (1919, 1079)


def test_region_to_native_covers_the_same_area():
    sc = Scaler.for_display((1920, 1080))
    mw, mh = sc.model
    assert sc.region_to_native((0, 0, mw, mh)) == (0, 0, 1920, 1080)
    x0, y0, x1, y1 = sc.region_to_native((100, 50, 300, 200))
    assert x0 == 100 * 1920 // mw and y0 == 50 * 1080 // mh
    assert x1 == math.ceil(300 * 1920 / mw) and y1 == math.ceil(200 * 1080 / mh)
    for bad in [(10, 10, 10, 20), (50, 0, 10, 10), (0, 0, mw + 1, 10)]:
        with pytest.raises(ToolInputError, match="region"):
            sc.region_to_native(bad)


def test_fit_within_keeps_aspect():
    assert fit_within((200, 100), (1000, 1000)) == (1000, 500)
    assert fit_within((100, 200), (1456, 819)) == (410, 819)


@pytest.mark.parametrize(
    ("native", "docs_max"),
    [
        ((2184, 2184), (1092, 1092)),  # 1:1
        ((1902, 2536), (951, 1268)),  # 3:4
        ((1792, 2688), (896, 1344)),  # 2:3
        ((1638, 2912), (819, 1456)),  # 9:16
        ((1568, 3136), (784, 1568)),  # 1:2
    ],
)
def test_legacy_tier_matches_the_vision_docs_table_of_largest_unresized_sizes(native, docs_max):
    # Anthropic vision docs: "maximum image sizes that won't be resized" per aspect ratio.
    assert fits_tier(*docs_max, tier="legacy")
    got = model_size_for(native, tier="legacy")
    assert abs(got[0] - docs_max[0]) <= 2 and abs(got[1] - docs_max[1]) <= 2
