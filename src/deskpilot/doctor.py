"""``deskpilot doctor``: which programs, Python modules and settings the desktop needs.

:func:`check` returns one :class:`Check` per requirement with the exact command that fixes
it; :func:`format_report` renders them for the terminal. Package names are the Debian 12
ones verified in ``shared/reference/desktop_probe.md`` §9 (``scripts/install-desktop-deps.sh``
installs them all). The API key is only reported as set or not; its value is never shown.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PROGRAMS", "PYTHON_MODULES", "Check", "check", "format_report"]

INSTALL_SCRIPT = "bash scripts/install-desktop-deps.sh"


@dataclass(frozen=True)
class Check:
    """One requirement.

    Attributes:
        name: what was checked (``"Xvfb"``, ``"python: mss"``, ``"ANTHROPIC_API_KEY"``).
        ok: whether it is present.
        detail: where it was found, or what is missing and what needs it.
        fix_command: the exact command that installs/sets it ("" when ok).
        required: False for things only some features need (browser, ffmpeg, API key).
    """

    name: str
    ok: bool
    detail: str
    fix_command: str = ""
    required: bool = True


# program -> (Debian package, what needs it, required)
PROGRAMS: dict[str, tuple[str, str, bool]] = {
    "Xvfb": ("xvfb", "the virtual X server", True),
    "openbox": ("openbox", "the window manager", True),
    "xdotool": ("xdotool", "the reference method in benchmarks", False),
    "xclip": ("xclip", "clipboard access", False),
    "xterm": ("xterm", "the terminal app", True),
    "mousepad": ("mousepad", "the text editor app (demo)", False),
    "chromium": ("chromium", "the browser app and report screenshots", False),
    "ffmpeg": ("ffmpeg", "MP4 videos of runs", False),
}

# import name -> (pip requirement, what needs it)
PYTHON_MODULES: dict[str, tuple[str, str]] = {
    "mss": ("deskpilot[desktop]", "screen capture"),
    "Xlib": ("deskpilot[desktop]", "X11 input (python-xlib)"),
    "numpy": ("deskpilot[desktop]", "the screen-settle detector"),
    "PIL": ("deskpilot", "image encoding (Pillow)"),
    "aiohttp": ("deskpilot", "the HTTP client"),
    "botocore": ("deskpilot[bedrock]", "AWS Bedrock signing"),
}


def _apt(package: str) -> str:
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y --no-install-recommends {package}"


def check(env: Mapping[str, str] | None = None) -> list[Check]:
    """Check every program, Python module and the API key.

    Args:
        env: the environment to read (default ``os.environ``; also used for ``PATH``).

    Returns:
        One :class:`Check` per requirement: programs first, then modules, then settings.
    """
    env = os.environ if env is None else env
    path = env.get("PATH")
    out: list[Check] = []
    for program, (package, why, required) in PROGRAMS.items():
        found = shutil.which(program, path=path)
        if found:
            out.append(Check(program, True, f"{found} ({why})", "", required))
        else:
            out.append(
                Check(
                    program,
                    False,
                    f"missing; needed for {why} (Debian package {package})",
                    f"{_apt(package)}   # or: {INSTALL_SCRIPT}",
                    required,
                )
            )
    for module, (requirement, why) in PYTHON_MODULES.items():
        ok = importlib.util.find_spec(module) is not None
        required = requirement != "deskpilot[bedrock]"
        out.append(
            Check(
                f"python: {module}",
                ok,
                f"importable ({why})" if ok else f"missing; needed for {why}",
                "" if ok else f"pip install '{requirement}'",
                required,
            )
        )
    has_key = bool(env.get("ANTHROPIC_API_KEY"))
    out.append(
        Check(
            "ANTHROPIC_API_KEY",
            has_key,
            "set" if has_key else "not set; live runs need it (the demo and tests do not)",
            "" if has_key else "export ANTHROPIC_API_KEY=...",
            False,
        )
    )
    return out


def format_report(checks: list[Check]) -> str:
    """A terminal report: one line per check (``ok``/``MISSING``/``optional``), the fix
    commands, and a summary line."""
    lines = []
    width = max((len(c.name) for c in checks), default=0)
    for c in checks:
        mark = "ok      " if c.ok else ("MISSING " if c.required else "optional")
        lines.append(f"  {mark}  {c.name.ljust(width)}  {c.detail}")
        if not c.ok and c.fix_command:
            lines.append(f"  {'':8}  {'':{width}}  fix: {c.fix_command}")
    missing_required = [c for c in checks if c.required and not c.ok]
    if missing_required:
        lines.append(
            f"{len(missing_required)} required item(s) missing; install everything with: "
            f"{INSTALL_SCRIPT} && pip install 'deskpilot[desktop]'"
        )
    else:
        lines.append("Everything required is present.")
    return "\n".join(lines)
