"""Users, teams, alerts and keys end to end: client methods against the emulator over HTTP."""

from __future__ import annotations

import json

import aiohttp
import pytest

from bulkops.api.models import Key
from bulkops.api.transport import ApiResponse
from bulkops.emulator.seed import EMPTY_KEY, EMPTY_READ_ONLY_KEY
from bulkops.errors import BadRequest, Forbidden, NotFound, Unauthorized

ROLE_ERROR = {
    "property": "role",
    "errorMessage": "Invalid enum value. Expected 'admin' | 'member' | 'read_only', received 'bob'",
}


@pytest.fixture(name="members")
def _members(project):
    """Two members already in the project."""
    users = project.store("users")
    for email, role in (("ada@example.com", "admin"), ("bo@example.com", "member")):
        users[email] = {"email": email, "firstName": email[:3], "lastName": "X", "role": role}
    return list(users)


def _raw_body(payload: bytes):
    """A client middleware that sends ``payload`` as the request body, verbatim."""

    async def middleware(request, _next):
        headers = {**request.headers, "Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, request.url, data=payload, headers=headers) as resp,
        ):
            return ApiResponse(resp.status, dict(resp.headers), await resp.read())

    return middleware


# -- users ----------------------------------------------------------------------------


async def test_invite_list_get_and_update_users(client, project):
    """Invited people become members; get and update round-trip; each change is audited once."""
    message = await client.users.invite(["Cy@Example.com", "di@example.com"], "member")
    assert message == "User(s) Invited successfully"
    emails = [u.email async for u in client.users.list(limit=1)]
    assert emails == ["cy@example.com", "di@example.com"]
    user = await client.users.update("cy@example.com", role="admin", first_name="Cy")
    assert (user.role, user.firstName, user.lastName) == ("admin", "Cy", "")
    assert await client.users.get("cy@example.com") == user
    assert [e["actionType"] for e in project.audit_log] == ["user_invite", "user_role_update"]


async def test_role_validation_is_the_zod_style_400(client, members):
    """A role outside admin/member/read_only is 400 "Bad Request Exception" naming the role."""
    with pytest.raises(BadRequest) as info:
        await client.users.invite(["new@example.com"], "bob")
    assert info.value.message == "Bad Request Exception"
    assert info.value.errors == [ROLE_ERROR]
    with pytest.raises(BadRequest) as info:
        await client.users.update(members[0], role="bob")
    assert info.value.errors == [ROLE_ERROR]


async def test_invite_rejects_bad_emails_members_and_other_domains(client, project, members):
    """Invalid e-mails, existing members and (with company domains) other domains are 400s."""
    with pytest.raises(BadRequest) as info:
        await client.users.invite(["not-an-email"], "member")
    assert info.value.errors == [{"property": "emails[0]", "errorMessage": "Invalid email"}]
    with pytest.raises(BadRequest, match="already a member"):
        await client.users.invite([members[0]], "member")
    project.settings["email_domains"] = ["example.com"]
    with pytest.raises(BadRequest) as info:
        await client.users.invite(["eve@elsewhere.org", "fay@example.com"], "member")
    assert "outside of the company" in info.value.message
    assert info.value.errors[0]["property"] == "emails"
    assert "fay@example.com" not in project.store("users")
    assert project.audit_log == []


async def test_unknown_user_is_404(client):
    """Reading or updating someone who is not a member is a NotFound."""
    with pytest.raises(NotFound):
        await client.users.get("ghost@example.com")
    with pytest.raises(NotFound):
        await client.users.update("ghost@example.com", role="admin")


async def test_malformed_json_is_a_typed_400(make_client, members):
    """A body that is not JSON gets the generic 400 message as a BadRequest."""
    client = make_client()
    client.add_middleware(_raw_body(b'{"role": '))
    with pytest.raises(BadRequest) as info:
        await client.users.update(members[0], role="admin")
    assert info.value.message == "Invalid request. Please check the request input and try again."
    assert info.value.errors == [{"property": "body", "errorMessage": "Body is not valid JSON"}]


# -- teams ----------------------------------------------------------------------------


