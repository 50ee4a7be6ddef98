"""Emulator handlers: holdouts (``/holdouts/**``).

A holdout is created (200, not 201) from ``{name, description?, idType?, teamID?}``
only; everything else — ``passPercentage`` (0–10), ``gateIDs``, ``experimentIDs``,
``layerIDs``, ``isGlobal``, ``targetingGateID``, ``isEnabled``, ``monitoringMetrics`` —
is set by a full (``POST``) or partial (``PATCH``) update. The ids a holdout targets
must exist; each target's read-only ``holdoutIDs`` lists the holdouts applied to it.

Overrides are gate-style (``passingUserIDs``/``failingUserIDs``, custom ids and
per-environment ``environmentOverrides``), ≤2000 ids per list, stored in
``project.overrides["holdouts"][id]``: POST replaces, PATCH adds (an id added to the
passing list leaves the failing one, and back), DELETE removes the listed ids
(everything without a body).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..common import check_name, field_error, get_or_404, id_from_name, new_metadata
from ..http import (
    PREFIX,
    api_error,
    clone,
    now_ms,
    ok,
    ok_page,
    project,
    read_body,
    record_change,
)
from ..state import Project
from .experiments import (
    Check,
    boolean,
    check_environment,
    check_gate,
    confidence_query,
    date_of,
    json_type,
    metric_result,
    multi_query,
    number,
    object_list,
    query_flag,
    reject_unknown,
    require_keys,
    string,
    string_list,
    validate_fields,
)

__all__ = ["routes"]

routes = web.RouteTableDef()

_KIND = "holdouts"
HOLDOUT_NAME = re.compile(r"^[a-zA-Z0-9_\- ]*$")
MAX_OVERRIDE_IDS = 2000
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


@routes.get(f"{PREFIX}/holdouts")
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


@routes.post(f"{PREFIX}/holdouts")
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


@routes.get(f"{PREFIX}/holdouts/{{id}}")
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


async def _update(request: web.Request, *, full: bool) -> web.Response:
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


@routes.post(f"{PREFIX}/holdouts/{{id}}")
async def update_holdout(request: web.Request) -> web.Response:
    """``POST /holdouts/{id}``: full update (every targeting field required)."""
    return await _update(request, full=True)


@routes.patch(f"{PREFIX}/holdouts/{{id}}")
async def patch_holdout(request: web.Request) -> web.Response:
    """``PATCH /holdouts/{id}``: only the given fields change."""
    return await _update(request, full=False)


@routes.delete(f"{PREFIX}/holdouts/{{id}}")
async def delete_holdout(request: web.Request) -> web.Response:
    """``DELETE /holdouts/{id}``: also releases its targets and drops its overrides."""
    proj = project(request)
    holdout = _holdout(request)
    _reindex(proj, holdout["id"], holdout, None)
    del proj.store(_KIND)[holdout["id"]]
    proj.overrides.setdefault(_KIND, {}).pop(holdout["id"], None)
    record_change(request, _KIND, holdout, "holdout_delete", versioned=False)
    return ok(holdout, "Holdout deleted successfully.")


@routes.get(f"{PREFIX}/holdouts/{{id}}/pulse_results")
async def pulse_results(request: web.Request) -> web.Response:
    """``GET /holdouts/{id}/pulse_results``: one row per monitoring metric."""
    holdout = _holdout(request)
    cuped = query_flag(request, "cuped", True)
    confidence = confidence_query(request)
    ds = date_of(now_ms(request))
    rows = [
        metric_result(m, holdout["id"], ds, confidence=confidence, cuped=cuped)
        for m in holdout.get("monitoringMetrics") or []
    ]
    return ok({"ds": ds, "monitoringMetrics": rows}, "Successfully loaded Pulse Results")


# -- overrides (gate-style) ---------------------------------------------------------------

_ID_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")
_OPPOSITE = {
    "passingUserIDs": "failingUserIDs",
    "failingUserIDs": "passingUserIDs",
    "passingCustomIDs": "failingCustomIDs",
    "failingCustomIDs": "passingCustomIDs",
    "passingIDs": "failingIDs",
    "failingIDs": "passingIDs",
}
_IDS = string_list(non_empty_items=True)


def _empty() -> dict[str, Any]:
    return {key: [] for key in _ID_LISTS} | {"environmentOverrides": []}


def _stored(proj: Project, holdout_id: str) -> dict[str, Any]:
    # Seeds and snapshots may leave out the optional custom-id lists.
    return {**_empty(), **(proj.overrides.setdefault(_KIND, {}).get(holdout_id) or {})}


def _parse(proj: Project, body: Any, *, required: bool) -> dict[str, Any]:
    """Validate an ``UpdateOverridesContractDto`` body (either variant, or both leniently)."""
    body = require_keys(body, ())
    if required and "environmentOverrides" not in body:
        require_keys(body, ("passingUserIDs", "failingUserIDs"))
    out = _empty()
    for key in _ID_LISTS:
        if body.get(key) is not None:
            out[key] = list(dict.fromkeys(_IDS(body[key], key)))
    envs = body.get("environmentOverrides") or []
    if not isinstance(envs, list):
        field_error("environmentOverrides", f"Expected array, received {json_type(envs)}")
    for i, raw in enumerate(envs):
        prop = f"environmentOverrides[{i}]"
        entry = validate_fields(
            raw,
            {"unitID": string(nullable=True), "passingIDs": _IDS, "failingIDs": _IDS},
            required=("unitID", "passingIDs", "failingIDs") if required else (),
            prefix=f"{prop}.",
        )
        out["environmentOverrides"].append(
            {
                "environment": check_environment(
                    proj, raw.get("environment"), f"{prop}.environment"
                ),
                "unitID": entry.get("unitID"),
                "passingIDs": entry.get("passingIDs", []),
                "failingIDs": entry.get("failingIDs", []),
            }
        )
    return out


def _add_ids(target: dict[str, Any], key: str, ids: list[str]) -> None:
    """Add ``ids`` to ``target[key]``, taking them out of the opposite list."""
    added = set(ids)
    opposite = _OPPOSITE[key]
    target[opposite] = [i for i in target.get(opposite) or [] if i not in added]
    target[key] = list(dict.fromkeys([*(target.get(key) or []), *ids]))


def _merge(current: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = clone(current)
    for key in _ID_LISTS:
        if added[key]:
            _add_ids(merged, key, added[key])
    for entry in added["environmentOverrides"]:
        scope = (entry["environment"], entry["unitID"])
        target = next(
            (
                e
                for e in merged["environmentOverrides"]
                if (e.get("environment"), e.get("unitID")) == scope
            ),
            None,
        )
        if target is None:
            target = {
                "environment": scope[0],
                "unitID": scope[1],
                "passingIDs": [],
                "failingIDs": [],
            }
            merged["environmentOverrides"].append(target)
        for key in ("passingIDs", "failingIDs"):
            _add_ids(target, key, entry[key])
    _check_limits(merged)
    return merged


def _check_limits(overrides: dict[str, Any]) -> None:
    for key in _ID_LISTS:
        if len(overrides[key]) > MAX_OVERRIDE_IDS:
            field_error(key, f"Array must contain at most {MAX_OVERRIDE_IDS} element(s)")
    for i, entry in enumerate(overrides["environmentOverrides"]):
        for key in ("passingIDs", "failingIDs"):
            if len(entry[key]) > MAX_OVERRIDE_IDS:
                field_error(
                    f"environmentOverrides[{i}].{key}",
                    f"Array must contain at most {MAX_OVERRIDE_IDS} element(s)",
                )


def _remove(current: dict[str, Any], removed: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = clone(current)
    for key in _ID_LISTS:
        gone = set(removed[key])
        out[key] = [i for i in out[key] if i not in gone]
    for entry in removed["environmentOverrides"]:
        scope = (entry["environment"], entry["unitID"])
        for existing in out["environmentOverrides"]:
            if (existing.get("environment"), existing.get("unitID")) == scope:
                for key in ("passingIDs", "failingIDs"):
                    gone = set(entry[key])
                    existing[key] = [i for i in existing[key] if i not in gone]
    out["environmentOverrides"] = [
        e for e in out["environmentOverrides"] if e["passingIDs"] or e["failingIDs"]
    ]
    return out


def _save(request: web.Request, holdout: dict[str, Any], overrides: dict[str, Any]) -> web.Response:
    proj = project(request)
    before = _stored(proj, holdout["id"])
    if overrides != before:
        proj.overrides.setdefault(_KIND, {})[holdout["id"]] = overrides
        record_change(
            request,
            _KIND,
            holdout,
            "holdout_update",
            changes={"overrides": {"old": before, "new": overrides}},
            versioned=False,
        )
    return ok(overrides, "Holdout Overrides updated successfully.")


@routes.get(f"{PREFIX}/holdouts/{{id}}/overrides")
async def get_overrides(request: web.Request) -> web.Response:
    """``GET /holdouts/{id}/overrides``."""
    holdout = _holdout(request)
    return ok(
        clone(_stored(project(request), holdout["id"])), "Holdout Overrides read successfully."
    )


@routes.post(f"{PREFIX}/holdouts/{{id}}/overrides")
async def set_overrides(request: web.Request) -> web.Response:
    """``POST /holdouts/{id}/overrides``: replace the overrides."""
    holdout = _holdout(request)
    parsed = _parse(project(request), await read_body(request), required=True)
    return _save(request, holdout, _merge(_empty(), parsed))


@routes.patch(f"{PREFIX}/holdouts/{{id}}/overrides")
async def add_overrides(request: web.Request) -> web.Response:
    """``PATCH /holdouts/{id}/overrides``: add the given ids."""
    proj = project(request)
    holdout = _holdout(request)
    parsed = _parse(proj, await read_body(request), required=True)
    return _save(request, holdout, _merge(_stored(proj, holdout["id"]), parsed))


@routes.delete(f"{PREFIX}/holdouts/{{id}}/overrides")
async def remove_overrides(request: web.Request) -> web.Response:
    """``DELETE /holdouts/{id}/overrides``: remove the given ids; no body → all."""
    proj = project(request)
    holdout = _holdout(request)
    body = await read_body(request, required=False)
    if body is None:
        return _save(request, holdout, _empty())
    parsed = _parse(proj, body, required=False)
    return _save(request, holdout, _remove(_stored(proj, holdout["id"]), parsed))
