"""Tags, target apps, unit id types, environments, project settings and audit logs end to end."""

from __future__ import annotations

import pytest

from bulkops.api.models import Environment
from bulkops.emulator.seed import EMPTY_READ_ONLY_KEY
from bulkops.errors import BadRequest, Forbidden, NotFound

DAY_MS = 86_400_000
JAN_1_2024_MS = 1_704_067_200_000


@pytest.fixture(name="gate")
def _gate(project):
    """A stored gate (put straight into the state) for target-app and tag references."""
    gate = {"id": "a_gate", "name": "A Gate", "tags": [], "targetApps": [], "version": 1}
    project.store("gates")["a_gate"] = gate
    return gate


# -- tags -------------------------------------------------------------------------------------


async def test_tag_round_trip(client, project):
    """A tag is created (200), read by id or name, listed, updated and deleted."""
    body = await client.call("POST", "/tags", {"name": "growth", "description": "Growth team"})
    assert body["message"] == "Tag created successfully"
    tag = await client.tags.get(body["data"]["id"])
    assert (tag.name, tag.description, tag.isCore) == ("growth", "Growth team", False)
    assert (await client.tags.get("growth")).id == tag.id
    core = await client.tags.create("core", "Core things", is_core=True)
    assert core.isCore is True
    assert [t.name async for t in client.tags.list()] == ["growth", "core"]
    updated = await client.tags.update(tag.id, description="Growth org")
    assert (updated.name, updated.description) == ("growth", "Growth org")
    await client.tags.delete(tag.id)
    with pytest.raises(NotFound, match="Tag not found."):
        await client.tags.get(tag.id)
    assert [e["actionType"] for e in project.audit_log] == [
        "tag_create",
        "tag_create",
        "tag_edit",
        "tag_delete",
    ]


async def test_tag_names_are_unique(client):
    """Creating or renaming to a taken tag name is 400 "Name is already in use"."""
    await client.tags.create("one", "")
    two = await client.tags.create("two", "")
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.tags.create("one", "again")
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.tags.update(two.id, name="one")
    assert (await client.tags.update(two.id, name="two")).name == "two"  # its own name is fine


async def test_tag_rename_and_delete_follow_into_configs(client, project, gate):
    """Configs hold tag names: a rename rewrites them and a delete removes them, each a new version."""
    tag = await client.tags.create("old-name", "")
    gate["tags"] = ["old-name", "other"]
    await client.tags.update(tag.id, name="new-name")
    assert gate["tags"] == ["new-name", "other"] and gate["version"] == 2
    await client.tags.delete("new-name")
    assert gate["tags"] == ["other"] and gate["version"] == 3
    assert [e["actionType"] for e in project.audit_log if e["targetID"] == "a_gate"] == [
        "config_edit_tags",
        "config_edit_tags",
    ]


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("POST", "/tags", b'{"name": "no description"}'),
        ("POST", "/tags", b'{"name": "", "description": ""}'),
        ("POST", "/tags", b'{"name": "x", "description": "", "isCore": "yes"}'),
        ("POST", "/tags", b"{broken"),
        ("POST", "/tags", b'["name"]'),
        ("POST", "/target_app", b'{"name": "no description"}'),
        ("POST", "/unit_id_types", b'{"description": "no name"}'),
        ("POST", "/environments", b'{"environments": []}'),
        ("POST", "/settings/project", b'{"name": "P"}'),
        ("POST", "/settings/project", b'{"name": "P", "visibility": "PUBLIC"}'),
    ],
)
async def test_invalid_bodies_are_400(raw, project, method, path, data):
    """Malformed or incomplete bodies get the API's 400 body and change nothing."""
    status, body = await raw(method, path, data)
    assert status == 400 and body["status"] == 400 and body["message"]
    assert project.audit_log == []