async def test_team_round_trip_and_patch_replaces(client, project, members):
    """Create, list, get, patch (fields replaced, not merged) and delete a team."""
    team = await client.teams.create("Core", members=members, admins=[members[0]])
    assert team.id and [m.email for m in team.members] == members
    assert [t.id async for t in client.teams.list()] == [team.id]
    await client.users.update(members[1], role="read_only")
    fresh = await client.teams.get(team.id)
    assert fresh.members[1].role == "read_only"  # members reflect the current users
    patched = await client.teams.update(
        team.id, {"members": [members[1]], "reviewApproval": "admin_only"}
    )
    assert [m.email for m in patched.members] == [members[1]]
    assert patched.reviewApproval == "admin_only"
    assert [a.email for a in patched.admins] == [members[0]]
    await client.teams.delete(team.id)
    with pytest.raises(BadRequest):
        await client.teams.get(team.id)
    actions = [e["actionType"] for e in project.audit_log]
    assert actions == ["team_create", "user_role_update", "update_team", "team_delete"]


async def test_team_validation(client, project, members):
    """Unknown members, bad enums, wrong types and duplicate names are 400s; nothing is stored."""
    with pytest.raises(BadRequest, match="Bad Request Exception") as info:
        await client.teams.create("Core", members=["ghost@example.com"])
    assert info.value.errors[0]["property"] == "members"
    with pytest.raises(BadRequest) as info:
        await client.teams.create("Core", review_approval="nobody")
    assert info.value.errors[0]["property"] == "reviewApproval"
    with pytest.raises(BadRequest) as info:
        await client.call("POST", "/users/teams", {"name": 7})
    assert info.value.errors == [
        {"property": "name", "errorMessage": "Expected string, received number"}
    ]
    await client.teams.create("Core")
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.teams.create("core")
    assert len(project.store("teams")) == 1


async def test_invite_adds_people_to_teams(client, members):
    """``teams`` on an invite adds the invitees to those teams (by id or name)."""
    team = await client.teams.create("Core", members=[members[0]])
    await client.users.invite(["gus@example.com"], "member", teams=["Core"])
    team = await client.teams.get(str(team.id))
    assert [m.email for m in team.members] == [members[0], "gus@example.com"]
    with pytest.raises(BadRequest):
        await client.users.invite(["hal@example.com"], "member", teams=["Nope"])


# -- alerts ---------------------------------------------------------------------------


def _alert(n: int, creator: str, tags: list[str]) -> dict[str, object]:
    return {
        "id": f"alert_{n}",
        "name": f"Alert {n}",
        "alertType": "threshold",
        "metrics": {},
        "metricGroupBys": {},
        "message": "too high",
        "creatorID": creator,
        "companyID": "empty",
        "priority": "P2",
        "alertThreshold": 10,
        "windowMs": 60000,
        "condition": "greater",
        "team": None,
        "tags": tags,
    }


async def test_alerts_filter_and_page(client, project):
    """Alerts are filtered by creator and tags (any of them) and paginated."""
    alerts = project.store("alerts")
    for n in range(5):
        alerts[f"alert_{n}"] = _alert(n, "u1" if n % 2 else "u2", ["a"] if n < 3 else ["b"])
    alerts["alert_1"]["creatorName"] = "Ada"
    assert len([a async for a in client.alerts.list(limit=2)]) == 5
    assert [a["id"] async for a in client.alerts.list(creator_id="u1")] == ["alert_1", "alert_3"]
    assert [a["id"] async for a in client.alerts.list(creator_name="Ada")] == ["alert_1"]
    assert [a["id"] async for a in client.alerts.list(tags="b")] == ["alert_3", "alert_4"]
    both = [a["id"] async for a in client.alerts.list(tags=["a", "b"], creator_id="u2")]
    assert both == ["alert_0", "alert_2", "alert_4"]
    page = await client.call("GET", "/alerts", params={"limit": 2, "page": 2, "tags": "a"})
    assert [a["id"] for a in page["data"]] == ["alert_2"]
    assert page["pagination"]["previousPage"] == "/console/v1/alerts?tags=a&page=1&limit=2"
    assert page["pagination"]["nextPage"] is None


# -- keys -----------------------------------------------------------------------------


async def test_key_round_trip(client, project):
    """Create, list (seeded console keys too), get, update, rotate and delete a server key."""
    key = await client.keys.create(
        "SERVER", "backend", scopes=["none_hash_enabled"], environments=["production"]
    )
    assert key.key and key.key.startswith("secret-") and key.status == "active"
    listed = [k async for k in client.keys.list()]
    assert {k.key for k in listed} == {EMPTY_KEY, EMPTY_READ_ONLY_KEY, key.key}
    seeded = {k.key: k.scopes for k in listed if k.type == "CONSOLE"}
    assert seeded == {EMPTY_KEY: ["omni_read_write"], EMPTY_READ_ONLY_KEY: ["omni_read_only"]}
    assert [k.key async for k in client.keys.list(environment="production")] == [key.key]
    assert (await client.keys.get(key.key)).description == "backend"
    updated = await client.keys.update(key.key, {"description": "api", "environments": []})
    assert (updated.description, updated.environments) == ("api", [])
    rotated = await client.keys.rotate(key.key)
    assert rotated.key != key.key and rotated.description == "api"
    with pytest.raises(NotFound, match="Key not found."):
        await client.keys.get(key.key)
    await client.keys.delete(str(rotated.key))
    assert [k.key async for k in client.keys.list()] == [EMPTY_KEY, EMPTY_READ_ONLY_KEY]
    actions = [e["actionType"] for e in project.audit_log]
    assert actions == [
        "sdk_key_create",
        "sdk_key_update_environments",
        "secret_key_regenerate",
        "sdk_key_delete",
    ]
    assert key.key not in json.dumps(project.audit_log)
    assert str(rotated.key) not in json.dumps(project.audit_log)


