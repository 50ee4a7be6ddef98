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
    new_metadata,
    normalize_rules,
    require_fields,
    sanitize_rules,
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
from .gates import RULE_NOT_FOUND, check_rule_references, check_text

__all__ = ["routes"]

routes = web.RouteTableDef()

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


def _config(request: web.Request) -> dict[str, Any]:
    return get_or_404(request, _KIND, request.match_info["id"], "Dynamic config")


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        api_error(
            400, GENERIC_400, [{"property": "body", "errorMessage": "Expected a JSON object"}]
        )
    return body


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
    request: web.Request, raw: Any, existing: Iterable[dict[str, Any]] = ()
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
    request: web.Request, body: dict[str, Any], current: dict[str, Any] | None
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
        out["rules"] = _rules(request, body["rules"], current.get("rules") or [])
    return out


def _name_taken(request: web.Request, name: str, except_id: str | None = None) -> bool:
    return any(
        c.get("name") == name and c.get("id") != except_id
        for c in project(request).store(_KIND).values()
    )


def _status(config: dict[str, Any], *, archived: bool) -> str:
    if archived:
        return "Archived"
    return "Enabled" if config.get("isEnabled", True) else "Disabled"


def _replace_rules(
    request: web.Request, config: dict[str, Any], rules: list[dict[str, Any]], message: str
) -> web.Response:
    config["rules"] = rules
    record_change(
        request, _KIND, config, "config_conditions_update", changes={"rules": clone(rules)}
    )
    return ok(config, message)