async def test_read_only_key_is_forbidden(client, make_client):
    """A read-only key may read metadata but gets 403 Forbidden on every change."""
    await client.tags.create("kept", "")
    reader = make_client(EMPTY_READ_ONLY_KEY)
    assert [t.name async for t in reader.tags.list()] == ["kept"]
    for call in (
        reader.tags.create("new", ""),
        reader.target_apps.create("app", ""),
        reader.unit_id_types.create("companyID"),
        reader.environments.update([]),
        reader.project.update_settings("x", "OPEN"),
    ):
        with pytest.raises(Forbidden, match="Forbidden resource"):
            await call


# -- target apps ------------------------------------------------------------------------------


async def test_target_app_round_trip(client, project):
    """A target app is created (200), read, listed, renamed and deleted."""
    app = await client.target_apps.create("iOS", "The iOS app")
    assert (app.id, app.name, app.description) == ("iOS", "iOS", "The iOS app")
    assert (await client.target_apps.get(app.id)).name == "iOS"
    await client.target_apps.update(app.id, name="iPhone")
    assert [a.name async for a in client.target_apps.list()] == ["iPhone"]
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.target_apps.create("iPhone", "")
    again = await client.target_apps.create("iOS", "")  # the old name is free; its id is not
    assert again.id != "iOS" and (await client.target_apps.get("iOS")).name == "iPhone"
    await client.target_apps.delete(again.id)
    await client.target_apps.delete(app.id)
    with pytest.raises(NotFound):
        await client.target_apps.get(app.id)
    assert [e["actionType"] for e in project.audit_log] == [
        "create_customer_app",
        "edit_target_app",
        "create_customer_app",
        "delete_target_app",
        "delete_target_app",
    ]


async def test_target_app_assignment(client, gate):
    """Create-with-gates and bulk assign add app names to configs; renames and deletes follow."""
    web = await client.target_apps.create("web", "", gates=["a_gate"])
    assert gate["targetApps"] == ["web"] and gate["version"] == 2
    ios = await client.target_apps.create("ios", "")
    await client.target_apps.assign([ios.id, web.id], gates=["a_gate"])
    assert gate["targetApps"] == ["web", "ios"] and gate["version"] == 3
    await client.target_apps.assign([ios.id], gates=["a_gate"])  # already there: no change
    assert gate["version"] == 3
    await client.target_apps.update(ios.id, name="iOS")
    assert gate["targetApps"] == ["web", "iOS"]
    await client.target_apps.delete(web.id)
    assert gate["targetApps"] == ["iOS"] and gate["version"] == 5


async def test_target_app_unknown_references_are_404(client, gate, project):
    """Unknown gates or target apps are 404s naming the ids, and nothing is assigned."""
    with pytest.raises(NotFound, match=r"Gates with IDs \[not a gate\] do not exist"):
        await client.target_apps.create("web", "", gates=["a_gate", "not a gate"])
    assert project.store("target_apps") == {}
    app = await client.target_apps.create("web", "")
    with pytest.raises(NotFound, match=r"Target apps with IDs \[Not an App\] do not exist"):
        await client.target_apps.assign([app.id, "Not an App"], gates=["a_gate"])
    with pytest.raises(NotFound, match=r"Experiments with IDs \[exp\] do not exist"):
        await client.target_apps.assign([app.id], experiments=["exp"])
    with pytest.raises(BadRequest):
        await client.target_apps.assign([], gates=["a_gate"])
    assert gate["targetApps"] == [] and gate["version"] == 1


# -- unit id types ----------------------------------------------------------------------------


