"""The CLI's log output: one handler on stderr whose lines never carry a credential.

``deskpilot`` installs one handler on the root logger (WARNING, or DEBUG with ``--debug``).
Two things keep secrets out of it:

* The HTTP libraries' own loggers (``botocore``, ``urllib3``, ``aiohttp``, ...) stay at
  WARNING even with ``--debug``: botocore's signer logs the whole canonical request at
  DEBUG, ``x-amz-security-token`` value included
  (https://github.com/boto/botocore/blob/develop/botocore/auth.py, ``SigV4Auth``). Their
  debug lines are shown only when asked for with ``--debug-http``.
* Every record the handler writes passes :class:`RedactingFilter` first: it cuts every
  credential value a registered source holds (the environment's keys from the start,
  ``LLMClient.credential_values()`` once the client exists, see :func:`watch`), with the
  partial-run rule of :class:`deskpilot.client.redact.Redactor`, and the values of
  header-shaped secrets whatever they are (``x-api-key``, ``authorization``,
  ``x-amz-security-token``, ``X-Amz-Signature``, cookies), in the message, its arguments,
  the traceback and the stack.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from .client.redact import REDACTED, Redactor

__all__ = [
    "FILTER",
    "HTTP_LOGGERS",
    "SECRET_VARIABLES",
    "RedactingFilter",
    "configure_logging",
    "environment_secrets",
    "scrub_headers",
    "watch",
]

HTTP_LOGGERS = ("botocore", "boto3", "urllib3", "aiohttp", "s3transfer", "charset_normalizer")
"""Loggers kept at WARNING unless ``--debug-http`` is given."""

FORMAT = "%(levelname)s %(name)s: %(message)s"

_HEADER = re.compile(
    r"(?i)(\b(?:x-api-key|api-key|authorization|proxy-authorization|x-amz-security-token"
    r"|x-amz-signature|signature|cookie|set-cookie)['\"]?\s*[:=]\s*['\"]?)"
    r"(?!\[REDACTED\])([^'\"\r\n&]+)"
)


def scrub_headers(text: str) -> str:
    """``text`` with the value of every header- or parameter-shaped secret replaced:
    ``x-api-key: V``, ``'authorization': 'V'``, ``x-amz-security-token:V``,
    ``X-Amz-Signature=V&...``, ``Signature:\\nV`` (the value runs to the end of the line,
    a quote or ``&``)."""
    return _HEADER.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites each record without credentials (see the module
    docstring); it never drops a record.

    Args:
        sources: callables returning credential values, asked at every record (a Bedrock
            profile's credentials are known only after the first request).
    """

    def __init__(self, sources: Iterable[Callable[[], Iterable[str]]] = ()) -> None:
        super().__init__()
        self._sources: list[Callable[[], Iterable[str]]] = list(sources)
        self._redactor = Redactor()

    def add_source(self, source: Callable[[], Iterable[str]]) -> None:
        """Also redact what ``source()`` returns (e.g. ``client.credential_values``)."""
        self._sources.append(source)

    def redact(self, text: str) -> str:
        """``text`` without the sources' credentials and header-shaped secrets."""
        values: set[str] = set()
        for source in self._sources:
            try:
                values.update(v for v in source() if isinstance(v, str))
            except Exception:  # a closed client must not break logging
                continue
        if values != set(self._redactor.secrets):
            self._redactor = Redactor(values)
        return scrub_headers(self._redactor.text(text))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: show neither them nor the format
            message = f"(a log message of {record.name} could not be formatted)"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to the CURRENT ``sys.stderr`` (so a swapped stream, e.g. a test runner's,
    is followed rather than kept after it is closed)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


SECRET_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "DESKPILOT_MCP_TOKEN",
)
"""The environment's credential variables (the client's, see deskpilot.client.config, and the
bearer token of ``deskpilot mcp``'s HTTP transport, see docs/mcp.md)."""


def environment_secrets() -> list[str]:
    """The values of :data:`SECRET_VARIABLES` in ``os.environ``, as given and stripped
    (read without logging: this runs inside the log handler)."""
    values = [os.environ.get(name) or "" for name in SECRET_VARIABLES]
    return [v for raw in values if raw for v in (raw, raw.strip())]


FILTER = RedactingFilter([environment_secrets])
"""The filter of the CLI's handler (the environment's credentials from the start)."""


def watch(client: Any) -> None:
    """Redact ``client.credential_values()`` from the CLI's log lines from now on."""
    FILTER.add_source(client.credential_values)


def configure_logging(debug: bool, *, debug_http: bool = False) -> logging.Handler | None:
    """Set up the CLI's logging: the :data:`HTTP_LOGGERS` at WARNING (DEBUG with ``debug``
    and ``debug_http``); then, when the root logger has no handler yet, root at DEBUG
    (``debug``) or WARNING and one stderr handler with :data:`FILTER` (an application or
    test runner that configured logging keeps its own handlers and level, like
    :func:`logging.basicConfig`).

    Returns:
        The handler installed, or None when the root logger already had one.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)  # a second call in the same process replaces it
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug and debug_http else logging.WARNING)
    if root.handlers:
        return None
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(FILTER)
    root.addHandler(handler)
    return handler
