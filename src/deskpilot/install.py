"""Install the Debian packages the desktop needs: ``python -m deskpilot.install``.

This module holds THE list of system packages (:data:`PACKAGES`); ``deskpilot doctor``,
``deskpilot doctor --install``, ``scripts/install-desktop-deps.sh`` and ``make setup`` all
read it from here, so a pip-installed deskpilot can install its desktop without the
repository. It uses the standard library only: ``make setup`` runs it with the system
``python3`` before any virtual environment exists (``PYTHONPATH=src python3 -m
deskpilot.install``).

Package names are Debian 12 ("bookworm") and Ubuntu 22.04+ names
(https://packages.debian.org/bookworm/xvfb, .../openbox, .../chromium, ...). The install
runs ``apt-get update`` then ``apt-get install -y --no-install-recommends`` for the missing
packages only (https://manpages.debian.org/bookworm/apt/apt-get.8.en.html), with ``sudo``
in front when the current user is not root.

Command line::

    python -m deskpilot.install            install what is missing (idempotent)
    python -m deskpilot.install --dry-run  print what is missing and the commands, run nothing
    python -m deskpilot.install --required only what a desktop cannot start without
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "INSTALL_HINT",
    "PACKAGES",
    "DebianPackage",
    "apt_commands",
    "install",
    "installed_versions",
    "main",
    "wanted_packages",
]

INSTALL_HINT = "run `deskpilot doctor --install` (or `python -m deskpilot.install`)"
"""What to tell a user whose desktop packages are missing (works from a pip install)."""

_PREFIX = "deskpilot install"


@dataclass(frozen=True, slots=True)
class DebianPackage:
    """One system package the desktop uses.

    Attributes:
        name: the Debian/Ubuntu package name.
        purpose: what deskpilot needs it for (shown by ``deskpilot doctor``).
        programs: the programs on ``PATH`` it provides that deskpilot runs (``doctor``
            checks these with ``shutil.which``, so the check also works off Debian);
            empty for packages with no program (fonts, the venv module).
        required: True when no desktop can start without it.
    """

    name: str
    purpose: str
    programs: tuple[str, ...] = ()
    required: bool = False


PACKAGES: tuple[DebianPackage, ...] = (
    DebianPackage("xvfb", "the virtual X server", ("Xvfb",), required=True),
    DebianPackage("xauth", "X authority cookies for the desktop", ("xauth",)),
    DebianPackage("openbox", "the window manager", ("openbox",), required=True),
    DebianPackage("xterm", "the terminal app", ("xterm",), required=True),
    DebianPackage("x11-utils", "display probes in tests", ("xdpyinfo",)),
    DebianPackage("x11-apps", "window dumps in benchmarks", ("xwd",)),
    DebianPackage("xdotool", "the reference input method in benchmarks", ("xdotool",)),
    DebianPackage("xclip", "clipboard access", ("xclip",)),
    DebianPackage("mousepad", "the text editor app, which the demo opens", ("mousepad",)),
    DebianPackage("fonts-dejavu-core", "the desktop's default fonts"),
    DebianPackage("fonts-noto-cjk", "CJK glyphs on screen"),
    DebianPackage("chromium", "the browser app and report screenshots", ("chromium",)),
    DebianPackage("ffmpeg", "MP4 videos of runs; the GIF needs nothing", ("ffmpeg",)),
    DebianPackage("scrot", "the reference screenshot method in benchmarks", ("scrot",)),
    DebianPackage("imagemagick", "the reference screenshot method in benchmarks", ("convert",)),
    DebianPackage("x11vnc", "the live view of deskpilot ui (VNC on the desktop)", ("x11vnc",)),
    DebianPackage("novnc", "the VNC client page of deskpilot ui", ()),
)
"""Every system package, required ones first within each group; the single source."""

VENV_PACKAGE = DebianPackage(
    "python3-venv", "`python3 -m venv`, whose ensurepip Debian ships apart"
)

Runner = Callable[[Sequence[str], Mapping[str, str]], int]


def wanted_packages(*, required_only: bool = False) -> list[DebianPackage]:
    """The packages to have: :data:`PACKAGES` (or only the required ones), plus
    ``python3-venv`` when this interpreter cannot create a venv with pip (no ``ensurepip``).
    """
    wanted = [p for p in PACKAGES if p.required or not required_only]
    if not required_only and importlib.util.find_spec("ensurepip") is None:
        wanted.append(VENV_PACKAGE)
    return wanted


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    """``{package: version or None}`` from ``dpkg-query`` (None: not installed).

    Raises:
        FileNotFoundError: ``dpkg-query`` is not on ``PATH`` (not a Debian-based system).
    """
    names = list(names)
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        raise FileNotFoundError("dpkg-query is not installed; this is not a Debian-based system")
    proc = subprocess.run(
        [dpkg, "-W", "-f=${Package}\t${Status}\t${Version}\n", *names],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=_clean_env(),
    )
    found: dict[str, str | None] = dict.fromkeys(names)
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition("\t")
        status, _, version = rest.partition("\t")
        if name in found and status.endswith(" installed"):
            found[name] = version or "installed"
    return found


def apt_commands(names: Sequence[str], *, euid: int | None = None) -> list[list[str]]:
    """The commands that install ``names``: ``apt-get update`` then ``apt-get install``,
    each prefixed with ``sudo`` unless ``euid`` (default: this process's) is 0 (root)."""
    if not names:
        return []
    if euid is None:
        euid = os.geteuid()
    sudo = [] if euid == 0 else ["sudo"]
    return [
        [*sudo, "apt-get", "update", "-qq"],
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *names],
    ]


