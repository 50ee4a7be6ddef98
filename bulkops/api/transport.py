"""The transport seam under the client: one request in, one response out.

``AiohttpTransport`` is the real one; ``MockTransport`` wraps a function for unit
tests. aiohttp errors are translated to bulkops errors here and nowhere else
(:func:`map_aiohttp_errors`), so job code never sees aiohttp, and no message names an
aiohttp class (``-v`` shows its own words as the error's ``detail``).

Redirects are never followed: a 3xx comes back as it is (the client makes it an error
naming the ``Location``), because following one would send the key to wherever it
points.
"""

from __future__ import annotations

import inspect
import json
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from ..errors import TransportError

__all__ = [
    "DEFAULT_TIMEOUT",
    "AiohttpTransport",
    "ApiRequest",
    "ApiResponse",
    "MockTransport",
    "Transport",
    "map_aiohttp_errors",
]

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request. ``url`` is absolute; ``headers`` hold the key, so never log them."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    params: Mapping[str, str | list[str]] = field(default_factory=dict)
    json: Any = None
    has_body: bool = False

    @property
    def path(self) -> str:
        """The URL path (no host, no query): safe to put in messages."""
        rest = self.url.split("://", 1)[-1]
        path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return path.split("?", 1)[0]


@dataclass(frozen=True)
class ApiResponse:
    """One HTTP response, body already read."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """Decode the body as JSON (``None`` for an empty body)."""
        if not self.content:
            return None
        return json.loads(self.content)


class Transport(Protocol):
    """Anything that can turn an :class:`ApiRequest` into an :class:`ApiResponse`."""

    async def handle(self, request: ApiRequest) -> ApiResponse: ...

    async def aclose(self) -> None: ...


def _where(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


@dataclass(frozen=True)
class _Failure:
    message: str
    sent: bool = True
    lasting: bool = False


def _connect_failure(exc: aiohttp.ClientConnectorError, where: str) -> _Failure:
    # The subclasses first: each is a ClientConnectorError too.
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        host = where.rsplit(":", 1)[0]
        # EAI_AGAIN is the resolver failing for now; anything else: no such name.
        lasting = getattr(exc.os_error, "errno", None) != socket.EAI_AGAIN
        return _Failure(f"unknown host: {host} does not resolve", False, lasting)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _Failure(f"the TLS certificate of {where} could not be verified", False, True)
    if isinstance(exc, aiohttp.ClientSSLError):
        return _Failure(f"the TLS handshake with {where} failed", False, True)
    if isinstance(exc.os_error, ConnectionRefusedError):
        return _Failure(f"connection refused by {where}", False)
    reason = exc.os_error.strerror or "the connection could not be made"
    return _Failure(f"cannot connect to {where}: {reason}", False)


def _describe(exc: aiohttp.ClientError | TimeoutError, where: str) -> _Failure:
    """What went wrong, in words (no class names); whether the request may have gone out;
    whether trying again soon would meet the same failure."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connect_failure(exc, where)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # Raised while connecting only: the request was never written.
        return _Failure(f"timed out connecting to {where}", False)
    if isinstance(exc, TimeoutError):
        return _Failure(f"timed out waiting for {where}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return _Failure(f"{where} closed the connection without answering")
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return _Failure(f"the connection to {where} was reset")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _Failure(f"the answer from {where} was cut short")
    return _Failure(f"the connection to {where} failed")


@contextmanager
def map_aiohttp_errors(request: ApiRequest) -> Iterator[None]:
    """Translate aiohttp and timeout errors into :class:`TransportError`.

    ``sent`` is False only when the connection could not be made at all (or timed out
    while being made), so the request cannot have reached the server; every other
    failure happened after bytes may have gone out and is ambiguous for a write.
    ``lasting`` marks what a retry would meet again (no such host, TLS). The message
    says what failed and where, in words; ``detail`` keeps aiohttp's own.
    """
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        failure = _describe(exc, _where(request.url))
        raise TransportError(
            failure.message,
            method=request.method,
            path=request.path,
            sent=failure.sent,
            lasting=failure.lasting,
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc


class AiohttpTransport:
    """The default transport: one ``aiohttp.ClientSession``, created lazily in the running loop."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, limit: int = 16) -> None:
        # ``total`` bounds a hung request; a per-read timeout as long as it adds nothing
        # but a timer rescheduled on every chunk received.
        self._timeout = aiohttp.ClientTimeout(
            total=timeout, connect=min(timeout, 10.0), sock_connect=min(timeout, 10.0)
        )
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AiohttpTransport(timeout={self._timeout.total})"

    async def handle(self, request: ApiRequest) -> ApiResponse:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
            # aiohttp resends a PUT or DELETE once by itself when the server drops the
            # connection (RFC 9112 §9.3.1), with no public switch (aio-libs/aiohttp#10790;
            # its own test client turns it off through this attribute, #9396). Every
            # resend is the engine's decision (bulkops.api.retry): a hidden one can open
            # a second review of a change, or turn a DELETE that landed into a 404.
            self._session._retry_connection = False
        data = None
        if request.has_body:
            data = json.dumps(request.json, separators=(",", ":")).encode()
        with map_aiohttp_errors(request):
            async with self._session.request(
                request.method,
                request.url,
                params=_multi(request.params) if request.params else None,
                data=data,
                headers=request.headers,
                allow_redirects=False,  # a redirect would carry the key elsewhere
            ) as resp:
                content = await resp.read()
                # The response's own case-insensitive headers: no copy per request.
                return ApiResponse(status=resp.status, headers=resp.headers, content=content)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _multi(params: Mapping[str, str | list[str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, list):
            out.extend((key, v) for v in value)
        else:
            out.append((key, value))
    return out


Handler = Callable[[ApiRequest], ApiResponse | Awaitable[ApiResponse]]


class MockTransport:
    """A transport that calls ``handler(request)`` (sync or async); for client unit tests."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def handle(self, request: ApiRequest) -> ApiResponse:
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        assert isinstance(result, ApiResponse)
        return result

    async def aclose(self) -> None:
        return None
