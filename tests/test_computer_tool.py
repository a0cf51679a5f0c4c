"""ComputerTool with a FakeComputer: per-version validation, scaling, results, toolset batches."""

from __future__ import annotations

import io

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from deskpilot import ComputerTool, ToolCall
from deskpilot.computer_use import actions
from deskpilot.computer_use.specs import (
    ACTIONS_20241022,
    ACTIONS_20250124,
    ACTIONS_20251124,
    TOOLSET_HALT_TEXT,
    computer_spec,
)
from deskpilot.desktop.fake import FakeComputer
from deskpilot.errors import ConfigError, DesktopError
from deskpilot.prompt import Image, Text

BETA_VERSIONS = ("computer_20241022", "computer_20250124", "computer_20251124")
ALL_VERSIONS = (*BETA_VERSIONS, "computer_toolset_20260801")


def call(action: str, version: str = "computer_20250124", **params) -> ToolCall:
    """A tool_use for ``action`` in the wire shape of ``version``."""
    if version == "computer_toolset_20260801":
        return ToolCall("tu_1", action, dict(params), toolset_name="computer")
    return ToolCall("tu_1", "computer", {"action": action, **params})


def decode(img: Image) -> PILImage.Image:
    return PILImage.open(io.BytesIO(img.data)).convert("RGB")


@pytest.fixture
def fake():
    return FakeComputer(1920, 1080)


def tool(fake, version="computer_20250124", **kw) -> ComputerTool:
    return ComputerTool(fake, version, image_tier="legacy", **kw)


# --- construction and definition ---------------------------------------------------------


def test_definition_uses_model_space_size(fake):
    t = tool(fake, "computer_20251124", display_number=7)
    assert t.model_size == (1456, 819)
    assert t.definition == {
        "type": "computer_20251124",
        "name": "computer",
        "display_width_px": 1456,
        "display_height_px": 819,
        "display_number": 7,
        "enable_zoom": True,
    }
    assert "enable_zoom" not in tool(fake, "computer_20250124").definition


def test_toolset_definition_has_no_name_or_size_and_defaults_to_2576_tier(fake):
    t = ComputerTool(fake, "computer_toolset_20260801")
    assert t.image_tier == "2576"
    assert t.model_size == (1920, 1080)
    assert t.definition == {"type": "computer_toolset_20260801"}
    off = ComputerTool(fake, "computer_toolset_20260801", enable_zoom=False)
    assert off.definition == {
        "type": "computer_toolset_20260801",
        "configs": {"zoom": {"enabled": False}},
    }


def test_bad_configuration_raises_config_error(fake):
    with pytest.raises(ConfigError, match="computer_20250124"):
        ComputerTool(fake, "computer_2099")
    with pytest.raises(ConfigError):
        ComputerTool(fake, image_tier="huge")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ComputerTool(fake, screenshot_format="bmp")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ComputerTool(fake, target_size=(0, 10))


def test_fake_computer_implements_the_protocol_and_other_objects_are_refused(fake):
    from deskpilot.desktop.base import Computer

    assert isinstance(fake, Computer)
    with pytest.raises(ConfigError, match="Computer"):
        ComputerTool(object())  # type: ignore[arg-type]


def test_version_is_settable_and_with_version_copies_settings(fake):
    t = tool(fake, "computer_20251124", target_size=(1024, 768))
    t.version = "computer_20250124"
    assert t.definition["type"] == "computer_20250124"
    with pytest.raises(ConfigError):
        t.version = "nope"
    older = t.with_version("computer_20241022")
    assert older.version == "computer_20241022" and older.model_size == t.model_size == (1024, 576)
    assert older.computer is fake


