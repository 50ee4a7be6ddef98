"""Emulator handlers: experiments (``/experiments/**``): create, update, delete, lifecycle.

Lifecycle (``status``)::

    setup ──start──▶ active ──make_decision──▶ decision_made
      │                │  ╰──────abandon─────▶ abandoned
      ╰─schedule_start ╰──reset (restart, fresh startTime)
    any finished or unstarted state ──archive──▶ archived ──unarchive──▶ (status restored)

Wrong-state calls are 400s with the service's messages ("Experiment has not yet
started", "Experiment has already started", "Experiment has already finished",
"Experiment <id> is already abandoned"). An experiment created without ``layerID``
gets an implicit layer ``statsig::<id>_layer`` (``isImplicitLayer: true``), deleted
with it. Overrides live in ``project.overrides["experiments"][id]``: POST replaces,
PATCH adds (an entry for the same gate/segment, or ids for the same group, overwrite),
DELETE removes the listed entries and ids (everything when there is no body): see
:mod:`.overrides`. What a request body may hold is checked in :mod:`.experiment_checks`.
"""

from __future__ import annotations

import calendar
import time
from functools import partial
from typing import Any

from aiohttp import web

from ...api.paths import id_from_name
from ..checks import (
    boolean,
    check_gate,
    check_name,
    field_error,
    multi_query,
    number,
    optional_body,
    require_keys,
    string,
    string_list,
    validate_fields,
)
from ..common import get_or_404, new_metadata
from ..http import PREFIX, api_error, clone, now_ms, ok, ok_page, project, read_body, record_change
from ..state import Project, new_base_id
from .experiment_checks import (
    EXPERIMENT_ID,
    EXPERIMENT_NAME,
    FIELDS,
    FULL_UPDATE_REQUIRED,
    STATUSES,
    build_layer,
    check_groups,
    control_id,
    default_groups,
    diff,
    find_group,
    implicit_layer_id,
    layer_ref,
    name_taken,
)

__all__ = ["experiment_or_404", "routes"]

_KIND = "experiments"
_EXPERIMENTS = f"{PREFIX}/experiments"
_EXPERIMENT = f"{_EXPERIMENTS}/{{id}}"
_STR = string()
_BOOL = boolean()


def _attach_implicit_layer(request: web.Request, experiment: dict[str, Any]) -> None:
    proj = project(request)
    layer_id = implicit_layer_id(experiment["id"])
    layer = build_layer(
        request,
        layer_id,
        layer_id,
        {"idType": experiment.get("idType"), "teamID": experiment.get("teamID")},
        implicit=True,
    )
    proj.store("layers")[layer_id] = layer
    proj.snapshot_version("layers", layer)
    experiment["layerID"] = layer_id


def _drop_implicit_layer(proj: Project, experiment: dict[str, Any]) -> None:
    layer_id = experiment.get("layerID")
    layer = proj.store("layers").get(str(layer_id))
    if layer is not None and layer.get("isImplicitLayer"):
        del proj.store("layers")[layer["id"]]
        proj.overrides.setdefault("layers", {}).pop(layer["id"], None)
        for holdout in proj.store("holdouts").values():
            if layer["id"] in holdout.get("layerIDs", []):
                holdout["layerIDs"].remove(layer["id"])


def _new_experiment(
    request: web.Request,
    body: dict[str, Any],
    exp_id: str,
    name: str,
    fields: dict[str, Any],
    groups: list[dict[str, Any]],
    layer_id: str | None,
) -> dict[str, Any]:
    """Build, store and version a new experiment in ``setup`` (plus its implicit layer)."""
    proj = project(request)
    experiment = new_metadata(request, exp_id, name, body)
    experiment.update(
        {
            "hypothesis": "",
            "groups": groups,
            "controlGroupID": groups[0]["id"],
            "allocation": 100,
            "duration": 14,
            "primaryMetrics": [],
            "primaryMetricTags": [],
            "secondaryMetrics": [],
            "secondaryMetricTags": [],
            "targetingGateID": "",
            "defaultConfidenceInterval": "95",
            "bonferroniCorrection": False,
            "status": "setup",
            "launchedGroupID": None,
            "layerID": layer_id,
            "startTime": None,
            "endTime": None,
            "decisionTime": None,
            "decisionReason": None,
            "healthChecks": [],
            "healthCheckStatus": "PASSED",
            "inlineTargetingRulesJSON": "{}",
        }
    )
    experiment.update(fields)
    if experiment["targetingGateID"] is None:
        experiment["targetingGateID"] = ""
    if "controlGroupID" in fields:
        experiment["controlGroupID"] = control_id(fields["controlGroupID"], groups)
    if layer_id is None:
        _attach_implicit_layer(request, experiment)
    proj.store(_KIND)[exp_id] = experiment
    proj.snapshot_version(_KIND, experiment)
    return experiment


