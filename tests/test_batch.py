"""The one toolset batch rule (computer_use.batch.run_turn), without a desktop."""

from __future__ import annotations

from deskpilot.computer_use.batch import CallOutcome, run_turn
from deskpilot.computer_use.specs import TOOLSET_HALT_TEXT
from deskpilot.prompt import Image, ToolCall, ToolResult

PNG = Image(b"\x89PNG fake", "image/png")


def member(i: int, name: str = "left_click") -> ToolCall:
    return ToolCall(f"m{i}", name, {}, toolset_name="computer")


class Runner:
    """Answers each call by id: ``fail`` ids fail; records (id, quiet) of every call run."""

    def __init__(self, fail: set[str] = frozenset(), image: set[str] = frozenset()) -> None:
        self.fail, self.image, self.ran = fail, image, []

    async def __call__(self, call: ToolCall, quiet: bool) -> CallOutcome:
        self.ran.append((call.id, quiet))
        if call.id in self.fail:
            return CallOutcome(
                ToolResult(call.id, "boom", is_error=True, toolset_name=call.toolset_name)
            )
        parts = ["ok", PNG] if call.id in self.image else "ok"
        return CallOutcome(ToolResult(call.id, parts, toolset_name=call.toolset_name))


async def test_first_failure_halts_later_members_but_not_other_tools() -> None:
    calls = [member(0), member(1), ToolCall("b", "bash", {"command": "ls"}), member(2)]
    run = Runner(fail={"m1"})
    shots = []

    async def shot() -> list[Image]:
        shots.append(1)
        return [PNG]

    out = await run_turn(calls, run, screenshot=shot)
    assert run.ran == [("m0", True), ("m1", True), ("b", False)]  # m2 never ran
    assert [o.result.text for o in out] == ["ok", "boom", "ok", TOOLSET_HALT_TEXT]
    assert out[3].result.is_error and not out[3].executed and out[3].result.toolset_name
    # the last successful member (m0) had no image: one screenshot attached to it
    assert shots == [1] and out[0].result.images == [PNG]
    assert out[0].timings["screenshot_s"] >= 0 and not out[2].result.images


async def test_no_screenshot_when_the_last_member_has_one() -> None:
    calls = [member(0), member(1, "screenshot")]
    run = Runner(image={"m1"})

    async def shot() -> list[Image]:
        raise AssertionError("not needed")

    out = await run_turn(calls, run, screenshot=shot)
    assert run.ran == [("m0", True), ("m1", False)]  # only the last member takes its own
    assert [len(o.result.images) for o in out] == [0, 1]


async def test_beta_calls_are_never_halted() -> None:
    calls = [ToolCall("c0", "computer", {}), ToolCall("c1", "computer", {})]
    run = Runner(fail={"c0"})
    out = await run_turn(calls, run)
    assert run.ran == [("c0", False), ("c1", False)]
    assert [o.result.text for o in out] == ["boom", "ok"]
