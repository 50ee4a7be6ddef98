"""Emulator handlers: experiments (``/experiments/**``) and the warehouse-native sources.

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
DELETE removes the listed entries and ids (everything when there is no body).

Analytics endpoints (pulse, cumulative exposures) answer deterministic numbers derived
from the experiment's ids, so tests and demos see stable data. The validators and
helpers at the top are shared with the layers and holdouts handlers.
"""

from __future__ import annotations

import calendar
import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from aiohttp import web

from ..common import check_name, field_error, get_or_404, id_from_name, new_metadata
from ..http import (
    GENERIC_400,
    PREFIX,
    api_error,
    clone,
    mark_applied,
    now_ms,
    ok,
    ok_page,
    project,
    read_body,
    record_change,
)
from ..state import Project, new_base_id

__all__ = [
    "Check",
    "boolean",
    "build_layer",
    "check_environment",
    "check_gate",
    "confidence_query",
    "date_of",
    "experiments_in_layer",
    "find_group",
    "implicit_layer_id",
    "json_type",
    "metric_result",
    "multi_query",
    "number",
    "object_list",
    "query_flag",
    "reject_unknown",
    "require_keys",
    "routes",
    "stable_fraction",
    "string",
    "string_list",
    "target_apps",
    "validate_fields",
]

routes = web.RouteTableDef()

_KIND = "experiments"
EXPERIMENT_NAME = re.compile(r"^[a-zA-Z0-9_\- ]*$")
EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9_-]*$")
STATUSES = (
    "active",
    "setup",
    "decision_made",
    "abandoned",
    "archived",
    "experiment_stopped",
    "assignment_stopped",
)
MAX_OVERRIDES = 1000
MAX_OVERRIDE_IDS = 1000

# -- shared validators (zod-style 400s naming the property) ------------------------

Check = Callable[[Any, str], Any]


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (for "Expected X, received Y" messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _expected(prop: str, expected: str, value: Any) -> NoReturn:
    field_error(prop, f"Expected {expected}, received {json_type(value)}")


def string(
    *, max_len: int | None = None, nullable: bool = False, enum: Iterable[str] | None = None
) -> Check:
    """A string check (optionally bounded, nullable, or one of ``enum``)."""
    allowed = tuple(enum) if enum is not None else None

    def check(value: Any, prop: str) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            _expected(prop, "string", value)
        if max_len is not None and len(value) > max_len:
            field_error(prop, f"{prop} must be at most {max_len} characters")
        if allowed is not None and value not in allowed:
            choices = " | ".join(f"'{a}'" for a in allowed)
            field_error(prop, f"Invalid enum value. Expected {choices}, received '{value}'")
        return value

    return check


def boolean(*, nullable: bool = False) -> Check:
    """A boolean check."""

    def check(value: Any, prop: str) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, bool):
            _expected(prop, "boolean", value)
        return value

    return check


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    integer: bool = False,
    above: float | None = None,
    nullable: bool = False,
) -> Check:
    """A number check: ``lo <= value <= hi``, ``value > above``, optionally an integer."""

    def check(value: Any, prop: str) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            _expected(prop, "number", value)
        if not math.isfinite(value):
            field_error(prop, f"{prop} must be a finite number")
        if integer and value != int(value):
            field_error(prop, f"{prop} must be an integer")
        if lo is not None and value < lo:
            field_error(prop, f"{prop} must be greater than or equal to {lo:g}")
        if hi is not None and value > hi:
            field_error(prop, f"{prop} must be less than or equal to {hi:g}")
        if above is not None and value <= above:
            field_error(prop, f"{prop} must be greater than {above:g}")
        return int(value) if integer else value

    return check


def string_list(*, max_items: int | None = None, non_empty_items: bool = False) -> Check:
    """An array of strings."""

    def check(value: Any, prop: str) -> Any:
        if not isinstance(value, list):
            _expected(prop, "array", value)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                _expected(f"{prop}[{i}]", "string", item)
            if non_empty_items and not item:
                field_error(f"{prop}[{i}]", "String must contain at least 1 character(s)")
        if max_items is not None and len(value) > max_items:
            field_error(prop, f"Array must contain at most {max_items} element(s)")
        return list(value)

    return check


def target_apps(value: Any, prop: str) -> Any:
    """``targetApps``: a string or an array of strings (stored as an array)."""
    if isinstance(value, str):
        return [value]
    return string_list()(value, prop)


def _object(*, nullable: bool = False) -> Check:
    def check(value: Any, prop: str) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, dict):
            _expected(prop, "object", value)
        return value

    return check


def object_list(fields: dict[str, Check], required: Iterable[str] = ()) -> Check:
    """An array of objects whose listed ``fields`` are checked (unknown keys are kept)."""
    needed = tuple(required)

    def check(value: Any, prop: str) -> Any:
        if not isinstance(value, list):
            _expected(prop, "array", value)
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                _expected(f"{prop}[{i}]", "object", item)
            checked = validate_fields(item, fields, required=needed, prefix=f"{prop}[{i}].")
            out.append({**item, **checked})
        return out

    return check


