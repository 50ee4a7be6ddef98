"""Emulator handlers: users and teams, topline alerts, and API keys.

Users (``store("users")``, keyed by lower-cased e-mail) are
``{email, firstName, lastName, role}``. The emulator has no log-in, so an invitee
is accepted at once: ``POST /users/invite`` adds the users with empty names (no
e-mail is sent). When ``project.settings["email_domains"]`` lists the company's
domains, an invite outside them is a 400.

Teams (``store("teams")``) keep their members as user objects, refreshed from the
users on every read. ``PATCH`` replaces each given field (the spec's "Ops: Replace").

Alerts (``store("alerts")``) have no create endpoint: they come from the project's
data (a seed or a test puts alert dicts in the store) and are listed with the
``creatorName``/``creatorID``/``tags`` filters.

Keys (``store("keys")``) are identified by their value (the Key object has no other
id). Every active CONSOLE key is also registered in ``state.keys`` so it
authenticates: ``omni_read_write`` may write, any other scope set is read-only.
Deactivating, deleting or rotating a key retires the old value at once (401
afterwards). The project's seeded keys are listed too. Key values never reach the
audit log: entries name a key by a masked form (``console-…a1b2``).
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from ..checks import (
    boolean,
    enum_field,
    enum_value,
    field_error,
    json_type,
    object_value,
    string_field,
)
from ..http import (
    GENERIC_400,
    api_error,
    audit,
    clone,
    ok,
    ok_page,
    project,
    read_body,
    state,
)
from ..state import KeyInfo, Project, new_base_id

__all__ = [
    "KEY_PREFIXES",
    "KEY_SCOPES",
    "KEY_TYPES",
    "ROLES",
    "mask_key",
    "routes",
]

ROLES = ("admin", "member", "read_only")
KEY_TYPES = ("SERVER", "CLIENT", "CONSOLE", "SCIM", "ORG")
KEY_SCOPES = (
    "omni_read_only",
    "omni_read_write",
    "client_download_config_specs",
    "none_hash_enabled",
    "can_access_keys",
    "client_can_write_user_store",
    "personal_read_only",
    "personal_read_write",
)
KEY_PREFIXES = {
    "SERVER": "secret-",
    "CLIENT": "client-",
    "CONSOLE": "console-",
    "SCIM": "scim-",
    "ORG": "org-",
}
CHANGE_TEAM_CONFIGS = ("anyone", "team_only")
REVIEW_APPROVAL = ("anyone", "team_only", "admin_only")
_METRIC_LISTS = (
    "defaultGateMetrics",
    "defaultExperimentPrimaryMetrics",
    "defaultExperimentSecondaryMetrics",
    "defaultHoldoutMetrics",
)
_TEAM_FLAGS = (
    "requireReviews",
    "requireGateTemplates",
    "requireExperimentTemplates",
    "requireDynamicConfigTemplates",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEY_ALPHABET = string.ascii_letters + string.digits
_NOT_FOUND = "Not Found. The requested resource could not be found."


# -- zod-style validation (400 "Bad Request Exception" + errors[]) ----------------------


def _strings(
    body: dict[str, Any],
    prop: str,
    *,
    required: bool = False,
    nullable: bool = False,
    allowed: Sequence[str] | None = None,
) -> list[str] | None:
    value = body.get(prop)
    if value is None:
        if prop not in body and required:
            field_error(prop, "Required")
        if prop in body and not nullable:
            field_error(prop, "Expected array, received null")
        return None
    if not isinstance(value, list):
        field_error(prop, f"Expected array, received {json_type(value)}")
    for index, item in enumerate(value):
        if allowed is not None:
            enum_value(item, f"{prop}[{index}]", allowed)
        elif not isinstance(item, str):
            field_error(f"{prop}[{index}]", f"Expected string, received {json_type(item)}")
    return list(value)


# -- users ----------------------------------------------------------------------------


def _users(proj: Project) -> dict[str, dict[str, Any]]:
    return proj.store("users")


def _user_or_404(request: web.Request) -> dict[str, Any]:
    user = _users(project(request)).get(request.match_info["email"].strip().lower())
    if user is None:
        api_error(404, _NOT_FOUND)
    return user


def _emails(body: dict[str, Any], prop: str, *, required: bool) -> list[str] | None:
    values = _strings(body, prop, required=required)
    if values is None:
        return None
    for index, value in enumerate(values):
        if not _EMAIL.match(value):
            field_error(f"{prop}[{index}]", "Invalid email")
    return [v.strip().lower() for v in values]


async def list_users(request: web.Request) -> web.Response:
    """``GET /users``: the project's members, paginated."""
    return ok_page(
        request, clone(list(_users(project(request)).values())), "User listed successfully."
    )


