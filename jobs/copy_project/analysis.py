"""Pure helpers of ``copy-project``: canonical forms, references, id rewriting, fitting, order.

Nothing here does I/O. The job (:mod:`jobs.copy_project`) reads both projects, and
these functions decide what the target should hold:

* :func:`canonical` turns an object as the API returns it into the form copies are
  compared in: server-owned fields (§3.2 of console-api.md: creator and modifier
  metadata, versions, owner, ``holdoutIDs``, ``checksPerHour``, rule ``id``/``baseID``
  and automated rollouts, experiment lifecycle fields…) are gone, empty values have
  one spelling, lists that are sets are sorted, and rule order is kept.
* :func:`references` lists what an object points at (tags, unit id types, segments,
  gates, layers, experiments, environments, target apps, teams), each with where.
* :class:`IdMap` and :func:`rewrite` give copied objects their target ids (``--prefix``)
  and rewrite every reference to a copied object; ``--env-map`` renames environments.
* :func:`fit` adapts a desired object to what the target project and the API can
  hold, and names each thing that is dropped (a *loss*): a target app, team or
  environment the target lacks, fields the API cannot write, states it cannot undo.
* :func:`diff` compares a desired canonical object with the target's.
* :func:`topological` orders objects so that what they reference comes first and
  reports reference cycles.

Canonical objects carry only the fields copy-project writes; :func:`diff` compares
exactly the fields the desired object has, so a field the copy does not care about
(an unknown gate type of a ``STALE`` gate) is simply left out of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkops.api.paths import id_from_name

__all__ = [
    "BUILTIN_UNIT_ID_TYPES",
    "CONFIG_KINDS",
    "DEFAULT_INCLUDE",
    "EXPERIMENT_FIELDS",
    "KINDS",
    "PREFIXED_KINDS",
    "SERVER_OWNED",
    "SINGULAR",
    "Difference",
    "IdMap",
    "Ref",
    "TargetFacts",
    "canonical",
    "canonical_overrides",
    "canonical_rules",
    "check_prefix",
    "diff",
    "fit",
    "implicit_layer_id",
    "is_implicit_layer",
    "references",
    "rewrite",
    "same",
    "strip_server_owned",
    "topological",
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
_OVERRIDE_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")
_REFERENCE_CONDITIONS = {
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
    out = {k: _json_copy(v) for k, v in obj.items() if k not in SERVER_OWNED}
    if isinstance(out.get("rules"), list):
        out["rules"] = canonical_rules(out["rules"])
    return out


def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _names(value: Any) -> list[str]:
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


def canonical_overrides(
    kind: str, overrides: Mapping[str, Any] | None, owner: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Overrides of a gate, experiment or layer in comparable form (ids sorted).

    Experiment overrides name groups by name (``owner`` maps group ids to names).
    """
    data = overrides or {}
    if kind == "gates":
        out: dict[str, Any] = {name: _names(data.get(name)) for name in _OVERRIDE_LISTS}
        envs = [
            {
                "environment": e.get("environment"),
                "unitID": e.get("unitID"),
                "passingIDs": _names(e.get("passingIDs")),
                "failingIDs": _names(e.get("failingIDs")),
            }
            for e in data.get("environmentOverrides") or ()
            if isinstance(e, Mapping)
        ]
        out["environmentOverrides"] = sorted(envs, key=_sort_key)
        return out
    if kind == "experiments":
        groups = _groups_by_ref(owner)
        entries = [
            {
                "type": e.get("type"),
                "id": e.get("id"),
                "groupID": groups.get(str(e.get("groupID")), e.get("groupID")),
                "environment": e.get("environment"),
            }
            for e in data.get("overrides") or ()
            if isinstance(e, Mapping)
        ]
        ids = [
            {
                "groupID": groups.get(str(e.get("groupID")), e.get("groupID")),
                "ids": _names(e.get("ids")),
                "environment": e.get("environment"),
                "unitType": e.get("unitType"),
            }
            for e in data.get("userIDOverrides") or ()
            if isinstance(e, Mapping)
        ]
        return {
            "overrides": sorted(entries, key=_sort_key),
            "userIDOverrides": sorted(ids, key=_sort_key),
        }
    if kind == "layers":
        conditional = [
            {
                "type": e.get("type"),
                "name": e.get("name"),
                "experimentName": e.get("experimentName"),
                "groupName": e.get("groupName"),
            }
            for e in data.get("conditionalOverrides") or ()
            if isinstance(e, Mapping)
        ]
        id_overrides = [
            {
                "groupName": e.get("groupName"),
                "ids": _names(e.get("ids")),
                "idType": e.get("idType"),
                "environment": e.get("environment"),
                "experimentName": e.get("experimentName"),
            }
            for e in data.get("idOverrides") or ()
            if isinstance(e, Mapping)
        ]
        return {
            "conditionalOverrides": sorted(conditional, key=_sort_key),
            "idOverrides": sorted(id_overrides, key=_sort_key),
        }
    raise ValueError(f"{kind} have no overrides")


