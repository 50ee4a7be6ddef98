"""Segments end to end: the client's typed methods against the emulator over real HTTP."""

from __future__ import annotations

import pytest

from bulkops.api.models import Rule, Segment
from bulkops.emulator.seed import EMPTY_READ_ONLY_KEY
from bulkops.errors import BadRequest, Forbidden, NotFound

RULE_BASED_ERROR = "Segment must be of type 'rule_based' to be modified on this endpoint"
ID_LIST_ERROR = "Segment must be of type 'id_list' to be modified on this endpoint"
USER_STORE_ERROR = "Segment must be of type 'user_store_id_list' to be modified on this endpoint"


def _rule(name: str, **condition: object) -> dict[str, object]:
    return {"name": name, "passPercentage": 100, "conditions": [condition]}


async def test_create_get_list_delete_round_trip(client, project):
    """A created segment reads back, lists, and is gone after delete (404 "Segment not found.")."""
    created = await client.segments.create(
        {"name": "Beta Users", "type": "id_list", "description": "d", "tags": ["t"]}
    )
    assert (created.id, created.type, created.count, created.version) == (
        "beta_users",
        "id_list",
        0,
        1,
    )
    assert created.isEnabled is True and created.idType == "userID"
    assert (await client.segments.get("beta_users")).model_dump() == created.model_dump()
    assert [s.id async for s in client.segments.list()] == ["beta_users"]
    assert project.audit_log[-1]["actionType"] == "segment_create"
    await client.segments.delete("beta_users")
    assert "beta_users" not in project.id_lists
    with pytest.raises(NotFound, match="Segment not found."):
        await client.segments.get("beta_users")
    assert [s async for s in client.segments.list()] == []


async def test_create_with_explicit_id_and_duplicates(client):
    """An explicit id is kept; a second create with the same id or name is 400 "Name is already in use"."""
    created = await client.segments.create(
        Segment.model_validate({"id": "seg-1", "name": "First", "type": "rule_based"})
    )
    assert created.id == "seg-1" and created.rules == []
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.segments.create({"id": "seg-1", "name": "Other", "type": "id_list"})
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.segments.create({"id": "seg-2", "name": "First", "type": "id_list"})


@pytest.mark.parametrize(
    ("body", "prop"),
    [
        ({"name": "no type"}, "type"),
        ({"type": "id_list"}, "name"),
        ({"name": "bad", "type": "dynamic"}, "type"),
        ({"name": "dots.not.allowed", "type": "id_list"}, "name"),
        ({"name": "ok name", "id": "no spaces", "type": "id_list"}, "id"),
        ({"name": "xy", "type": "id_list"}, "name"),
        ({"name": "rules here", "type": "id_list", "rules": []}, "rules"),
        ({"name": "gate cond", "type": "rule_based", "rules": [_rule("r", type="public")]}, None),
    ],
)
async def test_create_rejects_invalid_bodies(client, project, body, prop):
    """Invalid create bodies are 400s naming the bad property, and nothing is stored."""
    with pytest.raises(BadRequest) as info:
        await client.segments.create(body)
    assert info.value.status == 400
    if prop is not None:
        assert info.value.errors and info.value.errors[0]["property"] == prop
    assert project.store("segments") == {}
    assert project.audit_log == []


async def test_rule_based_rules_replace_and_keep_base_ids(client):
    """``set_rules`` replaces the rules; a rule sent back with its id keeps its baseID."""
    await client.segments.create({"name": "target", "type": "id_list"})
    created = await client.segments.create(
        {
            "name": "Power Users",
            "type": "rule_based",
            "rules": [
                _rule("emails", type="email", operator="str_contains_any", targetValue=["@x"])
            ],
        }
    )
    first = created.rules[0]
    assert first.baseID and first.id and created.version == 1
    kept = Rule.model_validate({**first.model_dump(exclude_unset=True), "passPercentage": 50})
    new = _rule("in target", type="passes_segment", targetValue="target")
    updated = await client.segments.set_rules("power_users", [kept, new])
    assert [r.name for r in updated.rules] == ["emails", "in target"]
    assert updated.rules[0].baseID == first.baseID and updated.rules[0].id != first.id
    assert updated.rules[1].baseID not in (None, first.baseID)
    assert updated.version == 2
    emptied = await client.segments.set_rules("power_users", [])
    assert emptied.rules == [] and emptied.version == 3