async def invite_users(request: web.Request) -> web.Response:
    """``POST /users/invite``: add members with a role (and to teams); no e-mail is sent."""
    body = object_value(await read_body(request), "body")
    role = enum_field(body.get("role"), "role", ROLES, required=True)
    emails = _emails(body, "emails", required=True) or []
    if not emails:
        field_error("emails", "Array must contain at least 1 element(s)")
    team_refs = _strings(body, "teams") or []
    proj = project(request)
    domains = [str(d).lower() for d in proj.settings.get("email_domains") or []]
    outside = [e for e in emails if domains and e.rsplit("@", 1)[1] not in domains]
    if outside:
        api_error(
            400,
            "Cannot invite users outside of the company's email domains",
            [
                {"property": "emails", "errorMessage": f"{e} is not in {', '.join(domains)}"}
                for e in outside
            ],
        )
    users = _users(proj)
    existing = [e for e in emails if e in users]
    if existing:
        api_error(
            400,
            GENERIC_400,
            [{"property": "emails", "errorMessage": f"{e} is already a member"} for e in existing],
        )
    teams = [_team_by_ref(proj, ref) for ref in team_refs]
    for email in dict.fromkeys(emails):
        users[email] = {"email": email, "firstName": "", "lastName": "", "role": role}
        for team in teams:
            if all(m.get("email") != email for m in team["members"]):
                team["members"].append(clone(users[email]))
    audit(
        request,
        "user_invite",
        "invite",
        ", ".join(emails),
        {"role": role, "teams": [t["id"] for t in teams]},
    )
    return ok(message="User(s) Invited successfully", with_data=False)


async def list_teams(request: web.Request) -> web.Response:
    """``GET /users/teams``: every team, paginated."""
    proj = project(request)
    teams = [_render_team(proj, t) for t in proj.store("teams").values()]
    return ok_page(request, teams, "Teams listed successfully.")


async def create_team(request: web.Request) -> web.Response:
    """``POST /users/teams``: create a team (200); members and admins must be users."""
    body = object_value(await read_body(request), "body")
    proj = project(request)
    fields = _team_fields(proj, body, creating=True)
    if _name_taken(proj, str(fields["name"])):
        api_error(400, "Name is already in use")
    team_id = new_base_id()
    team: dict[str, Any] = {
        "id": team_id,
        "name": fields["name"],
        "description": fields.get("description") or "",
        **{k: fields[k] for k in (*_METRIC_LISTS, "changeTeamConfigs", "reviewApproval")},
        "defaultTargetApplications": fields["defaultTargetApplications"],
        "defaultHoldoutID": fields.get("defaultHoldoutID"),
        **{flag: fields.get(flag) for flag in _TEAM_FLAGS},
        "members": fields["members"],
        "admins": fields["admins"],
    }
    proj.store("teams")[team_id] = team
    audit(request, "team_create", team_id, team["name"])
    return ok(_render_team(proj, team), "Team created successfully.")


async def get_team(request: web.Request) -> web.Response:
    """``GET /users/teams/{id}``."""
    proj = project(request)
    return ok(_render_team(proj, _team_or_400(request)), "Team read successfully.")


async def update_team(request: web.Request) -> web.Response:
    """``PATCH /users/teams/{id}``: each given field replaces the stored one."""
    team = _team_or_400(request)
    body = object_value(await read_body(request), "body")
    proj = project(request)
    fields = _team_fields(proj, body, creating=False)
    name = fields.get("name")
    if name is not None and name != team["name"] and _name_taken(proj, str(name)):
        api_error(400, "Name is already in use")
    changes = {
        key: {"old": clone(team.get(key)), "new": clone(value)}
        for key, value in fields.items()
        if team.get(key) != value
    }
    team.update(fields)
    audit(request, "update_team", team["id"], team["name"], changes)
    return ok(_render_team(proj, team), "Team updated successfully.")


