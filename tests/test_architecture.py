"""Structure: imports only point down the layers, and no module outgrows one job.

The layers of ``src/deskpilot`` (README, "Layout"), lowest first; a module may import its
own layer and the layers listed as below it, never one above or beside it:

    errors      deskpilot.errors
    base        the shared types: prompt (Conversation, Message, parts), tool (Tool),
                response (APIResponse, Usage), transport (the HTTP seam's types),
                install and terminal (stdlib only), the package root (``__version__``)
    tables      data and pure rules: models (the registry), computer_use.specs (the tool
                table), computer_use.actions (action inputs), computer_use.scaling, and
                the two protocols (computer_use.base Executor, desktop.base Computer)
    providers   one module per wire format               (may import: tables, base, errors)
    client      LLMClient, scheduling                    (+ providers)
    desktop     LocalDesktop, X11, capture, keys         (tables, base, errors)
    executors   computer_use computer/bash/editor        (+ desktop)
    testing     fake server, MockTransport, wire builders: anything below agent
    agent       the loop, context, trajectory, report, replay, demo
                                                         (everything below, testing too)
    mcp         the MCP server (deskpilot mcp)           (executors, desktop, tables: never
                                                          the agent, client or testing)
    server      the computer server (deskpilot serve)    (executors and below, like mcp)
    fleet       Ray fleets and the shared rate limit      (agent and below)
    eval        the evaluation harness (deskpilot eval)   (agent and below)
    ui          the web UI (deskpilot ui)                 (agent and below)
    cli         cli, cli_run, cli_show, cli_logging, doctor, __main__   (everything)

``remote`` (RemoteDesktop, the computer server's protocol and its client-side executors) and
``pool`` (DesktopPool) sit in the executors layer: a remote desktop is a desktop with its own
executors, and the agent (run_many) takes a pool.

So providers never import the client, the desktop never imports an executor or the agent,
and the model side (providers, client) and the desktop side (desktop, executors) meet only
in the agent. Imports are read from the source (every ``import`` statement, including
function-level and ``TYPE_CHECKING`` ones); ``from deskpilot import Name`` counts as an
import of the module that defines ``Name``.

Size: a module over MAX_LINES lines does more than one job and is split; the declared data
tables (rows of data, not logic) may grow to MAX_TABLE_LINES.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import deskpilot

PACKAGE = Path(deskpilot.__file__).resolve().parent
MAX_LINES = 600
MAX_TABLE_LINES = 1000
DATA_TABLES = {
    "models/table.py": "the model registry: one row per model",
    "computer_use/specs.py": "the tool-version table: one row per tool version",
}

ROOT_LAYER = "base"  # the package root itself: __version__ (its names resolve to their modules)

# module prefix -> layer (the longest matching prefix wins; a new module must be added here)
LAYER_OF = {
    "deskpilot.errors": "errors",
    "deskpilot.prompt": "base",
    "deskpilot.tool": "base",
    "deskpilot.response": "base",
    "deskpilot.transport": "base",
    "deskpilot.install": "base",
    "deskpilot.terminal": "base",
    "deskpilot.click_options": "tables",  # shared CLI options: the provider list is a table
    "deskpilot.models": "tables",
    "deskpilot.computer_use.specs": "tables",
    "deskpilot.computer_use.actions": "tables",
    "deskpilot.computer_use.scaling": "tables",
    "deskpilot.computer_use.base": "tables",
    "deskpilot.desktop.base": "tables",
    "deskpilot.providers": "providers",
    "deskpilot.client": "client",
    "deskpilot.desktop": "desktop",
    "deskpilot.computer_use": "executors",
    "deskpilot.testing": "testing",
    "deskpilot.agent": "agent",
    "deskpilot.mcp": "mcp",
    "deskpilot.remote": "executors",
    "deskpilot.pool": "executors",
    "deskpilot.server": "server",
    "deskpilot.fleet": "fleet",
    "deskpilot.eval": "eval",
    "deskpilot.ui": "ui",
    "deskpilot.cli": "cli",
    "deskpilot.cli_run": "cli",
    "deskpilot.cli_show": "cli",
    "deskpilot.cli_logging": "cli",
    "deskpilot.__main__": "cli",
    "deskpilot.doctor": "cli",
}

# layer -> the layers directly below it (the test closes this transitively)
BELOW = {
    "errors": set(),
    "base": {"errors"},
    "tables": {"base"},
    "providers": {"tables"},
    "client": {"providers"},
    "desktop": {"tables"},
    "executors": {"desktop", "tables"},
    "testing": {"client", "executors"},
    "agent": {"testing", "client", "executors"},
    "mcp": {"executors"},
    "server": {"executors"},
    "fleet": {"agent"},
    "eval": {"agent"},
    "ui": {"agent"},
    "cli": {"agent", "mcp", "server", "fleet", "eval", "ui"},
}


def allowed(layer: str) -> set[str]:
    """The layers ``layer`` may import: itself and everything transitively below it."""
    seen, todo = {layer}, [layer]
    while todo:
        for lower in BELOW[todo.pop()]:
            if lower not in seen:
                seen.add(lower)
                todo.append(lower)
    return seen


def layer_of(module: str) -> str:
    if module == "deskpilot":
        return ROOT_LAYER
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        layer = LAYER_OF.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    raise AssertionError(f"{module} is in no layer; add it to LAYER_OF (and the README)")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(source: str, name: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) for every deskpilot import in ``source``, the text of module
    ``name`` (``is_package``: an ``__init__.py``, which relative imports start from)."""
    package = name if is_package else name.rpartition(".")[0]
    exports: dict[str, str] = deskpilot._EXPORTS  # type: ignore[attr-defined]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(
                (node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "deskpilot"
            )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "deskpilot":
                continue
            if target == "deskpilot":  # `from deskpilot import Agent`: Agent's own module
                found.extend((node.lineno, exports.get(a.name, "deskpilot")) for a in node.names)
            else:
                found.append((node.lineno, target))
    return found


