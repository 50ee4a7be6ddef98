"""What an experiment body may hold: the service's checks of ``/experiments`` requests.

The writable fields (:data:`FIELDS`, zod-style checks from :mod:`..checks`), the
group list (sizes add up to 100, names unique, ids kept across updates), the control
group, the layer reference and the name. Also the experiment facts the layers,
holdouts and overrides handlers read: :func:`find_group`, :func:`experiments_in_layer`
and the implicit layer's id.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..checks import (
    Check,
    boolean,
    expected,
    field_error,
    number,
    object_list,
    object_value,
    optional_object,
    string,
    string_list,
    target_apps,
    validate_fields,
)
from ..common import new_metadata
from ..http import api_error
from ..state import Project, new_base_id

__all__ = [
    "EXPERIMENT_ID",
    "EXPERIMENT_NAME",
    "FIELDS",
    "FULL_UPDATE_REQUIRED",
    "STATUSES",
    "build_layer",
    "check_groups",
    "control_id",
    "default_groups",
    "diff",
    "experiments_in_layer",
    "find_group",
    "implicit_layer_id",
    "layer_ref",
    "name_taken",
]

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

# -- experiment facts the layers, holdouts and overrides handlers read ----------------


def implicit_layer_id(experiment_id: str) -> str:
    """The id of the layer the service creates for an experiment without one."""
    return f"statsig::{experiment_id}_layer"


def experiments_in_layer(proj: Project, layer_id: str) -> list[dict[str, Any]]:
    """The experiments whose ``layerID`` is ``layer_id``."""
    return [e for e in proj.store("experiments").values() if e.get("layerID") == layer_id]


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
FIELDS: dict[str, Check] = {
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
    "stratifiedSampling": optional_object,
}
FULL_UPDATE_REQUIRED = (
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
    "parameterValues": object_value,
    "disabled": _BOOL,
    "description": _STR,
    "foreignGroupID": _STR,
}


def check_groups(raw: Any, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate a group list; groups matched by id or name keep their ids."""
    if not isinstance(raw, list):
        expected("groups", "array", raw)
    if not raw:
        field_error("groups", "An experiment needs at least one group")
    by_ref = {g["id"]: g for g in existing} | {g["name"]: g for g in existing}
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    used: set[str] = set()
    for i, item in enumerate(raw):
        object_value(item, f"groups[{i}]")
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


def default_groups() -> list[dict[str, Any]]:
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


def control_id(value: Any, groups: list[dict[str, Any]]) -> str:
    group = find_group({"groups": groups}, value)
    if group is None:
        field_error("controlGroupID", f"Group {value} is not a group of this experiment")
    return str(group["id"])


def layer_ref(proj: Project, value: Any) -> str | None:
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


def name_taken(proj: Project, name: str, exp_id: str, *, self_id: str | None = None) -> bool:
    """Whether another experiment has the id ``exp_id`` or the name ``name``."""
    for other in proj.store("experiments").values():
        if other["id"] == self_id:
            continue
        if other["id"] == exp_id or other.get("name") == name:
            return True
    return False


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The audit ``changes`` between two versions: ``{field: {old, new}}``."""
    return {
        k: {"old": before.get(k), "new": v}
        for k, v in after.items()
        if before.get(k) != v and k not in ("version", "lastModifiedTime")
    }
