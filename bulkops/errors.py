"""The bulkops exception hierarchy.

::

    BulkOpsError                   root: everything bulkops raises on purpose
    ├── ApiError                   a call to the Console API did not succeed
    │   ├── TransportError         no HTTP response (connect, reset, timeout)
    │   └── ApiStatusError         the server answered with a non-2xx status
    │       ├── BadRequest         400: validation, duplicate name, wrong segment type
    │       ├── Unauthorized       401: missing, unknown or inactive key
    │       ├── Forbidden          403: the key may not do this (read-only key)
    │       ├── NotFound           404: no such object
    │       ├── Conflict           409: the object is in a conflicting state
    │       ├── RateLimited        429: over the project's quota
    │       ├── ServerError        5xx: the server failed; the change may or may not have happened
    │       └── Redirected         3xx: never followed (the key would go along)
    ├── ApiAccessError             cannot reach or authenticate to the API (URL, network,
    │                              TLS, key); nothing was sent
    ├── UsageError                 bad command line or job parameters; never retried
    ├── InputError                 a bad input file (names file, line and field)
    ├── PlanError                  a job produced an invalid plan, or a plan file is unusable
    ├── RefusedError               refused for safety: lock held, stale plan, project mismatch
    └── JournalError               the checkpoint journal is unreadable or could not be written
        └── NoSpaceError           no space left, or a file-size limit, while writing a file

Messages never contain the API key: the server's 401 echoes the key, so every
server message is passed through :func:`redact` before it is stored. ``detail`` holds
what only ``-v`` shows (the network library's own words), redacted the same way.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ApiAccessError",
    "ApiError",
    "ApiStatusError",
    "BadRequest",
    "BulkOpsError",
    "Conflict",
    "Forbidden",
    "InputError",
    "JournalError",
    "NoSpaceError",
    "NotFound",
    "PlanError",
    "RateLimited",
    "Redirected",
    "RefusedError",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "UsageError",
    "error_for_status",
    "redact",
]

# Console keys look like "console-<alnum>"; server and client secrets like "secret-…"/"client-…".
_KEY_PATTERN = re.compile(r"\b(console|secret|client)-[A-Za-z0-9_\-]{3,}")


def redact(text: str, *secrets: str) -> str:
    """Return ``text`` with every key-looking token and every given secret replaced.

    Args:
        text: Any message that may have passed near a key (server messages echo it).
        secrets: Exact secret values to remove as well.

    Returns:
        The text with ``console-…``-style tokens and the secrets replaced by ``<redacted>``.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return _KEY_PATTERN.sub(r"\1-<redacted>", text)


class BulkOpsError(Exception):
    """Root of every error bulkops raises on purpose."""

    hint: str | None = None
    detail: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(redact(message))
        self.message = redact(message)
        if hint is not None:
            self.hint = hint
        if detail is not None:
            self.detail = redact(detail)


class ApiError(BulkOpsError):
    """A Console API call did not succeed."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        hint: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, detail=detail)
        self.method = method
        self.path = redact(path)  # key paths (/keys/{id}) hold a key value


class TransportError(ApiError):
    """No HTTP response arrived: connection refused or reset, or a timeout.

    ``sent`` tells whether the request may have reached the server. When it is
    False (the connection was never made) any request is safe to repeat; when True
    a non-idempotent request is ambiguous and must be reconciled by a read.
    ``lasting`` marks a failure that a retry seconds later would meet again (a host
    name that does not exist, a TLS certificate or handshake failure).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        sent: bool,
        lasting: bool = False,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, detail=detail)
        self.sent = sent
        self.lasting = lasting

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.message}"


class ApiStatusError(ApiError):
    """The server answered with a non-2xx status."""

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        path: str,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status = status
        self.errors = errors or []
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def body_excerpt(self) -> str:
        """The server's message with its field errors, short enough for a report."""
        parts = [self.message]
        parts += [
            f"{e.get('property', '?')}: {e.get('errorMessage', '')}"
            for e in self.errors
            if isinstance(e, dict)
        ]
        return redact("; ".join(parts))[:500]

    def __str__(self) -> str:
        return f"{self.status} {self.method} {self.path}: {self.body_excerpt}"


class BadRequest(ApiStatusError):
    """400: the server rejected the request body or parameters."""


class Unauthorized(ApiStatusError):
    """401: the key is missing, unknown or inactive. Stops a run."""


class Forbidden(ApiStatusError):
    """403: the key may not perform this call (for example a read-only key). Stops a run."""


class NotFound(ApiStatusError):
    """404: the object does not exist in the key's project."""


class Conflict(ApiStatusError):
    """409: the object is in a state that conflicts with the request."""


class RateLimited(ApiStatusError):
    """429: over the project's quota. The attempt still counted against it."""


class ServerError(ApiStatusError):
    """5xx: the server failed. On a write the change may have happened anyway."""


class Redirected(ApiStatusError):
    """3xx: the server redirected the call elsewhere. Never followed: the key would go
    along to wherever ``location`` points."""

    location: str = ""


class ApiAccessError(BulkOpsError):
    """The Console API cannot be reached or does not accept the key: a wrong URL, the
    network, TLS, or a bad, read-only or wrong-type key. Nothing was sent. The message
    names the URL tried and the setting (or key variable) to change."""


class UsageError(BulkOpsError):
    """Bad command-line usage or job parameters. Nothing was sent."""


class InputError(BulkOpsError):
    """A bad input file. The message names the file, line and field. Nothing was sent."""


class PlanError(BulkOpsError):
    """A job produced an invalid mutation, or a plan file cannot be used."""


class RefusedError(BulkOpsError):
    """Refused for safety: a held lock, a stale or edited plan, a project mismatch."""


class JournalError(BulkOpsError):
    """The checkpoint journal is corrupt or could not be written."""


class NoSpaceError(JournalError):
    """No space left on the device (or a quota, or a file-size limit) while writing a
    file: the checkpoint, a plan, a report. A run stops there, resumable once there is
    room (exit 7)."""


_BY_STATUS: dict[int, type[ApiStatusError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def error_for_status(status: int) -> type[ApiStatusError]:
    """Return the error class for an HTTP status (``ServerError`` for 5xx, ``Redirected``
    for 3xx)."""
    if status >= 500:
        return ServerError
    if 300 <= status < 400:
        return Redirected
    return _BY_STATUS.get(status, ApiStatusError)
