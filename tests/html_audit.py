"""Check a report page for markup that did not come from the template (used by the tests).

The page is parsed with the standard library's ``html.parser``; anything an attacker could
have injected through a trajectory string shows up as a tag outside the template's own set,
an event-handler attribute, a ``javascript:`` URL, or a ``<script>``.
"""

from __future__ import annotations

from html.parser import HTMLParser

TEMPLATE_TAGS = frozenset(
    "html head meta title style body svg defs marker path image main h1 h2 h3 div b span "
    "section a pre code details summary figure figcaption g circle line rect text use footer "
    "br".split()
)
URL_ATTRS = frozenset({"href", "src", "xlink:href", "action", "formaction"})


class _Audit(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.tags: list[str] = []
        self.csp: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in TEMPLATE_TAGS:
            self.problems.append(f"unexpected <{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name}= on <{tag}>")
            if name in URL_ATTRS and value is not None:
                v = value.strip().lower()
                if v.startswith(("javascript:", "vbscript:")) or (
                    v.startswith("data:")
                    and not v.startswith(("data:image/webp", "data:image/jpeg"))
                ):
                    self.problems.append(f"{name}={value[:40]!r} on <{tag}>")
                if "//" in v.split("?")[0][:10]:  # an absolute or protocol-relative URL
                    self.problems.append(f"external {name}={value[:40]!r} on <{tag}>")
            if name == "style":
                self.problems.append(f"inline style on <{tag}>")
        if tag == "meta" and ("http-equiv", "Content-Security-Policy") in attrs:
            self.csp.append(dict(attrs).get("content") or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def audit_html(page: str) -> list[str]:
    """Problems found in ``page`` (empty when it only holds the template's own markup and a
    Content-Security-Policy without script)."""
    audit = _Audit()
    audit.feed(page)
    audit.close()
    problems = list(audit.problems)
    if audit.tags.count("style") != 1:
        problems.append(f"{audit.tags.count('style')} <style> elements")
    if len(audit.csp) != 1 or "default-src 'none'" not in audit.csp[0]:
        problems.append(f"Content-Security-Policy missing or weak: {audit.csp}")
    elif "script-src" in audit.csp[0] or "unsafe-inline" in audit.csp[0]:
        problems.append(f"Content-Security-Policy allows script or inline code: {audit.csp[0]}")
    return problems