async def delete_team(request: web.Request) -> web.Response:
    """``DELETE /users/teams/{id}``."""
    team = _team_or_400(request)
    del project(request).store("teams")[team["id"]]
    audit(request, "team_delete", team["id"], team["name"])
    return ok(message="Team deleted successfully", with_data=False)


async def get_user(request: web.Request) -> web.Response:
    """``GET /users/{email}``: 404 for an e-mail that is not a member."""
    return ok(_user_or_404(request), "User read successfully.")


async def update_user(request: web.Request) -> web.Response:
    """``POST /users/{email}``: change the role and/or the names."""
    user = _user_or_404(request)
    body = object_value(await read_body(request), "body")
    fields: dict[str, Any] = {}
    role = enum_field(body.get("role"), "role", ROLES, required=False)
    if role is not None:
        fields["role"] = role
    for prop in ("firstName", "lastName"):
        value = string_field(body, prop)
        if value is not None:
            fields[prop] = value
    changes = {k: {"old": user.get(k), "new": v} for k, v in fields.items() if user.get(k) != v}
    user.update(fields)
    action = "user_role_update" if "role" in changes else "user_update"
    audit(request, action, user["email"], user["email"], changes)
    return ok(user, "User updated successfully.")


# -- teams ----------------------------------------------------------------------------


def _team_or_400(request: web.Request) -> dict[str, Any]:
    # The spec documents 400 (not 404) for the team-by-id operations.
    team = project(request).store("teams").get(request.match_info["id"])
    if team is None:
        api_error(
            400,
            GENERIC_400,
            [{"property": "id", "errorMessage": f"Team {request.match_info['id']} not found"}],
        )
    return team


def _team_by_ref(proj: Project, ref: str) -> dict[str, Any]:
    teams = proj.store("teams")
    team = teams.get(ref) or next((t for t in teams.values() if t.get("name") == ref), None)
    if team is None:
        field_error("teams", f"Team {ref} not found")
    return team


def _name_taken(proj: Project, name: str) -> bool:
    return any(str(t.get("name")).lower() == name.lower() for t in proj.store("teams").values())


def _team_fields(proj: Project, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Validate a create (all required fields) or patch (any subset) body."""
    fields: dict[str, Any] = {}
    name = string_field(body, "name", required=creating)
    if name is not None:
        if not name.strip():
            field_error("name", "String must contain at least 1 character(s)")
        fields["name"] = name
    description = string_field(body, "description")
    if description is not None:
        fields["description"] = description
    for prop in ("members", "admins"):
        emails = _emails(body, prop, required=creating)
        if emails is not None:
            fields[prop] = _members(proj, prop, emails)
    for prop in _METRIC_LISTS:
        metrics = _metrics(body, prop, required=creating)
        if metrics is not None:
            fields[prop] = metrics
    for prop, allowed in (
        ("changeTeamConfigs", CHANGE_TEAM_CONFIGS),
        ("reviewApproval", REVIEW_APPROVAL),
    ):
        value = enum_field(body.get(prop), prop, allowed, required=creating)
        if value is not None:
            fields[prop] = value
    apps = _strings(body, "defaultTargetApplications", required=creating)
    if apps is not None:
        fields["defaultTargetApplications"] = apps
    if "defaultHoldoutID" in body:
        fields["defaultHoldoutID"] = string_field(body, "defaultHoldoutID", nullable=True)
    for flag in _TEAM_FLAGS:
        if flag in body:
            fields[flag] = boolean(nullable=True)(body.get(flag), flag)
    return fields


def _members(proj: Project, prop: str, emails: list[str]) -> list[dict[str, Any]]:
    users = _users(proj)
    missing = [e for e in emails if e not in users]
    if missing:
        field_error(prop, f"User(s) not found: {', '.join(missing)}")
    return [clone(users[e]) for e in dict.fromkeys(emails)]


def _metrics(body: dict[str, Any], prop: str, *, required: bool) -> list[dict[str, str]] | None:
    value = body.get(prop)
    if value is None:
        if required:
            field_error(prop, "Required")
        return None
    if not isinstance(value, list):
        field_error(prop, f"Expected array, received {json_type(value)}")
    out = []
    for index, item in enumerate(value):
        item = object_value(item, f"{prop}[{index}]")
        for key in ("name", "type"):
            if not isinstance(item.get(key), str):
                field_error(f"{prop}[{index}].{key}", "Required")
        out.append({"name": item["name"], "type": item["type"]})
    return out


def _render_team(proj: Project, team: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``team`` whose member and admin objects reflect the current users."""
    users = _users(proj)
    out: dict[str, Any] = clone(team)
    for prop in ("members", "admins"):
        out[prop] = [clone(users.get(str(m.get("email")), m)) for m in team.get(prop) or []]
    return out


# -- alerts ---------------------------------------------------------------------------


async def list_alerts(request: web.Request) -> web.Response:
    """``GET /alerts``: topline alerts filtered by creator and tags (any of them), paginated."""
    query = request.rel_url.query
    creator_name = query.get("creatorName")
    creator_id = query.get("creatorID")
    tags = set(query.getall("tags", []))
    alerts = [
        alert
        for alert in project(request).store("alerts").values()
        if (creator_name is None or alert.get("creatorName") == creator_name)
        and (creator_id is None or alert.get("creatorID") == creator_id)
        and (not tags or tags & set(alert.get("tags") or []))
    ]
    return ok_page(request, alerts, "Alerts listed successfully.")


# -- keys -----------------------------------------------------------------------------


def mask_key(value: str) -> str:
    """A key's loggable name: its type prefix and last four characters (``console-…a1b2``)."""
    prefix = value.split("-", 1)[0] + "-" if "-" in value else ""
    return f"{prefix}…{value[-4:]}"


def _new_key_value(key_type: str) -> str:
    return KEY_PREFIXES[key_type] + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(43))