def require_keys(body: Any, names: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """Check ``body`` is an object that has every key in ``names`` (null counts as given)."""
    if not isinstance(body, dict):
        api_error(
            400, GENERIC_400, [{"property": "body", "errorMessage": "Expected a JSON object"}]
        )
    for name in names:
        if name not in body:
            field_error(f"{prefix}{name}", "Required")
    return body


def reject_unknown(body: dict[str, Any], allowed: Iterable[str]) -> None:
    """400 (zod's strict-object message) if ``body`` has keys outside ``allowed``."""
    extra = [k for k in body if k not in set(allowed)]
    if extra:
        keys = ", ".join(f"'{k}'" for k in extra)
        field_error("body", f"Unrecognized key(s) in object: {keys}")


def validate_fields(
    body: Any, table: dict[str, Check], *, required: Iterable[str] = (), prefix: str = ""
) -> dict[str, Any]:
    """Check the keys of ``body`` that ``table`` knows; return those (unknown keys are dropped)."""
    require_keys(body, required, prefix)
    return {key: check(body[key], f"{prefix}{key}") for key, check in table.items() if key in body}


def multi_query(request: web.Request, name: str) -> list[str]:
    """Every value of a repeatable query parameter (``?tags=a&tags=b``)."""
    return [v for v in request.rel_url.query.getall(name, []) if v != ""]


def check_gate(proj: Project, value: Any, prop: str = "targetingGateID") -> str | None:
    """A targeting gate id: null or ``""`` for none, else an existing gate's id."""
    if value is None:
        return None
    gate_id = string()(value, prop)
    if gate_id and gate_id not in proj.store("gates"):
        field_error(prop, f"Gate {gate_id} not found.")
    return str(gate_id)


def check_environment(proj: Project, value: Any, prop: str) -> str | None:
    """An environment name of the project, or null (all environments)."""
    env = string(nullable=True)(value, prop)
    if env is None:
        return None
    if env not in {e.get("name") for e in proj.environments}:
        field_error(prop, f"Unknown environment: {env}")
    return str(env)


def stable_fraction(*parts: object) -> float:
    """A deterministic number in [0, 1) derived from ``parts`` (stable across runs)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def date_of(ms: float) -> str:
    """``YYYY-MM-DD`` (UTC) of a millisecond timestamp."""
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


_Z = {"80": 1.2816, "90": 1.6449, "95": 1.96, "98": 2.3263, "99": 2.5758}


def metric_result(
    metric: dict[str, Any], *seed: object, confidence: str = "95", cuped: bool = True
) -> dict[str, Any]:
    """A deterministic pulse row for ``metric`` (``{name, type, direction?}``)."""
    metric_id = f"{metric.get('name')}::{metric.get('type')}"
    f = [stable_fraction(metric_id, *seed, i) for i in range(5)]
    control_mean = round(1 + 99 * f[0], 4)
    lift = (f[1] - 0.5) * 0.1
    test_mean = round(control_mean * (1 + lift), 4)
    control_units = 1000 + int(9000 * f[2])
    test_units = 1000 + int(9000 * f[3])
    std = control_mean * (0.2 + 0.3 * f[4]) * (0.8 if cuped else 1.0)
    stderr = std * math.sqrt(1 / control_units + 1 / test_units)
    delta = test_mean - control_mean
    ci = _Z.get(confidence, 1.96) * stderr
    z = abs(delta) / stderr if stderr else 0.0
    return {
        "metricID": metric_id,
        "metricName": str(metric.get("name")),
        "directionality": "decrease" if metric.get("direction") == "decrease" else "increase",
        "absoluteChange": round(delta, 6),
        "confidenceIntervalDelta": round(ci, 6),
        "percentChange": round(100 * delta / control_mean, 6),
        "percentConfidenceIntervalDelta": round(100 * ci / control_mean, 6),
        "testMean": test_mean,
        "controlMean": control_mean,
        "testStd": round(std / math.sqrt(test_units), 6),
        "controlStd": round(std / math.sqrt(control_units), 6),
        "testUnits": test_units,
        "controlUnits": control_units,
        "pValue": round(math.erfc(z / math.sqrt(2)), 6),
    }


# -- experiment helpers used by the layers and holdouts handlers ----------------------


def implicit_layer_id(experiment_id: str) -> str:
    """The id of the layer the service creates for an experiment without one."""
    return f"statsig::{experiment_id}_layer"


def experiments_in_layer(proj: Project, layer_id: str) -> list[dict[str, Any]]:
    """The experiments whose ``layerID`` is ``layer_id``."""
    return [e for e in proj.store(_KIND).values() if e.get("layerID") == layer_id]


def find_group(experiment: dict[str, Any], ref: Any) -> dict[str, Any] | None:
    """The group of ``experiment`` whose id or name is ``ref``."""
    for group in experiment.get("groups") or ():
        if ref is not None and ref in (group.get("id"), group.get("name")):
            return dict(group)
    return None


def build_layer(
    request: web.Request, layer_id: str, name: str, body: dict[str, Any], *, implicit: bool
) -> dict[str, Any]:
    """A new layer object (version 1, no parameters), not yet stored."""
    layer = new_metadata(request, layer_id, name, body)
    layer["isImplicitLayer"] = implicit
    layer["parameters"] = []
    return layer


# -- experiment bodies -----------------------------------------------------------------

_METRIC: dict[str, Check] = {
    "name": string(),
    "type": string(),
    "direction": string(enum=("increase", "decrease")),
    "hypothesizedValue": number(),
}
_METRICS = object_list(_METRIC, required=("name", "type"))
_STR = string()
_NSTR = string(nullable=True)
_BOOL = boolean()
_LONG = number(integer=True, above=1)

# Every writable field of ExperimentCreateDto / …UpdateDto except name, id, groups and
# layerID (handled on their own) and the server-owned status / launchedGroupID.
_FIELDS: dict[str, Check] = {
    "description": string(max_len=1000),
    "idType": _STR,
    "secondaryIDType": _NSTR,
    "identifierMappingMode": string(
        enum=("strictOneToOne", "firstTouchOneToMany", "lastTouchOneToMany")
    ),
    "identityResolutionSource": _NSTR,
    "hypothesis": _STR,
    "links": object_list({"url": _STR, "title": _STR}, required=("url",)),
    "controlGroupID": _STR,
    "allocation": number(0, 100),
    "primaryMetricTags": string_list(),
    "secondaryMetricTags": string_list(),
    "primaryMetrics": _METRICS,
    "secondaryMetrics": _METRICS,
    "otherMetrics": _METRICS,
    "targetApps": target_apps,
    "tags": string_list(),
    "duration": _LONG,
    "targetExposures": _LONG,
    "targetingGateID": _NSTR,
    "sequentialTesting": _BOOL,
    "bonferroniCorrection": _BOOL,
    "bonferroniCorrectionPerMetric": _BOOL,
    "benjaminiHochbergPerVariant": _BOOL,
    "benjaminiHochbergPerMetric": _BOOL,
    "benjaminiPrimaryMetricsOnly": _BOOL,
    "defaultConfidenceInterval": string(enum=("80", "90", "95", "98", "99")),
    "manualQualityScores": object_list(
        {
            "criteriaName": _STR,
            "status": string(enum=("PASSED", "FAILED", "WARNING")),
            "criteriaDescription": _STR,
            "score": number(),
            "weight": number(),
        },
        required=("criteriaName", "status", "criteriaDescription", "score", "weight"),
    ),
    "assignmentSourceName": _STR,
    "assignmentSourceExperimentName": _STR,
    "creatorID": _NSTR,
    "creatorEmail": _NSTR,
    "isAnalysisOnly": boolean(nullable=True),
    "team": _NSTR,
    "teamID": _NSTR,
    "allocationDuration": number(integer=True, above=1, nullable=True),
    "cohortedAnalysisDuration": _LONG,
    "cohortedMetricsMatureAfterEnd": _BOOL,
    "cohortWaitUntilEndToInclude": _BOOL,
    "fixedAnalysisDuration": _LONG,
    "scheduledReloadHour": number(0, 23, integer=True, nullable=True),
    "scheduledReloadType": string(enum=("full", "incremental")),
    "analysisEndTime": _STR,
    "assignmentSourceFilters": object_list({"column": _STR}, required=("condition",)),
    "analyticsType": string(enum=("frequentist", "bayesian", "sprt")),
    "isSidecar": _BOOL,
    "decisionReason": _STR,
    "stratifiedSampling": _object(nullable=True),
}
_FULL_UPDATE_REQUIRED = (
    "description",
    "idType",
    "hypothesis",
    "groups",
    "allocation",
    "targetingGateID",
    "bonferroniCorrection",
    "defaultConfidenceInterval",
    "status",
)
_GROUP_FIELDS: dict[str, Check] = {
    "name": string(),
    "id": _NSTR,
    "size": number(0, 100),
    "parameterValues": _object(),
    "disabled": _BOOL,
    "description": _STR,
    "foreignGroupID": _STR,
}


def _groups(raw: Any, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate a group list; groups matched by id or name keep their ids."""
    if not isinstance(raw, list):
        _expected("groups", "array", raw)
    if not raw:
        field_error("groups", "An experiment needs at least one group")
    by_ref = {g["id"]: g for g in existing} | {g["name"]: g for g in existing}
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    used: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            _expected(f"groups[{i}]", "object", item)
        given = validate_fields(
            item,
            _GROUP_FIELDS,
            required=("name", "size", "parameterValues"),
            prefix=f"groups[{i}].",
        )
        name = given["name"]
        if name in names:
            api_error(
                400,
                "Duplicate group name(s) given",
                [{"property": "groups", "errorMessage": f"Duplicate group name: {name}"}],
            )
        names.add(name)
        prev = by_ref.get(given.get("id") or "") or by_ref.get(name) or {}
        if prev.get("id") in used:
            prev = {}
        group = {**prev, **given}
        group["id"] = prev.get("id") or new_base_id()
        used.add(group["id"])
        group.setdefault("description", "")
        group.setdefault("disabled", False)
        out.append(group)
    total = sum(float(g["size"]) for g in out)
    if abs(total - 100) > 1e-6:
        api_error(
            400,
            "Group sizes must add up to 100",
            [{"property": "groups", "errorMessage": f"Group sizes add up to {total:g}"}],
        )
    return out


def _default_groups() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "id": new_base_id(),
            "size": 50,
            "parameterValues": {},
            "description": "",
            "disabled": False,
        }
        for name in ("Control", "Test")
    ]


