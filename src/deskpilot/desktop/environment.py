"""The environment of every process deskpilot starts: an allow-list, never the parent's secrets.

Computer-use agents read untrusted screens through a model that can be prompt-injected, so the
desktop and the tool subprocesses must hold nothing worth stealing (Anthropic's computer-use
tool page, "Security considerations", advises a dedicated VM or container with minimal
privileges and keeping sensitive data such as login credentials away from the model:
https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/computer-use-tool). deskpilot
itself holds ``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``, AWS credentials and whatever else the
user's shell exports; none of it may reach Xvfb, the window manager, an app, or the bash
tool's shell (where ``env`` or ``cat /proc/self/environ`` would hand it to the model).

:func:`child_env` is the one owner of the rule. A child's environment is built from scratch:

1. from the parent's environment, only the names in :data:`ALLOWED_NAMES` and the ``LC_*``
   locale variables (:data:`ALLOWED_PREFIXES`) are copied;
2. then the caller's own variables (a desktop's ``DISPLAY`` and scratch ``HOME``, what the
   user passed explicitly with ``env=``) are applied on top, as given.

Everything else (``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN``, ``OPENAI_API_KEY``,
``AWS_*``, ``GITHUB_TOKEN``, ``SSH_AUTH_SOCK``, proxies, ``LD_PRELOAD``, ...) is dropped,
whatever its name. A variable a program needs is passed explicitly: ``BashTool(env={...})``,
``LocalDesktop(env={...})``, ``desktop.launch(..., env={...})``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["ALLOWED_NAMES", "ALLOWED_PREFIXES", "child_env", "is_allowed"]

#: Variables copied from the parent's environment into every child (nothing else is).
#: ``DISPLAY``/``XAUTHORITY`` only matter for programs not on a deskpilot desktop (a desktop
#: sets its own ``DISPLAY`` and ``XAUTHORITY``); ``HOME`` is replaced by a desktop's scratch
#: directory for its processes.
ALLOWED_NAMES: frozenset[str] = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "DISPLAY",
        "XAUTHORITY",
    }
)
#: Name prefixes copied as well (the POSIX locale categories: ``LC_ALL``, ``LC_CTYPE``, ...).
ALLOWED_PREFIXES: tuple[str, ...] = ("LC_",)


def is_allowed(name: str) -> bool:
    """True when ``name`` is copied from the parent's environment (see the module docstring)."""
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def child_env(
    extra: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> dict[str, str]:
    """The environment for a child process: allow-listed parent variables plus ``extra``.

    Args:
        extra: variables set explicitly by the caller (applied last, never filtered: passing
            a secret here is an explicit choice).
        base: the parent environment to filter (default ``os.environ``).
        drop: allow-listed names to leave out anyway (e.g. the parent's ``DISPLAY`` and
            ``XAUTHORITY`` for a process on a deskpilot desktop).

    Returns:
        A new dict, safe to pass as ``env=`` to ``create_subprocess_exec``.

    Raises:
        TypeError: a name or value in ``extra`` is not a string.
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if is_allowed(k) and k not in drop}
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"Environment variables must be strings, not {key!r}={value!r}; convert "
                "the value with str()."
            )
        env[key] = value
    return env
