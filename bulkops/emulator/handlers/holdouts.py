"""Emulator handlers: holdouts (``/holdouts/**``).

A holdout is created (200, not 201) from ``{name, description?, idType?, teamID?}``
only; everything else — ``passPercentage`` (0–10), ``gateIDs``, ``experimentIDs``,
``layerIDs``, ``isGlobal``, ``targetingGateID``, ``isEnabled``, ``monitoringMetrics`` —
is set by a full (``POST``) or partial (``PATCH``) update. The ids a holdout targets
must exist; each target's read-only ``holdoutIDs`` lists the holdouts applied to it.

Overrides (gate-style) are served by :mod:`.overrides`, pulse results by :mod:`.pulse`.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from aiohttp import web

from ...api.paths import id_from_name
from ..checks import (
    Check,
    boolean,
    check_gate,
    check_name,
    multi_query,
    number,
    object_list,
    reject_unknown,
    require_keys,
    string,
    string_list,
    validate_fields,
)
from ..common import get_or_404, new_metadata
from ..http import PREFIX, api_error, clone, ok, ok_page, project, read_body, record_change
from ..state import Project

__all__ = ["routes"]

_KIND = "holdouts"
_HOLDOUTS = f"{PREFIX}/holdouts"
_HOLDOUT = f"{_HOLDOUTS}/{{id}}"
HOLDOUT_NAME = re.compile(r"^[a-zA-Z0-9_\- ]*$")
_CREATE_KEYS = ("name", "description", "idType", "teamID")
_FIELDS: dict[str, Check] = {
    "isEnabled": boolean(),
    "description": string(max_len=1000),
    "passPercentage": number(0, 10),
    "gateIDs": string_list(),
    "experimentIDs": string_list(),
    "layerIDs": string_list(),
    "isGlobal": boolean(),
    "targetingGateID": string(nullable=True),
    "monitoringMetrics": object_list(
        {"name": string(), "type": string()}, required=("name", "type")
    ),
}
_FULL_REQUIRED = (
    "isEnabled",
    "description",
    "passPercentage",
    "gateIDs",
    "experimentIDs",
    "layerIDs",
    "isGlobal",
    "targetingGateID",
)
# (holdout field, collection, label in the 404 message)
_TARGETS = (
    ("gateIDs", "gates", "Gate"),
    ("experimentIDs", "experiments", "Experiment"),
    ("layerIDs", "layers", "Layer"),
)


def _holdout(request: web.Request) -> dict[str, Any]:
    return get_or_404(request, _KIND, request.match_info["id"], "Holdout")


def _reindex(
    proj: Project, holdout_id: str, before: dict[str, Any], after: dict[str, Any] | None
) -> None:
    """Keep each target's read-only ``holdoutIDs`` in step with the holdout's targets."""
    for key, kind, _ in _TARGETS:
        old = set(before.get(key) or ())
        new = set((after or {}).get(key) or ())
        store = proj.store(kind)
        for obj_id in old - new:
            obj = store.get(obj_id)
            if obj is not None and holdout_id in (obj.get("holdoutIDs") or ()):
                obj["holdoutIDs"] = [h for h in obj["holdoutIDs"] if h != holdout_id]
        for obj_id in new - old:
            obj = store.get(obj_id)
            if obj is not None and holdout_id not in (obj.get("holdoutIDs") or ()):
                obj["holdoutIDs"] = [*(obj.get("holdoutIDs") or ()), holdout_id]


async def list_holdouts(request: web.Request) -> web.Response:
    """``GET /holdouts`` (filters ``creatorName``, ``creatorID``, ``tags``)."""
    query = request.rel_url.query
    items = list(project(request).store(_KIND).values())
    for key in ("creatorName", "creatorID"):
        if query.get(key):
            items = [h for h in items if h.get(key) == query[key]]
    if tags := multi_query(request, "tags"):
        items = [h for h in items if set(tags) & set(h.get("tags") or ())]
    return ok_page(request, items, "Holdouts listed successfully.")


async def create_holdout(request: web.Request) -> web.Response:
    """``POST /holdouts`` (200): only name, description, idType and teamID are accepted."""
    proj = project(request)
    body = require_keys(await read_body(request), ("name",))
    reject_unknown(body, _CREATE_KEYS)
    name = check_name(body["name"], pattern=HOLDOUT_NAME)
    fields = validate_fields(
        body,
        {"description": string(max_len=1000), "idType": string(), "teamID": string(nullable=True)},
    )
    holdout_id = id_from_name(name)
    store = proj.store(_KIND)
    if holdout_id in store or any(h.get("name") == name for h in store.values()):
        api_error(400, "Name is already in use")
    holdout = new_metadata(request, holdout_id, name, fields)
    holdout.update(
        {
            "isEnabled": True,
            "isGlobal": False,
            "passPercentage": 0,
            "gateIDs": [],
            "experimentIDs": [],
            "layerIDs": [],
            "targetingGateID": None,
            "monitoringMetrics": [],
        }
    )
    store[holdout_id] = holdout
    proj.snapshot_version(_KIND, holdout)
    record_change(request, _KIND, holdout, "holdout_create", versioned=False)
    return ok(holdout, "Holdout created successfully.")


async def get_holdout(request: web.Request) -> web.Response:
    """``GET /holdouts/{id}``."""
    return ok(_holdout(request), "Holdout read successfully.")


def _check_targets(proj: Project, fields: dict[str, Any]) -> None:
    for key, kind, label in _TARGETS:
        if key not in fields:
            continue
        fields[key] = list(dict.fromkeys(fields[key]))
        missing = [i for i in fields[key] if i not in proj.store(kind)]
        if missing:
            api_error(
                404,
                "Not Found Exception",
                [
                    {
                        "property": key,
                        "errorMessage": f"The following {label} IDs could not be found: "
                        f"[{', '.join(missing)}]",
                    }
                ],
            )


async def update_holdout(request: web.Request, *, full: bool) -> web.Response:
    """``POST /holdouts/{id}`` (full: every targeting field required) or ``PATCH``."""
    proj = project(request)
    holdout = _holdout(request)
    body = require_keys(await read_body(request), _FULL_REQUIRED if full else ())
    reject_unknown(body, _FIELDS)
    fields = validate_fields(body, _FIELDS)
    if "targetingGateID" in fields:
        fields["targetingGateID"] = check_gate(proj, fields["targetingGateID"]) or None
    _check_targets(proj, fields)
    before = clone(holdout)
    holdout.update(fields)
    _reindex(proj, holdout["id"], before, holdout)
    changes = {k: {"old": before.get(k), "new": v} for k, v in fields.items() if before.get(k) != v}
    record_change(request, _KIND, holdout, "holdout_update", changes=changes)
    return ok(holdout, "Holdout updated successfully.")


async def delete_holdout(request: web.Request) -> web.Response:
    """``DELETE /holdouts/{id}``: also releases its targets and drops its overrides."""
    proj = project(request)
    holdout = _holdout(request)
    _reindex(proj, holdout["id"], holdout, None)
    del proj.store(_KIND)[holdout["id"]]
    proj.overrides.setdefault(_KIND, {}).pop(holdout["id"], None)
    record_change(request, _KIND, holdout, "holdout_delete", versioned=False)
    return ok(holdout, "Holdout deleted successfully.")


routes = [
    web.get(_HOLDOUTS, list_holdouts),
    web.post(_HOLDOUTS, create_holdout),
    web.get(_HOLDOUT, get_holdout),
    web.post(_HOLDOUT, partial(update_holdout, full=True)),
    web.patch(_HOLDOUT, partial(update_holdout, full=False)),
    web.delete(_HOLDOUT, delete_holdout),
]
"""The holdout routes (overrides: :mod:`.overrides`; pulse: :mod:`.pulse`)."""
