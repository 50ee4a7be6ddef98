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

from collections.abc import Iterable
from functools import partial
from typing import Any

from aiohttp import web

from ..checks import check_name, check_types, field_error, json_object, json_type, require_fields
from ..common import (
    OVERRIDE_LISTS,
    environment_names,
    find_rule,
    normalize_rules,
    referenced_ids,
    sanitize_rules,
    stored_list_overrides,
)
from ..http import (
    GENERIC_400,
    PREFIX,
    api_error,
    clone,
    ok,
    ok_page,
    project,
    read_body,
    record_change,
)
from ..state import Project
from . import versioned
from .versioned import Actions, ConfigKind, Messages

__all__ = [
    "GATES",
    "MAX_OVERRIDE_IDS",
    "RULE_NOT_FOUND",
    "check_rule_references",
    "check_text",
    "gate_references",
    "routes",
]

_KIND = "gates"
_GATES = f"{PREFIX}/gates"
_GATE = f"{_GATES}/{{id}}"
_RULE = f"{_GATE}/rules/{{ruleID}}"

GATE_TYPES = ("TEMPORARY", "PERMANENT", "STALE", "TEMPLATE")
WRITABLE_TYPES = ("PERMANENT", "TEMPORARY")
# "NONE", or why the service thinks the gate is stale.
TYPE_REASONS = (
    "NONE",
    *(
        f"STALE_{reason}"
        for reason in (
            "PROBABLY_LAUNCHED",
            "PROBABLY_UNLAUNCHED",
            "PROBABLY_FORGOTTEN",
            "NO_RULES",
            "PROBABLY_DEAD_CHECK",
            "EMPTY_CHECKS",
            "ALL_TRUE",
            "ALL_FALSE",
        )
    ),
)
RATE_BUCKETS = ("0", "100", "INBETWEEN")
MAX_OVERRIDE_IDS = 2000
RULE_NOT_FOUND = "A provided rule ID does not match an existing rule ID"
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


