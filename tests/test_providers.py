"""Pure request building and response parsing per platform (no I/O)."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskpilot.computer_use.specs import GROUP_NAMES, ToolGroup, computer_definition
from deskpilot.models import REGISTRY
from deskpilot.prompt import Conversation, Image, Message, Text, ToolCall, ToolResult
from deskpilot.prompt.parts import JsonSafeText
from deskpilot.providers.anthropic import AnthropicProvider, parse_anthropic_error
from deskpilot.providers.base import RequestOptions, dumps
from deskpilot.providers.bedrock import BedrockProvider
from deskpilot.providers.caching import MAX_BREAKPOINTS, apply_cache, count_breakpoints
from deskpilot.providers.gateway import GatewayProvider, parse_chat_completion
from deskpilot.providers.tools import build_toolset, unsupported_tool_types
from deskpilot.tool import Tool

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def _anthropic_body(model: str, conv: Conversation, **opts) -> tuple[dict, dict]:
    spec = REGISTRY.resolve(model)
    o = RequestOptions(**opts)
    ts = build_toolset(spec, spec.provider, o)
    p = AnthropicProvider("http://x", "key")
    req = p.prepare(spec, conv, o, ts)
    return json.loads(req.body), req.headers


# model -> (computer, editor, bash, beta header) on the Anthropic API
API_EXPECTED = {
    "claude-3-5-sonnet-20241022": (
        "computer_20241022",
        "text_editor_20241022",
        "bash_20241022",
        "computer-use-2024-10-22",
    ),
    "claude-3.7-sonnet": (
        "computer_20250124",
        "text_editor_20250124",
        "bash_20250124",
        "computer-use-2025-01-24",
    ),
    "claude-4-sonnet": (
        "computer_20250124",
        "text_editor_20250429",
        "bash_20250124",
        "computer-use-2025-01-24",
    ),
    "claude-4-opus": (
        "computer_20250124",
        "text_editor_20250429",
        "bash_20250124",
        "computer-use-2025-01-24",
    ),
    "claude-sonnet-4-5": (
        "computer_20250124",
        "text_editor_20250728",
        "bash_20250124",
        "computer-use-2025-01-24",
    ),
    "claude-opus-4-5": (
        "computer_20251124",
        "text_editor_20250728",
        "bash_20250124",
        "computer-use-2025-11-24",
    ),
    "claude-opus-4-7": (
        "computer_20251124",
        "text_editor_20250728",
        "bash_20250124",
        "computer-use-2025-11-24",
    ),
    "claude-opus-5": (
        "computer_toolset_20260801",
        "text_editor_20250728",
        "bash_20250124",
        None,
    ),
    "claude-sonnet-5-5": (
        "computer_toolset_20260801",
        "text_editor_20250728",
        "bash_20250124",
        None,
    ),
}


@pytest.mark.parametrize("model", sorted(API_EXPECTED))
def test_anthropic_tools_and_beta_per_generation(model: str) -> None:
    body, headers = _anthropic_body(
        model, Conversation().user("hi"), computer_use=True, display_width=1280, display_height=800
    )
    computer, editor, bash, beta = API_EXPECTED[model]
    assert [t["type"] for t in body["tools"]] == [computer, editor, bash]
    assert headers.get("anthropic-beta") == beta
    assert headers["anthropic-version"] == "2023-06-01" and headers["x-api-key"] == "key"
    assert body["model"] == REGISTRY.resolve(model).model_id
    comp = body["tools"][0]
    if computer == "computer_toolset_20260801":
        assert comp == {"type": "computer_toolset_20260801"}  # no name/display fields allowed
    else:
        assert comp["name"] == "computer"
        assert (comp["display_width_px"], comp["display_height_px"]) == (1280, 800)
        assert "display_number" not in comp
        assert comp.get("enable_zoom") is (True if computer == "computer_20251124" else None)


BEDROCK_EXPECTED = {
    "claude-3.7-sonnet-bedrock": ("computer_20250124", ["computer-use-2025-01-24"]),
    "claude-4-sonnet-bedrock": ("computer_20250124", ["computer-use-2025-01-24"]),
    "claude-4-opus-bedrock": ("computer_20250124", ["computer-use-2025-01-24"]),
    "claude-4.5-opus-bedrock": ("computer_20251124", ["computer-use-2025-11-24"]),
    "claude-opus-5-bedrock": ("computer_20251124", ["computer-use-2025-11-24"]),
    "claude-sonnet-5-5-bedrock": ("computer_20251124", ["computer-use-2025-11-24"]),
    "claude-3-5-sonnet-20241022-bedrock": ("computer_20241022", ["computer-use-2024-10-22"]),
}


@pytest.mark.parametrize("model", sorted(BEDROCK_EXPECTED))
def test_bedrock_body_per_generation(model: str) -> None:
    spec = REGISTRY.resolve(model)
    assert spec.provider == "bedrock" and spec.model_id.startswith("us.anthropic.")
    o = RequestOptions(computer_use=True, cache=("tools_only",), max_tokens=333)
    ts = build_toolset(spec, "bedrock", o)
    p = BedrockProvider("us-east-1", "http://127.0.0.1:1")
    req = p.prepare(spec, Conversation().system("s").user("hi"), o, ts)
    body = json.loads(req.body)
    computer, betas = BEDROCK_EXPECTED[model]
    assert "model" not in body
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert body["anthropic_beta"] == betas
    assert body["tools"][0]["type"] == computer
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["max_tokens"] == 333 and body["system"] == "s"
    assert "anthropic-beta" not in req.headers
    assert req.url == f"http://127.0.0.1:1/model/{spec.model_id.replace(':', '%3A')}/invoke"


def test_bedrock_signature_headers_with_botocore() -> None:
    from botocore.credentials import Credentials

    spec = REGISTRY.resolve("claude-4-sonnet-bedrock")
    o = RequestOptions()
    p = BedrockProvider("eu-west-1")
    req = p.prepare(spec, Conversation().user("x"), o, build_toolset(spec, "bedrock", o))
    assert req.url.startswith("https://bedrock-runtime.eu-west-1.amazonaws.com/model/")
    h1 = p.sign_with(Credentials("AKID", "SECRET", "TOKEN"), req)
    assert h1["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    assert "/eu-west-1/bedrock/aws4_request" in h1["Authorization"]
    assert h1["X-Amz-Security-Token"] == "TOKEN"
    assert "SECRET" not in json.dumps(h1)
    assert req.headers.get("Authorization") is None  # the prepared headers stay unsigned


def test_gateway_body_carries_anthropic_tools_verbatim_and_custom_as_functions() -> None:
    spec = REGISTRY.resolve("anthropic/claude-3-5-sonnet-20241022")

    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    o = RequestOptions(
        computer_use=True,
        display_number=1,
        tools=(Tool.from_function(lookup), {"name": "raw", "input_schema": {"type": "object"}}),
        cache=("tools_only",),
    )
    ts = build_toolset(spec, "gateway", o)
    p = GatewayProvider("https://api.model.box/v1", "sk")
    req = p.prepare(spec, Conversation().system("sys").user("Save a cat"), o, ts)
    body = json.loads(req.body)
    assert req.url == "https://api.model.box/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk"
    assert body["tools"][:3] == [
        {
            "type": "computer_20241022",
            "name": "computer",
            "display_width_px": 1024,
            "display_height_px": 768,
            "display_number": 1,
        },
        {"type": "text_editor_20241022", "name": "str_replace_editor"},
        {"type": "bash_20241022", "name": "bash"},
    ]
    assert body["tools"][3]["type"] == "function"
    assert body["tools"][3]["function"]["name"] == "lookup"
    assert body["tools"][4]["function"]["parameters"] == {"type": "object"}
    assert "cache_control" not in json.dumps(body)
    assert body["tool_choice"] == "auto"
    assert body["messages"][0] == {"role": "system", "content": "sys"}


def test_gateway_tool_results_and_screenshots_go_back_in_openai_form() -> None:
    conv = Conversation().user("go")
    conv.add(Message("assistant", [ToolCall("call_1", "computer", {"action": "screenshot"})]))
    conv.add(Message("user", [ToolResult("call_1", [Text("done"), Image(PNG)])]))
    msgs = conv.to_openai()
    assert msgs[1]["tool_calls"][0]["function"] == {
        "name": "computer",
        "arguments": '{"action": "screenshot"}',
    }
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_1", "content": "done"}
    assert msgs[3]["role"] == "user"
    assert msgs[3]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_parse_chat_completion_maps_finish_reasons() -> None:
    for finish, stop in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
    ]:
        parsed = parse_chat_completion(
            {
                "choices": [
                    {"message": {"role": "assistant", "content": "hi"}, "finish_reason": finish}
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2},
            },
            None,
        )
        assert parsed.stop_reason == stop
        assert parsed.content.completion == "hi"
        assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (7, 2)
    with pytest.raises(KeyError):
        parse_chat_completion({"nope": 1}, None)


def test_anthropic_response_parsing_keeps_toolset_name_and_thinking() -> None:
    p = AnthropicProvider()
    parsed = p.parse(
        {
            "id": "msg_1",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "ok"},
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "left_click",
                    "input": {"coordinate": [1, 2]},
                    "toolset_name": "computer",
                },
            ],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 5,
                "output_tokens": 6,
                "cache_read_input_tokens": 7,
                "cache_creation_input_tokens": 8,
            },
        },
        {},
    )
    (call,) = parsed.content.tool_calls
    assert call.toolset_name == "computer" and call.name == "left_click"
    assert parsed.content.thinking_parts[0].signature == "sig"
    assert parsed.request_id == "msg_1"
    assert (parsed.usage.cache_read_tokens, parsed.usage.cache_write_tokens) == (7, 8)


def test_error_parsing_per_platform() -> None:
    e = parse_anthropic_error(
        429, {"type": "error", "error": {"type": "rate_limit_error", "message": "m"}}
    )
    assert (e.error_type, e.message) == ("rate_limit_error", "m")
    assert parse_anthropic_error(529, "<html>").error_type == "overloaded_error"
    b = BedrockProvider("us-east-1").parse_error(
        429, {"message": "Too many tokens"}, {"x-amzn-ErrorType": "ThrottlingException:http://x"}
    )
    assert b.error_type == "rate_limit_error" and "Too many tokens" in b.message
    v = BedrockProvider("us-east-1").parse_error(
        400, {"message": "bad"}, {"x-amzn-ErrorType": "ValidationException"}
    )
    assert v.error_type == "invalid_request_error"
    o = GatewayProvider("http://x/v1").parse_error(
        401, {"error": {"message": "no key", "type": "invalid_request_error"}}, {}
    )
    assert o.message == "no key"


def test_unsupported_tool_types_parsing() -> None:
    assert unsupported_tool_types(
        "'claude-sonnet-5-5' does not support tool types: computer_20251124."
    ) == ["computer_20251124"]
    assert unsupported_tool_types(
        "'claude-opus-4-7' does not support tool types: computer_20241022, bash_20241022"
    ) == ["computer_20241022", "bash_20241022"]
    assert unsupported_tool_types("prompt is too long") == []


def test_step_down_chain_in_toolset() -> None:
    spec = REGISTRY.resolve("claude-opus-5")
    o = RequestOptions(computer_use=True)
    ts = build_toolset(spec, "anthropic", o, {"computer_toolset_20260801"})
    assert ts.computer_tool_type == "computer_20251124" and ts.betas == ["computer-use-2025-11-24"]
    ts2 = build_toolset(spec, "anthropic", o, {"computer_toolset_20260801", "computer_20251124"})
    assert ts2.computer_tool_type == "computer_20250124"
    assert [t["type"] for t in ts2.tools][1:] == ["text_editor_20250728", "bash_20250124"]


def test_raw_tool_dict_beta_inferred_and_duplicate_names_rejected() -> None:
    spec = REGISTRY.resolve("claude-4-sonnet")
    raw = computer_definition("computer_20251124", 800, 600)
    ts = build_toolset(spec, "anthropic", RequestOptions(tools=(raw,)))
    assert ts.betas == ["computer-use-2025-11-24"] and ts.computer_tool_type == "computer_20251124"
    from deskpilot.errors import ConfigError

    with pytest.raises(ConfigError):
        build_toolset(spec, "anthropic", RequestOptions(computer_use=True, tools=(raw,)))


# --- caching ---------------------------------------------------------------------------------


def _conv(n_turns: int) -> Conversation:
    conv = Conversation().system("You are a bot.")
    for i in range(n_turns):
        conv.user(f"user {i}")
        conv.ai(f"ai {i}")
    conv.user("last")
    return conv


def _marks(body: dict) -> list[str]:
    out = []
    for i, t in enumerate(body.get("tools", [])):
        if "cache_control" in t:
            out.append(f"tool{i}")
    if isinstance(body.get("system"), list) and "cache_control" in body["system"][-1]:
        out.append("system")
    for i, m in enumerate(body["messages"]):
        if isinstance(m["content"], list) and any("cache_control" in b for b in m["content"]):
            out.append(f"msg{i}")
    return out


@pytest.mark.parametrize(
    "cache,expected",
    [
        ("tools_only", ["tool2"]),
        ("system_and_tools", ["system"]),
        ("last_user_message", ["msg8"]),
        ("last_2_user_messages", ["msg6", "msg8"]),
        ("last_3_user_messages", ["msg4", "msg6", "msg8"]),
        (("system_and_tools", "last_3_user_messages"), ["system", "msg4", "msg6", "msg8"]),
        (
            ("tools_only", "system_and_tools", "last_3_user_messages"),
            ["tool2", "system", "msg6", "msg8"],
        ),
    ],
)
def test_cache_control_placement(cache, expected) -> None:
    conv = _conv(4)
    before = copy.deepcopy([m.parts for m in conv.messages])
    modes = (cache,) if isinstance(cache, str) else cache
    body, _ = _anthropic_body("claude-4-sonnet", conv, computer_use=True, cache=modes)
    assert _marks(body) == expected
    assert count_breakpoints(body) <= MAX_BREAKPOINTS
    assert [m.parts for m in conv.messages] == before  # the caller's conversation untouched
    if "system" in expected:
        assert body["system"] == [
            {"type": "text", "text": "You are a bot.", "cache_control": {"type": "ephemeral"}}
        ]


def test_system_and_tools_without_system_marks_the_last_tool() -> None:
    body, _ = _anthropic_body(
        "claude-4-sonnet", Conversation().user("x"), computer_use=True, cache=("system_and_tools",)
    )
    assert _marks(body) == ["tool2"]


def test_cache_never_mutates_shared_block_dicts_and_counts_existing_marks() -> None:
    shared = {"type": "text", "text": "block"}
    pre_marked = {"type": "text", "text": "pre", "cache_control": {"type": "ephemeral"}}
    messages = [
        {"role": "user", "content": [pre_marked]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": [shared]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": "plain string"},
    ]
    tools = [{"name": "t", "input_schema": {"type": "object"}}]
    snapshot = copy.deepcopy((tools, messages))
    new_tools, system, new_msgs = apply_cache(
        ("tools_only", "system_and_tools", "last_3_user_messages"), tools, "sys", messages
    )
    assert (tools, messages) == snapshot and "cache_control" not in shared
    body = {"tools": new_tools, "system": system, "messages": new_msgs}
    assert count_breakpoints(body) == 4  # 1 existing + tool + system + newest user turn
    assert new_msgs[4]["content"] == [
        {"type": "text", "text": "plain string", "cache_control": {"type": "ephemeral"}}
    ]
    assert "cache_control" not in json.dumps(new_msgs[2])  # oldest marks dropped first


def test_request_options_are_not_shared_state() -> None:
    spec = REGISTRY.resolve("claude-4-sonnet")
    o = RequestOptions(computer_use=True, cache=("tools_only",))
    ts = build_toolset(spec, "anthropic", o)
    before = copy.deepcopy(ts.tools)
    AnthropicProvider().prepare(spec, Conversation().user("x"), o, ts)
    assert ts.tools == before  # cache marks went to copies


def test_every_generation_has_definitions() -> None:
    for key in GROUP_NAMES:
        group = ToolGroup.named(key)
        assert key.isdigit() and group.computer and group.editor and group.bash


def test_missing_botocore_gives_install_hint(monkeypatch) -> None:
    import sys

    from deskpilot.errors import MissingDependencyError

    for mod in ("botocore", "botocore.auth", "botocore.awsrequest", "botocore.session"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(MissingDependencyError) as info:
        BedrockProvider("us-east-1")
    assert "pip install 'deskpilot[bedrock]'" in str(info.value)
    assert isinstance(info.value, ImportError)


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(), st.just("\x00"), st.just('"\\')
)
_b64 = st.binary(max_size=64).map(lambda b: JsonSafeText(base64.b64encode(b).decode("ascii")))
_body = st.recursive(
    st.one_of(_json_leaf, _b64),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=5), kids, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(body=_body)
def test_dumps_splices_base64_in_byte_identical_and_leaves_the_body_alone(body):
    """Images' base64 (JsonSafeText) is copied into the body after encoding, not scanned:
    the bytes must be exactly json.dumps's, whatever text, markers or nesting surround it."""
    before = copy.deepcopy(body)
    expected = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert dumps(body) == expected
    assert body == before


def test_dumps_of_a_request_with_screenshots_matches_json_dumps():
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    text = 'what is on the screen? \u00e9\u4e2d \x00 "quoted" \\'
    conv = Conversation().user(text, image=Image(png, "image/png"))
    _system, anthropic = conv.to_anthropic()
    for body in ({"messages": anthropic}, {"messages": conv.to_openai()}):
        expected = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        assert dumps(body) == expected
    sent = json.loads(dumps({"messages": anthropic}))["messages"][0]["content"]
    image = next(block for block in sent if block["type"] == "image")
    assert base64.b64decode(image["source"]["data"]) == png
