"""Emulator handlers: gates (every operation of the spec's "Gates" tag).

Where the spec is silent these are our choices (``[inferred]`` in console-api.md):

* **Status** is derived: ``Archived`` if archived, else ``Disabled`` if not enabled,
  else ``Launched`` if launched, else ``In Progress``. Stored objects carry no hidden
  fields, so whether a disabled gate had been launched is read from its version
  history. ``enable``/``disable``/``launch``/``archive``/``unarchive`` on a gate that
  is already in that state answer 200 and change nothing (no version, no audit entry);
  ``enable``/``disable``/``launch`` on an archived gate are refused with 400.
* **Archiving** a gate that live (not archived) gates' or dynamic configs' rules
  reference, or that a live experiment targets (``targetingGateID``), is refused with
  400 naming every reference, unless the body says ``forceArchive: true``.
* Archived gates are left out of ``GET /gates`` unless ``includeArchived=true``.
  ``passRate`` is read from status and rules (Launched → 100, Disabled/Archived → 0,
  otherwise the rollout rate); ``rolloutRate`` follows the spec's description.
* Rules may reference only gates and segments that exist (400
  ``"Gates with IDs [...] do not exist"``), and never their own gate.
* ``GET /gates/{id}/rules`` answers the spec's schema, ``data: [{rules}]`` plus
  pagination (the spec's example shows a bare object; the client accepts both).
* Rule mutations naming an unknown rule: 400 ``"A provided rule ID does not match an
  existing rule ID"``; reads (pulse) naming one: 404 ``"Rule not found."``.
* **Overrides**: POST replaces the lists given, PATCH adds them (deduplicated), DELETE
  removes them (same body shape); every list holds at most 2000 ids; all four answer
  201 as the spec documents.
* Pulse results, pulse load history, ``load_pulse`` and alert resolution answer
  deterministic data shaped like the spec's schemas; nothing is computed or stored.

Audit ``actionType`` per change: ``gate_create``, ``gate_update`` (POST/PATCH
``/gates/{id}``), ``config_conditions_update`` (rule endpoints), ``config_state_toggle``
(enable/disable/launch), ``gate_archive``, ``gate_unarchive``, ``config_delete``,
``gate_overrides_update``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ..common import (
    ID_PATTERN,
    check_name,
    check_types,
    environment_names,
    field_error,
    find_rule,
    get_or_404,
    id_from_name,
    json_type,
    new_metadata,
    normalize_rules,
    referenced_ids,
    require_fields,
    sanitize_rules,
)
from ..http import (
    GENERIC_400,
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

__all__ = [
    "MAX_OVERRIDE_IDS",
    "RULE_NOT_FOUND",
    "check_rule_references",
    "check_text",
    "gate_references",
    "routes",
]

routes = web.RouteTableDef()

_KIND = "gates"
_GATES = f"{PREFIX}/gates"
_GATE = f"{_GATES}/{{id}}"
_RULE = f"{_GATE}/rules/{{ruleID}}"

GATE_TYPES = ("TEMPORARY", "PERMANENT", "STALE", "TEMPLATE")
WRITABLE_TYPES = ("PERMANENT", "TEMPORARY")
TYPE_REASONS = (
    "NONE",
    "STALE_PROBABLY_LAUNCHED",
    "STALE_PROBABLY_UNLAUNCHED",
    "STALE_PROBABLY_FORGOTTEN",
    "STALE_NO_RULES",
    "STALE_PROBABLY_DEAD_CHECK",
    "STALE_EMPTY_CHECKS",
    "STALE_ALL_TRUE",
    "STALE_ALL_FALSE",
)
RATE_BUCKETS = ("0", "100", "INBETWEEN")
MAX_OVERRIDE_IDS = 2000
RULE_NOT_FOUND = "A provided rule ID does not match an existing rule ID"
RULE_NOT_FOUND_404 = "Rule not found."
UPDATED = "Gate updated successfully."

# JSON types of the fields GateCreateDto / GateFullUpdateDto / GatePartialUpdateDto accept.
_FIELD_TYPES = {
    "name": "string",
    "id": "string",
    "description": "string",
    "isEnabled": "boolean",
    "rules": "array",
    "tags": "string[]",
    "type": "string",
    "idType": "string",
    "targetApps": "string|string[]",
    "creatorID": "string?",
    "creatorEmail": "string?",
    "team": "string?",
    "teamID": "string?",
    "measureMetricLifts": "boolean",
    "monitoringMetrics": "array",
    "reviewSettings": "object",
    "releasePipelineID": "string?",
    "isTemplate": "boolean",
}
# Fields copied as given (after type checks) on create and update.
_PLAIN_FIELDS = (
    "description",
    "isEnabled",
    "tags",
    "type",
    "idType",
    "creatorID",
    "creatorEmail",
    "team",
    "teamID",
    "measureMetricLifts",
    "releasePipelineID",
)
_RULE_FIELD_TYPES = {
    "name": "string",
    "passPercentage": "number",
    "conditions": "array",
    "environments": "string[]?",
    "id": "string",
    "baseID": "string",
    "returnValue": "object",
}
_USER_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")


# -- shared with dynamic configs ---------------------------------------------------------


def check_text(body: dict[str, Any], prop: str, max_length: int = 1000) -> None:
    """400 if ``body[prop]`` is present and longer than ``max_length`` characters."""
    value = body.get(prop)
    if isinstance(value, str) and len(value) > max_length:
        field_error(prop, f"{prop} must be at most {max_length} characters")


def check_rule_references(
    request: web.Request, rules: Iterable[dict[str, Any]], *, self_gate: str | None = None
) -> None:
    """400 unless every gate and segment the rules reference exists (and no gate references itself)."""
    proj = project(request)
    rules = list(rules)
    gates = list(dict.fromkeys(referenced_ids(rules, "gate")))
    if self_gate is not None and self_gate in gates:
        field_error("rules", f"Gate {self_gate} cannot reference itself")
    missing = [g for g in gates if g not in proj.store(_KIND)]
    if missing:
        field_error("rules", f"Gates with IDs [{', '.join(missing)}] do not exist")
    segments = list(dict.fromkeys(referenced_ids(rules, "segment")))
    missing = [s for s in segments if s not in proj.store("segments")]
    if missing:
        field_error("rules", f"Segments with IDs [{', '.join(missing)}] do not exist")


def gate_references(
    proj: Project, gate_id: str, *, live_only: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The gates, dynamic configs and experiments that reference gate ``gate_id``.

    Gates and configs reference it through ``passes_gate``/``fails_gate`` rule
    conditions, experiments through ``targetingGateID``. ``live_only`` skips
    archived referrers.
    """
    gates = [
        g
        for g in proj.store(_KIND).values()
        if g.get("id") != gate_id
        and gate_id in set(referenced_ids(g.get("rules") or [], "gate"))
        and not (live_only and g.get("status") == "Archived")
    ]
    configs = [
        c
        for c in proj.store("dynamic_configs").values()
        if gate_id in set(referenced_ids(c.get("rules") or [], "gate"))
        and not (live_only and c.get("status") == "Archived")
    ]
    experiments = [
        e
        for e in proj.store("experiments").values()
        if e.get("targetingGateID") == gate_id and not (live_only and e.get("status") == "archived")
    ]
    return gates, configs, experiments