# --- every action of every version, checked on the fake ------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
async def test_every_action_of_every_version_drives_the_computer(fake, version):
    t = tool(fake, version)
    actions = {
        "computer_20241022": ACTIONS_20241022,
        "computer_20250124": ACTIONS_20250124,
        "computer_20251124": ACTIONS_20251124,
        "computer_toolset_20260801": ACTIONS_20251124,
    }[version]
    legacy = version == "computer_20241022"
    params = {
        "screenshot": {},
        "cursor_position": {},
        "mouse_move": {"coordinate": [728, 409]},
        "left_click": {} if legacy else {"coordinate": [728, 409]},
        "right_click": {} if legacy else {"coordinate": [728, 409], "text": "shift"},
        "middle_click": {},
        "double_click": {} if legacy else {"coordinate": [10, 20]},
        "triple_click": {"coordinate": [10, 20]},
        "left_click_drag": {"coordinate": [100, 100]}
        if legacy
        else {"start_coordinate": [0, 0], "coordinate": [100, 100], "text": "ctrl"},
        "left_mouse_down": {},
        "left_mouse_up": {},
        "scroll": {"scroll_direction": "down", "scroll_amount": 3, "coordinate": [5, 5]},
        "hold_key": {"text": "shift", "duration": 0.5},
        "wait": {"duration": 0},
        "key": {"text": "ctrl+s"},
        "type": {"text": "héllo\n"},
        "zoom": {"region": [0, 0, 728, 409]},
    }
    for action in actions:
        fake.calls.clear()
        result = await t.execute(call(action, version, **params[action]))
        assert not result.is_error, (action, result.text)
        if version == "computer_toolset_20260801":
            assert result.toolset_name == "computer"
        if action == "cursor_position":
            assert result.images == []
        else:
            assert len(result.images) == 1, action
        names = fake.names()
        if action not in ("screenshot", "cursor_position", "zoom", "wait"):
            assert names[-2:] == ["wait_settled", "screenshot"], (action, names)
    # native coordinates reached the computer: model (728, 409) -> native centre of 1920x1080
    moves = [kw for n, kw in fake.calls if n == "move"]
    assert moves == [] or moves[-1] == {"x": 960, "y": 540}


async def test_clicks_map_model_to_native_and_pass_modifiers_from_text(fake):
    t = tool(fake)
    r = await t.execute(call("left_click", coordinate=[1455, 818], text="ctrl+shift"))
    assert not r.is_error
    assert fake.actions() == [
        (
            "click",
            {"x": 1919, "y": 1079, "button": "left", "count": 1, "modifiers": ("ctrl", "shift")},
        )
    ]
    fake.calls.clear()
    await t.execute(call("triple_click"))
    await t.execute(call("double_click", coordinate=[0, 0]))
    await t.execute(call("middle_click", coordinate=[1, 1], key="alt"))  # the reference's `key`
    assert [(kw["button"], kw["count"], kw["x"], kw["modifiers"]) for _, kw in fake.actions()] == [
        ("left", 3, None, ()),
        ("left", 2, 0, ()),
        ("middle", 1, 1, ("alt",)),
    ]


async def test_drag_scroll_key_type_hold_reach_the_computer(fake):
    t = tool(fake)
    await t.execute(
        call("left_click_drag", start_coordinate=[0, 0], coordinate=[728, 409], text="shift")
    )
    await t.execute(call("scroll", scroll_direction="left", scroll_amount=2, text="ctrl"))
    await t.execute(call("key", text="Return"))
    await t.execute(call("type", text="a\tb"))
    await t.execute(call("hold_key", text="a", duration=1.5))
    assert fake.actions() == [
        ("drag", {"start": (0, 0), "end": (960, 540), "button": "left", "modifiers": ("shift",)}),
        (
            "scroll",
            {"direction": "left", "amount": 2, "x": None, "y": None, "modifiers": ("ctrl",)},
        ),
        ("key", {"keys": "Return", "repeat": 1}),
        ("type_text", {"text": "a\tb"}),
        ("hold_key", {"keys": "a", "duration_s": 1.5}),
    ]


async def test_20241022_drag_starts_at_the_pointer(fake):
    t = tool(fake, "computer_20241022")
    fake.pointer = (100, 200)
    r = await t.execute(call("left_click_drag", "computer_20241022", coordinate=[0, 0]))
    assert not r.is_error
    assert fake.actions()[-1][1]["start"] == (100, 200)
    assert fake.actions()[-1][1]["end"] == (0, 0)


async def test_screenshot_is_model_size_and_cursor_position_is_model_space(fake):
    t = tool(fake)
    r = await t.execute(call("screenshot"))
    assert r.result == r.images and decode(r.images[0]).size == (1456, 819)
    fake.pointer = (1919, 1079)
    r = await t.execute(call("cursor_position"))
    assert r.text == "X=1455, Y=818"
    fake.pointer = (960, 540)
    assert (await t.execute(call("cursor_position"))).text == "X=728, Y=409"


