"""Emulator handlers: dynamic configs (every operation of the spec's "Dynamic Configs" tag).

Also served: the rule endpoints the Terraform provider uses that the spec no longer
lists, ``POST /dynamic_configs/{id}/rule`` and ``PATCH``/``DELETE
/dynamic_configs/{id}/rule/name/{ruleName}``.

Where the spec is silent these are our choices (``[inferred]`` in console-api.md):

* **Status** is ``Archived`` if archived, else ``Disabled`` if not enabled, else
  ``Enabled``. enable/disable/archive/unarchive already in effect answer 200 and
  change nothing; enable/disable on an archived config are refused with 400.
  Archived configs are left out of ``GET /dynamic_configs`` unless
  ``includeArchived=true``.
* ``defaultValue`` and rule ``returnValue`` are JSON objects. Their ``…Json5`` text
  twins are accepted when they hold plain JSON (JSON5 extensions are not parsed);
  given together, both must mean the same object. When only the value changes, a
  stored text twin is rewritten from it. ``schema``/``schemaJson5`` must be JSON text
  (or null); values are not validated against the schema.
* Rules may omit ``passPercentage`` (100), and may reference only gates and segments
  that exist.
* ``GET /dynamic_configs/{id}/rules`` answers ``data: [{rules}]`` plus pagination (the
  spec's example). A rule is named by ``id`` or ``baseID``; an unknown one is 404
  ``"Rule not found."`` on reads and 400 ``"A provided rule ID does not match an
  existing rule ID"`` on changes.

Audit ``actionType`` per change: ``dynamic_config_create``, ``config_update``,
``config_conditions_update`` (rule endpoints), ``config_state_toggle``
(enable/disable), ``config_archive``, ``config_unarchive``, ``config_delete``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from aiohttp import web

from ..checks import check_name, check_types, field_error, json_object, require_fields
from ..common import environment_names, find_rule, normalize_rules, sanitize_rules
from ..http import PREFIX, api_error, clone, ok, ok_page, project, read_body
from . import versioned
from .gates import RULE_NOT_FOUND, check_rule_references, check_text
from .versioned import Actions, ConfigKind, Messages

__all__ = ["DYNAMIC_CONFIGS", "routes"]

_KIND = "dynamic_configs"
_CONFIGS = f"{PREFIX}/dynamic_configs"
_CONFIG = f"{_CONFIGS}/{{id}}"
_RULE = f"{_CONFIG}/rule/{{ruleId}}"
_RULE_BY_NAME = f"{_CONFIG}/rule/name/{{ruleName}}"

UPDATED = "Dynamic config updated successfully."
RULES_UPDATED = "Dynamic Config rules updated successfully."
RULE_DELETED = "Dynamic Config rule deleted successfully."
RULE_NAME_NOT_FOUND = "A provided rule name does not match an existing rule name"

# JSON types of the fields DynamicConfigCreateDto / …FullUpdateDto / …PartialUpdateDto accept.
_FIELD_TYPES = {
    "name": "string",
    "id": "string",
    "description": "string",
    "isEnabled": "boolean",
    "rules": "array",
    "defaultValue": "object",
    "defaultValueJson5": "string",
    "idType": "string",
    "tags": "string[]",
    "creatorID": "string?",
    "owner": "object?",
    "creatorEmail": "string?",
    "schema": "string?",
    "schemaJson5": "string?",
    "targetApps": "string|string[]",
    "team": "string?",
    "teamID": "string?",
    "releasePipelineID": "string?",
    "isTemplate": "boolean",
}
_PLAIN_FIELDS = (
    "description",
    "isEnabled",
    "idType",
    "tags",
    "creatorID",
    "creatorEmail",
    "team",
    "teamID",
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
    "returnValueJson5": "string",
    "variants": "array",
}
_VARIANT_TYPES = {
    "id": "string",
    "name": "string",
    "passPercentage": "number",
    "returnValue": "object",
    "returnValueJson5": "string",
}


def _json_text(text: str, prop: str, *, want_object: bool = True) -> Any:
    """Parse JSON text (JSON5 extensions are not supported); 400 naming ``prop`` if invalid."""
    try:
        value = json.loads(text)
    except ValueError:
        field_error(prop, f"{prop} is not valid JSON")
    if want_object and not isinstance(value, dict):
        field_error(prop, f"{prop} must hold a JSON object")
    return value


def _value_pair(
    given: dict[str, Any],
    current: dict[str, Any],
    value_key: str,
    text_key: str,
    prefix: str = "",
) -> dict[str, Any]:
    """Reconcile an object value and its JSON5 text twin; return the fields to set."""
    out: dict[str, Any] = {}
    if given.get(text_key) is not None:
        parsed = _json_text(given[text_key], prefix + text_key)
        if value_key in given and given[value_key] != parsed:
            field_error(prefix + text_key, f"{text_key} must parse to the same JSON as {value_key}")
        out[value_key] = parsed
        out[text_key] = given[text_key]
    elif value_key in given:
        out[value_key] = clone(given[value_key])
        if current.get(text_key) is not None:
            out[text_key] = json.dumps(given[value_key], indent=2)
    return out


def _rules(
    request: web.Request, raw: Any, _config_id: str, existing: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Validate a config's whole rule list; rules carrying known ids keep their ``baseID``."""
    rules = normalize_rules(
        sanitize_rules(raw, ("returnValueJson5", "variants")),
        existing=list(existing),
        require_pass_percentage=False,
        environments=environment_names(request),
    )
    for index, rule in enumerate(rules):
        prefix = f"rules[{index}]."
        check_types(rule, _RULE_FIELD_TYPES, prefix=prefix)
        rule.update(_value_pair(rule, {}, "returnValue", "returnValueJson5", prefix))
        for number, variant in enumerate(rule.get("variants") or []):
            vprefix = f"{prefix}variants[{number}]."
            if not isinstance(variant, dict):
                field_error(vprefix.rstrip("."), "Expected object")
            require_fields(variant, "name", "passPercentage")
            check_types(variant, _VARIANT_TYPES, prefix=vprefix)
            if not 0 <= variant["passPercentage"] <= 100:
                field_error(vprefix + "passPercentage", "passPercentage must be between 0 and 100")
            variant.update(_value_pair(variant, {}, "returnValue", "returnValueJson5", vprefix))
        rule.setdefault("passPercentage", 100.0)
        rule.setdefault("completedAutomatedRollouts", [])
        rule.setdefault("pendingAutomatedRollouts", [])
    check_rule_references(request, rules)
    return rules


