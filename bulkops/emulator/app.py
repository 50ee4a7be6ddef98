"""The emulator's aiohttp application: middlewares (log, auth, quota, faults) and routes.

Every request under ``/console/v1`` goes through one pipeline, in this order:

1. **auth** — unknown key → 401 (the message shows only a key prefix), read-only
   key on a mutation → 403, unsupported ``STATSIG-API-VERSION`` → 400;
2. **quota** — mutations spend the project's ``mutation`` or ``id_list`` quota
   (:func:`quota_class`); over it → 429. Rejected attempts count, as on the service;
3. **faults** — one seeded draw per mutation (:class:`~.state.Faults`) picks at
   most one of ``429``, ``429-retry-after``, ``500-before``, ``500-after``,
   ``reset-before``, ``reset-after``, ``hang-after``. The ``-after`` faults run the
   handler first, so the change is applied but the client does not learn it;
4. the handler, behind the review rule (:func:`~.handlers.reviews.with_reviews`): a
   mutation that needs review opens one instead of applying.

Each request then writes one request-log line (``time, method, path, status,
applied, fault, project``, and ``review`` when it opened or committed one; ``status``
0 for a dropped connection) and, when
``state.capture`` is a list, one exchange record with the bodies and the
matched route template (the conformance tests read those).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..api.paths import WRITE_METHODS
from ..engine.quota import quota_class_for
from ..errors import redact
from .handlers import ROUTES
from .handlers.reviews import with_reviews
from .http import APPLIED, PREFIX, PROJECT, REVIEW, STATE, api_error
from .state import EmulatorState

__all__ = ["FAULT", "FAULT_RNG", "create_app", "quota_class", "retry_after_value"]

FAULT_RNG = web.AppKey("fault_rng", random.Random)
# The fault injected into this request (``quota`` when the quota rejected it); unset when none.
FAULT = web.RequestKey("fault", str)
API_VERSION = "20240601"
# What an injected ``429-retry-after`` asks the client to wait, before time scaling.
_RETRY_AFTER_SECONDS = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def quota_class(method: str, path: str) -> str | None:
    """The quota class a request spends: the tool's own :func:`~bulkops.engine.quota.quota_class_for`
    for a write (segment id lists spend ``id_list``, 12/10 s and 900/15 min in the spec), None
    for a read."""
    return quota_class_for(method, path) if method in WRITE_METHODS else None


def retry_after_value(seconds: float, time_scale: float) -> str:
    """The ``Retry-After`` header for a wait of ``seconds``, shrunk by ``time_scale``.

    Whole seconds at real time (as HTTP has it); at a time scale the value becomes a
    decimal (``0.02``) so a rehearsal is not slowed by a one-second floor.
    """
    scaled = max(seconds / time_scale, 0.001)
    if scaled >= 1:
        return str(round(scaled))
    return f"{scaled:.3f}".rstrip("0").rstrip(".")


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
    request[PROJECT] = st.projects[info.project_id]
    if info.read_only and request.method in WRITE_METHODS:
        api_error(403, "Forbidden resource")


def _draw_fault(request: web.Request, st: EmulatorState) -> str | None:
    faults = st.faults
    if not faults.any or (request.method not in WRITE_METHODS and not faults.on_reads):
        return None
    rng = request.app[FAULT_RNG]
    # A fixed number of draws per request, so one seed gives one sequence of faults.
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


def _as_response(exc: web.HTTPException) -> web.Response:
    """An error raised by a handler (or by aiohttp's router) as a plain JSON response."""
    if exc.content_type == "application/json" and exc.text is not None:
        text = exc.text
    else:
        # aiohttp's own errors (404 no route, 405) get the API's JSON error shape too.
        text = json.dumps({"status": exc.status, "message": _GENERIC.get(exc.status, exc.reason)})
    return web.Response(
        status=exc.status, text=text, content_type="application/json", headers=_extra(exc)
    )


def _extra(exc: web.HTTPException) -> dict[str, str]:
    # Keep the headers that mean something to a client (405's Allow, a redirect's Location).
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Location", "Retry-After")}


async def _run(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return _as_response(exc)


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise _Reset


async def _guarded(request: web.Request, handler: Handler, st: EmulatorState) -> web.StreamResponse:
    if not request.path.startswith(PREFIX):
        return await _run(request, handler)
    _auth(request, st)
    handler = with_reviews(handler)
    klass = quota_class(request.method, request.path)
    if klass is not None and st.quotas_enabled:
        wait = st.quota_for(request[PROJECT], klass).attempt(st.clock())
        if wait is not None:
            request[FAULT] = "quota"
            return _error_response(429, "Too Many Requests")
    fault = _draw_fault(request, st)
    if fault is None:
        return await _run(request, handler)
    request[FAULT] = fault
    if fault == "429":
        return _error_response(429, "Too Many Requests")
    if fault == "429-retry-after":
        delay = retry_after_value(_RETRY_AFTER_SECONDS, st.time_scale)
        return _error_response(429, "Too Many Requests", {"Retry-After": delay})
    if fault == "500-before":
        return _error_response(500, "Internal Server Error")
    if fault == "reset-before":
        _abort(request)
    # The handler runs (a valid change is applied); the client will not learn it.
    response = await _run(request, handler)
    if fault == "500-after":
        return _error_response(500, "Internal Server Error")
    if fault == "reset-after":
        _abort(request)
    if fault == "hang-after":
        await asyncio.sleep(st.faults.hang_seconds)
    return response


@web.middleware
async def _pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = request.app[STATE]
    request[APPLIED] = False
    started = time.time()
    status = 500
    response_body: Any = None
    request_body: Any = None
    if st.capture is not None:
        request_body = await _request_json(request)  # cached: the handler reads it again
    try:
        try:
            response = await _guarded(request, handler, st)
        except web.HTTPException as exc:  # auth errors
            response = _as_response(exc)
        status = response.status
        if st.capture is not None and isinstance(response, web.Response):
            response_body = _response_json(response)
        return response
    except _Reset:
        status = 0
        # The transport is gone: aiohttp's attempt to answer meets a closed connection
        # and is dropped quietly (a ConnectionError in its finish_response).
        raise web.HTTPInternalServerError() from None
    finally:
        entry = {
            "time": started,
            "method": request.method,
            "path": redact(request.path),  # /keys/{id} paths hold key values
            "status": status,
            "applied": request.get(APPLIED, False),
            "fault": request.get(FAULT),
            "project": getattr(request.get(PROJECT), "id", None),
        }
        if REVIEW in request:
            entry["review"] = request[REVIEW]
        st.log_request(entry)
        if st.capture is not None:
            route = request.match_info.route.resource
            st.capture.append(
                {
                    **entry,
                    "route": route.canonical if route is not None else None,
                    "request_body": request_body,
                    "response_body": response_body,
                }
            )


async def _request_json(request: web.Request) -> Any:
    try:
        raw = await request.read()
        return json.loads(raw) if raw.strip() else None
    except (ValueError, ConnectionError):
        return None


def _response_json(response: web.Response) -> Any:
    body = response.body
    if not isinstance(body, bytes | bytearray) or not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def create_app(state: EmulatorState) -> web.Application:
    """Build the emulator app for ``state`` (serve it with aiohttp's runner or TestServer)."""
    app = web.Application(middlewares=[_pipeline], client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    app[FAULT_RNG] = random.Random(state.fault_seed)
    app.router.add_routes(ROUTES)
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