def experiment_or_404(request: web.Request) -> dict[str, Any]:
    """The experiment named by the ``{id}`` path parameter, or 404."""
    return get_or_404(request, _KIND, request.match_info["id"], "Experiment")


_STATE_ERRORS = {
    "setup": "Experiment has not yet started",
    "active": "Experiment has already started",
    "decision_made": "Experiment has already finished",
}


def _require_status(experiment: dict[str, Any], *allowed: str) -> None:
    """400 with the service's message unless the experiment's status is in ``allowed``."""
    status = str(experiment.get("status"))
    if status in allowed:
        return
    if status == "abandoned":
        api_error(400, f"Experiment {experiment['id']} is already abandoned")
    if status == "archived":
        api_error(400, f"Experiment {experiment['id']} is archived")
    api_error(400, _STATE_ERRORS.get(status, "Experiment has already finished"))


# -- CRUD ---------------------------------------------------------------------------------


def _created_bound(value: str, prop: str, end: bool) -> int:
    try:
        ts = calendar.timegm(time.strptime(value, "%Y-%m-%d"))
    except ValueError:
        field_error(prop, "Expected a date as YYYY-MM-DD")
    return (ts + (86400 if end else 0)) * 1000


async def list_experiments(request: web.Request) -> web.Response:
    """``GET /experiments`` with the spec's filters."""
    query = request.rel_url.query
    items = list(project(request).store(_KIND).values())
    for key in ("layerID", "teamID", "creatorName", "creatorID"):
        if query.get(key):
            items = [e for e in items if e.get(key) == query[key]]
    if id_types := multi_query(request, "idType"):
        items = [e for e in items if e.get("idType") in id_types]
    if statuses := multi_query(request, "status"):
        items = [e for e in items if e.get("status") in statuses]
    if tags := multi_query(request, "tags"):
        items = [e for e in items if set(tags) & set(e.get("tags") or ())]
    if app := query.get("targetAppID"):
        items = [e for e in items if app in (e.get("targetApps") or ())]
    if start := query.get("createdStartDate"):
        lo = _created_bound(start, "createdStartDate", end=False)
        items = [e for e in items if e.get("createdTime", 0) >= lo]
    if end := query.get("createdEndDate"):
        hi = _created_bound(end, "createdEndDate", end=True)
        items = [e for e in items if e.get("createdTime", 0) < hi]
    return ok_page(request, items, "Experiments listed successfully.")


async def create_experiment(request: web.Request) -> web.Response:
    """``POST /experiments`` (201). ``id`` keeps an explicit id; no ``layerID`` → implicit layer."""
    proj = project(request)
    body = require_keys(await read_body(request), ("name",))
    name = check_name(body["name"], pattern=EXPERIMENT_NAME)
    exp_id = (
        check_name(body["id"], "id", pattern=EXPERIMENT_ID)
        if body.get("id") is not None
        else id_from_name(name)
    )
    fields = validate_fields(body, FIELDS)
    groups = (
        check_groups(body["groups"], []) if body.get("groups") is not None else default_groups()
    )
    # Naming its own (not yet existing) implicit layer means "no explicit layer".
    given_layer = body.get("layerID")
    own_implicit = given_layer == implicit_layer_id(exp_id) and given_layer not in proj.store(
        "layers"
    )
    layer_id = None if own_implicit else layer_ref(proj, given_layer)
    check_gate(proj, fields.get("targetingGateID"))
    if name_taken(proj, name, exp_id) or (
        layer_id is None and implicit_layer_id(exp_id) in proj.store("layers")
    ):
        api_error(400, "Name is already in use")
    if "controlGroupID" in fields:
        control_id(fields["controlGroupID"], groups)
    experiment = _new_experiment(request, body, exp_id, name, fields, groups, layer_id)
    record_change(request, _KIND, experiment, "experiment_create", versioned=False)
    return ok(experiment, "Experiment created successfully.", status=201)


async def get_experiment(request: web.Request) -> web.Response:
    """``GET /experiments/{id}`` (the spec's message says "listed")."""
    return ok(experiment_or_404(request), "Experiments listed successfully.")


