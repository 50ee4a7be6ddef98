"""Canonical forms of ``copy-project``: what a copy compares, and how it compares.

Nothing here does I/O. :func:`canonical` turns an object as the API returns it into
the form copies are compared in: server-owned fields (§3.2 of console-api.md: creator
and modifier metadata, versions, owner, ``holdoutIDs``, ``checksPerHour``, rule
``id``/``baseID`` and automated rollouts, experiment lifecycle fields…) are gone,
empty values have one spelling, lists that are sets are sorted, and rule order is
kept. :func:`diff` compares a desired canonical object with the target's.

Canonical objects carry only the fields copy-project writes; :func:`diff` compares
exactly the fields the desired object has, so a field the copy does not care about
(an unknown gate type of a ``STALE`` gate) is simply left out of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bulkops.job import OVERRIDE_LISTS

__all__ = [
    "BUILTIN_UNIT_ID_TYPES",
    "CONFIG_KINDS",
    "DEFAULT_INCLUDE",
    "EXPERIMENT_FIELDS",
    "KINDS",
    "PREFIXED_KINDS",
    "REFERENCE_CONDITIONS",
    "SERVER_OWNED",
    "SINGULAR",
    "Difference",
    "canonical",
    "canonical_overrides",
    "canonical_rules",
    "check_prefix",
    "diff",
    "implicit_layer_id",
    "is_implicit_layer",
    "json_copy",
    "names",
    "same",
    "short",
    "sort_key",
    "strip_server_owned",
]

KINDS = ("tags", "unit_id_types", "segments", "gates", "dynamic_configs", "layers", "experiments")
"""Everything copy-project copies, in the order console-api.md §20 creates it."""
CONFIG_KINDS = ("segments", "gates", "dynamic_configs", "layers", "experiments")
DEFAULT_INCLUDE = KINDS[:-1]
PREFIXED_KINDS = frozenset(CONFIG_KINDS)
SINGULAR = {
    "tags": "tag",
    "unit_id_types": "unit_id_type",
    "segments": "segment",
    "gates": "gate",
    "dynamic_configs": "dynamic_config",
    "layers": "layer",
    "experiments": "experiment",
    "environments": "environment",
    "target_apps": "target app",
    "teams": "team",
}
BUILTIN_UNIT_ID_TYPES = frozenset({"userID", "stableID"})

SERVER_OWNED = frozenset(
    {
        "lastModifierID",
        "lastModifiedTime",
        "lastModifierEmail",
        "lastModifierName",
        "creatorID",
        "createdTime",
        "creatorName",
        "creatorEmail",
        "version",
        "owner",
        "holdoutIDs",
        "checksPerHour",
        "typeReason",
        "activeReview",
        "healthChecks",
        "healthCheckStatus",
        "startTime",
        "endTime",
        "decisionTime",
        "launchedGroupID",
        "decisionReason",
        "inlineTargetingRulesJSON",
        "count",
    }
)
"""Fields the server owns (console-api.md §3.2): never sent, never compared as such."""

_RULE_KEYS = (
    "name",
    "passPercentage",
    "conditions",
    "environments",
    "returnValue",
    "returnValueJson5",
    "variants",
)
_CONDITION_KEYS = ("type", "operator", "targetValue", "field", "customID")
_VARIANT_KEYS = ("name", "passPercentage", "returnValue", "returnValueJson5")
_COMMON = ("name", "description", "idType", "tags", "targetApps", "team", "teamID")
_WRITABLE_GATE_TYPES = ("PERMANENT", "TEMPORARY")
REFERENCE_CONDITIONS = {
    "passes_gate": "gates",
    "fails_gate": "gates",
    "passes_segment": "segments",
    "fails_segment": "segments",
}

EXPERIMENT_FIELDS = (
    "hypothesis",
    "links",
    "allocation",
    "primaryMetricTags",
    "secondaryMetricTags",
    "primaryMetrics",
    "secondaryMetrics",
    "otherMetrics",
    "duration",
    "targetExposures",
    "sequentialTesting",
    "bonferroniCorrection",
    "bonferroniCorrectionPerMetric",
    "benjaminiHochbergPerVariant",
    "benjaminiHochbergPerMetric",
    "benjaminiPrimaryMetricsOnly",
    "defaultConfidenceInterval",
    "manualQualityScores",
    "assignmentSourceName",
    "assignmentSourceExperimentName",
    "isAnalysisOnly",
    "allocationDuration",
    "cohortedAnalysisDuration",
    "cohortedMetricsMatureAfterEnd",
    "cohortWaitUntilEndToInclude",
    "fixedAnalysisDuration",
    "scheduledReloadHour",
    "scheduledReloadType",
    "analysisEndTime",
    "assignmentSourceFilters",
    "analyticsType",
    "isSidecar",
    "stratifiedSampling",
    "secondaryIDType",
    "identifierMappingMode",
    "identityResolutionSource",
)
"""Experiment fields a create or update may carry beyond the common ones (drafts: no
``status``, ``launchedGroupID`` or ``decisionReason``)."""

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def implicit_layer_id(experiment_id: str) -> str:
    """The id of the layer the service creates for an experiment without one."""
    return f"statsig::{experiment_id}_layer"


def is_implicit_layer(layer: Mapping[str, Any]) -> bool:
    """Whether ``layer`` is an experiment's implicit layer (created with the experiment)."""
    return bool(layer.get("isImplicitLayer")) or str(layer.get("id", "")).startswith("statsig::")