@pytest.mark.parametrize(
    "rule",
    [
        _rule("gate", type="passes_gate", targetValue="some_gate"),
        _rule("everyone", type="public"),
        _rule("missing", type="passes_segment", targetValue="no_such_segment"),
        _rule("self", type="fails_segment", targetValue="rule_seg"),
        {"name": "no conditions", "passPercentage": 100},
        _rule("env", type="country", operator="any", targetValue=["US"]) | {"environments": ["qa"]},
    ],
)
async def test_set_rules_rejects_invalid_rules(client, rule):
    """Conditions a segment cannot use, unknown or self references and bad rules are 400s."""
    await client.segments.create({"name": "rule_seg", "type": "rule_based"})
    with pytest.raises(BadRequest):
        await client.segments.set_rules("rule_seg", [rule])
    assert (await client.segments.get("rule_seg")).version == 1


async def test_conditional_requires_rule_based_and_an_array(client, raw):
    """Rules on an id_list segment are refused with the type message; a non-array body is 400."""
    await client.segments.create({"name": "ids", "type": "id_list"})
    with pytest.raises(BadRequest, match=RULE_BASED_ERROR):
        await client.segments.set_rules("ids", [_rule("r", type="user_id", targetValue=["1"])])
    await client.segments.create({"name": "rules", "type": "rule_based"})
    status, body = await raw("POST", "/segments/rules/conditional", b'{"rules": []}')
    assert (status, body["status"]) == (400, 400)
    with pytest.raises(NotFound, match="Segment not found."):
        await client.segments.set_rules("nope", [])


async def test_id_list_add_remove_reset_tracks_count(client, project):
    """Adds, removals and resets change the id list in order and keep ``count`` equal to its size."""
    await client.segments.create({"name": "list", "type": "id_list"})
    await client.segments.add_ids("list", ["a", "b", "c", "b"])
    assert (await client.segments.get("list")).count == 3
    await client.segments.add_ids("list", ["c", "d"])
    await client.segments.remove_ids("list", ["a", "zzz"])
    assert [i async for i in client.segments.get_id_list("list")] == ["b", "c", "d"]
    segment = await client.segments.get("list")
    assert (segment.count, segment.version) == (3, 4)
    await client.segments.reset_id_list("list", ["x", "y"])
    assert [i async for i in client.segments.get_id_list("list")] == ["x", "y"]
    segment = await client.segments.get("list")
    assert (segment.count, segment.version) == (2, 5)
    assert list(project.id_lists["list"]) == ["x", "y"]
    updates = [e for e in project.audit_log if e["actionType"] == "ID_list_update"]
    assert len(updates) == 4 and all(e["targetID"] == "list" for e in updates)


async def test_no_op_id_list_changes_are_not_recorded(client, state, project):
    """Adding present ids or removing absent ones changes nothing: no version bump, not applied."""
    await client.segments.create({"name": "list", "type": "id_list"})
    await client.segments.add_ids("list", ["a"])
    start = len(state.capture)
    await client.segments.add_ids("list", ["a"])
    await client.segments.remove_ids("list", ["b"])
    await client.segments.reset_id_list("list", ["a"])
    assert [c["applied"] for c in state.capture[start:]] == [False, False, False]
    assert (await client.segments.get("list")).version == 2


async def test_id_list_pages_carry_name_count_and_links(client):
    """``GET …/id_list`` pages the ids with ``{name, count, ids}`` and links; the iterator follows them."""
    await client.segments.create({"name": "Big List", "type": "id_list"})
    ids = [f"user{i:04d}" for i in range(2000)]
    await client.segments.add_ids("big_list", ids)  # 2,000 ids in one request is fine here
    body = await client.call("GET", "/segments/big_list/id_list", params={"limit": 300})
    assert body["data"]["name"] == "Big List"
    assert body["data"]["count"] == 2000
    assert body["data"]["ids"] == ids[:300]
    assert (
        body["pagination"]["nextPage"] == "/console/v1/segments/big_list/id_list?page=2&limit=300"
    )
    assert [i async for i in client.segments.get_id_list("big_list", limit=300)] == ids