async def test_created_console_key_works_until_deactivated(client, make_client):
    """A read-write CONSOLE key made through the API can write; deactivated it gets 401."""
    key = await client.keys.create("CONSOLE", "bot", scopes=["omni_read_write"])
    assert key.key is not None
    bot = make_client(key.key)
    await bot.teams.create("Made by bot")
    deactivated = await client.keys.deactivate(key.key)
    assert deactivated.status == "deactivated"
    with pytest.raises(Unauthorized) as info:
        await bot.teams.create("Too late")
    assert key.key not in str(info.value)
    assert (await client.keys.get(key.key)).status == "deactivated"


async def test_read_only_console_key_cannot_write(client, make_client):
    """An ``omni_read_only`` CONSOLE key reads, but every mutation is a 403 Forbidden."""
    key = await client.keys.create("CONSOLE", "reader", scopes=["omni_read_only"])
    reader = make_client(str(key.key))
    assert [k.key async for k in reader.keys.list()][-1] == key.key
    with pytest.raises(Forbidden, match="Forbidden resource"):
        await reader.keys.create("SERVER", "nope")
    with pytest.raises(Forbidden):
        await reader.users.invite(["x@example.com"], "member")
    with pytest.raises(Forbidden):
        await reader.ingestions.set_schedule("Events", 3)
    await client.keys.update(str(key.key), {"scopes": ["omni_read_write"]})
    await reader.teams.create("Now allowed")


async def test_rotate_and_delete_retire_the_old_value(client, make_client):
    """After rotate the old value is 401 and the new one works; after delete, 401 too."""
    key = await client.keys.create("CONSOLE", "ci", scopes=["omni_read_write"])
    old = make_client(str(key.key))
    rotated = await client.keys.rotate(str(key.key))
    with pytest.raises(Unauthorized):
        await old.call("GET", "/users")
    new = make_client(str(rotated.key))
    assert [u async for u in new.users.list()] == []
    await client.keys.delete(str(rotated.key))
    with pytest.raises(Unauthorized):
        await new.call("GET", "/users")


async def test_key_values_never_show_in_repr_or_errors(client):
    """The Key model hides the value; a 404 on a key path does not echo it."""
    key = await client.keys.create("CLIENT", "web")
    assert str(key.key) not in repr(key)
    assert str(key.key) not in str(Key.model_validate(key.model_dump()))
    with pytest.raises(NotFound) as info:
        await client.keys.deactivate("console-canary-value-123")
    assert "canary" not in str(info.value)


async def test_key_validation(client, project):
    """Bad type, scope, environment or field types are zod-style 400s; nothing is created."""
    with pytest.raises(BadRequest) as info:
        await client.keys.create("ADMIN", "x")
    assert info.value.errors[0]["property"] == "type"
    assert "Invalid enum value" in info.value.errors[0]["errorMessage"]
    with pytest.raises(BadRequest) as info:
        await client.keys.create("SERVER", "x", scopes=["everything"])
    assert info.value.errors[0]["property"] == "scopes[0]"
    with pytest.raises(BadRequest) as info:
        await client.keys.create("SERVER", "x", environments=["moon"])
    assert info.value.errors[0]["errorMessage"] == "Unknown environment(s): moon"
    with pytest.raises(BadRequest) as info:
        await client.call("POST", "/keys", {"type": "SERVER"})
    assert info.value.errors == [{"property": "description", "errorMessage": "Required"}]
    with pytest.raises(BadRequest) as info:
        await client.call("POST", "/keys", ["SERVER"])
    assert info.value.errors[0]["errorMessage"] == "Expected object, received array"
    assert [k.key async for k in client.keys.list()] == [EMPTY_KEY, EMPTY_READ_ONLY_KEY]
    assert project.audit_log == []