async def test_jpeg_and_webp_screenshots(fake):
    for fmt, mt in (("jpeg", "image/jpeg"), ("webp", "image/webp")):
        r = await tool(fake, screenshot_format=fmt).execute(call("screenshot"))
        assert r.images[0].media_type == mt


async def test_zoom_crops_the_native_capture_not_the_screenshot(fake):
    t = tool(fake, "computer_20251124")
    # model region [364, 204, 728, 409] is native [480, 269, 960, 540] (1920x1080 screen)
    r = await t.execute(call("zoom", "computer_20251124", region=[364, 204, 728, 409]))
    assert not r.is_error
    assert "still refer to the full 1456x819 screenshot" in r.text
    img = decode(r.images[0])
    x0, y0, x1, y1 = t.scaler.region_to_native((364, 204, 728, 409))
    crop_w, crop_h = x1 - x0, y1 - y0
    assert img.size[0] == 1456 or img.size[1] == 819  # fitted to the screenshot size
    assert abs(img.size[0] / img.size[1] - crop_w / crop_h) < 0.01
    # coordinate_image encodes native (x, y) in (R, G): the top-left pixel is the crop origin
    r_, g_, _ = img.getpixel((0, 0))
    assert abs(r_ - x0 % 256) <= 2 and abs(g_ - y0 % 256) <= 2
    # a horizontal step of one native pixel is ~3 zoomed pixels: real extra detail
    step = img.size[0] / crop_w
    assert step > 2.9
    r2, _, _ = img.getpixel((int(step * 10 + step / 2), 0))
    assert abs(r2 - (x0 + 10) % 256) <= 2


async def test_zoom_disabled_or_absent_is_an_error(fake):
    r = await tool(fake, "computer_20251124", enable_zoom=False).execute(
        call("zoom", region=[0, 0, 10, 10])
    )
    assert r.is_error and "zoom is disabled" in r.text
    r = await tool(fake, "computer_20250124").execute(call("zoom", region=[0, 0, 10, 10]))
    assert r.is_error and "not available in computer_20250124" in r.text


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "action", "params", "message"),
    [
        ("computer_20250124", "foo", {}, "Invalid action: foo"),
        ("computer_20250124", None, {}, "action is required"),
        ("computer_20241022", "scroll", {}, "not available in computer_20241022"),
        ("computer_20241022", "triple_click", {}, "not available in computer_20241022"),
        ("computer_20250124", "mouse_move", {}, "coordinate is required for mouse_move"),
        (
            "computer_20250124",
            "mouse_move",
            {"coordinate": [1, 1], "text": "x"},
            "text is not accepted for mouse_move",
        ),
        ("computer_20241022", "left_click", {"coordinate": [1, 1]}, "mouse_move"),
        (
            "computer_20250124",
            "left_mouse_down",
            {"coordinate": [1, 1]},
            "coordinate is not accepted",
        ),
        ("computer_20250124", "type", {}, "text is required for type"),
        ("computer_20250124", "type", {"text": 123}, "text must be a string"),
        ("computer_20250124", "key", {"text": ["a"]}, "text must be a string"),
        ("computer_20250124", "key", {"text": " "}, "text is required for key"),
        ("computer_20250124", "key", {"text": "a", "repeat": 3}, "repeat is not accepted"),
        (
            "computer_toolset_20260801",
            "key",
            {"text": "a", "repeat": 0},
            "repeat=0 must be an integer from 1 to 100",
        ),
        ("computer_toolset_20260801", "key", {"text": "a", "repeat": 101}, "1 to 100"),
        (
            "computer_20250124",
            "left_click",
            {"coordinate": [1]},
            "must be a list of two non-negative integers",
        ),
        ("computer_20250124", "left_click", {"coordinate": [-1, 5]}, "non-negative"),
        ("computer_20250124", "left_click", {"coordinate": [1.5, 5]}, "integers"),
        ("computer_20250124", "left_click", {"coordinate": "1,2"}, "integers"),
        (
            "computer_20250124",
            "left_click",
            {"coordinate": [1456, 5]},
            "x must be 0-1455 and y must be 0-818",
        ),
        ("computer_20250124", "left_click", {"bogus": 1}, "bogus is not accepted for left_click"),
        ("computer_20250124", "left_click", {"text": 5}, "text must be a string"),
        (
            "computer_20250124",
            "left_click_drag",
            {"coordinate": [1, 1]},
            "start_coordinate is required",
        ),
        (
            "computer_20250124",
            "scroll",
            {"scroll_direction": "sideways", "scroll_amount": 1},
            "must be 'up', 'down', 'left', or 'right'",
        ),
        (
            "computer_20250124",
            "scroll",
            {"scroll_direction": "up", "scroll_amount": -1},
            "scroll_amount=-1 must be a non-negative int",
        ),
        (
            "computer_20250124",
            "scroll",
            {"scroll_direction": "up", "scroll_amount": "3"},
            "non-negative int",
        ),
        ("computer_20250124", "scroll", {"scroll_direction": "up"}, "scroll_amount is required"),
        (
            "computer_20250124",
            "hold_key",
            {"text": "a", "duration": 101},
            "duration=101 is too long",
        ),
        ("computer_20250124", "wait", {"duration": -1}, "non-negative number"),
        ("computer_20250124", "wait", {"duration": "1"}, "non-negative number"),
        ("computer_20250124", "wait", {"duration": True}, "non-negative number"),
        (
            "computer_toolset_20260801",
            "wait",
            {"duration": 301},
            "maximum for computer_toolset_20260801 is 300",
        ),
        ("computer_20251124", "zoom", {"region": [0, 0, 10]}, "4 coordinates"),
        ("computer_20251124", "zoom", {"region": [0, 0, -1, 10]}, "non-negative integers"),
        ("computer_20251124", "zoom", {"region": [10, 10, 5, 20]}, "0 <= x0 < x1 <= 1456"),
        ("computer_20251124", "zoom", {"region": [0, 0, 2000, 10]}, "0 <= x0 < x1 <= 1456"),
    ],
)
async def test_validation_errors_are_is_error_results(fake, version, action, params, message):
    t = tool(fake, version)
    if version == "computer_toolset_20260801":
        c = ToolCall("tu_9", action, params, toolset_name="computer")
    else:
        c = ToolCall("tu_9", "computer", {"action": action, **params} if action else params)
    r = await t.execute(c)
    assert r.is_error, r
    assert message in r.text
    assert r.tool_call_id == "tu_9"
    assert fake.actions() == []  # nothing happened on the desktop


