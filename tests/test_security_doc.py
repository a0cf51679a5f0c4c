"""SECURITY.md: linked from the README, covers the threat model, and states the environment
allow-list the code enforces (a drift between the page and the code fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "SECURITY.md"


def test_the_readme_links_the_security_page() -> None:
    assert "(SECURITY.md)" in (ROOT / "README.md").read_text("utf-8")


def test_the_page_covers_the_threat_model() -> None:
    text = PAGE.read_text("utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == [
        "The threat: prompt injection through the screen",
        "What the agent can reach",
        "Where secrets live",
        "Run directories are untrusted input",
        "The web UI's token",
        "Reporting a vulnerability",
    ]
    for needle in ("**The desktop is not a security boundary.**", "### How to isolate it"):
        assert needle in text
    for tool in ("computer", "bash", "text editor", "the network"):
        assert f"\n| {tool} " in text


def test_the_documented_allow_list_is_the_enforced_one() -> None:
    environment = pytest.importorskip("deskpilot.desktop.environment")
    text = PAGE.read_text("utf-8")
    match = re.search(r"an allow-list: (.+?)\. Variables you pass", text, flags=re.S)
    assert match, "the allow-list sentence is gone from SECURITY.md"
    documented = set(re.findall(r"`([A-Z_*]+)`", match.group(1)))
    enforced = set(environment.ALLOWED_NAMES) | {p + "*" for p in environment.ALLOWED_PREFIXES}
    assert documented == enforced
