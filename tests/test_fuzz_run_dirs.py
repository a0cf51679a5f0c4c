"""Fuzz: random, hostile run directories fed to the report and to replay (Hypothesis).

Each example writes a run directory whose ``trajectory.jsonl`` is made of random lines: record
shapes with random or hostile field values (markup, event handlers, template syntax, path
escapes, NaN/inf/huge numbers, control characters), random JSON, and garbage or cut-short
lines; next to it lie a valid screenshot, a truncated one, a symlink leading out of the
directory, and a decompression-bomb header. Then ``write_outputs`` (HTML + GIF) and
``replay_run`` (on the in-package FakeComputer) run on it, and the test asserts:

- no exception escapes (bad content is reported, never raised);
- the page holds only the template's markup (``html.parser``: no foreign tag, no event
  handler, no script URL, one stylesheet, a CSP without script) whatever the strings were;
- no file outside the run directory is opened (``sys.addaudithook`` on ``open`` events),
  apart from the interpreter's and the libraries' own files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import sys
import sysconfig
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

import deskpilot
from deskpilot.agent.replay import ReplayReport, replay_run
from deskpilot.agent.report import write_outputs
from deskpilot.desktop.fake import FakeComputer

sys.path.insert(0, str(Path(__file__).parent))
from html_audit import audit_html

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "</style><script>alert(1)</script>",
    "</textarea></pre><b>bold</b>",
    "{{ 7 * 7 }}{% for x in y %}",
    "&lt;already escaped&gt; &amp;",
    "../../outside/secret.png",
    "screenshots/../../outside/secret.png",
    "/etc/passwd",
    "~/.ssh/id_rsa",
    "screenshots/link.png",
    "screenshots/truncated.png",
    "screenshots/bomb.png",
    "screenshots/ok.png",
    "screenshots\\..\\..\\outside\\secret.png",
    "\x00\x1b[2J\r\u202e\ufeff",
    "a" * 200,
]
ACTIONS = [
    "left_click",
    "double_click",
    "mouse_move",
    "left_click_drag",
    "scroll",
    "zoom",
    "type",
    "key",
    "screenshot",
    "wait",
]
RECORD_TYPES = ["run_start", "step", "run_end", "desktop_restart"]

strings = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))
numbers = st.one_of(
    st.integers(min_value=-5, max_value=900),
    st.sampled_from([0, -1, 10**6, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, float("nan"), float("inf")]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)
    ),
    max_leaves=8,
)
anything = st.one_of(json_values, scalars)
pairs = st.one_of(st.lists(numbers, min_size=2, max_size=2), anything)


def _records(maybe: Callable[[st.SearchStrategy], st.SearchStrategy]) -> tuple:
    """(run_start, step, run_end) strategies: well-typed records (hostile strings, extreme
    numbers inside free-form JSON, every kind of screenshot path) whose fields ``maybe`` may
    replace with anything."""
    timings = st.dictionaries(
        st.sampled_from(["action_s", "settle_s", "screenshot_s", "total_s"]),
        maybe(st.floats(min_value=0, max_value=100)),
    )
    action_inputs = st.fixed_dictionaries(
        {"action": maybe(st.sampled_from(ACTIONS))},
        optional={
            "coordinate": pairs,
            "start_coordinate": pairs,
            "region": st.one_of(st.lists(numbers, min_size=4, max_size=4), anything),
            "scroll_direction": maybe(st.sampled_from(["up", "down", "left", "right"])),
            "scroll_amount": numbers,
            "text": strings,
            "duration": numbers,
        },
    )
    ok_shot = st.just("screenshots/ok.png")
    shots = st.one_of(st.none(), ok_shot, ok_shot, ok_shot, st.sampled_from(HOSTILE[8:17]))
    actions = st.fixed_dictionaries(
        {
            "tool_use_id": maybe(strings),
            "name": maybe(st.sampled_from(["computer", "computer", "bash", "str_replace_based_edit_tool"])),
            "input": maybe(st.one_of(action_inputs, action_inputs, st.dictionaries(strings, json_values, max_size=3))),
        },
        optional={
            "toolset_name": maybe(st.none()), "approved": maybe(st.booleans()),
            "executed": maybe(st.just(True)), "is_error": maybe(st.booleans()),
            "text": maybe(strings), "screenshot": maybe(shots), "timings": maybe(timings),
        },
    )  # fmt: skip
    blocks = st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": strings}),
        st.fixed_dictionaries({"type": st.just("thinking"), "thinking": strings}),
        st.fixed_dictionaries(
            {"type": st.just("tool_use"), "id": strings, "name": strings, "input": json_values}
        ),
        st.dictionaries(strings, json_values, max_size=3),
    )
    token_counts = st.integers(min_value=0, max_value=10**7)
    usage = st.dictionaries(
        st.sampled_from(["input_tokens", "output_tokens", "cache_read_tokens"]), maybe(token_counts)
    )
    responses = st.fixed_dictionaries(
        {},
        optional={
            "content": maybe(st.lists(blocks, max_size=4)), "usage": maybe(usage),
            "stop_reason": maybe(strings), "attempts": maybe(st.integers(0, 9)),
            "is_error": maybe(st.booleans()), "error_message": maybe(strings),
            "cost": maybe(st.floats(0, 5)), "images_in_request": maybe(st.integers(0, 9)),
        },
    )  # fmt: skip
    steps = st.fixed_dictionaries(
        {"type": st.just("step"), "index": maybe(st.integers(0, 50)), "response": maybe(responses)},
        optional={
            "actions": maybe(st.lists(actions, max_size=4)), "t": maybe(st.floats(0, 100)),
            "timings": maybe(st.dictionaries(st.sampled_from(["model_s", "step_s"]), st.floats(0, 9))),
            "cumulative": maybe(st.fixed_dictionaries({"usage": usage, "cost": st.floats(0, 9)})),
        },
    )  # fmt: skip
    small_sizes = st.lists(st.integers(min_value=1, max_value=400), min_size=2, max_size=2)
    starts = st.fixed_dictionaries(
        {
            "type": st.just("run_start"), "native_size": maybe(small_sizes),
            "tool_versions": maybe(st.fixed_dictionaries({
                "computer": maybe(st.sampled_from(["computer_20250124", "computer_toolset_20260801"])),
            }, optional={
                "editor": maybe(st.sampled_from(["text_editor_20250728"])),
                "bash": maybe(st.sampled_from(["bash_20250124"])),
            })),
        },
        optional={
            "task": maybe(strings), "model": maybe(strings), "model_id": maybe(strings),
            "provider": maybe(strings), "model_size": maybe(st.one_of(st.none(), small_sizes)),
            "image_tier": maybe(st.sampled_from(["legacy", "2576"])), "system_prompt": maybe(strings),
            "initial_screenshot": maybe(shots), "apps": maybe(st.just([])),
            "format_version": maybe(st.integers(0, 3)), "started_at": maybe(strings),
        },
    )  # fmt: skip
    ends = st.fixed_dictionaries(
        {"type": st.just("run_end")},
        optional={"stop_reason": maybe(strings), "final_text": maybe(strings),
                  "error": maybe(strings), "usage": maybe(usage), "cost": maybe(st.floats(0, 9)),
                  "steps": maybe(st.integers(0, 50))},
    )  # fmt: skip
    return starts, steps, ends


def _identity(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return strategy


def _wild(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(strategy, anything)


@st.composite
def _one_field_broken(draw: st.DrawFn, strategy: st.SearchStrategy) -> object:
    """A record of ``strategy`` with one value somewhere inside replaced by anything."""
    record = draw(strategy)
    slots: list[tuple[object, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                slots.append((node, key))
                walk(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                slots.append((node, i))
                walk(value)

    walk(record)
    container, key = draw(st.sampled_from(slots))
    container[key] = draw(anything)  # type: ignore[index]
    return record


starts, steps, ends = _records(_identity)
wild_starts, wild_steps, wild_ends = _records(_wild)
records = st.one_of(
    starts,
    steps,
    steps,
    steps,
    ends,
    _one_field_broken(steps),
    _one_field_broken(starts),
    wild_steps,
    wild_starts,
    wild_ends,
    st.fixed_dictionaries({"type": st.sampled_from(RECORD_TYPES), "step": anything}),
    st.dictionaries(strings, json_values, max_size=4),
)


def _encode_line(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)  # NaN/Infinity as Python's json writes them


lines = st.one_of(
    records.map(_encode_line),
    records.map(_encode_line),
    records.map(_encode_line),
    records.map(_encode_line),
    json_values.map(_encode_line),
    strings,
    records.map(lambda r: _encode_line(r)[: max(1, len(_encode_line(r)) // 2)]),
)
# chaos: most start with a run_start, then anything
chaotic = st.tuples(
    st.one_of(starts.map(_encode_line), starts.map(_encode_line), lines),
    st.lists(lines, min_size=1, max_size=8),
).map(lambda t: [t[0], *t[1]])
# replayable: a usable run_start, steps with computer actions, and a bit of noise
replayable = st.tuples(
    starts.filter(
        lambda r: (
            isinstance(r.get("native_size"), list)
            and isinstance(r.get("tool_versions"), dict)
            and isinstance(r["tool_versions"].get("computer"), str)
        )
    ).map(_encode_line),
    st.lists(
        steps.filter(lambda r: isinstance(r.get("actions"), list) and r["actions"]).map(
            _encode_line
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(lines, max_size=2),
).map(lambda t: [t[0], *t[1], *t[2]])
trajectories = st.one_of(chaotic, replayable).map(lambda ls: "\n".join(ls) + "\n")


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _make_dirs(root: Path, trajectory: str) -> tuple[Path, Path]:
    outside = root / "outside"
    outside.mkdir()
    Image.new("RGB", (64, 40), (200, 10, 10)).save(outside / "secret.png")
    run = root / "run"
    (run / "screenshots").mkdir(parents=True)
    Image.new("RGB", (64, 40), (10, 120, 200)).save(run / "screenshots/ok.png")
    whole = (run / "screenshots/ok.png").read_bytes()
    (run / "screenshots/truncated.png").write_bytes(whole[: len(whole) // 2])
    (run / "screenshots/bomb.png").write_bytes(_png_header(30000, 30000))
    (run / "screenshots/link.png").symlink_to(outside / "secret.png")
    (run / "trajectory.jsonl").write_text(trajectory, encoding="utf-8", errors="surrogatepass")
    return run, outside


def _allowed_roots(run: Path) -> tuple[str, ...]:
    """Where opening files is fine: the run directory, the interpreter and the installed
    packages (lazy imports, Jinja2's templates), fonts, and /dev and /proc."""
    paths = {run.resolve()}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(Path(sysconfig.get_paths()[key]).resolve())
    paths |= {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    paths.add(Path(deskpilot.__file__).resolve().parent)
    return (*(str(p) for p in paths), "/usr/share/fonts", "/dev/", "/proc/")


class _Opens:
    hooked = False
    active: list[str] | None = None

    @staticmethod
    def hook(event: str, args: tuple) -> None:
        if event == "open" and _Opens.active is not None and isinstance(args[0], str | Path):
            _Opens.active.append(os.fspath(args[0]))


_RUNFILES_TEMP = re.compile(r"\.[^/]+\.[0-9a-f]{16}\.tmp")
"""The new files of deskpilot.agent.runfiles: a bare name opened relative to a descriptor of
the run directory (the audit event carries no directory; the file lands in the run)."""


def fake_desktop(width: int = 640, height: int = 400, **_: object) -> FakeComputer:
    return FakeComputer(width, height)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # long hostile examples
@settings(
    max_examples=int(os.environ.get("DESKPILOT_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(trajectory=trajectories)
async def test_random_run_directories_are_safe_to_report_and_replay(trajectory: str) -> None:
    if not _Opens.hooked:
        sys.addaudithook(_Opens.hook)
        _Opens.hooked = True
    root = Path(tempfile.mkdtemp(prefix="deskpilot-fuzz-"))
    try:
        run, outside = _make_dirs(root, trajectory)
        allowed = _allowed_roots(run)
        _Opens.active = opened = []
        try:
            outputs = write_outputs(run, mp4=False)
            report = await replay_run(run, desktop_factory=fake_desktop)
        finally:
            _Opens.active = None
        assert outputs.animation_error is None, outputs.animation_error
        page = outputs.report.read_text(encoding="utf-8")
        # what the example reached (pytest --hypothesis-show-statistics)
        shown = page.count('<section class="step') - page.count("Unreadable step")
        event(f"readable steps shown: {min(shown, 2)}+")
        event(f"unreadable steps: {min(page.count('Unreadable step'), 2)}+")
        event(f"previews: {min(page.count('<image id='), 2)}+")
        event(f"actions replayed: {min(report.actions_replayed, 2)}+")
        assert audit_html(page) == [], trajectory
        assert isinstance(report, ReplayReport)
        assert not report.actions_replayed or report.run_dir == run.resolve()
        strays = [
            p
            for p in opened
            if not os.path.realpath(p).startswith(allowed)
            and not p.startswith(tempfile.gettempdir() + "/deskpilot-frames-")
            and not _RUNFILES_TEMP.fullmatch(p)
        ]
        assert strays == [], strays
        assert not any(str(outside) in os.path.realpath(p) for p in opened)
    finally:
        shutil.rmtree(root, ignore_errors=True)
