"""Versioned config objects: the operations gates and dynamic configs share.

Both kinds are created from a name (the id derived from it unless given), updated
in full (``POST``) or in part (``PATCH``), enabled, disabled, archived and
unarchived, keep a version history and hold a rule list. A :class:`ConfigKind`
names what differs: the store, the messages and audit action types, the body
validation, the defaults of a new object, the status words, and the check run
before archiving. The handlers here take the kind as their first argument; each
kind's module binds them in its route table.

Shared behaviour (``[inferred]`` in console-api.md where the spec is silent):
enable/disable/archive/unarchive already in effect answer 200 and change nothing
(no version, no audit entry); enable/disable on an archived object are 400;
deleting drops the object's version history (and its overrides, for kinds that
have them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ...api.paths import id_from_name
from ..checks import ID_PATTERN, check_name, check_types, json_object, require_fields
from ..common import get_or_404, new_metadata
from ..http import api_error, clone, ok, ok_page, project, read_body, record_change
from ..state import Project

__all__ = [
    "Actions",
    "ConfigKind",
    "Messages",
    "archive",
    "create",
    "delete",
    "fresh",
    "get_rules",
    "merged_rule",
    "read",
    "replace_rules",
    "set_enabled",
    "unarchive",
    "update",
    "versions",
]

# Validates a create/update body: (request, body, object id, current object or None) →
# the fields to set, rules normalised.
BodyCheck = Callable[[web.Request, dict[str, Any], str, dict[str, Any] | None], dict[str, Any]]
# Runs before an archive: (request, object, body) → extra audit changes; raises to refuse.
ArchiveGuard = Callable[[web.Request, dict[str, Any], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Messages:
    """The success messages of one kind's operations."""

    read: str
    created: str
    updated: str
    deleted: str
    versions: str
    rules: str


@dataclass(frozen=True)
class Actions:
    """The audit ``actionType`` of one kind's create, update, archive and unarchive."""

    create: str
    update: str
    archive: str
    unarchive: str