def _control_id(value: Any, groups: list[dict[str, Any]]) -> str:
    group = find_group({"groups": groups}, value)
    if group is None:
        field_error("controlGroupID", f"Group {value} is not a group of this experiment")
    return str(group["id"])


def _layer_ref(proj: Project, value: Any) -> str | None:
    """A given ``layerID``: null/"" for the implicit layer, else an existing explicit layer."""
    if value is None or value == "":
        return None
    layer_id = str(string()(value, "layerID"))
    layer = proj.store("layers").get(layer_id)
    if layer is None:
        field_error("layerID", f"Layer {layer_id} not found.")
    if layer.get("isImplicitLayer"):
        field_error("layerID", f"Layer {layer_id} is the implicit layer of another experiment")
    return layer_id


def _name_taken(proj: Project, name: str, exp_id: str, *, self_id: str | None = None) -> bool:
    for other in proj.store(_KIND).values():
        if other["id"] == self_id:
            continue
        if other["id"] == exp_id or other.get("name") == name:
            return True
    return False


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {"old": before.get(k), "new": v}
        for k, v in after.items()
        if before.get(k) != v and k not in ("version", "lastModifiedTime")
    }


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
        experiment["controlGroupID"] = _control_id(fields["controlGroupID"], groups)
    if layer_id is None:
        _attach_implicit_layer(request, experiment)
    proj.store(_KIND)[exp_id] = experiment
    proj.snapshot_version(_KIND, experiment)
    return experiment


def _experiment(request: web.Request) -> dict[str, Any]:
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


@routes.get(f"{PREFIX}/experiments")
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


@routes.post(f"{PREFIX}/experiments")
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
    fields = validate_fields(body, _FIELDS)
    groups = _groups(body["groups"], []) if body.get("groups") is not None else _default_groups()
    # Naming its own (not yet existing) implicit layer means "no explicit layer".
    given_layer = body.get("layerID")
    own_implicit = given_layer == implicit_layer_id(exp_id) and given_layer not in proj.store(
        "layers"
    )
    layer_id = None if own_implicit else _layer_ref(proj, given_layer)
    check_gate(proj, fields.get("targetingGateID"))
    if _name_taken(proj, name, exp_id) or (
        layer_id is None and implicit_layer_id(exp_id) in proj.store("layers")
    ):
        api_error(400, "Name is already in use")
    if "controlGroupID" in fields:
        _control_id(fields["controlGroupID"], groups)
    experiment = _new_experiment(request, body, exp_id, name, fields, groups, layer_id)
    record_change(request, _KIND, experiment, "experiment_create", versioned=False)
    return ok(experiment, "Experiment created successfully.", status=201)


@routes.get(f"{PREFIX}/experiments/{{id}}")
async def get_experiment(request: web.Request) -> web.Response:
    """``GET /experiments/{id}`` (the spec's message says "listed")."""
    return ok(_experiment(request), "Experiments listed successfully.")


