"""The Console API client.

A request goes through a small pipeline: headers (key, version, review header on
mutations), then the middlewares the caller installed (the engine adds its quota
limiter there), then the read-retry loop, then ``transport.handle()``. Responses
with a non-2xx status become typed errors from :mod:`bulkops.errors`.

Typed endpoint methods live on resource namespaces (``client.gates.archive(…)``,
``client.segments.add_ids(…)``), one module per API group in
:mod:`bulkops.api.resources`; the same namespaces read the wire JSON as it is
(``client.gates.items(…)``, ``client.gates.read(id)``), which is what jobs plan from.
``client.call(method, path, body)`` reaches any endpoint.

Example::

    async with ConsoleClient(Settings.from_env()) as client:
        async for gate in client.gates.list(type="STALE"):
            print(gate.id, gate.typeReason)
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, TypedDict, Unpack
from urllib.parse import parse_qsl, urlsplit

import anyio
import structlog

from ..errors import (
    ApiStatusError,
    BulkOpsError,
    NotFound,
    Redirected,
    TransportError,
    UsageError,
    error_for_status,
    redact,
)
from ..settings import Settings, is_loopback
from . import resources
from .paths import API_PREFIX, WRITE_METHODS
from .retry import read_retry_delay
from .transport import AiohttpTransport, ApiRequest, ApiResponse, Transport

__all__ = [
    "ConsoleClient",
    "Middleware",
    "Next",
    "Params",
    "Query",
    "RequestOptions",
    "parse_retry_after",
    "read_object",
]

log = structlog.get_logger()

EVENT_INSECURE = "api.insecure_http"

Query = str | int | float | bool | Sequence[str] | None
Params = Mapping[str, Query]
Next = Callable[[ApiRequest], Awaitable[ApiResponse]]
Middleware = Callable[[ApiRequest, Next], Awaitable[ApiResponse]]


class RequestOptions(TypedDict, total=False):
    """What a request may carry besides its method and path (see :meth:`ConsoleClient.build_request`).

    Attributes:
        params: Query parameters; None values are left out, sequences repeat the name.
        json: The JSON body.
        has_body: Send a body even when ``json`` is None (``null``), or none at all.
    """

    params: Params | None
    json: Any
    has_body: bool | None


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


class ConsoleClient:
    """Async client for one project's Console API (the key decides the project).

    Args:
        settings: Key, base URL and knobs. The key never appears in a repr, log or error.
        transport: Defaults to :class:`AiohttpTransport`.
        middlewares: ``(request, next) -> response`` callables run in order around
            every attempt; the engine installs its quota limiter here.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport | None = None,
        middlewares: Sequence[Middleware] = (),
    ) -> None:
        self.settings = settings
        self._transport: Transport = transport or AiohttpTransport(timeout=settings.timeout)
        self._middlewares = list(middlewares)
        self._state = _State.UNOPENED
        base = urlsplit(settings.base_url)
        self._origin = f"{base.scheme}://{base.netloc}"
        self._base_path = base.path.rstrip("/")
        if base.scheme == "http" and not is_loopback(base.hostname or ""):
            # Only with allow_insecure_http (Settings refuses it otherwise): every run says so.
            log.warning(
                EVENT_INSECURE,
                url=settings.base_url,
                message=f"the key goes to {base.netloc} in clear text (--allow-insecure-http)",
            )
        # One namespace per API group (see bulkops.api.resources).
        self.gates = resources.Gates(self)
        self.dynamic_configs = resources.DynamicConfigs(self)
        self.segments = resources.Segments(self)
        self.tags = resources.Tags(self)
        self.target_apps = resources.TargetApps(self)
        self.unit_id_types = resources.UnitIdTypes(self)
        self.environments = resources.Environments(self)
        self.project = resources.ProjectInfo(self)
        self.audit_logs = resources.AuditLogs(self)
        self.experiments = resources.Experiments(self)
        self.warehouse_native = resources.WarehouseNative(self)
        self.layers = resources.Layers(self)
        self.holdouts = resources.Holdouts(self)
        self.ingestions = resources.Ingestions(self)
        self.users = resources.Users(self)
        self.teams = resources.Teams(self)
        self.alerts = resources.Alerts(self)
        self.keys = resources.Keys(self)

    def __repr__(self) -> str:
        return f"ConsoleClient(base_url={self.settings.base_url!r})"

    async def __aenter__(self) -> ConsoleClient:
        if self._state is _State.CLOSED:
            raise RuntimeError("client is closed")
        self._state = _State.OPENED
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transport; the client cannot be used afterwards."""
        if self._state is not _State.CLOSED:
            self._state = _State.CLOSED
            await self._transport.aclose()

    def collection(self, name: str) -> resources.Collection[Any]:
        """The collection namespace called ``name`` (``"gates"`` is :attr:`gates`), for
        code that works on several kinds alike.

        Raises:
            KeyError: no collection of objects has that name.
        """
        found = vars(self).get(name)
        if not isinstance(found, resources.Collection):
            raise KeyError(f"no collection named {name!r}")
        return found

    def add_middleware(self, middleware: Middleware) -> None:
        """Append a middleware to the pipeline (outermost first)."""
        self._middlewares.append(middleware)

    # -- the pipeline -------------------------------------------------------------

    def build_request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        has_body: bool | None = None,
    ) -> ApiRequest:
        """Build the request for ``method path`` (``path`` relative to the base URL)."""
        method = method.upper()
        headers = {
            "STATSIG-API-KEY": self.settings.api_key.get_secret_value(),
            "STATSIG-API-VERSION": self.settings.api_version,
            "Accept": "application/json",
        }
        if has_body is None:
            has_body = json is not None
        if has_body:
            headers["Content-Type"] = "application/json"
        if method in WRITE_METHODS and self.settings.respect_reviews:
            headers["x-respect-review-settings"] = "true"
        return ApiRequest(
            method=method,
            url=self._url(path),
            headers=headers,
            params=_clean_params(params or {}),
            json=json,
            has_body=has_body,
        )

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            parts = urlsplit(path)
            if f"{parts.scheme}://{parts.netloc}".lower() != self._origin.lower():
                # The key goes to the API URL and nowhere else.
                raise UsageError(
                    f"{redact(path.split('?', 1)[0])} is not on the API URL "
                    f"{self.settings.base_url}; the key is sent nowhere else"
                )
            return path
        if not path.startswith("/"):
            path = "/" + path
        return f"{self._origin}{self._base_path}{path}"

    async def send(self, request: ApiRequest) -> ApiResponse:
        """Send one request through the middlewares and the read-retry loop.

        Returns the 2xx response; raises a typed :class:`ApiStatusError` otherwise.
        Mutations are never retried here: whether a failed write may be repeated is
        the engine's decision; a failed read is repeated as :func:`read_retry_delay` says.
        """
        if self._state is _State.CLOSED:
            raise RuntimeError("client is closed")
        retries = self.settings.read_retries if request.method == "GET" else 0
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._dispatch(request, 0)
                return self._check(request, response)
            except (TransportError, ApiStatusError) as exc:
                delay = read_retry_delay(attempt, exc, retries=retries)
                if delay is None:
                    raise
                log.debug(
                    "request.retry", method=request.method, path=redact(request.path), delay=delay
                )
                await anyio.sleep(delay)

    async def _dispatch(self, request: ApiRequest, index: int) -> ApiResponse:
        if index < len(self._middlewares):
            middleware = self._middlewares[index]
            return await middleware(request, lambda req: self._dispatch(req, index + 1))
        return await self._transport.handle(request)

    def _check(self, request: ApiRequest, response: ApiResponse) -> ApiResponse:
        if 200 <= response.status < 300:
            return response
        message = f"HTTP {response.status}"
        errors: list[dict[str, Any]] | None = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = str(body.get("message") or message)
            raw_errors = body.get("errors")
            if isinstance(raw_errors, list):
                # Field errors may echo the key too (str(exc) shows them).
                secret_value = self.settings.api_key.get_secret_value()
                errors = [
                    {k: redact(v, secret_value) if isinstance(v, str) else v for k, v in e.items()}
                    for e in raw_errors
                    if isinstance(e, dict)
                ]
        elif response.content:
            message = response.content[:200].decode("utf-8", "replace")
        secret = self.settings.api_key.get_secret_value()
        if 300 <= response.status < 400:
            raise _redirected(request, response, secret)
        cls = error_for_status(response.status)
        raise cls(
            redact(message, secret),
            status=response.status,
            method=request.method,
            path=request.path,
            errors=errors,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            request_id=response.headers.get("x-request-id"),
        )

    # -- convenience --------------------------------------------------------------

    async def request(self, method: str, path: str, **options: Unpack[RequestOptions]) -> Any:
        """Send ``method path`` and return the decoded JSON body (the whole envelope)."""
        return (await self.send(self.build_request(method, path, **options))).json()

    async def call(
        self, method: str, path: str, body: Any = None, params: Params | None = None
    ) -> Any:
        """Call any endpoint; returns the decoded envelope (``{"message", "data", …}``)."""
        return await self.request(method, path, params=params, json=body)

    async def data(self, method: str, path: str, **options: Unpack[RequestOptions]) -> Any:
        """Send a request and return the envelope's ``data`` (None when there is none)."""
        body = await self.request(method, path, **options)
        if isinstance(body, dict):
            return body.get("data")
        return body

    async def paginate(
        self, path: str, *, params: Params | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every item of a paginated list, following ``pagination.nextPage``.

        ``nextPage`` may be relative (``/console/v1/gates?page=2&limit=100``) or carry
        a host (``statsigapi.net/console/v1/…``); both are followed on our base URL.
        """
        query: dict[str, Any] = dict(params or {})
        query.setdefault("limit", limit or self.settings.page_limit)
        query.setdefault("page", 1)
        next_path: str | None = path
        seen: set[str] = set()
        while next_path is not None:
            body = await self.request("GET", next_path, params=query)
            if not isinstance(body, dict):
                raise BulkOpsError(
                    f"GET {path}: expected a list envelope, got {type(body).__name__}"
                )
            items = body.get("data") or []
            if isinstance(items, dict):  # a few list endpoints wrap one object
                items = [items]
            for item in items:
                yield item
            pagination = body.get("pagination") or {}
            link = pagination.get("nextPage")
            if not link or not items:
                return
            next_path, query = self._follow(link)
            key = f"{next_path}?{sorted(query.items())}"
            if key in seen:  # a server that loops its links must not loop us
                raise BulkOpsError(f"GET {path}: pagination repeats page {link!r}")
            seen.add(key)

    def _follow(self, link: str) -> tuple[str, dict[str, Any]]:
        parts = urlsplit(
            link if "://" in link else "//" + link if not link.startswith("/") else link
        )
        link_path = parts.path
        marker = self._base_path or API_PREFIX
        if marker and marker in link_path:
            link_path = link_path.split(marker, 1)[1] or "/"
        query: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in query:
                prev = query[key]
                query[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                query[key] = value
        return link_path, query


def _redirected(request: ApiRequest, response: ApiResponse, secret: str) -> Redirected:
    """A 3xx as an error naming where it pointed (the transport never follows one)."""
    location = redact(response.headers.get("Location") or "", secret)
    where = f"to {location}" if location else "(no Location given)"
    exc = Redirected(
        f"HTTP {response.status}: redirected {where}; not followed, so the key does not go there",
        status=response.status,
        method=request.method,
        path=request.path,
        request_id=response.headers.get("x-request-id"),
    )
    exc.location = location
    exc.hint = (
        "if that address is the Console API, set STATSIG_API_URL (or --api-url) to it"
        if location
        else None
    )
    return exc


def _clean_params(params: Params) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[key] = str(value)
        else:
            out[key] = [str(v) for v in value]
    return out


async def read_object(client: ConsoleClient, path: str) -> Any:
    """What ``GET path`` shows: the envelope's ``data``, or None for a 404.

    A paginated list is read to its end; a paged id list (``{ids: [...]}``) has its
    ids merged across pages, so predicates see the whole object.
    """
    try:
        body = await client.request("GET", path)
    except NotFound:
        return None
    if not isinstance(body, dict):
        return body
    data = body.get("data")
    pagination = body.get("pagination")
    if not isinstance(pagination, dict) or not pagination.get("nextPage"):
        return data
    if isinstance(data, list):
        return [item async for item in client.paginate(path)]
    if isinstance(data, dict) and isinstance(data.get("ids"), list):
        merged = dict(data)
        ids: list[Any] = []
        async for page in client.paginate(path):
            ids.extend(page.get("ids") or [])
        merged["ids"] = ids
        return merged
    return data
