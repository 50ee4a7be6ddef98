"""Emulator handlers: tags, target apps, unit id types, environments, project, audit logs.

These objects are not versioned: every applied change calls
:func:`~bulkops.emulator.http.mark_applied` and writes one audit-log entry. Configs
reference tags and target apps by **name** (``tags: [...]``, ``targetApps: [...]``),
so renaming or deleting a tag or target app rewrites those lists, each rewritten
config recording its own change.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

from ..checks import field_error, require_fields
from ..http import (
    GENERIC_400,
    PREFIX,
    api_error,
    audit,
    clone,
    ok,
    ok_page,
    project,
    read_body,
    record_change,
)
from ..state import new_base_id

__all__ = ["BUILTIN_UNIT_ID_TYPES", "routes"]

BUILTIN_UNIT_ID_TYPES = frozenset({"userID", "stableID"})
VISIBILITIES = ("OPEN", "CLOSED", "EXTERNAL")
DEFAULT_VISIBILITY = "CLOSED"
# Config collections a target app can be bulk-assigned to, with the words of the 404.
_ASSIGNABLE = {
    "gates": ("gates", "Gates"),
    "dynamicConfigs": ("dynamic_configs", "Dynamic configs"),
    "experiments": ("experiments", "Experiments"),
}


def _string(
    body: dict[str, Any], prop: str, *, min_len: int = 0, max_len: int | None = None
) -> str:
    value = body.get(prop)
    if not isinstance(value, str):
        field_error(prop, f"Expected string, received {type(value).__name__}")
    if len(value) < min_len or (max_len is not None and len(value) > max_len):
        bound = f"between {min_len} and {max_len}" if max_len is not None else f"at least {min_len}"
        field_error(prop, f"{prop} must be {bound} characters")
    return value


def _string_list(body: dict[str, Any], prop: str) -> list[str]:
    value = body.get(prop)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        field_error(prop, "Expected array of strings")
    return list(dict.fromkeys(value))


def _rename_references(request: web.Request, field: str, old: str, new: str | None) -> None:
    """Rewrite ``old`` to ``new`` (or drop it) in every config's ``field`` name list."""
    action = "config_edit_tags" if field == "tags" else "config_edit_target_apps"
    for kind, objs in project(request).collections.items():
        for obj in objs.values():
            names = obj.get(field)
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, list) or old not in names:
                continue
            before = list(names)
            if new is None:
                obj[field] = [n for n in names if n != old]
            else:
                obj[field] = list(dict.fromkeys(new if n == old else n for n in names))
            record_change(
                request,
                kind,
                obj,
                action,
                changes={field: {"old": before, "new": list(obj[field])}},
                versioned="version" in obj,
            )


# -- tags and target apps: named objects that configs list by name ----------------------


@dataclass(frozen=True)
class _Named:
    """Tags or target apps: what their update and delete do differently."""

    kind: str  # the store
    label: str  # as in "<label> not found."
    field: str  # the config field listing them by name
    keys: tuple[str, ...]  # the fields an update may change
    actions: tuple[str, str]  # audit actionType of an update, of a delete
    updated: str  # the update's message
    deleted: str  # the delete's message
    answer_updated: bool  # whether the update answers with the object


def _find(kind: _Named, request: web.Request, key: str) -> dict[str, Any] | None:
    store = project(request).store(kind.kind)
    return store.get(key) or next((o for o in store.values() if o.get("name") == key), None)


def _named(kind: _Named, request: web.Request) -> dict[str, Any]:
    """The object named by ``{id}``: its id or, as a convenience, its name."""
    obj = _find(kind, request, request.match_info["id"])
    if obj is None:
        api_error(404, f"{kind.label} not found.")
    return obj


def _name_taken(kind: _Named, request: web.Request, name: str, but: str | None = None) -> bool:
    return any(
        o.get("name") == name and o["id"] != but for o in project(request).store(kind.kind).values()
    )


async def read_named(kind: _Named, message: str, request: web.Request) -> web.Response:
    """``GET /tags/{id}`` or ``GET /target_app/{id}`` (id or name)."""
    return ok(_named(kind, request), message)


