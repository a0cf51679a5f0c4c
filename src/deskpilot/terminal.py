"""Untrusted text made safe to print on a terminal.

Model answers, tool results, recorded commands and error messages may carry terminal control
sequences: ``ESC ] 52`` writes the clipboard, ``ESC ] 0`` sets the window title, ``ESC [ 2J``
clears the screen, and a carriage return lets a line overwrite the question printed before
it (ECMA-48, https://ecma-international.org/publications-and-standards/standards/ecma-48/;
xterm's OSC list, https://invisible-island.net/xterm/ctlseqs/ctlseqs.html). Before deskpilot
prints such a string it passes it through :func:`visible`, which shows every character that
is not printable as an escape (``\\x1b``, ``\\r``, ``\\u202e``), so the user sees exactly
what the text holds and the terminal obeys none of it.

Only the standard library is used: the CLI, the replay plan and the report may all import it.
"""

from __future__ import annotations

import re

__all__ = ["one_line", "visible"]

_BLANKS = re.compile(r"[ \t\n]+")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    named = _NAMED.get(c)
    if named is not None:
        return named
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every non-printable character written as an escape.

    Printable means :meth:`str.isprintable` (letters, digits, punctuation, symbols and the
    ASCII space); everything else is escaped: C0/C1 controls (ESC as ``\\x1b``, ``\\r``,
    ``\\t``, NUL), DEL, Unicode format characters such as the bidirectional overrides
    (``\\u202e``), other spaces and line separators (``\\xa0``, ``\\u2028``), surrogates
    and unassigned code points. A backslash already in ``text`` is left as it is.

    Args:
        text: any string (non-strings are converted with ``str``).
        keep_newlines: keep ``\\n`` as a line break (for multi-line text shown in full);
            otherwise it is written ``\\n`` too.

    Returns:
        A string holding only printable characters (and ``\\n`` with ``keep_newlines``).
    """
    text = str(text)
    if text.isprintable():  # the common case, in C
        return text
    return "".join(
        c if c.isprintable() or (keep_newlines and c == "\n") else _escape(c) for c in text
    )


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` for a one-line progress message: runs of spaces, tabs and newlines become
    one space, the rest goes through :func:`visible` (a carriage return shows as ``\\r``),
    and the result is cut to ``limit`` characters with a trailing ``…`` (no cut when
    ``limit`` is None)."""
    flat = visible(_BLANKS.sub(" ", str(text)).strip(" "))
    if limit is not None and len(flat) > limit:
        return flat[: max(0, limit - 1)] + "…"
    return flat
