"""Prompt types: construction, Anthropic and OpenAI round trips, no mutation."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image as PILImage

from deskpilot.errors import ConfigError
from deskpilot.prompt import (
    Conversation,
    Image,
    Message,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
    as_conversation,
)

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_B64)


def _jpeg(w: int = 4, h: int = 3) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (w, h), "red").save(buf, format="JPEG")
    return buf.getvalue()


def _rich_conversation() -> Conversation:
    conv = Conversation().system("You drive a desktop.")
    conv.user("Open the editor", image=PNG)
    conv.add(
        Message(
            "assistant",
            [
                Thinking("let me look", signature="sig-abc"),
                Text("Taking a screenshot."),
                ToolCall("toolu_1", "computer", {"action": "screenshot"}),
                ToolCall(
                    "toolu_2", "left_click", {"coordinate": [10, 20]}, toolset_name="computer"
                ),
            ],
        )
    )
    conv.add(
        Message(
            "user",
            [
                ToolResult(
                    "toolu_1",
                    [
                        {"type": "text", "text": "here"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": PNG_B64,
                            },
                        },
                    ],
                ),
                ToolResult("toolu_2", "clicked", is_error=True, toolset_name="computer"),
            ],
        )
    )
    conv.add(Message("assistant", [Thinking("opaque", redacted=True), Text("Done.")]))
    return conv


def test_anthropic_round_trip_is_exact() -> None:
    conv = _rich_conversation()
    system, messages = conv.to_anthropic()
    assert system == "You drive a desktop."
    back = Conversation.from_anthropic(json.loads(json.dumps(messages)), system=system)
    assert back.to_anthropic() == (system, messages)
    tr = messages[2]["content"][0]
    assert tr["type"] == "tool_result" and tr["content"][1]["source"]["data"] == PNG_B64
    err = messages[2]["content"][1]
    assert err["is_error"] is True and err["toolset_name"] == "computer"
    assert messages[1]["content"][0] == {
        "type": "thinking",
        "thinking": "let me look",
        "signature": "sig-abc",
    }
    assert messages[1]["content"][3]["toolset_name"] == "computer"
    assert messages[3]["content"][0] == {"type": "redacted_thinking", "data": "opaque"}


def test_openai_round_trip() -> None:
    conv = Conversation().system("sys").user("hi")
    conv.add(
        Message(
            "assistant",
            [Text("calling"), ToolCall("call_1", "get_weather", {"location": "Paris"})],
        )
    )
    conv.add(Message("user", [ToolResult("call_1", "sunny")]))
    conv.ai("It is sunny.")
    wire = conv.to_openai()
    assert wire == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]
    back = Conversation.from_openai(wire)
    assert back.to_openai() == wire
    assert back.to_anthropic() == conv.to_anthropic()


def test_openai_images_and_errors() -> None:
    conv = Conversation().user("look", image=PNG)
    conv.add(Message("assistant", [ToolCall("c1", "computer", {"action": "screenshot"})]))
    conv.add(Message("user", [ToolResult("c1", [Image(PNG)]), ToolResult("c2", "bad", True)]))
    wire = conv.to_openai()
    assert wire[0]["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG_B64}"
    assert wire[2] == {"role": "tool", "tool_call_id": "c1", "content": "(image)"}
    assert wire[3] == {"role": "tool", "tool_call_id": "c2", "content": "Error: bad"}
    assert wire[4]["role"] == "user" and wire[4]["content"][0]["type"] == "image_url"
    back = Conversation.from_openai(wire)
    assert back.messages[0].images[0] == Image(PNG)
    assert [r.tool_call_id for r in back.messages[2].tool_results] == ["c1", "c2"]


@pytest.mark.parametrize(
    "source",
    ["bytes", "path", "pil", "b64", "data_url", "bytesio"],
)
def test_image_sources(source: str, tmp_path: Path) -> None:
    jpeg = _jpeg(5, 7)
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg)
    value = {
        "bytes": jpeg,
        "path": path,
        "pil": PILImage.open(io.BytesIO(jpeg)),
        "b64": base64.b64encode(jpeg).decode(),
        "data_url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode(),
        "bytesio": io.BytesIO(jpeg),
    }[source]
    img = Image(value)
    assert img.size == (5, 7)
    assert img.media_type == ("image/png" if source == "pil" else "image/jpeg")
    block = img.to_anthropic()
    assert base64.b64decode(block["source"]["data"]) == img.data


def test_bad_images_and_roles() -> None:
    with pytest.raises(ConfigError):
        Image(b"not an image")
    with pytest.raises(ConfigError):
        Image(12)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Message("robot", [])  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Message("system", [Text("x")]).to_anthropic()
    assert Message("tool", [ToolResult("a", "b")]).role == "user"  # type: ignore[arg-type]


def test_tool_result_shapes() -> None:
    assert ToolResult("a", "text").to_anthropic()["content"] == "text"
    dict_result = ToolResult("a", {"type": "text", "text": "one dict"})  # LM Deluge raised here
    assert dict_result.to_anthropic()["content"] == [{"type": "text", "text": "one dict"}]
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}
    assert ToolResult("a", [doc]).to_anthropic()["content"] == [doc]
    mixed = ToolResult("a", ["plain", Text("t"), Image(PNG)])
    assert mixed.text == "plain\nt" and len(mixed.images) == 1
    with pytest.raises(ConfigError):
        ToolResult("a", 3.5)


def test_views_and_builders() -> None:
    msg = Message("assistant", [Text("a"), ToolCall("1", "x", {}), Text("b")])
    assert msg.completion == "a\nb"  # every text block, not just the first
    assert [c.id for c in msg.tool_calls] == ["1"]
    assert Message("user", "hello").parts == [Text("hello")]
    conv = Conversation().system("one").system("two").user("u")
    assert conv.system_text == "one\n\ntwo"  # later system messages are not dropped
    assert len(conv) == 3 and conv.copy().messages is not conv.messages


def test_consecutive_same_role_turns_merge_without_mutation() -> None:
    conv = Conversation().user("a").user("b")
    _, msgs = conv.to_anthropic()
    assert msgs == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert len(conv.messages) == 2 and conv.messages[0].parts == [Text("a")]


def test_as_conversation_inputs() -> None:
    c = Conversation().user("x")
    assert as_conversation(c) is c
    assert as_conversation("hi").messages[0].completion == "hi"
    assert as_conversation(Message("user", "m")).messages[0].completion == "m"
    anth = as_conversation(
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
        ]
    )
    assert anth.system_text == "sys" and anth.messages[-1].completion == "q"
    oai = as_conversation(
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": "r"},
        ]
    )
    assert oai.messages[2].tool_results[0].result == "r"
    with pytest.raises(ConfigError):
        as_conversation(42)


def test_as_conversation_accepts_anthropic_system_blocks() -> None:
    conv = as_conversation(
        [
            {"role": "system", "content": [{"type": "text", "text": "block sys"}]},
            {"role": "user", "content": "q"},
        ]
    )
    assert conv.system_text == "block sys"


def test_serialising_never_mutates_parts() -> None:
    conv = _rich_conversation()
    before = repr(conv.messages)
    conv.to_anthropic()
    conv.to_openai()
    assert repr(conv.messages) == before


@pytest.mark.parametrize("size", [(1, 1), (640, 480), (1280, 800), (70000, 3)])
def test_png_size_comes_from_its_header(size):
    """A screenshot's size is read from its IHDR chunk (no decoder); the same as PIL's."""
    buf = io.BytesIO()
    PILImage.new("RGB", (1, 1)).save(buf, "PNG")
    one = buf.getvalue()
    # the same file with IHDR rewritten to ``size`` (and its CRC fixed): PIL reads it the same
    ihdr = b"IHDR" + struct.pack(">II", *size) + one[24:29]
    png = one[:8] + one[8:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + one[33:]
    assert Image(png).size == size
    with PILImage.open(io.BytesIO(png)) as im:
        assert im.size == size