async def update_named(kind: _Named, request: web.Request) -> web.Response:
    """``PATCH /tags/{id}`` or ``/target_app/{id}``: a rename follows into the configs."""
    body = require_fields(await read_body(request))
    if "name" in body:
        _string(body, "name", min_len=1, max_len=100)
    if "description" in body:
        _string(body, "description", max_len=1000)
    if "isCore" in kind.keys:
        _check_is_core(body)
    obj = _named(kind, request)
    if "name" in body and _name_taken(kind, request, body["name"], but=obj["id"]):
        api_error(400, "Name is already in use")
    changes: dict[str, Any] = {
        k: {"old": obj.get(k), "new": body[k]}
        for k in kind.keys
        if k in body and body[k] != obj.get(k)
    }
    if changes:
        old_name = obj["name"]
        for key, change in changes.items():
            obj[key] = change["new"]
        audit(request, kind.actions[0], obj["id"], obj["name"], changes)
        if "name" in changes:
            _rename_references(request, kind.field, old_name, obj["name"])
    if kind.answer_updated:
        return ok(obj, kind.updated)
    return ok(message=kind.updated, with_data=False)


async def delete_named(kind: _Named, request: web.Request) -> web.Response:
    """``DELETE /tags/{id}`` or ``/target_app/{id}``: also removed from every config."""
    obj = _named(kind, request)
    del project(request).store(kind.kind)[obj["id"]]
    audit(request, kind.actions[1], obj["id"], obj["name"])
    _rename_references(request, kind.field, obj["name"], None)
    return ok(message=kind.deleted, with_data=False)


# -- tags ---------------------------------------------------------------------------------


TAGS = _Named(
    kind="tags",
    label="Tag",
    field="tags",
    keys=("name", "description", "isCore"),
    actions=("tag_edit", "tag_delete"),
    updated="Tag updated successfully",
    deleted="Tag deleted successfully",
    answer_updated=True,
)


def _check_is_core(body: dict[str, Any]) -> None:
    if "isCore" in body and not isinstance(body["isCore"], bool):
        field_error("isCore", f"Expected boolean, received {type(body['isCore']).__name__}")


async def list_tags(request: web.Request) -> web.Response:
    """``GET /tags``."""
    items = [clone(t) for t in project(request).store("tags").values()]
    return ok_page(request, items, "Tags listed successfully")


async def create_tag(request: web.Request) -> web.Response:
    """``POST /tags``: 200 ``"Tag created successfully"``; names are unique."""
    body = require_fields(await read_body(request), "name", "description")
    name = _string(body, "name", min_len=1, max_len=100)
    description = _string(body, "description", max_len=1000)
    _check_is_core(body)
    if _name_taken(TAGS, request, name):
        api_error(400, "Name is already in use")
    tag_id = new_base_id()
    tag: dict[str, Any] = {
        "id": tag_id,
        "name": name,
        "description": description,
        "isCore": bool(body.get("isCore", False)),
    }
    project(request).store("tags")[tag_id] = tag
    audit(request, "tag_create", tag_id, name)
    return ok(tag, "Tag created successfully")


# -- target apps ----------------------------------------------------------------------------


TARGET_APPS = _Named(
    kind="target_apps",
    label="Target app",
    field="targetApps",
    keys=("name", "description"),
    actions=("edit_target_app", "delete_target_app"),
    updated="Target apps updated successfully.",
    deleted="Target app deleted successfully",
    answer_updated=False,
)


