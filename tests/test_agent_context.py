"""The agent's context policy: interval screenshot pruning and cache-breakpoint accounting."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from deskpilot.agent.context import (
    PRUNED_IMAGE_TEXT,
    count_images,
    images_to_remove,
    prune_images,
    text_before_images,
    validate_policy,
)
from deskpilot.errors import ConfigError
from deskpilot.prompt import Conversation, Image, Message, Text, ToolCall, ToolResult
from deskpilot.testing import count_body_images, count_cache_breakpoints, text_precedes_images


def _png(seed: int) -> Image:
    buf = io.BytesIO()
    PILImage.new("RGB", (4, 3), (seed % 256, (seed * 7) % 256, 0)).save(buf, format="PNG")
    return Image(buf.getvalue())


def _history(images_per_turn: list[int], initial: bool = True) -> Conversation:
    """A conversation like the agent builds: task (+ initial screenshot), then per turn an
    assistant tool_use message and a user message of tool_results with screenshots."""
    conv = Conversation().user("do the task")
    seed = 0
    if initial:
        conv.messages[0].parts.append(_png(seed))
        seed += 1
    for t, n in enumerate(images_per_turn):
        calls = [
            ToolCall(f"t{t}_{i}", "computer", {"action": "screenshot"}) for i in range(max(n, 1))
        ]
        conv.add(Message("assistant", [Text("working"), *calls]))
        results = []
        for i, c in enumerate(calls):
            parts: list = [Text(f"done {t}.{i}")]
            if i < n:
                parts.append(_png(seed))
                seed += 1
            results.append(ToolResult(c.id, parts))
        conv.add(Message("user", results))
    return conv


def _image_ids(conv: Conversation) -> list[bytes]:
    out = []
    for m in conv.messages:
        for p in m.parts:
            if isinstance(p, Image):
                out.append(p.data)
            elif isinstance(p, ToolResult) and not isinstance(p.result, str):
                out.extend(q.data for q in p.result if isinstance(q, Image))
    return out


def test_images_to_remove_arithmetic():
    assert images_to_remove(0, 3, 5) == 0
    assert images_to_remove(3, 3, 5) == 0
    assert images_to_remove(7, 3, 5) == 0  # 4 extra < interval: nothing yet
    assert images_to_remove(8, 3, 5) == 5  # 5 extra: one chunk
    assert images_to_remove(12, 3, 5) == 5
    assert images_to_remove(13, 3, 5) == 10
    assert images_to_remove(10, 3, 1) == 7  # interval 1 = prune every turn
    assert images_to_remove(50, None, 5) == 0


def test_validate_policy_rejects_bad_values():
    validate_policy(None, 1)
    validate_policy(3, 10)
    with pytest.raises(ConfigError, match="keep_screenshots"):
        validate_policy(0, 10)
    with pytest.raises(ConfigError, match="prune_interval"):
        validate_policy(3, 0)


def test_prune_replaces_oldest_with_placeholder_and_keeps_newest():
    conv = _history([1] * 9)  # 1 initial + 9 = 10 images
    before = _image_ids(conv)
    pruned = prune_images(conv, keep=3, interval=5)
    after = _image_ids(pruned)
    assert len(before) == 10
    assert after == before[5:]  # 7 extra -> remove one chunk of 5
    # the original is untouched
    assert _image_ids(conv) == before
    # the first user turn keeps its text, then the placeholder instead of the image
    first = pruned.messages[0]
    assert isinstance(first.parts[0], Text) and first.parts[0].text == "do the task"
    assert first.parts[1].text == PRUNED_IMAGE_TEXT
    # a pruned tool_result keeps its id and text, in order
    tr = pruned.messages[2].parts[0]
    assert isinstance(tr, ToolResult) and tr.tool_call_id == "t0_0"
    assert [p.text for p in tr.result] == ["done 0.0", PRUNED_IMAGE_TEXT]
    # messages without pruned images are shared, not copied
    assert pruned.messages[-1] is conv.messages[-1]
    assert pruned.messages[1] is conv.messages[1]


def test_prune_none_returns_same_object():
    conv = _history([1] * 20)
    assert prune_images(conv, None, 5) is conv
    assert prune_images(_history([1]), 3, 5).messages == _history([1]).messages


def test_prefix_is_stable_between_prunes():
    """Requests between two prune points share their whole prefix (cache-friendly)."""
    keep, interval = 3, 4
    prev = None
    changes = 0
    for turns in range(1, 30):
        wire = prune_images(_history([1] * turns), keep, interval).to_anthropic()[1]
        if prev is not None:
            same_prefix = wire[: len(prev)] == prev
            if not same_prefix:
                changes += 1
        prev = wire
    # 1 + 29 images; the prefix changes only when a chunk is removed
    assert changes == (1 + 29 - keep) // interval


@settings(max_examples=150, deadline=None)
@given(
    turns=st.lists(st.integers(min_value=0, max_value=4), min_size=0, max_size=25),
    keep=st.integers(min_value=1, max_value=6),
    interval=st.integers(min_value=1, max_value=12),
    initial=st.booleans(),
)
def test_bound_property(turns, keep, interval, initial):
    """Never more than keep + interval - 1 images, never fewer than min(total, keep), the
    newest images always survive, and the number of removals is a multiple of interval."""
    conv = _history(turns, initial=initial)
    total = count_images(conv)
    pruned = prune_images(conv, keep, interval)
    kept = count_images(pruned)
    assert kept <= keep + interval - 1 or kept == total <= keep
    assert kept >= min(total, keep)
    assert (total - kept) % interval == 0
    assert _image_ids(pruned) == _image_ids(conv)[total - kept :]
    # every tool_use still has its tool_result, ids unchanged
    assert [r.tool_call_id for m in pruned.messages for r in m.tool_results] == [
        r.tool_call_id for m in conv.messages for r in m.tool_results
    ]
    body = {"messages": pruned.to_anthropic()[1]}
    assert count_body_images(body) == kept
    assert text_precedes_images(body)


def test_text_before_images_is_stable():
    a, b = _png(1), _png(2)
    parts = [a, Text("x"), b, Text("y")]
    assert text_before_images(parts) == [Text("x"), Text("y"), a, b]


def test_wire_inspectors():
    body = {
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "bash", "type": "bash_20250124"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "t"}, _png(1).to_anthropic()]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "a",
                        "content": [_png(2).to_anthropic(), {"type": "text", "text": "late"}],
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
    }
    assert count_cache_breakpoints(body) == 2
    assert count_body_images(body) == 2
    assert not text_precedes_images(body)  # text after the image inside the tool_result


@settings(max_examples=60, deadline=None)
@given(
    turns=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=20),
    keep=st.integers(min_value=1, max_value=5),
    interval=st.integers(min_value=1, max_value=9),
)
def test_pruning_the_pruned_history_is_the_same(turns, keep, interval):
    """The agent keeps only its pruned conversation between turns; every request must equal
    pruning the full history (so memory is bounded and the cached prefix is unchanged)."""
    full = _history([], initial=True)
    kept = full.copy()
    seed = 1000
    for t, n in enumerate(turns):
        calls = [
            ToolCall(f"u{t}_{i}", "computer", {"action": "screenshot"}) for i in range(max(n, 1))
        ]
        results = [
            ToolResult(c.id, [Text("ok"), *([_png(seed + i)] if i < n else [])])
            for i, c in enumerate(calls)
        ]
        seed += n
        for conv in (full, kept):
            conv.messages.append(Message("assistant", [*calls]))
            conv.messages.append(Message("user", list(results)))
        kept = prune_images(kept, keep, interval)
        assert kept.to_anthropic() == prune_images(full, keep, interval).to_anthropic()
