"""Dynamic configs end to end: the client's typed methods against the emulator over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from bulkops.emulator.seed import EMPTY_READ_ONLY_KEY
from bulkops.errors import BadRequest, Forbidden, NotFound

RULE = {
    "name": "employees",
    "passPercentage": 10,
    "conditions": [{"type": "email", "operator": "str_contains_any", "targetValue": ["@corp.com"]}],
    "returnValue": {"color": "blue"},
}
OTHER = {"name": "everyone", "conditions": [{"type": "public"}], "returnValue": {"color": "red"}}


def statuses(state, method: str, suffix: str) -> list[int]:
    """The statuses of captured ``method`` exchanges whose path ends with ``suffix``."""
    return [
        e["status"] for e in state.capture if e["method"] == method and e["path"].endswith(suffix)
    ]


async def make(client, name: str = "a dynamic config", **fields: Any):
    """Create a config with two rules (and any extra fields)."""
    return await client.dynamic_configs.create(
        {"name": name, "defaultValue": {"color": "grey"}, "rules": [RULE, OTHER], **fields}
    )


# -- create, read, update, delete ---------------------------------------------------------


async def test_create_read_round_trip(client, state):
    """A created config gets its id from the name, status Enabled, rule ids and version 1."""
    config = await make(client, tags=["t"])
    assert config.id == "a_dynamic_config"
    assert (config.status, config.isEnabled, config.version) == ("Enabled", True, 1)
    assert config.defaultValue == {"color": "grey"}
    assert [r.returnValue for r in config.rules] == [{"color": "blue"}, {"color": "red"}]
    assert config.rules[1].passPercentage == 100  # omitted on create
    assert config.rules[0].id == f"{config.rules[0].baseID}:10.00:1"
    again = await client.dynamic_configs.get(config.id)
    assert again.model_dump() == config.model_dump()
    assert statuses(state, "POST", "/dynamic_configs") == [201]


async def test_create_validation(client, project):
    """Missing name, bad types, bad JSON text and taken names are 400; nothing is stored."""
    cases = [
        ({"description": "no name"}, "name"),
        ({"name": "x"}, "name"),
        ({"name": "fine", "defaultValue": [1]}, "defaultValue"),
        ({"name": "fine", "defaultValueJson5": "{not json"}, "defaultValueJson5"),
        ({"name": "fine", "defaultValueJson5": "[1]"}, "defaultValueJson5"),
        (
            {"name": "fine", "defaultValue": {"a": 1}, "defaultValueJson5": '{"a": 2}'},
            "defaultValueJson5",
        ),
        ({"name": "fine", "schema": "{oops"}, "schema"),
        ({"name": "fine", "isEnabled": 1}, "isEnabled"),
        ({"name": "fine", "rules": [{**RULE, "returnValue": "blue"}]}, "rules[0].returnValue"),
        (
            {"name": "fine", "rules": [{**RULE, "returnValueJson5": "nope"}]},
            "rules[0].returnValueJson5",
        ),
    ]
    for body, prop in cases:
        with pytest.raises(BadRequest) as info:
            await client.dynamic_configs.create(body)
        assert info.value.errors[0]["property"] == prop, body
    assert project.store("dynamic_configs") == {}
    await make(client)
    with pytest.raises(BadRequest, match="Name is already in use"):
        await make(client)
    with pytest.raises(BadRequest, match=r"Duplicate rule name\(s\) given"):
        await client.dynamic_configs.create({"name": "dups", "rules": [RULE, RULE]})
    with pytest.raises(BadRequest, match="Gates with IDs"):
        await client.dynamic_configs.create(
            {
                "name": "ghostly",
                "rules": [
                    {**OTHER, "conditions": [{"type": "passes_gate", "targetValue": "ghost"}]}
                ],
            }
        )


async def test_json5_text_twins(client):
    """JSON text in defaultValueJson5 / returnValueJson5 sets the value; a new value rewrites it."""
    config = await client.dynamic_configs.create(
        {
            "name": "texty",
            "id": "texty.v2",
            "defaultValueJson5": '{"size": 3}',
            "schema": '{"type": "object"}',
            "rules": [{"name": "all", "conditions": [], "returnValueJson5": '{"size": 5}'}],
        }
    )
    assert config.id == "texty.v2"
    assert config.defaultValue == {"size": 3}
    assert config.defaultValueJson5 == '{"size": 3}'
    assert config.rules[0].returnValue == {"size": 5}
    patched = await client.dynamic_configs.patch("texty.v2", {"defaultValue": {"size": 4}})
    assert patched.defaultValue == {"size": 4}
    assert patched.defaultValueJson5 is not None and '"size": 4' in patched.defaultValueJson5
    rule = await client.dynamic_configs.update_rule(
        "texty.v2", config.rules[0].baseID or "", {"returnValue": {"size": 6}}
    )
    assert rule.rules[0].returnValue == {"size": 6}
    assert (
        rule.rules[0].returnValueJson5 is not None and '"size": 6' in rule.rules[0].returnValueJson5
    )


async def test_full_and_partial_update(client):
    """POST needs isEnabled/description/rules and keeps base ids; PATCH changes only given fields."""
    config = await make(client)
    with pytest.raises(BadRequest) as info:
        await client.dynamic_configs.update(config.id, {"isEnabled": True, "rules": []})
    assert info.value.errors[0]["property"] == "description"
    first = config.rules[0].model_dump(exclude_unset=True)
    updated = await client.dynamic_configs.update(
        config.id,
        {"isEnabled": False, "description": "full", "rules": [{**first, "passPercentage": 20}]},
    )
    assert (updated.status, updated.version) == ("Disabled", 2)
    assert updated.rules[0].baseID == config.rules[0].baseID
    assert updated.rules[0].id == f"{config.rules[0].baseID}:20.00:2"
    patched = await client.dynamic_configs.patch(config.id, {"tags": ["new"]})
    assert patched.tags == ["new"]
    assert patched.description == "full"
    assert [r.id for r in patched.rules] == [r.id for r in updated.rules]
    with pytest.raises(BadRequest, match="does not match an existing rule ID"):
        await client.dynamic_configs.patch(config.id, {"rules": [{**OTHER, "id": "unknown"}]})


async def test_delete(client, project):
    """DELETE answers the message only; later reads are 404 "Dynamic config not found."."""
    config = await make(client)
    assert await client.call("DELETE", f"/dynamic_configs/{config.id}") == {
        "message": "Dynamic Config deleted successfully."
    }
    assert project.store("dynamic_configs") == {}
    for call in (
        client.dynamic_configs.get(config.id),
        client.dynamic_configs.delete(config.id),
        client.dynamic_configs.enable(config.id),
        client.dynamic_configs.get_rules(config.id),
    ):
        with pytest.raises(NotFound, match=r"Dynamic config not found\."):
            await call


# -- status and listing ---------------------------------------------------------------------


async def test_status_transitions_and_listing(client, project):
    """enable/disable/archive/unarchive set status; archived configs list only on request."""
    await make(client, "one")
    await make(client, "two")
    assert (await client.dynamic_configs.disable("one")).status == "Disabled"
    assert (await client.dynamic_configs.enable("one")).status == "Enabled"
    before = len(project.audit_log)
    assert (await client.dynamic_configs.enable("one")).version == 3  # no-op: no new version
    assert len(project.audit_log) == before
    await client.dynamic_configs.disable("one")
    archived = await client.dynamic_configs.archive("one", reason="old", force=False)
    assert archived.status == "Archived"
    with pytest.raises(BadRequest, match="archived"):
        await client.dynamic_configs.enable("one")
    assert [c.id async for c in client.dynamic_configs.list()] == ["two"]
    listed = [c.id async for c in client.dynamic_configs.list(include_archived=True)]
    assert listed == ["one", "two"]
    assert (await client.dynamic_configs.unarchive("one", reason="back")).status == "Disabled"


async def test_list_filters_and_pagination(client, state):
    """Tag and creator filters apply; pages of 4 follow nextPage links keeping the filters."""
    for n in range(13):
        await client.dynamic_configs.create(
            {
                "name": f"cfg {n:02d}",
                "tags": ["even" if n % 2 == 0 else "odd"],
                "creatorID": f"c{n % 3}",
            }
        )
    evens = [c.id async for c in client.dynamic_configs.list(tags="even", limit=4)]
    assert evens == [f"cfg_{n:02d}" for n in range(0, 13, 2)]
    pages = [
        e for e in state.capture if e["method"] == "GET" and e["path"].endswith("/dynamic_configs")
    ]
    assert len(pages) == 2
    both = [c.id async for c in client.dynamic_configs.list(tags=["even", "odd"], creator_id="c0")]
    assert both == ["cfg_00", "cfg_03", "cfg_06", "cfg_09", "cfg_12"]
    envelope = await client.call("GET", "/dynamic_configs", params={"limit": 4, "tags": "odd"})
    assert envelope["message"] == "Dynamic Configs listed successfully."
    assert (
        envelope["pagination"]["nextPage"] == "/console/v1/dynamic_configs?tags=odd&page=2&limit=4"
    )


# -- rules ----------------------------------------------------------------------------------


async def test_rule_endpoints(client):
    """Rules read as [{rules}]; one rule by id or baseID; update and delete keep the others."""
    config = await make(client)
    first, second = config.rules
    envelope = await client.call("GET", f"/dynamic_configs/{config.id}/rules")
    assert envelope["data"][0]["rules"][0]["name"] == "employees"
    assert envelope["pagination"]["totalItems"] == 1
    assert [r.name for r in await client.dynamic_configs.get_rules(config.id)] == [
        "employees",
        "everyone",
    ]
    assert first.id and first.baseID and second.id
    by_id = await client.dynamic_configs.get_rule(config.id, first.id)
    by_base = await client.dynamic_configs.get_rule(config.id, first.baseID)
    assert by_id.model_dump() == by_base.model_dump() == first.model_dump()
    updated = await client.dynamic_configs.update_rule(
        config.id, first.baseID, {"passPercentage": 30, "environments": ["production"]}
    )
    assert updated.rules[0].id == f"{first.baseID}:30.00:2"
    assert updated.rules[0].environments == ["production"]
    assert updated.rules[1].model_dump() == second.model_dump()
    remaining = await client.dynamic_configs.delete_rule(config.id, second.id)
    assert [r.name for r in remaining.rules] == ["employees"]
    with pytest.raises(NotFound, match="Rule not found"):
        await client.dynamic_configs.get_rule(config.id, "missing")
    with pytest.raises(BadRequest, match="does not match an existing rule ID"):
        await client.dynamic_configs.update_rule(config.id, "missing", {"passPercentage": 1})
    with pytest.raises(BadRequest, match="does not match an existing rule ID"):
        await client.dynamic_configs.delete_rule(config.id, "missing")
    with pytest.raises(BadRequest, match="Unknown environment"):
        await client.dynamic_configs.update_rule(
            config.id, first.baseID, {"environments": ["moon"]}
        )


async def test_rule_by_name_endpoints(client):
    """The Terraform provider's add-rule and rule-by-name endpoints work like the by-id ones."""
    config = await make(client)
    added = await client.dynamic_configs.add_rule(
        config.id, {"name": "late", "passPercentage": 5, "conditions": [], "returnValue": {"x": 1}}
    )
    assert [r.name for r in added.rules] == ["employees", "everyone", "late"]
    with pytest.raises(BadRequest, match=r"Duplicate rule name\(s\) given"):
        await client.dynamic_configs.add_rule(config.id, {**OTHER})
    renamed = await client.dynamic_configs.update_rule_by_name(config.id, "late", {"name": "later"})
    assert renamed.rules[2].name == "later"
    assert renamed.rules[2].baseID == added.rules[2].baseID
    trimmed = await client.dynamic_configs.delete_rule_by_name(config.id, "everyone")
    assert [r.name for r in trimmed.rules] == ["employees", "later"]
    with pytest.raises(BadRequest, match="rule name"):
        await client.dynamic_configs.delete_rule_by_name(config.id, "everyone")