async def test_duration_caps_differ_between_beta_and_toolset(fake):
    r = await tool(fake, "computer_toolset_20260801").execute(
        call("hold_key", "computer_toolset_20260801", text="a", duration=250)
    )
    assert not r.is_error
    r = await tool(fake).execute(call("hold_key", text="a", duration=250))
    assert r.is_error and "maximum for computer_20250124 is 100 seconds" in r.text


async def test_none_values_count_as_absent(fake):
    r = await tool(fake).execute(call("left_click", coordinate=None, text=None))
    assert not r.is_error
    assert fake.actions()[0][1]["x"] is None


async def test_bad_key_presses_nothing_and_is_an_error(fake):
    r = await tool(fake).execute(call("key", text="Return; touch /tmp/x"))
    assert r.is_error and "Unknown key name" in r.text
    assert fake.actions() == []


async def test_desktop_failures_and_unexpected_exceptions_become_is_error(fake):
    fake.fail["click"] = DesktopError("The X server is gone; restart the desktop.")
    r = await tool(fake).execute(call("left_click", coordinate=[1, 1]))
    assert r.is_error and r.text == "The X server is gone; restart the desktop."
    fake.fail["screenshot"] = RuntimeError("boom")
    r = await tool(fake).execute(call("screenshot"))
    assert r.is_error and "RuntimeError: boom" in r.text


async def test_no_screenshot_or_settle_when_disabled(fake):
    t = tool(fake, screenshot_after_action=False, settle=False)
    r = await t.execute(call("left_click", coordinate=[5, 5]))
    assert r.images == [] and r.text == "Left click at (5, 5)."
    assert fake.names() == ["click"]


async def test_last_timings_are_recorded(fake):
    t = tool(fake)
    await t.execute(call("left_click", coordinate=[5, 5]))
    assert set(t.last_timings) == {"action_s", "settle_s", "screenshot_s"}
    assert t.last_timings["screenshot_s"] > 0


async def test_closed_tool_answers_with_an_error(fake):
    async with tool(fake) as t:
        pass
    r = await t.execute(call("screenshot"))
    assert r.is_error and "closed" in r.text


