"""The one exception tree of deskpilot.

Every exception deskpilot raises derives from :class:`DeskpilotError`. Where a built-in
exception has the same meaning, the subclass inherits it too, so ``except ValueError`` or
``except TimeoutError`` keeps working. Foreign exceptions (aiohttp, botocore, subprocess,
X11) are translated once per layer with ``raise ... from exc``.

Executors never let these escape: :meth:`execute` turns them into ``is_error`` tool results.
The client never raises for API errors either: they become error responses.
"""

from __future__ import annotations


class DeskpilotError(Exception):
    """Root of every deskpilot exception. ``str(exc)`` is always a full sentence."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # never print empty (the reference's ToolError did)
        return self.message or self.__class__.__name__


class ConfigError(DeskpilotError, ValueError):
    """A bad argument or setting; the message says what to pass instead."""


class ModelNotFoundError(ConfigError, KeyError):
    """A model name that is not in the registry; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class CredentialsError(ConfigError):
    """No usable credentials: no AWS credentials in botocore's chain, or their refresh (SSO,
    assume-role, instance metadata) failed. The message says how to provide them."""


class MissingDependencyError(DeskpilotError, ImportError):
    """An optional package or system program is missing; the message gives the install command."""


class ClosedError(DeskpilotError, RuntimeError):
    """A client, desktop or executor was used after it was closed."""


class NotSupported(DeskpilotError, NotImplementedError):
    """The provider has no endpoint for what was asked, e.g. ``LLMClient.count_tokens`` (or
    ``exact_token_counts=True``) on an OpenAI-compatible gateway, which has no token-counting
    endpoint. The message names the provider and what to use instead."""


class TokenCountError(DeskpilotError):
    """A token-count request failed after the client's retries (``LLMClient.count_tokens``).

    Attributes:
        status_code: the HTTP status of the last answer, or None when none came.
        error_kind: the :class:`~deskpilot.response.ErrorKind` value (``"rate_limited"``, ...).
        error_type: the API's error ``type`` (``"invalid_request_error"``, ...), or None.
    """

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int | None = None,
        error_kind: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_kind = error_kind
        self.error_type = error_type


class ToolError(DeskpilotError):
    """A tool action failed; the message is shown to the model in an ``is_error`` tool_result."""


class ToolInputError(ToolError, ValueError):
    """The model sent input a tool does not accept (unknown action, missing or bad parameter)."""


class DesktopError(ToolError):
    """The desktop could not do what was asked (X server gone, program missing, ...)."""


class DisplayDiedError(DesktopError):
    """The X server of a desktop is no longer running; restart the desktop."""


class DeskpilotTimeoutError(DeskpilotError, TimeoutError):
    """Something took longer than its configured limit (the message names the limit)."""


class TransportError(DeskpilotError, ConnectionError):
    """An HTTP request got no complete answer: connection refused or reset, name resolution
    failed, or the body was cut off. Raised by a :class:`~deskpilot.transport.Transport`;
    the client retries it and reports it as an error response, never raises it."""


class TransportTimeoutError(TransportError, DeskpilotTimeoutError):
    """An HTTP request got no complete answer (status, headers and whole body) within its
    ``timeout_s``."""


__all__ = [
    "ClosedError",
    "ConfigError",
    "CredentialsError",
    "DeskpilotError",
    "DeskpilotTimeoutError",
    "DesktopError",
    "DisplayDiedError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "NotSupported",
    "TokenCountError",
    "ToolError",
    "ToolInputError",
    "TransportError",
    "TransportTimeoutError",
]