def _changes(
    request: web.Request, body: dict[str, Any], config_id: str, current: dict[str, Any] | None
) -> dict[str, Any]:
    """Validate a create/update body and return the fields to set (rules normalised)."""
    check_types(body, _FIELD_TYPES)
    current = current or {}
    out: dict[str, Any] = {}
    if "name" in body:
        out["name"] = check_name(body["name"])
    check_text(body, "description")
    for name in _PLAIN_FIELDS:
        if name in body:
            out[name] = clone(body[name])
    if "targetApps" in body:
        apps = body["targetApps"]
        out["targetApps"] = [apps] if isinstance(apps, str) else list(apps)
    if body.get("owner") is not None:
        check_types(
            body["owner"],
            dict.fromkeys(("ownerID", "ownerType", "ownerName", "ownerEmail"), "string"),
            prefix="owner.",
        )
        out["owner"] = clone(body["owner"])
    out.update(_value_pair(body, current, "defaultValue", "defaultValueJson5"))
    for key in ("schema", "schemaJson5"):
        if key in body:
            if body[key] is not None:
                _json_text(body[key], key, want_object=False)
            out[key] = body[key]
    if "rules" in body:
        out["rules"] = _rules(request, body["rules"], config_id, current.get("rules") or [])
    return out


def _defaults(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "isEnabled": True,
        "status": "Enabled",
        "rules": [],
        "defaultValue": {},
        "schema": None,
        "releasePipelineID": None,
        "isTemplate": bool(body.get("isTemplate", False)),
    }


DYNAMIC_CONFIGS = ConfigKind(
    kind=_KIND,
    label="Dynamic config",
    messages=Messages(
        read="Dynamic config read successfully.",
        created="Dynamic Config created successfully.",
        updated=UPDATED,
        deleted="Dynamic Config deleted successfully.",
        versions="Dynamic config versions listed successfully.",
        rules="Dynamic Config rules read successfully.",
    ),
    actions=Actions(
        create="dynamic_config_create",
        update="config_update",
        archive="config_archive",
        unarchive="config_unarchive",
    ),
    changes=_changes,
    defaults=_defaults,
    live_status="Enabled",
    launched_status="Enabled",
    toggle_changes=lambda _action, enabled: {"isEnabled": enabled},
    archive_guard=lambda _request, _config, _body: {},
)
"""Dynamic configs as a versioned config object (:mod:`.versioned`)."""


