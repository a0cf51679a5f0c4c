"""Packaging: one version, every data file in the wheel, and the desktop installer shipped
inside the package (a pip user has no scripts/ directory).

The wheel is built the way a user or a release builds it (``pip wheel . --no-deps``, with
build isolation) from a copy of the source tree to which two data files are added where new
features put them (a Jinja2 template under ``agent/``, a static file of a future ``ui/``),
then installed with ``pip install --no-deps --target`` and run from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import deskpilot
from deskpilot.install import PACKAGES, DebianPackage, apt_commands, install, main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "src" / "deskpilot"
PROBES = ("agent/report/templates/probe.html.j2", "ui/static/probe.css")


def data_files(package_dir: Path) -> set[str]:
    """Every file under the package that is not Python source or bytecode, as wheel paths."""
    out = set()
    for path in package_dir.rglob("*"):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".py", ".pyc"):
            continue
        out.add("deskpilot/" + path.relative_to(package_dir).as_posix())
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tree plus the PROBES data files."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src",
        tree / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    for probe in PROBES:
        path = tree / "src" / "deskpilot" / probe
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("probe\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = out.glob("deskpilot-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into an empty directory (no dependencies: the installer needs none)."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), wheel],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def run_from(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` with the installed wheel first on the path, outside the repository."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=site.parent,
    )


# --- the version is written once ---------------------------------------------------------


def test_the_version_is_written_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "deskpilot.__version__"


@pytest.mark.slow
def test_the_wheel_carries_the_package_version(wheel: Path, installed: Path) -> None:
    assert wheel.name.startswith(f"deskpilot-{deskpilot.__version__}-")
    proc = run_from(
        installed,
        "-c",
        "import importlib.metadata as m, deskpilot; "
        "print(deskpilot.__file__); print(deskpilot.__version__, m.version('deskpilot'))",
    )
    assert proc.returncode == 0, proc.stderr
    where, versions = proc.stdout.splitlines()
    assert where.startswith(str(installed))  # the installed copy, not the source tree
    assert versions == f"{deskpilot.__version__} {deskpilot.__version__}"


# --- every data file ships ---------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_holds_every_data_file_the_package_reads(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = data_files(PACKAGE_DIR) | {f"deskpilot/{p}" for p in PROBES}
    assert {"deskpilot/py.typed", "deskpilot/agent/demo/demo.json"} <= expected
    assert expected - names == set()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "deskpilot/install.py" in names


@pytest.mark.slow
def test_the_installed_package_reads_its_data_files(installed: Path) -> None:
    code = (
        "from deskpilot.agent.demo import load_script; from importlib import resources; "
        "s = load_script('/tmp/w'); print(len(s.responses) > 0); "
        "print(resources.files('deskpilot.desktop').joinpath('openbox-rc.xml').is_file())"
    )
    proc = run_from(installed, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]


# --- the installer ships and runs -------------------------------------------------------------


@pytest.mark.slow
def test_the_installed_wheel_runs_the_installer(installed: Path) -> None:
    """``python -m deskpilot.install --dry-run`` from the wheel, with no dependency installed."""
    if shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian-based system")
    proc = run_from(installed, "-m", "deskpilot.install", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for package in PACKAGES:
        assert f"  {package.name} " in proc.stdout
    assert "deskpilot install: " in proc.stdout


def test_apt_commands_use_sudo_only_when_not_root() -> None:
    assert apt_commands(["xvfb"], euid=1000) == [
        ["sudo", "apt-get", "update", "-qq"],
        ["sudo", "apt-get", "install", "-y", "-qq", "--no-install-recommends", "xvfb"],
    ]
    assert apt_commands(["xvfb", "openbox"], euid=0)[1][:2] == ["apt-get", "install"]
    assert apt_commands([], euid=1000) == []


NOT_A_PACKAGE = DebianPackage("deskpilot-test-no-such-package", "a package that does not exist")


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian-based system")
def test_dry_run_lists_what_is_missing_and_the_sudo_commands() -> None:
    present = DebianPackage("dpkg", "always installed on Debian")
    lines: list[str] = []
    ran: list[list[str]] = []
    code = install(
        dry_run=True,
        packages=[present, NOT_A_PACKAGE],
        echo=lines.append,
        runner=lambda argv, env: ran.append(list(argv)) or 0,
        euid=1000,
    )
    assert code == 0 and ran == []
    text = "\n".join(lines)
    assert "deskpilot-test-no-such-package MISSING" in " ".join(text.split())
    assert "1 of 2 missing; would run:" in text
    assert (
        "DEBIAN_FRONTEND=noninteractive sudo apt-get install -y -qq --no-install-recommends "
        "deskpilot-test-no-such-package" in text
    )


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian-based system")
def test_install_runs_only_for_the_missing_packages_in_a_clean_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-reach-apt")
    lines: list[str] = []
    calls: list[tuple[list[str], dict[str, str]]] = []

    def runner(argv, env):  # type: ignore[no-untyped-def]
        calls.append((list(argv), dict(env)))
        return 0

    code = install(
        packages=[DebianPackage("dpkg", "present"), NOT_A_PACKAGE],
        echo=lines.append,
        runner=runner,
        euid=0,
    )
    assert code == 0
    assert [argv for argv, _ in calls] == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", NOT_A_PACKAGE.name],
    ]
    for _, env in calls:
        assert env["DEBIAN_FRONTEND"] == "noninteractive"
        assert "ANTHROPIC_API_KEY" not in env
    # a failing apt-get is reported with its status, and the install stops there
    calls.clear()
    code = install(packages=[NOT_A_PACKAGE], echo=lines.append, runner=lambda a, e: 100, euid=0)
    assert code == 1 and "failed with exit status 100" in lines[-1]


def test_the_installer_says_what_to_do_off_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    lines: list[str] = []
    assert install(dry_run=True, echo=lines.append) == 1
    assert "not Debian or Ubuntu" in lines[0] and "xvfb" in lines[0]


def test_installer_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--dry-run" in out and "--required" in out


def test_make_setup_and_the_script_use_the_package_list() -> None:
    """The list lives once: neither the Makefile nor scripts/ names a Debian package."""
    script = (ROOT / "scripts" / "install-desktop-deps.sh").read_text("utf-8")
    makefile = (ROOT / "Makefile").read_text("utf-8")
    assert "deskpilot.install" in script
    assert "install-desktop-deps.sh" in makefile or "deskpilot.install" in makefile
    for package in PACKAGES:
        for text in (script, makefile):
            assert f" {package.name} " not in f" {' '.join(text.split())} "