def _defaults(body: dict[str, Any]) -> dict[str, Any]:
    return {
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


def _archive_guard(
    request: web.Request, gate: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """Refuse (400, naming them) while live gates, configs or experiments use the gate.

    ``forceArchive: true`` archives anyway (our choice).
    """
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
    return {"forced": bool(body.get("forceArchive"))}


GATES = ConfigKind(
    kind=_KIND,
    label="Gate",
    messages=Messages(
        read="Gate read successfully.",
        created="Gate created successfully.",
        updated=UPDATED,
        deleted="Gate deleted successfully.",
        versions="Gate versions listed successfully.",
        rules="Gate rules read successfully.",
    ),
    actions=Actions(
        create="gate_create",
        update="gate_update",
        archive="gate_archive",
        unarchive="gate_unarchive",
    ),
    changes=_changes,
    defaults=_defaults,
    live_status="In Progress",
    launched_status="Launched",
    toggle_changes=lambda action, _enabled: {"action": action},
    archive_guard=_archive_guard,
    has_overrides=True,
)
"""Gates as a versioned config object (:mod:`.versioned`)."""


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


# -- list and references -------------------------------------------------------------------


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


async def list_references(which: int, message: str, request: web.Request) -> web.Response:
    """``GET /gates/{id}/<kind>_references``: what uses this gate (``which`` of :func:`gate_references`)."""
    gate = GATES.get(request)
    return ok_page(request, gate_references(project(request), str(gate["id"]))[which], message)


# -- overrides ------------------------------------------------------------------------------


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
    body = json_object(body)
    has_users = any(key in body for key in OVERRIDE_LISTS)
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
        for key in OVERRIDE_LISTS:
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
    for name in OVERRIDE_LISTS:
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
    lists: list[tuple[str, list[str]]] = [(name, out.get(name) or []) for name in OVERRIDE_LISTS]
    lists += [
        (f"environmentOverrides[{i}].{side}", e[side])
        for i, e in enumerate(out["environmentOverrides"])
        for side in ("passingIDs", "failingIDs")
    ]
    for prop, values in lists:
        if len(values) > MAX_OVERRIDE_IDS:
            field_error(prop, f"Array must contain at most {MAX_OVERRIDE_IDS} element(s)")
    return out


async def change_overrides(mode: str, request: web.Request) -> web.Response:
    """``POST``/``PATCH``/``DELETE /gates/{id}/overrides``: ``mode`` replace, add or remove."""
    gate = GATES.get(request)
    gate_id = str(gate["id"])
    given = _parse_overrides(request, await read_body(request))
    result = _apply_overrides(stored_list_overrides(project(request), _KIND, gate_id), given, mode)
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


async def get_overrides(request: web.Request) -> web.Response:
    """``GET /gates/{id}/overrides`` (201, as the spec documents)."""
    gate = GATES.get(request)
    overrides = stored_list_overrides(project(request), _KIND, str(gate["id"]))
    return ok(overrides, "Gate Overrides read successfully.", status=201)


# -- rules --------------------------------------------------------------------------------


async def add_rules(many: bool, request: web.Request) -> web.Response:
    """``POST /gates/{id}/rule`` (one rule) or ``POST /gates/{id}/rules`` ``{rules: [...]}``."""
    gate = GATES.get(request)
    if many:
        body = require_fields(await read_body(request), "rules")
        check_types(body, {"rules": "array"})
        given = body["rules"]
    else:
        given = [json_object(await read_body(request))]
    existing = clone(gate.get("rules") or [])
    rules = _rules(request, [*existing, *versioned.fresh(given)], str(gate["id"]), existing)
    return versioned.replace_rules(request, GATES, gate, rules, "Gate rules added successfully.")


async def update_rules(request: web.Request) -> web.Response:
    """``PATCH /gates/{id}/rules``: update the rules matched by ``id``/``baseID``; others stay."""
    gate = GATES.get(request)
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
        rules[found] = versioned.merged_rule(rules[found], patch, _RULE_FIELD_TYPES)
    normalized = _rules(request, rules, str(gate["id"]), existing)
    return versioned.replace_rules(request, GATES, gate, normalized, UPDATED)


def _rule_index(gate: dict[str, Any], rule_ref: str) -> int:
    index = find_rule(gate.get("rules") or [], rule_ref)
    if index is None:
        api_error(
            400,
            RULE_NOT_FOUND,
            [{"property": "ruleID", "errorMessage": f"Unknown rule id {rule_ref}"}],
        )
    return index


async def update_rule(request: web.Request) -> web.Response:
    """``PATCH /gates/{id}/rules/{ruleID}``: change one rule, named by ``id`` or ``baseID``."""
    gate = GATES.get(request)
    patch = json_object(await read_body(request))
    index = _rule_index(gate, request.match_info["ruleID"])
    existing = clone(gate.get("rules") or [])
    rules = clone(existing)
    rules[index] = versioned.merged_rule(rules[index], patch, _RULE_FIELD_TYPES)
    normalized = _rules(request, rules, str(gate["id"]), existing)
    return versioned.replace_rules(request, GATES, gate, normalized, UPDATED)


async def delete_rule(request: web.Request) -> web.Response:
    """``DELETE /gates/{id}/rules/{ruleID}``: the gate without that rule."""
    gate = GATES.get(request)
    index = _rule_index(gate, request.match_info["ruleID"])
    rules = clone(gate.get("rules") or [])
    del rules[index]
    return versioned.replace_rules(request, GATES, gate, rules, UPDATED)


routes = [
    web.get(_GATES, list_gates),
    web.post(_GATES, partial(versioned.create, GATES)),
    web.get(_GATE, partial(versioned.read, GATES)),
    web.post(_GATE, partial(versioned.update, GATES, full=True)),
    web.patch(_GATE, partial(versioned.update, GATES, full=False)),
    web.delete(_GATE, partial(versioned.delete, GATES)),
    web.put(f"{_GATE}/enable", partial(versioned.set_enabled, GATES, "enable")),
    web.put(f"{_GATE}/disable", partial(versioned.set_enabled, GATES, "disable")),
    web.put(f"{_GATE}/launch", partial(versioned.set_enabled, GATES, "launch")),
    web.put(f"{_GATE}/archive", partial(versioned.archive, GATES)),
    web.put(f"{_GATE}/unarchive", partial(versioned.unarchive, GATES)),
    web.get(f"{_GATE}/versions", partial(versioned.versions, GATES)),
    web.get(f"{_GATE}/gate_references", partial(list_references, 0, "Gates listed successfully.")),
    web.get(
        f"{_GATE}/dynamic_config_references",
        partial(list_references, 1, "Dynamic Configs listed successfully."),
    ),
    web.get(
        f"{_GATE}/experiment_references",
        partial(list_references, 2, "Experiments listed successfully."),
    ),
    web.get(f"{_GATE}/overrides", get_overrides),
    web.post(f"{_GATE}/overrides", partial(change_overrides, "replace")),
    web.patch(f"{_GATE}/overrides", partial(change_overrides, "add")),
    web.delete(f"{_GATE}/overrides", partial(change_overrides, "remove")),
    web.get(f"{_GATE}/rules", partial(versioned.get_rules, GATES)),
    web.post(f"{_GATE}/rule", partial(add_rules, False)),
    web.post(f"{_GATE}/rules", partial(add_rules, True)),
    web.patch(f"{_GATE}/rules", update_rules),
    web.patch(_RULE, update_rule),
    web.delete(_RULE, delete_rule),
]
"""The gate routes, in the spec's order (analytics: :mod:`.pulse`)."""