def _apply_update(
    request: web.Request, experiment: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """Validate ``body`` against ``experiment`` and return the updated copy (not stored)."""
    proj = project(request)
    updated: dict[str, Any] = clone(experiment)
    started = experiment["status"] != "setup"
    fields = validate_fields(body, _FIELDS)
    if "status" in body:  # server-owned: checked for type, changed only by lifecycle calls
        string(enum=STATUSES)(body["status"], "status")
    if "name" in body:
        name = check_name(body["name"], pattern=EXPERIMENT_NAME)
        if _name_taken(proj, name, experiment["id"], self_id=experiment["id"]):
            api_error(400, "Name is already in use")
        updated["name"] = name
    if body.get("groups") is not None:
        groups = _groups(body["groups"], experiment.get("groups") or [])
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
        updated["controlGroupID"] = _control_id(fields["controlGroupID"], updated["groups"])
    elif body.get("groups") is not None:
        control = find_group(updated, experiment.get("controlGroupID"))
        updated["controlGroupID"] = control["id"] if control else updated["groups"][0]["id"]
    current = experiment.get("layerID")
    if "layerID" in body and body["layerID"] != current:  # its own implicit layer passes
        layer_id = _layer_ref(proj, body["layerID"])
        if not (layer_id is None and current == implicit_layer_id(experiment["id"])):
            if started:
                api_error(400, "Experiment has already started")
            updated["layerID"] = layer_id
    return updated


async def _update(request: web.Request, *, full: bool) -> web.Response:
    proj = project(request)
    experiment = _experiment(request)
    body = await read_body(request)
    require_keys(body, _FULL_UPDATE_REQUIRED if full else ())
    updated = _apply_update(request, experiment, body)
    before = clone(experiment)
    if updated.get("layerID") != experiment.get("layerID"):
        _drop_implicit_layer(proj, experiment)
        if updated["layerID"] is None:
            _attach_implicit_layer(request, updated)
    experiment.clear()
    experiment.update(updated)
    record_change(request, _KIND, experiment, "experiment_edit", changes=_changes(before, updated))
    return ok(experiment, "Experiment updated successfully.")


@routes.post(f"{PREFIX}/experiments/{{id}}")
async def update_experiment(request: web.Request) -> web.Response:
    """``POST /experiments/{id}``: full update (the spec's required fields must be given)."""
    return await _update(request, full=True)


@routes.patch(f"{PREFIX}/experiments/{{id}}")
async def patch_experiment(request: web.Request) -> web.Response:
    """``PATCH /experiments/{id}``: only the given fields change."""
    return await _update(request, full=False)


@routes.delete(f"{PREFIX}/experiments/{{id}}")
async def delete_experiment(request: web.Request) -> web.Response:
    """``DELETE /experiments/{id}``: also drops its implicit layer, overrides and references."""
    proj = project(request)
    experiment = _experiment(request)
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


async def _optional_body(request: web.Request) -> dict[str, Any]:
    body = await read_body(request, required=False)
    if body is None:
        return {}
    return require_keys(body, ())


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
        request, _KIND, experiment, action, changes={**_changes(before, updates), **(changes or {})}
    )


@routes.put(f"{PREFIX}/experiments/{{id}}/start")
async def start_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/start``: setup → active."""
    experiment = _experiment(request)
    body = validate_fields(
        await _optional_body(request), {"analysisStartTime": _STR, "analysisEndTime": _STR}
    )
    _require_status(experiment, "setup")
    updates: dict[str, Any] = {"status": "active", "startTime": now_ms(request), "endTime": None}
    if "analysisEndTime" in body:
        updates["analysisEndTime"] = body["analysisEndTime"]
    experiment.pop("scheduledStartTime", None)
    _transition(request, experiment, "experiment_start", updates)
    return ok(message="Experiment successfully started.", with_data=False)


@routes.post(f"{PREFIX}/experiments/{{id}}/schedule_start")
async def schedule_start(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/schedule_start``: remember ``scheduledTime`` (setup only)."""
    experiment = _experiment(request)
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


