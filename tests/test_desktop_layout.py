"""The desktop package's shape (issue 11 §4): small modules, no stdlib-shadowing names, no
upward imports, and docstrings that cite public pages or this repository, not shared/."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import deskpilot.desktop

PACKAGE = Path(deskpilot.desktop.__file__).parent
OWN = [
    *sorted(PACKAGE.glob("*.py")),
    PACKAGE.parent / "computer_use" / "bash.py",
    PACKAGE.parent / "computer_use" / "editor.py",
    PACKAGE.parent / "computer_use" / "scaling.py",
    PACKAGE.parent / "agent" / "desktop_recovery.py",
]


def test_every_module_is_at_most_600_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in OWN}
    assert {n: s for n, s in sizes.items() if s > 600} == {}


def test_no_module_shadows_the_standard_library():
    assert importlib.util.find_spec("deskpilot.desktop.typing") is None
    import sys

    stdlib = set(sys.stdlib_module_names)
    assert [p.stem for p in PACKAGE.glob("*.py") if p.stem in stdlib] == []


def test_the_desktop_never_imports_the_agent_or_the_client():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                name = node.module if node.level == 0 else f"deskpilot.desktop.{node.module}"
                assert not name.startswith(("deskpilot.agent", "deskpilot.client")), path.name


def test_docstrings_cite_no_path_outside_the_repository():
    for path in OWN:
        text = path.read_text(encoding="utf-8")
        assert "shared/reference" not in text and "notes/" not in text, path.name