def _sort_key(item: Mapping[str, Any]) -> str:
    return json.dumps(item, sort_keys=True, default=str)


def _common(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": obj.get("name") or obj.get("id"),
        "description": obj.get("description") or "",
        "idType": obj.get("idType") or "userID",
        "tags": _names(obj.get("tags")),
        "targetApps": _names(obj.get("targetApps")),
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
                "isEnabled": bool(obj.get("isEnabled", True)),
                "status": obj.get("status") or "In Progress",
                "isTemplate": bool(obj.get("isTemplate", False)),
                "rules": canonical_rules(obj.get("rules")),
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
                "isEnabled": bool(obj.get("isEnabled", True)),
                "status": obj.get("status") or "Enabled",
                "isTemplate": bool(obj.get("isTemplate", False)),
                "rules": canonical_rules(obj.get("rules")),
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
                "targetApps": _names(implicit_layer.get("targetApps")),
            }
    else:
        raise ValueError(f"unknown kind {kind!r}")
    if overrides is not None and kind in ("gates", "experiments", "layers"):
        out["overrides"] = canonical_overrides(kind, overrides, obj)
    return out


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


# -- references ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """One reference: ``kind`` (``gates``, ``environments``, …) and ``id``, and where it is.

    ``follow_up`` marks references made by overrides, which are copied after every
    object exists.
    """

    kind: str
    id: str
    where: str
    follow_up: bool = False


def _condition_targets(cond: Mapping[str, Any]) -> list[str]:
    target = cond.get("targetValue")
    values = target if isinstance(target, list) else [target]
    return [v for v in values if isinstance(v, str) and v]


def _rule_refs(rules: Any) -> list[Ref]:
    refs: list[Ref] = []
    for rule in rules or ():
        if not isinstance(rule, Mapping):
            continue
        where = f"rule {rule.get('name')!r}"
        refs.extend(Ref("environments", str(env), where) for env in rule.get("environments") or ())
        for cond in rule.get("conditions") or ():
            if not isinstance(cond, Mapping):
                continue
            kind = _REFERENCE_CONDITIONS.get(str(cond.get("type")))
            if kind is not None:
                refs += [
                    Ref(kind, t, f"{where} ({cond.get('type')})") for t in _condition_targets(cond)
                ]
            if cond.get("type") == "unit_id" and cond.get("customID"):
                refs.append(Ref("unit_id_types", str(cond["customID"]), f"{where} (unit_id)"))
    return refs


def references(
    kind: str, obj: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> list[Ref]:
    """Everything ``obj`` (and its ``overrides``) references, built-in unit types excepted."""
    refs: list[Ref] = []
    if kind in CONFIG_KINDS:
        refs += [Ref("tags", str(t), "tags") for t in _names(obj.get("tags"))]
        refs += [Ref("target_apps", t, "targetApps") for t in _names(obj.get("targetApps"))]
        if obj.get("idType"):
            refs.append(Ref("unit_id_types", str(obj["idType"]), "idType"))
        if obj.get("team"):
            refs.append(Ref("teams", str(obj["team"]), "team"))
        elif obj.get("teamID"):
            refs.append(Ref("teams", str(obj["teamID"]), "teamID"))
    refs += _rule_refs(obj.get("rules") if kind in ("segments", "gates", "dynamic_configs") else ())
    if kind == "experiments":
        if obj.get("targetingGateID"):
            refs.append(Ref("gates", str(obj["targetingGateID"]), "targetingGateID"))
        layer = obj.get("layerID")
        if layer and layer != implicit_layer_id(str(obj.get("id"))):
            refs.append(Ref("layers", str(layer), "layerID"))
    refs += _override_refs(kind, overrides)
    return [r for r in refs if not (r.kind == "unit_id_types" and r.id in BUILTIN_UNIT_ID_TYPES)]


def _override_refs(kind: str, overrides: Mapping[str, Any] | None) -> list[Ref]:
    if not overrides:
        return []
    refs: list[Ref] = []
    if kind == "gates":
        for e in overrides.get("environmentOverrides") or ():
            if e.get("environment"):
                refs.append(Ref("environments", str(e["environment"]), "overrides", True))
            if e.get("unitID"):
                refs.append(Ref("unit_id_types", str(e["unitID"]), "overrides", True))
    elif kind == "experiments":
        for e in overrides.get("overrides") or ():
            target = "gates" if e.get("type") == "gate" else "segments"
            refs.append(Ref(target, str(e.get("id")), "overrides", True))
            if e.get("environment"):
                refs.append(Ref("environments", str(e["environment"]), "overrides", True))
        for e in overrides.get("userIDOverrides") or ():
            if e.get("environment"):
                refs.append(Ref("environments", str(e["environment"]), "overrides", True))
            if e.get("unitType"):
                refs.append(Ref("unit_id_types", str(e["unitType"]), "overrides", True))
    elif kind == "layers":
        for e in overrides.get("conditionalOverrides") or ():
            target = "gates" if e.get("type") == "gate" else "segments"
            refs.append(Ref(target, str(e.get("name")), "overrides", True))
            refs.append(Ref("experiments", str(e.get("experimentName")), "overrides", True))
        for e in overrides.get("idOverrides") or ():
            if e.get("experimentName"):
                refs.append(Ref("experiments", str(e["experimentName"]), "overrides", True))
            if e.get("environment"):
                refs.append(Ref("environments", str(e["environment"]), "overrides", True))
            if e.get("idType"):
                refs.append(Ref("unit_id_types", str(e["idType"]), "overrides", True))
    return refs


# -- id rewriting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IdMap:
    """Source ids → target ids for the objects being copied (everything else keeps its id).

    With ``prefix``, copied segments, gates, dynamic configs, layers and experiments get
    ``prefix + id`` and ``prefix + name``; tags and unit id types are shared labels and
    keep theirs. A layer's id is always derived from its name by the service, so a
    copied layer's target id is ``id_from_name(prefix + name)``.
    """

    prefix: str = ""
    copied: Mapping[str, frozenset[str]] = field(default_factory=dict)
    layer_names: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, kind: str, source_id: str) -> str:
        """The target id of ``kind/source_id``."""
        if kind not in PREFIXED_KINDS or source_id not in self.copied.get(kind, ()):
            return source_id
        if kind == "layers":
            return id_from_name(self.prefix + self.layer_names.get(source_id, source_id))
        return self.prefix + source_id

    def name(self, kind: str, name: str) -> str:
        """The target display name of a copied object."""
        return self.prefix + name if kind in PREFIXED_KINDS else name


def _map_condition(cond: dict[str, Any], ids: IdMap) -> dict[str, Any]:
    kind = _REFERENCE_CONDITIONS.get(str(cond.get("type")))
    if kind is None or "targetValue" not in cond:
        return cond
    target = cond["targetValue"]
    if isinstance(target, list):
        cond["targetValue"] = [ids(kind, v) if isinstance(v, str) else v for v in target]
    elif isinstance(target, str):
        cond["targetValue"] = ids(kind, target)
    return cond


def _map_env(env: Any, env_map: Mapping[str, str]) -> Any:
    return env_map.get(env, env) if isinstance(env, str) else env


def _map_rules(rules: list[dict[str, Any]], ids: IdMap, env_map: Mapping[str, str]) -> None:
    for rule in rules:
        rule["conditions"] = [_map_condition(c, ids) for c in rule["conditions"]]
        if rule.get("environments") is not None:
            rule["environments"] = list(
                dict.fromkeys(_map_env(e, env_map) for e in rule["environments"])
            )


def rewrite(
    kind: str,
    canon: Mapping[str, Any],
    ids: IdMap,
    env_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A source canonical object in target terms: ids, names, references and environments."""
    env_map = env_map or {}
    out: dict[str, Any] = _json_copy(canon)
    if kind in ("tags", "unit_id_types"):
        return out
    source_id = str(canon.get("id"))
    out["id"] = ids(kind, source_id)
    out["name"] = ids.name(kind, str(canon.get("name")))
    if isinstance(out.get("rules"), list):
        _map_rules(out["rules"], ids, env_map)
    if kind == "experiments":
        out["targetingGateID"] = (
            ids("gates", out["targetingGateID"]) if out.get("targetingGateID") else ""
        )
        layer = canon.get("layerID")
        if not layer or layer == implicit_layer_id(source_id):
            out["layerID"] = implicit_layer_id(out["id"])
        else:
            out["layerID"] = ids("layers", str(layer))
    overrides = out.get("overrides")
    if isinstance(overrides, dict):
        out["overrides"] = _rewrite_overrides(kind, overrides, ids, env_map)
    return out


