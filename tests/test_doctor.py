"""``deskpilot doctor``: checks from the one package list, sudo only when needed, the install
step from the command line, and the versions a bug report quotes."""

from __future__ import annotations

import platform
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import deskpilot
from deskpilot.cli import main
from deskpilot.doctor import KEY_PROGRAMS, PYTHON_PACKAGES, check, format_versions, versions
from deskpilot.install import PACKAGES

NO_KEYS = {"ANTHROPIC_API_KEY": None, "OPENAI_API_KEY": None}


def test_every_program_of_the_package_list_is_checked(tmp_path: Path) -> None:
    names = {c.name for c in check({"PATH": str(tmp_path)})}
    for package in PACKAGES:
        assert set(package.programs) <= names


def test_fix_commands_start_with_sudo_only_when_not_root(tmp_path: Path) -> None:
    as_user = {c.name: c for c in check({"PATH": str(tmp_path)}, euid=1000)}
    as_root = {c.name: c for c in check({"PATH": str(tmp_path)}, euid=0)}
    assert as_user["Xvfb"].fix_command.startswith("sudo apt-get install -y ")
    assert as_root["Xvfb"].fix_command.startswith("apt-get install -y ")
    assert as_user["Xvfb"].fix_command.endswith("# or: deskpilot doctor --install")


def test_versions_name_deskpilot_python_the_desktop_and_the_python_packages() -> None:
    found = versions()
    assert found["deskpilot"] == deskpilot.__version__
    assert found["Python"].startswith(platform.python_version() + " (")
    assert set(KEY_PROGRAMS) | set(PYTHON_PACKAGES) <= set(found)
    import pydantic

    assert found["pydantic"] == pydantic.VERSION
    if shutil.which("dpkg-query") and shutil.which("Xvfb"):
        assert found["xvfb"][0].isdigit()  # a Debian version, e.g. 2:21.1.7-3+deb12u13
    text = format_versions(found)
    assert text.startswith("Versions (quote them in a bug report):\n")
    assert re.search(rf"^  deskpilot +{re.escape(deskpilot.__version__)}$", text, re.M)
    assert re.search(rf"^  pydantic +{re.escape(pydantic.VERSION)}$", text, re.M)


def test_versions_off_debian_say_where_the_program_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed")
    (tmp_path / "Xvfb").symlink_to(xvfb)  # a PATH with Xvfb and no dpkg-query
    monkeypatch.setenv("PATH", str(tmp_path))
    found = versions()
    assert found["xvfb"] == f"found at {tmp_path / 'Xvfb'} (no dpkg to tell the version)"
    assert found["chromium"] == "not installed"


def test_doctor_command_prints_the_versions() -> None:
    result = CliRunner().invoke(main, ["doctor"], env=NO_KEYS)
    assert result.exit_code in (0, 1), result.output
    assert "Versions (quote them in a bug report):" in result.output
    assert deskpilot.__version__ in result.output
    assert platform.python_version() in result.output


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian-based system")
def test_doctor_install_dry_run_lists_the_packages_and_runs_nothing() -> None:
    result = CliRunner().invoke(main, ["doctor", "--install", "--dry-run"], env=NO_KEYS)
    assert result.exit_code == 0, result.output
    for package in PACKAGES:
        assert f"  {package.name} " in result.output
    assert "Versions" not in result.output  # a dry run stops before the checks


def test_dry_run_without_install_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["doctor", "--dry-run"], env=NO_KEYS)
    assert result.exit_code == 2
    assert "--dry-run only goes with --install" in result.output
