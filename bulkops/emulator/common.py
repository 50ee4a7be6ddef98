"""Shared entity logic for emulator handlers: ids from names, metadata, rules, references.

Stored objects are exactly the API's response shape (no hidden fields), so a
snapshot is the API's own data and a seed can be written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web

from .checks import field_error
from .http import api_error, now_ms, project
from .state import Project, new_base_id

__all__ = [
    "CONDITION_KEYS",
    "CONDITION_TYPES",
    "OVERRIDE_LISTS",
    "RULE_KEYS",
    "SEGMENT_CONDITION_TYPES",
    "empty_list_overrides",
    "environment_names",
    "find_rule",
    "get_or_404",
    "new_metadata",
    "normalize_rules",
    "referenced_ids",
    "rule_id",
    "sanitize_rules",
    "stored_list_overrides",
]

CONDITION_TYPES = frozenset(
    {
        "app_version",
        "browser_name",
        "browser_version",
        "country",
        "custom_field",
        "email",
        "environment_tier",
        "fails_gate",
        "fails_segment",
        "ip_address",
        "locale",
        "os_name",
        "os_version",
        "passes_gate",
        "passes_segment",
        "public",
        "time",
        "unit_id",
        "user_id",
        "url",
        "javascript",
        "device_model",
        "target_app",
    }
)
# Segment rules take every condition type but the gate, client and app ones.
SEGMENT_CONDITION_TYPES = CONDITION_TYPES - {
    "device_model",
    "fails_gate",
    "javascript",
    "locale",
    "passes_gate",
    "public",
    "target_app",
    "time",
    "url",
}


def new_metadata(
    request: web.Request, obj_id: str, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Common metadata of a newly created config object (version 1, creator = CONSOLE API)."""
    ts = now_ms(request)
    return {
        "id": obj_id,
        "name": name,
        "description": body.get("description") or "",
        "idType": body.get("idType") or "userID",
        "lastModifierID": "console_api",
        "lastModifiedTime": ts,
        "lastModifierEmail": None,
        "lastModifierName": "CONSOLE API",
        "creatorID": body.get("creatorID") or "console_api",
        "createdTime": ts,
        "creatorName": "CONSOLE API",
        "creatorEmail": body.get("creatorEmail"),
        "tags": list(body.get("tags") or []),
        "targetApps": list(body.get("targetApps") or []),
        "holdoutIDs": [],
        "team": body.get("team"),
        "teamID": body.get("teamID"),
        "owner": {
            "ownerID": "console_api",
            "ownerType": "SDK_KEY",
            "ownerName": "CONSOLE API",
            "ownerEmail": "",
        },
        "version": 1,
    }


def get_or_404(request: web.Request, kind: str, obj_id: str, label: str) -> dict[str, Any]:
    """The stored object ``kind/obj_id`` of the caller's project, or 404 ``"<label> not found."``."""
    obj = project(request).store(kind).get(obj_id)
    if obj is None:
        api_error(404, f"{label} not found.")
    return obj


def rule_id(base_id: str, pass_percentage: float, n: int = 1) -> str:
    """The rule ``id``: ``baseID:<pass percentage, 2 decimals>:<n>``."""
    return f"{base_id}:{float(pass_percentage):.2f}:{n}"