def _merged(rule: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``rule`` with a partial rule applied; its ids stay and a stale JSON5 twin is rewritten."""
    merged = versioned.merged_rule(rule, patch, _RULE_FIELD_TYPES)
    if "returnValue" in patch and "returnValueJson5" not in patch:
        merged.pop("returnValueJson5", None)
        merged.update(_value_pair(patch, rule, "returnValue", "returnValueJson5"))
    return merged


# -- list, create, read, update, delete ---------------------------------------------------


async def list_configs(request: web.Request) -> web.Response:
    """``GET /dynamic_configs`` with the spec's filters; archived only with ``includeArchived=true``."""
    query = request.rel_url.query
    tags = set(query.getall("tags", []))
    include_archived = query.get("includeArchived", "").lower() == "true"
    exact = {
        key: query[key] for key in ("creatorName", "creatorID", "releasePipelineID") if key in query
    }
    items = [  # serialised at once by ok_page: no copies needed
        c
        for c in project(request).store(_KIND).values()
        if (include_archived or c.get("status") != "Archived")
        and (not tags or tags.intersection(c.get("tags") or []))
        and all(c.get(key) == value for key, value in exact.items())
    ]
    return ok_page(request, items, "Dynamic Configs listed successfully.")


# -- rules --------------------------------------------------------------------------------


def _rule_index(config: dict[str, Any], rule_ref: str, *, read: bool = False) -> int:
    index = find_rule(config.get("rules") or [], rule_ref)
    if index is None:
        if read:
            api_error(404, "Rule not found.")
        api_error(
            400,
            RULE_NOT_FOUND,
            [{"property": "ruleId", "errorMessage": f"Unknown rule id {rule_ref}"}],
        )
    return index


def _rule_named(config: dict[str, Any], name: str) -> int:
    for index, rule in enumerate(config.get("rules") or []):
        if rule.get("name") == name:
            return index
    api_error(
        400,
        RULE_NAME_NOT_FOUND,
        [{"property": "ruleName", "errorMessage": f"Unknown rule name {name}"}],
    )


# How a rule endpoint names its rule: (config, request) → the rule's index, or a 400.
_RuleLocator = Callable[[dict[str, Any], web.Request], int]


def _by_ref(config: dict[str, Any], request: web.Request) -> int:
    return _rule_index(config, request.match_info["ruleId"])


def _by_name(config: dict[str, Any], request: web.Request) -> int:
    return _rule_named(config, request.match_info["ruleName"])


async def get_rule(request: web.Request) -> web.Response:
    """``GET /dynamic_configs/{id}/rule/{ruleId}``: one rule, by ``id`` or ``baseID``."""
    config = DYNAMIC_CONFIGS.get(request)
    index = _rule_index(config, request.match_info["ruleId"], read=True)
    return ok(config["rules"][index], "Dynamic Config rules read successfully.")


async def update_rule(locate: _RuleLocator, request: web.Request) -> web.Response:
    """``PATCH …/rule/{ruleId}`` or (Terraform provider) ``…/rule/name/{ruleName}``."""
    config = DYNAMIC_CONFIGS.get(request)
    index = locate(config, request)
    patch = json_object(await read_body(request))
    existing = clone(config.get("rules") or [])
    rules = clone(existing)
    rules[index] = _merged(rules[index], patch)
    normalized = _rules(request, rules, str(config["id"]), existing)
    return versioned.replace_rules(request, DYNAMIC_CONFIGS, config, normalized, RULES_UPDATED)


async def delete_rule(locate: _RuleLocator, request: web.Request) -> web.Response:
    """``DELETE …/rule/{ruleId}`` or (Terraform provider) ``…/rule/name/{ruleName}``."""
    config = DYNAMIC_CONFIGS.get(request)
    rules = clone(config.get("rules") or [])
    del rules[locate(config, request)]
    return versioned.replace_rules(request, DYNAMIC_CONFIGS, config, rules, RULE_DELETED)


async def add_rule(request: web.Request) -> web.Response:
    """``POST /dynamic_configs/{id}/rule`` (Terraform provider): append one rule."""
    config = DYNAMIC_CONFIGS.get(request)
    rule = require_fields(json_object(await read_body(request)), "name", "conditions")
    existing = clone(config.get("rules") or [])
    rules = _rules(request, [*existing, *versioned.fresh([rule])], str(config["id"]), existing)
    message = "Dynamic Config rule added successfully."
    return versioned.replace_rules(request, DYNAMIC_CONFIGS, config, rules, message)


routes = [
    web.get(_CONFIGS, list_configs),
    web.post(_CONFIGS, partial(versioned.create, DYNAMIC_CONFIGS)),
    web.get(_CONFIG, partial(versioned.read, DYNAMIC_CONFIGS)),
    web.post(_CONFIG, partial(versioned.update, DYNAMIC_CONFIGS, full=True)),
    web.patch(_CONFIG, partial(versioned.update, DYNAMIC_CONFIGS, full=False)),
    web.delete(_CONFIG, partial(versioned.delete, DYNAMIC_CONFIGS)),
    web.put(f"{_CONFIG}/enable", partial(versioned.set_enabled, DYNAMIC_CONFIGS, "enable")),
    web.put(f"{_CONFIG}/disable", partial(versioned.set_enabled, DYNAMIC_CONFIGS, "disable")),
    web.put(f"{_CONFIG}/archive", partial(versioned.archive, DYNAMIC_CONFIGS)),
    web.put(f"{_CONFIG}/unarchive", partial(versioned.unarchive, DYNAMIC_CONFIGS)),
    web.get(f"{_CONFIG}/versions", partial(versioned.versions, DYNAMIC_CONFIGS)),
    web.get(f"{_CONFIG}/rules", partial(versioned.get_rules, DYNAMIC_CONFIGS)),
    web.get(_RULE, get_rule),
    web.patch(_RULE, partial(update_rule, _by_ref)),
    web.delete(_RULE, partial(delete_rule, _by_ref)),
    web.post(f"{_CONFIG}/rule", add_rule),
    web.patch(_RULE_BY_NAME, partial(update_rule, _by_name)),
    web.delete(_RULE_BY_NAME, partial(delete_rule, _by_name)),
]
"""The dynamic config routes: the spec's, then the Terraform provider's rule endpoints."""