def _rewrite_overrides(
    kind: str, data: dict[str, Any], ids: IdMap, env_map: Mapping[str, str]
) -> dict[str, Any]:
    if kind == "gates":
        for e in data["environmentOverrides"]:
            e["environment"] = _map_env(e["environment"], env_map)
        data["environmentOverrides"] = sorted(data["environmentOverrides"], key=_sort_key)
    elif kind == "experiments":
        for e in data["overrides"]:
            e["id"] = ids("gates" if e["type"] == "gate" else "segments", str(e["id"]))
            e["environment"] = _map_env(e["environment"], env_map)
        for e in data["userIDOverrides"]:
            e["environment"] = _map_env(e["environment"], env_map)
        data = {k: sorted(v, key=_sort_key) for k, v in data.items()}
    elif kind == "layers":
        for e in data["conditionalOverrides"]:
            e["name"] = ids("gates" if e["type"] == "gate" else "segments", str(e["name"]))
            e["experimentName"] = ids("experiments", str(e["experimentName"]))
        for e in data["idOverrides"]:
            if e.get("experimentName"):
                e["experimentName"] = ids("experiments", str(e["experimentName"]))
            e["environment"] = _map_env(e["environment"], env_map)
        data = {k: sorted(v, key=_sort_key) for k, v in data.items()}
    return data


