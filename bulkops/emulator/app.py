"""The emulator's aiohttp application: middlewares (log, auth, quota, faults) and routes."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..quota import ID_LIST_CLASS, MUTATION_CLASS
from .handlers import ROUTE_TABLES
from .http import PREFIX, STATE, api_error
from .state import EmulatorState

__all__ = ["FAULT_RNG", "create_app", "quota_class"]

FAULT_RNG = web.AppKey("fault_rng", random.Random)
API_VERSION = "20240601"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Segment id-list mutations have their own quota (12/10 s and 900/15 min in the spec).
_ID_LIST_PATH = re.compile(r"^/console/v1/segments/[^/]+/(id_list(/reset)?|add_ids|remove_ids)$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def quota_class(method: str, path: str) -> str | None:
    """The quota class a request spends: ``mutation``, ``id_list``, or None for reads."""
    if method not in MUTATING:
        return None
    return ID_LIST_CLASS if _ID_LIST_PATH.match(path) else MUTATION_CLASS


_GENERIC = {
    404: "Not Found. The requested resource could not be found.",
    405: "Method Not Allowed",
}


class _Reset(Exception):
    """The emulator dropped the connection on purpose (an injected reset)."""


def _auth(request: web.Request, st: EmulatorState) -> None:
    key = request.headers.get("STATSIG-API-KEY", "")
    info = st.keys.get(key)
    if info is None or info.project_id not in st.projects:
        shown = key[:12] + "…" if key else "(none)"
        api_error(
            401,
            "This endpoint only accepts an active CONSOLE key, but an invalid key was sent. "
            f"Key: {shown}",
        )
    version = request.headers.get("STATSIG-API-VERSION")
    if version not in (None, "", API_VERSION):
        api_error(400, f"Unsupported STATSIG-API-VERSION {version!r}; supported: {API_VERSION}")
    if info.read_only and request.method in MUTATING:
        api_error(403, "Forbidden resource")
    request["project"] = st.projects[info.project_id]


def _draw_fault(request: web.Request, st: EmulatorState) -> str | None:
    faults = st.faults
    if not faults.any or (request.method not in MUTATING and not faults.on_reads):
        return None
    rng = request.app[FAULT_RNG]
    r = rng.random()
    side = "before" if rng.random() < 0.5 else "after"
    for name, rate in (
        ("429", faults.rate_429),
        ("500", faults.rate_500),
        ("reset", faults.rate_reset),
        ("hang", faults.rate_hang),
    ):
        if r < rate:
            if name == "429":
                return "429-retry-after" if rng.random() < faults.retry_after_share else "429"
            if name == "hang":
                return "hang-after"
            return f"{name}-{side}"
        r -= rate
    return None


def _error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"status": status, "message": message}, status=status, headers=headers)


async def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise _Reset


async def _guarded(request: web.Request, handler: Handler, st: EmulatorState) -> web.StreamResponse:
    if not request.path.startswith(PREFIX):
        return await handler(request)
    _auth(request, st)
    klass = quota_class(request.method, request.path)
    if klass is not None and st.quotas_enabled:
        wait = st.quota_for(request["project"], klass).attempt(st.clock())
        if wait is not None:
            request["fault"] = "quota"
            return _error_response(429, "Too Many Requests")
    fault = _draw_fault(request, st)
    request["fault"] = fault
    if fault is None:
        return await handler(request)
    if fault == "429":
        return _error_response(429, "Too Many Requests")
    if fault == "429-retry-after":
        delay = max(1, round(2 / st.time_scale)) if st.time_scale <= 2 else 1
        return _error_response(429, "Too Many Requests", {"Retry-After": str(delay)})
    if fault == "500-before":
        return _error_response(500, "Internal Server Error")
    if fault == "reset-before":
        await _abort(request)
    response = await handler(request)  # the change happens; the client will not learn it
    if fault == "500-after":
        return _error_response(500, "Internal Server Error")
    if fault == "reset-after":
        await _abort(request)
    if fault == "hang-after":
        await asyncio.sleep(st.faults.hang_seconds)
    return response


@web.middleware
async def _pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = request.app[STATE]
    request["applied"] = False
    request["fault"] = None
    started = time.time()
    status = 500
    response_body: Any = None
    try:
        try:
            response = await _guarded(request, handler, st)
        except web.HTTPException as exc:
            response = exc
            if exc.status >= 400:
                # Errors raised by handlers are answered, not raised, so the log sees them;
                # aiohttp's own (404 no route, 405) get the API's JSON error shape too.
                text = (
                    exc.text
                    if exc.content_type == "application/json"
                    else json.dumps(
                        {"status": exc.status, "message": _GENERIC.get(exc.status, exc.reason)}
                    )
                )
                response = web.Response(
                    status=exc.status, text=text, content_type="application/json"
                )
        status = response.status
        if (
            st.capture is not None
            and isinstance(response, web.Response)
            and response.body is not None
        ):
            try:
                response_body = json.loads(bytes(response.body)) if response.body else None  # type: ignore[arg-type]
            except ValueError:
                response_body = None
        return response
    except _Reset:
        status = 0
        raise web.HTTPException() from None  # never written: the transport is gone
    finally:
        entry = {
            "time": started,
            "method": request.method,
            "path": request.path,
            "status": status,
            "applied": bool(request.get("applied")),
            "fault": request.get("fault"),
            "project": getattr(request.get("project"), "id", None),
        }
        st.log_request(entry)
        if st.capture is not None:
            route = request.match_info.route.resource
            st.capture.append(
                {
                    **entry,
                    "route": route.canonical if route is not None else None,
                    "request_body": await _request_json(request),
                    "response_body": response_body,
                }
            )


async def _request_json(request: web.Request) -> Any:
    try:
        raw = await request.read()
        return json.loads(raw) if raw.strip() else None
    except (ValueError, ConnectionError):
        return None


def create_app(state: EmulatorState) -> web.Application:
    """Build the emulator app for ``state`` (serve it with aiohttp's runner or TestServer)."""
    app = web.Application(middlewares=[_pipeline], client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    app[FAULT_RNG] = random.Random(state.fault_seed)
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    app.router.add_get("/", _index)
    return app


async def _index(request: web.Request) -> web.Response:
    st = request.app[STATE]
    return web.json_response(
        {
            "service": "bulkops Console API emulator",
            "base_url": f"{request.scheme}://{request.host}{PREFIX}",
            "projects": [{"id": p.id, "name": p.name} for p in st.projects.values()],
        }
    )