def upward_imports(source: str, name: str, *, is_package: bool = False) -> list[str]:
    """``"line: target (layer)"`` for each import of ``source`` its layer does not allow."""
    ok = allowed(layer_of(name))
    return [
        f"{line}: {target} ({layer_of(target)})"
        for line, target in imported_modules(source, name, is_package=is_package)
        if layer_of(target) not in ok
    ]


def test_every_layer_is_declared_and_below_is_acyclic() -> None:
    assert set(BELOW) == set(LAYER_OF.values()) | {ROOT_LAYER}
    for layer in BELOW:
        for lower in BELOW[layer]:
            assert layer not in allowed(lower), f"{layer} and {lower} are below each other"


def test_no_module_imports_upward() -> None:
    violations = []
    for path in modules():
        name = module_name(path)
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(PACKAGE.parent)
        for found in upward_imports(source, name, is_package=path.name == "__init__.py"):
            violations.append(f"{rel}:{found}, but it is in layer {layer_of(name)}")
    assert not violations, "imports against the layer order:\n" + "\n".join(violations)


def test_no_module_over_the_size_limit() -> None:
    too_long = []
    for path in modules():
        rel = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        limit = MAX_TABLE_LINES if rel in DATA_TABLES else MAX_LINES
        if lines > limit:
            too_long.append(f"{rel}: {lines} lines (limit {limit})")
    assert not too_long, "modules to split:\n" + "\n".join(too_long)


def test_declared_data_tables_exist() -> None:
    for rel in DATA_TABLES:
        assert (PACKAGE / rel).is_file(), rel


def test_the_checker_sees_every_form_of_an_upward_import() -> None:
    source = (
        "from ..client.core import LLMClient\n"  # relative
        "import deskpilot.desktop.local\n"  # absolute
        "def f():\n"
        "    from deskpilot import Agent\n"  # through the package root, inside a function
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..agent import loop\n"  # type-only
        "from . import base\n"  # its own layer: fine
        "from ..errors import ConfigError\n"  # below: fine
    )
    assert upward_imports(source, "deskpilot.providers.fake") == [
        "1: deskpilot.client.core (client)",
        "2: deskpilot.desktop.local (desktop)",
        "4: deskpilot.agent.loop (agent)",
        "7: deskpilot.agent (agent)",
    ]
    assert upward_imports("from .. import __version__", "deskpilot.agent.loop") == []
    assert upward_imports("from .local import X", "deskpilot.desktop", is_package=True) == []
    assert upward_imports("from ..agent import loop", "deskpilot.desktop", is_package=True) == [
        "1: deskpilot.agent (agent)"
    ]
    assert "providers" not in allowed("desktop") and "desktop" not in allowed("client")
    with pytest.raises(AssertionError, match=r"deskpilot\.gui is in no layer"):
        layer_of("deskpilot.gui")  # a new top-level module must be placed explicitly


def test_no_type_ignore_in_the_package() -> None:
    """Issue 11: the tagged ``Action`` union and typed collaborators leave mypy nothing to
    silence; a ``# type: ignore`` would hide the next real type error at that line."""
    found = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "type: ignore" in line
    ]
    assert not found, f"remove these type: ignore comments: {found}"
