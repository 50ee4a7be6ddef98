"""Helpers every emulator handler uses: envelopes, errors, pagination, change recording.

Handlers read the caller's project with :func:`project`, parse bodies with
:func:`read_body`, answer with :func:`ok` / :func:`ok_page`, fail with
:func:`api_error`, and record every applied change with :func:`record_change`
(version bump, ``lastModified*``, version history, audit-log entry, and the
request log's ``applied`` flag) or, for objects without versions, :func:`audit`.
"""

from __future__ import annotations

import copy
import json
from typing import Any, NoReturn
from urllib.parse import urlencode

from aiohttp import web

from .state import EmulatorState, Project

__all__ = [
    "APPLIED",
    "PREFIX",
    "PROJECT",
    "REVIEW",
    "STATE",
    "api_error",
    "audit",
    "clone",
    "mark_applied",
    "now_ms",
    "ok",
    "ok_page",
    "paginate",
    "project",
    "read_body",
    "record_change",
    "state",
]

PREFIX = "/console/v1"
STATE = web.AppKey("state", EmulatorState)
# Per-request storage set by the app's middleware (typed keys: aiohttp warns on str keys).
PROJECT = web.RequestKey("project", Project)
APPLIED = web.RequestKey("applied", bool)
# What a request did to a review (``{"event": "opened"|"committed"|…, "id": …}``), for the request log.
REVIEW = web.RequestKey("review", dict[str, str])

GENERIC_400 = "Invalid request. Please check the request input and try again."


def state(request: web.Request) -> EmulatorState:
    """The emulator state of this app."""
    return request.app[STATE]


def project(request: web.Request) -> Project:
    """The project the request's key opens (set by the auth middleware)."""
    proj = request.get(PROJECT)
    assert isinstance(proj, Project), "auth middleware did not run"
    return proj


def now_ms(request: web.Request) -> int:
    """Wall-clock milliseconds, from the state's (test-replaceable) clock."""
    return state(request).wall_ms()


def api_error(status: int, message: str, errors: list[dict[str, str]] | None = None) -> NoReturn:
    """Raise the Console API's error body ``{status, message, errors?}`` with ``status``."""
    body: dict[str, Any] = {"status": status, "message": message}
    if errors:
        body["errors"] = errors
    raise _Error(status, body)


class _Error(web.HTTPException):
    """An HTTP error whose status is chosen at raise time."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code = status
        super().__init__(text=json.dumps(body), content_type="application/json")


async def read_body(request: web.Request, *, required: bool = True) -> Any:
    """Parse the JSON body; 400 if malformed, or if absent and ``required``."""
    raw = await request.read()
    if not raw.strip():
        if required:
            api_error(
                400, GENERIC_400, [{"property": "body", "errorMessage": "Request body is required"}]
            )
        return None
    try:
        return json.loads(raw)
    except ValueError:
        api_error(
            400, GENERIC_400, [{"property": "body", "errorMessage": "Body is not valid JSON"}]
        )


def ok(
    data: Any = None, message: str = "Success", *, status: int = 200, with_data: bool = True
) -> web.Response:
    """A success envelope ``{message, data}`` (``{message}`` only when ``with_data`` is False).

    ``data`` is serialised here and now, so passing stored state itself is safe: the
    response cannot alias it (no copy needed).
    """
    body: dict[str, Any] = {"message": message}
    if with_data:
        body["data"] = data
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def paginate(request: web.Request, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Slice ``items`` by the ``page``/``limit`` query and build the pagination metadata.

    ``nextPage``/``previousPage`` are relative URLs that keep every other query
    parameter; ``null`` at the ends. Default ``page=1&limit=100``.
    """
    query = request.rel_url.query
    try:
        limit = int(query.get("limit", "100"))
        page = int(query.get("page", "1"))
    except ValueError:
        api_error(
            400,
            GENERIC_400,
            [{"property": "limit", "errorMessage": "limit and page must be integers"}],
        )
    if limit < 1 or page < 1:
        api_error(
            400,
            GENERIC_400,
            [{"property": "limit", "errorMessage": "limit and page must be positive"}],
        )
    start = (page - 1) * limit
    chunk = items[start : start + limit]
    others = [(k, v) for k, v in query.items() if k not in ("page", "limit")]

    def link(number: int) -> str:
        return f"{request.path}?{urlencode([*others, ('page', number), ('limit', limit)])}"

    meta = {
        "itemsPerPage": limit,
        "pageNumber": page,
        "nextPage": link(page + 1) if start + limit < len(items) else None,
        "previousPage": link(page - 1) if page > 1 else None,
        "totalItems": len(items),
        "all": request.path,
    }
    return chunk, meta


def ok_page(request: web.Request, items: list[Any], message: str) -> web.Response:
    """A paginated list envelope ``{message, data, pagination}``."""
    chunk, meta = paginate(request, items)
    return web.json_response({"message": message, "data": chunk, "pagination": meta}, dumps=_dumps)


def mark_applied(request: web.Request) -> None:
    """Flag the request as having changed state (the request log's ``applied``)."""
    request[APPLIED] = True


def audit(
    request: web.Request,
    action_type: str,
    obj_id: str,
    name: str,
    changes: dict[str, Any] | None = None,
) -> None:
    """Log an applied change of an unversioned object: one audit-log entry, ``applied``."""
    project(request).audit(action_type, obj_id, name, changes=changes, now_ms=now_ms(request))
    mark_applied(request)


def record_change(
    request: web.Request,
    kind: str,
    obj: dict[str, Any],
    action_type: str,
    *,
    changes: dict[str, Any] | None = None,
    versioned: bool = True,
) -> dict[str, Any]:
    """Stamp an applied change on ``obj`` and log it.

    Bumps ``version`` and ``lastModified*`` (when ``versioned``), keeps a copy in
    the version history, appends one audit-log entry and marks the request applied.
    Returns ``obj``.
    """
    proj = project(request)
    ts = now_ms(request)
    if versioned:
        obj["version"] = int(obj.get("version") or 0) + 1
        obj["lastModifiedTime"] = ts
        obj["lastModifierName"] = "CONSOLE API"
        obj["lastModifierID"] = "console_api"
        obj["lastModifierEmail"] = None
        proj.snapshot_version(kind, obj)
    proj.audit(
        action_type,
        str(obj.get("id", "")),
        str(obj.get("name") or obj.get("id", "")),
        changes=changes,
        now_ms=ts,
        tags=list(obj.get("tags") or []),
    )
    mark_applied(request)
    return obj


def clone(obj: Any) -> Any:
    """A deep copy, so a response never aliases stored state."""
    return copy.deepcopy(obj)