def _merged(rule: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``rule`` with a partial rule applied; its ids stay and a stale JSON5 twin is rewritten."""
    check_types(patch, _RULE_FIELD_TYPES)
    merged = {**rule, **{k: v for k, v in patch.items() if k not in ("id", "baseID")}}
    if "returnValue" in patch and "returnValueJson5" not in patch:
        merged.pop("returnValueJson5", None)
        merged.update(_value_pair(patch, rule, "returnValue", "returnValueJson5"))
    return merged


# -- list, create, read, update, delete ---------------------------------------------------


@routes.get(_CONFIGS)
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


@routes.post(_CONFIGS)
async def create_config(request: web.Request) -> web.Response:
    """``POST /dynamic_configs``: 201 with the new config; 400 on a taken id or name or a bad body."""
    body = require_fields(await read_body(request), "name")
    name = check_name(body["name"])
    if body.get("id") is not None:
        config_id = check_name(body["id"], "id", pattern=ID_PATTERN)
    else:
        config_id = id_from_name(name)
    changes = _changes(request, body, None)
    store = project(request).store(_KIND)
    if config_id in store or _name_taken(request, name):
        api_error(400, "Name is already in use")
    config = new_metadata(request, config_id, name, body)
    config.update(
        {
            "isEnabled": True,
            "status": "Enabled",
            "rules": [],
            "defaultValue": {},
            "schema": None,
            "releasePipelineID": None,
            "isTemplate": bool(body.get("isTemplate", False)),
        }
    )
    config.update(changes)
    config["status"] = _status(config, archived=False)
    config["version"] = 0  # record_change makes it 1
    store[config_id] = config
    record_change(request, _KIND, config, "dynamic_config_create")
    return ok(config, "Dynamic Config created successfully.", status=201)


@routes.get(_CONFIG)
async def get_config(request: web.Request) -> web.Response:
    """``GET /dynamic_configs/{id}``."""
    return ok(_config(request), "Dynamic config read successfully.")


async def _update(request: web.Request, *, full: bool) -> web.Response:
    config = _config(request)
    body = _object(await read_body(request))
    if full:
        require_fields(body, "isEnabled", "description", "rules")
    changes = _changes(request, body, config)
    if "name" in changes and _name_taken(request, changes["name"], except_id=str(config["id"])):
        api_error(400, "Name is already in use")
    archived = config.get("status") == "Archived"
    config.update(changes)
    config["status"] = _status(config, archived=archived)
    record_change(request, _KIND, config, "config_update", changes=clone(changes))
    return ok(config, UPDATED)


@routes.post(_CONFIG)
async def update_config(request: web.Request) -> web.Response:
    """``POST /dynamic_configs/{id}``: full update; ``isEnabled``, ``description``, ``rules`` required."""
    return await _update(request, full=True)


@routes.patch(_CONFIG)
async def patch_config(request: web.Request) -> web.Response:
    """``PATCH /dynamic_configs/{id}``: only the given fields change."""
    return await _update(request, full=False)


@routes.delete(_CONFIG)
async def delete_config(request: web.Request) -> web.Response:
    """``DELETE /dynamic_configs/{id}``: the config and its history go."""
    config = _config(request)
    proj = project(request)
    config_id = str(config["id"])
    del proj.store(_KIND)[config_id]
    proj.versions.get(_KIND, {}).pop(config_id, None)
    record_change(request, _KIND, config, "config_delete", versioned=False)
    return ok(message="Dynamic Config deleted successfully.", with_data=False)


# -- state actions -------------------------------------------------------------------------


async def _toggle(request: web.Request, enabled: bool) -> web.Response:
    config = _config(request)
    if config.get("status") == "Archived":
        verb = "enable" if enabled else "disable"
        api_error(
            400, f"Dynamic config {config['id']} is archived; unarchive it before you {verb} it"
        )
    if config.get("isEnabled") == enabled and config.get("status") == _status(
        config, archived=False
    ):
        return ok(config, UPDATED)
    config["isEnabled"] = enabled
    config["status"] = _status(config, archived=False)
    record_change(request, _KIND, config, "config_state_toggle", changes={"isEnabled": enabled})
    return ok(config, UPDATED)


@routes.put(f"{_CONFIG}/enable")
async def enable_config(request: web.Request) -> web.Response:
    """``PUT /dynamic_configs/{id}/enable``: status Enabled."""
    return await _toggle(request, True)


@routes.put(f"{_CONFIG}/disable")
async def disable_config(request: web.Request) -> web.Response:
    """``PUT /dynamic_configs/{id}/disable``: status Disabled (the default value is served)."""
    return await _toggle(request, False)


@routes.put(f"{_CONFIG}/archive")
async def archive_config(request: web.Request) -> web.Response:
    """``PUT /dynamic_configs/{id}/archive`` ``{archiveReason?, forceArchive?}``."""
    config = _config(request)
    body = _object(await read_body(request, required=False) or {})
    check_types(body, {"forceArchive": "boolean", "archiveReason": "string"})
    if config.get("status") == "Archived":
        return ok(config, UPDATED)
    config["status"] = "Archived"
    record_change(
        request,
        _KIND,
        config,
        "config_archive",
        changes={"archiveReason": body.get("archiveReason")},
    )
    return ok(config, UPDATED)


@routes.put(f"{_CONFIG}/unarchive")
async def unarchive_config(request: web.Request) -> web.Response:
    """``PUT /dynamic_configs/{id}/unarchive`` ``{unarchiveReason?}``: Enabled (Disabled if not enabled)."""
    config = _config(request)
    body = _object(await read_body(request, required=False) or {})
    check_types(body, {"unarchiveReason": "string"})
    if config.get("status") != "Archived":
        return ok(config, UPDATED)
    config["status"] = _status(config, archived=False)
    record_change(
        request,
        _KIND,
        config,
        "config_unarchive",
        changes={"unarchiveReason": body.get("unarchiveReason")},
    )
    return ok(config, UPDATED)


@routes.get(f"{_CONFIG}/versions")
async def config_versions(request: web.Request) -> web.Response:
    """``GET /dynamic_configs/{id}/versions``: every recorded version, newest first."""
    config = _config(request)
    history = project(request).versions.get(_KIND, {}).get(str(config["id"])) or [config]
    return ok_page(
        request,
        [clone(v) for v in reversed(history)],
        "Dynamic config versions listed successfully.",
    )


# -- rules --------------------------------------------------------------------------------


@routes.get(f"{_CONFIG}/rules")
async def get_rules(request: web.Request) -> web.Response:
    """``GET /dynamic_configs/{id}/rules``: ``data: [{rules}]`` with pagination."""
    config = _config(request)
    return ok_page(
        request,
        [{"rules": clone(config.get("rules") or [])}],
        "Dynamic Config rules read successfully.",
    )


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


@routes.get(_RULE)
async def get_rule(request: web.Request) -> web.Response:
    """``GET /dynamic_configs/{id}/rule/{ruleId}``: one rule, by ``id`` or ``baseID``."""
    config = _config(request)
    index = _rule_index(config, request.match_info["ruleId"], read=True)
    return ok(config["rules"][index], "Dynamic Config rules read successfully.")


async def _patch_rule(request: web.Request, index: int, config: dict[str, Any]) -> web.Response:
    patch = _object(await read_body(request))
    existing = clone(config.get("rules") or [])
    rules = clone(existing)
    rules[index] = _merged(rules[index], patch)
    return _replace_rules(request, config, _rules(request, rules, existing), RULES_UPDATED)


async def _delete_rule(request: web.Request, index: int, config: dict[str, Any]) -> web.Response:
    rules = clone(config.get("rules") or [])
    del rules[index]
    return _replace_rules(request, config, rules, RULE_DELETED)


@routes.patch(_RULE)
async def update_rule(request: web.Request) -> web.Response:
    """``PATCH /dynamic_configs/{id}/rule/{ruleId}``: change one rule (by ``id`` or ``baseID``)."""
    config = _config(request)
    return await _patch_rule(request, _rule_index(config, request.match_info["ruleId"]), config)


@routes.delete(_RULE)
async def delete_rule(request: web.Request) -> web.Response:
    """``DELETE /dynamic_configs/{id}/rule/{ruleId}``: the config without that rule."""
    config = _config(request)
    return await _delete_rule(request, _rule_index(config, request.match_info["ruleId"]), config)


@routes.post(f"{_CONFIG}/rule")
async def add_rule(request: web.Request) -> web.Response:
    """``POST /dynamic_configs/{id}/rule`` (Terraform provider): append one rule."""
    config = _config(request)
    rule = _object(await read_body(request))
    require_fields(rule, "name", "conditions")
    fresh = {k: v for k, v in rule.items() if k not in ("id", "baseID")}
    existing = clone(config.get("rules") or [])
    rules = _rules(request, [*existing, fresh], existing)
    return _replace_rules(request, config, rules, "Dynamic Config rule added successfully.")


@routes.patch(_RULE_BY_NAME)
async def update_rule_by_name(request: web.Request) -> web.Response:
    """``PATCH /dynamic_configs/{id}/rule/name/{ruleName}`` (Terraform provider)."""
    config = _config(request)
    return await _patch_rule(request, _rule_named(config, request.match_info["ruleName"]), config)


@routes.delete(_RULE_BY_NAME)
async def delete_rule_by_name(request: web.Request) -> web.Response:
    """``DELETE /dynamic_configs/{id}/rule/name/{ruleName}`` (Terraform provider)."""
    config = _config(request)
    return await _delete_rule(request, _rule_named(config, request.match_info["ruleName"]), config)