async def test_unit_id_type_round_trip(client, project):
    """A unit id type is created (201), read, listed, re-described and deleted; errors are 400."""
    body = await client.call("POST", "/unit_id_types", {"name": "companyID"})
    assert body["message"] == "Unit ID Type created successfully."
    assert (await client.unit_id_types.get("companyID")).description == ""
    updated = await client.unit_id_types.update("companyID", "A company")
    assert updated.description == "A company"
    assert [u.model_dump() async for u in client.unit_id_types.list()] == [
        {"name": "companyID", "description": "A company"}
    ]
    for name in ("companyID", "userID", "stableID"):
        with pytest.raises(BadRequest, match="Name is already in use"):
            await client.unit_id_types.create(name)
    await client.unit_id_types.delete("companyID")
    with pytest.raises(BadRequest):
        await client.unit_id_types.get("companyID")
    with pytest.raises(BadRequest):
        await client.unit_id_types.delete("companyID")
    assert [e["actionType"] for e in project.audit_log] == [
        "company_ID_type_add",
        "company_ID_type_edit",
        "company_ID_type_delete",
    ]


async def test_create_status_codes(client, state):
    """Unit id types are created with 201, tags and target apps with 200, as the spec says."""
    await client.unit_id_types.create("orgID", "Org")
    await client.tags.create("t", "")
    await client.target_apps.create("app", "")
    assert [(c["path"], c["status"]) for c in state.capture] == [
        ("/console/v1/unit_id_types", 201),
        ("/console/v1/tags", 200),
        ("/console/v1/target_app", 200),
    ]


# -- environments -----------------------------------------------------------------------------


async def test_environments_replace_the_list(client, project):
    """``POST /environments`` replaces the list: given ids are kept, new entries get ids."""
    envs = await client.environments.get()
    assert [e.name for e in envs] == ["development", "staging", "production"]
    kept = [e for e in envs if e.name != "staging"]
    new = Environment(
        name="qa", isProduction=False, requiresReview=False, requiresReleasePipeline=False
    )
    updated = await client.environments.update([*kept, new])
    assert [e.name for e in updated] == ["development", "production", "qa"]
    assert updated[0].id == envs[0].id and updated[2].id not in {e.id for e in envs}
    assert [e.model_dump() for e in await client.environments.get()] == [
        e.model_dump() for e in updated
    ]
    assert [e["name"] for e in project.environments] == ["development", "production", "qa"]
    assert [e["actionType"] for e in project.audit_log] == ["company_environments_edit"]
    await client.environments.update(updated)  # the same list again: no change recorded
    assert len(project.audit_log) == 1
    blank = {"id": "", "name": "perf", "isProduction": False, "requiresReview": True}
    final = await client.environments.update([*updated, blank | {"requiresReleasePipeline": False}])
    assert final[-1].name == "perf" and final[-1].id  # an empty id means "new", as terraform sends


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "qa", "isProduction": False, "requiresReview": False},
        {"name": "qa", "id": "no-such-id", "isProduction": False, "requiresReview": False}
        | {"requiresReleasePipeline": False},
        {"name": "development", "isProduction": False, "requiresReview": False}
        | {"requiresReleasePipeline": False},
    ],
)
async def test_environments_reject_bad_entries(client, project, entry):
    """Missing flags, unknown ids and duplicate names are 400s; the list stays as it was."""
    before = [e.model_dump() for e in await client.environments.get()]
    with pytest.raises(BadRequest):
        await client.environments.update([*before, entry])
    assert [e.model_dump() for e in await client.environments.get()] == before


# -- project ------------------------------------------------------------------------------------


async def test_project_info_and_settings(client, project):
    """``GET /project`` is the key's project id; settings carry and change the project name."""
    assert await client.project.get() == {"id": "empty"}
    assert await client.project.settings() == {"name": "Empty Project", "visibility": "CLOSED"}
    updated = await client.project.update_settings("Renamed", "OPEN", default_unit_type="stableID")
    assert updated == {"name": "Renamed", "visibility": "OPEN", "default_unit_type": "stableID"}
    assert await client.project.settings() == updated
    assert project.name == "Renamed"
    cleared = await client.project.update_settings("Renamed", "OPEN")
    assert "default_unit_type" not in cleared
    assert [e["actionType"] for e in project.audit_log] == ["company_basic_info_edit"] * 2