def _apply_update(
    request: web.Request, experiment: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """Validate ``body`` against ``experiment`` and return the updated copy (not stored)."""
    proj = project(request)
    updated: dict[str, Any] = clone(experiment)
    started = experiment["status"] != "setup"
    fields = validate_fields(body, FIELDS)
    if "status" in body:  # server-owned: checked for type, changed only by lifecycle calls
        string(enum=STATUSES)(body["status"], "status")
    if "name" in body:
        name = check_name(body["name"], pattern=EXPERIMENT_NAME)
        if name_taken(proj, name, experiment["id"], self_id=experiment["id"]):
            api_error(400, "Name is already in use")
        updated["name"] = name
    if body.get("groups") is not None:
        groups = check_groups(body["groups"], experiment.get("groups") or [])
        shape = [(g["id"], float(g["size"])) for g in groups]
        old_shape = [(g["id"], float(g["size"])) for g in experiment.get("groups") or []]
        if started and shape != old_shape:
            api_error(400, "Experiment has already started")
        updated["groups"] = groups
    if "idType" in fields and started and fields["idType"] != experiment.get("idType"):
        api_error(400, "Experiment has already started")
    check_gate(proj, fields.get("targetingGateID"))
    updated.update(fields)
    if updated.get("targetingGateID") is None:
        updated["targetingGateID"] = ""
    if "controlGroupID" in fields:
        updated["controlGroupID"] = control_id(fields["controlGroupID"], updated["groups"])
    elif body.get("groups") is not None:
        control = find_group(updated, experiment.get("controlGroupID"))
        updated["controlGroupID"] = control["id"] if control else updated["groups"][0]["id"]
    current = experiment.get("layerID")
    if "layerID" in body and body["layerID"] != current:  # its own implicit layer passes
        layer_id = layer_ref(proj, body["layerID"])
        if not (layer_id is None and current == implicit_layer_id(experiment["id"])):
            if started:
                api_error(400, "Experiment has already started")
            updated["layerID"] = layer_id
    return updated


async def update_experiment(request: web.Request, *, full: bool) -> web.Response:
    """``POST`` (full: the spec's required fields) or ``PATCH /experiments/{id}`` (given fields)."""
    proj = project(request)
    experiment = experiment_or_404(request)
    body = await read_body(request)
    require_keys(body, FULL_UPDATE_REQUIRED if full else ())
    updated = _apply_update(request, experiment, body)
    before = clone(experiment)
    if updated.get("layerID") != experiment.get("layerID"):
        _drop_implicit_layer(proj, experiment)
        if updated["layerID"] is None:
            _attach_implicit_layer(request, updated)
    experiment.clear()
    experiment.update(updated)
    record_change(request, _KIND, experiment, "experiment_edit", changes=diff(before, updated))
    return ok(experiment, "Experiment updated successfully.")


async def delete_experiment(request: web.Request) -> web.Response:
    """``DELETE /experiments/{id}``: also drops its implicit layer, overrides and references."""
    proj = project(request)
    experiment = experiment_or_404(request)
    _drop_implicit_layer(proj, experiment)
    del proj.store(_KIND)[experiment["id"]]
    proj.overrides.setdefault(_KIND, {}).pop(experiment["id"], None)
    proj.store("pulse_load_history").pop(experiment["id"], None)
    for holdout in proj.store("holdouts").values():
        if experiment["id"] in holdout.get("experimentIDs", []):
            holdout["experimentIDs"].remove(experiment["id"])
    for layer_overrides in proj.overrides.setdefault("layers", {}).values():
        for key in ("conditionalOverrides", "idOverrides"):
            layer_overrides[key] = [
                o
                for o in layer_overrides.get(key, [])
                if o.get("experimentName") not in (experiment["id"], experiment.get("name"))
            ]
    record_change(request, _KIND, experiment, "experiment_delete", versioned=False)
    return ok(experiment, "Experiment deleted successfully.")


# -- lifecycle ------------------------------------------------------------------------------


def _transition(
    request: web.Request,
    experiment: dict[str, Any],
    action: str,
    updates: dict[str, Any],
    changes: dict[str, Any] | None = None,
) -> None:
    before = clone(experiment)
    experiment.update(updates)
    record_change(
        request, _KIND, experiment, action, changes={**diff(before, updates), **(changes or {})}
    )


async def start_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/start``: setup → active."""
    experiment = experiment_or_404(request)
    body = validate_fields(
        await optional_body(request), {"analysisStartTime": _STR, "analysisEndTime": _STR}
    )
    _require_status(experiment, "setup")
    updates: dict[str, Any] = {"status": "active", "startTime": now_ms(request), "endTime": None}
    if "analysisEndTime" in body:
        updates["analysisEndTime"] = body["analysisEndTime"]
    experiment.pop("scheduledStartTime", None)
    _transition(request, experiment, "experiment_start", updates)
    return ok(message="Experiment successfully started.", with_data=False)


async def schedule_start(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/schedule_start``: remember ``scheduledTime`` (setup only)."""
    experiment = experiment_or_404(request)
    body = validate_fields(
        await read_body(request), {"scheduledTime": number()}, required=("scheduledTime",)
    )
    _require_status(experiment, "setup")
    if body["scheduledTime"] <= now_ms(request):
        field_error("scheduledTime", "scheduledTime must be in the future")
    _transition(
        request,
        experiment,
        "schedule_experiment_start",
        {"scheduledStartTime": body["scheduledTime"]},
    )
    return ok(message="Successfully scheduled experiment start", with_data=False)


async def finish_experiment(ship: bool, request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/make_decision`` ("finish early": ship group ``id``) or
    ``PUT …/abandon`` (no group ships): active → decision_made or abandoned."""
    experiment = experiment_or_404(request)
    fields = {"decisionReason": _STR, "removeTargeting": _BOOL}
    body = validate_fields(
        await read_body(request),
        {"id": _STR, **fields} if ship else fields,
        required=("id", "decisionReason") if ship else ("decisionReason",),
    )
    _require_status(experiment, "active")
    launched = None
    if ship:
        group = find_group(experiment, body["id"])
        if group is None:
            field_error("id", f"Group {body['id']} is not a group of experiment {experiment['id']}")
        launched = group["id"]
    ts = now_ms(request)
    updates: dict[str, Any] = {
        "status": "decision_made" if ship else "abandoned",
        "launchedGroupID": launched,
        "decisionReason": body["decisionReason"],
        "decisionTime": ts,
        "endTime": ts,
    }
    if body.get("removeTargeting"):
        updates["targetingGateID"] = ""
    if ship:
        _transition(request, experiment, "experiment_decision_make", updates)
        return ok(message="Decision made for Experiment.", with_data=False)
    _transition(request, experiment, "experiment_abandon", updates)
    return ok(message="Experiment successfully abandoned.", with_data=False)


async def reset_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/reset``: restart a started experiment with a fresh start time."""
    experiment = experiment_or_404(request)
    _require_status(experiment, "active", "decision_made", "abandoned")
    updates = {
        "status": "active",
        "startTime": now_ms(request),
        "endTime": None,
        "decisionTime": None,
        "decisionReason": None,
        "launchedGroupID": None,
    }
    _transition(request, experiment, "experiment_restart", updates)
    return ok(message="Experiment successfully restarted.", with_data=False)


_NOT_COPIED = frozenset(
    {
        "id",
        "name",
        "groups",
        "layerID",
        "controlGroupID",
        "status",
        "launchedGroupID",
        "startTime",
        "endTime",
        "decisionTime",
        "decisionReason",
        "scheduledStartTime",
        "holdoutIDs",
        "version",
        "creatorID",
        "creatorEmail",
    }
)


async def restart_as_new(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/restart_as_new``: a fresh copy named ``name``; a running original is abandoned."""
    proj = project(request)
    source = experiment_or_404(request)
    body = require_keys(await read_body(request), ("name",))
    name = check_name(body["name"], pattern=EXPERIMENT_NAME)
    new_id = id_from_name(name)
    if source["status"] == "archived":
        api_error(400, f"Experiment {source['id']} is archived")
    layer = proj.store("layers").get(str(source.get("layerID")))
    layer_id = None if layer is None or layer.get("isImplicitLayer") else layer["id"]
    if name_taken(proj, name, new_id) or (
        layer_id is None and implicit_layer_id(new_id) in proj.store("layers")
    ):
        api_error(400, "Name is already in use")
    fields = {k: clone(v) for k, v in source.items() if k in FIELDS and k not in _NOT_COPIED}
    groups = [{**clone(g), "id": new_base_id()} for g in source.get("groups") or []]
    control = find_group(source, source.get("controlGroupID"))
    meta = {k: source.get(k) for k in ("tags", "targetApps", "team", "teamID", "idType")}
    created = _new_experiment(request, meta, new_id, name, fields, groups, layer_id)
    if control is not None:
        created["controlGroupID"] = next(g["id"] for g in groups if g["name"] == control["name"])
    if source["status"] == "active":
        ts = now_ms(request)
        _transition(
            request,
            source,
            "experiment_abandon",
            {
                "status": "abandoned",
                "decisionReason": f"Restarted as new experiment {new_id}",
                "decisionTime": ts,
                "endTime": ts,
            },
        )
    record_change(
        request,
        _KIND,
        created,
        "experiment_restart_as_new",
        versioned=False,
        changes={"restartedFrom": source["id"]},
    )
    return ok(created, "Restart As New Experiment Success")


async def archive_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/archive``: not while running; repeating it changes nothing."""
    experiment = experiment_or_404(request)
    body = validate_fields(await optional_body(request), {"archiveReason": _STR})
    if experiment["status"] == "active":
        api_error(400, "Experiment has not yet finished")
    if experiment["status"] != "archived":
        _transition(
            request,
            experiment,
            "archive_experiment",
            {"status": "archived"},
            {"archiveReason": body.get("archiveReason")},
        )
    return ok(message="Experiment successfully archived.", with_data=False)


def _status_from_times(experiment: dict[str, Any]) -> str:
    if experiment.get("decisionTime") is not None:
        return "decision_made" if experiment.get("launchedGroupID") else "abandoned"
    return "setup" if experiment.get("startTime") is None else "active"


async def unarchive_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/unarchive``: back to the status its timestamps imply."""
    experiment = experiment_or_404(request)
    if experiment["status"] == "archived":
        status = _status_from_times(experiment)
        _transition(request, experiment, "unarchive_experiment", {"status": status})
    return ok(message="Experiment successfully unarchived.", with_data=False)


async def set_groups_disabled(disabled: bool, request: web.Request) -> web.Response:
    """``POST /experiments/{id}/enable_groups`` or ``…/disable_groups`` (201) ``{group_names}``."""
    experiment = experiment_or_404(request)
    body = validate_fields(
        await read_body(request), {"group_names": string_list()}, required=("group_names",)
    )
    if experiment["status"] in ("decision_made", "abandoned"):
        api_error(400, "Experiment has finished")
    _require_status(experiment, "setup", "active")
    groups = clone(experiment["groups"])
    for i, ref in enumerate(body["group_names"]):
        group = next((g for g in groups if ref in (g["name"], g["id"])), None)
        if group is None:
            field_error(f"group_names[{i}]", f"Group {ref} is not a group of this experiment")
        group["disabled"] = disabled
    if groups != experiment["groups"]:
        action = "experiment_group_disable" if disabled else "experiment_edit"
        _transition(request, experiment, action, {"groups": groups})
    verb = "disabled" if disabled else "enabled"
    return ok(experiment, f"Experiment groups {verb} successfully.", status=201)


routes = [
    web.get(_EXPERIMENTS, list_experiments),
    web.post(_EXPERIMENTS, create_experiment),
    web.get(_EXPERIMENT, get_experiment),
    web.post(_EXPERIMENT, partial(update_experiment, full=True)),
    web.patch(_EXPERIMENT, partial(update_experiment, full=False)),
    web.delete(_EXPERIMENT, delete_experiment),
    web.put(f"{_EXPERIMENT}/start", start_experiment),
    web.post(f"{_EXPERIMENT}/schedule_start", schedule_start),
    web.put(f"{_EXPERIMENT}/make_decision", partial(finish_experiment, True)),
    web.put(f"{_EXPERIMENT}/abandon", partial(finish_experiment, False)),
    web.put(f"{_EXPERIMENT}/reset", reset_experiment),
    web.post(f"{_EXPERIMENT}/restart_as_new", restart_as_new),
    web.put(f"{_EXPERIMENT}/archive", archive_experiment),
    web.put(f"{_EXPERIMENT}/unarchive", unarchive_experiment),
    web.post(f"{_EXPERIMENT}/enable_groups", partial(set_groups_disabled, False)),
    web.post(f"{_EXPERIMENT}/disable_groups", partial(set_groups_disabled, True)),
]
"""The experiment lifecycle routes (overrides: :mod:`.overrides`; analytics: :mod:`.pulse`;
warehouse-native sources: :mod:`.warehouse`)."""