async def test_id_list_endpoints_refuse_other_segment_types(client):
    """Each id-list endpoint names the one segment type it accepts in its 400."""
    await client.segments.create({"name": "rules", "type": "rule_based"})
    await client.segments.create({"name": "store", "type": "user_store_id_list"})
    await client.segments.create({"name": "analysis", "type": "analysis_list"})
    for call in (
        client.segments.add_ids("rules", ["a"]),
        client.segments.remove_ids("store", ["a"]),
        client.segments.reset_id_list("analysis", ["a"]),
        client.segments.id_list_metadata("rules"),
    ):
        with pytest.raises(BadRequest, match=ID_LIST_ERROR):
            await call
    with pytest.raises(BadRequest, match=ID_LIST_ERROR):
        [i async for i in client.segments.get_id_list("analysis")]
    await client.segments.create({"name": "ids", "type": "id_list"})
    with pytest.raises(BadRequest, match=USER_STORE_ERROR):
        await client.segments.add_user_store_ids("ids", ["a"])
    with pytest.raises(BadRequest, match=USER_STORE_ERROR):
        await client.segments.remove_user_store_ids("rules", ["a"])
    with pytest.raises(NotFound, match="Segment not found."):
        await client.segments.add_ids("nope", ["a"])


async def test_user_store_ids_limits_and_versions(client):
    """``add_ids``/``remove_ids`` take ≤1,000 ids and check ``version`` against idlist_metadata."""
    await client.segments.create({"name": "store", "type": "user_store_id_list"})
    meta = await client.segments.id_list_metadata("store")
    assert meta == {"currentVersion": 1, "isUpdating": False}
    thousand = [f"u{i}" for i in range(1000)]
    await client.segments.add_user_store_ids("store", thousand, version=1)
    assert (await client.segments.get("store")).count == 1000
    for too_many in (1001, 2000):
        with pytest.raises(BadRequest) as info:
            await client.segments.add_user_store_ids("store", [f"v{i}" for i in range(too_many)])
        assert info.value.errors[0]["property"] == "ids"
    with pytest.raises(BadRequest) as info:
        await client.segments.remove_user_store_ids("store", ["u1"], version=1)
    assert info.value.errors[0]["property"] == "version"
    assert (await client.segments.id_list_metadata("store"))["currentVersion"] == 2
    await client.segments.remove_user_store_ids("store", ["u1", "u2"], version=2)
    assert (await client.segments.get("store")).count == 998
    assert [i async for i in client.segments.get_id_list("store")][:2] == ["u0", "u3"]


async def test_id_list_patch_limit_is_100000(client):
    """A ``PATCH …/id_list`` of more than 100,000 ids is a 400 and adds nothing."""
    await client.segments.create({"name": "list", "type": "id_list"})
    with pytest.raises(BadRequest, match="Bad Request Exception"):
        await client.segments.add_ids("list", [str(i) for i in range(100_001)])
    assert (await client.segments.get("list")).count == 0


async def test_malformed_id_list_bodies(client, raw):
    """Invalid JSON, a missing body or ids that are not strings are 400s."""
    await client.segments.create({"name": "list", "type": "id_list"})
    for method, path, data in (
        ("PATCH", "/segments/list/id_list", b"{not json"),
        ("DELETE", "/segments/list/id_list", None),
        ("POST", "/segments/list/id_list/reset", b'{"ids": "a,b"}'),
        ("PATCH", "/segments/list/id_list", b'{"ids": [1, 2]}'),
        ("PATCH", "/segments/list/id_list", b'{"ids": [""]}'),
        ("PATCH", "/segments/list/id_list", b"{}"),
    ):
        status, body = await raw(method, path, data)
        assert status == 400, (method, path, data, body)
        assert body["status"] == 400 and body["message"]
    assert (await client.segments.get("list")).version == 1


async def test_archive_marks_segment_archived(client, project):
    """Archiving sets ``status`` Archived and disables the segment; a repeat changes nothing."""
    await client.segments.create({"name": "old", "type": "id_list"})
    archived = await client.segments.archive("old")
    assert (archived.status, archived.isEnabled, archived.version) == ("Archived", False, 2)
    again = await client.segments.archive("old")
    assert again.version == 2
    assert [e["actionType"] for e in project.audit_log] == ["segment_create", "config_state_toggle"]
    with pytest.raises(NotFound):
        await client.segments.archive("nope")


async def test_read_only_key_cannot_change_segments(client, make_client, project):
    """A read-only key reads segments but every mutation is 403 Forbidden."""
    await client.segments.create({"name": "list", "type": "id_list"})
    reader = make_client(EMPTY_READ_ONLY_KEY)
    assert (await reader.segments.get("list")).id == "list"
    with pytest.raises(Forbidden, match="Forbidden resource"):
        await reader.segments.add_ids("list", ["a"])
    with pytest.raises(Forbidden):
        await reader.segments.create({"name": "other", "type": "id_list"})
    assert project.id_lists["list"] == {}
