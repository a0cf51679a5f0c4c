"""The per-call keyword arguments of ``LLMClient.start`` / ``process_prompts_async``, once.

:class:`CallOptions` lists them (names from the seed and the Messages API); both methods take
them as ``**options`` typed by it, and :func:`build_options` validates them into the
providers' :class:`~deskpilot.providers.base.RequestOptions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

from ..errors import ConfigError
from ..prompt import Conversation, Message
from ..providers.base import RequestOptions
from ..providers.caching import normalise_cache
from ..tool import Tool


class CallOptions(TypedDict, total=False):
    """Keyword arguments of ``LLMClient.start`` and ``process_prompts_async`` (all optional).

    Keys:
        computer_use: add the computer, text-editor and bash tools of the model's tool group
            on its provider, with the beta flag they need (default False).
        display_width / display_height: the display size told to the model, in model-space
            pixels (default 1024 x 768).
        display_number: the X11 display number in the computer tool definition.
        cache: a prompt-cache mode or a list of them (``tools_only``, ``system_and_tools``,
            ``last_user_message``, ``last_2_user_messages``, ``last_3_user_messages``);
            ignored on gateways.
        tools: custom :class:`~deskpilot.tool.Tool` s or Anthropic tool dicts, sent after the
            computer-use tools, exactly as given.
        max_tokens: ``max_tokens`` of each request (default: the client's
            ``max_new_tokens``), capped at the model's ``max_output_tokens``.
        temperature: overrides the client's temperature.
        system: a system prompt replacing the conversations' system messages.
        thinking: the Messages API ``thinking`` object, passed through (e.g.
            ``{"type": "enabled", "budget_tokens": 2048}``).
        tool_choice: the ``tool_choice`` object, passed through.
        extra_body: extra body keys, merged last.
    """

    computer_use: bool
    display_width: int
    display_height: int
    display_number: int | None
    cache: str | Sequence[str] | None
    tools: Iterable[Tool | dict[str, Any]] | None
    max_tokens: int | None
    temperature: float | None
    system: str | None
    thinking: dict[str, Any] | None
    tool_choice: dict[str, Any] | None
    extra_body: dict[str, Any] | None


OPTION_NAMES = frozenset(CallOptions.__annotations__)


def build_options(
    options: Mapping[str, Any], *, max_new_tokens: int, temperature: float | None, where: str
) -> RequestOptions:
    """Validate ``options`` (a :class:`CallOptions` mapping) into :class:`RequestOptions`.

    Args:
        options: the keyword arguments the caller passed.
        max_new_tokens / temperature: the client's defaults.
        where: the method's name, for messages (``"start"``).

    Raises:
        TypeError: an unknown keyword (the message lists the known ones).
        ConfigError: a value of the wrong type or range (the message says what to pass).
    """
    unknown = options.keys() - OPTION_NAMES
    if unknown:
        raise TypeError(
            f"{where}() got an unexpected keyword argument {sorted(unknown)[0]!r}; its options "
            f"are {', '.join(sorted(OPTION_NAMES))}."
        )
    width = options.get("display_width", 1024)
    height = options.get("display_height", 768)
    for name, v in (("display_width", width), ("display_height", height)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{name} must be a positive integer of pixels, not {v!r}.")
    tool_list = tuple(options.get("tools") or ())
    for t in tool_list:
        if not isinstance(t, Tool | dict):
            raise ConfigError(
                "tools= items must be deskpilot.Tool objects (Tool.from_function(fn)) or "
                f"Anthropic tool dicts, not {type(t).__name__}."
            )
    max_tokens = options.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise ConfigError(f"max_tokens must be a positive integer, not {max_tokens!r}.")
    system = options.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigError("system= must be a string (the system prompt).")
    thinking = options.get("thinking")
    if thinking is not None and not isinstance(thinking, dict):
        raise ConfigError('thinking= must be a dict such as {"type": "enabled", ...}.')
    temp = options.get("temperature")
    return RequestOptions(
        computer_use=bool(options.get("computer_use", False)),
        display_width=width,
        display_height=height,
        display_number=options.get("display_number"),
        cache=normalise_cache(options.get("cache")),
        tools=tool_list,
        max_tokens=max_tokens or max_new_tokens,
        temperature=temp if temp is not None else temperature,
        system=system,
        thinking=thinking,
        tool_choice=options.get("tool_choice"),
        extra_body=options.get("extra_body"),
    )


def is_single_prompt(prompts: Any) -> bool:
    """True when ``prompts`` is ONE prompt (a Conversation, Message, string or a list of
    message dicts), False for a sequence of prompts."""
    if isinstance(prompts, Conversation | Message | str):
        return True
    return (
        isinstance(prompts, list)
        and bool(prompts)
        and all(isinstance(m, dict) and "role" in m for m in prompts)
    )


def prompt_items(prompts: Any) -> list[Any]:
    """``prompts`` as a list of prompts (one prompt becomes a list of one)."""
    return [prompts] if is_single_prompt(prompts) else list(prompts)


def check_prompt(prompt: Any, index: int) -> None:
    """Raise unless ``prompt`` (number ``index``) is a Conversation, Message, str or list.

    Raises:
        ConfigError: any other type (the message says what to pass).
    """
    if not isinstance(prompt, Conversation | Message | str | list):
        raise ConfigError(
            f"Prompt {index} is a {type(prompt).__name__}; pass a Conversation, a Message, a "
            "string or a list of message dicts (or a list of those)."
        )


__all__ = [
    "OPTION_NAMES",
    "CallOptions",
    "build_options",
    "check_prompt",
    "is_single_prompt",
    "prompt_items",
]