@routes.put(f"{PREFIX}/experiments/{{id}}/make_decision")
async def make_decision(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/make_decision`` ("finish early"): ship group ``id``."""
    experiment = _experiment(request)
    body = validate_fields(
        await read_body(request),
        {"id": _STR, "decisionReason": _STR, "removeTargeting": _BOOL},
        required=("id", "decisionReason"),
    )
    _require_status(experiment, "active")
    group = find_group(experiment, body["id"])
    if group is None:
        field_error("id", f"Group {body['id']} is not a group of experiment {experiment['id']}")
    ts = now_ms(request)
    updates: dict[str, Any] = {
        "status": "decision_made",
        "launchedGroupID": group["id"],
        "decisionReason": body["decisionReason"],
        "decisionTime": ts,
        "endTime": ts,
    }
    if body.get("removeTargeting"):
        updates["targetingGateID"] = ""
    _transition(request, experiment, "experiment_decision_make", updates)
    return ok(message="Decision made for Experiment.", with_data=False)


@routes.put(f"{PREFIX}/experiments/{{id}}/abandon")
async def abandon_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/abandon``: active → abandoned (no group ships)."""
    experiment = _experiment(request)
    body = validate_fields(
        await read_body(request),
        {"decisionReason": _STR, "removeTargeting": _BOOL},
        required=("decisionReason",),
    )
    _require_status(experiment, "active")
    ts = now_ms(request)
    updates: dict[str, Any] = {
        "status": "abandoned",
        "launchedGroupID": None,
        "decisionReason": body["decisionReason"],
        "decisionTime": ts,
        "endTime": ts,
    }
    if body.get("removeTargeting"):
        updates["targetingGateID"] = ""
    _transition(request, experiment, "experiment_abandon", updates)
    return ok(message="Experiment successfully abandoned.", with_data=False)


@routes.put(f"{PREFIX}/experiments/{{id}}/reset")
async def reset_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/reset``: restart a started experiment with a fresh start time."""
    experiment = _experiment(request)
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


@routes.post(f"{PREFIX}/experiments/{{id}}/restart_as_new")
async def restart_as_new(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/restart_as_new``: a fresh copy named ``name``; a running original is abandoned."""
    proj = project(request)
    source = _experiment(request)
    body = require_keys(await read_body(request), ("name",))
    name = check_name(body["name"], pattern=EXPERIMENT_NAME)
    new_id = id_from_name(name)
    if source["status"] == "archived":
        api_error(400, f"Experiment {source['id']} is archived")
    layer = proj.store("layers").get(str(source.get("layerID")))
    layer_id = None if layer is None or layer.get("isImplicitLayer") else layer["id"]
    if _name_taken(proj, name, new_id) or (
        layer_id is None and implicit_layer_id(new_id) in proj.store("layers")
    ):
        api_error(400, "Name is already in use")
    fields = {k: clone(v) for k, v in source.items() if k in _FIELDS and k not in _NOT_COPIED}
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


@routes.put(f"{PREFIX}/experiments/{{id}}/archive")
async def archive_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/archive``: not while running; repeating it changes nothing."""
    experiment = _experiment(request)
    body = validate_fields(await _optional_body(request), {"archiveReason": _STR})
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


@routes.put(f"{PREFIX}/experiments/{{id}}/unarchive")
async def unarchive_experiment(request: web.Request) -> web.Response:
    """``PUT /experiments/{id}/unarchive``: back to the status its timestamps imply."""
    experiment = _experiment(request)
    if experiment["status"] == "archived":
        status = _status_from_times(experiment)
        _transition(request, experiment, "unarchive_experiment", {"status": status})
    return ok(message="Experiment successfully unarchived.", with_data=False)


async def _set_groups_disabled(request: web.Request, disabled: bool) -> web.Response:
    experiment = _experiment(request)
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


@routes.post(f"{PREFIX}/experiments/{{id}}/enable_groups")
async def enable_groups(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/enable_groups`` (201) ``{group_names}``."""
    return await _set_groups_disabled(request, False)


@routes.post(f"{PREFIX}/experiments/{{id}}/disable_groups")
async def disable_groups(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/disable_groups`` (201) ``{group_names}``."""
    return await _set_groups_disabled(request, True)


# -- overrides ---------------------------------------------------------------------------------


def _empty_overrides() -> dict[str, Any]:
    return {"overrides": [], "userIDOverrides": []}


def _stored_overrides(proj: Project, exp_id: str) -> dict[str, Any]:
    return proj.overrides.setdefault(_KIND, {}).get(exp_id) or _empty_overrides()


def _parse_overrides(
    request: web.Request, experiment: dict[str, Any], body: Any, *, required: bool
) -> dict[str, Any]:
    """Validate an ``ExperimentOverridesDto`` body against the experiment and the project.

    ``required`` (POST, PATCH): both arrays must be given and every referenced gate,
    segment and group must exist. A DELETE body may name objects that are gone.
    """
    proj = project(request)
    body = require_keys(body, ("overrides", "userIDOverrides") if required else ())
    entries = body.get("overrides") or []
    id_entries = body.get("userIDOverrides") or []
    if not isinstance(entries, list):
        _expected("overrides", "array", entries)
    if not isinstance(id_entries, list):
        _expected("userIDOverrides", "array", id_entries)
    if len(entries) > MAX_OVERRIDES:
        field_error("overrides", f"Array must contain at most {MAX_OVERRIDES} element(s)")
    out: dict[str, Any] = _empty_overrides()
    for i, raw in enumerate(entries):
        prop = f"overrides[{i}]"
        if not isinstance(raw, dict):
            _expected(prop, "object", raw)
        entry = validate_fields(
            raw,
            {"type": string(enum=("gate", "segment")), "id": _STR, "groupID": _STR},
            required=("type", "id", "groupID"),
            prefix=f"{prop}.",
        )
        entry["environment"] = check_environment(
            proj, raw.get("environment"), f"{prop}.environment"
        )
        kind = "gates" if entry["type"] == "gate" else "segments"
        if required and entry["id"] not in proj.store(kind):
            label = "Gate" if kind == "gates" else "Segment"
            field_error(f"{prop}.id", f"{label} {entry['id']} not found.")
        if required:
            _check_group(experiment, entry["groupID"], f"{prop}.groupID")
        out["overrides"].append(entry)
    for i, raw in enumerate(id_entries):
        prop = f"userIDOverrides[{i}]"
        if not isinstance(raw, dict):
            _expected(prop, "object", raw)
        entry = validate_fields(
            raw,
            {
                "groupID": _STR,
                "ids": string_list(max_items=MAX_OVERRIDE_IDS, non_empty_items=True),
                "unitType": _NSTR,
            },
            required=("groupID", "ids"),
            prefix=f"{prop}.",
        )
        entry["environment"] = check_environment(
            proj, raw.get("environment"), f"{prop}.environment"
        )
        entry.setdefault("unitType", None)
        if required:
            _check_group(experiment, entry["groupID"], f"{prop}.groupID")
        out["userIDOverrides"].append(entry)
    return out


def _check_group(experiment: dict[str, Any], ref: str, prop: str) -> None:
    if find_group(experiment, ref) is None:
        field_error(prop, f"Group {ref} is not a group of experiment {experiment['id']}")


def _group_key(experiment: dict[str, Any], ref: Any) -> Any:
    group = find_group(experiment, ref)
    return group["id"] if group else ref


def _merge_overrides(
    experiment: dict[str, Any], current: dict[str, Any], added: dict[str, Any]
) -> dict[str, Any]:
    """PATCH semantics: same gate/segment (per environment) → overwritten; ids join their group."""
    merged: dict[str, Any] = clone(current)
    for entry in added["overrides"]:
        key = (entry["type"], entry["id"], entry["environment"])
        merged["overrides"] = [
            o for o in merged["overrides"] if (o["type"], o["id"], o.get("environment")) != key
        ] + [entry]
    for entry in added["userIDOverrides"]:
        scope = (entry["environment"], entry.get("unitType"))
        group = _group_key(experiment, entry["groupID"])
        ids = dict.fromkeys(entry["ids"])
        target = None
        for existing in merged["userIDOverrides"]:
            if (existing.get("environment"), existing.get("unitType")) != scope:
                continue
            if _group_key(experiment, existing["groupID"]) == group:
                target = existing
            else:  # an id is in one group at a time
                existing["ids"] = [i for i in existing["ids"] if i not in ids]
        if target is None:
            merged["userIDOverrides"].append({**entry, "ids": list(ids)})
        else:
            target["ids"] = list(dict.fromkeys([*target["ids"], *ids]))
    merged["userIDOverrides"] = [e for e in merged["userIDOverrides"] if e["ids"]]
    _check_override_limits(merged)
    return merged


def _check_override_limits(overrides: dict[str, Any]) -> None:
    if len(overrides["overrides"]) > MAX_OVERRIDES:
        field_error("overrides", f"An experiment can have at most {MAX_OVERRIDES} overrides")
    for i, entry in enumerate(overrides["userIDOverrides"]):
        if len(entry["ids"]) > MAX_OVERRIDE_IDS:
            field_error(
                f"userIDOverrides[{i}].ids",
                f"A group can have at most {MAX_OVERRIDE_IDS} id overrides",
            )


def _remove_overrides(
    experiment: dict[str, Any], current: dict[str, Any], removed: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = clone(current)
    gone = {(o["type"], o["id"]) for o in removed["overrides"]}
    out["overrides"] = [o for o in out["overrides"] if (o["type"], o["id"]) not in gone]
    for entry in removed["userIDOverrides"]:
        group = _group_key(experiment, entry["groupID"])
        ids = set(entry["ids"])
        for existing in out["userIDOverrides"]:
            if _group_key(experiment, existing["groupID"]) == group:
                existing["ids"] = [i for i in existing["ids"] if i not in ids]
    out["userIDOverrides"] = [e for e in out["userIDOverrides"] if e["ids"]]
    return out


def _save_overrides(
    request: web.Request, experiment: dict[str, Any], overrides: dict[str, Any]
) -> web.Response:
    proj = project(request)
    before = _stored_overrides(proj, experiment["id"])
    if overrides != before:
        proj.overrides.setdefault(_KIND, {})[experiment["id"]] = overrides
        record_change(
            request,
            _KIND,
            experiment,
            "experiment_overrides_edit",
            changes={"overrides": {"old": before, "new": overrides}},
            versioned=False,
        )
    return ok(overrides, "Experiment Overrides updated successfully.")


@routes.get(f"{PREFIX}/experiments/{{id}}/overrides")
async def get_overrides(request: web.Request) -> web.Response:
    """``GET /experiments/{id}/overrides``."""
    experiment = _experiment(request)
    overrides = _stored_overrides(project(request), experiment["id"])
    return ok(overrides, "Experiment Overrides read successfully.")


@routes.post(f"{PREFIX}/experiments/{{id}}/overrides")
async def set_overrides(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/overrides``: replace all overrides."""
    experiment = _experiment(request)
    parsed = _parse_overrides(request, experiment, await read_body(request), required=True)
    merged = _merge_overrides(experiment, _empty_overrides(), parsed)
    return _save_overrides(request, experiment, merged)


@routes.patch(f"{PREFIX}/experiments/{{id}}/overrides")
async def add_overrides(request: web.Request) -> web.Response:
    """``PATCH /experiments/{id}/overrides``: add (same gate/segment or group: overwrite)."""
    experiment = _experiment(request)
    parsed = _parse_overrides(request, experiment, await read_body(request), required=True)
    current = _stored_overrides(project(request), experiment["id"])
    return _save_overrides(request, experiment, _merge_overrides(experiment, current, parsed))


@routes.delete(f"{PREFIX}/experiments/{{id}}/overrides")
async def remove_overrides(request: web.Request) -> web.Response:
    """``DELETE /experiments/{id}/overrides``: remove the listed entries/ids; no body → all."""
    experiment = _experiment(request)
    body = await read_body(request, required=False)
    current = _stored_overrides(project(request), experiment["id"])
    if body is None:
        remaining = _empty_overrides()
    else:
        parsed = _parse_overrides(request, experiment, body, required=False)
        remaining = _remove_overrides(experiment, current, parsed)
    return _save_overrides(request, experiment, remaining)


# -- analytics -------------------------------------------------------------------------------


@routes.get(f"{PREFIX}/experiments/{{id}}/cumulative_exposures")
async def cumulative_exposures(request: web.Request) -> web.Response:
    """``GET /experiments/{id}/cumulative_exposures``: one running total per group and day."""
    experiment = _experiment(request)
    start = experiment.get("startTime")
    days: list[str] = []
    if start is not None:
        end = experiment.get("endTime") or now_ms(request)
        day = int(start) // 86_400_000
        last = min(int(end) // 86_400_000, day + 89)
        days = [date_of((day + n) * 86_400_000) for n in range(last - day + 1)]
    data = []
    for group in experiment.get("groups") or []:
        total = 0
        results = []
        for n, ds in enumerate(days):
            if n:
                base = 200 + 800 * stable_fraction(experiment["id"], group["id"], ds)
                total += int(base * float(group.get("size", 0)) / 50)
            results.append({"date": ds, "exposures": total})
        data.append({"groupID": group["id"], "groupName": group["name"], "results": results})
    return ok(data, "Successfully loaded Cumulative Exposures")


def query_flag(request: web.Request, name: str, default: bool) -> bool:
    """A boolean query parameter (``true``/``false``/``1``/``0``); 400 on anything else."""
    value = request.rel_url.query.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false", "1", "0"):
        field_error(name, f"Expected boolean, received '{value}'")
    return value.lower() in ("true", "1")


def confidence_query(request: web.Request) -> str:
    """The ``confidence`` query parameter (80, 90, 95 (default), 98 or 99)."""
    value = request.rel_url.query.get("confidence", "95")
    if value not in _Z:
        field_error(
            "confidence", f"Invalid confidence {value!r}; expected one of 80, 90, 95, 98, 99"
        )
    return value


@routes.get(f"{PREFIX}/experiments/{{id}}/pulse_results")
async def pulse_results(request: web.Request) -> web.Response:
    """``GET /experiments/{id}/pulse_results?control=…&test=…`` (groups by id or name)."""
    experiment = _experiment(request)
    query = request.rel_url.query
    groups = []
    for key in ("control", "test"):
        if not query.get(key):
            field_error(key, f"{key} is required")
        group = find_group(experiment, query[key])
        if group is None:
            field_error(key, f"Group {query[key]} is not a group of experiment {experiment['id']}")
        groups.append(group["id"])
    if experiment.get("startTime") is None:
        api_error(400, "Experiment has not yet started")
    ds = query.get("date") or date_of(experiment.get("endTime") or now_ms(request))
    cuped = query_flag(request, "cuped", True)
    confidence = confidence_query(request)
    data: dict[str, Any] = {"ds": ds}
    for key in ("primaryMetrics", "secondaryMetrics", "otherMetrics"):
        data[key] = [
            metric_result(m, experiment["id"], *groups, ds, confidence=confidence, cuped=cuped)
            for m in experiment.get(key) or []
        ]
    return ok(data, "Successfully loaded Pulse Results")


@routes.post(f"{PREFIX}/experiments/{{id}}/alerts/{{metricId}}/resolve")
async def resolve_alert(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/alerts/{metricId}/resolve`` for one of the experiment's metrics."""
    experiment = _experiment(request)
    body = validate_fields(await _optional_body(request), {"reasoning": _STR})
    metric_id = request.match_info["metricId"]
    metrics = [
        m
        for key in ("primaryMetrics", "secondaryMetrics", "otherMetrics")
        for m in experiment.get(key) or []
    ]
    if not any(metric_id in (f"{m['name']}::{m['type']}", m["name"]) for m in metrics):
        api_error(404, "Metric not found")
    ts = now_ms(request)
    record_change(
        request,
        _KIND,
        experiment,
        "resolve_guardrail_metric_alert",
        versioned=False,
        changes={"metricID": metric_id, "reasoning": body.get("reasoning")},
    )
    return ok({"resolvedAt": ts}, "Alert resolved successfully.")


_REFRESH = string(enum=("full", "incremental", "metric"))


@routes.post(f"{PREFIX}/experiments/{{id}}/load_pulse")
async def load_pulse(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/load_pulse`` (WHN): record a finished load in the history."""
    experiment = _experiment(request)
    query = request.rel_url.query
    given: dict[str, Any] = {}
    if "refresh" in query:
        given["refresh"] = query["refresh"]
    if "turboMode" in query:
        given["turboMode"] = query_flag(request, "turboMode", False)
    if metric_ids := multi_query(request, "metricIDs"):
        given["metricIDs"] = metric_ids
    if "ruleId" in query:
        given["ruleId"] = query["ruleId"]
    given.update(await _optional_body(request))
    params = validate_fields(
        given,
        {"refresh": _REFRESH, "metricIDs": string_list(), "ruleId": _STR, "turboMode": _BOOL},
    )
    if experiment.get("startTime") is None:
        api_error(400, "Experiment has not yet started")
    ts = now_ms(request)
    entry = {
        "creatorName": "CONSOLE API",
        "createdTime": ts,
        "finishedTime": ts,
        "finishedState": "success",
        "startDs": date_of(experiment["startTime"]),
        "endDs": date_of(experiment.get("endTime") or ts),
        "reloadType": params.get("refresh", "full"),
        "turboMode": bool(params.get("turboMode", False)),
    }
    history = project(request).store("pulse_load_history")
    record = history.setdefault(experiment["id"], {"experimentID": experiment["id"], "loads": []})
    record["loads"].insert(0, entry)
    record_change(request, _KIND, experiment, "load_echidna_pulse", versioned=False, changes=params)
    return ok(message="Experiment is loading.", with_data=False)


@routes.get(f"{PREFIX}/experiments/{{id}}/pulse_load_history")
async def pulse_load_history(request: web.Request) -> web.Response:
    """``GET /experiments/{id}/pulse_load_history`` (WHN): newest load first."""
    experiment = _experiment(request)
    record = project(request).store("pulse_load_history").get(experiment["id"]) or {}
    return ok_page(
        request, clone(record.get("loads", [])), "Pulse load history listed successfully."
    )


# -- warehouse-native sources -------------------------------------------------------------------

_ID_MAPPING = object_list(
    {"statsigUnitID": _STR, "column": _STR}, required=("statsigUnitID", "column")
)
_OWNER = _object(nullable=True)


@dataclass(frozen=True)
class _Source:
    """One family of named warehouse-native sources stored under ``kind``."""

    kind: str
    label: str
    fields: dict[str, Check]
    create_required: tuple[str, ...]
    update_required: tuple[str, ...]
    actions: tuple[str, str, str]  # create, update, delete audit action types
    messages: dict[str, str] = field(default_factory=dict)


_COMMON_SOURCE_FIELDS: dict[str, Check] = {
    "name": _STR,
    "description": _STR,
    "tags": string_list(),
    "sql": _STR,
    "timestampColumn": _STR,
    "idTypeMapping": _ID_MAPPING,
    "isReadOnly": _BOOL,
    "team": _NSTR,
    "teamID": _NSTR,
    "owner": _OWNER,
}

ASSIGNMENT_SOURCES = _Source(
    kind="assignment_sources",
    label="Assignment source",
    fields={
        **_COMMON_SOURCE_FIELDS,
        "isVerified": _BOOL,
        "experimentIDColumn": _STR,
        "groupIDColumn": _STR,
    },
    create_required=(
        "name",
        "sql",
        "timestampColumn",
        "experimentIDColumn",
        "groupIDColumn",
        "idTypeMapping",
    ),
    update_required=(
        "sql",
        "timestampColumn",
        "experimentIDColumn",
        "groupIDColumn",
        "idTypeMapping",
    ),
    actions=(
        "create_echidna_assignment_source",
        "update_echidna_assignment_source",
        "delete_echidna_assignment_source",
    ),
    messages={
        "list": "Assignment Sources listed successfully.",
        "create": "Assignment Source created successfully",
        "read": "Assignment Source read successfully.",
        "update": "Assignment Source updated successfully",
        "patch": "Assignment Source updated successfully",
        "delete": "Assignment source deleted successfully.",
    },
)
ENTITY_PROPERTIES = _Source(
    kind="entity_properties",
    label="Entity property source",
    fields={**_COMMON_SOURCE_FIELDS, "timestampAsDay": _BOOL},
    create_required=("name", "sql", "idTypeMapping"),
    update_required=("sql", "idTypeMapping"),
    actions=(
        "create_echidna_entity_property_source",
        "update_echidna_entity_property_source",
        "delete_echidna_entity_property_source",
    ),
    messages={
        "list": "Entity Property Sources listed successfully.",
        "create": "Entity Property Source created successfully",
        "read": "Entity Property Source read successfully.",
        "update": "Entity Property Sources updated successfully.",
        "patch": "Entity Property Source updated successfully",
        "delete": "Entity property source deleted successfully.",
    },
)
QUALIFYING_EVENTS = _Source(
    kind="qualifying_events",
    label="Qualifying event",
    fields={
        **_COMMON_SOURCE_FIELDS,
        "timestampAsDay": _BOOL,
        "sourceType": string(enum=("table", "query")),
        "tableName": _STR,
        "datePartitionColumn": _STR,
        "customFieldMapping": object_list(
            {"key": _STR, "formula": _STR}, required=("key", "formula")
        ),
        "isVerified": _BOOL,
    },
    create_required=("name", "sql", "timestampColumn", "idTypeMapping"),
    update_required=("sql", "timestampColumn", "idTypeMapping"),
    actions=(
        "create_echidna_metric_source",
        "update_echidna_metric_source",
        "delete_echidna_metric_source",
    ),
    messages={
        "list": "Qualifying events listed successfully.",
        "create": "Qualifying event created successfully.",
        "read": "Qualifying event read successfully.",
        "update": "Qualifying event updated successfully.",
        "delete": "Qualifying event deleted successfully.",
    },
)


def _source_or_404(request: web.Request, spec: _Source) -> dict[str, Any]:
    obj = project(request).store(spec.kind).get(request.match_info["name"])
    if obj is None:
        api_error(404, f"{spec.label} not found.")
    return obj


def _source_fields(
    body: Any, spec: _Source, required: tuple[str, ...]
) -> tuple[dict[str, Any], bool]:
    fields = validate_fields(body, spec.fields, required=required)
    dry_run = boolean()(body["dryRun"], "dryRun") if "dryRun" in body else False
    if "name" in fields and not fields["name"].strip():
        field_error("name", "name must not be empty")
    if "idTypeMapping" in fields and not fields["idTypeMapping"]:
        field_error("idTypeMapping", "Array must contain at least 1 element(s)")
    return fields, bool(dry_run)


def _source_audit(request: web.Request, action: str, name: str, changes: dict[str, Any]) -> None:
    mark_applied(request)
    project(request).audit(action, name, name, changes=changes, now_ms=now_ms(request))


async def _source_list(request: web.Request, spec: _Source) -> web.Response:
    items = list(project(request).store(spec.kind).values())
    return ok_page(request, items, spec.messages["list"])


async def _source_create(request: web.Request, spec: _Source) -> web.Response:
    store = project(request).store(spec.kind)
    fields, dry_run = _source_fields(await read_body(request), spec, spec.create_required)
    if fields["name"] in store:
        api_error(400, "Name is already in use")
    source = {"name": fields["name"], "description": "", "tags": [], **fields}
    if not dry_run:
        store[source["name"]] = source
        _source_audit(request, spec.actions[0], source["name"], {})
    return ok(source, spec.messages["create"], status=201)


async def _source_update(request: web.Request, spec: _Source, *, full: bool) -> web.Response:
    store = project(request).store(spec.kind)
    current = _source_or_404(request, spec)
    body = await read_body(request)
    if not full and isinstance(body, dict) and "sql" in body:
        field_error("sql", "sql is read-only here; change it with a full update (POST)")
    fields, dry_run = _source_fields(body, spec, spec.update_required if full else ())
    updated = {**current, **fields}
    renamed = updated["name"] != current["name"]
    if renamed and updated["name"] in store:
        api_error(400, "Name is already in use")
    if not dry_run and updated != current:
        if renamed:
            del store[current["name"]]
        store[updated["name"]] = updated
        _source_audit(request, spec.actions[1], updated["name"], _changes(current, updated))
    return ok(updated, spec.messages["update" if full else "patch"])


async def _source_get(request: web.Request, spec: _Source) -> web.Response:
    return ok(_source_or_404(request, spec), spec.messages["read"])


async def _source_delete(request: web.Request, spec: _Source) -> web.Response:
    source = _source_or_404(request, spec)
    del project(request).store(spec.kind)[source["name"]]
    _source_audit(request, spec.actions[2], source["name"], {})
    return ok(message=spec.messages["delete"], with_data=False)


@routes.get(f"{PREFIX}/experiments/assignment_sources")
async def list_assignment_sources(request: web.Request) -> web.Response:
    """``GET /experiments/assignment_sources``."""
    return await _source_list(request, ASSIGNMENT_SOURCES)


@routes.post(f"{PREFIX}/experiments/assignment_sources")
async def create_assignment_source(request: web.Request) -> web.Response:
    """``POST /experiments/assignment_sources`` (201)."""
    return await _source_create(request, ASSIGNMENT_SOURCES)


@routes.post(f"{PREFIX}/experiments/assignment_source/{{name}}")
async def update_assignment_source(request: web.Request) -> web.Response:
    """``POST /experiments/assignment_source/{name}``: full update."""
    return await _source_update(request, ASSIGNMENT_SOURCES, full=True)


@routes.patch(f"{PREFIX}/experiments/assignment_source/{{name}}")
async def patch_assignment_source(request: web.Request) -> web.Response:
    """``PATCH /experiments/assignment_source/{name}`` (``sql`` is read-only here)."""
    return await _source_update(request, ASSIGNMENT_SOURCES, full=False)


@routes.delete(f"{PREFIX}/experiments/assignment_source/{{name}}")
async def delete_assignment_source(request: web.Request) -> web.Response:
    """``DELETE /experiments/assignment_source/{name}``."""
    return await _source_delete(request, ASSIGNMENT_SOURCES)


@routes.get(f"{PREFIX}/experiments/entity_properties")
async def list_entity_properties(request: web.Request) -> web.Response:
    """``GET /experiments/entity_properties``."""
    return await _source_list(request, ENTITY_PROPERTIES)


@routes.post(f"{PREFIX}/experiments/entity_properties")
async def create_entity_property(request: web.Request) -> web.Response:
    """``POST /experiments/entity_properties`` (201)."""
    return await _source_create(request, ENTITY_PROPERTIES)


@routes.get(f"{PREFIX}/experiments/entity_property/{{name}}")
async def get_entity_property(request: web.Request) -> web.Response:
    """``GET /experiments/entity_property/{name}``."""
    return await _source_get(request, ENTITY_PROPERTIES)


@routes.post(f"{PREFIX}/experiments/entity_property/{{name}}")
async def update_entity_property(request: web.Request) -> web.Response:
    """``POST /experiments/entity_property/{name}``: full update."""
    return await _source_update(request, ENTITY_PROPERTIES, full=True)


@routes.patch(f"{PREFIX}/experiments/entity_property/{{name}}")
async def patch_entity_property(request: web.Request) -> web.Response:
    """``PATCH /experiments/entity_property/{name}`` (``sql`` is read-only here)."""
    return await _source_update(request, ENTITY_PROPERTIES, full=False)


@routes.delete(f"{PREFIX}/experiments/entity_property/{{name}}")
async def delete_entity_property(request: web.Request) -> web.Response:
    """``DELETE /experiments/entity_property/{name}``."""
    return await _source_delete(request, ENTITY_PROPERTIES)


@routes.get(f"{PREFIX}/experiments/qualifying_events")
async def list_qualifying_events(request: web.Request) -> web.Response:
    """``GET /experiments/qualifying_events``."""
    return await _source_list(request, QUALIFYING_EVENTS)


@routes.post(f"{PREFIX}/experiments/qualifying_events")
async def create_qualifying_event(request: web.Request) -> web.Response:
    """``POST /experiments/qualifying_events`` (201)."""
    return await _source_create(request, QUALIFYING_EVENTS)


@routes.get(f"{PREFIX}/experiments/qualifying_events/{{name}}")
async def get_qualifying_event(request: web.Request) -> web.Response:
    """``GET /experiments/qualifying_events/{name}``."""
    return await _source_get(request, QUALIFYING_EVENTS)


@routes.post(f"{PREFIX}/experiments/qualifying_events/{{name}}")
async def update_qualifying_event(request: web.Request) -> web.Response:
    """``POST /experiments/qualifying_events/{name}``: full update."""
    return await _source_update(request, QUALIFYING_EVENTS, full=True)


@routes.delete(f"{PREFIX}/experiments/qualifying_events/{{name}}")
async def delete_qualifying_event(request: web.Request) -> web.Response:
    """``DELETE /experiments/qualifying_events/{name}``."""
    return await _source_delete(request, QUALIFYING_EVENTS)