# -- helpers -------------------------------------------------------------------------------


def _gate(request: web.Request) -> dict[str, Any]:
    return get_or_404(request, _KIND, request.match_info["id"], "Gate")


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        api_error(
            400, GENERIC_400, [{"property": "body", "errorMessage": "Expected a JSON object"}]
        )
    return body


def _rules(
    request: web.Request, raw: Any, gate_id: str, existing: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Validate a gate's whole rule list; rules carrying known ids keep their ``baseID``."""
    rules = normalize_rules(
        sanitize_rules(raw), existing=list(existing), environments=environment_names(request)
    )
    for index, rule in enumerate(rules):
        if "returnValue" in rule and not isinstance(rule["returnValue"], dict):
            field_error(f"rules[{index}].returnValue", "Expected object")
        rule.setdefault("completedAutomatedRollouts", [])
        rule.setdefault("pendingAutomatedRollouts", [])
    check_rule_references(request, rules, self_gate=gate_id)
    return rules


def _fresh(rules: Any) -> Any:
    """New rules never carry ids: drop them so they cannot alias an existing rule."""
    if not isinstance(rules, list):
        return rules
    return [
        {k: v for k, v in r.items() if k not in ("id", "baseID")} if isinstance(r, dict) else r
        for r in rules
    ]


def _changes(
    request: web.Request, body: dict[str, Any], gate_id: str, current: dict[str, Any] | None
) -> dict[str, Any]:
    """Validate a create/update body and return the fields to set (rules normalised)."""
    check_types(body, _FIELD_TYPES)
    out: dict[str, Any] = {}
    if "name" in body:
        out["name"] = check_name(body["name"])
    check_text(body, "description")
    if "type" in body and body["type"] not in WRITABLE_TYPES:
        field_error(
            "type",
            f"Invalid enum value. Expected 'PERMANENT' | 'TEMPORARY', received '{body['type']}'",
        )
    for name in _PLAIN_FIELDS:
        if name in body:
            out[name] = clone(body[name])
    if "targetApps" in body:
        apps = body["targetApps"]
        out["targetApps"] = [apps] if isinstance(apps, str) else list(apps)
    if "monitoringMetrics" in body:
        metrics = body["monitoringMetrics"]
        for index, metric in enumerate(metrics):
            if not (
                isinstance(metric, dict)
                and isinstance(metric.get("name"), str)
                and isinstance(metric.get("type"), str)
            ):
                field_error(f"monitoringMetrics[{index}]", "Expected {name: string, type: string}")
        out["monitoringMetrics"] = [{"name": m["name"], "type": m["type"]} for m in metrics]
    if "reviewSettings" in body:
        required = body["reviewSettings"].get("requiredReview")
        if not isinstance(required, bool):
            field_error("reviewSettings.requiredReview", "Expected boolean")
        previous = (current or {}).get("reviewSettings") or {}
        out["reviewSettings"] = {
            "requiredReview": required,
            "allowedReviewers": previous.get("allowedReviewers") or [],
        }
    if "rules" in body:
        existing = (current or {}).get("rules") or []
        out["rules"] = _rules(request, body["rules"], gate_id, existing)
    return out


def _name_taken(request: web.Request, name: str, except_id: str | None = None) -> bool:
    return any(
        g.get("name") == name and g.get("id") != except_id
        for g in project(request).store(_KIND).values()
    )


def _was_launched(proj: Project, gate: dict[str, Any]) -> bool:
    """Whether the gate is (or, while disabled or archived, was last) launched."""
    status = gate.get("status")
    if status in ("Launched", "In Progress"):
        return bool(status == "Launched")
    for old in reversed(proj.versions.get(_KIND, {}).get(str(gate["id"]), [])):
        if old.get("status") in ("Launched", "In Progress"):
            return bool(old["status"] == "Launched")
    return False


def _status(gate: dict[str, Any], *, archived: bool, launched: bool) -> str:
    if archived:
        return "Archived"
    if not gate.get("isEnabled", True):
        return "Disabled"
    return "Launched" if launched else "In Progress"


def _is_everyone(rule: dict[str, Any]) -> bool:
    conditions = rule.get("conditions") or []
    return rule.get("environments") is None and all(c.get("type") == "public" for c in conditions)


def _rollout_rate(gate: dict[str, Any]) -> str | None:
    rules = gate.get("rules") or []
    rates = [float(r.get("passPercentage", 0)) for r in rules]
    if any(0 < r < 100 for r in rates):
        return "INBETWEEN"
    if all(r == 0 for r in rates):
        return "0"
    if all(r == 100 for r in rates) and any(_is_everyone(r) for r in rules):
        return "100"
    return None


def _pass_rate(gate: dict[str, Any]) -> str:
    status = gate.get("status")
    if status == "Launched":
        return "100"
    if status in ("Disabled", "Archived"):
        return "0"
    return _rollout_rate(gate) or "INBETWEEN"


def _multi(request: web.Request, name: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    values = request.rel_url.query.getall(name, [])
    if allowed is not None:
        for value in values:
            if value not in allowed:
                expected = " | ".join(f"'{a}'" for a in allowed)
                field_error(name, f"Invalid enum value. Expected {expected}, received '{value}'")
    return list(values)


def _replace_rules(
    request: web.Request, gate: dict[str, Any], rules: list[dict[str, Any]], message: str
) -> web.Response:
    """Store a validated rule list on ``gate`` and record the change."""
    gate["rules"] = rules
    record_change(request, _KIND, gate, "config_conditions_update", changes={"rules": clone(rules)})
    return ok(gate, message)


# -- list, create, read, update, delete ---------------------------------------------------


@routes.get(_GATES)
async def list_gates(request: web.Request) -> web.Response:
    """``GET /gates`` with the spec's filters; archived gates only with ``includeArchived=true``."""
    query = request.rel_url.query
    types = _multi(request, "type", GATE_TYPES)
    reasons = _multi(request, "typeReason", TYPE_REASONS)
    id_types = _multi(request, "idType")
    pass_rates = _multi(request, "passRate", RATE_BUCKETS)
    rollout_rates = _multi(request, "rolloutRate", RATE_BUCKETS)
    tags = set(_multi(request, "tags"))
    include_archived = query.get("includeArchived", "").lower() == "true"
    exact = {
        key: query[key] for key in ("creatorName", "creatorID", "releasePipelineID") if key in query
    }
    items = []
    for gate in project(request).store(_KIND).values():
        if gate.get("status") == "Archived" and not include_archived:
            continue
        if types and gate.get("type") not in types:
            continue
        if reasons and gate.get("typeReason") not in reasons:
            continue
        if id_types and gate.get("idType") not in id_types:
            continue
        if pass_rates and _pass_rate(gate) not in pass_rates:
            continue
        if rollout_rates and _rollout_rate(gate) not in rollout_rates:
            continue
        if tags and not tags.intersection(gate.get("tags") or []):
            continue
        if any(gate.get(key) != value for key, value in exact.items()):
            continue
        items.append(gate)  # serialised at once: no copy needed
    return ok_page(request, items, "Gates listed successfully.")


@routes.post(_GATES)
async def create_gate(request: web.Request) -> web.Response:
    """``POST /gates``: 201 with the new gate; 400 on a taken id or name or a bad body."""
    body = require_fields(await read_body(request), "name")
    name = check_name(body["name"])
    if body.get("id") is not None:
        gate_id = check_name(body["id"], "id", pattern=ID_PATTERN)
    else:
        gate_id = id_from_name(name)
    changes = _changes(request, body, gate_id, None)
    store = project(request).store(_KIND)
    if gate_id in store or _name_taken(request, name):
        api_error(400, "Name is already in use")
    gate = new_metadata(request, gate_id, name, body)
    gate.update(
        {
            "isEnabled": True,
            "status": "In Progress",
            "type": "TEMPORARY",
            "typeReason": "NONE",
            "rules": [],
            "checksPerHour": 0,
            "isTemplate": bool(body.get("isTemplate", False)),
            "measureMetricLifts": True,
            "monitoringMetrics": [],
            "reviewSettings": {"requiredReview": False, "allowedReviewers": []},
            "releasePipelineID": None,
        }
    )
    gate.update(changes)
    gate["status"] = _status(gate, archived=False, launched=False)
    gate["version"] = 0  # record_change makes it 1
    store[gate_id] = gate
    record_change(request, _KIND, gate, "gate_create")
    return ok(gate, "Gate created successfully.", status=201)


@routes.get(_GATE)
async def get_gate(request: web.Request) -> web.Response:
    """``GET /gates/{id}``."""
    return ok(_gate(request), "Gate read successfully.")


async def _update(request: web.Request, *, full: bool) -> web.Response:
    gate = _gate(request)
    body = _object(await read_body(request))
    if full:
        require_fields(body, "isEnabled", "description", "rules")
    changes = _changes(request, body, str(gate["id"]), gate)
    if "name" in changes and _name_taken(request, changes["name"], except_id=str(gate["id"])):
        api_error(400, "Name is already in use")
    proj = project(request)
    launched = _was_launched(proj, gate)
    archived = gate.get("status") == "Archived"
    gate.update(changes)
    gate["status"] = _status(gate, archived=archived, launched=launched)
    record_change(request, _KIND, gate, "gate_update", changes=clone(changes))
    return ok(gate, UPDATED)


@routes.post(_GATE)
async def update_gate(request: web.Request) -> web.Response:
    """``POST /gates/{id}``: full update; ``isEnabled``, ``description`` and ``rules`` required."""
    return await _update(request, full=True)


@routes.patch(_GATE)
async def patch_gate(request: web.Request) -> web.Response:
    """``PATCH /gates/{id}``: only the given fields change (a given ``rules`` replaces all)."""
    return await _update(request, full=False)


@routes.delete(_GATE)
async def delete_gate(request: web.Request) -> web.Response:
    """``DELETE /gates/{id}``: the gate, its overrides and its history go."""
    gate = _gate(request)
    proj = project(request)
    gate_id = str(gate["id"])
    del proj.store(_KIND)[gate_id]
    proj.overrides.setdefault(_KIND, {}).pop(gate_id, None)
    proj.versions.get(_KIND, {}).pop(gate_id, None)
    record_change(request, _KIND, gate, "config_delete", versioned=False)
    return ok(message="Gate deleted successfully.", with_data=False)


# -- state actions ---------------------------------------------------------------------------


async def _toggle(request: web.Request, action: str) -> web.Response:
    gate = _gate(request)
    if gate.get("status") == "Archived":
        api_error(400, f"Gate {gate['id']} is archived; unarchive it before you {action} it")
    launched = _was_launched(project(request), gate) or action == "launch"
    enabled = action != "disable"
    status = "Disabled" if not enabled else "Launched" if launched else "In Progress"
    if gate.get("isEnabled") == enabled and gate.get("status") == status:
        return ok(gate, UPDATED)
    gate["isEnabled"] = enabled
    gate["status"] = status
    record_change(request, _KIND, gate, "config_state_toggle", changes={"action": action})
    return ok(gate, UPDATED)


@routes.put(f"{_GATE}/enable")
async def enable_gate(request: web.Request) -> web.Response:
    """``PUT /gates/{id}/enable``: ``isEnabled`` true (Launched again if it was launched)."""
    return await _toggle(request, "enable")


@routes.put(f"{_GATE}/disable")
async def disable_gate(request: web.Request) -> web.Response:
    """``PUT /gates/{id}/disable``: the gate fails for everyone (status Disabled)."""
    return await _toggle(request, "disable")


@routes.put(f"{_GATE}/launch")
async def launch_gate(request: web.Request) -> web.Response:
    """``PUT /gates/{id}/launch``: the gate passes for everyone (status Launched); rules stay."""
    return await _toggle(request, "launch")


@routes.put(f"{_GATE}/archive")
async def archive_gate(request: web.Request) -> web.Response:
    """``PUT /gates/{id}/archive`` ``{archiveReason?, forceArchive?}``.

    Refused with 400 naming the references when live gates, dynamic configs or
    experiments still use the gate, unless ``forceArchive`` is true (our choice).
    """
    gate = _gate(request)
    body = _object(await read_body(request, required=False) or {})
    check_types(body, {"forceArchive": "boolean", "archiveReason": "string"})
    if gate.get("status") == "Archived":
        return ok(gate, UPDATED)
    if not body.get("forceArchive"):
        gates, configs, experiments = gate_references(
            project(request), str(gate["id"]), live_only=True
        )
        errors = [
            {"property": prop, "errorMessage": f"Referenced by {label} {', '.join(ids)}"}
            for prop, label, ids in (
                ("gates", "gates", [str(g["id"]) for g in gates]),
                ("dynamicConfigs", "dynamic configs", [str(c["id"]) for c in configs]),
                ("experiments", "experiments", [str(e["id"]) for e in experiments]),
            )
            if ids
        ]
        if errors:
            names = "; ".join(e["errorMessage"] for e in errors)
            api_error(
                400,
                f"Gate {gate['id']} cannot be archived while it is in use ({names}). "
                "Set forceArchive to archive it anyway.",
                errors,
            )
    gate["status"] = "Archived"
    record_change(
        request,
        _KIND,
        gate,
        "gate_archive",
        changes={
            "archiveReason": body.get("archiveReason"),
            "forced": bool(body.get("forceArchive")),
        },
    )
    return ok(gate, UPDATED)


@routes.put(f"{_GATE}/unarchive")
async def unarchive_gate(request: web.Request) -> web.Response:
    """``PUT /gates/{id}/unarchive`` ``{unarchiveReason?}``: In Progress (Disabled if not enabled)."""
    gate = _gate(request)
    body = _object(await read_body(request, required=False) or {})
    check_types(body, {"unarchiveReason": "string"})
    if gate.get("status") != "Archived":
        return ok(gate, UPDATED)
    gate["status"] = _status(gate, archived=False, launched=False)
    record_change(
        request,
        _KIND,
        gate,
        "gate_unarchive",
        changes={"unarchiveReason": body.get("unarchiveReason")},
    )
    return ok(gate, UPDATED)


# -- versions and references -------------------------------------------------------------


@routes.get(f"{_GATE}/versions")
async def gate_versions(request: web.Request) -> web.Response:
    """``GET /gates/{id}/versions``: every recorded version, newest first."""
    gate = _gate(request)
    history = project(request).versions.get(_KIND, {}).get(str(gate["id"])) or [gate]
    return ok_page(request, list(reversed(history)), "Gate versions listed successfully.")


@routes.get(f"{_GATE}/gate_references")
async def list_gate_references(request: web.Request) -> web.Response:
    """``GET /gates/{id}/gate_references``: gates whose rules pass or fail this gate."""
    gate = _gate(request)
    gates, _, _ = gate_references(project(request), str(gate["id"]))
    return ok_page(request, gates, "Gates listed successfully.")


@routes.get(f"{_GATE}/dynamic_config_references")
async def list_dynamic_config_references(request: web.Request) -> web.Response:
    """``GET /gates/{id}/dynamic_config_references``: configs whose rules use this gate."""
    gate = _gate(request)
    _, configs, _ = gate_references(project(request), str(gate["id"]))
    return ok_page(request, configs, "Dynamic Configs listed successfully.")


@routes.get(f"{_GATE}/experiment_references")
async def list_experiment_references(request: web.Request) -> web.Response:
    """``GET /gates/{id}/experiment_references``: experiments targeting this gate."""
    gate = _gate(request)
    _, _, experiments = gate_references(project(request), str(gate["id"]))
    return ok_page(request, experiments, "Experiments listed successfully.")


# -- overrides ------------------------------------------------------------------------------


def _empty_overrides() -> dict[str, Any]:
    return {
        "passingUserIDs": [],
        "failingUserIDs": [],
        "passingCustomIDs": [],
        "failingCustomIDs": [],
        "environmentOverrides": [],
    }


def _id_list(value: Any, prop: str) -> list[str]:
    if not isinstance(value, list):
        field_error(prop, f"Expected array, received {json_type(value)}")
    if len(value) > MAX_OVERRIDE_IDS:
        field_error(prop, f"Array must contain at most {MAX_OVERRIDE_IDS} element(s)")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            field_error(f"{prop}[{index}]", "Expected a non-empty string")
    return list(dict.fromkeys(value))


def _parse_overrides(request: web.Request, body: Any) -> dict[str, Any]:
    """Validate an ``UpdateOverridesContractDto`` (either variant) and return its lists."""
    body = _object(body)
    has_users = any(key in body for key in _USER_LISTS)
    if not has_users and "environmentOverrides" not in body:
        api_error(
            400,
            GENERIC_400,
            [
                {
                    "property": "body",
                    "errorMessage": "Expected environmentOverrides, or passingUserIDs and failingUserIDs",
                }
            ],
        )
    out: dict[str, Any] = {}
    if has_users:
        require_fields(body, "passingUserIDs", "failingUserIDs")
        for key in _USER_LISTS:
            if body.get(key) is not None:
                out[key] = _id_list(body[key], key)
    if "environmentOverrides" in body:
        entries = body["environmentOverrides"]
        if not isinstance(entries, list):
            field_error("environmentOverrides", "Expected array")
        envs = set(environment_names(request))
        parsed = []
        for index, entry in enumerate(entries):
            prop = f"environmentOverrides[{index}]"
            entry = require_fields(
                entry if isinstance(entry, dict) else None, "passingIDs", "failingIDs"
            )
            check_types(entry, {"environment": "string?", "unitID": "string?"})
            if "unitID" not in entry:
                field_error(f"{prop}.unitID", "unitID is required")
            env = entry.get("environment")
            if env is not None and env not in envs:
                field_error(f"{prop}.environment", f"Unknown environment: {env}")
            parsed.append(
                {
                    "environment": env,
                    "unitID": entry["unitID"],
                    "passingIDs": _id_list(entry["passingIDs"], f"{prop}.passingIDs"),
                    "failingIDs": _id_list(entry["failingIDs"], f"{prop}.failingIDs"),
                }
            )
        out["environmentOverrides"] = parsed
    return out


def _combine(current: list[str], given: list[str], mode: str) -> list[str]:
    if mode == "replace":
        return list(given)
    if mode == "add":
        return list(dict.fromkeys([*current, *given]))
    drop = set(given)
    return [i for i in current if i not in drop]


def _apply_overrides(current: dict[str, Any], given: dict[str, Any], mode: str) -> dict[str, Any]:
    """The overrides after ``mode`` (replace / add / remove) of ``given``; 400 if a list overflows."""
    out: dict[str, Any] = clone(current)
    for name in _USER_LISTS:
        if name in given:
            out[name] = _combine(out.get(name) or [], given[name], mode)
    if "environmentOverrides" in given:
        entries: dict[tuple[Any, Any], dict[str, Any]] = {}
        if mode != "replace":
            for entry in out.get("environmentOverrides") or []:
                entries[(entry.get("environment"), entry.get("unitID"))] = entry
        for entry in given["environmentOverrides"]:
            key = (entry["environment"], entry["unitID"])
            if key not in entries:
                if mode == "remove":
                    continue
                entries[key] = {**entry, "passingIDs": [], "failingIDs": []}
            target = entries[key]
            merge = "remove" if mode == "remove" else "add"
            for ids in ("passingIDs", "failingIDs"):
                target[ids] = _combine(target.get(ids) or [], entry[ids], merge)
        out["environmentOverrides"] = [
            e for e in entries.values() if mode != "remove" or e["passingIDs"] or e["failingIDs"]
        ]
    lists: list[tuple[str, list[str]]] = [(name, out.get(name) or []) for name in _USER_LISTS]
    lists += [
        (f"environmentOverrides[{i}].{side}", e[side])
        for i, e in enumerate(out["environmentOverrides"])
        for side in ("passingIDs", "failingIDs")
    ]
    for prop, values in lists:
        if len(values) > MAX_OVERRIDE_IDS:
            field_error(prop, f"Array must contain at most {MAX_OVERRIDE_IDS} element(s)")
    return out


def _overrides(request: web.Request, gate_id: str) -> dict[str, Any]:
    stored = project(request).overrides.get(_KIND, {}).get(gate_id)
    return {**_empty_overrides(), **(stored or {})}


async def _change_overrides(request: web.Request, mode: str) -> web.Response:
    gate = _gate(request)
    gate_id = str(gate["id"])
    given = _parse_overrides(request, await read_body(request))
    result = _apply_overrides(_overrides(request, gate_id), given, mode)
    project(request).overrides.setdefault(_KIND, {})[gate_id] = result
    record_change(
        request,
        _KIND,
        gate,
        "gate_overrides_update",
        changes={"mode": mode, **clone(given)},
        versioned=False,
    )
    return ok(result, "Gate Overrides updated successfully.", status=201)


@routes.get(f"{_GATE}/overrides")
async def get_overrides(request: web.Request) -> web.Response:
    """``GET /gates/{id}/overrides`` (201, as the spec documents)."""
    gate = _gate(request)
    return ok(_overrides(request, str(gate["id"])), "Gate Overrides read successfully.", status=201)


@routes.post(f"{_GATE}/overrides")
async def set_overrides(request: web.Request) -> web.Response:
    """``POST /gates/{id}/overrides``: the given lists replace the stored ones."""
    return await _change_overrides(request, "replace")


@routes.patch(f"{_GATE}/overrides")
async def add_overrides(request: web.Request) -> web.Response:
    """``PATCH /gates/{id}/overrides``: the given ids are added (deduplicated)."""
    return await _change_overrides(request, "add")


@routes.delete(f"{_GATE}/overrides")
async def remove_overrides(request: web.Request) -> web.Response:
    """``DELETE /gates/{id}/overrides``: the given ids are removed (body as for POST)."""
    return await _change_overrides(request, "remove")


# -- rules --------------------------------------------------------------------------------


@routes.get(f"{_GATE}/rules")
async def get_rules(request: web.Request) -> web.Response:
    """``GET /gates/{id}/rules``: ``data: [{rules}]`` with pagination (the spec's schema)."""
    gate = _gate(request)
    return ok_page(
        request, [{"rules": clone(gate.get("rules") or [])}], "Gate rules read successfully."
    )


@routes.post(f"{_GATE}/rule")
async def add_rule(request: web.Request) -> web.Response:
    """``POST /gates/{id}/rule``: append one rule."""
    gate = _gate(request)
    rule = _object(await read_body(request))
    existing = clone(gate.get("rules") or [])
    rules = _rules(request, [*existing, *_fresh([rule])], str(gate["id"]), existing)
    return _replace_rules(request, gate, rules, "Gate rules added successfully.")


@routes.post(f"{_GATE}/rules")
async def add_rules(request: web.Request) -> web.Response:
    """``POST /gates/{id}/rules`` ``{rules: [...]}``: append several rules."""
    gate = _gate(request)
    body = require_fields(await read_body(request), "rules")
    check_types(body, {"rules": "array"})
    existing = clone(gate.get("rules") or [])
    rules = _rules(request, [*existing, *_fresh(body["rules"])], str(gate["id"]), existing)
    return _replace_rules(request, gate, rules, "Gate rules added successfully.")


def _merged(rule: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``rule`` with the fields of a partial rule applied (its ids stay)."""
    check_types(patch, _RULE_FIELD_TYPES)
    return {**rule, **{k: v for k, v in patch.items() if k not in ("id", "baseID")}}


@routes.patch(f"{_GATE}/rules")
async def update_rules(request: web.Request) -> web.Response:
    """``PATCH /gates/{id}/rules``: update the rules matched by ``id``/``baseID``; others stay."""
    gate = _gate(request)
    body = require_fields(await read_body(request), "rules")
    check_types(body, {"rules": "array"})
    existing = clone(gate.get("rules") or [])
    rules = clone(existing)
    for index, patch in enumerate(body["rules"]):
        if not isinstance(patch, dict):
            field_error(f"rules[{index}]", "Expected object")
        ref = patch.get("id") or patch.get("baseID")
        found = find_rule(existing, str(ref)) if ref is not None else None
        if found is None:
            api_error(
                400,
                RULE_NOT_FOUND,
                [{"property": "rules", "errorMessage": f"Unknown rule id {ref}"}],
            )
        rules[found] = _merged(rules[found], patch)
    normalized = _rules(request, rules, str(gate["id"]), existing)
    return _replace_rules(request, gate, normalized, UPDATED)


def _rule_index(gate: dict[str, Any], rule_ref: str) -> int:
    index = find_rule(gate.get("rules") or [], rule_ref)
    if index is None:
        api_error(
            400,
            RULE_NOT_FOUND,
            [{"property": "ruleID", "errorMessage": f"Unknown rule id {rule_ref}"}],
        )
    return index


@routes.patch(_RULE)
async def update_rule(request: web.Request) -> web.Response:
    """``PATCH /gates/{id}/rules/{ruleID}``: change one rule, named by ``id`` or ``baseID``."""
    gate = _gate(request)
    patch = _object(await read_body(request))
    index = _rule_index(gate, request.match_info["ruleID"])
    existing = clone(gate.get("rules") or [])
    rules = clone(existing)
    rules[index] = _merged(rules[index], patch)
    normalized = _rules(request, rules, str(gate["id"]), existing)
    return _replace_rules(request, gate, normalized, UPDATED)


@routes.delete(_RULE)
async def delete_rule(request: web.Request) -> web.Response:
    """``DELETE /gates/{id}/rules/{ruleID}``: the gate without that rule."""
    gate = _gate(request)
    index = _rule_index(gate, request.match_info["ruleID"])
    rules = clone(gate.get("rules") or [])
    del rules[index]
    return _replace_rules(request, gate, rules, UPDATED)


# -- analytics: deterministic, shaped like the spec, nothing computed ----------------------


def _unit(*parts: str) -> float:
    """A stable pseudo-random number in [0, 1) from ``parts``."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _day(ms: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def _pulse_rule(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    gate = _gate(request)
    rules = gate.get("rules") or []
    index = find_rule(rules, request.match_info["ruleID"])
    if index is None:
        api_error(404, RULE_NOT_FOUND_404)
    return gate, rules[index]


_Z = {80: 1.2816, 90: 1.6449, 95: 1.96, 99: 2.5758}


@routes.get(f"{_RULE}/pulse_results")
async def pulse_results(request: web.Request) -> web.Response:
    """``GET /gates/{id}/rules/{ruleID}/pulse_results?cuped&confidence``: one row per monitoring metric."""
    gate, rule = _pulse_rule(request)
    query = request.rel_url.query
    cuped = query.get("cuped", "true")
    if cuped not in ("true", "false"):
        field_error("cuped", 'Allowed values are "true" or "false"')
    try:
        confidence = float(query.get("confidence", "95"))
    except ValueError:
        field_error("confidence", "Expected a number between 0 and 100")
    if not 0 < confidence < 100:
        field_error("confidence", "Expected a number between 0 and 100")
    z = _Z.get(round(confidence), 1.96) * (0.8 if cuped == "true" else 1.0)
    metrics = gate.get("monitoringMetrics") or [{"name": "dau", "type": "user"}]
    rows = []
    for metric in metrics:
        seed = (str(gate["id"]), str(rule["baseID"]), str(metric["name"]))
        control = round(0.05 + _unit(*seed, "mean") * 0.5, 4)
        lift = round((_unit(*seed, "lift") - 0.5) * 0.1, 4)
        test = round(control * (1 + lift), 4)
        std = round(control * 0.1, 4)
        units = 1000 + int(_unit(*seed, "units") * 9000)
        ci = round(z * std / units**0.5 * 2, 6)
        rows.append(
            {
                "metricID": f"{metric['name']}::{metric.get('type', 'user')}",
                "metricName": str(metric["name"]),
                "directionality": "increase",
                "absoluteChange": round(test - control, 6),
                "confidenceIntervalDelta": ci,
                "percentChange": round(lift * 100, 4),
                "percentConfidenceIntervalDelta": round(ci / control * 100, 4),
                "testMean": test,
                "controlMean": control,
                "testStd": std,
                "controlStd": std,
                "testUnits": units,
                "controlUnits": units,
                "pValue": round(_unit(*seed, "p"), 4),
            }
        )
    data = {"ds": _day(now_ms(request) - 86_400_000), "monitoringMetrics": rows}
    return ok(data, "Successfully loaded Pulse Results")


@routes.get(f"{_RULE}/pulse_load_history")
async def pulse_load_history(request: web.Request) -> web.Response:
    """``GET /gates/{id}/rules/{ruleID}/pulse_load_history``: daily full loads since creation (≤3)."""
    gate, _ = _pulse_rule(request)
    created = float(gate.get("createdTime") or now_ms(request))
    items = []
    for day in range(3):
        started = created + day * 86_400_000
        items.append(
            {
                "creatorName": "CONSOLE API",
                "createdTime": started,
                "finishedTime": started + 60_000,
                "finishedState": "success",
                "startDs": _day(created),
                "endDs": _day(started),
                "reloadType": "full" if day == 0 else "incremental",
                "turboMode": False,
            }
        )
    items.reverse()
    return ok_page(request, items, "Pulse load history listed successfully.")


@routes.post(f"{_GATE}/load_pulse")
async def load_pulse(request: web.Request) -> web.Response:
    """``POST /gates/{id}/load_pulse`` ``{ruleId, refresh?, metricIDs?, turboMode?}``."""
    gate = _gate(request)
    body = require_fields(await read_body(request), "ruleId")
    check_types(
        body,
        {"ruleId": "string", "refresh": "string", "metricIDs": "string[]", "turboMode": "boolean"},
    )
    if body.get("refresh", "full") not in ("full", "incremental", "metric"):
        field_error("refresh", "Invalid enum value. Expected 'full' | 'incremental' | 'metric'")
    if find_rule(gate.get("rules") or [], body["ruleId"]) is None:
        api_error(
            400,
            RULE_NOT_FOUND,
            [{"property": "ruleId", "errorMessage": f"Unknown rule id {body['ruleId']}"}],
        )
    return ok(message="Gate loaded successfully.", with_data=False)


@routes.post(f"{_GATE}/alerts/{{metricId}}/resolve")
async def resolve_alert(request: web.Request) -> web.Response:
    """``POST /gates/{id}/alerts/{metricId}/resolve`` ``{reasoning?}``: 404 unless a monitoring metric."""
    gate = _gate(request)
    body = _object(await read_body(request, required=False) or {})
    check_types(body, {"reasoning": "string"})
    metric_id = request.match_info["metricId"]
    known = {
        ref
        for m in gate.get("monitoringMetrics") or []
        for ref in (str(m.get("name")), f"{m.get('name')}::{m.get('type')}")
    }
    if metric_id not in known:
        api_error(404, "Metric not found")
    return ok({"resolvedAt": now_ms(request)}, "Metric rollout alert resolved successfully")