def _assignments(request: web.Request, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``(collection, config id)`` pairs named by ``gates``/``dynamicConfigs``/``experiments``.

    404 ``"Gates with IDs [a, b] do not exist"`` (and likewise) for unknown ids.
    """
    pairs: list[tuple[str, str]] = []
    for prop, (kind, label) in _ASSIGNABLE.items():
        ids = _string_list(body, prop)
        store = project(request).store(kind)
        missing = [i for i in ids if i not in store]
        if missing:
            api_error(404, f"{label} with IDs [{', '.join(missing)}] do not exist")
        pairs.extend((kind, i) for i in ids)
    return pairs


def _assign(request: web.Request, pairs: list[tuple[str, str]], app_names: list[str]) -> None:
    for kind, obj_id in pairs:
        obj = project(request).store(kind)[obj_id]
        current = obj.get("targetApps") or []
        current = [current] if isinstance(current, str) else list(current)
        wanted = list(dict.fromkeys([*current, *app_names]))
        if wanted != current:
            obj["targetApps"] = wanted
            record_change(
                request,
                kind,
                obj,
                "config_edit_target_apps",
                changes={"targetApps": {"old": current, "new": wanted}},
                versioned="version" in obj,
            )


async def list_target_apps(request: web.Request) -> web.Response:
    """``GET /target_app``."""
    items = [clone(a) for a in project(request).store("target_apps").values()]
    return ok_page(request, items, "Target apps listed successfully.")


async def create_target_app(request: web.Request) -> web.Response:
    """``POST /target_app``: create, optionally assigning it to configs at once."""
    body = require_fields(await read_body(request), "name", "description")
    name = _string(body, "name", min_len=1, max_len=100)
    description = _string(body, "description", max_len=1000)
    pairs = _assignments(request, body)
    store = project(request).store("target_apps")
    if any(a.get("name") == name for a in store.values()):
        api_error(400, "Name is already in use")
    # The id starts equal to the name (as in the demo seed), so configs' `targetApps`
    # resolve whether a reader takes them for names or ids; a taken id gets a fresh one.
    app_id = name if name not in store else new_base_id()
    app = {"id": app_id, "name": name, "description": description}
    store[app_id] = app
    audit(request, "create_customer_app", app_id, name)
    _assign(request, pairs, [name])
    return ok(app, "Target app created successfully.")


async def assign_target_apps(request: web.Request) -> web.Response:
    """``PATCH /target_app``: add target apps to the listed gates, configs and experiments."""
    body = require_fields(await read_body(request), "targetApps")
    keys = _string_list(body, "targetApps")
    if not keys:
        field_error("targetApps", "Array must contain at least 1 element(s)")
    apps = [(k, _find(TARGET_APPS, request, k)) for k in keys]
    missing = [k for k, app in apps if app is None]
    if missing:
        api_error(404, f"Target apps with IDs [{', '.join(missing)}] do not exist")
    pairs = _assignments(request, body)
    _assign(request, pairs, [str(app["name"]) for _, app in apps if app is not None])
    return ok(message="Target apps updated successfully.", with_data=False)


# -- unit id types (errors are 400, as the spec documents) ------------------------------------


def _unit_id_type(request: web.Request) -> dict[str, Any]:
    name = request.match_info["id"]
    found = project(request).store("unit_id_types").get(name)
    if found is None:
        api_error(
            400,
            GENERIC_400,
            [{"property": "id", "errorMessage": f"Unit ID type {name} does not exist"}],
        )
    return found


def _check_description(body: dict[str, Any]) -> None:
    if body.get("description") is not None:
        _string(body, "description", max_len=1000)


async def list_unit_id_types(request: web.Request) -> web.Response:
    """``GET /unit_id_types``: the custom unit id types (not the built-in ones)."""
    items = [clone(u) for u in project(request).store("unit_id_types").values()]
    return ok_page(request, items, "Unit ID Types listed successfully.")


async def create_unit_id_type(request: web.Request) -> web.Response:
    """``POST /unit_id_types``: 201; 400 if the name is taken (built-ins included)."""
    body = require_fields(await read_body(request), "name")
    name = _string(body, "name", min_len=1, max_len=100)
    _check_description(body)
    store = project(request).store("unit_id_types")
    if name in store or name in BUILTIN_UNIT_ID_TYPES:
        api_error(400, "Name is already in use")
    unit = {"name": name, "description": body.get("description") or ""}
    store[name] = unit
    audit(request, "company_ID_type_add", name, name)
    return ok(unit, "Unit ID Type created successfully.", status=201)


async def get_unit_id_type(request: web.Request) -> web.Response:
    """``GET /unit_id_types/{id}`` (the name)."""
    return ok(_unit_id_type(request), "Unit ID Type read successfully.")


async def update_unit_id_type(request: web.Request) -> web.Response:
    """``PATCH /unit_id_types/{id}``: body ``{description}``."""
    body = require_fields(await read_body(request), "description")
    _check_description(body)
    unit = _unit_id_type(request)
    if unit.get("description") != body["description"]:
        changes = {"description": {"old": unit.get("description"), "new": body["description"]}}
        unit["description"] = body["description"]
        audit(request, "company_ID_type_edit", unit["name"], unit["name"], changes)
    return ok(unit, "Unit ID Type updated successfully.")


async def delete_unit_id_type(request: web.Request) -> web.Response:
    """``DELETE /unit_id_types/{id}``."""
    unit = _unit_id_type(request)
    del project(request).store("unit_id_types")[unit["name"]]
    audit(request, "company_ID_type_delete", unit["name"], unit["name"])
    return ok(message="Unit ID Type deleted successfully.", with_data=False)


# -- environments -------------------------------------------------------------------------------

_ENV_FLAGS = ("isProduction", "requiresReview", "requiresReleasePipeline")


def _environment(raw: Any, index: int, known_ids: set[str]) -> dict[str, Any]:
    prop = f"environments[{index}]"
    if not isinstance(raw, dict):
        field_error(prop, "Expected object")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        field_error(f"{prop}.name", "name is required")
    env: dict[str, Any] = {"name": name}
    env_id = raw.get("id")
    if env_id not in (None, ""):  # clients such as terraform send "" for a new one
        if not isinstance(env_id, str) or env_id not in known_ids:
            field_error(
                f"{prop}.id",
                f"Unknown environment id {env_id!r}; omit id to create an environment",
            )
        env["id"] = env_id
    else:
        env["id"] = f"0.{secrets.randbelow(10**16):016d}"
    for flag in _ENV_FLAGS:
        if not isinstance(raw.get(flag), bool):
            field_error(f"{prop}.{flag}", f"{flag} is required and must be a boolean")
        env[flag] = raw[flag]
    group = raw.get("requiredReviewGroupID")
    if group is not None:
        if not isinstance(group, str):
            field_error(f"{prop}.requiredReviewGroupID", "Expected string")
        env["requiredReviewGroupID"] = group
    return env


async def get_environments(request: web.Request) -> web.Response:
    """``GET /environments``: ``data: {environments: [...]}``."""
    data = {"environments": clone(project(request).environments)}
    return ok(data, "Environments read successfully.")


async def update_environments(request: web.Request) -> web.Response:
    """``POST /environments``: the given list replaces the project's environments."""
    body = require_fields(await read_body(request), "environments")
    raw = body["environments"]
    if not isinstance(raw, list) or not raw:
        field_error("environments", "Expected a non-empty array")
    proj = project(request)
    known = {str(e.get("id")) for e in proj.environments}
    envs = [_environment(item, i, known) for i, item in enumerate(raw)]
    names = [e["name"] for e in envs]
    if len(set(names)) != len(names):
        field_error("environments", "Environment names must be unique")
    ids = [e["id"] for e in envs]
    if len(set(ids)) != len(ids):
        field_error("environments", "Environment ids must be unique")
    if envs != proj.environments:
        changes = {"environments": {"old": clone(proj.environments), "new": clone(envs)}}
        proj.environments = envs
        audit(request, "company_environments_edit", proj.id, proj.name, changes)
    return ok({"environments": clone(envs)}, "Environments updated successfully.")


# -- project and its settings ---------------------------------------------------------------------


def _project_settings(request: web.Request) -> dict[str, Any]:
    proj = project(request)
    data: dict[str, Any] = {
        "name": proj.name,
        "visibility": proj.settings.get("visibility", DEFAULT_VISIBILITY),
    }
    if proj.settings.get("default_unit_type") is not None:
        data["default_unit_type"] = proj.settings["default_unit_type"]
    return data


async def get_project(request: web.Request) -> web.Response:
    """``GET /project``: ``{id}`` of the key's project."""
    return ok({"id": project(request).id}, "Project Info Retrieved Successfully")


async def get_project_settings(request: web.Request) -> web.Response:
    """``GET /settings/project``: ``{name, visibility, default_unit_type?}``."""
    return ok(_project_settings(request), "Settings read successfully.")


async def update_project_settings(request: web.Request) -> web.Response:
    """``POST /settings/project``: replaces name, visibility and the default unit type."""
    body = require_fields(await read_body(request), "name", "visibility")
    name = _string(body, "name", min_len=1, max_len=100)
    visibility = body["visibility"]
    if visibility not in VISIBILITIES:
        expected = " | ".join(f"'{v}'" for v in VISIBILITIES)
        field_error(
            "visibility", f"Invalid enum value. Expected {expected}, received '{visibility}'"
        )
    unit_type = body.get("default_unit_type")
    if unit_type is not None and not isinstance(unit_type, str):
        field_error("default_unit_type", "Expected string")
    before = _project_settings(request)
    proj = project(request)
    proj.name = name
    proj.settings["visibility"] = visibility
    if unit_type is None:
        proj.settings.pop("default_unit_type", None)
    else:
        proj.settings["default_unit_type"] = unit_type
    after = _project_settings(request)
    if after != before:
        changes = {k: {"old": before.get(k), "new": after.get(k)} for k in after.keys() | before}
        audit(request, "company_basic_info_edit", proj.id, proj.name, changes)
    return ok(after, "Settings updated successfully.")


# -- audit logs --------------------------------------------------------------------------------

_SORT_KEYS = frozenset(
    {"id", "name", "changeLog", "actionType", "date", "time", "updatedBy", "updatedByUserID"}
)


def _day(request: web.Request, prop: str) -> dt.date | None:
    value = request.rel_url.query.get(prop)
    if value is None or value == "":
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        api_error(
            400,
            GENERIC_400,
            [{"property": prop, "errorMessage": "Expected valid date in the form of YYYY-MM-DD"}],
        )


def _entry_day(entry: dict[str, Any]) -> dt.date:
    return dt.datetime.fromtimestamp(int(entry.get("timestamp") or 0) / 1000, dt.UTC).date()


async def list_audit_logs(request: web.Request) -> web.Response:
    """``GET /audit_logs``: newest first by default; filters, sorting and ``latestID``."""
    query = request.rel_url.query
    sort_key = query.get("sortKey")
    if sort_key is not None and sort_key not in _SORT_KEYS:
        api_error(400, GENERIC_400, [{"property": "sortKey", "errorMessage": "Invalid sort key"}])
    sort_order = query.get("sortOrder", "desc")
    if sort_order not in ("asc", "desc"):
        api_error(
            400, GENERIC_400, [{"property": "sortOrder", "errorMessage": "Expected asc or desc"}]
        )
    start, end = _day(request, "startDate"), _day(request, "endDate")
    entries = list(project(request).audit_log)
    latest = query.get("latestID")
    if latest:
        position = next((i for i, e in enumerate(entries) if e.get("id") == latest), None)
        if position is None:
            api_error(
                400,
                GENERIC_400,
                [{"property": "latestID", "errorMessage": f"Unknown audit log id {latest}"}],
            )
        entries = entries[: position + 1]  # pin the listing: later entries do not shift pages
    if "id" in query:
        entries = [e for e in entries if e.get("targetID") == query["id"]]
    action_types = set(query.getall("actionType", [])) | set(query.getall("actionTypes", []))
    if action_types:
        entries = [e for e in entries if e.get("actionType") in action_types]
    tags = set(query.getall("tags", []))
    if tags:
        entries = [e for e in entries if tags & set(e.get("tags") or ())]
    if start is not None:
        entries = [e for e in entries if _entry_day(e) >= start]
    if end is not None:
        entries = [e for e in entries if _entry_day(e) <= end]
    # Stable sorts: among equal keys, the order of the log (the order of the changes) holds.
    if sort_key in (None, "date", "time"):
        ordered = sorted(entries, key=lambda e: int(e.get("timestamp") or 0))
    else:
        ordered = sorted(entries, key=lambda e: str(e.get(sort_key) or ""))
    if sort_order == "desc":
        ordered = ordered[::-1]
    return ok_page(request, ordered, "Audit logs listed successfully.")


routes = [
    web.get(f"{PREFIX}/tags", list_tags),
    web.post(f"{PREFIX}/tags", create_tag),
    web.get(f"{PREFIX}/tags/{{id}}", partial(read_named, TAGS, "Tag read successfully")),
    web.patch(f"{PREFIX}/tags/{{id}}", partial(update_named, TAGS)),
    web.delete(f"{PREFIX}/tags/{{id}}", partial(delete_named, TAGS)),
    web.get(f"{PREFIX}/target_app", list_target_apps),
    web.post(f"{PREFIX}/target_app", create_target_app),
    web.patch(f"{PREFIX}/target_app", assign_target_apps),
    web.get(
        f"{PREFIX}/target_app/{{id}}",
        partial(read_named, TARGET_APPS, "Target app read successfully."),
    ),
    web.patch(f"{PREFIX}/target_app/{{id}}", partial(update_named, TARGET_APPS)),
    web.delete(f"{PREFIX}/target_app/{{id}}", partial(delete_named, TARGET_APPS)),
    web.get(f"{PREFIX}/unit_id_types", list_unit_id_types),
    web.post(f"{PREFIX}/unit_id_types", create_unit_id_type),
    web.get(f"{PREFIX}/unit_id_types/{{id}}", get_unit_id_type),
    web.patch(f"{PREFIX}/unit_id_types/{{id}}", update_unit_id_type),
    web.delete(f"{PREFIX}/unit_id_types/{{id}}", delete_unit_id_type),
    web.get(f"{PREFIX}/environments", get_environments),
    web.post(f"{PREFIX}/environments", update_environments),
    web.get(f"{PREFIX}/project", get_project),
    web.get(f"{PREFIX}/settings/project", get_project_settings),
    web.post(f"{PREFIX}/settings/project", update_project_settings),
    web.get(f"{PREFIX}/audit_logs", list_audit_logs),
]