def _check_percentage(value: Any, prop: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        field_error(prop, f"Expected number, received {type(value).__name__}")
    if not 0 <= value <= 100:
        field_error(prop, "passPercentage must be between 0 and 100")
    if abs(round(value * 100) - value * 100) > 1e-6:
        field_error(prop, "passPercentage must be a multiple of 0.01")
    return float(value)


def normalize_rules(
    rules: Any,
    *,
    existing: Iterable[dict[str, Any]] = (),
    allowed_types: frozenset[str] = CONDITION_TYPES,
    require_pass_percentage: bool = True,
    environments: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Validate a rule list and give each rule its server-owned ``id``/``baseID``.

    A rule that carries the ``id`` or ``baseID`` of one of ``existing`` keeps its
    ``baseID``; its ``id`` suffix changes only if the pass percentage changed. New
    rules get a fresh base id. Errors are the service's 400s: duplicate names,
    unknown rule ids, bad condition types, bad percentages, unknown environments.
    """
    if not isinstance(rules, list):
        field_error("rules", "Expected array")
    by_id: dict[str, dict[str, Any]] = {}
    for prev in existing:
        by_id[str(prev.get("id"))] = prev
        by_id[str(prev.get("baseID"))] = prev
    known_envs = set(environments) if environments is not None else None
    names: set[str] = set()
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(rules):
        prop = f"rules[{index}]"
        if not isinstance(raw, dict):
            field_error(prop, "Expected object")
        rule = dict(raw)
        name = rule.get("name")
        if not isinstance(name, str) or not name:
            field_error(f"{prop}.name", "Rule name is required")
        if name in names:
            api_error(
                400,
                "Duplicate rule name(s) given",
                [{"property": "rules", "errorMessage": f"Duplicate rule name: {name}"}],
            )
        names.add(name)
        if "passPercentage" in rule or require_pass_percentage:
            rule["passPercentage"] = _check_percentage(
                rule.get("passPercentage"), f"{prop}.passPercentage"
            )
        conditions = rule.get("conditions")
        if not isinstance(conditions, list):
            field_error(f"{prop}.conditions", "Expected array")
        rule["conditions"] = [
            _check_condition(c, f"{prop}.conditions[{i}]", allowed_types)
            for i, c in enumerate(conditions)
        ]
        envs = rule.get("environments")
        if envs is not None:
            if not isinstance(envs, list) or not all(isinstance(e, str) for e in envs):
                field_error(f"{prop}.environments", "Expected array of strings or null")
            if known_envs is not None:
                unknown = [e for e in envs if e not in known_envs]
                if unknown:
                    field_error(
                        f"{prop}.environments", f"Unknown environment(s): {', '.join(unknown)}"
                    )
        rule.setdefault("environments", None)
        given = rule.pop("id", None) or rule.pop("baseID", None)
        rule.pop("baseID", None)
        old: dict[str, Any] | None = by_id.get(str(given)) if given is not None else None
        if given is not None and old is None and existing:
            api_error(
                400,
                "A provided rule ID does not match an existing rule ID",
                [{"property": "rules", "errorMessage": f"Unknown rule id {given}"}],
            )
        base = str(old["baseID"]) if old else new_base_id()
        pct = float(rule.get("passPercentage", 100))
        if old is not None and float(old.get("passPercentage", 100)) == pct:
            rule["id"] = old["id"]
        else:
            n = (
                int(str(old["id"]).rsplit(":", 1)[-1]) + 1
                if old is not None and str(old["id"]).count(":") == 2
                else 1
            )
            rule["id"] = rule_id(base, pct, n)
        rule["baseID"] = base
        out.append(rule)
    return out


def _check_condition(raw: Any, prop: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        field_error(prop, "Expected object")
    ctype = raw.get("type")
    if ctype not in allowed:
        field_error(f"{prop}.type", f"Invalid condition type {ctype!r}")
    cond = dict(raw)
    if ctype == "custom_field" and not cond.get("field"):
        field_error(f"{prop}.field", "field is required for custom_field conditions")
    target = cond.get("targetValue")
    if target is not None and not isinstance(target, str | int | float | list):
        field_error(f"{prop}.targetValue", "targetValue must be a string, number or array")
    return cond


_REFERENCE_TYPES = {
    "passes_gate": "gate",
    "fails_gate": "gate",
    "passes_segment": "segment",
    "fails_segment": "segment",
}


def referenced_ids(rules: Iterable[dict[str, Any]], kind: str) -> Iterator[str]:
    """Ids of the ``kind`` ("gate" or "segment") objects that ``rules`` reference."""
    for rule in rules or ():
        for cond in rule.get("conditions") or ():
            if _REFERENCE_TYPES.get(str(cond.get("type"))) != kind:
                continue
            target = cond.get("targetValue")
            values = target if isinstance(target, list) else [target]
            for value in values:
                if isinstance(value, str) and value:
                    yield value


def environment_names(request: web.Request) -> list[str]:
    """The names of the caller's project's environments (for rule validation)."""
    return [str(env.get("name")) for env in project(request).environments]


def find_rule(rules: Iterable[dict[str, Any]], rule_ref: str) -> int | None:
    """The index of the rule whose ``id`` or ``baseID`` is ``rule_ref``, or None."""
    for index, rule in enumerate(rules):
        if rule_ref in (rule.get("id"), rule.get("baseID")):
            return index
    return None


RULE_KEYS = frozenset(
    {
        "name",
        "passPercentage",
        "conditions",
        "environments",
        "id",
        "baseID",
        "returnValue",
        "completedAutomatedRollouts",
        "pendingAutomatedRollouts",
    }
)
CONDITION_KEYS = frozenset({"type", "operator", "targetValue", "field", "customID"})


def sanitize_rules(rules: Any, extra_keys: Iterable[str] = ()) -> Any:
    """Keep only the rule and condition fields the API stores (unknown keys are dropped).

    A null ``operator`` is dropped too (the response schema types it as a string).
    Anything that is not a list of objects is returned unchanged, for
    :func:`normalize_rules` to reject with the service's message.
    """
    if not isinstance(rules, list):
        return rules
    keys = RULE_KEYS | frozenset(extra_keys)
    out: list[Any] = []
    for rule in rules:
        if not isinstance(rule, dict):
            out.append(rule)
            continue
        clean = {k: v for k, v in rule.items() if k in keys}
        conditions = clean.get("conditions")
        if isinstance(conditions, list):
            clean["conditions"] = [
                {
                    k: v
                    for k, v in cond.items()
                    if k in CONDITION_KEYS and not (k == "operator" and v is None)
                }
                if isinstance(cond, dict)
                else cond
                for cond in conditions
            ]
        out.append(clean)
    return out


# -- gate and holdout overrides (UpdateOverridesContractDto) -----------------------------

# The id lists of gate and holdout overrides, beside ``environmentOverrides``.
OVERRIDE_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")


def empty_list_overrides() -> dict[str, Any]:
    """Gate or holdout overrides with every list empty."""
    return {key: [] for key in OVERRIDE_LISTS} | {"environmentOverrides": []}


def stored_list_overrides(proj: Project, kind: str, obj_id: str) -> dict[str, Any]:
    """The overrides of ``kind/obj_id``, every list present (seeds may leave some out)."""
    return {**empty_list_overrides(), **(proj.overrides.get(kind, {}).get(obj_id) or {})}