# -- fitting to the target -------------------------------------------------------------------


@dataclass(frozen=True)
class TargetFacts:
    """What the target project offers that copied objects may name.

    Attributes:
        environments: Environment names.
        target_apps: Target app names and ids.
        teams: Team name → team id.
    """

    environments: frozenset[str] = frozenset()
    target_apps: frozenset[str] = frozenset()
    teams: Mapping[str, str] = field(default_factory=dict)


# Fields the API cannot write on an existing object of each kind (no update endpoint,
# or an update body without them): an overwrite keeps the target's value.
_FROZEN_ON_UPDATE: dict[str, tuple[str, ...]] = {
    "segments": ("name", "description", "idType", "tags", "targetApps", "team", "teamID", "type"),
    "layers": ("name", "idType", "tags", "team", "teamID"),
    "gates": ("isTemplate",),
    "dynamic_configs": ("isTemplate",),
    "experiments": (),
    "tags": (),
    "unit_id_types": (),
}
# Fields the API cannot write at all (not even on create): a new object gets the default.
_NEVER_WRITABLE: dict[str, dict[str, Any]] = {
    "segments": {"targetApps": [], "isEnabled": True},
    "layers": {"tags": [], "teamID": None},
    "gates": {"allowedReviewers": []},
}


def fit(
    kind: str,
    desired: Mapping[str, Any],
    facts: TargetFacts,
    existing: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Adapt a desired (rewritten) object to the target; returns it and what is dropped.

    Drops target apps, teams and environments the target lacks (rules that only ran
    in missing environments go; override entries for them go), release pipelines
    (project-specific), and every field the API cannot write: on a new object it gets
    the server's default, on an ``existing`` one it keeps the target's value. Each
    drop is one loss line naming the object, the field and the reason.
    """
    out: dict[str, Any] = _json_copy(desired)
    losses: list[str] = []
    label = f"{SINGULAR[kind]} {desired.get('id') or desired.get('name')}"

    def lose(what: str, why: str) -> None:
        losses.append(f"{label}: {what} dropped ({why})")

    if kind in ("tags", "unit_id_types"):
        return out, losses
    apps = out.get("targetApps") or []
    missing = [a for a in apps if a not in facts.target_apps]
    if missing:
        out["targetApps"] = [a for a in apps if a in facts.target_apps]
        lose(f"targetApps {missing}", "the target project has no such target app")
    layer = out.get("implicitLayer")
    if isinstance(layer, dict):
        missing = [a for a in layer.get("targetApps") or [] if a not in facts.target_apps]
        if missing:
            layer["targetApps"] = [a for a in layer["targetApps"] if a in facts.target_apps]
            lose(
                f"implicit layer targetApps {missing}", "the target project has no such target app"
            )
    _fit_team(out, facts, lose)
    if out.get("releasePipelineID") is not None:
        lose(
            f"releasePipelineID {out['releasePipelineID']!r}",
            "release pipelines belong to their project",
        )
        out["releasePipelineID"] = None
    if isinstance(out.get("rules"), list):
        out["rules"] = _fit_rules(out["rules"], facts.environments, lose)
    if isinstance(out.get("overrides"), dict):
        out["overrides"] = _fit_overrides(kind, out["overrides"], facts.environments, lose)
    for name, default in _NEVER_WRITABLE.get(kind, {}).items():
        if kind == "segments" and name == "isEnabled" and out.get("status") == "Archived":
            continue  # archiving a segment disables it
        value = existing.get(name, default) if existing is not None else default
        if name in out and not same(out[name], value):
            lose(f"{name} {_short(out[name])}", "the API cannot set it")
            out[name] = _json_copy(value)
    if existing is not None:
        _fit_existing(kind, out, existing, lose)
    return out, losses


def _fit_team(out: dict[str, Any], facts: TargetFacts, lose: Callable[[str, str], None]) -> None:
    team, team_id = out.get("team"), out.get("teamID")
    if team:
        if team in facts.teams:
            out["teamID"] = facts.teams[team]
            return
        lose(f"team {team!r}", "the target project has no team of that name")
    elif team_id:
        if team_id in facts.teams.values():
            return
        lose(f"teamID {team_id!r}", "the target project has no such team")
    else:
        return
    out["team"] = None
    out["teamID"] = None


def _fit_rules(
    rules: list[dict[str, Any]], envs: frozenset[str], lose: Callable[[str, str], None]
) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for rule in rules:
        names = rule.get("environments")
        if names is None:
            kept.append(rule)
            continue
        missing = [e for e in names if e not in envs]
        if not missing:
            kept.append(rule)
            continue
        remaining = [e for e in names if e in envs]
        if remaining:
            lose(
                f"environments {missing} of rule {rule['name']!r}",
                "the target project has no such environment",
            )
            kept.append({**rule, "environments": remaining})
        else:
            lose(
                f"rule {rule['name']!r} (only for environments {missing})",
                "the target project has no such environment",
            )
    return kept


def _fit_overrides(
    kind: str, data: dict[str, Any], envs: frozenset[str], lose: Callable[[str, str], None]
) -> dict[str, Any]:
    lists = {
        "gates": ("environmentOverrides",),
        "experiments": ("overrides", "userIDOverrides"),
        "layers": ("idOverrides",),
    }[kind]
    for name in lists:
        kept = []
        for entry in data[name]:
            env = entry.get("environment")
            if env is None or env in envs:
                kept.append(entry)
            else:
                lose(
                    f"{name} entry for environment {env!r}",
                    "the target project has no such environment",
                )
        data[name] = kept
    return data


def _fit_existing(
    kind: str,
    out: dict[str, Any],
    existing: Mapping[str, Any],
    lose: Callable[[str, str], None],
) -> None:
    frozen = list(_FROZEN_ON_UPDATE.get(kind, ()))
    if kind == "segments" and existing.get("type") != out.get("type"):
        frozen += ["rules", "ids"]
    if kind == "experiments" and existing.get("status") not in (None, "setup"):
        frozen += ["groups", "idType", "layerID"]  # refused once an experiment has started
    for name in frozen:
        if name in out and not same(out[name], existing.get(name)):
            lose(f"{name} {_short(out[name])}", "the API cannot change it on an existing object")
            out[name] = _json_copy(existing.get(name))
    if (
        kind == "gates"
        and existing.get("status") == "Launched"
        and out.get("status") == "In Progress"
    ):
        lose("status 'In Progress'", "the API cannot un-launch a launched gate")
        out["status"] = "Launched"
    if (
        kind == "segments"
        and existing.get("status") == "Archived"
        and out.get("status") != "Archived"
    ):
        lose(f"status {out.get('status')!r}", "the API cannot unarchive a segment")
        out["status"] = "Archived"
        out["isEnabled"] = existing.get("isEnabled")


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- comparison ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One field where the target does not show what the copy wants."""

    path: str
    wanted: Any
    found: Any

    def __str__(self) -> str:
        return f"{self.path}: wanted {_short(self.wanted)}, found {_short(self.found)}"


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


# -- ordering ---------------------------------------------------------------------------------


def topological(
    ids: Sequence[str], edges: Mapping[str, Iterable[str]]
) -> tuple[list[str], list[list[str]]]:
    """Order ``ids`` so that every id comes after the ids it references (``edges``).

    Edges to ids outside ``ids`` are ignored. Ties keep the order of ``ids``.
    Returns the order and the reference cycles (each a list of ids, in ``ids`` order).
    """
    known = set(ids)
    deps = {i: [d for d in dict.fromkeys(edges.get(i, ())) if d in known] for i in ids}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str) -> None:
        stack: list[tuple[str, Iterable[str]]] = [(node, iter(deps[node]))]
        state[node] = 1
        while stack:
            current, children = stack[-1]
            advanced = False
            for child in children:
                if state.get(child) is None:
                    state[child] = 1
                    stack.append((child, iter(deps[child])))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                state[current] = 2
                order.append(current)

    # Depth-first post-order; an edge back to a node being visited (a cycle) is skipped,
    # so the members of a cycle still come after everything else they reference.
    for node in ids:
        if state.get(node) is None:
            visit(node)
    return order, _cycles(ids, deps)


def _cycles(ids: Sequence[str], deps: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member, or a self-reference (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in ids:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_index = work.pop()
            if child_index == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = deps[node]
            if child_index < len(children):
                work.append((node, child_index + 1))
                child = children[child_index]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in deps[node]:
                    position = {i: n for n, i in enumerate(ids)}
                    found.append(sorted(component, key=position.__getitem__))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found