@dataclass(frozen=True)
class ConfigKind:
    """What one kind of versioned config object does differently from the others."""

    kind: str  # the project store
    label: str  # as in "<label> not found." and "<label> <id> is archived; …"
    messages: Messages
    actions: Actions
    changes: BodyCheck
    defaults: Callable[[dict[str, Any]], dict[str, Any]]  # create body → initial fields
    live_status: str  # the status of an enabled, unarchived object
    launched_status: str  # the same once launched (kinds without launch: live_status)
    toggle_changes: Callable[[str, bool], dict[str, Any]]  # (action, enabled) → audit changes
    archive_guard: ArchiveGuard
    has_overrides: bool = False

    def get(self, request: web.Request) -> dict[str, Any]:
        """The object named by the ``{id}`` path parameter, or 404."""
        return get_or_404(request, self.kind, request.match_info["id"], self.label)

    def status(self, obj: dict[str, Any], *, archived: bool, launched: bool) -> str:
        """The derived status: Archived, else Disabled, else the live or launched word."""
        if archived:
            return "Archived"
        if not obj.get("isEnabled", True):
            return "Disabled"
        return self.launched_status if launched else self.live_status

    def was_launched(self, proj: Project, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` is (or, while disabled or archived, was last) launched."""
        if self.launched_status == self.live_status:
            return False
        states = (self.launched_status, self.live_status)
        history = proj.versions.get(self.kind, {}).get(str(obj["id"]), [])
        for version in (obj, *reversed(history)):
            if version.get("status") in states:
                return bool(version["status"] == self.launched_status)
        return False


def _name_taken(request: web.Request, kind: ConfigKind, name: str, except_id: str | None) -> bool:
    return any(
        o.get("name") == name and o.get("id") != except_id
        for o in project(request).store(kind.kind).values()
    )


async def create(kind: ConfigKind, request: web.Request) -> web.Response:
    """``POST /<kind>``: 201 with the new object; 400 on a taken id or name or a bad body."""
    body = require_fields(await read_body(request), "name")
    name = check_name(body["name"])
    if body.get("id") is not None:
        obj_id = check_name(body["id"], "id", pattern=ID_PATTERN)
    else:
        obj_id = id_from_name(name)
    changes = kind.changes(request, body, obj_id, None)
    store = project(request).store(kind.kind)
    if obj_id in store or _name_taken(request, kind, name, None):
        api_error(400, "Name is already in use")
    obj = new_metadata(request, obj_id, name, body)
    obj.update(kind.defaults(body))
    obj.update(changes)
    obj["status"] = kind.status(obj, archived=False, launched=False)
    obj["version"] = 0  # record_change makes it 1
    store[obj_id] = obj
    record_change(request, kind.kind, obj, kind.actions.create)
    return ok(obj, kind.messages.created, status=201)


async def read(kind: ConfigKind, request: web.Request) -> web.Response:
    """``GET /<kind>/{id}``."""
    return ok(kind.get(request), kind.messages.read)


async def update(kind: ConfigKind, request: web.Request, *, full: bool) -> web.Response:
    """``POST`` (full: ``isEnabled``, ``description``, ``rules`` required) or ``PATCH /<kind>/{id}``."""
    obj = kind.get(request)
    body = json_object(await read_body(request))
    if full:
        require_fields(body, "isEnabled", "description", "rules")
    obj_id = str(obj["id"])
    changes = kind.changes(request, body, obj_id, obj)
    if "name" in changes and _name_taken(request, kind, changes["name"], obj_id):
        api_error(400, "Name is already in use")
    launched = kind.was_launched(project(request), obj)
    archived = obj.get("status") == "Archived"
    obj.update(changes)
    obj["status"] = kind.status(obj, archived=archived, launched=launched)
    record_change(request, kind.kind, obj, kind.actions.update, changes=clone(changes))
    return ok(obj, kind.messages.updated)


async def delete(kind: ConfigKind, request: web.Request) -> web.Response:
    """``DELETE /<kind>/{id}``: the object, its history (and its overrides) go."""
    obj = kind.get(request)
    proj = project(request)
    obj_id = str(obj["id"])
    del proj.store(kind.kind)[obj_id]
    if kind.has_overrides:
        proj.overrides.setdefault(kind.kind, {}).pop(obj_id, None)
    proj.versions.get(kind.kind, {}).pop(obj_id, None)
    record_change(request, kind.kind, obj, "config_delete", versioned=False)
    return ok(message=kind.messages.deleted, with_data=False)


async def set_enabled(kind: ConfigKind, action: str, request: web.Request) -> web.Response:
    """``PUT /<kind>/{id}/<action>`` for ``enable``, ``disable`` and (gates) ``launch``."""
    obj = kind.get(request)
    if obj.get("status") == "Archived":
        api_error(400, f"{kind.label} {obj['id']} is archived; unarchive it before you {action} it")
    launched = kind.was_launched(project(request), obj) or action == "launch"
    enabled = action != "disable"
    status = kind.status({"isEnabled": enabled}, archived=False, launched=launched)
    if obj.get("isEnabled") == enabled and obj.get("status") == status:
        return ok(obj, kind.messages.updated)
    obj["isEnabled"] = enabled
    obj["status"] = status
    changes = kind.toggle_changes(action, enabled)
    record_change(request, kind.kind, obj, "config_state_toggle", changes=changes)
    return ok(obj, kind.messages.updated)


async def archive(kind: ConfigKind, request: web.Request) -> web.Response:
    """``PUT /<kind>/{id}/archive`` ``{archiveReason?, forceArchive?}``."""
    obj = kind.get(request)
    body = json_object(await read_body(request, required=False) or {})
    check_types(body, {"forceArchive": "boolean", "archiveReason": "string"})
    if obj.get("status") == "Archived":
        return ok(obj, kind.messages.updated)
    extra = kind.archive_guard(request, obj, body)
    obj["status"] = "Archived"
    changes = {"archiveReason": body.get("archiveReason"), **extra}
    record_change(request, kind.kind, obj, kind.actions.archive, changes=changes)
    return ok(obj, kind.messages.updated)


async def unarchive(kind: ConfigKind, request: web.Request) -> web.Response:
    """``PUT /<kind>/{id}/unarchive`` ``{unarchiveReason?}``: live again (Disabled if not enabled)."""
    obj = kind.get(request)
    body = json_object(await read_body(request, required=False) or {})
    check_types(body, {"unarchiveReason": "string"})
    if obj.get("status") != "Archived":
        return ok(obj, kind.messages.updated)
    obj["status"] = kind.status(obj, archived=False, launched=False)
    changes = {"unarchiveReason": body.get("unarchiveReason")}
    record_change(request, kind.kind, obj, kind.actions.unarchive, changes=changes)
    return ok(obj, kind.messages.updated)


async def versions(kind: ConfigKind, request: web.Request) -> web.Response:
    """``GET /<kind>/{id}/versions``: every recorded version, newest first."""
    obj = kind.get(request)
    history = project(request).versions.get(kind.kind, {}).get(str(obj["id"])) or [obj]
    return ok_page(request, list(reversed(history)), kind.messages.versions)


async def get_rules(kind: ConfigKind, request: web.Request) -> web.Response:
    """``GET /<kind>/{id}/rules``: ``data: [{rules}]`` with pagination (the spec's schema)."""
    obj = kind.get(request)
    return ok_page(request, [{"rules": clone(obj.get("rules") or [])}], kind.messages.rules)


def replace_rules(
    request: web.Request,
    kind: ConfigKind,
    obj: dict[str, Any],
    rules: list[dict[str, Any]],
    message: str,
) -> web.Response:
    """Store a validated rule list on ``obj`` and record the change."""
    obj["rules"] = rules
    changes = {"rules": clone(rules)}
    record_change(request, kind.kind, obj, "config_conditions_update", changes=changes)
    return ok(obj, message)


def fresh(rules: Iterable[Any]) -> list[Any]:
    """New rules never carry ids: drop them so they cannot alias an existing rule."""
    return [
        {k: v for k, v in r.items() if k not in ("id", "baseID")} if isinstance(r, dict) else r
        for r in rules
    ]


def merged_rule(
    rule: dict[str, Any], patch: dict[str, Any], types: dict[str, str]
) -> dict[str, Any]:
    """``rule`` with the fields of a partial rule applied (its ids stay)."""
    check_types(patch, types)
    return {**rule, **fresh([patch])[0]}
