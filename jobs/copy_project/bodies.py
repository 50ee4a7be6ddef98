"""The request bodies copy-project sends, built from a desired canonical object (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .canonical import EXPERIMENT_FIELDS, implicit_layer_id

__all__ = [
    "CONFIG_FULL",
    "EXPERIMENT_UPDATE",
    "FRESH_IMPLICIT_LAYER",
    "GATE_FULL",
    "ID_LIST_CHUNK",
    "LAYER_UPDATE",
    "api_rules",
    "config_body",
    "experiment_fields",
    "gate_body",
    "layer_update",
    "optional",
]

ID_LIST_CHUNK = 1000  # ids per segment id-list request, read and written
# Fields a full update (``POST /{kind}/{id}``) of a gate or a config carries.
_SHARED = ("name", "description", "idType", "isEnabled", "rules", "tags", "targetApps")
_OWNERSHIP = ("team", "teamID", "releasePipelineID")
GATE_FULL = (
    *_SHARED,
    "type",
    "measureMetricLifts",
    "monitoringMetrics",
    "requiredReview",
    *_OWNERSHIP,
)
CONFIG_FULL = (
    *_SHARED,
    "defaultValue",
    "defaultValueJson5",
    "schema",
    "schemaJson5",
    *_OWNERSHIP,
)

LAYER_UPDATE = ("description", "parameters", "targetApps")

EXPERIMENT_UPDATE = (
    "name",
    "description",
    "idType",
    "tags",
    "targetApps",
    "team",
    "teamID",
    "groups",
    "controlGroup",
    "targetingGateID",
    "layerID",
    *EXPERIMENT_FIELDS,
)

FRESH_IMPLICIT_LAYER: dict[str, Any] = {"description": "", "parameters": [], "targetApps": []}


def api_rules(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in rule.items() if v is not None} for rule in rules]


def optional(body: dict[str, Any], desired: Mapping[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if desired.get(name) is not None:
            body[name] = desired[name]
    return body


def _shared_body(d: Mapping[str, Any], rules: bool) -> dict[str, Any]:
    body = {k: d[k] for k in _SHARED}
    body["rules"] = api_rules(d["rules"]) if rules else []
    return body


def gate_body(d: Mapping[str, Any], *, rules: bool = True) -> dict[str, Any]:
    body = _shared_body(d, rules)
    body["measureMetricLifts"] = d["measureMetricLifts"]
    body["monitoringMetrics"] = d["monitoringMetrics"]
    body["reviewSettings"] = {"requiredReview": d["requiredReview"]}
    return optional(body, d, "type", *_OWNERSHIP)


def config_body(d: Mapping[str, Any]) -> dict[str, Any]:
    body = _shared_body(d, rules=True)
    body["defaultValue"] = d["defaultValue"]
    return optional(body, d, "defaultValueJson5", "schema", "schemaJson5", *_OWNERSHIP)


def experiment_fields(d: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in names:
        if name == "controlGroup":
            if d.get("controlGroup") is not None:
                body["controlGroupID"] = d["controlGroup"]
        elif name == "layerID":
            explicit = d["layerID"] != implicit_layer_id(str(d["id"]))
            body["layerID"] = d["layerID"] if explicit else ""
        elif name == "targetingGateID":
            body["targetingGateID"] = d.get("targetingGateID") or None
        elif name == "groups":
            body["groups"] = d["groups"]
        elif d.get(name) is not None:
            body[name] = d[name]
    return body


def layer_update(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in LAYER_UPDATE}
