"""``deskpilot doctor``: which programs, Python modules and settings the desktop needs, and
the versions a bug report should quote.

:func:`check` returns one :class:`Check` per requirement with the exact command that fixes
it; :func:`format_report` renders them for the terminal; :func:`versions` and
:func:`format_versions` give deskpilot's, Python's, the system packages' and the key Python
packages' versions. The system packages are :data:`deskpilot.install.PACKAGES` (the one
list, which ``deskpilot doctor --install`` installs). The API key is only reported as set or
not; its value is never shown.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from .install import PACKAGES, installed_versions

__all__ = [
    "KEY_PROGRAMS",
    "PYTHON_MODULES",
    "PYTHON_PACKAGES",
    "Check",
    "check",
    "format_report",
    "format_versions",
    "versions",
]

INSTALL_COMMAND = "deskpilot doctor --install"


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


# import name -> (pip requirement, what needs it)
PYTHON_MODULES: dict[str, tuple[str, str]] = {
    "mss": ("deskpilot[desktop]", "screen capture"),
    "Xlib": ("deskpilot[desktop]", "X11 input (python-xlib)"),
    "numpy": ("deskpilot[desktop]", "the screen-settle detector"),
    "PIL": ("deskpilot", "image encoding (Pillow)"),
    "aiohttp": ("deskpilot", "the HTTP client"),
    "botocore": ("deskpilot[bedrock]", "AWS Bedrock signing"),
    "google.auth": ("deskpilot[vertex]", "Vertex AI access tokens (google-auth)"),
}
_OPTIONAL_EXTRAS = ("deskpilot[bedrock]", "deskpilot[vertex]")

KEY_PROGRAMS = ("xvfb", "openbox", "xterm", "mousepad", "chromium")
"""The Debian packages whose versions :func:`versions` reports."""

PYTHON_PACKAGES = (
    "aiohttp",
    "pydantic",
    "pillow",
    "click",
    "tqdm",
    "mss",
    "python-xlib",
    "numpy",
    "botocore",
    "google-auth",
)
"""The Python distributions whose versions :func:`versions` reports."""


def _apt(package: str, euid: int) -> str:
    sudo = "" if euid == 0 else "sudo "
    return f"{sudo}apt-get install -y --no-install-recommends {package}"


def check(env: Mapping[str, str] | None = None, *, euid: int | None = None) -> list[Check]:
    """Check every program, Python module and the API key.

    Args:
        env: the environment to read (default ``os.environ``; also used for ``PATH``).
        euid: the user id the fix commands are for (default: this process's); they start
            with ``sudo`` unless it is 0 (root).

    Returns:
        One :class:`Check` per requirement: programs first (one per program of
        :data:`deskpilot.install.PACKAGES`), then Python modules, then settings.
    """
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    path = env.get("PATH")
    out: list[Check] = []
    for package in PACKAGES:
        for program in package.programs:
            found = shutil.which(program, path=path)
            if found:
                detail = f"{found} ({package.purpose})"
                out.append(Check(program, True, detail, "", package.required))
                continue
            out.append(
                Check(
                    program,
                    False,
                    f"missing; needed for {package.purpose} (Debian package {package.name})",
                    f"{_apt(package.name, euid)}   # or: {INSTALL_COMMAND}",
                    package.required,
                )
            )
    for module, (requirement, why) in PYTHON_MODULES.items():
        try:
            ok = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is missing
            ok = False
        required = requirement not in _OPTIONAL_EXTRAS
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
    has_token = bool(env.get("ANTHROPIC_AUTH_TOKEN"))
    out.append(
        Check(
            "ANTHROPIC_API_KEY",
            has_key or has_token,
            "set"
            if has_key
            else "not set; ANTHROPIC_AUTH_TOKEN is (sent as Authorization: Bearer)"
            if has_token
            else "not set; live runs need it (the demo and tests do not)",
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
            f"{INSTALL_COMMAND} && pip install 'deskpilot[desktop]'"
        )
    else:
        lines.append("Everything required is present.")
    return "\n".join(lines)


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        return ""


def _python_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The versions a bug report should quote, in display order.

    Args:
        env: the environment whose ``PATH`` finds the programs when ``dpkg-query`` is not
            available (default ``os.environ``).

    Returns:
        ``{"deskpilot": "0.1.0", "Python": "3.11.7 (/path/to/python)", "OS": ...,
        "xvfb": "2:21.1.7-3+deb12u13", ..., "aiohttp": "3.9.5", ...}``; a package that is
        absent reads ``"not installed"``.
    """
    from . import __version__

    env = os.environ if env is None else env
    os_name = _os_name()
    out = {
        "deskpilot": __version__,
        "Python": f"{platform.python_version()} ({sys.executable})",
        "OS": f"{platform.platform()}" + (f" ({os_name})" if os_name else ""),
    }
    try:
        system: dict[str, str | None] = installed_versions(KEY_PROGRAMS)
    except FileNotFoundError:  # not Debian: say where the program is, not its version
        by_name = {p.name: p for p in PACKAGES}
        system = {}
        for name in KEY_PROGRAMS:
            programs = by_name[name].programs
            where = shutil.which(programs[0], path=env.get("PATH")) if programs else None
            system[name] = f"found at {where} (no dpkg to tell the version)" if where else None
    for name, version in system.items():
        out[name] = version or "not installed"
    for dist in PYTHON_PACKAGES:
        out[dist] = _python_version(dist)
    return out


def format_versions(found: Mapping[str, str]) -> str:
    """``Versions (quote them in a bug report):`` and one ``name  version`` line each."""
    width = max((len(k) for k in found), default=0)
    lines = ["Versions (quote them in a bug report):"]
    lines.extend(f"  {name.ljust(width)}  {version}" for name, version in found.items())
    return "\n".join(lines)