# --- toolset -----------------------------------------------------------------------------------


def member(action: str, id: str, **params) -> ToolCall:
    return ToolCall(id, action, params, toolset_name="computer")


async def test_toolset_key_repeat(fake):
    t = tool(fake, "computer_toolset_20260801")
    r = await t.execute(member("key", "a", text="Down", repeat=5))
    assert not r.is_error and r.toolset_name == "computer"
    assert fake.actions() == [("key", {"keys": "Down", "repeat": 5})]
    assert r.to_anthropic()["toolset_name"] == "computer"


async def test_batch_runs_in_order_with_one_final_screenshot(fake):
    t = tool(fake, "computer_toolset_20260801")
    results = await t.execute_batch(
        [
            member("left_click", "a", coordinate=[10, 10]),
            member("type", "b", text="hi"),
            member("key", "c", text="Return"),
        ]
    )
    assert [r.tool_call_id for r in results] == ["a", "b", "c"]
    assert not any(r.is_error for r in results)
    assert all(r.toolset_name == "computer" for r in results)
    assert [len(r.images) for r in results] == [0, 0, 1]
    assert [n for n, _ in fake.actions()] == ["click", "type_text", "key"]
    assert fake.names().count("screenshot") == 1
    assert isinstance(results[0].result[0], Text)


async def test_batch_halts_at_first_failure_with_the_exact_text(fake):
    t = tool(fake, "computer_toolset_20260801")
    results = await t.execute_batch(
        [
            member("left_click", "a", coordinate=[10, 10]),
            member("left_click", "b", coordinate=[99999, 10]),
            member("type", "c", text="never"),
            member("screenshot", "d"),
        ]
    )
    assert [r.is_error for r in results] == [False, True, True, True]
    assert "outside the screen" in results[1].text
    assert results[2].text == TOOLSET_HALT_TEXT and results[3].text == TOOLSET_HALT_TEXT
    assert all(r.toolset_name == "computer" for r in results)
    assert len(results[0].images) == 1  # screenshot attached to the last success
    assert fake.typed == []


async def test_batch_ending_with_screenshot_attaches_nothing_more(fake):
    t = tool(fake, "computer_toolset_20260801")
    results = await t.execute_batch(
        [member("mouse_move", "a", coordinate=[1, 1]), member("screenshot", "b")]
    )
    assert [len(r.images) for r in results] == [0, 1]
    assert fake.names().count("screenshot") == 1


def test_definition_before_the_desktop_starts_uses_its_configured_size():
    from deskpilot.desktop.local import LocalDesktop

    desktop = LocalDesktop(width=1920, height=1080)  # not started: .size raises
    t = ComputerTool(desktop, "computer_20250124", image_tier="legacy")
    assert t.definition["display_width_px"] == 1456
    assert t.model_size == (1456, 819)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 3000)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["ctrl", "shift+alt", "up", "Return", "a"]),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=6,
)
param_names = st.sampled_from(
    [
        "action",
        "coordinate",
        "start_coordinate",
        "text",
        "scroll_direction",
        "scroll_amount",
        "duration",
        "region",
        "key",
        "repeat",
        "bogus",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(ALL_VERSIONS),
    st.sampled_from([*ACTIONS_20251124, "nope", None]),
    st.dictionaries(param_names, json_values, max_size=5),
)
async def test_arbitrary_input_never_raises_or_fails_unexpectedly(version, action, params):
    fake = FakeComputer(640, 400)
    t = ComputerTool(fake, version, settle=False, screenshot_after_action=False)
    params = {k: v for k, v in params.items() if not (k == "duration" and v not in (0, 0.0))}
    if version == "computer_toolset_20260801":
        c = ToolCall("f", str(action), params, toolset_name="computer")
    else:
        c = ToolCall("f", "computer", {**params, "action": action})
    r = await t.execute(c)
    assert "failed unexpectedly" not in r.text, r.text
    if r.is_error:
        assert fake.actions() == [] or action in ("left_click_drag",)


@pytest.mark.parametrize(
    ("value", "message"), [(float("nan"), "non-negative number"), (float("inf"), "too long")]
)
async def test_nan_and_infinite_durations_are_refused(fake, value, message):
    r = await tool(fake).execute(call("wait", duration=value))
    assert r.is_error and message in r.text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=6))