# -- audit logs ---------------------------------------------------------------------------------


@pytest.fixture(name="history")
async def _history(client, state):
    """Six changes made on three consecutive days (2024-01-01 … 01-03), two per day."""
    clock = {"now": JAN_1_2024_MS}
    state.wall_ms = lambda: clock["now"]
    await client.segments.create({"name": "tagged", "type": "id_list", "tags": ["vip"]})
    await client.tags.create("vip", "")
    clock["now"] += DAY_MS
    await client.segments.add_ids("tagged", ["a"])
    await client.unit_id_types.create("orgID")
    clock["now"] += DAY_MS
    await client.segments.remove_ids("tagged", ["a"])
    await client.tags.create("other", "")
    return state.projects["empty"].audit_log


async def test_audit_log_lists_newest_first_with_filters(client, history):
    """Entries come newest first; id, actionType, tags and date filters narrow them."""
    everything = [e async for e in client.audit_logs.list()]
    assert [e.id for e in everything] == [e["id"] for e in reversed(history)]
    about = [e.actionType async for e in client.audit_logs.list(id="tagged")]
    assert about == ["ID_list_update", "ID_list_update", "segment_create"]
    tag_creates = [e.name async for e in client.audit_logs.list(action_type="tag_create")]
    assert tag_creates == ["other", "vip"]
    both = client.audit_logs.list(action_types=["tag_create", "company_ID_type_add"])
    assert len([e async for e in both]) == 3
    vip = [e.targetID async for e in client.audit_logs.list(tags="vip")]
    assert vip == ["tagged"] * 3
    day2 = [
        e.actionType
        async for e in client.audit_logs.list(start_date="2024-01-02", end_date="2024-01-02")
    ]
    assert day2 == ["company_ID_type_add", "ID_list_update"]
    assert len([e async for e in client.audit_logs.list(start_date="2024-01-02")]) == 4
    first = client.audit_logs.list(end_date="2024-01-01", sort_order="asc")
    assert [e.actionType async for e in first] == ["segment_create", "tag_create"]
    assert all(e.date == "Mon Jan 01 2024" for e in everything[-2:])


async def test_audit_log_sorting_and_latest_id(client, history):
    """``sortKey``/``sortOrder`` order the entries; ``latestID`` hides entries newer than it."""
    by_name = [e.name async for e in client.audit_logs.list(sort_key="name", sort_order="asc")]
    assert by_name == sorted(by_name)
    oldest = [e.id async for e in client.audit_logs.list(sort_key="time", sort_order="asc")]
    assert oldest == [e["id"] for e in history]
    pinned = history[2]["id"]
    assert [e.id async for e in client.audit_logs.list(latest_id=pinned)] == [
        e["id"] for e in reversed(history[:3])
    ]


async def test_audit_log_pagination_links(client, history):
    """Pages carry ``nextPage`` links that keep the filters; the iterator follows them."""
    body = await client.call(
        "GET", "/audit_logs", params={"sortOrder": "asc", "limit": 4, "page": 1}
    )
    assert len(body["data"]) == 4
    assert body["pagination"]["totalItems"] == 6
    assert body["pagination"]["nextPage"] == "/console/v1/audit_logs?sortOrder=asc&page=2&limit=4"
    entries = [e.id async for e in client.audit_logs.list(sort_order="asc", limit=4)]
    assert entries == [e["id"] for e in history]


@pytest.mark.parametrize(
    "params",
    [
        {"startDate": "2024-1-1"},
        {"endDate": "yesterday"},
        {"sortKey": "color"},
        {"sortOrder": "up"},
        {"latestID": "no-such-entry"},
        {"limit": "0"},
    ],
)
async def test_audit_log_bad_query_is_400(client, params):
    """Malformed dates, sort keys, orders, cursors and page sizes are 400s."""
    with pytest.raises(BadRequest):
        await client.call("GET", "/audit_logs", params=params)