def check_prefix(prefix: str) -> str | None:
    """Why ``prefix`` cannot start ids and names of every kind (None if it can)."""
    if prefix and not _PREFIX.match(prefix):
        return (
            f"--prefix {prefix!r} must be lower-case letters, digits, '_' or '-' (it starts "
            "segment, experiment and layer ids, whose rules are the strictest)"
        )
    return None


def strip_server_owned(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without the fields the server owns (rules keep their content, lose their ids)."""
    out = {k: json_copy(v) for k, v in obj.items() if k not in SERVER_OWNED}
    if isinstance(out.get("rules"), list):
        out["rules"] = canonical_rules(out["rules"])
    return out


def json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return sorted({str(v) for v in value})


def _condition(cond: Mapping[str, Any]) -> dict[str, Any]:
    return {k: cond[k] for k in _CONDITION_KEYS if cond.get(k) is not None}


def canonical_rules(rules: Any) -> list[dict[str, Any]]:
    """Rules without server-owned fields: order kept, ``passPercentage`` a float.

    Canonical forms share nested values with their input (no copies: they are built by
    the thousand); :func:`rewrite` and :func:`fit` copy before they change anything.
    """
    out: list[dict[str, Any]] = []
    for rule in rules or ():
        if not isinstance(rule, Mapping):
            continue
        item: dict[str, Any] = {k: rule[k] for k in _RULE_KEYS if rule.get(k) is not None}
        item["passPercentage"] = float(rule.get("passPercentage", 100))
        item["conditions"] = [
            _condition(c) for c in rule.get("conditions") or () if isinstance(c, Mapping)
        ]
        envs = rule.get("environments")
        item["environments"] = list(envs) if envs is not None else None
        if "variants" in item:
            item["variants"] = [
                {k: v[k] for k in _VARIANT_KEYS if v.get(k) is not None}
                for v in rule.get("variants") or ()
                if isinstance(v, Mapping)
            ]
        out.append(item)
    return out


def _groups_by_ref(experiment: Mapping[str, Any] | None) -> dict[str, str]:
    refs: dict[str, str] = {}
    for group in (experiment or {}).get("groups") or ():
        if isinstance(group, Mapping) and group.get("name") is not None:
            name = str(group["name"])
            refs[name] = name
            if group.get("id"):
                refs[str(group["id"])] = name
    return refs


# The fields compared of each override entry, per kind and list (id lists are sets).
_OVERRIDE_ENTRIES: dict[str, dict[str, tuple[str, ...]]] = {
    "gates": {"environmentOverrides": ("environment", "unitID", "passingIDs", "failingIDs")},
    "experiments": {
        "overrides": ("type", "id", "groupID", "environment"),
        "userIDOverrides": ("groupID", "ids", "environment", "unitType"),
    },
    "layers": {
        "conditionalOverrides": ("type", "name", "experimentName", "groupName"),
        "idOverrides": ("groupName", "ids", "idType", "environment", "experimentName"),
    },
}
_ID_SETS = frozenset({"passingIDs", "failingIDs", "ids"})


def canonical_overrides(
    kind: str, overrides: Mapping[str, Any] | None, owner: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Overrides of a gate, experiment or layer in comparable form (ids sorted).

    Experiment overrides name groups by name (``owner`` maps group ids to names).
    """
    lists = _OVERRIDE_ENTRIES.get(kind)
    if lists is None:
        raise ValueError(f"{kind} have no overrides")
    data = overrides or {}
    groups = _groups_by_ref(owner) if kind == "experiments" else {}

    def value(field: str, found: Any) -> Any:
        if field in _ID_SETS:
            return names(found)
        return groups.get(str(found), found) if field == "groupID" else found

    out: dict[str, Any] = (
        {name: names(data.get(name)) for name in OVERRIDE_LISTS} if kind == "gates" else {}
    )
    for name, fields in lists.items():
        entries = [
            {f: value(f, e.get(f)) for f in fields}
            for e in data.get(name) or ()
            if isinstance(e, Mapping)
        ]
        out[name] = sorted(entries, key=sort_key)
    return out


def sort_key(item: Mapping[str, Any]) -> str:
    return json.dumps(item, sort_keys=True, default=str)


def _common(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": obj.get("name") or obj.get("id"),
        "description": obj.get("description") or "",
        "idType": obj.get("idType") or "userID",
        "tags": names(obj.get("tags")),
        "targetApps": names(obj.get("targetApps")),
        "team": obj.get("team"),
        "teamID": obj.get("teamID"),
    }


def canonical(
    kind: str,
    obj: Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
    id_list: Sequence[str] | None = None,
    implicit_layer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The comparable form of an object as the API returns it.

    Args:
        kind: One of :data:`KINDS`.
        obj: The object (``GET /{kind}/{id}`` data).
        overrides: Its overrides (gates, experiments, layers), compared when given.
        id_list: An id-list segment's ids, compared (as a set) when given.
        implicit_layer: An experiment's implicit layer, whose parameters, description
            and target apps travel with the experiment.
    """
    if kind == "tags":
        return {
            "name": obj.get("name"),
            "description": obj.get("description") or "",
            "isCore": bool(obj.get("isCore", False)),
        }
    if kind == "unit_id_types":
        return {"name": obj.get("name"), "description": obj.get("description") or ""}
    out: dict[str, Any] = {"id": obj.get("id"), **_common(obj)}
    if kind == "gates":
        out.update(
            {
                **_with_rules(obj, "In Progress"),
                "measureMetricLifts": bool(obj.get("measureMetricLifts", True)),
                "monitoringMetrics": _metrics(obj.get("monitoringMetrics")),
                "requiredReview": bool((obj.get("reviewSettings") or {}).get("requiredReview")),
                "allowedReviewers": _reviewers(obj.get("reviewSettings")),
                "releasePipelineID": obj.get("releasePipelineID"),
            }
        )
        if obj.get("type") in _WRITABLE_GATE_TYPES:
            out["type"] = obj["type"]
    elif kind == "dynamic_configs":
        out.update(
            {
                **_with_rules(obj, "Enabled"),
                "defaultValue": obj.get("defaultValue") or {},
                "defaultValueJson5": obj.get("defaultValueJson5"),
                "schema": obj.get("schema"),
                "schemaJson5": obj.get("schemaJson5"),
                "releasePipelineID": obj.get("releasePipelineID"),
            }
        )
    elif kind == "segments":
        out.update(
            {
                "type": obj.get("type"),
                "isEnabled": bool(obj.get("isEnabled", True)),
                "status": obj.get("status") or "Active",
            }
        )
        if obj.get("type") == "rule_based":
            out["rules"] = canonical_rules(obj.get("rules"))
        if id_list is not None:
            out["ids"] = sorted(set(id_list))
    elif kind == "layers":
        out["parameters"] = obj.get("parameters") or []
    elif kind == "experiments":
        for name in EXPERIMENT_FIELDS:
            if obj.get(name) is not None:
                out[name] = obj[name]
        out["targetingGateID"] = obj.get("targetingGateID") or ""
        groups = [g for g in obj.get("groups") or () if isinstance(g, Mapping)]
        out["groups"] = [
            {
                "name": g.get("name"),
                "size": float(g.get("size", 0)),
                "parameterValues": g.get("parameterValues") or {},
                "disabled": bool(g.get("disabled", False)),
                "description": g.get("description") or "",
                **(
                    {"foreignGroupID": g["foreignGroupID"]}
                    if g.get("foreignGroupID") is not None
                    else {}
                ),
            }
            for g in groups
        ]
        out["controlGroup"] = _groups_by_ref(obj).get(str(obj.get("controlGroupID")))
        out["layerID"] = obj.get("layerID")
        if implicit_layer is not None:
            out["implicitLayer"] = {
                "description": implicit_layer.get("description") or "",
                "parameters": implicit_layer.get("parameters") or [],
                "targetApps": names(implicit_layer.get("targetApps")),
            }
    else:
        raise ValueError(f"unknown kind {kind!r}")
    if overrides is not None and kind in ("gates", "experiments", "layers"):
        out["overrides"] = canonical_overrides(kind, overrides, obj)
    return out


def _with_rules(obj: Mapping[str, Any], status: str) -> dict[str, Any]:
    """What gates and dynamic configs share: enabled state, status, template flag, rules."""
    return {
        "isEnabled": bool(obj.get("isEnabled", True)),
        "status": obj.get("status") or status,
        "isTemplate": bool(obj.get("isTemplate", False)),
        "rules": canonical_rules(obj.get("rules")),
    }


def _metrics(value: Any) -> list[dict[str, Any]]:
    return [
        {"name": m.get("name"), "type": m.get("type")}
        for m in value or ()
        if isinstance(m, Mapping)
    ]


def _reviewers(settings: Any) -> list[str]:
    reviewers = (settings or {}).get("allowedReviewers") or []
    return sorted(
        str(r.get("id") or r.get("email") or r) if isinstance(r, Mapping) else str(r)
        for r in reviewers
    )


# -- comparison ------------------------------------------------------------------------------


def short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Difference:
    """One field where the target does not show what the copy wants."""

    path: str
    wanted: Any
    found: Any

    def __str__(self) -> str:
        return f"{self.path}: wanted {short(self.wanted)}, found {short(self.found)}"


def same(a: Any, b: Any) -> bool:
    """JSON equality where 1 == 1.0 but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff(
    desired: Mapping[str, Any], actual: Mapping[str, Any] | None, *, limit: int = 20
) -> list[Difference]:
    """Where ``actual`` differs from ``desired``, field by field (only ``desired``'s fields)."""
    out: list[Difference] = []
    if actual is None:
        return [Difference("(object)", "present", "absent")]
    for key, wanted in desired.items():
        _diff(wanted, actual.get(key), key, out, limit)
        if len(out) >= limit:
            break
    return out


def _diff(wanted: Any, found: Any, path: str, out: list[Difference], limit: int) -> None:
    if len(out) >= limit or same(wanted, found):
        return
    if isinstance(wanted, dict) and isinstance(found, dict):
        for key in sorted(set(wanted) | set(found)):
            _diff(wanted.get(key), found.get(key), f"{path}.{key}", out, limit)
        return
    if isinstance(wanted, list) and isinstance(found, list) and len(wanted) == len(found):
        if all(isinstance(v, dict | list) for v in wanted):
            for index, (w, f) in enumerate(zip(wanted, found, strict=True)):
                _diff(w, f, f"{path}[{index}]", out, limit)
            return
    out.append(Difference(path, wanted, found))