async def test_batch_halt_rule_for_any_failure_position(oks):
    fake = FakeComputer(640, 400)
    t = ComputerTool(fake, "computer_toolset_20260801", settle=False)
    calls = [
        member("mouse_move", f"c{i}", coordinate=[i, i] if ok else [9999, 0])
        for i, ok in enumerate(oks)
    ]
    results = await t.execute_batch(calls)
    first_bad = oks.index(False) if False in oks else len(oks)
    assert [r.tool_call_id for r in results] == [c.id for c in calls]
    assert [r.is_error for r in results] == [i >= first_bad for i in range(len(oks))]
    assert all(r.text == TOOLSET_HALT_TEXT for r in results[first_bad + 1 :])
    assert [kw["x"] for n, kw in fake.actions()] == list(range(first_bad))
    with_images = [i for i, r in enumerate(results) if r.images]
    assert with_images == ([first_bad - 1] if first_bad else [])


async def test_toolset_hold_key_beyond_the_beta_cap_reaches_the_desktop() -> None:
    # computer_toolset_20260801 allows hold_key up to 300 s (beta versions: 100 s); the desktop
    # must accept what the version allows instead of failing the action itself.
    from deskpilot.desktop.x11 import MAX_HOLD_S

    assert MAX_HOLD_S >= computer_spec("computer_toolset_20260801").hold_cap_s


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("arguments", [["screenshot"], "screenshot", 3, None])
async def test_non_object_input_says_it_must_be_an_object(fake, version, arguments):
    # issue 7: a non-dict input used to answer "action is required"
    name = "screenshot" if version == "computer_toolset_20260801" else "computer"
    toolset = "computer" if version == "computer_toolset_20260801" else None
    c = ToolCall("tu_x", name, arguments, toolset_name=toolset)  # type: ignore[arg-type]
    r = await tool(fake, version).execute(c)
    assert r.is_error and "input must be a JSON object" in r.text, r.text
    assert type(arguments).__name__ in r.text
    assert "action is required" not in r.text and fake.actions() == []


@pytest.mark.parametrize(
    ("version", "name", "params", "expected"),
    [
        (
            "computer_20250124",
            "left_click",
            {"coordinate": [3, 4], "text": "ctrl"},
            actions.Click(action="left_click", coordinate=(3, 4), modifiers=("ctrl",)),
        ),
        ("computer_20241022", "right_click", {}, actions.Click(action="right_click")),
        (
            "computer_20241022",
            "left_click_drag",
            {"coordinate": [5, 6]},
            actions.Drag(coordinate=(5, 6)),
        ),
        (
            "computer_20250124",
            "scroll",
            {"scroll_direction": "down", "scroll_amount": 3},
            actions.Scroll(scroll_direction="down", scroll_amount=3),
        ),
        (
            "computer_toolset_20260801",
            "key",
            {"text": "ctrl+s", "repeat": 2},
            actions.Key(text="ctrl+s", repeat=2),
        ),
        (
            "computer_20250124",
            "hold_key",
            {"text": "a", "duration": 1},
            actions.HoldKey(text="a", duration=1.0),
        ),
        ("computer_20250124", "type", {"text": "hi"}, actions.TypeText(text="hi")),
        ("computer_20250124", "wait", {"duration": 0.5}, actions.Wait(duration=0.5)),
        ("computer_20251124", "zoom", {"region": [0, 0, 9, 9]}, actions.Zoom(region=(0, 0, 9, 9))),
        ("computer_20250124", "left_mouse_up", {}, actions.MouseButton(action="left_mouse_up")),
        ("computer_20250124", "cursor_position", {}, actions.CursorPosition()),
    ],
)
def test_parse_action_returns_the_model_of_each_shape(version, name, params, expected):
    parsed = actions.parse_action(name, params, version)
    assert parsed == expected and type(parsed) is type(expected)
    with pytest.raises(pydantic.ValidationError):  # frozen
        parsed.action = "screenshot"


def test_the_action_union_dispatches_on_action_and_refuses_foreign_fields():
    adapter = pydantic.TypeAdapter(actions.Action)
    assert isinstance(adapter.validate_python({"action": "screenshot"}), actions.Screenshot)
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python({"action": "screenshot", "coordinate": (1, 2)})
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python({"action": "teleport"})