def _clean_env() -> dict[str, str]:
    """The environment for dpkg/apt: the locale and path only, never an API key."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "http_proxy", "https_proxy", "no_proxy")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["DEBIAN_FRONTEND"] = "noninteractive"
    return env


def _run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    return subprocess.run(list(argv), env=dict(env), check=False).returncode


def install(
    *,
    dry_run: bool = False,
    required_only: bool = False,
    packages: Sequence[DebianPackage] | None = None,
    echo: Callable[[str], object] = print,
    runner: Runner = _run,
    euid: int | None = None,
) -> int:
    """Install the missing packages; return a process exit status.

    Args:
        dry_run: print every package with its installed version or ``missing``, and the
            exact commands that would install the missing ones; run nothing.
        required_only: only the packages a desktop cannot start without.
        packages: the packages to have (default: :func:`wanted_packages`).
        echo: where status lines go.
        runner: runs one command (argv, env) and returns its exit status (default:
            ``subprocess.run``).
        euid: the effective user id deciding ``sudo`` (default: this process's).

    Returns:
        0 when everything is (now) installed, or after a dry run on a Debian-based system;
        1 when this is not a Debian-based system, ``sudo`` is needed but missing, or
        apt-get failed.
    """
    wanted = (
        list(packages) if packages is not None else wanted_packages(required_only=required_only)
    )
    try:
        versions = installed_versions(p.name for p in wanted)
    except FileNotFoundError:
        names = " ".join(p.name for p in wanted)
        echo(
            f"{_PREFIX}: dpkg-query was not found, so this is not Debian or Ubuntu; install "
            f"the equivalents of these Debian packages with your package manager: {names}"
        )
        return 1
    missing = [p.name for p in wanted if versions.get(p.name) is None]
    commands = apt_commands(missing, euid=euid)
    if dry_run:
        for p in wanted:
            state = versions.get(p.name) or "MISSING"
            echo(f"  {p.name:<18} {state:<30} {p.purpose}")
        if not commands:
            echo(f"{_PREFIX}: all {len(wanted)} packages present; nothing to run")
            return 0
        echo(f"{_PREFIX}: {len(missing)} of {len(wanted)} missing; would run:")
        for argv in commands:
            echo("  DEBIAN_FRONTEND=noninteractive " + " ".join(argv))
        return 0
    if not commands:
        echo(f"{_PREFIX}: all {len(wanted)} packages present")
        return 0
    if commands[0][0] == "sudo" and shutil.which("sudo") is None:
        echo(
            f"{_PREFIX}: not running as root and sudo is not installed; as root, run: "
            + " && ".join(" ".join(c[1:]) for c in commands)
        )
        return 1
    echo(f"{_PREFIX}: installing {' '.join(missing)}")
    env = _clean_env()
    for argv in commands:
        code = runner(argv, env)
        if code != 0:
            echo(f"{_PREFIX}: `{' '.join(argv)}` failed with exit status {code}")
            return 1
    echo(f"{_PREFIX}: done")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deskpilot.install [--dry-run] [--required]``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m deskpilot.install",
        description="Install the Debian/Ubuntu packages deskpilot's desktop needs "
        "(only the missing ones; uses sudo when not root).",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what is missing and the commands only"
    )
    parser.add_argument(
        "--required", action="store_true", help="only what a desktop cannot start without"
    )
    args = parser.parse_args(argv)
    return install(dry_run=args.dry_run, required_only=args.required)


if __name__ == "__main__":
    sys.exit(main())