def _key_store(request: web.Request) -> dict[str, dict[str, Any]]:
    """The project's keys, with the seeded console keys of ``state.keys`` filled in."""
    proj = project(request)
    store = proj.store("keys")
    for value, info in state(request).keys.items():
        if info.project_id == proj.id and value not in store:
            store[value] = {
                "key": value,
                "type": "CONSOLE",
                "description": "",
                "scopes": ["omni_read_only" if info.read_only else "omni_read_write"],
                "environments": [],
                "primaryTargetApp": None,
                "secondaryTargetApps": None,
                "status": "active",
            }
    return store


def _key_or_404(request: web.Request) -> dict[str, Any]:
    key = _key_store(request).get(request.match_info["id"])
    if key is None:
        api_error(404, "Key not found.")
    return key


def _register(request: web.Request, key: dict[str, Any]) -> None:
    """Make ``state.keys`` agree with ``key``: active console keys authenticate."""
    keys = state(request).keys
    value = str(key["key"])
    if key["type"] == "CONSOLE" and key["status"] == "active":
        read_only = "omni_read_write" not in key["scopes"]
        keys[value] = KeyInfo(project(request).id, read_only=read_only)
    else:
        keys.pop(value, None)


def _key_fields(request: web.Request, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    description = string_field(body, "description", required=creating)
    if description is not None:
        fields["description"] = description
    scopes = _strings(body, "scopes", allowed=KEY_SCOPES)
    if scopes is not None:
        fields["scopes"] = list(dict.fromkeys(scopes))
    environments = _strings(body, "environments")
    if environments is not None:
        known = {str(e.get("name")) for e in project(request).environments}
        unknown = [e for e in environments if e not in known]
        if unknown:
            field_error("environments", f"Unknown environment(s): {', '.join(unknown)}")
        fields["environments"] = environments
    if "targetAppID" in body:
        fields["primaryTargetApp"] = string_field(body, "targetAppID", nullable=not creating)
    if "secondaryTargetAppIDs" in body:
        fields["secondaryTargetApps"] = _strings(
            body, "secondaryTargetAppIDs", nullable=not creating
        )
    return fields


async def list_keys(request: web.Request) -> web.Response:
    """``GET /keys``: every key of the project, filtered by target app and environment."""
    query = request.rel_url.query
    app = query.get("primaryTargetApp")
    env = query.get("environment")
    keys = [
        key
        for key in _key_store(request).values()
        if (app is None or key.get("primaryTargetApp") == app)
        and (env is None or env in (key.get("environments") or []))
    ]
    return ok_page(request, keys, "Keys listed successfully.")


async def create_key(request: web.Request) -> web.Response:
    """``POST /keys`` (200): a new key; a CONSOLE key can call this API at once."""
    body = object_value(await read_body(request), "body")
    key_type = str(enum_field(body.get("type"), "type", KEY_TYPES, required=True))
    fields = _key_fields(request, body, creating=True)
    store = _key_store(request)
    value = _new_key_value(key_type)
    while value in store or value in state(request).keys:  # pragma: no cover - 256 bits
        value = _new_key_value(key_type)
    key: dict[str, Any] = {
        "key": value,
        "type": key_type,
        "description": fields["description"],
        "scopes": fields.get("scopes", []),
        "environments": fields.get("environments", []),
        "primaryTargetApp": fields.get("primaryTargetApp"),
        "secondaryTargetApps": fields.get("secondaryTargetApps"),
        "status": "active",
    }
    store[value] = key
    _register(request, key)
    audit(request, "sdk_key_create", mask_key(value), key["description"])
    return ok(key, "Key created successfully.")


async def get_key(request: web.Request) -> web.Response:
    """``GET /keys/{id}`` (the id is the key's value)."""
    return ok(_key_or_404(request), "Key read successfully.")


async def update_key(request: web.Request) -> web.Response:
    """``PATCH /keys/{id}``: description, scopes, environments, target apps."""
    key = _key_or_404(request)
    fields = _key_fields(request, object_value(await read_body(request), "body"), creating=False)
    changes = {k: {"old": key.get(k), "new": v} for k, v in fields.items() if key.get(k) != v}
    key.update(fields)
    _register(request, key)
    action = {
        "scopes": "sdk_key_update_scopes",
        "environments": "sdk_key_update_environments",
        "primaryTargetApp": "sdk_key_update_target_app",
        "secondaryTargetApps": "sdk_key_update_target_app",
    }
    action_type = next((action[k] for k in changes if k in action), "sdk_key_update_description")
    audit(request, action_type, mask_key(key["key"]), key["description"], changes)
    return ok(key, "Key updated successfully.")


async def delete_key(request: web.Request) -> web.Response:
    """``DELETE /keys/{id}``: the key stops working at once."""
    key = _key_or_404(request)
    del project(request).store("keys")[key["key"]]
    state(request).keys.pop(key["key"], None)
    audit(request, "sdk_key_delete", mask_key(key["key"]), key["description"])
    return ok(key, "Key deleted successfully.")


async def deactivate_key(request: web.Request) -> web.Response:
    """``PATCH /keys/{id}/deactivate``: the key stays listed but gets 401 from now on."""
    key = _key_or_404(request)
    key["status"] = "deactivated"
    _register(request, key)
    audit(request, "sdk_key_deactivate", mask_key(key["key"]), key["description"])
    return ok(key, "Key deactivated successfully.")


async def rotate_key(request: web.Request) -> web.Response:
    """``PATCH /keys/{id}/rotate``: a new value replaces the old one, which stops working."""
    key = _key_or_404(request)
    store = project(request).store("keys")
    old = str(key["key"])
    new = _new_key_value(str(key["type"]))
    rotated = {**key, "key": new}
    # Keep the key's place in the listing.
    replaced = {(new if value == old else value): obj for value, obj in store.items()}
    replaced[new] = rotated
    store.clear()
    store.update(replaced)
    state(request).keys.pop(old, None)
    _register(request, rotated)
    audit(
        request,
        "secret_key_regenerate",
        mask_key(new),
        rotated["description"],
        {"key": {"old": mask_key(old), "new": mask_key(new)}},
    )
    return ok(rotated, "Key rotated successfully,")


routes = [
    web.get("/console/v1/users", list_users),
    web.post("/console/v1/users/invite", invite_users),
    web.get("/console/v1/users/teams", list_teams),
    web.post("/console/v1/users/teams", create_team),
    web.get("/console/v1/users/teams/{id}", get_team),
    web.patch("/console/v1/users/teams/{id}", update_team),
    web.delete("/console/v1/users/teams/{id}", delete_team),
    web.get("/console/v1/users/{email}", get_user),
    web.post("/console/v1/users/{email}", update_user),
    web.get("/console/v1/alerts", list_alerts),
    web.get("/console/v1/keys", list_keys),
    web.post("/console/v1/keys", create_key),
    web.get("/console/v1/keys/{id}", get_key),
    web.patch("/console/v1/keys/{id}", update_key),
    web.delete("/console/v1/keys/{id}", delete_key),
    web.patch("/console/v1/keys/{id}/deactivate", deactivate_key),
    web.patch("/console/v1/keys/{id}/rotate", rotate_key),
]