# -- versions, audit, references, permissions ----------------------------------------------


async def test_versions_and_audit(client, project):
    """Every applied change adds one version and one audit entry; versions list newest first."""
    config = await make(client)
    await client.dynamic_configs.patch(config.id, {"description": "v2"})
    await client.dynamic_configs.update_rule(
        config.id, config.rules[0].id or "", {"passPercentage": 1}
    )
    await client.dynamic_configs.disable(config.id)
    await client.dynamic_configs.archive(config.id)
    await client.dynamic_configs.unarchive(config.id)
    versions = [v async for v in client.dynamic_configs.versions(config.id, limit=4)]
    assert [v.version for v in versions] == [6, 5, 4, 3, 2, 1]
    assert [v.status for v in versions[:3]] == ["Disabled", "Archived", "Disabled"]
    await client.dynamic_configs.delete(config.id)
    assert [e["actionType"] for e in project.audit_log] == [
        "dynamic_config_create",
        "config_update",
        "config_conditions_update",
        "config_state_toggle",
        "config_archive",
        "config_unarchive",
        "config_delete",
    ]
    with pytest.raises(NotFound):
        await anext(client.dynamic_configs.versions(config.id))


async def test_gate_references_from_configs(client):
    """A config whose rule passes a gate shows in that gate's dynamic_config_references."""
    await client.gates.create({"name": "flag"})
    await client.dynamic_configs.create(
        {
            "name": "flagged",
            "rules": [{**OTHER, "conditions": [{"type": "passes_gate", "targetValue": "flag"}]}],
        }
    )
    await make(client)
    refs = [c.id async for c in client.gates.dynamic_config_references("flag")]
    assert refs == ["flagged"]


async def test_read_only_key_cannot_mutate(client, make_client, project):
    """A read-only key reads configs but mutations are 403 Forbidden."""
    config = await make(client)
    reader = make_client(EMPTY_READ_ONLY_KEY)
    assert (await reader.dynamic_configs.get(config.id)).id == config.id
    for call in (
        reader.dynamic_configs.create({"name": "nope"}),
        reader.dynamic_configs.patch(config.id, {"description": "x"}),
        reader.dynamic_configs.delete_rule(config.id, config.rules[0].id or ""),
    ):
        with pytest.raises(Forbidden):
            await call
    assert len(project.audit_log) == 1
